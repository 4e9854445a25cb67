"""The ledger: the persistent record of accounts (with tokens encrypted at rest), posts, their audit
trail, idempotency and daily caps. SQLite by default, PostgreSQL for several workers; the schema is
managed by the Alembic migrations shipped in `ledger/migrations` and applied on first use.

    ledger = Ledger.from_settings(load_settings())
    post, created = ledger.create_or_get_post(key, account_name="brand", source_uri=..., content_sha256=...)
    ledger.reserve_slot(post)                  # DailyCapReached when the creator's 24 h cap is used up
    token, _ = ledger.ensure_fresh_token("brand", client.refresh)
    ledger.mark_initialized(post, publish_id)  # committed before the first chunk is uploaded

Public surface
- The ledger: `Ledger`, `generate_key` (a Fernet key for TIKTOK_PIPELINE_ENCRYPTION_KEY),
  `default_idempotency_key`, `cap_usage` and its `CAP_WINDOW` (the rolling 24 h of a daily cap).
- Views it hands out (immutable): `Account`, `Post`, `PostEvent`, and the `TokenGrant` it stores.
- States: `PublishMode` (our direct / inbox / hold, not TikTok's post_mode), `PostState`, `AccountStatus`,
  the state machine `TRANSITIONS` and `BEFORE_INIT_STATES` (not yet sent to TikTok).
- Errors: one tree rooted at `LedgerError`, drawn in `ledger/_errors.py`.
"""

from ledger._crypto import generate_key
from ledger._errors import (
    AccountConflict,
    AccountNeedsReconnect,
    AccountNotFound,
    DailyCapReached,
    DatabaseUnavailable,
    DuplicatePost,
    EncryptionKeyInvalid,
    EncryptionKeyMissing,
    IllegalTransition,
    LedgerError,
    LedgerInputInvalid,
    PostNotFound,
)
from ledger._ledger import CAP_WINDOW, Ledger, cap_usage, default_idempotency_key
from ledger._states import BEFORE_INIT_STATES, TRANSITIONS, AccountStatus, PostState, PublishMode
from ledger._types import Account, Post, PostEvent, TokenGrant

__all__ = [
    # the ledger
    "CAP_WINDOW",
    "Ledger",
    "cap_usage",
    "default_idempotency_key",
    "generate_key",
    # views
    "Account",
    "Post",
    "PostEvent",
    "TokenGrant",
    # states
    "BEFORE_INIT_STATES",
    "TRANSITIONS",
    "AccountStatus",
    "PostState",
    "PublishMode",
    # errors
    "LedgerError",
    "AccountConflict",
    "AccountNeedsReconnect",
    "AccountNotFound",
    "DailyCapReached",
    "DatabaseUnavailable",
    "DuplicatePost",
    "EncryptionKeyInvalid",
    "EncryptionKeyMissing",
    "IllegalTransition",
    "LedgerInputInvalid",
    "PostNotFound",
]
