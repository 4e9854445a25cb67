"""The ledger: the persistent record of accounts (with tokens encrypted at rest), posts, their audit
trail, idempotency and daily caps. SQLite by default, PostgreSQL for several workers; the schema is
managed by the Alembic migrations shipped in `ledger/migrations` and applied on first use.

    ledger = Ledger.from_settings(load_settings())
    post, created = ledger.create_or_get_post(key, account_name="brand", source_uri=..., content_sha256=...)
    ledger.reserve_slot(post)                  # DailyCapReached when the creator's 24 h cap is used up
    token, _ = ledger.ensure_fresh_token("brand", client.refresh)
    ledger.mark_initialized(post, publish_id)  # committed before the first chunk is uploaded
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
    InvalidInput,
    LedgerError,
    PostNotFound,
)
from ledger._ledger import CAP_WINDOW, Clock, Ledger, Refresher, cap_usage, default_idempotency_key, utc_now
from ledger._states import BEFORE_INIT_STATES, RECONCILE_STATES, TRANSITIONS, AccountStatus, PostMode, PostState
from ledger._types import Account, CapsLeft, CapUsage, Post, PostEvent, TokenGrant

__all__ = [
    "BEFORE_INIT_STATES",
    "CAP_WINDOW",
    "RECONCILE_STATES",
    "TRANSITIONS",
    "Account",
    "AccountConflict",
    "AccountNeedsReconnect",
    "AccountNotFound",
    "AccountStatus",
    "CapUsage",
    "CapsLeft",
    "Clock",
    "DailyCapReached",
    "DatabaseUnavailable",
    "DuplicatePost",
    "EncryptionKeyInvalid",
    "EncryptionKeyMissing",
    "IllegalTransition",
    "InvalidInput",
    "Ledger",
    "LedgerError",
    "Post",
    "PostEvent",
    "PostMode",
    "PostNotFound",
    "PostState",
    "Refresher",
    "TokenGrant",
    "cap_usage",
    "default_idempotency_key",
    "generate_key",
    "utc_now",
]
