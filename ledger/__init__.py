"""The ledger: the persistent record of accounts (with tokens encrypted at rest), posts, their audit
trail, idempotency and daily caps. SQLite by default, PostgreSQL for several workers; the schema is
managed by the Alembic migrations shipped in `ledger/migrations` and applied on first use.

    ledger = Ledger.from_settings(load_settings())
    post, created = ledger.create_or_get_post(key, account_name="brand", source_uri=..., content_sha256=...)
    ledger.reserve_slot(post)                  # DailyCapReached when the creator's 24 h cap is used up
    token, _ = ledger.ensure_fresh_token("brand", client.refresh)
    claim = ledger.claim_post(post, owner, lease=timedelta(minutes=5))  # PostClaimedElsewhere if live elsewhere
    attempt = ledger.record_init_attempt(post, owner=owner)   # committed before TikTok's init is called
    post = ledger.record_publish_id(attempt, publish_id)     # its own commit, the moment the answer arrives
    ledger.mark_attempt_lost(attempt, "init answered 503")   # or mark_attempt_failed: TikTok refused it
    [delivery] = ledger.add_webhook_deliveries([entry])      # the webhook outbox: stored before the first try
    ledger.claim_webhook_delivery(delivery.id, lease, due_only=True)  # one sender at a time; then
    ledger.record_webhook_attempt(delivery.id, status_code=200)      # delivered (or error=..., retry_in=...)
    event, first = ledger.record_received_event(key, event=..., user_openid=..., publish_id=..., body=...)
    ledger.mark_received_event_applied(event.id, "post 12 published")  # TikTok's webhooks: stored, then applied

Public surface
- The ledger: `Ledger`, `generate_key` (a Fernet key for TIKTOK_PIPELINE_ENCRYPTION_KEY),
  `default_idempotency_key`, `cap_usage` and its `CAP_WINDOW` (the rolling 24 h of a daily cap).
- TikTok's webhooks, received (at least once, redelivered for 72 h, no delivery id): `record_received_event`
  stores one under the receiver's dedupe key before it answers 200 (a redelivery gets the first row and
  False, also when two receivers race), `mark_received_event_applied` records what applying it did,
  `get_received_event` reads one again, `received_events` lists them (`pending_only`: what a restarted
  receiver applies), `prune_received_events` deletes applied ones older than a window of at least `TIKTOK_REDELIVERY_WINDOW`. The receiver's lookups:
  `get_account_by_open_id` (the connected account of a TikTok user, removed ones not) and
  `add_public_post_ids` (the public ids TikTok gives a published post late, with an audit event).
- Views it hands out (immutable): `Account`, `Post`, `PostEvent`, `Claim` (a lease on a post),
  `InitAttempt` (one write-ahead init call), `WebhookDelivery` (one row of the webhook outbox),
  `ReceivedEvent` (one webhook TikTok sent us), and what it is given to store: the `TokenGrant`, an
  `OutboxEntry`.
- States: `PublishMode` (our direct / inbox / hold, not TikTok's post_mode), `PostState`, `AccountStatus`,
  the state machine `TRANSITIONS` and `BEFORE_INIT_STATES` (not yet sent to TikTok); `AttemptOutcome`
  of an init attempt and `CAP_COUNTED_OUTCOMES` (those TikTok may have counted against the cap);
  `DeliveryStatus` of a webhook delivery.
- Errors: one tree rooted at `LedgerError`, drawn in `ledger/_errors.py`. A database error always leaves
  as one of them (its class and the database's one-line reason; never the statement or its parameters).
"""

from ledger._crypto import generate_key
from ledger._errors import (
    AccountConflict,
    AccountNeedsReconnect,
    AccountNotFound,
    ClaimLost,
    ConstraintViolated,
    DailyCapReached,
    DatabaseFailed,
    DatabaseUnavailable,
    DatabaseUrlInvalid,
    DeliveryNotFound,
    DuplicatePost,
    EncryptionKeyInvalid,
    EncryptionKeyMissing,
    IllegalTransition,
    LedgerError,
    LedgerInputInvalid,
    PostClaimedElsewhere,
    PostNotFound,
    ReceivedEventNotFound,
)
from ledger._ledger import (
    ACCOUNT_NAME_PATTERN,
    CAP_WINDOW,
    TIKTOK_REDELIVERY_WINDOW,
    Ledger,
    cap_usage,
    default_idempotency_key,
    next_free_slot,
)
from ledger._models import MAX_ACCOUNT_NAME_LENGTH
from ledger._states import (
    BEFORE_INIT_STATES,
    CAP_COUNTED_OUTCOMES,
    TRANSITIONS,
    AccountStatus,
    AttemptOutcome,
    DeliveryStatus,
    PostState,
    PublishMode,
)
from ledger._types import (
    Account,
    Claim,
    InitAttempt,
    OutboxEntry,
    Post,
    PostEvent,
    ReceivedEvent,
    TokenGrant,
    WebhookDelivery,
)

__all__ = [
    "ACCOUNT_NAME_PATTERN",
    "MAX_ACCOUNT_NAME_LENGTH",
    # the ledger
    "CAP_WINDOW",
    "TIKTOK_REDELIVERY_WINDOW",
    "Ledger",
    "cap_usage",
    "next_free_slot",
    "default_idempotency_key",
    "generate_key",
    # views
    "Account",
    "Claim",
    "InitAttempt",
    "OutboxEntry",
    "Post",
    "PostEvent",
    "ReceivedEvent",
    "TokenGrant",
    "WebhookDelivery",
    # states
    "BEFORE_INIT_STATES",
    "CAP_COUNTED_OUTCOMES",
    "TRANSITIONS",
    "AccountStatus",
    "AttemptOutcome",
    "DeliveryStatus",
    "PostState",
    "PublishMode",
    # errors
    "LedgerError",
    "AccountConflict",
    "AccountNeedsReconnect",
    "AccountNotFound",
    "ClaimLost",
    "ConstraintViolated",
    "DailyCapReached",
    "DatabaseFailed",
    "DatabaseUnavailable",
    "DatabaseUrlInvalid",
    "DeliveryNotFound",
    "DuplicatePost",
    "EncryptionKeyInvalid",
    "EncryptionKeyMissing",
    "IllegalTransition",
    "LedgerInputInvalid",
    "PostClaimedElsewhere",
    "PostNotFound",
    "ReceivedEventNotFound",
]
