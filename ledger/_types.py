"""Public, immutable views of ledger rows and the token grant the ledger stores."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ledger._states import AccountStatus, AttemptOutcome, DeliveryStatus, PostState, PublishMode


class TokenGrant(BaseModel):
    """What TikTok's token endpoint answers (authorization_code or refresh_token grant).

    Lifetimes are read from every answer, never assumed (TikTok documents both 24 h and 2 h)."""

    model_config = ConfigDict(frozen=True)

    access_token: str = Field(repr=False, min_length=1)
    expires_in: int = Field(gt=0, description="access token lifetime, seconds")
    refresh_token: str = Field(repr=False, min_length=1)
    refresh_expires_in: int = Field(gt=0, description="refresh token lifetime, seconds")
    open_id: str
    scope: str = Field("", description="comma-separated scopes granted")

    @property
    def scope_list(self) -> list[str]:
        return [s.strip() for s in self.scope.split(",") if s.strip()]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class Account(_View):
    """A connected creator, without its tokens (they are only handed out by `ensure_fresh_token`)."""

    id: int
    name: str
    open_id: str
    username: str | None
    nickname: str | None
    scopes: list[str]
    status: AccountStatus
    status_reason: str | None
    access_expires_at: datetime
    refresh_expires_at: datetime
    direct_daily_cap: int
    inbox_daily_cap: int
    created_at: datetime
    updated_at: datetime
    removed_at: datetime | None = None  # removed with `accounts remove`: kept for its posts' history


class Post(_View):
    id: int
    idempotency_key: str
    account_id: int
    account_name: str
    source_uri: str
    content_sha256: str
    caption: str
    options: dict[str, Any]
    mode: PublishMode
    state: PostState
    slot_reserved_at: datetime | None
    publish_id: str | None
    post_ids: list[str]
    share_url: str | None
    privacy_level: str | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    lease_owner: str | None = None  # the runner holding the post's claim (see Ledger.claim_post)
    lease_expires_at: datetime | None = None
    #: The daily-cap slot a deferred post waits for (Ledger.defer_post); None once it holds a slot.
    deferred_to: datetime | None = None


class Claim(BaseModel):
    """A runner's lease on a post (`Ledger.claim_post` / `renew_claim`)."""

    model_config = ConfigDict(frozen=True)

    post_id: int
    owner: str
    expires_at: datetime
    #: The owner whose expired lease this claim took over (None: the post was free, or already ours).
    taken_over_from: str | None = None


class InitAttempt(_View):
    """One init call of a post, recorded before the call (write-ahead), its outcome after."""

    id: int
    post_id: int
    number: int
    owner: str | None
    started_at: datetime
    finished_at: datetime | None
    outcome: AttemptOutcome
    publish_id: str | None
    error_code: str | None
    error_message: str | None


class PostEvent(_View):
    id: int
    post_id: int
    at: datetime
    from_state: PostState | None
    to_state: PostState
    kind: str
    message: str | None
    data: dict[str, Any] | None


class OutboxEntry(BaseModel):
    """One webhook delivery to store in the outbox (`Ledger.add_webhook_deliveries`): an event for one
    receiver, its body exactly as it will be sent (every try sends these bytes)."""

    model_config = ConfigDict(frozen=True)

    event_id: str = Field(min_length=1, max_length=36)
    event_type: str = Field(min_length=1, max_length=64)
    post_id: int | None = None
    #: The receiver's key (SHA-256 hex of its URL; the URL itself is not stored) and its label for people.
    receiver: str = Field(pattern=r"^[0-9a-f]{64}$")
    receiver_label: str = Field(min_length=1, max_length=256)
    body: str = Field(min_length=1)


class WebhookDelivery(_View):
    """One (event, receiver) of the webhook outbox, as the ledger has it."""

    id: int
    event_id: str
    event_type: str
    post_id: int | None
    receiver: str
    receiver_label: str
    body: str = Field(repr=False)
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    leased_until: datetime | None
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    status_reason: str | None


class ReceivedEvent(_View):
    """One webhook TikTok sent us, stored under its dedupe key before the receiver answered 200
    (`Ledger.record_received_event`); `applied_at` and `outcome` once it was applied."""

    id: int
    key: str  # the dedupe key (SHA-256 hex, 64 characters)
    event: str  # TikTok's event name as received
    user_openid: str
    publish_id: str | None
    body: str = Field(repr=False)  # the raw body as received (JSON text), for audit and re-application
    received_at: datetime
    applied_at: datetime | None
    outcome: str | None  # one line: what applying it did


class CapUsage(BaseModel):
    """One cap of one creator over the rolling 24 h window ending now."""

    model_config = ConfigDict(frozen=True)

    limit: int
    used: int
    #: When a slot frees up if none is free now; None while one is free.
    next_slot_at: datetime | None

    @property
    def left(self) -> int:
        return max(self.limit - self.used, 0)


class CapsLeft(BaseModel):
    model_config = ConfigDict(frozen=True)

    direct: CapUsage
    inbox: CapUsage
