"""TikTok's media rules, checked on what ffprobe reports about a received file.

`probe` is the only side effect (a subprocess); the checks are pure functions of its JSON so the
rules are readable in one place.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

from pydantic import BaseModel

FFPROBE = "/usr/bin/ffprobe"

VIDEO_CODECS = {"h264", "hevc", "vp8", "vp9"}
#: ffprobe cannot tell WebM from Matroska by container name; WebM only carries VP8/VP9 (or AV1).
WEBM_CODECS = {"vp8", "vp9"}
MIN_FPS, MAX_FPS = 23, 60
MIN_SIDE, MAX_SIDE = 360, 4096
PHOTO_CODECS = {"mjpeg", "webp"}
#: "20 MB" per photo, read as 20,000,000 bytes (the stricter reading).
MAX_PHOTO_BYTES = 20_000_000
#: "Up to 1080p": the short side at most 1080 and the long side at most 1920 pixels.
MAX_PHOTO_SHORT_SIDE, MAX_PHOTO_LONG_SIDE = 1080, 1920


class MediaCheck(BaseModel):
    """Outcome of checking one received file; `fail_reason` None means it passed."""

    fail_reason: str | None = None
    detail: str = ""
    container: str | None = None
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    duration_sec: float | None = None
    #: sha256 of the file checked (what TikTok received), so tests can tell which bytes arrived.
    sha256: str | None = None


def probe(path: Path) -> dict[str, Any] | None:
    """ffprobe's JSON for `path`, or None when ffprobe cannot read it as media."""
    completed = subprocess.run(
        [FFPROBE, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if completed.returncode != 0:
        return None
    return json.loads(completed.stdout)


def _frame_rate(stream: dict[str, Any]) -> float | None:
    for key in ("avg_frame_rate", "r_frame_rate"):
        text = stream.get(key, "0/0")
        numerator, _, denominator = text.partition("/")
        if denominator not in ("", "0") and numerator not in ("", "0"):
            return float(Fraction(int(numerator), int(denominator)))
    return None


def _duration(info: dict[str, Any], stream: dict[str, Any]) -> float | None:
    for text in (info.get("format", {}).get("duration"), stream.get("duration")):
        if text not in (None, "N/A"):
            return float(text)
    return None


def check_video(info: dict[str, Any] | None, max_duration_sec: int) -> MediaCheck:
    """Apply TikTok's video rules (container, codec, size, frame rate, duration) to ffprobe output."""
    if info is None:
        return MediaCheck(fail_reason="file_format_check_failed", detail="ffprobe cannot read the file")
    container = info.get("format", {}).get("format_name", "")
    video = next((s for s in info.get("streams", []) if s.get("codec_type") == "video"), None)
    if video is None:
        return MediaCheck(fail_reason="file_format_check_failed", detail="no video stream", container=container)
    check = MediaCheck(
        container=container,
        codec=video.get("codec_name"),
        width=video.get("width"),
        height=video.get("height"),
        fps=_frame_rate(video),
        duration_sec=_duration(info, video),
    )
    is_mp4_or_mov = "mp4" in container.split(",") or "mov" in container.split(",")
    is_webm = "webm" in container.split(",") and check.codec in WEBM_CODECS
    if not (is_mp4_or_mov or is_webm):
        return check.model_copy(update={"fail_reason": "file_format_check_failed", "detail": f"container {container}"})
    if check.codec not in VIDEO_CODECS:
        return check.model_copy(update={"fail_reason": "file_format_check_failed", "detail": f"codec {check.codec}"})
    if check.duration_sec is None or check.duration_sec > max_duration_sec:
        return check.model_copy(
            update={"fail_reason": "duration_check_failed", "detail": f"{check.duration_sec}s > {max_duration_sec}s"}
        )
    if check.fps is None or not MIN_FPS <= check.fps <= MAX_FPS:
        return check.model_copy(update={"fail_reason": "frame_rate_check_failed", "detail": f"{check.fps} fps"})
    if not all(side is not None and MIN_SIDE <= side <= MAX_SIDE for side in (check.width, check.height)):
        return check.model_copy(
            update={"fail_reason": "picture_size_check_failed", "detail": f"{check.width}x{check.height}"}
        )
    return check


def check_photo(info: dict[str, Any] | None, size_bytes: int) -> MediaCheck:
    """Apply TikTok's photo rules (JPEG/WebP, 20 MB, up to 1080p) to ffprobe output."""
    if size_bytes > MAX_PHOTO_BYTES:
        return MediaCheck(fail_reason="file_format_check_failed", detail=f"{size_bytes} bytes > 20 MB")
    streams = (info or {}).get("streams", [])
    image = streams[0] if streams else None
    if image is None or image.get("codec_name") not in PHOTO_CODECS:
        codec = image.get("codec_name") if image else None
        return MediaCheck(fail_reason="file_format_check_failed", detail=f"not JPEG/WebP ({codec})")
    width, height = image.get("width", 0), image.get("height", 0)
    check = MediaCheck(codec=image["codec_name"], width=width, height=height)
    if min(width, height) > MAX_PHOTO_SHORT_SIDE or max(width, height) > MAX_PHOTO_LONG_SIDE:
        return check.model_copy(update={"fail_reason": "picture_size_check_failed", "detail": f"{width}x{height}"})
    return check


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def check_video_file(path: Path, max_duration_sec: int) -> MediaCheck:
    return check_video(probe(path), max_duration_sec).model_copy(update={"sha256": _sha256(path)})


def check_photo_file(path: Path) -> MediaCheck:
    return check_photo(probe(path), path.stat().st_size).model_copy(update={"sha256": _sha256(path)})
