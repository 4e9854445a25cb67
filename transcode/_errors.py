"""The error hierarchy of `transcode`, rooted in `TranscodeError`.

Bad input (`InvalidMediaError` and its subclasses) is final: the same file will fail the same way.
Only a timeout is worth retrying; everything else says what went wrong in `.message` and carries the
ffprobe/ffmpeg detail (argv, return code, stderr tail, measured values) in `.detail`, and the file
concerned in `.path`.

    PipelineError (tiktok_pipeline.errors)
    └── TranscodeError                      final        root; path, detail
        ├── ToolNotFoundError               final        ffmpeg or ffprobe not on PATH
        ├── InvalidMediaError               final        the input cannot become a TikTok video
        │   ├── MediaNotFoundError          final        no such regular file
        │   ├── EmptyFileError              final        zero bytes
        │   ├── NotMediaError               final        not audio or video at all
        │   ├── NoVideoStreamError          final        audio only, cover art, still image
        │   ├── CorruptMediaError           final        truncated or damaged
        │   ├── TooShortError               final        under the policy's min_duration
        │   ├── TooLongError                final        over max_duration, policy says reject
        │   ├── AbsurdMediaError            final        dimensions or duration no real video has
        │   └── SizeBudgetError             final        max_bytes leaves too few bits per second
        ├── FFmpegError                     final        ffmpeg/ffprobe exited with an error
        │   └── TranscodeTimeoutError       retryable    killed at its timeout
        ├── TranscodeCancelledError         final        the caller cancelled
        └── OutputNotCompliantError         final        detail["problems"] lists failed checks
            └── OutputTooLargeError         final        still over max_bytes after the second try

`tests/transcode/test_errors.py` holds this drawing to the classes (parents and kinds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tiktok_pipeline.errors import PipelineError


class TranscodeError(PipelineError):
    """Root of every error raised by `transcode`."""

    def __init__(self, message: str, *, path: Path | str | None = None, detail: Any = None) -> None:
        super().__init__(message, detail=detail)
        #: The media file the error is about (input or output), when there is one.
        self.path = Path(path) if path is not None else None


class ToolNotFoundError(TranscodeError):
    """ffmpeg or ffprobe is not installed or not on PATH."""


# --- bad input ------------------------------------------------------------------------------------


class InvalidMediaError(TranscodeError):
    """The input cannot become a TikTok video; the message names the problem."""


class MediaNotFoundError(InvalidMediaError):
    """The input path does not exist or is not a regular file."""


class EmptyFileError(InvalidMediaError):
    """The input has zero bytes."""


class NotMediaError(InvalidMediaError):
    """ffprobe does not recognise the input as audio or video at all."""


class NoVideoStreamError(InvalidMediaError):
    """The input has no moving picture: audio only, cover art only, or a still image."""


class CorruptMediaError(InvalidMediaError):
    """The input looks like media but cannot be read to the end (truncated, damaged)."""


class TooShortError(InvalidMediaError):
    """Shorter than the policy's minimum duration."""


class TooLongError(InvalidMediaError):
    """Longer than the maximum duration and the policy says reject rather than trim."""


class AbsurdMediaError(InvalidMediaError):
    """Dimensions or duration no real video has (usually a damaged header)."""


class SizeBudgetError(InvalidMediaError):
    """The file-size limit leaves too few bits per second for a watchable video."""


# --- running and checking -------------------------------------------------------------------------


class FFmpegError(TranscodeError):
    """ffmpeg or ffprobe exited with an error; `.detail` holds argv, return code and stderr tail."""


class TranscodeTimeoutError(FFmpegError):
    """The command ran past its timeout and was killed (a busy machine may do better later)."""

    retryable = True


class TranscodeCancelledError(TranscodeError):
    """The caller cancelled; ffmpeg was killed and the partial output removed."""


class OutputNotCompliantError(TranscodeError):
    """The encoded file does not meet the policy; `.detail["problems"]` lists each failed check."""


class OutputTooLargeError(OutputNotCompliantError):
    """The encoded file stays over the size limit even after the lower-bitrate second attempt."""
