"""plan(): the pure choice of path (remux / audio-only / transcode) and the exact ffmpeg argv.

ffmpeg-python builds the commands. It writes global options (-progress, -v, -y) after the output
file; ffmpeg applies global options wherever they stand.
"""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

from transcode._models import FitMode, Loudness, MediaInfo, Plan, PlanPath, Policy, VideoStreamInfo
from transcode._rules import (
    AUDIO_BITRATE,
    BUFFER_SECONDS,
    audio_problems,
    output_duration,
    output_fps,
    video_bitrate_budget,
    video_problems,
)

FFMPEG = "ffmpeg"
#: Quality target; maxrate/bufsize cap it where the size budget demands.
CRF = 23
#: The fastest preset whose quality per bit is still good at this CRF (ultrafast/superfast lose ~20-40 %).
PRESET = "veryfast"
#: On top of veryfast: diamond motion search, subpel refinement 1, no p8x8/b8x8 partitions and a
#: 5-frame lookahead (veryfast: hex, 2, all partitions, 10). Measured on 2 cores (docs/benchmarks.md):
#: a fifth to a quarter less CPU for the same size (within about 1 %) and SSIM (within 0.001) against a
#: lossless encode of the same fit. mbtree stays on: superfast drops it and the file grows 2.6x.
X264_PARAMS = "me=dia:subme=1:partitions=i8x8,i4x4:rc-lookahead=5"
GOP_SECONDS = 2
#: TikTok-style loudness: -14 LUFS integrated, -1.5 dBTP, LRA 11.
LOUDNORM_TARGET = {"I": -14, "TP": -1.5, "LRA": 11}
#: The blurred background is built at 1/10 of the target size, blurred, then upscaled: cheap and smooth.
BLUR_DOWNSCALE = 10
SILENCE = "anullsrc=channel_layout=stereo:sample_rate=48000"

_GLOBAL_ARGS = ("-hide_banner", "-nostdin", "-nostats", "-progress", "pipe:1")
_HDR_TAGS = {"pq": "smpte2084", "hlg": "arib-std-b67"}
_BT601_MATRICES = {"smpte170m", "bt470bg", "fcc", "bt601"}


def plan(
    info: MediaInfo,
    policy: Policy,
    output: Path | str,
    *,
    loudness: Loudness | None = None,
    video_bitrate: int | None = None,
) -> Plan:
    """The cheapest command that turns a validated source into a compliant MP4 at `output`.

    `loudness` is the first-pass measurement (required when `policy.loudnorm` and there is audio);
    `video_bitrate` forces a full encode at that maxrate (the second, smaller attempt).
    """
    video = info.video
    if video is None:
        raise ValueError("plan() needs a validated MediaInfo with a video stream")
    if policy.loudnorm and info.audio is not None and loudness is None:
        raise ValueError("policy.loudnorm needs the first-pass Loudness measurement")
    duration = output_duration(info, policy)
    trimmed = (info.duration or 0.0) > policy.max_duration
    video_reasons = video_problems(video, policy)
    if trimmed:
        video_reasons.append(f"{info.duration:.1f} s is longer than {policy.max_duration:g} s (trimmed)")
    if info.size > policy.max_bytes:
        video_reasons.append(f"{info.size} bytes is over the {policy.max_bytes}-byte limit")
    if video_bitrate is not None:
        video_reasons.append(f"second attempt at {video_bitrate // 1000} kbit/s to meet the size limit")
    audio_reasons = audio_problems(info.audio)
    if policy.loudnorm and info.audio is not None:
        audio_reasons.append("loudness normalisation to -14 LUFS requested")

    source = ffmpeg.input(str(info.path))
    options: dict[str, Any] = {"f": "mp4", "movflags": "+faststart", "map_metadata": -1, "map_chapters": -1}
    if trimmed:
        options["t"] = f"{duration:.3f}"

    bitrate: int | None = None
    if video_reasons:
        fps = output_fps(video, policy)
        bitrate = video_bitrate if video_bitrate is not None else video_bitrate_budget(duration, policy)
        video_out = _fit(source[str(video.index)], video, policy, fps)
        options.update(_x264_options(fps, bitrate))
    else:
        video_out = source[str(video.index)]
        options["c:v"] = "copy"

    if info.audio is None:
        audio_out = ffmpeg.input(SILENCE, f="lavfi", t=f"{duration:.3f}").audio
        options.update(_aac_options())
    elif audio_reasons or video_reasons:
        # A re-encoded picture gets a re-encoded sound track too: the size budget counts on
        # 128 kbit/s audio, and a copied track could be any rate.
        audio_out = _stereo_48k(source[str(info.audio.index)])
        if loudness is not None and math.isfinite(loudness.input_i):
            audio_out = audio_out.filter("loudnorm", **_second_pass(loudness))
        options.update(_aac_options())
    else:
        audio_out = source[str(info.audio.index)]
        options["c:a"] = "copy"

    argv = (
        ffmpeg.output(video_out, audio_out, str(output), **options)
        .global_args(*_GLOBAL_ARGS, "-v", "error")
        .overwrite_output()
        .compile(cmd=FFMPEG)
    )
    if video_reasons:
        path = PlanPath.transcode
    elif audio_reasons:
        path = PlanPath.audio_only
    else:
        path = PlanPath.remux
    return Plan(path=path, argv=argv, output=Path(output), expected_duration=duration,
                video_bitrate=bitrate, reasons=video_reasons + audio_reasons)


