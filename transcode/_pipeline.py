"""make_tiktok_ready(): probe -> validate -> decode check -> (loudness pass) -> plan -> run -> verify.

The output is written to a hidden partial file next to `dst` and renamed only once verified, so
`dst` either does not exist or is a compliant MP4.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ffmpeg

from transcode._errors import CorruptMediaError, FFmpegError, OutputTooLargeError, TranscodeTimeoutError
from transcode._models import Loudness, MediaInfo, Plan, Policy, TranscodeResult
from transcode._plan import FFMPEG, loudness_argv, parse_loudness, plan
from transcode._probe import probe
from transcode._rules import AUDIO_BITRATE, MIN_VIDEO_BITRATE, video_bitrate_budget
from transcode._run import DEFAULT_NICENESS, Cancel, ProgressCallback, run_ffmpeg
from transcode._validate import validate
from transcode._verify import verify

#: Seconds of picture actually decoded by the decode check (the demux pass reads every packet).
DECODE_CHECK_SECONDS = 1.0
#: The second attempt aims this far under the limit (the first one's overshoot shows VBV slack).
RETRY_MARGIN = 0.9


def make_tiktok_ready(
    src: Path | str,
    dst: Path | str,
    policy: Policy | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    cancel: Cancel | None = None,
    timeout: float | None = None,
    niceness: int = DEFAULT_NICENESS,
) -> TranscodeResult:
    """Turn `src` into a TikTok-ready MP4 at `dst`, or raise a typed `TranscodeError`.

    `on_progress(fraction)` follows the current encode attempt; `cancel` (Event or callable) stops
    it; `timeout` bounds the whole call in seconds; every ffmpeg command runs `niceness` (0..19)
    steps nicer than this process, so other work on the machine (uploads) keeps its CPU.
    """
    started = time.monotonic()
    policy = policy or Policy()
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise ValueError("the output must not overwrite the input")

    def remaining() -> float | None:
        if timeout is None:
            return None
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            raise TranscodeTimeoutError(f"transcoding took longer than {timeout:g} s", path=src,
                                        detail={"timeout": timeout})
        return left

    info = probe(src)
    validate(info, policy)
    check_decodable(info, cancel=cancel, timeout=remaining(), niceness=niceness)
    loudness = None
    if policy.loudnorm and info.audio is not None:
        loudness = measure_loudness(info, cancel=cancel, timeout=remaining(), niceness=niceness)

    partial = dst.with_name(f".{dst.name}.partial")
    attempts, bitrate = 0, None
    try:
        while True:
            attempt = plan(info, policy, partial, loudness=loudness, video_bitrate=bitrate)
            attempts += 1
            run_ffmpeg(attempt.argv, expected_duration=attempt.expected_duration, output=partial,
                       on_progress=on_progress, cancel=cancel, timeout=remaining(), niceness=niceness)
            try:
                output = verify(partial, policy, attempt.expected_duration)
                break
            except OutputTooLargeError as exc:
                if attempts >= 2:
                    raise
                bitrate = smaller_bitrate(attempt, exc.detail["size"], policy)
                if bitrate < MIN_VIDEO_BITRATE:
                    raise
        os.replace(partial, dst)
    finally:
        partial.unlink(missing_ok=True)
    return TranscodeResult(
        path=attempt.path,
        output=output.model_copy(update={"path": dst}),
        elapsed=time.monotonic() - started,
        attempts=attempts,
        reasons=attempt.reasons,
    )


def smaller_bitrate(attempt: Plan, actual_size: int, policy: Policy) -> int:
    """Video maxrate for the second attempt, scaled down by the first attempt's overshoot."""
    duration = max(attempt.expected_duration, 0.001)
    first = attempt.video_bitrate or int(actual_size * 8 / duration - AUDIO_BITRATE)
    scaled = int(first * policy.max_bytes / actual_size * RETRY_MARGIN)
    return min(scaled, video_bitrate_budget(duration, policy))


def check_decodable(info: MediaInfo, *, cancel: Cancel | None = None, timeout: float | None = None,
                    niceness: int = DEFAULT_NICENESS) -> None:
    """Read every packet (cheap: no decoding) and decode the first seconds; `CorruptMediaError` if not.

    Catches files that still probe but are damaged or cut short, e.g. a truncated faststart MP4
    whose index is intact but whose data is not.
    """
    checks = ((demux_check_argv(info), info.duration or 0.0), (decode_check_argv(info), DECODE_CHECK_SECONDS))
    # Both at once: each is mostly one ffmpeg start-up and one short read, and a compliant clip that
    # is only remuxed waits for these checks about as long as for the remux itself.
    with ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="decode-check") as pool:
        futures = [pool.submit(run_ffmpeg, argv, expected_duration=seconds, cancel=cancel, timeout=timeout,
                               niceness=niceness) for argv, seconds in checks]
        failures = [exc for future in futures if isinstance(exc := future.exception(), BaseException)]
    for exc in failures:  # a timeout first, then the demux check's reason before the decode check's
        if isinstance(exc, TranscodeTimeoutError):
            raise exc
    for exc in failures:
        if isinstance(exc, FFmpegError):
            raise CorruptMediaError(f"{info.path.name}: damaged or truncated media ({exc.message})",
                                    path=info.path, detail=exc.detail) from exc
        raise exc


def demux_check_argv(info: MediaInfo) -> list[str]:
    source = ffmpeg.input(str(info.path))
    streams = [source[str(s.index)] for s in (info.video, info.audio) if s is not None]
    return _null_output(*streams, c="copy")


def decode_check_argv(info: MediaInfo) -> list[str]:
    if info.video is None:
        raise ValueError("decode_check_argv() needs a video stream")
    source = ffmpeg.input(str(info.path), t=f"{DECODE_CHECK_SECONDS:g}")
    return _null_output(source[str(info.video.index)])


def measure_loudness(info: MediaInfo, *, cancel: Cancel | None = None, timeout: float | None = None,
                     niceness: int = DEFAULT_NICENESS) -> Loudness:
    """First loudnorm pass over the whole audio track."""
    stderr = run_ffmpeg(loudness_argv(info), expected_duration=info.duration or 0.0, cancel=cancel, timeout=timeout,
                        niceness=niceness)
    try:
        return parse_loudness(stderr)
    except ValueError as exc:
        raise FFmpegError(f"{info.path.name}: loudness measurement failed", path=info.path,
                          detail={"stderr": stderr}) from exc


def _null_output(*streams: object, **options: object) -> list[str]:
    return (
        ffmpeg.output(*streams, "-", f="null", **options)
        .global_args("-hide_banner", "-nostdin", "-nostats", "-v", "error", "-xerror", "-progress", "pipe:1")
        .compile(cmd=FFMPEG)
    )
