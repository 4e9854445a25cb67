"""Pydantic models: what a file is (`MediaInfo`), what TikTok-ready means (`Policy`), what to run (`Plan`)."""

from __future__ import annotations

from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tiktok import MAX_CREATOR_VIDEO_DURATION, MAX_VIDEO_DURATION, MAX_VIDEO_SIZE

#: TikTok's safe target: 9:16 portrait, 1080x1920.
TARGET_WIDTH = 1080
TARGET_HEIGHT = 1920


class HdrFormat(str, Enum):
    pq = "pq"  # SMPTE ST 2084 (HDR10, Dolby Vision base layers)
    hlg = "hlg"  # ARIB STD-B67 (iPhone, broadcast)


class FitMode(str, Enum):
    """How a picture whose shape is not 9:16 fills 1080x1920."""

    blur = "blur"  # whole picture on a blurred, enlarged copy of itself
    pad = "pad"  # whole picture on black bars
    crop = "crop"  # fill the frame, cutting the edges off


class OverLength(str, Enum):
    """What to do with a video longer than the maximum duration."""

    trim = "trim"
    reject = "reject"


class PlanPath(str, Enum):
    remux = "remux"  # everything compliant: stream copy into a faststart MP4
    audio_only = "audio-only"  # video compliant, audio re-encoded (or a silent track added)
    transcode = "transcode"  # full video (and audio) encode


class VideoStreamInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int = Field(description="Stream index in the container (ffmpeg -map 0:INDEX)")
    codec: str
    profile: str | None = None
    level: int | None = Field(None, description="H.264 level times ten (41 = 4.1)")
    pix_fmt: str | None = None
    bit_depth: int = 8
    width: int = Field(description="Coded picture width, before rotation and SAR")
    height: int = Field(description="Coded picture height, before rotation and SAR")
    rotation: int = Field(0, description="Clockwise degrees (0, 90, 180, 270) a player turns the picture")
    sar: str = Field("1:1", description="Sample (pixel) aspect ratio, num:den")
    display_width: int = Field(description="Width as shown: after rotation, SAR applied horizontally")
    display_height: int = Field(description="Height as shown: after rotation")
    field_order: str | None = Field(None, description="progressive, tt, bb, tb, bt or unknown")
    r_frame_rate: str | None = None
    avg_frame_rate: str | None = None
    vfr: bool = Field(False, description="Variable frame rate (real and average rates disagree)")
    color_primaries: str | None = None
    color_transfer: str | None = None
    color_space: str | None = None
    color_range: str | None = None
    hdr: HdrFormat | None = None
    hdr_assumed: bool = Field(False, description="HDR inferred from an untagged transfer (see probe)")
    duration: float | None = None
    bit_rate: int | None = None

    @property
    def fps(self) -> Fraction | None:
        """Average frame rate (real rate when the average is unknown)."""
        return parse_rate(self.avg_frame_rate) or parse_rate(self.r_frame_rate)

    @property
    def sar_value(self) -> Fraction:
        return parse_ratio(self.sar)

    @property
    def interlaced(self) -> bool:
        return self.field_order in {"tt", "bb", "tb", "bt"}


class AudioStreamInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    codec: str
    profile: str | None = None
    channels: int = 0
    channel_layout: str | None = None
    sample_rate: int | None = None
    bit_rate: int | None = None


class MediaInfo(BaseModel):
    """What ffprobe (plus a walk of the MP4 box layout) says about a file."""

    model_config = ConfigDict(frozen=True)

    path: Path
    container: str = Field(description="ffprobe format_name, e.g. 'mov,mp4,m4a,3gp,3g2,mj2'")
    duration: float | None = Field(None, description="Seconds (format duration, else longest stream)")
    size: int = Field(description="File size in bytes")
    bit_rate: int | None = None
    video: VideoStreamInfo | None = None
    audio: AudioStreamInfo | None = None
    cover_art_streams: int = Field(0, description="attached_pic video streams (not video)")
    still_image: bool = Field(False, description="The only picture is a still image")
    faststart: bool | None = Field(None, description="MP4/MOV: moov before mdat; None for other containers")
    truncated: bool = Field(False, description="MP4/MOV: a top-level box runs past the end of the file")


class Policy(BaseModel):
    """What TikTok-ready means for one post. Defaults are TikTok's API limits; a creator's own
    maximum duration (creator_info, up to 60 minutes) replaces the 10-minute default."""

    model_config = ConfigDict(frozen=True)

    width: ClassVar[int] = TARGET_WIDTH
    height: ClassVar[int] = TARGET_HEIGHT

    fit: FitMode = FitMode.blur
    max_duration: float = Field(MAX_VIDEO_DURATION, gt=0, le=MAX_CREATOR_VIDEO_DURATION)
    on_too_long: OverLength = OverLength.trim
    min_duration: float = Field(3.0, ge=0)
    max_bytes: int = Field(MAX_VIDEO_SIZE, gt=0, le=MAX_VIDEO_SIZE)
    min_fps: float = Field(23.0, gt=0)
    max_fps: float = Field(60.0, gt=0)
    loudnorm: bool = Field(False, description="Two-pass EBU R128 normalisation to -14 LUFS")

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> Policy:
        if self.max_duration < self.min_duration:
            raise ValueError(f"max_duration {self.max_duration} is below min_duration {self.min_duration}")
        if self.max_fps < self.min_fps:
            raise ValueError(f"max_fps {self.max_fps} is below min_fps {self.min_fps}")
        return self

    @classmethod
    def for_creator(cls, max_video_post_duration_sec: int | None, **overrides: object) -> Policy:
        """The policy for a creator, whose `creator_info` limit (when known) caps the duration."""
        if max_video_post_duration_sec:
            overrides.setdefault("max_duration", min(float(max_video_post_duration_sec), MAX_CREATOR_VIDEO_DURATION))
        return cls(**overrides)  # type: ignore[arg-type]


class Loudness(BaseModel):
    """First-pass `loudnorm` measurement, fed back into the second pass."""

    model_config = ConfigDict(frozen=True)

    input_i: float
    input_tp: float
    input_lra: float
    input_thresh: float
    target_offset: float


class Plan(BaseModel):
    """One ffmpeg command and why it was chosen. `argv` is exactly what runs."""

    model_config = ConfigDict(frozen=True)

    path: PlanPath
    argv: list[str]
    output: Path
    expected_duration: float
    video_bitrate: int | None = Field(None, description="Video maxrate (bit/s) when the video is encoded")
    reasons: list[str] = Field(default_factory=list, description="Why the source is not already compliant")


class TranscodeResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: PlanPath
    output: MediaInfo
    elapsed: float = Field(description="Wall seconds for the whole call")
    attempts: int = Field(description="Encodes run (2 when the size limit forced a second pass)")
    reasons: list[str] = Field(default_factory=list)


def parse_ratio(text: str | None, sep: str = ":") -> Fraction:
    """'4:3' -> 4/3; missing or degenerate ('0:1', 'N/A') -> 1."""
    try:
        num, den = (int(part) for part in (text or "").split(sep))
    except ValueError:
        return Fraction(1)
    return Fraction(num, den) if num > 0 and den > 0 else Fraction(1)


def parse_rate(text: str | None) -> Fraction | None:
    """'30000/1001' -> Fraction; '0/0' or missing -> None."""
    try:
        num, den = (int(part) for part in (text or "").split("/"))
    except ValueError:
        return None
    return Fraction(num, den) if num > 0 and den > 0 else None
