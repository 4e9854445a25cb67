"""transcode: validate any video and make it TikTok-ready (H.264/AAC, 1080x1920, within TikTok's limits).

    info = probe("in.mov")            # MediaInfo from ffprobe
    validate(info, Policy())          # typed InvalidMediaError naming the problem
    p = plan(info, Policy(), "out.mp4")   # pure: path taken + exact ffmpeg argv
    make_tiktok_ready("in.mov", "out.mp4", Policy(max_bytes=287_600_000))  # all of it, verified

No Prefect here: the Prefect task wraps `make_tiktok_ready`. The limits are TikTok's own
(`tiktok.MAX_VIDEO_SIZE`, `tiktok.MAX_VIDEO_DURATION`): `Policy` defaults to them and refuses more.

Public surface, by group:
- the whole job: `make_tiktok_ready` (probe, validate, plan, encode, verify; a second, smaller try
  when the first output is too large), and the `Policy` it follows with its `FitMode` (blur / pad /
  crop a picture that is not 9:16) and `OverLength` (trim / reject a video that is too long).
- the steps: `probe` -> `MediaInfo`, `validate`, `check_decodable`, `plan` (pure: the ffmpeg argv),
  `run_ffmpeg` (progress, timeout, cancel, `niceness`: `nice -n N` for ffmpeg, 0 by default; the
  pipeline's transcode task passes TIKTOK_PIPELINE_TRANSCODE_NICENESS, 10, so it yields the CPU to
  uploads), `verify`, and `video_bitrate_budget` (the bit rate a size limit leaves).
- errors: one tree rooted at `TranscodeError`, drawn in `transcode/_errors.py`.
"""

from transcode._errors import (
    AbsurdMediaError,
    CorruptMediaError,
    EmptyFileError,
    FFmpegError,
    InvalidMediaError,
    MediaNotFoundError,
    NoVideoStreamError,
    NotMediaError,
    OutputNotCompliantError,
    OutputTooLargeError,
    SizeBudgetError,
    TooLongError,
    TooShortError,
    ToolNotFoundError,
    TranscodeCancelledError,
    TranscodeError,
    TranscodeTimeoutError,
)
from transcode._models import FitMode, MediaInfo, OverLength, Policy
from transcode._pipeline import check_decodable, make_tiktok_ready
from transcode._plan import plan
from transcode._preview import Preview, contact_sheet_command, make_preview, poster_command
from transcode._probe import probe
from transcode._rules import video_bitrate_budget
from transcode._run import DEFAULT_NICENESS, run_ffmpeg
from transcode._validate import validate
from transcode._verify import verify

__all__ = [
    # the whole job
    "make_tiktok_ready",
    "make_preview",
    "Preview",
    "poster_command",
    "contact_sheet_command",
    "DEFAULT_NICENESS",
    "Policy",
    "FitMode",
    "OverLength",
    # the steps
    "probe",
    "MediaInfo",
    "validate",
    "check_decodable",
    "plan",
    "run_ffmpeg",
    "verify",
    "video_bitrate_budget",
    # errors (the tree in transcode/_errors.py)
    "TranscodeError",
    "AbsurdMediaError",
    "CorruptMediaError",
    "EmptyFileError",
    "FFmpegError",
    "InvalidMediaError",
    "MediaNotFoundError",
    "NoVideoStreamError",
    "NotMediaError",
    "OutputNotCompliantError",
    "OutputTooLargeError",
    "SizeBudgetError",
    "ToolNotFoundError",
    "TooLongError",
    "TooShortError",
    "TranscodeCancelledError",
    "TranscodeTimeoutError",
]
