"""Posts: what init requests must look like, the chunk plan rule, and how a post's status evolves.

Status is a pure function of the post record and the sandbox clock (`post_status`), so delays need no
timers: a status fetch evaluates it lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sandbox._config import SandboxConfig
from sandbox._media import MediaCheck

# TikTok's figures, kept apart from the client's on purpose (an emulator sharing the client's
# constants would hide the client's mistakes). The docs say 5 MB, 64 MB and 4 GB without saying MB
# or MiB: the sandbox refuses whatever either reading refuses.
MIN_CHUNK_SIZE = 5 * 1024 * 1024
MAX_CHUNK_SIZE = 64_000_000
MAX_CHUNK_COUNT = 1000
MAX_VIDEO_SIZE = 4_000_000_000
MAX_VIDEO_TITLE = 2200
MAX_PHOTO_TITLE = 90
MAX_PHOTO_DESCRIPTION = 4000
MAX_PHOTOS = 35
UPLOAD_CONTENT_TYPES = ("video/mp4", "video/quicktime", "video/webm")

PrivacyLevel = Literal["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"]


def utf16_length(text: str) -> int:
    """TikTok counts caption length in UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def _bounded_text(limit: int):  # type: ignore[no-untyped-def]
    def check(value: str) -> str:
        if utf16_length(value) > limit:
            raise ValueError(f"longer than {limit} UTF-16 code units ({utf16_length(value)})")
        return value

    return check


class _Strict(BaseModel):
    # Strict: TikTok does not turn "true" into true or "5" into 5.
    model_config = ConfigDict(strict=True)


class VideoPostInfo(_Strict):
    title: str = ""
    privacy_level: PrivacyLevel
    disable_duet: bool = False
    disable_stitch: bool = False
    disable_comment: bool = False
    video_cover_timestamp_ms: int = Field(0, ge=0)
    brand_content_toggle: bool = False
    brand_organic_toggle: bool = False
    is_aigc: bool = False

    _title = field_validator("title")(_bounded_text(MAX_VIDEO_TITLE))


class FileUploadSource(_Strict):
    source: Literal["FILE_UPLOAD"]
    video_size: int
    chunk_size: int
    total_chunk_count: int


class PullFromUrlSource(_Strict):
    source: Literal["PULL_FROM_URL"]
    video_url: str = Field(min_length=1)


VideoSource = Annotated[FileUploadSource | PullFromUrlSource, Field(discriminator="source")]


class VideoInitRequest(_Strict):
    post_info: VideoPostInfo
    source_info: VideoSource


class InboxInitRequest(_Strict):
    source_info: VideoSource


class PhotoPostInfo(_Strict):
    title: str = ""
    description: str = ""
    privacy_level: PrivacyLevel | None = None
    disable_comment: bool = False
    auto_add_music: bool = False
    brand_content_toggle: bool = False
    brand_organic_toggle: bool = False

    _title = field_validator("title")(_bounded_text(MAX_PHOTO_TITLE))
    _description = field_validator("description")(_bounded_text(MAX_PHOTO_DESCRIPTION))


class PhotoSource(_Strict):
    source: Literal["PULL_FROM_URL"]
    photo_images: list[str] = Field(min_length=1, max_length=MAX_PHOTOS)
    photo_cover_index: int = Field(0, ge=0)


class PhotoInitRequest(_Strict):
    media_type: Literal["PHOTO"]
    post_mode: Literal["DIRECT_POST", "MEDIA_UPLOAD"]
    post_info: PhotoPostInfo = PhotoPostInfo()
    source_info: PhotoSource


class PublishIdRequest(_Strict):
    publish_id: str = Field(min_length=1)


