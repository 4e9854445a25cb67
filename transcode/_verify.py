"""verify(): probe the output and check it against the policy, independently of how it was made."""

from __future__ import annotations

from pathlib import Path

from transcode._errors import InvalidMediaError, OutputNotCompliantError, OutputTooLargeError
from transcode._models import MediaInfo, Policy
from transcode._probe import probe
from transcode._rules import DURATION_TOLERANCE, audio_problems, video_problems


def verify(path: Path | str, policy: Policy, expected_duration: float) -> MediaInfo:
    """The output's MediaInfo, or `OutputNotCompliantError` (`OutputTooLargeError` for size alone)."""
    path = Path(path)
    try:
        info = probe(path)
    except InvalidMediaError as exc:
        raise OutputNotCompliantError(f"output {path.name} is unreadable: {exc.message}", path=path,
                                      detail={"problems": [exc.message], "probe": exc.detail}) from exc
    problems = compliance_problems(info, policy, expected_duration)
    if problems:
        raise OutputNotCompliantError(f"output {path.name} is not TikTok-ready: {'; '.join(problems)}",
                                      path=path, detail={"problems": problems, "info": info.model_dump(mode="json")})
    if info.size > policy.max_bytes:
        raise OutputTooLargeError(
            f"output {path.name} is {info.size} bytes, over the {policy.max_bytes}-byte limit", path=path,
            detail={"problems": ["file size"], "size": info.size, "max_bytes": policy.max_bytes,
                    "info": info.model_dump(mode="json")})
    return info


def compliance_problems(info: MediaInfo, policy: Policy, expected_duration: float) -> list[str]:
    """Every way `info` misses the policy, except the file size (checked on its own)."""
    problems = []
    if "mp4" not in info.container.split(","):
        problems.append(f"container {info.container} (needs MP4)")
    if not info.faststart:
        problems.append("moov box is not before mdat (needs faststart)")
    if info.video is None:
        problems.append("no video stream")
    else:
        problems.extend(video_problems(info.video, policy))
    problems.extend(audio_problems(info.audio))
    duration = info.duration or 0.0
    if abs(duration - expected_duration) > DURATION_TOLERANCE:
        problems.append(f"duration {duration:.3f} s (expected {expected_duration:.3f} s)")
    if duration > policy.max_duration + DURATION_TOLERANCE:
        problems.append(f"duration {duration:.3f} s is over the maximum {policy.max_duration:g} s")
    if duration < policy.min_duration:
        problems.append(f"duration {duration:.3f} s is under the minimum {policy.min_duration:g} s")
    return problems
