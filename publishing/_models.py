"""What a caller asks for and what it gets back: the publish-video flow's parameter and result.

`PublishRequest` is one pydantic model so the Prefect UI renders it as a form, the CLI and the
S3 listener build it, and other pipelines pass it to `publish_to_tiktok`. It follows TikTok's
content-sharing guidelines: privacy is chosen explicitly (no default), interaction toggles default
to allowed-off-by-user = False, commercial disclosure is off unless asked for.

Its text reaches TikTok and the ledger as it was given, so characters that could not be stored or
shown truthfully are refused with the field, the character (U+XXXX) and its position
(publishing/_text.py): control characters and bidirectional overrides in the caption, the account
names and the idempotency key, NUL in the source and move_prefix. Account names follow the ledger's
rule (publishing/_names.py).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ledger import PublishMode
from ledger import PostState
from tiktok import MAX_CAPTION_UTF16, PrivacyLevel, utf16_length
from transcode import FitMode, OverLength

from publishing._form import add_request_rules
from publishing._names import AccountNameInvalid, check_account_name
from publishing._text import TextKind, TextRefused, check_text


class CapPolicy(StrEnum):
    defer = "defer"  # schedule the account's post for when its next daily slot frees
    fail = "fail"  # fail that account's post at once


class SourceAction(StrEnum):
    keep = "keep"
    delete = "delete"
    move = "move"


def checked_text(field: str, value: str, kind: TextKind) -> str:
    """`check_text` for a validator: a refusal becomes a pydantic error of type `text_refused`.

    Its message names the character (U+XXXX) and its position, its location the field, and its
    `ctx` holds field, character, position and count (the text itself is never repeated).
    """
    try:
        return check_text(field, value, kind)
    except TextRefused as exc:
        raise PydanticCustomError("text_refused", "{reason}", exc.context()) from None


def _account_name(value: str) -> str:
    """One name of `accounts`, stripped; blank ones are left for the list's validator to drop."""
    name = value.strip()
    if not name:
        return name
    try:
        return check_account_name(name)
    except AccountNameInvalid as exc:
        raise PydanticCustomError("account_name_invalid", "{reason}", {"reason": str(exc)}) from None


AccountName = Annotated[str, AfterValidator(_account_name)]


def commercial_label(brand_content: bool, brand_organic: bool) -> str | None:
    """The label TikTok shows on a post for its commercial-content disclosure (content-sharing guidelines)."""
    if brand_content:
        return "Paid partnership"
    if brand_organic:
        return "Promotional content"
    return None


def unique_accounts(value: list[str]) -> list[str]:
    """A request's `accounts`: blank names dropped, at least one left, none twice."""
    cleaned = [a.strip() for a in value if a.strip()]
    if not cleaned:
        raise ValueError("at least one account name is required")
    if len(set(cleaned)) != len(cleaned):
        raise ValueError(f"an account is listed twice: {cleaned}")
    return cleaned

#: States in which a post has ended well for the caller.
SUCCESS_STATES = frozenset({PostState.published, PostState.sent_to_inbox})


