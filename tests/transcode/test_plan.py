"""plan(): the pure path choice and the exact ffmpeg argv."""

from __future__ import annotations

from pathlib import Path

import pytest

from transcode import FitMode, Policy, plan, probe, video_bitrate_budget
from transcode._models import Loudness, PlanPath

OUT = Path("/tmp/out.mp4")


def option(argv: list[str], name: str) -> str:
    """Value following `name` in argv (asserting it is there once)."""
    assert argv.count(name) == 1, (name, argv)
    return argv[argv.index(name) + 1]


def graph(argv: list[str]) -> str:
    return option(argv, "-filter_complex")


def test_compliant_source_is_remuxed(media) -> None:
    result = plan(probe(media.path("compliant")), Policy(), OUT)
    assert result.path is PlanPath.remux and result.reasons == []
    argv = result.argv
    assert (option(argv, "-c:v"), option(argv, "-c:a"), option(argv, "-movflags")) == ("copy", "copy", "+faststart")
    assert "-filter_complex" not in argv and argv[-1] != str(OUT) and str(OUT) in argv
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-map"] == ["0:0", "0:1"]
    assert option(argv, "-f") == "mp4" and result.video_bitrate is None


def test_surround_audio_takes_audio_only_path(media) -> None:
    result = plan(probe(media.path("portrait_51")), Policy(), OUT)
    assert result.path is PlanPath.audio_only
    assert result.reasons == ["6 audio channels (needs stereo or mono)"]
    argv = result.argv
    assert (option(argv, "-c:v"), option(argv, "-c:a"), option(argv, "-ac"), option(argv, "-ar")) == (
        "copy", "aac", "2", "48000")
    assert "aformat=channel_layouts=stereo:sample_rates=48000" in graph(argv)


def test_landscape_full_transcode(media) -> None:
    info = probe(media.path("landscape"))
    result = plan(info, Policy(), OUT)
    argv, chain = result.argv, graph(result.argv)
    assert result.path is PlanPath.transcode
    assert "-noautorotate" not in argv
    assert chain.startswith("[0:0]fps=fps=30/1")
    assert "split=2" in chain and "boxblur" in chain and "overlay" in chain
    assert "scale=108:192" in chain, "the background is blurred small, then upscaled"
    mapped_video = option(argv, "-map") if argv.count("-map") == 1 else argv[argv.index("-map") + 1]
    assert "force_divisible_by=2" in chain and f"setsar=1[s9];[s9]format=yuv420p{mapped_video}" in chain
    assert (option(argv, "-c:v"), option(argv, "-profile:v"), option(argv, "-level:v")) == ("libx264", "high", "4.1")
    assert (option(argv, "-preset"), option(argv, "-crf"), option(argv, "-g")) == ("veryfast", "23", "60")
    tuning = dict(pair.split("=") for pair in option(argv, "-x264-params").split(":"))
    assert tuning == {"me": "dia", "subme": "1", "partitions": "i8x8,i4x4", "rc-lookahead": "5"}
    assert int(option(argv, "-maxrate")) == result.video_bitrate == video_bitrate_budget(3.2, Policy())
    assert int(option(argv, "-bufsize")) == 2 * result.video_bitrate
    assert [option(argv, f) for f in ("-color_primaries", "-color_trc", "-colorspace")] == ["bt709"] * 3
    assert option(argv, "-movflags") == "+faststart" and option(argv, "-c:a") == "aac"
    assert "-t" not in argv


@pytest.mark.parametrize(("fit", "expected", "absent"), [
    (FitMode.pad, "pad=1080:1920:(ow-iw)/2:(oh-ih)/2:color=black", "boxblur"),
    (FitMode.crop, "force_original_aspect_ratio=increase", "pad="),
])
def test_fit_modes(media, fit: FitMode, expected: str, absent: str) -> None:
    chain = graph(plan(probe(media.path("landscape")), Policy(fit=fit), OUT).argv)
    assert expected in chain and absent not in chain and "split" not in chain
    if fit is FitMode.crop:
        assert "crop=1080:1920" in chain


def test_sar_normalised_before_fitting(media) -> None:
    chain = graph(plan(probe(media.path("anamorphic")), Policy(), OUT).argv)
    assert chain.index("scale=trunc(iw*sar/2)*2:ih") < chain.index("setsar=1") < chain.index("split")


@pytest.mark.parametrize(("name", "fps", "level"), [
    ("vfr", "30/1", "4.1"), ("fps120", "60/1", "4.2"), ("fps15", "30/1", "4.1"), ("landscape", "30/1", "4.1"),
    ("anamorphic", "25/1", "4.1"),
])
def test_constant_frame_rate(media, name: str, fps: str, level: str) -> None:
    argv = plan(probe(media.path(name)), Policy(), OUT).argv
    assert f"fps=fps={fps}" in graph(argv) and option(argv, "-level:v") == level


