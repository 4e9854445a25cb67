"""Request and response models, with TikTok's own field names (spelling mistakes included)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from tiktok._chunks import ChunkPlan
from tiktok._errors import CaptionTooLong, InvalidInput

MAX_CAPTION_UTF16 = 2200
#: The longest video to assume when the creator's own maximum is unknown (an inbox-only app reads no
#: creator_info): 10 minutes, what the API documents. A creator's `max_video_post_duration_sec` is the
#: real limit, lower or higher.
MAX_VIDEO_DURATION = 600.0
#: The highest `max_video_post_duration_sec` creator_info answers (60 minutes): a creator may post up to that.
MAX_CREATOR_VIDEO_DURATION = 3600.0
MAX_PHOTO_TITLE_UTF16 = 90
MAX_PHOTO_DESCRIPTION_UTF16 = 4000
MAX_PHOTO_IMAGES = 35


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, TikTok's unit for caption limits (an emoji outside the BMP is 2)."""
    return len(text.encode("utf-16-le")) // 2


def _check_length(field: str, text: str, limit: int) -> str:
    length = utf16_length(text)
    if length > limit:
        raise CaptionTooLong(
            f"{field} is {length} UTF-16 code units long; TikTok accepts at most {limit}",
            detail={"field": field, "utf16_length": length, "limit": limit},
        )
    return text


class PrivacyLevel(StrEnum):
    PUBLIC_TO_EVERYONE = "PUBLIC_TO_EVERYONE"
    MUTUAL_FOLLOW_FRIENDS = "MUTUAL_FOLLOW_FRIENDS"
    FOLLOWER_OF_CREATOR = "FOLLOWER_OF_CREATOR"
    SELF_ONLY = "SELF_ONLY"


class PostMode(StrEnum):
    DIRECT_POST = "DIRECT_POST"
    MEDIA_UPLOAD = "MEDIA_UPLOAD"


class PublishStatusValue(StrEnum):
    PROCESSING_UPLOAD = "PROCESSING_UPLOAD"
    PROCESSING_DOWNLOAD = "PROCESSING_DOWNLOAD"
    SEND_TO_USER_INBOX = "SEND_TO_USER_INBOX"
    PUBLISH_COMPLETE = "PUBLISH_COMPLETE"
    FAILED = "FAILED"


TERMINAL_STATUSES = frozenset(
    {PublishStatusValue.PUBLISH_COMPLETE, PublishStatusValue.SEND_TO_USER_INBOX, PublishStatusValue.FAILED}
)


class StrictModel(BaseModel):
    """Input we build requests from: unknown fields refused, bad values raise `InvalidInput`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or type(self).__name__}: {e['msg']}" for e in exc.errors()
            )
            raise InvalidInput(
                f"invalid {type(self).__name__}: {problems}",
                detail=exc.errors(include_url=False, include_context=False, include_input=False),
            ) from exc



class RequestModel(StrictModel):
    """A request body part."""

    def body(self) -> dict[str, Any]:
        """The JSON TikTok expects: unset optional fields are left out."""
        return self.model_dump(mode="json", exclude_none=True)


class ResponseModel(BaseModel):
    """An answer's `data`: tolerant of fields TikTok adds later."""

    model_config = ConfigDict(extra="allow", frozen=True)


#: Hosts a pull URL may name over plain http: only this machine (a local TikTok stand-in fetching from
#: a local S3, as in the tests); TikTok itself fetches https only.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _require_https(url: str, what: str) -> str:
    parts = urlsplit(url)
    loopback = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    if (parts.scheme != "https" and not loopback) or not parts.netloc:
        raise InvalidInput(f"{what} must be an https URL, got {url!r}", detail={"url": url})
    return url


class PostInfo(RequestModel):
    """`post_info` of video/init (direct post). `privacy_level` has no default on purpose."""

    title: str = ""
    privacy_level: PrivacyLevel
    disable_duet: bool = False
    disable_stitch: bool = False
    disable_comment: bool = False
    video_cover_timestamp_ms: int | None = Field(None, ge=0)
    brand_content_toggle: bool = False
    brand_organic_toggle: bool = False
    is_aigc: bool = False

    @field_validator("title")
    @classmethod
    def _title_fits(cls, value: str) -> str:
        return _check_length("title", value, MAX_CAPTION_UTF16)

    @model_validator(mode="after")
    def _branded_content_is_visible(self) -> PostInfo:
        # TikTok's content-sharing guidelines: branded content cannot be private.
        if self.brand_content_toggle and self.privacy_level is PrivacyLevel.SELF_ONLY:
            raise ValueError("branded content (brand_content_toggle) cannot be posted as SELF_ONLY")
        return self


