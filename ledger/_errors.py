"""The ledger's error hierarchy (see `tiktok_pipeline.errors` for the retryable / needs_reauth protocol).

    PipelineError (tiktok_pipeline.errors)
    └── LedgerError                     final        raised on purpose by the ledger
        ├── DatabaseUnavailable         retryable    unreachable or busy database
        ├── DatabaseUrlInvalid          final        unknown scheme, missing driver, unparsable URL
        ├── DatabaseFailed              final        any other database error, in one safe line
        ├── ConstraintViolated          final        a write the database's constraints refused
        ├── LedgerInputInvalid          final        account name, cap, mode, publish_id, a refused value
        ├── EncryptionKeyMissing        final        tokens needed, no TIKTOK_PIPELINE_ENCRYPTION_KEY
        ├── EncryptionKeyInvalid        final        not a Fernet key, or not the tokens' key
        ├── AccountNotFound             final        no account of that name
        ├── AccountConflict             final        TikTok user connected under another name
        ├── AccountNeedsReconnect       needs_reauth grant revoked or expired; account_name
        ├── PostNotFound                final        no post of that id, key or publish_id
        ├── DeliveryNotFound            final        no webhook delivery of that id in the outbox
        ├── ReceivedEventNotFound       final        no received TikTok webhook of that id
        ├── DuplicatePost               final        idempotency key taken by a different post
        ├── IllegalTransition           final        the state machine forbids the move
        ├── DailyCapReached             final        24 h cap used up; next_slot_at
        ├── PostClaimedElsewhere        final        another runner's live lease; owner, lease_expires_at
        └── ClaimLost                   final        the lease is no longer this owner's; holder

`tests/ledger/test_errors.py` holds this drawing to the classes (parents and kinds).

A database error never reaches a caller as it is: `Ledger` turns SQLAlchemy's and the driver's errors
into the classes above, whose message is the error's class and the database's one-line reason, never
the statement or its parameters (those go to the `ledger` logger only).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tiktok_pipeline.errors import PipelineError


class LedgerError(PipelineError):
    """Base of every error the ledger raises on purpose."""


class DatabaseUnavailable(LedgerError):
    """The database could not be reached or was busy (connection refused, lock timeout)."""

    retryable = True


class DatabaseUrlInvalid(LedgerError):
    """The database URL cannot be used: not a URL, an unknown scheme, a driver that is not installed
    or is asyncio-only."""


class DatabaseFailed(LedgerError):
    """The database failed an operation for a reason that is neither unavailability nor a refused
    value or constraint (e.g. a schema that is not the ledger's)."""


class ConstraintViolated(LedgerError):
    """The database refused a write that conflicts with what it holds (unique key, foreign key);
    the ledger names the conflict itself where it knows it (DuplicatePost, AccountConflict)."""


class LedgerInputInvalid(LedgerError):
    """A value handed to the ledger is unusable (account name, cap, mode, missing publish_id)."""


class EncryptionKeyMissing(LedgerError):
    """Tokens must be read or written but no encryption key was given."""


class EncryptionKeyInvalid(LedgerError):
    """The key is not a Fernet key, or stored tokens were encrypted with another key."""


class AccountNotFound(LedgerError):
    """No account is stored under that name."""


class AccountConflict(LedgerError):
    """The TikTok user is already connected under another account name."""


class AccountNeedsReconnect(LedgerError):
    """The account's grant is gone (revoked, expired refresh token): the user must connect it again."""

    needs_reauth = True

    def __init__(self, account_name: str, reason: str, *, detail: Any = None) -> None:
        super().__init__(
            f"account {account_name!r} needs to be reconnected ({reason}); "
            f"run `tiktok-pipeline accounts connect {account_name}`",
            detail=detail,
        )
        self.account_name = account_name


class PostNotFound(LedgerError):
    """No post matches the id, idempotency key or publish_id."""


class DeliveryNotFound(LedgerError):
    """No webhook delivery of the outbox has that id."""


class ReceivedEventNotFound(LedgerError):
    """No received TikTok webhook (`received_tiktok_events`) has that id."""


class DuplicatePost(LedgerError):
    """The idempotency key already belongs to a post with different content, account or mode."""


class IllegalTransition(LedgerError):
    """The post's state machine does not allow the requested change."""


class DailyCapReached(LedgerError):
    """The creator used every slot of the rolling 24 h window; `next_slot_at` says when one frees
    (None when the cap is 0)."""

    def __init__(self, message: str, *, next_slot_at: datetime | None, detail: Any = None) -> None:
        super().__init__(message, detail=detail)
        self.next_slot_at = next_slot_at


class PostClaimedElsewhere(LedgerError):
    """Another runner holds a live lease on the post (`Ledger.claim_post`): it is in progress elsewhere.
    `owner` and `lease_expires_at` name the holder and when its lease runs out (then it may be taken over)."""

    def __init__(self, post_id: int, owner: str, lease_expires_at: datetime, *, detail: Any = None) -> None:
        super().__init__(
            f"post {post_id} is in progress elsewhere: claimed by {owner!r} until "
            f"{lease_expires_at:%Y-%m-%d %H:%M:%S} UTC",
            detail=detail if detail is not None else {
                "post_id": post_id, "owner": owner, "lease_expires_at": lease_expires_at.isoformat(),
            },
        )
        self.post_id = post_id
        self.owner = owner
        self.lease_expires_at = lease_expires_at


class ClaimLost(LedgerError):
    """The caller no longer holds the post's lease (it expired and was taken over, or was released):
    it must stop working on the post. `holder` is the current owner (None: nobody)."""

    def __init__(self, post_id: int, owner: str, holder: str | None, *, detail: Any = None) -> None:
        now_held = f"it is held by {holder!r}" if holder else "nobody holds it"
        super().__init__(
            f"post {post_id}: {owner!r} no longer holds its lease ({now_held})",
            detail=detail if detail is not None else {"post_id": post_id, "owner": owner, "holder": holder},
        )
        self.post_id = post_id
        self.owner = owner
        self.holder = holder