def chunk_plan_problem(video_size: int, chunk_size: int, total_chunk_count: int) -> str | None:
    """Why a declared FILE_UPLOAD chunk plan is invalid, or None when TikTok accepts it.

    The final chunk is at most chunk_size + (chunk_size - 1) bytes because the count is the floor,
    so TikTok's 128 MB final-chunk bound follows from the 64,000,000 chunk bound.
    """
    if not 1 <= video_size <= MAX_VIDEO_SIZE:
        return f"video_size must be 1..{MAX_VIDEO_SIZE} bytes, got {video_size}"
    if video_size < MIN_CHUNK_SIZE:
        if chunk_size != video_size or total_chunk_count != 1:
            return "a video under 5 MiB is sent whole: chunk_size = video_size and total_chunk_count = 1"
        return None
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        return f"chunk_size must be {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE} bytes, got {chunk_size}"
    expected = video_size // chunk_size
    if not 1 <= expected <= MAX_CHUNK_COUNT:
        return f"video_size / chunk_size gives {expected} chunks; allowed 1..{MAX_CHUNK_COUNT}"
    if total_chunk_count != expected:
        return f"total_chunk_count must be floor(video_size / chunk_size) = {expected}, got {total_chunk_count}"
    return None


@dataclass
class Post:
    publish_id: str
    open_id: str
    media_type: Literal["VIDEO", "PHOTO"]
    #: direct: published by the app; inbox: lands in the creator's inbox as a draft.
    mode: Literal["direct", "inbox"]
    source: Literal["FILE_UPLOAD", "PULL_FROM_URL"]
    post_info: dict[str, object] | None
    #: What TikTok actually applies (unaudited apps force SELF_ONLY); None for inbox drafts.
    privacy_level: str | None
    created_at: float
    post_id: int
    max_duration_sec: int
    video_size: int | None = None
    chunk_size: int | None = None
    total_chunk_count: int | None = None
    received_bytes: int = 0
    upload_id: str | None = None
    upload_token: str | None = None
    upload_expires_at: float | None = None
    file_path: Path | None = None
    media_urls: list[str] = field(default_factory=list)
    #: Photo posts: which of media_urls is the cover.
    photo_cover_index: int | None = None
    downloaded_bytes: int = 0
    #: When every byte was in (last chunk or finished pull); processing delays count from here.
    transferred_at: float | None = None
    check: MediaCheck | None = None
    cancelled_at: float | None = None
    user_published_at: float | None = None
    #: Inspection: TikTok took the public post down again (publicaly_available_post_id empties).
    taken_down_at: float | None = None

    @property
    def upload_complete(self) -> bool:
        return self.video_size is not None and self.received_bytes == self.video_size

    @property
    def known_failed(self) -> bool:
        return self.cancelled_at is not None or (self.check is not None and self.check.fail_reason is not None)

    def chunk_end(self, first: int) -> int:
        """Last byte of the chunk starting at `first` (a chunk boundary)."""
        assert self.video_size is not None and self.chunk_size is not None and self.total_chunk_count is not None
        index = first // self.chunk_size
        if index >= self.total_chunk_count - 1:
            return self.video_size - 1
        return (index + 1) * self.chunk_size - 1


def post_status(post: Post, now: float, config: SandboxConfig) -> dict[str, object]:
    """The `data` of status/fetch for `post` at time `now`."""
    processing = "PROCESSING_UPLOAD" if post.source == "FILE_UPLOAD" else "PROCESSING_DOWNLOAD"
    data: dict[str, object] = {"status": processing, "publicaly_available_post_id": []}
    if post.source == "FILE_UPLOAD":
        data["uploaded_bytes"] = post.received_bytes
    else:
        data["downloaded_bytes"] = post.downloaded_bytes
    if post.cancelled_at is not None:
        return {**data, "status": "FAILED", "fail_reason": "publish_cancelled"}
    done_at = None if post.transferred_at is None else post.transferred_at + config.processing_delay
    if done_at is None or post.check is None or now < done_at:
        return data
    if post.check.fail_reason is not None:
        return {**data, "status": "FAILED", "fail_reason": post.check.fail_reason}
    if post.mode == "inbox" and post.user_published_at is None:
        return {**data, "status": "SEND_TO_USER_INBOX"}
    published_at = post.user_published_at if post.mode == "inbox" else done_at
    assert published_at is not None
    public = post.privacy_level == "PUBLIC_TO_EVERYONE" and now >= published_at + config.moderation_delay
    public = public and post.taken_down_at is None
    return {**data, "status": "PUBLISH_COMPLETE", "publicaly_available_post_id": [post.post_id] if public else []}