def loudness_argv(info: MediaInfo) -> list[str]:
    """First loudnorm pass: measure the audio (stderr carries the JSON, so the log level is info)."""
    if info.audio is None:
        raise ValueError("loudness_argv() needs an audio stream")
    measured = _stereo_48k(ffmpeg.input(str(info.path))[str(info.audio.index)]).filter(
        "loudnorm", print_format="json", **LOUDNORM_TARGET)
    return (
        ffmpeg.output(measured, "-", f="null")
        .global_args(*_GLOBAL_ARGS, "-v", "info")
        .compile(cmd=FFMPEG)
    )


def parse_loudness(stderr: str) -> Loudness:
    """The JSON block loudnorm prints at the end of the first pass."""
    blocks = re.findall(r"\{[^{}]*\"input_i\"[^{}]*\}", stderr)
    if not blocks:
        raise ValueError("no loudnorm measurement in ffmpeg's output")
    values = json.loads(blocks[-1])
    return Loudness(
        input_i=float(values["input_i"]),
        input_tp=float(values["input_tp"]),
        input_lra=float(values["input_lra"]),
        input_thresh=float(values["input_thresh"]),
        target_offset=float(values["target_offset"]),
    )


def _fit(stream: Any, video: VideoStreamInfo, policy: Policy, fps: Fraction) -> Any:
    """Rotated (by ffmpeg's autorotate), deinterlaced, CFR, square-pixel, fitted, SDR 8-bit 4:2:0."""
    width, height = policy.width, policy.height
    if video.interlaced:
        stream = stream.filter("yadif")
    stream = stream.filter("fps", fps=f"{fps.numerator}/{fps.denominator}")
    if video.hdr is not None and video.hdr_assumed:
        stream = stream.filter("setparams", color_primaries="bt2020", colorspace="bt2020nc",
                               color_trc=_HDR_TAGS[video.hdr.value])
    if video.sar_value != 1:
        stream = stream.filter("scale", "trunc(iw*sar/2)*2", "ih").filter("setsar", 1)

    matrix = _scale_matrix(video)
    finish = _tonemap_to_sdr if video.hdr is not None else _unchanged

    if policy.fit is FitMode.crop:
        fitted = finish(stream.filter("scale", width, height, force_original_aspect_ratio="increase", **matrix)
                        .filter("crop", width, height))
    elif policy.fit is FitMode.pad:
        fitted = finish(_contain(stream, width, height, matrix)).filter(
            "pad", width, height, "(ow-iw)/2", "(oh-ih)/2", color="black")
    else:
        split = stream.split()
        picture, copy = split[0], split[1]
        small_w, small_h = width // BLUR_DOWNSCALE, height // BLUR_DOWNSCALE
        background = (
            finish(copy.filter("scale", small_w, small_h, force_original_aspect_ratio="increase",
                               flags="fast_bilinear", **matrix)
                   .filter("crop", small_w, small_h))
            .filter("boxblur", luma_radius=8, luma_power=2)
            .filter("scale", width, height, flags="fast_bilinear")
        )
        fitted = ffmpeg.overlay(background, finish(_contain(picture, width, height, matrix)),
                                x="(W-w)/2", y="(H-h)/2")
    return fitted.filter("setsar", 1).filter("format", "yuv420p")


