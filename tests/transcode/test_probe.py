"""probe(): facts read from real files, and the pure parsing rules on ffprobe-shaped JSON."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from tests.plugins.media import ffprobe_json
from transcode import probe
from transcode._models import HdrFormat
from transcode._probe import parse_probe


def test_landscape_facts(media) -> None:
    info = probe(media.path("landscape"))
    raw = ffprobe_json(media.path("landscape"))
    video, audio = info.video, info.audio
    assert info.container == raw["format"]["format_name"]
    assert info.duration == pytest.approx(3.2, abs=0.05)
    assert info.size == media.path("landscape").stat().st_size
    assert info.bit_rate and info.bit_rate > 0
    assert (video.codec, video.pix_fmt, video.bit_depth) == ("h264", "yuv420p", 8)
    assert (video.width, video.height, video.display_width, video.display_height) == (640, 360, 640, 360)
    assert (video.rotation, video.sar, video.vfr, video.hdr) == (0, "1:1", False, None)
    assert video.fps == 30 and video.field_order == "progressive"
    assert (audio.codec, audio.channels, audio.sample_rate) == ("aac", 2, 48000)
    assert info.faststart is False and info.truncated is False


@pytest.mark.parametrize(("name", "side_data", "clockwise"), [("rotated_cw90", -90, 90), ("rotated_cw270", 90, 270)])
def test_display_matrix_rotation(media, name: str, side_data: int, clockwise: int) -> None:
    raw = ffprobe_json(media.path(name))["streams"][0]
    assert [sd["rotation"] for sd in raw["side_data_list"]] == [side_data]
    video = probe(media.path(name)).video
    assert video.rotation == clockwise
    assert (video.width, video.height) == (320, 180)
    assert (video.display_width, video.display_height) == (180, 320)


def test_anamorphic_display_size(media) -> None:
    video = probe(media.path("anamorphic")).video
    assert (video.sar, video.width, video.display_width, video.display_height) == ("4:3", 480, 640, 360)


@pytest.mark.parametrize(("name", "hdr", "assumed"), [
    ("hlg", HdrFormat.hlg, False),
    ("pq", HdrFormat.pq, False),
    ("hlg_untagged", HdrFormat.hlg, True),
    ("landscape", None, False),
])
def test_hdr_detection(media, name: str, hdr: HdrFormat | None, assumed: bool) -> None:
    video = probe(media.path(name)).video
    assert (video.hdr, video.hdr_assumed) == (hdr, assumed)
    if hdr is not None:
        assert (video.bit_depth, video.pix_fmt, video.color_primaries) == (10, "yuv420p10le", "bt2020")


def test_frame_rates(media) -> None:
    vfr = probe(media.path("vfr")).video
    assert vfr.vfr and vfr.r_frame_rate == "60/1" and vfr.fps < 40
    assert probe(media.path("fps120")).video.fps == 120
    assert probe(media.path("fps15")).video.fps == 15
    assert not probe(media.path("fps120")).video.vfr


def test_surround_audio(media) -> None:
    audio = probe(media.path("portrait_51")).audio
    assert (audio.channels, audio.channel_layout) == (6, "5.1")


def test_cover_art_is_not_video(media) -> None:
    info = probe(media.path("cover_art_mp3"))
    assert info.video is None and info.cover_art_streams == 1 and info.audio.codec == "mp3"


def test_still_image_is_not_video(media) -> None:
    info = probe(media.path("image"))
    assert info.video is None and info.still_image


def test_truncated_faststart_still_probes(media) -> None:
    info = probe(media.path("truncated"))
    assert info.video is not None and info.duration == pytest.approx(3.2, abs=0.05)
    assert info.faststart is True and info.truncated is True


def _stream(**fields: object) -> dict[str, object]:
    return {"index": 0, "codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080,
            "pix_fmt": "yuv420p", "r_frame_rate": "30/1", "avg_frame_rate": "30/1", **fields}


@pytest.mark.parametrize(("fields", "clockwise"), [
    ({"side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]}, 90),
    ({"side_data_list": [{"side_data_type": "Display Matrix", "rotation": 90.0}]}, 270),
    ({"side_data_list": [{"side_data_type": "Display Matrix", "rotation": -180}]}, 180),
    ({"tags": {"rotate": "90"}}, 90),
    ({"tags": {"rotate": "-90"}}, 270),
    ({"tags": {"rotate": "90"}, "side_data_list": [{"side_data_type": "Display Matrix", "rotation": 90}]}, 270),
    ({}, 0),
])
def test_rotation_conventions(fields: dict[str, object], clockwise: int) -> None:
    data = {"format": {"format_name": "mov,mp4", "duration": "5.0"}, "streams": [_stream(**fields)]}
    video = parse_probe(data, path=Path("x.mp4"), size=1).video
    assert video.rotation == clockwise
    portrait = clockwise in (90, 270)
    assert (video.display_width, video.display_height) == ((1080, 1920) if portrait else (1920, 1080))


def test_duration_falls_back_to_streams_and_pq_from_mastering_metadata() -> None:
    stream = _stream(pix_fmt="yuv420p10le", duration="7.5",
                     side_data_list=[{"side_data_type": "Mastering display metadata"}])
    data = {"format": {"format_name": "matroska,webm"}, "streams": [stream]}
    info = parse_probe(data, path=Path("x.mkv"), size=1)
    assert info.duration == 7.5
    assert (info.video.hdr, info.video.hdr_assumed, info.video.bit_depth) == (HdrFormat.pq, True, 10)


def test_ten_bit_without_bt2020_hint_is_sdr() -> None:
    data = {"format": {"format_name": "mov,mp4", "duration": "5"}, "streams": [_stream(pix_fmt="yuv420p10le")]}
    assert parse_probe(data, path=Path("x.mp4"), size=1).video.hdr is None


def test_vfr_rule() -> None:
    def rates(real: str, average: str) -> bool:
        data = {"format": {"format_name": "mov", "duration": "5"},
                "streams": [_stream(r_frame_rate=real, avg_frame_rate=average)]}
        return parse_probe(data, path=Path("x.mov"), size=1).video.vfr

    assert rates("60/1", "235/8") and rates("90000/1", "30/1")
    assert not rates("30000/1001", "30000/1001") and not rates("30/1", "2997/100")
    assert parse_probe({"format": {"format_name": "mov", "duration": "5"},
                        "streams": [_stream(avg_frame_rate="0/0")]}, path=Path("x"), size=1).video.fps == Fraction(30)
