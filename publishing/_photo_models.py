"""What a caller asks for to post photos: the publish-photos flow's parameter.

A photo post is a carousel of 1 to 35 images that TikTok fetches itself from URLs under a prefix
verified for the app (content/init with `media_type=PHOTO`; there is no upload of photos). Each image
may be an s3:// object, an https:// URL or a path readable by the worker; the flow prepares each one
(photos.prepare_photo) and stages it under the verified prefix (publishing/pull.py).

The text rules are the video request's (publishing/_models.py): privacy chosen explicitly for direct
posts (TikTok forbids a default), branded content never SELF_ONLY, no control characters or
bidirectional overrides, and TikTok's lengths in UTF-16 code units: title 90, description 4000.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ledger import PublishMode
from photos import MAX_PHOTOS, MIN_PHOTOS
from publishing._models import AccountName, checked_text, commercial_label, unique_accounts
from publishing._text import TextKind
from tiktok import MAX_PHOTO_DESCRIPTION_UTF16, MAX_PHOTO_TITLE_UTF16, PostMode, PrivacyLevel, utf16_length


class PhotoPostRequest(BaseModel):
    """Post 1 to 35 photos as one TikTok photo post to one or more connected accounts."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False)

    images: list[str] = Field(
        description="The photos in order, 1 to 35: s3://bucket/key, https:// URLs or paths readable by the worker",
        min_length=MIN_PHOTOS, max_length=MAX_PHOTOS,
    )
    accounts: list[AccountName] = Field(
        description="Names of connected accounts (tiktok-pipeline accounts list)", min_length=1
    )
    title: str = Field("", description=f"Title ({MAX_PHOTO_TITLE_UTF16} UTF-16 units max)")
    description: str = Field("", description=f"Description with #hashtags and @mentions "
                                             f"({MAX_PHOTO_DESCRIPTION_UTF16} UTF-16 units max)")
    privacy_level: PrivacyLevel | None = Field(
        None,
        description="Who can see the post; must be one of the creator's privacy options. Required for direct "
        "posts (TikTok forbids a default); branded content cannot be SELF_ONLY.",
    )
    mode: PublishMode = Field(PublishMode.direct, description="direct, or inbox (the creator finishes the post in TikTok)")
    photo_cover_index: int = Field(0, ge=0, description="Which photo is the cover (0 = the first)")
    auto_add_music: bool = Field(False, description="Let TikTok add recommended music")
    disable_comment: bool = False
    brand_content_toggle: bool = Field(False, description="Branded content (paid partnership)")
    brand_organic_toggle: bool = Field(False, description="Your own brand (promotional content)")
    idempotency_key: str | None = Field(
        None, max_length=200,
        description="Same key = same post. Default: the photos' content + account + title + description + mode",
    )

    @field_validator("accounts")
    @classmethod
    def _unique_accounts(cls, value: list[str]) -> list[str]:
        return unique_accounts(value)

    @field_validator("images")
    @classmethod
    def _image_locations(cls, value: list[str]) -> list[str]:
        return [checked_text(f"images[{i}]", image, TextKind.location) for i, image in enumerate(value)]

    @field_validator("idempotency_key")
    @classmethod
    def _key_text(cls, value: str | None) -> str | None:
        return None if value is None else checked_text("idempotency_key", value, TextKind.line)

    @field_validator("title", "description")
    @classmethod
    def _text_fits(cls, value: str, info: ValidationInfo) -> str:
        field = str(info.field_name)
        checked_text(field, value, TextKind.line if field == "title" else TextKind.text)
        limit = MAX_PHOTO_TITLE_UTF16 if field == "title" else MAX_PHOTO_DESCRIPTION_UTF16
        if (length := utf16_length(value)) > limit:
            raise ValueError(f"{field} is {length} UTF-16 code units; TikTok accepts at most {limit}")
        return value

    @model_validator(mode="after")
    def _guidelines(self) -> PhotoPostRequest:
        if self.mode is PublishMode.hold:
            raise ValueError("photo posts are direct or inbox: hold drafts are for videos")
        if self.mode is PublishMode.direct and self.privacy_level is None:
            raise ValueError("privacy_level is required for direct posts (TikTok forbids a default)")
        if self.brand_content_toggle and self.privacy_level is PrivacyLevel.SELF_ONLY:
            raise ValueError("branded content cannot be posted as SELF_ONLY (TikTok's content-sharing rules)")
        if self.photo_cover_index >= len(self.images):
            raise ValueError(f"photo_cover_index is {self.photo_cover_index} but there are {len(self.images)} "
                             f"photo(s): the cover is one of them, counted from 0")
        return self

    @property
    def sources(self) -> list[str]:
        """Where the media comes from (the photos, in order)."""
        return list(self.images)

    @property
    def post_mode(self) -> PostMode:
        return PostMode.MEDIA_UPLOAD if self.mode is PublishMode.inbox else PostMode.DIRECT_POST

    @property
    def caption(self) -> str:
        """What the ledger shows as the post's caption, and the default key is made of."""
        return "\n".join(part for part in (self.title, self.description) if part)

    @property
    def commercial_label(self) -> str | None:
        """The label TikTok shows for the disclosure chosen (content-sharing guidelines)."""
        return commercial_label(self.brand_content_toggle, self.brand_organic_toggle)