class PublishRequest(BaseModel):
    """Publish one video to one or more connected TikTok accounts."""

    # The JSON Schema (the Prefect form) carries the rules below that it can express, so a run the
    # validators would refuse is refused when it is created (publishing/_form.py).
    model_config = ConfigDict(
        extra="forbid",
        use_enum_values=False,
        json_schema_extra=lambda schema: add_request_rules(schema, max_caption_length=MAX_CAPTION_UTF16),
    )

    source: str = Field(
        description="s3://bucket/key, an https:// URL, or a path readable by the worker",
        min_length=1,
    )
    accounts: list[AccountName] = Field(
        description="Names of connected accounts (tiktok-pipeline accounts list)", min_length=1
    )
    caption: str = Field("", description="Caption with #hashtags and @mentions (2200 UTF-16 units max; newlines and tabs, "
                                        "but no other control characters or bidirectional overrides)")
    privacy_level: PrivacyLevel | None = Field(
        None,
        description="Who can see the post; must be one of the creator's privacy options. "
        "Required for direct and held posts (TikTok forbids a default); branded content cannot be SELF_ONLY.",
    )
    mode: PublishMode = Field(PublishMode.direct, description="direct, inbox (draft in TikTok) or hold")
    review: bool = Field(False, description="Pause for a person to review each account's post in the Prefect UI "
                                            "(TikTok's composer: privacy, interactions, disclosure, consent) before "
                                            "anything is sent; a held post is reviewed when it is released")
    disable_comment: bool = False
    disable_duet: bool = False
    disable_stitch: bool = False
    brand_content_toggle: bool = Field(False, description="Branded content (paid partnership)")
    brand_organic_toggle: bool = Field(False, description="Your own brand (promotional content)")
    is_aigc: bool = Field(False, description="Label the video as AI-generated content")
    cover_timestamp_ms: int | None = Field(None, ge=0, description="Frame used as the cover")
    fit: FitMode = Field(FitMode.blur, description="How non-9:16 video is fitted to 1080x1920")
    on_too_long: OverLength = Field(
        OverLength.trim, description="trim to the creator's maximum duration, or reject the video"
    )
    idempotency_key: str | None = Field(
        None,
        max_length=200,
        description="Same key = same post. Default: content hash + account + caption + mode",
    )
    schedule_at: datetime | None = Field(
        None, description="Publish at this time: the run is scheduled in Prefect (TikTok has no scheduled posts)"
    )
    cap_policy: CapPolicy = Field(
        CapPolicy.defer, description="When a daily cap is used up: defer to the next free slot, or fail"
    )
    source_action: SourceAction = Field(SourceAction.keep, description="What to do with an S3 source after success")
    move_prefix: str = Field("published/", description="Destination prefix for source_action=move")

    @field_validator("accounts")
    @classmethod
    def _unique_accounts(cls, value: list[str]) -> list[str]:
        return unique_accounts(value)

    @field_validator("source", "move_prefix")
    @classmethod
    def _location_text(cls, value: str, info: ValidationInfo) -> str:
        return checked_text(str(info.field_name), value, TextKind.location)

    @field_validator("idempotency_key")
    @classmethod
    def _key_text(cls, value: str | None) -> str | None:
        return None if value is None else checked_text("idempotency_key", value, TextKind.line)

    @field_validator("caption")
    @classmethod
    def _caption_fits(cls, value: str) -> str:
        checked_text("caption", value, TextKind.text)  # first: a lone surrogate has no UTF-16 length
        if (length := utf16_length(value)) > MAX_CAPTION_UTF16:
            raise ValueError(f"caption is {length} UTF-16 code units; TikTok accepts at most {MAX_CAPTION_UTF16}")
        return value

    @model_validator(mode="after")
    def _guidelines(self) -> PublishRequest:
        if self.mode is not PublishMode.inbox and self.privacy_level is None and not self.review:
            raise ValueError("privacy_level is required for direct and held posts (TikTok forbids a default)")
        if self.brand_content_toggle and self.privacy_level is PrivacyLevel.SELF_ONLY:
            raise ValueError("branded content cannot be posted as SELF_ONLY (TikTok's content-sharing rules)")
        return self

    @property
    def sources(self) -> list[str]:
        """Where the media comes from (one video)."""
        return [self.source]

    @property
    def commercial_label(self) -> str | None:
        """The label TikTok shows for the disclosure chosen (content-sharing guidelines)."""
        return commercial_label(self.brand_content_toggle, self.brand_organic_toggle)


class StepTiming(BaseModel):
    step: str
    seconds: float


class PublishResult(BaseModel):
    """The outcome for one account."""

    account: str
    state: PostState
    mode: PublishMode | None = Field(None, description="The post's mode (None when no post was recorded)")
    post_id: int | None = Field(None, description="Ledger id of the post")
    idempotency_key: str | None = None
    publish_id: str | None = None
    nickname: str | None = None
    privacy_level: str | None = None
    share_url: str | None = None
    post_ids: list[int] = Field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    reused: bool = Field(False, description="True when an earlier run's result was returned (idempotency)")
    scheduled_for: datetime | None = Field(None, description="When a scheduled or deferred run will post it")
    flow_run_id: str | None = Field(None, description="The Prefect flow run that will post it (scheduled/deferred)")
    timings: list[StepTiming] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state in SUCCESS_STATES

    @property
    def held(self) -> bool:
        """A hold draft: media prepared and recorded, nothing sent to TikTok until it is released."""
        return self.mode is PublishMode.hold and self.state is PostState.media_ready

    @property
    def pending(self) -> bool:
        """Not posted yet, by design: a held draft, or a post scheduled or deferred to later."""
        return self.held or (self.scheduled_for is not None and self.state in (PostState.queued, PostState.media_ready))