def _contain(stream: Any, width: int, height: int, matrix: dict[str, str]) -> Any:
    return stream.filter("scale", width, height, force_original_aspect_ratio="decrease",
                         force_divisible_by=2, **matrix)


def _unchanged(stream: Any) -> Any:
    return stream


def _tonemap_to_sdr(stream: Any) -> Any:
    """HDR (PQ or HLG) -> SDR BT.709 with zscale + Hable tone mapping.

    The trailing format=yuv420p is load-bearing: in ffmpeg 5.1 a zscale chain feeding split/boxblur
    directly can abort with heap corruption.
    """
    return (
        stream.filter("zscale", t="linear", npl=100)
        .filter("format", "gbrpf32le")
        .filter("zscale", p="bt709")
        .filter("tonemap", tonemap="hable", desat=0)
        .filter("zscale", t="bt709", m="bt709", r="tv")
        .filter("format", "yuv420p")
    )


def _scale_matrix(video: VideoStreamInfo) -> dict[str, str]:
    """SDR colour conversion for swscale: BT.601 sources (tagged, or untagged SD) become BT.709."""
    if video.hdr is not None:
        return {}
    untagged_sd = video.color_space is None and min(video.display_width, video.display_height) < 720
    source = "bt601" if video.color_space in _BT601_MATRICES or untagged_sd else "bt709"
    return {"in_color_matrix": source, "out_color_matrix": "bt709", "out_range": "tv"}


def _x264_options(fps: Fraction, bitrate: int) -> dict[str, Any]:
    return {
        "c:v": "libx264",
        "profile:v": "high",
        # Level 4.1 carries 1080x1920 up to 30 fps; faster rates need 4.2.
        "level:v": "4.2" if fps > 30 else "4.1",
        "preset": PRESET,
        "x264-params": X264_PARAMS,
        "crf": CRF,
        "maxrate": bitrate,
        "bufsize": int(BUFFER_SECONDS * bitrate),
        "g": round(fps * GOP_SECONDS),
        "pix_fmt": "yuv420p",
        "color_primaries": "bt709",
        "color_trc": "bt709",
        "colorspace": "bt709",
        "color_range": "tv",
    }


def _aac_options() -> dict[str, Any]:
    return {"c:a": "aac", "b:a": AUDIO_BITRATE, "ar": 48000, "ac": 2}


def _stereo_48k(stream: Any) -> Any:
    """Downmix (or upmix mono) to stereo at 48 kHz before any measurement or normalisation."""
    return stream.filter("aformat", sample_rates=48000, channel_layouts="stereo")


def _second_pass(loudness: Loudness) -> dict[str, Any]:
    return {
        **LOUDNORM_TARGET,
        "measured_I": loudness.input_i,
        "measured_TP": loudness.input_tp,
        "measured_LRA": loudness.input_lra,
        "measured_thresh": loudness.input_thresh,
        "offset": loudness.target_offset,
        "linear": "true",
    }
