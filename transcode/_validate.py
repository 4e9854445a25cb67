"""validate(): refuse, with a typed error naming the problem, input that cannot become a TikTok video."""

from __future__ import annotations

import math

from transcode._errors import (
    AbsurdMediaError,
    CorruptMediaError,
    NoVideoStreamError,
    SizeBudgetError,
    TooLongError,
    TooShortError,
)
from transcode._models import MediaInfo, OverLength, Policy
from transcode._rules import MIN_VIDEO_BITRATE, output_duration, video_bitrate_budget

#: Sides outside this range come from damaged headers, not cameras (16K is the largest real format).
MIN_SIDE, MAX_SIDE = 16, 16384
#: Nothing anyone posts is longer than a day; a larger duration is a broken header.
MAX_SOURCE_DURATION = 86_400.0


def validate(info: MediaInfo, policy: Policy) -> None:
    """Raise the `InvalidMediaError` subclass naming why `info` cannot be made TikTok-ready."""
    name = info.path.name
    detail = info.model_dump(mode="json")
    if info.video is None:
        if info.still_image:
            what = "a still image"
        elif info.cover_art_streams and info.audio:
            what = "audio with cover art"
        elif info.audio:
            what = "audio only"
        else:
            what = "no video stream"
        raise NoVideoStreamError(f"{name}: no video to post ({what})", path=info.path, detail=detail)
    if info.truncated:
        raise CorruptMediaError(f"{name}: truncated (the MP4 ends before its last box does)",
                                path=info.path, detail=detail)
    video = info.video
    if not (MIN_SIDE <= video.width <= MAX_SIDE and MIN_SIDE <= video.height <= MAX_SIDE):
        raise AbsurdMediaError(f"{name}: picture size {video.width}x{video.height} is not plausible",
                               path=info.path, detail=detail)
    duration = info.duration
    if duration is None or not math.isfinite(duration) or duration > MAX_SOURCE_DURATION:
        shown = "unknown" if duration is None else f"{duration:g} s"
        raise AbsurdMediaError(f"{name}: duration {shown} is not plausible", path=info.path, detail=detail)
    if duration < policy.min_duration:
        raise TooShortError(f"{name}: {duration:.2f} s is shorter than the minimum {policy.min_duration:g} s",
                            path=info.path, detail=detail)
    if duration > policy.max_duration and policy.on_too_long is OverLength.reject:
        raise TooLongError(f"{name}: {duration:.2f} s is longer than the maximum {policy.max_duration:g} s",
                           path=info.path, detail=detail)
    budget = video_bitrate_budget(output_duration(info, policy), policy)
    if budget < MIN_VIDEO_BITRATE:
        raise SizeBudgetError(
            f"{name}: {policy.max_bytes} bytes is too small for {output_duration(info, policy):.1f} s of video "
            f"({max(budget, 0) // 1000} kbit/s left for the picture, needs {MIN_VIDEO_BITRATE // 1000})",
            path=info.path, detail=detail)
