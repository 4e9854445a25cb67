"""make_tiktok_ready() end to end on every kind of source; each output is checked by independent
ffprobe/ffmpeg measurements (tests.plugins.media.assert_tiktok_ready and the helpers below)."""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from tests.plugins.media import assert_tiktok_ready
from transcode import (
    FitMode,
    OutputNotCompliantError,
    OutputTooLargeError,
    Policy,
    make_tiktok_ready,
    probe,
    verify,
)
from transcode._models import PlanPath
from transcode._pipeline import smaller_bitrate
from transcode._plan import plan


def _ffmpeg_stderr(*args: str) -> str:
    return subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", *args], check=True, capture_output=True,
                          text=True).stderr


def _stream_md5(path: Path, stream: str) -> str:
    done = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", f"0:{stream}", "-c", "copy",
                           "-f", "md5", "-"], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _pixel(path: Path, x: int, y: int) -> tuple[int, int, int]:
    """RGB of one pixel of the middle frame."""
    done = subprocess.run(["ffmpeg", "-v", "error", "-ss", "1.5", "-i", str(path), "-frames:v", "1",
                           "-vf", f"crop=2:2:{x}:{y}", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          check=True, capture_output=True)
    return tuple(done.stdout[:3])  # type: ignore[return-value]


def _content_box(path: Path) -> tuple[int, int]:
    """Width and height of the non-black area (ffmpeg cropdetect)."""
    stderr = _ffmpeg_stderr("-i", str(path), "-vf", "cropdetect=limit=24:round=2:reset=1", "-frames:v", "5",
                            "-f", "null", "-")
    width, height = re.findall(r"crop=(\d+):(\d+):", stderr)[-1]
    return int(width), int(height)


@pytest.mark.parametrize(("name", "policy", "fps"), [
    ("landscape", Policy(), Fraction(30)),
    ("landscape", Policy(fit=FitMode.crop), Fraction(30)),
    ("square", Policy(), Fraction(30)),
    ("odd", Policy(), Fraction(30)),
    ("vfr", Policy(), Fraction(30)),
    ("fps120", Policy(), Fraction(60)),
    ("fps15", Policy(), Fraction(30)),
    ("hlg", Policy(), Fraction(30)),
    ("hlg_untagged", Policy(), Fraction(30)),
    ("pq", Policy(), Fraction(30)),
    ("mono_mkv", Policy(), Fraction(30)),
])
def test_full_transcode(media, tmp_path: Path, name: str, policy: Policy, fps: Fraction) -> None:
    out = tmp_path / "out.mp4"
    progress: list[float] = []
    result = make_tiktok_ready(media.path(name), out, policy, on_progress=progress.append)
    assert result.path is PlanPath.transcode and result.attempts == 1
    data = assert_tiktok_ready(out, duration=3.2, fps=fps)
    assert result.output.path == out and result.output.size == out.stat().st_size
    assert progress[-1] == 1.0 and progress == sorted(progress)
    if probe(media.path(name)).video.hdr is not None:
        video = data["streams"][0]
        assert (video["color_primaries"], video["color_transfer"], video["color_space"]) == ("bt709",) * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_remux_copies_streams(media, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result = make_tiktok_ready(media.path("compliant"), out)
    assert result.path is PlanPath.remux and result.reasons == []
    assert_tiktok_ready(out, duration=3.2, fps=Fraction(30))
    source = media.path("compliant")
    assert _stream_md5(out, "v") == _stream_md5(source, "v") and _stream_md5(out, "a") == _stream_md5(source, "a")


def test_surround_audio_only_path(media, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result = make_tiktok_ready(media.path("portrait_51"), out)
    assert result.path is PlanPath.audio_only
    assert_tiktok_ready(out, duration=3.2)
    assert _stream_md5(out, "v") == _stream_md5(media.path("portrait_51"), "v")


@pytest.mark.parametrize(("name", "red_at"), [("rotated_cw90", "top"), ("rotated_cw270", "bottom")])
def test_rotation_applied(media, tmp_path: Path, name: str, red_at: str) -> None:
    """The source's left half is red: turned clockwise it ends on top, counter-clockwise at the bottom."""
    out = tmp_path / "out.mp4"
    make_tiktok_ready(media.path(name), out)
    assert_tiktok_ready(out, duration=3.2)
    top, bottom = _pixel(out, 540, 300), _pixel(out, 540, 1620)
    red, blue = (top, bottom) if red_at == "top" else (bottom, top)
    assert red[0] > 200 and red[2] < 60, (top, bottom)
    assert blue[2] > 200 and blue[0] < 60, (top, bottom)


def test_anamorphic_pad_keeps_display_aspect(media, tmp_path: Path) -> None:
    """480x360 at SAR 4:3 shows as 16:9: padded into 1080x1920 the picture is 1080x608, not 1080x810."""
    out = tmp_path / "out.mp4"
    make_tiktok_ready(media.path("anamorphic"), out, Policy(fit=FitMode.pad))
    assert_tiktok_ready(out, duration=3.2, fps=Fraction(25))
    width, height = _content_box(out)
    assert width == 1080 and abs(height - 608) <= 4


def test_no_audio_gets_silence(media, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    make_tiktok_ready(media.path("no_audio"), out)
    assert_tiktok_ready(out, duration=3.2)
    stderr = _ffmpeg_stderr("-i", str(out), "-map", "0:a", "-af", "volumedetect", "-f", "null", "-")
    assert float(re.search(r"max_volume: (-?[\d.]+) dB", stderr).group(1)) <= -90


def test_too_long_is_trimmed(media, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result = make_tiktok_ready(media.path("long"), out, Policy(max_duration=4))
    assert result.path is PlanPath.transcode
    assert_tiktok_ready(out, duration=4.0)


def test_too_large_source_meets_small_limit(media, tmp_path: Path) -> None:
    out, limit = tmp_path / "out.mp4", 800_000
    assert media.path("noise").stat().st_size > limit
    result = make_tiktok_ready(media.path("noise"), out, Policy(max_bytes=limit))
    assert result.path is PlanPath.transcode
    assert_tiktok_ready(out, duration=3.2, max_bytes=limit)


def test_second_attempt_when_first_output_is_over_the_limit(media, tmp_path: Path) -> None:
    """The MKV is compliant and fits; its MP4 remux is ~2 KB larger, so the limit forces a re-encode."""
    source, out = media.path("compliant_mkv"), tmp_path / "out.mp4"
    limit = source.stat().st_size
    assert plan(probe(source), Policy(max_bytes=limit), out).path is PlanPath.remux
    result = make_tiktok_ready(source, out, Policy(max_bytes=limit))
    assert (result.path, result.attempts) == (PlanPath.transcode, 2)
    assert_tiktok_ready(out, duration=3.2, max_bytes=limit)


def test_smaller_bitrate_scales_with_overshoot(media) -> None:
    info = probe(media.path("landscape"))
    policy = Policy(max_bytes=2_000_000)
    first = plan(info, policy, "x.mp4", video_bitrate=2_000_000)
    assert smaller_bitrate(first, 2_500_000, policy) == int(2_000_000 * 0.8 * 0.9)
    remuxed = plan(probe(media.path("compliant")), Policy(), "x.mp4")
    assert smaller_bitrate(remuxed, 4_400_000_000, Policy()) <= 10_000_000


def test_verify_flags_size_and_other_problems(media, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    make_tiktok_ready(media.path("compliant"), out)
    size = out.stat().st_size
    assert verify(out, Policy(max_bytes=size), 3.2).size == size
    with pytest.raises(OutputTooLargeError) as too_large:
        verify(out, Policy(max_bytes=size - 1), 3.2)
    assert too_large.value.detail["size"] == size
    with pytest.raises(OutputNotCompliantError) as not_ready:
        verify(media.path("landscape"), Policy(), 5.0)
    problems = not_ready.value.detail["problems"]
    assert "moov box is not before mdat (needs faststart)" in problems
    assert "picture 640x360 (needs 1080x1920)" in problems
    assert "duration 3.200 s (expected 5.000 s)" in problems


def test_loudness_normalised(media, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result = make_tiktok_ready(media.path("landscape"), out, Policy(loudnorm=True))
    assert_tiktok_ready(out, duration=3.2)
    assert any("loudness" in reason for reason in result.reasons)
    stderr = _ffmpeg_stderr("-i", str(out), "-map", "0:a", "-af", "ebur128", "-f", "null", "-")
    integrated = float(re.findall(r"I:\s+(-?[\d.]+) LUFS", stderr)[-1])
    assert abs(integrated - -14) <= 1.5