def test_hdr_tone_mapping(media) -> None:
    tagged = graph(plan(probe(media.path("hlg")), Policy(), OUT).argv)
    untagged = graph(plan(probe(media.path("pq")), Policy(), OUT).argv)
    assumed = graph(plan(probe(media.path("hlg_untagged")), Policy(), OUT).argv)
    for chain in (tagged, untagged, assumed):
        # Both branches (picture and background) are tone-mapped, each ending in format=yuv420p.
        assert chain.count("tonemap=desat=0:tonemap=hable") == 2
        assert chain.count("zscale=m=bt709:r=tv:t=bt709[") == 2
        assert "in_color_matrix" not in chain
    assert "setparams" not in tagged and "setparams" not in untagged
    assert "setparams=color_primaries=bt2020:color_trc=arib-std-b67:colorspace=bt2020nc" in assumed


def test_no_audio_gets_silent_stereo_track(media) -> None:
    argv = plan(probe(media.path("no_audio")), Policy(), OUT).argv
    silence = argv.index("anullsrc=channel_layout=stereo:sample_rate=48000")
    assert argv[silence - 5:silence] == ["-f", "lavfi", "-t", "3.200", "-i"]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-map"][1] == "1:a"
    assert option(argv, "-c:a") == "aac"


def test_too_long_is_trimmed_by_reencode(media) -> None:
    result = plan(probe(media.path("long")), Policy(max_duration=4), OUT)
    assert result.path is PlanPath.transcode and result.expected_duration == 4
    assert option(result.argv, "-t") == "4.000" and option(result.argv, "-c:v") == "libx264"
    assert any("trimmed" in reason for reason in result.reasons)


def test_compliant_but_too_large_is_transcoded_within_budget(media) -> None:
    info = probe(media.path("compliant"))
    policy = Policy(max_bytes=info.size // 2)
    result = plan(info, policy, OUT)
    assert result.path is PlanPath.transcode
    expected = (policy.max_bytes * 0.92 * 8 - 128_000 * 3.2) / (3.2 + 1.8)
    assert result.video_bitrate == pytest.approx(expected, rel=0.01)


def test_explicit_bitrate_forces_encode(media) -> None:
    result = plan(probe(media.path("compliant")), Policy(), OUT, video_bitrate=2_000_000)
    assert result.path is PlanPath.transcode
    assert (option(result.argv, "-maxrate"), option(result.argv, "-bufsize")) == ("2000000", "4000000")


def test_loudnorm_second_pass(media) -> None:
    info = probe(media.path("compliant"))
    with pytest.raises(ValueError, match="first-pass"):
        plan(info, Policy(loudnorm=True), OUT)
    measured = Loudness(input_i=-20.5, input_tp=-3.0, input_lra=1.2, input_thresh=-30.6, target_offset=0.4)
    result = plan(info, Policy(loudnorm=True), OUT, loudness=measured)
    assert result.path is PlanPath.audio_only
    assert ("loudnorm=I=-14:LRA=11:TP=-1.5:linear=true:measured_I=-20.5:measured_LRA=1.2:"
            "measured_TP=-3.0:measured_thresh=-30.6:offset=0.4") in graph(result.argv)


def test_sd_bt601_converted_to_bt709(media) -> None:
    chain = graph(plan(probe(media.path("landscape")), Policy(), OUT).argv)
    assert "in_color_matrix=bt601:out_color_matrix=bt709:out_range=tv" in chain


def test_a_creator_allowed_an_hour_keeps_a_long_video_whole(media) -> None:
    """creator_info's max_video_post_duration_sec may be up to 3600: nothing caps it at 10 minutes."""
    from tiktok import MAX_CREATOR_VIDEO_DURATION, MAX_VIDEO_DURATION

    info = probe(media.path("compliant"))
    long = info.model_copy(update={"duration": 1800.0})  # a compliant 30-minute video, as ffprobe would describe it
    hour = Policy.for_creator(3600)
    assert hour.max_duration == MAX_CREATOR_VIDEO_DURATION == 3600
    assert plan(long, hour, OUT).path is PlanPath.remux  # kept whole: nothing to trim
    trimmed = plan(long, Policy.for_creator(None), OUT)  # unknown creator: TikTok's documented 10 minutes
    assert trimmed.path is PlanPath.transcode and trimmed.expected_duration == MAX_VIDEO_DURATION
    assert Policy.for_creator(7200).max_duration == 3600
    with pytest.raises(ValueError, match="less than or equal to 3600"):
        Policy(max_duration=3601)
