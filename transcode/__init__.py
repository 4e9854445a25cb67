"""transcode: validate any video and make it TikTok-ready (H.264/AAC, 1080x1920, within limits).

    info = probe("in.mov")            # MediaInfo from ffprobe
    validate(info, Policy())          # typed InvalidMediaError naming the problem
    p = plan(info, Policy(), "out.mp4")   # pure: path taken + exact ffmpeg argv
    make_tiktok_ready("in.mov", "out.mp4", Policy(max_bytes=287_600_000))  # all of it, verified

No Prefect here: the Prefect task wraps `make_tiktok_ready`.
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
    ToolNotFoundError,
    TooLongError,
    TooShortError,
    TranscodeCancelledError,
    TranscodeError,
    TranscodeTimeoutError,
)
from transcode._models import (
    TARGET_HEIGHT,
    TARGET_WIDTH,
    AudioStreamInfo,
    FitMode,
    HdrFormat,
    Loudness,
    MediaInfo,
    OverLength,
    Plan,
    PlanPath,
    Policy,
    TranscodeResult,
    VideoStreamInfo,
)
from transcode._pipeline import check_decodable, make_tiktok_ready, measure_loudness
from transcode._plan import plan
from transcode._probe import parse_probe, probe
from transcode._run import run_ffmpeg
from transcode._validate import validate
from transcode._verify import verify

__all__ = [
    "TARGET_HEIGHT",
    "TARGET_WIDTH",
    "AbsurdMediaError",
    "AudioStreamInfo",
    "CorruptMediaError",
    "EmptyFileError",
    "FFmpegError",
    "FitMode",
    "HdrFormat",
    "InvalidMediaError",
    "Loudness",
    "MediaInfo",
    "MediaNotFoundError",
    "NoVideoStreamError",
    "NotMediaError",
    "OutputNotCompliantError",
    "OutputTooLargeError",
    "OverLength",
    "Plan",
    "PlanPath",
    "Policy",
    "SizeBudgetError",
    "ToolNotFoundError",
    "TooLongError",
    "TooShortError",
    "TranscodeCancelledError",
    "TranscodeError",
    "TranscodeResult",
    "TranscodeTimeoutError",
    "VideoStreamInfo",
    "check_decodable",
    "make_tiktok_ready",
    "measure_loudness",
    "parse_probe",
    "plan",
    "probe",
    "run_ffmpeg",
    "validate",
    "verify",
]