class SourceInfo(RequestModel):
    """`source_info` of video/init and inbox/video/init."""

    source: Literal["FILE_UPLOAD", "PULL_FROM_URL"]
    video_size: int | None = None
    chunk_size: int | None = None
    total_chunk_count: int | None = None
    video_url: str | None = None

    @classmethod
    def file_upload(cls, plan: ChunkPlan) -> SourceInfo:
        return cls(
            source="FILE_UPLOAD",
            video_size=plan.video_size,
            chunk_size=plan.chunk_size,
            total_chunk_count=plan.total_chunk_count,
        )

    @classmethod
    def pull_from_url(cls, video_url: str) -> SourceInfo:
        return cls(source="PULL_FROM_URL", video_url=video_url)

    @model_validator(mode="after")
    def _fields_match_source(self) -> SourceInfo:
        sizes = (self.video_size, self.chunk_size, self.total_chunk_count)
        if self.source == "FILE_UPLOAD":
            if None in sizes or self.video_url is not None:
                raise ValueError("FILE_UPLOAD needs video_size, chunk_size, total_chunk_count and no video_url")
        else:
            if self.video_url is None or sizes != (None, None, None):
                raise ValueError("PULL_FROM_URL needs video_url and no sizes")
            _require_https(self.video_url, "video_url")
        return self


class PhotoPostInfo(RequestModel):
    """`post_info` of content/init for photo posts."""

    title: str = ""
    description: str = ""
    # Required for DIRECT_POST (checked when the request is built); MEDIA_UPLOAD lets the user choose.
    privacy_level: PrivacyLevel | None = None
    disable_comment: bool = False
    auto_add_music: bool = False
    brand_content_toggle: bool = False
    brand_organic_toggle: bool = False

    @field_validator("title")
    @classmethod
    def _title_fits(cls, value: str) -> str:
        return _check_length("photo title", value, MAX_PHOTO_TITLE_UTF16)

    @field_validator("description")
    @classmethod
    def _description_fits(cls, value: str) -> str:
        return _check_length("photo description", value, MAX_PHOTO_DESCRIPTION_UTF16)


class PhotoSourceInfo(RequestModel):
    """`source_info` of content/init: photos are always pulled from verified URLs."""

    source: Literal["PULL_FROM_URL"] = "PULL_FROM_URL"
    photo_images: list[str] = Field(min_length=1, max_length=MAX_PHOTO_IMAGES)
    photo_cover_index: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _cover_exists(self) -> PhotoSourceInfo:
        for url in self.photo_images:
            _require_https(url, "photo_images entry")
        if self.photo_cover_index >= len(self.photo_images):
            raise ValueError(f"photo_cover_index {self.photo_cover_index} but only {len(self.photo_images)} images")
        return self


class CreatorInfo(ResponseModel):
    creator_avatar_url: str | None = None
    creator_username: str | None = None
    creator_nickname: str | None = None
    # Plain strings: a value TikTok adds later must not break parsing (PrivacyLevel compares equal).
    privacy_level_options: list[str] = []
    comment_disabled: bool = False
    duet_disabled: bool = False
    stitch_disabled: bool = False
    max_video_post_duration_sec: int | None = None


class InitResult(ResponseModel):
    publish_id: str
    upload_url: str | None = None  # FILE_UPLOAD only; valid for one hour


class PublishStatus(ResponseModel):
    status: str
    fail_reason: str | None = None
    # (sic) TikTok's spelling. Filled late and only for public posts: may stay empty.
    publicaly_available_post_id: list[int] = []
    uploaded_bytes: int | None = None
    downloaded_bytes: int | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class UserInfo(ResponseModel):
    open_id: str | None = None
    union_id: str | None = None
    avatar_url: str | None = None
    display_name: str | None = None
    username: str | None = None


class TokenSet(BaseModel):
    """One token answer, with absolute UTC expiries computed from that answer's lifetimes."""

    model_config = ConfigDict(frozen=True)

    access_token: SecretStr
    refresh_token: SecretStr
    open_id: str
    scope: str
    token_type: str = "Bearer"
    expires_in: int
    refresh_expires_in: int
    obtained_at: datetime
    expires_at: datetime
    refresh_expires_at: datetime
    #: True when a refresh answered with a refresh token different from the one sent: store it.
    refresh_token_rotated: bool = False

    @property
    def scopes(self) -> list[str]:
        return [s.strip() for s in self.scope.split(",") if s.strip()]


class AuthorizationRequest(BaseModel):
    """Where to send the user, plus what must be kept until the callback (state, PKCE verifier)."""

    model_config = ConfigDict(frozen=True)

    url: str
    state: str
    code_verifier: str | None = None  # desktop apps only


class OAuthCallback(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    scopes: list[str]
    state: str
