"""What the sandbox emulates: the app registration, its test creators and TikTok's limits.

Everything is a plain pydantic model so tests build configs in code, the CLI builds one from its
options, and a JSON/YAML file can describe a richer one (`load_config`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sandbox._errors import SandboxError

#: Credentials of the default sandbox app (public on purpose: they only open the local emulator).
DEFAULT_CLIENT_KEY = "sbx_client_key"
DEFAULT_CLIENT_SECRET = "sbx_client_secret"

#: Every scope the emulator knows; the app may be approved for a subset (`SandboxConfig.scopes`).
KNOWN_SCOPES = ("user.info.basic", "user.info.profile", "user.info.stats", "video.publish", "video.upload")

#: Requests per rolling minute and per access token (TikTok's rate-limits page). `cancel` has no
#: published limit, so it has none here.
DEFAULT_RATE_LIMITS: dict[str, int] = {
    "creator_info": 20,
    "video_init": 6,
    "inbox_init": 6,
    "content_init": 6,
    "status_fetch": 30,
    "user_info": 600,
}

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def https_or_loopback(url: str) -> bool:
    """Whether `url` is https, or http to a loopback host (what tests serve)."""
    parts = urlsplit(url)
    loopback_http = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    return (parts.scheme == "https" or loopback_http) and bool(parts.hostname)


class SandboxCreator(BaseModel):
    """One test user who can authorize the app and post."""

    model_config = ConfigDict(extra="forbid")

    open_id: str = Field(min_length=1, max_length=64)
    union_id: str = ""
    username: str = Field(min_length=1)
    nickname: str = ""
    #: None: the sandbox serves a picture of its own, `<sandbox>/_sandbox/avatars/<username>.svg`
    #: (a browser showing creator_info, e.g. a review form, can load it; no CDN is reachable here).
    avatar_url: str | None = None
    #: Private accounts get the private privacy options and always have duet/stitch disabled.
    private_account: bool = False
    comment_disabled: bool = False
    duet_disabled: bool = False
    stitch_disabled: bool = False
    max_video_post_duration_sec: int = Field(180, ge=1)
    #: Direct posts allowed per rolling 24 h (TikTok: ~15, varies per creator).
    daily_post_cap: int = Field(15, ge=0)
    #: creator_info answers spam_risk_user_banned_from_posting; every init is refused.
    banned_from_posting: bool = False
    #: The authorize page redirects with error=access_denied instead of a code.
    denies_authorization: bool = False

    @property
    def privacy_level_options(self) -> list[str]:
        if self.private_account:
            return ["FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
        return ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]


def default_creators() -> list[SandboxCreator]:
    return [
        SandboxCreator(
            open_id="sbx-open-id-studio-main",
            union_id="sbx-union-id-studio-main",
            username="studio_main",
            nickname="Studio Main",
            max_video_post_duration_sec=600,
        ),
        SandboxCreator(
            open_id="sbx-open-id-private-creator",
            union_id="sbx-union-id-private-creator",
            username="private_creator",
            nickname="Private Creator",
            private_account=True,
            duet_disabled=True,
            stitch_disabled=True,
            max_video_post_duration_sec=180,
        ),
    ]


class SandboxConfig(BaseModel):
    """The emulated app and TikTok's behaviour towards it. All durations are seconds."""

    model_config = ConfigDict(extra="forbid")

    client_key: str = DEFAULT_CLIENT_KEY
    client_secret: str = DEFAULT_CLIENT_SECRET
    #: desktop: PKCE (hex S256) required, any http(s) localhost/127.0.0.1 redirect; web: redirect_uris only.
    app_type: Literal["desktop", "web"] = "desktop"
    redirect_uris: list[str] = Field(default_factory=list)
    #: Scopes the app is approved for; asking for others at authorize gives invalid_scope.
    scopes: list[str] = Field(default_factory=lambda: list(KNOWN_SCOPES))
    #: PULL_FROM_URL / photo URLs must start with one of these (https; http only on loopback, for tests).
    verified_url_prefixes: list[str] = Field(default_factory=list)
    #: Default: the public "studio_main" (10 min videos) and the private "private_creator" (3 min).
    creators: list[SandboxCreator] = Field(default_factory=lambda: default_creators(), min_length=1)

    access_token_ttl: float = Field(86_400, gt=0)
    refresh_token_ttl: float = Field(31_536_000, gt=0)
    authorization_code_ttl: float = Field(600, gt=0)
    upload_url_ttl: float = Field(3_600, gt=0)
    #: After the last byte arrives (or the pull finishes) until the final status.
    processing_delay: float = Field(1.0, ge=0)
    #: After PUBLISH_COMPLETE until a public post gets its publicaly_available_post_id.
    moderation_delay: float = Field(60.0, ge=0)

    rate_limits: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    #: Pending (not yet posted by the user) inbox shares per creator per rolling 24 h.
    inbox_pending_cap: int = Field(5, ge=0)
    #: Distinct creators who may post through the app per rolling 24 h (None: no cap).
    active_user_cap: int | None = Field(None, ge=0)
    #: Unaudited app: posts forced to SELF_ONLY, public accounts refused, at most 5 posting users per 24 h.
    unaudited: bool = False
    #: A PUT of a chunk the host already holds: "refuse" answers 416 with its progress; "accept" takes an
    #: identical re-sent chunk idempotently and answers 206 with all it holds (as a host that treats a
    #: resend after a lost answer as a success does). Clients must resume from the reported byte either way.
    resent_chunks: Literal["refuse", "accept"] = "refuse"
    #: Host put in upload_url; None uses the host the init request was sent to.
    public_base_url: str | None = None

    #: The callback URL registered for the app (https; http only on loopback, for tests). None: no
    #: webhooks are sent (as TikTok sends none to an app without one). Also `PUT /_sandbox/webhook`.
    webhook_url: str | None = None
    #: Wait before the first retry of a delivery that was not answered 200; it doubles each retry.
    #: TikTok retries with exponential backoff for up to 72 h; the sandbox's short schedule lets tests
    #: see retries, and a delivery still failing after `webhook_max_attempts` attempts is given up.
    webhook_retry_delay: float = Field(0.2, gt=0)
    webhook_max_attempts: int = Field(5, ge=1)
    #: How long one delivery waits for the receiver's answer (then: an error, and a retry).
    webhook_timeout: float = Field(5.0, gt=0)

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(KNOWN_SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes {unknown}; known: {list(KNOWN_SCOPES)}")
        return value

    @field_validator("rate_limits")
    @classmethod
    def _known_endpoints(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(DEFAULT_RATE_LIMITS))
        if unknown:
            raise ValueError(f"no rate limit applies to {unknown}; endpoints: {list(DEFAULT_RATE_LIMITS)}")
        return value

    @field_validator("verified_url_prefixes")
    @classmethod
    def _https_or_loopback(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not https_or_loopback(prefix):
                raise ValueError(f"verified URL prefix {prefix!r} must be https (http only on loopback)")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_https_or_loopback(cls, value: str | None) -> str | None:
        if value is not None and not https_or_loopback(value):
            raise ValueError(f"webhook_url {value!r} must be https (http only on loopback)")
        return value

    @model_validator(mode="after")
    def _unique_creators(self) -> SandboxConfig:
        for attribute in ("open_id", "username"):
            values = [getattr(creator, attribute) for creator in self.creators]
            if len(values) != len(set(values)):
                raise ValueError(f"creator {attribute}s must be unique, got {values}")
        if self.app_type == "web" and not self.redirect_uris:
            raise ValueError("a web app needs at least one registered redirect_uris entry")
        return self

    def creator(self, open_id_or_username: str) -> SandboxCreator | None:
        for creator in self.creators:
            if open_id_or_username in (creator.open_id, creator.username):
                return creator
        return None


def load_config(path: Path, **overrides: object) -> SandboxConfig:
    """A config from a JSON or YAML file (by suffix); keys left out keep the `SandboxConfig` defaults."""
    try:
        text = path.read_text(encoding="utf-8")
        raw = _parse_yaml(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except (OSError, ValueError) as exc:
        raise SandboxError(f"cannot read sandbox config {path}: {exc}", detail=str(exc)) from exc
    if not isinstance(raw, dict):
        raise SandboxError(f"sandbox config {path} must hold a mapping, got {type(raw).__name__}")
    try:
        return SandboxConfig.model_validate({**raw, **overrides})
    except ValidationError as exc:
        raise SandboxError(f"invalid sandbox config {path}: {exc}", detail=exc.errors()) from exc


def _parse_yaml(text: str) -> object:
    import yaml  # PyYAML comes with Prefect; imported here so JSON configs never need it

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc
