"""The `Ledger`: one object wrapping an Engine, a session per call and explicit transactions.

Concurrency model
- Writes that must see a consistent picture lock first: on PostgreSQL `SELECT ... FOR UPDATE` on the
  account row (daily caps, token refresh) or the post row (transitions); on SQLite every write
  transaction is `BEGIN IMMEDIATE`, which takes the database's single write lock up front, so
  check-then-write sequences of threads and processes never interleave.
- Reads run in ordinary transactions (WAL lets SQLite readers run beside the writer).
- Claims (`claim_post`) are compare-and-set: one conditional UPDATE whose rowcount says who won, so they
  hold on PostgreSQL's READ COMMITTED without a lock taken first. Init attempts are a write-ahead log
  (`record_init_attempt` commits before TikTok is called, `record_publish_id` the moment it answers).
- The webhook outbox (`add_webhook_deliveries`) is written before anything is sent; one sender at a time
  tries a delivery (`claim_webhook_delivery`: a conditional UPDATE of its lease, like claims of posts).

Errors: whatever SQLAlchemy or the driver raises leaves as a LedgerError of one short line
(`_database_errors`: the error's class and the database's first line, never the statement or its
parameters, which are logged to the `ledger` logger only); a URL that cannot be used is
`DatabaseUrlInvalid` from the constructor.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from ledger import _migrate
from ledger._crypto import TokenCipher
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
    IllegalTransition,
    LedgerError,
    LedgerInputInvalid,
    PostClaimedElsewhere,
    PostNotFound,
    ReceivedEventNotFound,
)
from ledger._models import (
    DEFAULT_DIRECT_DAILY_CAP,
    DEFAULT_INBOX_DAILY_CAP,
    MAX_ACCOUNT_NAME_LENGTH,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_LEASE_OWNER_LENGTH,
    MAX_RECEIVED_EVENT_BODY_BYTES,
    UNSTORABLE_CHARACTERS,
    AccountRow,
    InitAttemptRow,
    PostEventRow,
    PostRow,
    RateWindowRow,
    ReceivedEventRow,
    WebhookDeliveryRow,
)
from ledger._states import (
    BEFORE_INIT_STATES,
    CAP_COUNTED_OUTCOMES,
    RECONCILE_STATES,
    AccountStatus,
    AttemptOutcome,
    DeliveryStatus,
    PostState,
    PublishMode,
    check_transition,
)
from ledger._types import (
    Account,
    CapsLeft,
    CapUsage,
    Claim,
    InitAttempt,
    OutboxEntry,
    Post,
    PostEvent,
    ReceivedEvent,
    TokenGrant,
    WebhookDelivery,
)
from tiktok_pipeline.errors import is_retryable, needs_reauth
from tiktok_pipeline.settings import StorageSettings

_LOG = logging.getLogger("ledger")
# The full text of database errors goes here only: with no handler configured anywhere, Python's
# last-resort handler would print it (statement, parameters) on stderr, under a CLI's one-line error.
_LOG.addHandler(logging.NullHandler())

Clock = Callable[[], datetime]
#: Exchanges a refresh token for a new grant (the TikTok client's refresh call, injected by the caller).
Refresher = Callable[[str], TokenGrant]

CAP_WINDOW = timedelta(hours=24)
ACCOUNT_NAME_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_ACCOUNT_NAME_LENGTH - 1}}}")
#: Event data keys of a post's upload URL: encrypted, and (versions before the encryption) plaintext.
_SEALED_UPLOAD_URL = "upload_url_sealed"
_PLAIN_UPLOAD_URL = "upload_url"
#: Seconds a SQLite connection waits for the write lock before giving up (then: DatabaseUnavailable).
SQLITE_BUSY_TIMEOUT = 30.0
POSTGRES_CONNECT_TIMEOUT = 10
#: How often `claim_post` re-reads and retries when its compare-and-set lost a race it may still win.
_CLAIM_ROUNDS = 5
#: How long TikTok redelivers a webhook: applied received events are kept at least this long (dedupe).
TIKTOK_REDELIVERY_WINDOW = timedelta(hours=72)
#: A received event's dedupe key: SHA-256 hex, lowercase.
_RECEIVED_EVENT_KEY = re.compile(r"[0-9a-f]{64}")
#: Longest public post id TikTok assigns (they are decimal strings of about 19 digits).
_MAX_POST_ID_LENGTH = 64
#: Longest database reason a LedgerError quotes (the database's first line; the rest goes to the log).
_MAX_REASON_LENGTH = 200


def default_idempotency_key(content_sha256: str, account_name: str, caption: str, mode: PublishMode | str) -> str:
    """The same video, account, caption and mode give the same key, so a re-run finds the first post."""
    canonical = json.dumps(
        {"account": account_name, "caption": caption, "content_sha256": content_sha256, "mode": str(mode)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def next_free_slot(reserved: Sequence[datetime], limit: int, now: datetime) -> datetime | None:
    """The earliest time from `now` at which one more slot can be taken without any 24 h window
    holding more than `limit`, given the times of the slots taken and promised (posts deferred to a
    later slot count where they were promised). None when `limit` is 0."""
    if limit < 1:
        return None
    times = sorted(reserved)

    def fits(at: datetime) -> bool:
        # Every window containing `at` must keep room: those ending at `at` and at each later slot.
        ends = [at, *(t for t in times if at < t < at + CAP_WINDOW)]
        return all(sum(1 for t in times if end - CAP_WINDOW < t <= end) + (at > end - CAP_WINDOW) <= limit
                   for end in ends)

    candidates = sorted({now, *(t + CAP_WINDOW for t in times if t + CAP_WINDOW > now)})
    return next(at for at in candidates if fits(at))  # the last candidate always fits


def cap_usage(reserved_at: Sequence[datetime], limit: int, now: datetime) -> CapUsage:
    """Usage of one cap given the reservation times of the slots that count."""
    window = [t for t in reserved_at if t > now - CAP_WINDOW]
    # Used up (or over, after the cap was lowered): the slot that frees next is the one whose leaving
    # brings usage below the limit; none at all for a cap of 0.
    next_slot_at = next_free_slot(window, limit, now) if len(window) >= limit else None
    return CapUsage(limit=limit, used=len(window), next_slot_at=next_slot_at)


#: What a usable ledger URL looks like, for the messages of DatabaseUrlInvalid.
_URL_FORMS = "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"


def create_ledger_engine(database_url: str) -> sa.Engine:
    """The engine of a ledger URL; `DatabaseUrlInvalid` (one line, no password) when it cannot be used."""
    try:
        url = sa.make_url(database_url)
    except (sa_exc.ArgumentError, ValueError, TypeError) as exc:
        # Not echoed: an unparsable URL may still hold a password.
        raise DatabaseUrlInvalid(
            f"the ledger database URL is not a SQLAlchemy URL ({type(exc).__name__}); use {_URL_FORMS}", detail={}
        ) from exc
    where = url.render_as_string(hide_password=True)
    try:
        if url.get_backend_name() != "sqlite":
            engine = sa.create_engine(url, pool_pre_ping=True,
                                      connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT})
        else:
            if url.database and url.database != ":memory:":
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})
    except sa_exc.NoSuchModuleError as exc:
        raise DatabaseUrlInvalid(
            f"ledger database {where}: SQLAlchemy has no database dialect {url.drivername!r} "
            f"(NoSuchModuleError); use {_URL_FORMS}",
            detail={"url": where, "drivername": url.drivername},
        ) from exc
    except ImportError as exc:
        raise DatabaseUrlInvalid(
            f"ledger database {where}: its driver is not installed ({type(exc).__name__}: {exc}); the ledger "
            f"runs on SQLite and on PostgreSQL through psycopg: use {_URL_FORMS}",
            detail={"url": where, "drivername": url.drivername},
        ) from exc
    except (sa_exc.ArgumentError, TypeError) as exc:
        raise DatabaseUrlInvalid(
            f"ledger database {where} cannot be used: {_one_line(exc)}", detail={"url": where}
        ) from exc
    except OSError as exc:
        raise DatabaseUrlInvalid(
            f"ledger database {where}: its folder cannot be created ({type(exc).__name__}: {exc.strerror or exc})",
            detail={"url": where},
        ) from exc
    if engine.dialect.is_async:
        engine.dispose()
        raise DatabaseUrlInvalid(
            f"ledger database {where}: {url.drivername} is an asyncio driver; the ledger needs a synchronous one "
            f"({_URL_FORMS})",
            detail={"url": where, "drivername": url.drivername},
        )
    if url.get_backend_name() != "sqlite":
        return engine
    sa.event.listen(engine, "connect", _sqlite_on_connect)
    sa.event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling would BEGIN lazily (deferred); the "begin" hook emits ours.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_on_begin(connection: sa.Connection) -> None:
    write = connection.get_execution_options().get("ledger_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Ledger:
    """Accounts, encrypted tokens, posts, their audit trail and daily caps.

    `encryption_keys`: one Fernet key, or several (sequence or comma-separated) to rotate: the first
    encrypts, any decrypts. Needed only by calls that touch tokens. `clock` returns aware UTC datetimes.
    With `migrate` the schema is brought to head on construction (a no-op when it already is).
    """

    def __init__(
        self,
        database_url: str,
        encryption_keys: str | Sequence[str] | None = None,
        *,
        clock: Clock = partial(datetime.now, UTC),
        migrate: bool = True,
    ) -> None:
        self._cipher = TokenCipher(encryption_keys)
        self._clock = clock
        self.engine = create_ledger_engine(database_url)
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self.engine.execution_options(ledger_write=True), expire_on_commit=False)
        if migrate:
            try:
                self.migrate()
            except BaseException:
                self.engine.dispose()
                raise

    @classmethod
    def from_settings(cls, settings: StorageSettings, *, clock: Clock = partial(datetime.now, UTC), migrate: bool = True) -> Ledger:
        key = settings.encryption_key.get_secret_value() if settings.encryption_key else None
        return cls(settings.effective_database_url, key, clock=clock, migrate=migrate)

    def now(self) -> datetime:
        """The ledger's clock (UTC): what it stamps rows with and measures cap windows against."""
        return self._clock()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- schema -----------------------------------------------------------------------------------

    def migrate(self) -> bool:
        """Upgrade the schema to head; True when migrations ran."""
        with self._database_errors():
            return _migrate.upgrade(self.engine.execution_options(ledger_write=True))

    def current_revision(self) -> str | None:
        with self._database_errors():
            return _migrate.current_revision(self.engine)

    @staticmethod
    def head_revision() -> str | None:
        return _migrate.head_revision()

    # --- accounts ---------------------------------------------------------------------------------

    def upsert_account(
        self,
        name: str,
        grant: TokenGrant,
        *,
        username: str | None = None,
        nickname: str | None = None,
        open_id: str | None = None,
        scopes: Sequence[str] | None = None,
    ) -> Account:
        """Store a freshly connected account (or reconnect an existing one): tokens, profile, status active."""
        if not ACCOUNT_NAME_PATTERN.fullmatch(name):
            raise LedgerInputInvalid(
                f"account name {name!r} is not valid: use 1-{MAX_ACCOUNT_NAME_LENGTH} letters, digits, '.', '_' or '-', "
                "starting with a letter or digit",
                detail={"name": name},
            )
        open_id = open_id or grant.open_id
        try:
            with self._transaction(write=True) as session:
                taken = session.execute(
                    sa.select(AccountRow.name, AccountRow.removed_at).where(
                        AccountRow.open_id == open_id, AccountRow.name != name
                    )
                ).first()
                if taken is not None and taken.removed_at is not None:
                    raise AccountConflict(
                        f"TikTok user {username or open_id} was connected as account {taken.name!r} (removed "
                        f"{taken.removed_at:%Y-%m-%d}); connect it again under that name, so its post history and "
                        f"daily caps stay with it: `tiktok-pipeline accounts connect {taken.name}`",
                        detail={"open_id": open_id, "account_name": taken.name},
                    )
                if taken is not None:
                    raise AccountConflict(
                        f"TikTok user {username or open_id} is already connected as account {taken.name!r}; "
                        "daily caps are per creator, so one creator maps to one account",
                        detail={"open_id": open_id, "account_name": taken.name},
                    )
                now = self._clock()
                row = session.scalar(sa.select(AccountRow).where(AccountRow.name == name).with_for_update())
                if row is None:
                    row = AccountRow(
                        name=name,
                        direct_daily_cap=DEFAULT_DIRECT_DAILY_CAP,
                        inbox_daily_cap=DEFAULT_INBOX_DAILY_CAP,
                        created_at=now,
                    )
                    session.add(row)
                row.open_id = open_id
                row.username = username
                row.nickname = nickname
                row.scopes = list(scopes) if scopes is not None else grant.scope_list
                row.status = AccountStatus.active
                row.status_reason = None
                row.removed_at = None
                self._store_grant(row, grant, now)
                session.flush()
                return Account.model_validate(row)
        except ConstraintViolated as exc:
            raise AccountConflict(
                f"account {name!r} or TikTok user {open_id} was connected by another process at the same time; "
                "run the command again",
                detail={"name": name, "open_id": open_id},
            ) from exc

    def get_account(self, name: str) -> Account:
        with self._transaction(write=False) as session:
            return Account.model_validate(self._account(session, name))

    def get_account_by_open_id(self, open_id: str) -> Account:
        """The account connected as TikTok user `open_id` (its webhooks name the user, not the account);
        `AccountNotFound` when none is, or when it was removed (`remove_account`: nothing acts for it)."""
        with self._transaction(write=False) as session:
            storable = bool(open_id) and len(open_id) <= 128 and not UNSTORABLE_CHARACTERS.search(open_id)
            row = session.scalar(sa.select(AccountRow).where(AccountRow.open_id == open_id)) if storable else None
            if row is None or row.removed_at is not None:
                removed = f" (account {row.name!r} was removed)" if row is not None else ""
                raise AccountNotFound(f"no connected account is TikTok user {open_id}{removed}",
                                      detail={"open_id": open_id})
            return Account.model_validate(row)

    def list_accounts(self, *, include_removed: bool = False) -> list[Account]:
        """The connected accounts by name; removed ones (see `remove_account`) only with `include_removed`."""
        query = sa.select(AccountRow).order_by(AccountRow.name)
        if not include_removed:
            query = query.where(AccountRow.removed_at.is_(None))
        with self._transaction(write=False) as session:
            return [Account.model_validate(row) for row in session.scalars(query)]

    def remove_account(self, name: str) -> tuple[Account, bool]:
        """Disconnect an account: (the account, True when it was removed now; False: it already was).

        The row stays, so its posts keep their history (`posts list`, `accounts export`) and the creator's
        daily caps are still counted if it is connected again. Its tokens are erased, it is marked
        needs_reconnect (so nothing can post with it) and `removed_at` is set: `list_accounts` leaves it
        out. `upsert_account` under the same name connects it again.
        """
        with self._transaction(write=True) as session:
            row = self._account(session, name, lock=True)
            if row.removed_at is not None:
                return Account.model_validate(row), False
            now = self._clock()
            row.removed_at = now
            row.access_token_ciphertext = row.refresh_token_ciphertext = ""
            row.access_expires_at = row.refresh_expires_at = now
            self._set_needs_reconnect(row, f"removed on {now:%Y-%m-%d %H:%M} UTC with `tiktok-pipeline accounts remove`")
            return Account.model_validate(row), True

    def set_daily_caps(self, name: str, *, direct: int | None = None, inbox: int | None = None) -> Account:
        """Per-creator limits (TikTok's caps vary per creator); None leaves a limit unchanged."""
        for label, value in (("direct", direct), ("inbox", inbox)):
            if value is not None and value < 0:
                raise LedgerInputInvalid(f"{label} daily cap must be 0 or more, got {value}", detail={label: value})
        with self._transaction(write=True) as session:
            row = self._account(session, name, lock=True)
            if direct is not None:
                row.direct_daily_cap = direct
            if inbox is not None:
                row.inbox_daily_cap = inbox
            row.updated_at = self._clock()
            return Account.model_validate(row)

    def mark_needs_reconnect(self, name: str, reason: str) -> Account:
        """Flag an account whose grant TikTok no longer accepts (e.g. auth_removed, scope revoked)."""
        with self._transaction(write=True) as session:
            row = self._account(session, name, lock=True)
            self._set_needs_reconnect(row, reason)
            return Account.model_validate(row)

    def ensure_fresh_token(
        self,
        account_name: str,
        refresher: Refresher,
        *,
        margin: timedelta = timedelta(minutes=5),
        force: bool = False,
        rejected_token: str | None = None,
    ) -> tuple[str, bool]:
        """The account's access token, refreshed first when it expires within `margin`, when `force`, or
        when it is still `rejected_token` (the token TikTok answered access_token_invalid to; a token another
        worker already replaced is reused instead). Returns (access_token, refreshed).

        The account row stays locked during the refresh, so concurrent callers refresh once and the others
        get the new token. The rotated refresh token and new expiries are stored in the same transaction.
        A final needs_reauth error from `refresher` (invalid_grant) marks the account needs_reconnect and
        raises `AccountNeedsReconnect`; any other error propagates with the account unchanged.
        """
        cause: BaseException | None = None
        with self._transaction(write=True) as session:
            row = self._account(session, account_name, lock=True)
            if row.status is AccountStatus.needs_reconnect:
                raise AccountNeedsReconnect(account_name, row.status_reason or "marked needs_reconnect")
            now = self._clock()
            access_token = self._cipher.decrypt(row.access_token_ciphertext, account_name=account_name)
            stale = force or access_token == rejected_token or row.access_expires_at - margin <= now
            if not stale:
                return access_token, False
            if row.refresh_expires_at <= now:
                reason = f"its refresh token expired at {row.refresh_expires_at:%Y-%m-%d %H:%M:%S} UTC"
            else:
                refresh_token = self._cipher.decrypt(row.refresh_token_ciphertext, account_name=account_name)
                try:
                    grant = refresher(refresh_token)
                except Exception as exc:
                    if not needs_reauth(exc) or is_retryable(exc):
                        raise
                    reason = f"TikTok refused the refresh token: {exc}"
                    cause = exc
                else:
                    self._store_grant(row, grant, self._clock())
                    return grant.access_token, True
            self._set_needs_reconnect(row, reason)
        # Reached only after the needs_reconnect mark is committed.
        raise AccountNeedsReconnect(account_name, reason, detail={"account_name": account_name}) from cause

    def reencrypt_tokens(self) -> int:
        """Re-encrypt every account's tokens with the first key (after rotation); returns how many accounts."""
        with self._transaction(write=True) as session:
            query = sa.select(AccountRow).where(AccountRow.removed_at.is_(None))  # removed: no tokens left
            rows = list(session.scalars(query.with_for_update()))
            for row in rows:
                row.access_token_ciphertext = self._cipher.rotate(row.access_token_ciphertext, account_name=row.name)
                row.refresh_token_ciphertext = self._cipher.rotate(row.refresh_token_ciphertext, account_name=row.name)
            return len(rows)

    # --- daily caps ------------------------------------------------------------------------------

    def caps_left(self, account_name: str) -> CapsLeft:
        with self._transaction(write=False) as session:
            row = self._account(session, account_name)
            now = self._clock()
            return CapsLeft(
                direct=cap_usage(self._slot_times(session, row.id, PublishMode.direct, now), row.direct_daily_cap, now),
                inbox=cap_usage(self._slot_times(session, row.id, PublishMode.inbox, now), row.inbox_daily_cap, now),
            )

    def reserve_slot(self, post: Post | int) -> Post:
        """Take one of the creator's daily slots for this post (its mode's cap), before calling TikTok's init.

        Counted slots: posts of the same account and mode reserved within the last 24 h, except those that
        failed or were discarded before reaching TikTok (no publish_id). Idempotent: a post holding a slot
        from the current window keeps it. Raises `DailyCapReached` (with `next_slot_at`) when none is left.
        """
        post_id = _post_id(post)
        with self._transaction(write=True) as session:
            account_id = session.scalar(sa.select(PostRow.account_id).where(PostRow.id == post_id))
            if account_id is None:
                raise PostNotFound(f"no post with id {post_id}", detail={"post_id": post_id})
            # Lock order everywhere: account, then post.
            account = session.scalars(
                sa.select(AccountRow).where(AccountRow.id == account_id).with_for_update()
            ).one()
            row = self._post(session, post_id, lock=True)
            if account.status is AccountStatus.needs_reconnect:
                raise AccountNeedsReconnect(account.name, account.status_reason or "marked needs_reconnect")
            if row.mode is PublishMode.hold:
                raise IllegalTransition(
                    f"post {post_id} is a hold draft: choose direct or inbox (release_hold) before reserving a slot",
                    detail={"post_id": post_id, "mode": str(row.mode)},
                )
            if row.state not in BEFORE_INIT_STATES:
                raise IllegalTransition(
                    f"post {post_id} is {row.state}: slots are reserved before init",
                    detail={"post_id": post_id, "state": str(row.state)},
                )
            now = self._clock()
            if row.slot_reserved_at is not None and row.slot_reserved_at > now - CAP_WINDOW:
                return Post.model_validate(row)
            limit, usage, when = self._cap(session, account, row.mode, now, waiting=row)
            if usage.left == 0:
                raise DailyCapReached(
                    f"account {account.name!r} used {usage.used} of its {limit} {row.mode} posts in the last 24 h; "
                    f"the next slot for this post frees {when}",
                    next_slot_at=usage.next_slot_at,
                    detail={"account_name": account.name, "mode": str(row.mode), **usage.model_dump(mode="json")},
                )
            row.slot_reserved_at = now
            row.deferred_to = None
            row.updated_at = now
            self._add_event(
                session, row, row.state, kind="slot_reserved", at=now, data={"used": usage.used + 1, "limit": limit}
            )
            return Post.model_validate(row)

    # --- rate windows ------------------------------------------------------------------------------

    def reserve_rate_slot(self, account_key: str, endpoint: str, limit: int, window: timedelta) -> float:
        """Take a place for one call to `endpoint` for `account_key` in its sliding window: 0.0 when
        taken (the call may go now), else the seconds until the oldest call of the window leaves it.

        Every process on this database shares the window; the row is locked while a call takes its
        place, so `limit` calls within `window` is never exceeded, whatever the number of workers."""
        if limit < 1:
            raise LedgerInputInvalid(f"rate limit of {endpoint} must be at least 1, got {limit}",
                                     detail={"endpoint": endpoint, "limit": limit})
        span = window.total_seconds()
        with self._transaction(write=True) as session:
            insert = (sqlite_insert if self.engine.dialect.name == "sqlite" else postgresql_insert)(RateWindowRow)
            # One round trip creates the row on first use and locks it (an upsert that rewrites the row
            # takes its lock on PostgreSQL; SQLite's write transaction is exclusive anyway).
            stored = session.execute(
                insert.values(account_key=account_key, endpoint=endpoint, sent_at=[])
                .on_conflict_do_update(index_elements=["account_key", "endpoint"],
                                       set_={"sent_at": RateWindowRow.__table__.c.sent_at})
                .returning(RateWindowRow.__table__.c.sent_at)
            ).scalar_one()
            now = self._clock().timestamp()
            recent = [at for at in stored if at > now - span]
            wait = max(recent[len(recent) - limit] + span - now, 0.001) if len(recent) >= limit else 0.0
            kept = recent if wait else [*recent, now]
            if kept != stored:
                session.execute(sa.update(RateWindowRow.__table__)
                                .where(RateWindowRow.__table__.c.account_key == account_key,
                                       RateWindowRow.__table__.c.endpoint == endpoint)
                                .values(sent_at=kept))
            return wait

    # --- posts -------------------------------------------------------------------------------------

    def create_or_get_post(
        self,
        idempotency_key: str,
        *,
        account_name: str,
        source_uri: str,
        content_sha256: str,
        caption: str = "",
        options: dict[str, Any] | None = None,
        mode: PublishMode = PublishMode.direct,
    ) -> tuple[Post, bool]:
        """The post stored under `idempotency_key`, created (state queued) if there is none: (post, created).

        Race-safe: the key is unique; whoever loses the insert race reads the winner's row. Reusing a key
        for another account, video, caption or mode raises `DuplicatePost`."""
        if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            raise LedgerInputInvalid(
                f"idempotency key of {len(idempotency_key)} characters: a post's key has 1 to "
                f"{MAX_IDEMPOTENCY_KEY_LENGTH} (a caller's idempotency_key up to 200, plus ':' and the account name)",
                detail={"length": len(idempotency_key), "max_length": MAX_IDEMPOTENCY_KEY_LENGTH},
            )
        for field, value in (("idempotency key", idempotency_key), ("caption", caption), ("source URI", source_uri),
                             ("content SHA-256", content_sha256)):
            _check_storable(field, value)
        wanted = {"account_name": account_name, "content_sha256": content_sha256, "caption": caption, "mode": mode}
        try:
            with self._transaction(write=True) as session:
                existing = self._post_by_key(session, idempotency_key)
                if existing is not None:
                    return _same_post(existing, wanted), False
                account = self._account(session, account_name)
                now = self._clock()
                row = PostRow(
                    idempotency_key=idempotency_key,
                    account=account,
                    source_uri=source_uri,
                    content_sha256=content_sha256,
                    caption=caption,
                    options=dict(options or {}),
                    mode=mode,
                    state=PostState.queued,
                    post_ids=[],
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                self._add_event(session, row, None, kind="created", at=now)
                return Post.model_validate(row), True
        except ConstraintViolated:
            with self._transaction(write=False) as session:
                existing = self._post_by_key(session, idempotency_key)
                if existing is None:
                    raise
                return _same_post(existing, wanted), False

    def transition(
        self,
        post: Post | int,
        to_state: PostState,
        *,
        message: str | None = None,
        data: dict[str, Any] | None = None,
        publish_id: str | None = None,
        post_ids: Sequence[str] | None = None,
        share_url: str | None = None,
        privacy_level: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        only_from: PostState | None = None,
    ) -> Post:
        """Move the post to `to_state` (validated against the state it has in the database), set the given
        fields (None = unchanged) and append the event, all in one transaction.

        `only_from`: the move is made only if the post is still in that state under the row lock (a caller
        that decided on what it read earlier, e.g. a person resolving an `unconfirmed` post, is refused with
        `IllegalTransition` when the post moved on meanwhile, even to a state `to_state` may follow).
        """
        post_id = _post_id(post)
        changes = {
            "publish_id": publish_id,
            "post_ids": list(post_ids) if post_ids is not None else None,
            "share_url": share_url,
            "privacy_level": privacy_level,
            "error_code": error_code,
            "error_message": error_message,
        }
        changes = {field: value for field, value in changes.items() if value is not None}
        try:
            with self._transaction(write=True) as session:
                row = self._post(session, post_id, lock=True)
                from_state = row.state
                if only_from is not None and from_state is not only_from:
                    raise IllegalTransition(
                        f"post {post_id} is {from_state}, no longer {only_from}: it was not moved to {to_state}",
                        detail={"post_id": post_id, "state": str(from_state), "expected_state": str(only_from),
                                "to_state": str(to_state)},
                    )
                check_transition(post_id, from_state, to_state)
                if to_state is PostState.initialized and not changes.get("publish_id"):
                    raise LedgerInputInvalid(
                        f"post {post_id}: the initialized state needs the publish_id TikTok returned",
                        detail={"post_id": post_id},
                    )
                now = self._clock()
                for field, value in changes.items():
                    setattr(row, field, value)
                row.state = to_state
                row.updated_at = now
                if to_state is PostState.published and row.published_at is None:
                    row.published_at = now
                event_data = {**changes, **(data or {})} or None
                self._add_event(
                    session, row, from_state, kind="transition", at=now, message=message, data=event_data
                )
                return Post.model_validate(row)
        except ConstraintViolated as exc:
            raise DuplicatePost(
                f"publish_id {publish_id} already belongs to another post", detail={"publish_id": publish_id}
            ) from exc

    def add_public_post_ids(self, post: Post | int, post_ids: Sequence[str], *, share_url: str | None = None,
                            message: str) -> Post:
        """Add the public post ids TikTok assigned a published post late (after moderation): merged into
        its `post_ids` (no duplicates, order kept), `share_url` set if given and the post has none yet,
        and an event `public_post_ids` with `message` (and what was added) on its audit trail.
        Only a `published` post takes them: `IllegalTransition` otherwise."""
        post_id = _post_id(post)
        if isinstance(post_ids, str):
            raise LedgerInputInvalid(f"post {post_id}: post_ids is a sequence of ids, not one string",
                                     detail={"field": "post_ids", "post_id": post_id})
        for value in post_ids:
            _check_text("post id", value, _MAX_POST_ID_LENGTH, field="post_ids")
        if share_url is not None:
            _check_text("share URL", share_url, 2048, field="share_url")
        with self._transaction(write=True) as session:
            row = self._post(session, post_id, lock=True)
            if row.state is not PostState.published:
                raise IllegalTransition(
                    f"post {post_id} is {row.state}: public post ids are added to published posts only",
                    detail={"post_id": post_id, "state": str(row.state)},
                )
            added = [value for value in dict.fromkeys(post_ids) if value not in row.post_ids]
            if added:
                row.post_ids = [*row.post_ids, *added]  # a new list: the JSON column sees the change
            data: dict[str, Any] = {"post_ids": added}
            if share_url is not None and row.share_url is None:
                row.share_url = data["share_url"] = share_url
            now = self._clock()
            row.updated_at = now
            self._add_event(session, row, row.state, kind="public_post_ids", at=now, message=message, data=data)
            return Post.model_validate(row)

    def retry_before_init(self, post: Post | int, reason: str) -> Post:
        """Give a post that failed before reaching TikTok (no publish_id) another go: back to queued.

        Nothing exists on TikTok's side, so trying again cannot duplicate anything; a post that
        failed after init keeps its failure for good (a new idempotency key posts anew).
        """
        post_id = _post_id(post)
        with self._transaction(write=True) as session:
            row = self._post(session, post_id, lock=True)
            if row.state is not PostState.failed or row.publish_id is not None:
                raise IllegalTransition(
                    f"post {post_id} is {row.state}" + (f" at TikTok ({row.publish_id})" if row.publish_id else "")
                    + ": only posts that failed before TikTok's init can be tried again",
                    detail={"post_id": post_id, "state": str(row.state), "publish_id": row.publish_id},
                )
            now = self._clock()
            previous = {"error_code": row.error_code, "error_message": row.error_message}
            row.state, row.error_code, row.error_message, row.slot_reserved_at = PostState.queued, None, None, None
            row.updated_at = now
            self._add_event(session, row, PostState.failed, kind="retry", at=now, message=reason, data=previous)
            return Post.model_validate(row)

    def abandon_publish_id(self, post: Post | int, publish_id: str, reason: str, data: dict[str, Any] | None = None) -> Post:
        """Give up an initialized post's publish_id that never received a byte: back to media_ready,
        without publish_id, so the next init gives the post a new one (its daily slot stays reserved).

        Only the caller can know that no byte was sent and none ever will be (it asked TikTok's
        status/fetch and knows the uploader is gone): the ledger checks that the post is still
        initialized with `publish_id`, so two callers cannot both abandon it. The audit trail keeps
        the abandoned publish_id.
        """
        post_id = _post_id(post)
        with self._transaction(write=True) as session:
            row = self._post(session, post_id, lock=True)
            if row.state is not PostState.initialized or row.publish_id != publish_id:
                raise IllegalTransition(
                    f"post {post_id} is {row.state} with publish_id {row.publish_id}: only an initialized post "
                    f"can give up its publish_id {publish_id}",
                    detail={"post_id": post_id, "state": str(row.state), "publish_id": row.publish_id},
                )
            now = self._clock()
            row.state, row.publish_id, row.updated_at = PostState.media_ready, None, now
            self._add_event(session, row, PostState.initialized, kind="publish_id_abandoned", at=now, message=reason,
                            data={"abandoned_publish_id": publish_id, **(data or {})})
            return Post.model_validate(row)

    def note(self, post: Post | int, kind: str, message: str, data: dict[str, Any] | None = None) -> Post:
        """Append an event to the post's audit trail without changing its state (e.g. `deferred`)."""
        post_id = _post_id(post)
        with self._transaction(write=True) as session:
            row = self._post(session, post_id, lock=True)
            now = self._clock()
            row.updated_at = now
            self._add_event(session, row, row.state, kind=kind, at=now, message=message, data=data)
            return Post.model_validate(row)

    def defer_post(self, post: Post | int, until: datetime, message: str, data: dict[str, Any] | None = None) -> Post:
        """Promise the post the daily-cap slot at `until` (DailyCapReached.next_slot_at): later deferrals
        of the account's posts count it as taken. Event `deferred`; cleared when the post takes a slot."""
        post_id = _post_id(post)
        if until.tzinfo is None:
            raise LedgerInputInvalid(f"defer_post needs an aware datetime, got {until!r}", detail={"post_id": post_id})
        with self._transaction(write=True) as session:
            row = self._post(session, post_id, lock=True)
            if row.state not in BEFORE_INIT_STATES:
                raise IllegalTransition(f"post {post_id} is {row.state}: only posts before init are deferred",
                                        detail={"post_id": post_id, "state": str(row.state)})
            now = self._clock()
            row.deferred_to, row.updated_at = until, now
            self._add_event(session, row, row.state, kind="deferred", at=now, message=message,
                            data={**(data or {}), "deferred_to": until.isoformat()})
            return Post.model_validate(row)

    def mark_initialized(self, post: Post | int, publish_id: str) -> Post:
        """Record TikTok's publish_id (committed at once, before any byte is uploaded), so a crash after
        init is reconciled by polling instead of initializing a second post."""
        return self.transition(post, PostState.initialized, publish_id=publish_id)

    def release_hold(self, post: Post | int, mode: PublishMode) -> Post:
        """Turn a hold draft (not yet at TikTok) into a direct or inbox post."""
        post_id = _post_id(post)
        if mode is PublishMode.hold:
            raise LedgerInputInvalid(f"post {post_id}: release_hold needs direct or inbox", detail={"mode": str(mode)})
        with self._transaction(write=True) as session:
            row = self._post(session, post_id, lock=True)
            if row.mode is not PublishMode.hold or row.state not in BEFORE_INIT_STATES:
                raise IllegalTransition(
                    f"post {post_id} is a {row.mode} post in state {row.state}, not a hold draft",
                    detail={"post_id": post_id, "mode": str(row.mode), "state": str(row.state)},
                )
            now = self._clock()
            row.mode = mode
            row.updated_at = now
            self._add_event(session, row, row.state, kind="mode_changed", at=now, data={"mode": str(mode)})
            return Post.model_validate(row)

    def release_reviewed(self, post: Post | int, mode: PublishMode, caption: str, *, message: str,
                         data: dict[str, Any]) -> Post:
        """A post waiting for its review (a hold draft, or a released one not yet at TikTok) goes on as
        the reviewer chose: `mode` (direct or inbox) and `caption`, with a `reviewed` event holding
        `data` in its audit trail."""
        post_id = _post_id(post)
        if mode is PublishMode.hold:
            raise LedgerInputInvalid(f"post {post_id}: a reviewed post goes on as direct or inbox",
                                     detail={"mode": str(mode)})
        with self._transaction(write=True) as session:
            row = self._post(session, post_id, lock=True)
            if row.state not in BEFORE_INIT_STATES:
                raise IllegalTransition(
                    f"post {post_id} is {row.state}: only a post not yet sent to TikTok can be reviewed",
                    detail={"post_id": post_id, "state": str(row.state)},
                )
            now = self._clock()
            row.mode, row.caption, row.updated_at = mode, caption, now
            self._add_event(session, row, row.state, kind="reviewed", at=now, message=message, data=data)
            return Post.model_validate(row)

    def get_post(self, post_id: int) -> Post:
        with self._transaction(write=False) as session:
            return Post.model_validate(self._post(session, post_id))

    def get_post_by_idempotency_key(self, idempotency_key: str) -> Post:
        with self._transaction(write=False) as session:
            row = self._post_by_key(session, idempotency_key)
            if row is None:
                raise PostNotFound(
                    f"no post with idempotency key {idempotency_key!r}", detail={"idempotency_key": idempotency_key}
                )
            return Post.model_validate(row)

    def get_post_by_publish_id(self, publish_id: str) -> Post:
        with self._transaction(write=False) as session:
            row = session.scalar(sa.select(PostRow).where(PostRow.publish_id == publish_id))
            if row is None:
                raise PostNotFound(f"no post with publish_id {publish_id!r}", detail={"publish_id": publish_id})
            return Post.model_validate(row)

    def list_posts(
        self,
        *,
        account_name: str | None = None,
        states: Sequence[PostState] | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Post]:
        """Posts newest first, filtered by account, states and creation time (`since`, inclusive)."""
        with self._transaction(write=False) as session:
            query = sa.select(PostRow).order_by(PostRow.created_at.desc(), PostRow.id.desc())
            if account_name is not None:
                query = query.where(PostRow.account_id == self._account(session, account_name).id)
            if states is not None:
                query = query.where(PostRow.state.in_(list(states)))
            if since is not None:
                query = query.where(PostRow.created_at >= since)
            if limit is not None:
                query = query.limit(limit)
            return [Post.model_validate(row) for row in session.scalars(query)]

    def posts_to_reconcile(self, *, account_name: str | None = None) -> list[Post]:
        """Posts whose outcome TikTok may still change (processing, unconfirmed, sent_to_inbox)."""
        return self.list_posts(account_name=account_name, states=sorted(RECONCILE_STATES))

    def post_events(self, post_id: int) -> list[PostEvent]:
        """The post's audit trail, oldest first."""
        with self._transaction(write=False) as session:
            self._post(session, post_id)
            rows = session.scalars(
                sa.select(PostEventRow).where(PostEventRow.post_id == post_id).order_by(PostEventRow.id)
            )
            return [_without_upload_url(PostEvent.model_validate(row)) for row in rows]

    def upload_url(self, post: Post | int) -> str | None:
        """The upload URL TikTok gave the post's current publish_id (decrypted); None once its upload
        is over or when none was stored."""
        post_id = _post_id(post)
        with self._transaction(write=False) as session:
            row = self._post(session, post_id)
            if row.state is not PostState.initialized:
                return None
            events = session.scalars(
                sa.select(PostEventRow)
                .where(PostEventRow.post_id == post_id, PostEventRow.to_state == PostState.initialized)
                .order_by(PostEventRow.id.desc())
            )
            for event in events:
                if event.from_state is PostState.initialized or not event.data:
                    continue  # notes and claim events of an initialized post; the transition into it holds the URL
                if sealed := event.data.get(_SEALED_UPLOAD_URL):
                    return self._cipher.decrypt(sealed, account_name=row.account.name)
                return event.data.get(_PLAIN_UPLOAD_URL)  # stored in plaintext by earlier versions
            return None

    # --- claims (leases) ---------------------------------------------------------------------------

    def claim_post(self, post: Post | int, owner: str, lease: timedelta, *, take_over_from: str | None = None) -> Claim:
        """Claim the post for `owner` until now + `lease`, by compare-and-set: it succeeds only while no
        other owner holds a live lease (none, expired, or already `owner`'s: then it is a renewal).
        `take_over_from` names a holder the caller knows to be dead (its run ended): its live lease is
        taken over too, and only while that holder still has it.

        One conditional UPDATE decides (`lease_owner IS NULL OR lease_expires_at <= now OR lease_owner =
        owner`, and unchanged since read), checked by its rowcount, so of any number of concurrent
        claimers, in threads or processes, on SQLite or PostgreSQL, exactly one wins. A new claim is
        recorded in the post's events as `claimed`, a takeover of an expired lease as `claim_taken_over`
        (renewals are not logged). Raises `PostClaimedElsewhere` (owner, lease_expires_at) otherwise.
        """
        post_id = _post_id(post)
        _check_owner(owner)
        if lease <= timedelta(0):
            raise LedgerInputInvalid(f"a lease must be positive, got {lease}", detail={"lease": str(lease)})
        for _ in range(_CLAIM_ROUNDS):
            with self._transaction(write=True) as session:
                seen = session.execute(
                    sa.select(PostRow.state, PostRow.lease_owner, PostRow.lease_expires_at).where(PostRow.id == post_id)
                ).first()
                if seen is None:
                    raise PostNotFound(f"no post with id {post_id}", detail={"post_id": post_id})
                now = self._clock()
                if (seen.lease_owner not in (None, owner) and seen.lease_expires_at > now
                        and seen.lease_owner != take_over_from):
                    raise PostClaimedElsewhere(post_id, seen.lease_owner, seen.lease_expires_at)
                expires_at = now + lease
                swapped = session.execute(
                    sa.update(PostRow)
                    .where(
                        PostRow.id == post_id,
                        sa.or_(
                            PostRow.lease_owner.is_(None),
                            PostRow.lease_expires_at <= now,
                            PostRow.lease_owner == owner,
                            *([PostRow.lease_owner == take_over_from] if take_over_from else []),
                        ),
                        # Compare-and-set: nobody changed the lease since we read it (the event stays true).
                        PostRow.lease_owner.is_not_distinct_from(seen.lease_owner),
                        PostRow.lease_expires_at.is_not_distinct_from(seen.lease_expires_at),
                    )
                    .values(lease_owner=owner, lease_expires_at=expires_at)
                    .execution_options(synchronize_session=False)
                ).rowcount
                if swapped != 1:
                    continue  # someone else's claim, renewal or release landed between read and update
                taken_over_from = seen.lease_owner if seen.lease_owner not in (None, owner) else None
                if seen.lease_owner != owner:
                    data: dict[str, Any] = {"owner": owner, "lease_expires_at": expires_at.isoformat()}
                    if taken_over_from is not None:
                        data |= {"taken_over_from": taken_over_from,
                                 "expired_at": seen.lease_expires_at.isoformat()}
                    session.add(PostEventRow(
                        post_id=post_id, at=now, from_state=seen.state, to_state=seen.state,
                        kind="claim_taken_over" if taken_over_from else "claimed",
                        message=(f"{owner} took over the lease of {taken_over_from} "
                                 + ("(it expired)" if seen.lease_expires_at <= now else "(its run has ended)")
                                 if taken_over_from else f"claimed by {owner}"),
                        data=data,
                    ))
                return Claim(post_id=post_id, owner=owner, expires_at=expires_at, taken_over_from=taken_over_from)
        raise DatabaseUnavailable(
            f"post {post_id}: the lease kept changing under {_CLAIM_ROUNDS} claim attempts; try again",
            detail={"post_id": post_id, "owner": owner},
        )

    def renew_claim(self, post: Post | int, owner: str, lease: timedelta) -> Claim:
        """Extend `owner`'s lease to now + `lease` (also when it expired but nobody took it over yet).
        Raises `ClaimLost` when another owner took it over or it was released: stop working on the post."""
        post_id = _post_id(post)
        _check_owner(owner)
        if lease <= timedelta(0):
            raise LedgerInputInvalid(f"a lease must be positive, got {lease}", detail={"lease": str(lease)})
        with self._transaction(write=True) as session:
            now = self._clock()
            expires_at = now + lease
            renewed = session.execute(
                sa.update(PostRow)
                .where(PostRow.id == post_id, PostRow.lease_owner == owner)
                .values(lease_expires_at=expires_at)
                .execution_options(synchronize_session=False)
            ).rowcount
            if renewed == 1:
                return Claim(post_id=post_id, owner=owner, expires_at=expires_at)
            raise ClaimLost(post_id, owner, self._post(session, post_id).lease_owner)

    def release_claim(self, post: Post | int, owner: str) -> bool:
        """Give up `owner`'s lease (event `claim_released`); False when `owner` did not hold it (any more)."""
        post_id = _post_id(post)
        with self._transaction(write=True) as session:
            row = self._post(session, post_id)
            released = session.execute(
                sa.update(PostRow)
                .where(PostRow.id == post_id, PostRow.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None)
                .execution_options(synchronize_session=False)
            ).rowcount
            if released != 1:
                return False
            now = self._clock()
            session.add(PostEventRow(post_id=post_id, at=now, from_state=row.state, to_state=row.state,
                                     kind="claim_released", message=f"released by {owner}", data={"owner": owner}))
            return True

    def get_claim(self, post: Post | int) -> Claim | None:
        """The post's live lease, or None when nobody holds one (never claimed, released or expired)."""
        post_id = _post_id(post)
        with self._transaction(write=False) as session:
            row = self._post(session, post_id)
            if row.lease_owner is None or row.lease_expires_at is None or row.lease_expires_at <= self._clock():
                return None
            return Claim(post_id=post_id, owner=row.lease_owner, expires_at=row.lease_expires_at)

    # --- init attempts (write-ahead) ----------------------------------------------------------------

    def record_init_attempt(self, post: Post | int, *, owner: str | None = None) -> InitAttempt:
        """Record an init call before making it (committed when this returns): the next attempt of a
        media_ready post holding a slot, outcome `pending`. Event `init_attempt`.

        Earlier attempts still pending are marked `lost` first: their runner died or gave up without
        storing an answer (the caller holds the claim, so nobody else is calling). With `owner`, the
        attempt is recorded only while `owner` holds the post's lease (else `ClaimLost`): a runner whose
        expired lease was taken over cannot call init any more.

        Daily cap: an attempt after one whose answer may have created a post at TikTok (pending, lost or
        answered) needs a slot of its own; `DailyCapReached` (next_slot_at) when none is left.
        """
        post_id = _post_id(post)
        if owner is not None:
            _check_owner(owner)
        with self._transaction(write=True) as session:
            account_id = session.scalar(sa.select(PostRow.account_id).where(PostRow.id == post_id))
            if account_id is None:
                raise PostNotFound(f"no post with id {post_id}", detail={"post_id": post_id})
            account = session.scalars(sa.select(AccountRow).where(AccountRow.id == account_id).with_for_update()).one()
            row = self._post(session, post_id, lock=True)
            if owner is not None and row.lease_owner != owner:
                raise ClaimLost(post_id, owner, row.lease_owner)
            if account.status is AccountStatus.needs_reconnect:
                raise AccountNeedsReconnect(account.name, account.status_reason or "marked needs_reconnect")
            if row.state is not PostState.media_ready or row.publish_id is not None:
                raise IllegalTransition(
                    f"post {post_id} is {row.state}" + (f" with publish_id {row.publish_id}" if row.publish_id else "")
                    + ": init attempts are recorded for media_ready posts without a publish_id",
                    detail={"post_id": post_id, "state": str(row.state), "publish_id": row.publish_id},
                )
            if row.slot_reserved_at is None:
                raise IllegalTransition(
                    f"post {post_id} holds no daily slot: reserve_slot comes before init",
                    detail={"post_id": post_id},
                )
            now = self._clock()
            attempts = list(session.scalars(
                sa.select(InitAttemptRow).where(InitAttemptRow.post_id == post_id).order_by(InitAttemptRow.number)
            ))
            number = attempts[-1].number + 1 if attempts else 1
            for stale in (a for a in attempts if a.outcome is AttemptOutcome.pending):
                stale.outcome, stale.finished_at = AttemptOutcome.lost, now
                self._slot_seen_by_tiktok(session, row, stale, now)
                stale.error_message = f"superseded by attempt {number}: no answer was ever stored"
                self._add_event(session, row, row.state, kind="init_attempt_lost", at=now, message=stale.error_message,
                                data={"attempt": stale.number, "attempt_id": stale.id})
            if any(a.outcome in CAP_COUNTED_OUTCOMES for a in attempts):
                limit, usage, when = self._cap(session, account, row.mode, now)
                if usage.left == 0:
                    raise DailyCapReached(
                        f"account {account.name!r}: a new init of post {post_id} (attempt {number}, after one TikTok "
                        f"may have counted) needs a {row.mode} slot of its own, and {usage.used} of {limit} are used "
                        f"in the last 24 h (inits whose answer was lost count too); the next slot frees {when}",
                        next_slot_at=usage.next_slot_at,
                        detail={"account_name": account.name, "mode": str(row.mode), "post_id": post_id,
                                "attempt": number, **usage.model_dump(mode="json")},
                    )
            attempt = InitAttemptRow(post_id=post_id, number=number, owner=owner, started_at=now,
                                     outcome=AttemptOutcome.pending)
            session.add(attempt)
            session.flush()
            row.updated_at = now
            self._add_event(session, row, row.state, kind="init_attempt", at=now,
                            message=f"init attempt {number}" + (f" by {owner}" if owner else ""),
                            data={"attempt": number, "attempt_id": attempt.id, "owner": owner})
            return InitAttempt.model_validate(attempt)

    def record_publish_id(self, attempt: InitAttempt | int, publish_id: str, *, privacy_level: str | None = None,
                          message: str | None = None, data: dict[str, Any] | None = None,
                          upload_url: str | None = None) -> Post:
        """Store the publish_id TikTok answered to `attempt`, in its own commit, the moment it arrives:
        the attempt becomes `answered` and the post `initialized` with that publish_id, together
        (with `privacy_level`, and `message` and `data` on the transition's event).

        `upload_url` carries TikTok's upload token, a bearer credential for this post's bytes: it is
        stored encrypted like the account tokens, read back only through `upload_url()`, and
        forgotten once the post leaves `initialized` (its upload is over, one way or another).

        Idempotent for the same publish_id. When the post can no longer take it (another attempt's
        publish_id was stored first, or the post moved on), the attempt still keeps its publish_id
        (committed, event `init_answer_late`) and `IllegalTransition` is raised: upload nothing to it.
        """
        if not publish_id:
            raise LedgerInputInvalid("record_publish_id needs the publish_id TikTok returned", detail={})
        extra = data
        attempt_id = attempt.id if isinstance(attempt, InitAttempt) else attempt
        late: IllegalTransition | None = None
        try:
            with self._transaction(write=True) as session:
                found = self._attempt(session, attempt_id)
                row = self._post(session, found.post_id, lock=True)
                found = self._attempt(session, attempt_id, lock=True)
                if found.outcome is AttemptOutcome.answered:
                    if found.publish_id == publish_id:
                        return Post.model_validate(row)
                    raise IllegalTransition(
                        f"init attempt {found.number} of post {row.id} was already answered with publish_id "
                        f"{found.publish_id}, not {publish_id}",
                        detail={"post_id": row.id, "attempt": found.number, "publish_id": found.publish_id},
                    )
                if found.outcome is AttemptOutcome.failed:
                    raise IllegalTransition(
                        f"init attempt {found.number} of post {row.id} already failed ({found.error_code}); "
                        f"it cannot be answered with publish_id {publish_id}",
                        detail={"post_id": row.id, "attempt": found.number, "error_code": found.error_code},
                    )
                now = self._clock()
                found.outcome, found.publish_id, found.finished_at = AttemptOutcome.answered, publish_id, now
                self._slot_seen_by_tiktok(session, row, found, now)
                data = {"publish_id": publish_id, "attempt": found.number, "attempt_id": found.id}
                from_state = row.state
                if row.state is PostState.media_ready and row.publish_id is None:
                    row.state, row.publish_id, row.updated_at = PostState.initialized, publish_id, now
                    if privacy_level is not None:
                        row.privacy_level = privacy_level
                    sealed = {_SEALED_UPLOAD_URL: self._cipher.encrypt(upload_url)} if upload_url else {}
                    self._add_event(session, row, from_state, kind="transition", at=now,
                                    message=message or f"init attempt {found.number} answered",
                                    data={**(extra or {}), **data, **sealed})
                    session.flush()
                    return Post.model_validate(row)
                message = (f"init attempt {found.number} answered publish_id {publish_id} after the post became "
                           f"{row.state}" + (f" with publish_id {row.publish_id}" if row.publish_id else "")
                           + ": nothing may be uploaded to it")
                self._add_event(session, row, from_state, kind="init_answer_late", at=now, message=message, data=data)
                late = IllegalTransition(message, detail={"post_id": row.id, **data, "state": str(row.state)})
        except ConstraintViolated as exc:
            raise DuplicatePost(
                f"publish_id {publish_id} already belongs to another post", detail={"publish_id": publish_id}
            ) from exc
        raise late  # after the attempt's publish_id is committed

    def adopt_publish_id(self, post: Post | int, publish_id: str, *, message: str,
                         data: dict[str, Any] | None = None) -> Post:
        """Give an unconfirmed post (its init's answer was lost) the publish_id TikTok named for it later,
        e.g. in a webhook: its lost attempt becomes the answered one, the post stays unconfirmed until
        the outcome is recorded. `DuplicatePost` when another post has that publish_id."""
        if not publish_id:
            raise LedgerInputInvalid("adopt_publish_id needs a publish_id", detail={})
        post_id = _post_id(post)
        try:
            with self._transaction(write=True) as session:
                row = self._post(session, post_id, lock=True)
                if row.state is not PostState.unconfirmed or row.publish_id is not None:
                    raise IllegalTransition(
                        f"post {post_id} is {row.state}" + (f" with publish_id {row.publish_id}" if row.publish_id else "")
                        + ": only an unconfirmed post without a publish_id can adopt one",
                        detail={"post_id": post_id, "state": str(row.state), "publish_id": row.publish_id},
                    )
                now = self._clock()
                lost = session.scalars(
                    sa.select(InitAttemptRow).where(InitAttemptRow.post_id == post_id,
                                                    InitAttemptRow.outcome == AttemptOutcome.lost)
                    .order_by(InitAttemptRow.number.desc()).limit(1).with_for_update()).first()
                if lost is not None:
                    lost.outcome, lost.publish_id, lost.finished_at = AttemptOutcome.answered, publish_id, now
                row.publish_id, row.updated_at = publish_id, now
                self._add_event(session, row, row.state, kind="publish_id_adopted", at=now, message=message,
                                data={**(data or {}), "publish_id": publish_id,
                                      "attempt": lost.number if lost is not None else None})
                session.flush()
                return Post.model_validate(row)
        except ConstraintViolated as exc:
            raise DuplicatePost(
                f"publish_id {publish_id} already belongs to another post", detail={"publish_id": publish_id}
            ) from exc

    def mark_attempt_failed(self, attempt: InitAttempt | int, *, error_code: str, error_message: str) -> InitAttempt:
        """TikTok answered the init with an error: no post was created (the attempt stops counting toward
        the cap). The post's own state is the caller's to change. Event `init_attempt_failed`."""
        return self._finish_attempt(attempt, AttemptOutcome.failed, error_code=error_code, error_message=error_message)

    def mark_attempt_lost(self, attempt: InitAttempt | int, reason: str) -> InitAttempt:
        """The init's answer never arrived (5xx, timeout, dropped connection): TikTok may have created a
        post nobody can upload to. It keeps counting toward the cap; a new attempt is safe for FILE_UPLOAD.
        Idempotent. Event `init_attempt_lost`."""
        return self._finish_attempt(attempt, AttemptOutcome.lost, error_message=reason)

    def init_attempts(self, post: Post | int) -> list[InitAttempt]:
        """The post's init attempts, first to last."""
        post_id = _post_id(post)
        with self._transaction(write=False) as session:
            self._post(session, post_id)
            rows = session.scalars(
                sa.select(InitAttemptRow).where(InitAttemptRow.post_id == post_id).order_by(InitAttemptRow.number)
            )
            return [InitAttempt.model_validate(row) for row in rows]

    def _finish_attempt(
        self, attempt: InitAttempt | int, outcome: AttemptOutcome, *, error_code: str | None = None,
        error_message: str | None = None,
    ) -> InitAttempt:
        attempt_id = attempt.id if isinstance(attempt, InitAttempt) else attempt
        with self._transaction(write=True) as session:
            found = self._attempt(session, attempt_id)
            row = self._post(session, found.post_id, lock=True)
            found = self._attempt(session, attempt_id, lock=True)
            allowed = {AttemptOutcome.pending} | ({AttemptOutcome.lost} if outcome is AttemptOutcome.failed else set())
            if found.outcome is outcome and outcome is AttemptOutcome.lost:
                return InitAttempt.model_validate(found)
            if found.outcome not in allowed:
                raise IllegalTransition(
                    f"init attempt {found.number} of post {row.id} is {found.outcome}; it cannot become {outcome}",
                    detail={"post_id": row.id, "attempt": found.number, "outcome": str(found.outcome)},
                )
            now = self._clock()
            found.outcome, found.finished_at = outcome, now
            found.error_code, found.error_message = error_code, error_message
            if outcome is AttemptOutcome.lost:
                self._slot_seen_by_tiktok(session, row, found, now)
            self._add_event(session, row, row.state, kind=f"init_attempt_{outcome}", at=now, message=error_message,
                            data={"attempt": found.number, "attempt_id": found.id, "error_code": error_code})
            return InitAttempt.model_validate(found)

    # --- webhook outbox -----------------------------------------------------------------------------

    def add_webhook_deliveries(self, entries: Sequence[OutboxEntry]) -> list[WebhookDelivery]:
        """Store deliveries in the outbox before they are first tried (committed when this returns), due at
        once: one per (event_id, receiver), in the order given. An entry already stored (the same outcome
        reported again) is not stored twice: its row is returned as it stands, delivered or not."""
        for entry in entries:
            _check_storable("webhook body", entry.body)
        for _ in range(_CLAIM_ROUNDS):
            try:
                with self._transaction(write=True) as session:
                    now = self._clock()
                    posts = {e.post_id for e in entries if e.post_id is not None}
                    known = set(session.scalars(sa.select(PostRow.id).where(PostRow.id.in_(sorted(posts))))) if posts else set()
                    if missing := sorted(posts - known):
                        raise PostNotFound(f"no post with id {missing[0]}", detail={"post_id": missing[0]})
                    stored: list[WebhookDeliveryRow] = []
                    for entry in entries:
                        row = session.scalar(sa.select(WebhookDeliveryRow).where(
                            WebhookDeliveryRow.event_id == entry.event_id,
                            WebhookDeliveryRow.receiver == entry.receiver))
                        if row is None:
                            row = WebhookDeliveryRow(
                                **entry.model_dump(), status=DeliveryStatus.pending, attempts=0, created_at=now,
                                next_attempt_at=now,
                            )
                            session.add(row)
                        stored.append(row)
                    session.flush()
                    return [WebhookDelivery.model_validate(row) for row in stored]
            except ConstraintViolated:
                continue  # another process stored one of them meanwhile: read it this time
        raise DatabaseUnavailable(
            f"the webhook outbox kept changing under {_CLAIM_ROUNDS} attempts to store {len(entries)} deliveries; "
            "try again", detail={"events": sorted({e.event_id for e in entries})},
        )

    def claim_webhook_delivery(self, delivery_id: int, lease: timedelta, *, due_only: bool) -> WebhookDelivery | None:
        """Take a pending delivery for one try until now + `lease`, by compare-and-set: None when it is
        delivered, given up, being tried by another sender (a live lease), or, with `due_only`, not due
        yet (`next_attempt_at` in the future). Of concurrent claimers exactly one gets it; a sender that
        died leaves a lease that lapses, so nothing stays claimed for ever."""
        if lease <= timedelta(0):
            raise LedgerInputInvalid(f"a lease must be positive, got {lease}", detail={"lease": str(lease)})
        with self._transaction(write=True) as session:
            now = self._clock()
            conditions = [
                WebhookDeliveryRow.id == delivery_id,
                WebhookDeliveryRow.status == DeliveryStatus.pending,
                sa.or_(WebhookDeliveryRow.leased_until.is_(None), WebhookDeliveryRow.leased_until <= now),
            ]
            if due_only:
                conditions.append(WebhookDeliveryRow.next_attempt_at <= now)
            claimed = session.execute(
                sa.update(WebhookDeliveryRow).where(*conditions).values(leased_until=now + lease)
                .execution_options(synchronize_session=False)
            ).rowcount
            row = self._delivery(session, delivery_id)
            return WebhookDelivery.model_validate(row) if claimed == 1 else None

    def record_webhook_attempt(
        self, delivery_id: int, *, status_code: int | None = None, error: str | None = None,
        retry_in: timedelta | None = None,
    ) -> WebhookDelivery:
        """Record one try of a claimed delivery and release its lease. Without `error` the receiver took it
        (2xx): delivered, whatever the row said before (a late 2xx after giving up is still the truth).
        With `error` it stays as it is, pending until tried again no earlier than now + `retry_in`."""
        with self._transaction(write=True) as session:
            row = self._delivery(session, delivery_id, lock=True)
            now = self._clock()
            row.attempts += 1
            row.last_attempt_at, row.last_status, row.leased_until = now, status_code, None
            if error is None:
                row.status, row.delivered_at, row.last_error = DeliveryStatus.delivered, now, None
            else:
                row.last_error = error
                row.next_attempt_at = now + (retry_in if retry_in is not None else timedelta(0))
            return WebhookDelivery.model_validate(row)

    def give_up_webhook_delivery(self, delivery_id: int, reason: str) -> WebhookDelivery:
        """Stop redelivering a pending delivery, recording why (its lease, if the caller held one, ends).
        A delivery that is no longer pending is returned as it is."""
        with self._transaction(write=True) as session:
            row = self._delivery(session, delivery_id, lock=True)
            if row.status is DeliveryStatus.pending:
                row.status, row.status_reason, row.leased_until = DeliveryStatus.given_up, reason, None
            return WebhookDelivery.model_validate(row)

    def get_webhook_delivery(self, delivery_id: int) -> WebhookDelivery:
        with self._transaction(write=False) as session:
            return WebhookDelivery.model_validate(self._delivery(session, delivery_id))

    def webhook_deliveries(
        self, *, statuses: Sequence[DeliveryStatus] | None = None, due: bool = False, post_id: int | None = None,
        event_id: str | None = None, limit: int | None = None,
    ) -> list[WebhookDelivery]:
        """Outbox rows, oldest first. `due`: pending ones a redelivery may try now (due, not being tried)."""
        query = sa.select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.id)
        with self._transaction(write=False) as session:
            if due:
                now = self._clock()
                query = query.where(
                    WebhookDeliveryRow.status == DeliveryStatus.pending, WebhookDeliveryRow.next_attempt_at <= now,
                    sa.or_(WebhookDeliveryRow.leased_until.is_(None), WebhookDeliveryRow.leased_until <= now),
                )
            if statuses is not None:
                query = query.where(WebhookDeliveryRow.status.in_(list(statuses)))
            if post_id is not None:
                query = query.where(WebhookDeliveryRow.post_id == post_id)
            if event_id is not None:
                query = query.where(WebhookDeliveryRow.event_id == event_id)
            if limit is not None:
                query = query.limit(limit)
            return [WebhookDelivery.model_validate(row) for row in session.scalars(query)]

    # --- received TikTok webhooks (dedupe) ------------------------------------------------------------

    def record_received_event(self, key: str, *, event: str, user_openid: str, publish_id: str | None,
                              body: str) -> tuple[ReceivedEvent, bool]:
        """Store a webhook TikTok sent, the first time its dedupe `key` is seen (committed when this
        returns, before the receiver answers 200): (the stored event, True when this call stored it).
        A redelivery of the same key returns the first delivery's row as it stands, and False.

        Race-safe like `create_or_get_post`: the key is unique; of receivers storing the same event at
        the same moment one inserts, the others read its row (on SQLite the write lock orders them)."""
        if not _RECEIVED_EVENT_KEY.fullmatch(key):
            raise LedgerInputInvalid(
                f"the received event key must be 64 lowercase hex characters (a SHA-256), got {len(key)} characters",
                detail={"field": "key", "length": len(key)},
            )
        _check_text("event", event, 64)
        _check_text("user_openid", user_openid, 128)
        if publish_id is not None:
            _check_text("publish_id", publish_id, 128)
        _check_storable("body", body)
        if (size := len(body.encode("utf-8"))) > MAX_RECEIVED_EVENT_BODY_BYTES:
            raise LedgerInputInvalid(
                f"the received event body is {size} bytes; the ledger keeps at most {MAX_RECEIVED_EVENT_BODY_BYTES}",
                detail={"field": "body", "size": size, "max_size": MAX_RECEIVED_EVENT_BODY_BYTES},
            )
        try:
            with self._transaction(write=True) as session:
                existing = self._received_by_key(session, key)
                if existing is not None:
                    return ReceivedEvent.model_validate(existing), False
                row = ReceivedEventRow(key=key, event=event, user_openid=user_openid, publish_id=publish_id,
                                       body=body, received_at=self._clock())
                session.add(row)
                session.flush()
                return ReceivedEvent.model_validate(row), True
        except ConstraintViolated:
            # Another receiver stored the same key between our read and our insert: its row is the one.
            with self._transaction(write=False) as session:
                existing = self._received_by_key(session, key)
                if existing is None:
                    raise
                return ReceivedEvent.model_validate(existing), False

    def mark_received_event_applied(self, event_id: int, outcome: str) -> ReceivedEvent:
        """Record that the event was applied (`applied_at` = now) and what applying it did, in one line.
        Applying it again (a re-application) overwrites both."""
        if not outcome.strip():
            raise LedgerInputInvalid("the outcome of applying a received event is blank",
                                     detail={"field": "outcome", "event_id": event_id})
        with self._transaction(write=True) as session:
            row = self._received(session, event_id, lock=True)
            row.applied_at = self._clock()
            row.outcome = " ".join(outcome.split())  # one line
            return ReceivedEvent.model_validate(row)

    def get_received_event(self, event_id: int) -> ReceivedEvent:
        """One received event as stored now (a receiver reads it again before applying it)."""
        with self._transaction(write=False) as session:
            return ReceivedEvent.model_validate(self._received(session, event_id))

    def received_events(self, *, publish_id: str | None = None, pending_only: bool = False,
                        limit: int = 100, newest_first: bool = False) -> list[ReceivedEvent]:
        """Received events, oldest first (`newest_first`: the latest first), at most `limit`; `publish_id`:
        those naming that post; `pending_only`: those not applied yet (what a receiver restarted after a
        crash applies)."""
        if limit < 1:
            raise LedgerInputInvalid(f"limit must be at least 1, got {limit}", detail={"field": "limit", "limit": limit})
        order = (ReceivedEventRow.received_at, ReceivedEventRow.id)
        query = sa.select(ReceivedEventRow).order_by(*(column.desc() for column in order) if newest_first else order)
        if publish_id is not None:
            query = query.where(ReceivedEventRow.publish_id == publish_id)
        if pending_only:
            query = query.where(ReceivedEventRow.applied_at.is_(None))
        with self._transaction(write=False) as session:
            return [ReceivedEvent.model_validate(row) for row in session.scalars(query.limit(limit))]

    def prune_received_events(self, older_than: timedelta) -> int:
        """Delete the applied events received before now - `older_than`; the number deleted. Pending ones
        are never pruned. `older_than` is at least `TIKTOK_REDELIVERY_WINDOW` (72 h): a redelivery must
        still find its key, or it would be applied twice."""
        if older_than < TIKTOK_REDELIVERY_WINDOW:
            raise LedgerInputInvalid(
                f"received events are kept at least {TIKTOK_REDELIVERY_WINDOW} (TikTok redelivers that long), "
                f"got older_than={older_than}",
                detail={"field": "older_than", "older_than": str(older_than)},
            )
        with self._transaction(write=True) as session:
            before = self._clock() - older_than
            return session.execute(
                sa.delete(ReceivedEventRow)
                .where(ReceivedEventRow.applied_at.is_not(None), ReceivedEventRow.received_at < before)
                .execution_options(synchronize_session=False)
            ).rowcount

    # --- internals --------------------------------------------------------------------------------

    @contextmanager
    def _database_errors(self) -> Iterator[None]:
        """Every database error leaves the ledger as a LedgerError whose message is the error's class and
        the database's one-line reason: never the statement or its parameters (SQLAlchemy's own message
        holds both, and callers print messages or store them as a post's error). The full error goes to
        the `ledger` logger only."""
        try:
            yield
        except (sa_exc.StatementError, OverflowError, UnicodeError) as exc:
            typed = _typed_database_error(exc, self.engine.url.render_as_string(hide_password=True))
            if typed is None:
                raise
            # A constraint a caller names itself (DuplicatePost...) is routine; a failed operation is not.
            level = (logging.INFO if isinstance(typed, ConstraintViolated)
                     else logging.ERROR if isinstance(typed, DatabaseFailed) else logging.WARNING)
            _LOG.log(level, "ledger database error, reported as %s(%s)", type(typed).__name__, typed, exc_info=exc)
            raise typed from exc

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Session]:
        """One session, one transaction: committed when the block ends, rolled back if it raises."""
        sessions = self._write_sessions if write else self._read_sessions
        with self._database_errors(), sessions.begin() as session:
            yield session

    @staticmethod
    def _account(session: Session, name: str, *, lock: bool = False) -> AccountRow:
        query = sa.select(AccountRow).where(AccountRow.name == name)
        row = session.scalar(query.with_for_update() if lock else query)
        if row is None:
            raise AccountNotFound(
                f"no account named {name!r}; connect it with `tiktok-pipeline accounts connect {name}`",
                detail={"name": name},
            )
        return row

    @staticmethod
    def _post(session: Session, post_id: int, *, lock: bool = False) -> PostRow:
        query = sa.select(PostRow).where(PostRow.id == post_id).execution_options(populate_existing=True)
        row = session.scalar(query.with_for_update(of=PostRow) if lock else query)
        if row is None:
            raise PostNotFound(f"no post with id {post_id}", detail={"post_id": post_id})
        return row

    @staticmethod
    def _attempt(session: Session, attempt_id: int, *, lock: bool = False) -> InitAttemptRow:
        query = sa.select(InitAttemptRow).where(InitAttemptRow.id == attempt_id).execution_options(populate_existing=True)
        row = session.scalar(query.with_for_update() if lock else query)
        if row is None:
            raise PostNotFound(f"no init attempt with id {attempt_id}", detail={"attempt_id": attempt_id})
        return row

    @staticmethod
    def _delivery(session: Session, delivery_id: int, *, lock: bool = False) -> WebhookDeliveryRow:
        query = (sa.select(WebhookDeliveryRow).where(WebhookDeliveryRow.id == delivery_id)
                 .execution_options(populate_existing=True))
        row = session.scalar(query.with_for_update() if lock else query)
        if row is None:
            raise DeliveryNotFound(f"no webhook delivery with id {delivery_id}", detail={"delivery_id": delivery_id})
        return row

    @staticmethod
    def _received(session: Session, event_id: int, *, lock: bool = False) -> ReceivedEventRow:
        query = sa.select(ReceivedEventRow).where(ReceivedEventRow.id == event_id)
        row = session.scalar(query.with_for_update() if lock else query)
        if row is None:
            raise ReceivedEventNotFound(f"no received TikTok event with id {event_id}", detail={"event_id": event_id})
        return row

    @staticmethod
    def _received_by_key(session: Session, key: str) -> ReceivedEventRow | None:
        return session.scalar(sa.select(ReceivedEventRow).where(ReceivedEventRow.key == key))

    @staticmethod
    def _post_by_key(session: Session, idempotency_key: str) -> PostRow | None:
        return session.scalar(sa.select(PostRow).where(PostRow.idempotency_key == idempotency_key))

    def _cap(self, session: Session, account: AccountRow, mode: PublishMode, now: datetime, *,
             waiting: PostRow | None = None) -> tuple[int, CapUsage, str]:
        """(the account's cap for `mode`, its usage in the last 24 h, when the next slot frees, as words).

        With `waiting`, a post that wants a slot, the next slot is that post's own: the account's posts
        deferred before it were promised the slots that free first (`defer_post`), so it gets the one
        after theirs, not the same instant."""
        limit = account.direct_daily_cap if mode is PublishMode.direct else account.inbox_daily_cap
        taken = self._slot_times(session, account.id, mode, now)
        usage = cap_usage(taken, limit, now)
        if waiting is not None and usage.left == 0:
            promised = session.scalars(sa.select(PostRow.deferred_to).where(
                PostRow.account_id == account.id, PostRow.mode == mode, PostRow.id != waiting.id,
                PostRow.state.in_(sorted(BEFORE_INIT_STATES)), PostRow.deferred_to.is_not(None)))
            usage = usage.model_copy(update={"next_slot_at": next_free_slot([*taken, *promised], limit, now)})
        when = f"at {usage.next_slot_at:%Y-%m-%d %H:%M:%S} UTC" if usage.next_slot_at else "never (cap is 0)"
        return limit, usage, when

    @staticmethod
    def _slot_times(session: Session, account_id: int, mode: PublishMode, now: datetime) -> list[datetime]:
        reached_tiktok = sa.or_(
            PostRow.publish_id.is_not(None), PostRow.state.not_in([PostState.failed, PostState.discarded])
        )
        query = sa.select(PostRow.id, PostRow.slot_reserved_at).where(
            PostRow.account_id == account_id,
            PostRow.mode == mode,
            PostRow.slot_reserved_at > now - CAP_WINDOW,
            reached_tiktok,
        )
        slots = {post_id: at for post_id, at in session.execute(query) if at is not None}
        # Init attempts whose answer may have created a post at TikTok (pending, lost, answered) count too,
        # conservatively: a post's slot stands for its first such attempt, every further one (a retry after
        # a lost answer, an abandoned publish_id) and those of posts whose slot no longer counts (failed
        # after a lost init) take a slot of their own for 24 h from when they started.
        counted = sa.and_(
            InitAttemptRow.post_id == PostRow.id,
            PostRow.account_id == account_id,
            PostRow.mode == mode,
            InitAttemptRow.outcome.in_(sorted(CAP_COUNTED_OUTCOMES)),
        )
        first_counted: dict[int, int] = {}
        if slots:
            firsts = session.execute(
                sa.select(InitAttemptRow.post_id, sa.func.min(InitAttemptRow.number))
                .where(counted, PostRow.id.in_(list(slots)))
                .group_by(InitAttemptRow.post_id)
            )
            first_counted = {post_id: number for post_id, number in firsts}
        # TikTok saw an init between its start and its answer: the answer's time (or, for one whose
        # answer was lost, when that was concluded) keeps the ledger's window at or behind TikTok's.
        seen_at = sa.func.coalesce(InitAttemptRow.finished_at, InitAttemptRow.started_at)
        recent = session.execute(
            sa.select(InitAttemptRow.post_id, InitAttemptRow.number, seen_at)
            .where(counted, seen_at > now - CAP_WINDOW)
        )
        extra = [at for post_id, number, at in recent if first_counted.get(post_id) != number]
        return [*slots.values(), *extra]

    @staticmethod
    def _slot_seen_by_tiktok(session: Session, row: PostRow, attempt: InitAttemptRow, now: datetime) -> None:
        """The post's daily slot is counted from when TikTok saw its first init that may have created a
        post (answered, or its answer lost), not from when the slot was reserved: a rate-limit wait
        between the two would otherwise end the ledger's 24 h window before TikTok's."""
        earlier = session.scalar(sa.select(sa.func.count()).select_from(InitAttemptRow).where(
            InitAttemptRow.post_id == row.id, InitAttemptRow.number < attempt.number,
            InitAttemptRow.outcome.in_(sorted(CAP_COUNTED_OUTCOMES - {AttemptOutcome.pending}))))
        if not earlier and row.slot_reserved_at is not None and row.slot_reserved_at < now:
            row.slot_reserved_at = now

    def _store_grant(self, row: AccountRow, grant: TokenGrant, now: datetime) -> None:
        row.access_token_ciphertext = self._cipher.encrypt(grant.access_token)
        row.refresh_token_ciphertext = self._cipher.encrypt(grant.refresh_token)
        row.access_expires_at = now + timedelta(seconds=grant.expires_in)
        row.refresh_expires_at = now + timedelta(seconds=grant.refresh_expires_in)
        if grant.scope_list:
            row.scopes = grant.scope_list
        row.updated_at = now

    def _set_needs_reconnect(self, row: AccountRow, reason: str) -> None:
        row.status = AccountStatus.needs_reconnect
        row.status_reason = reason
        row.updated_at = self._clock()

    @staticmethod
    def _add_event(
        session: Session,
        row: PostRow,
        from_state: PostState | None,
        *,
        kind: str,
        at: datetime,
        message: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        if from_state is PostState.initialized and row.state is not PostState.initialized:
            _forget_upload_url(session, row.id)
        session.add(
            PostEventRow(
                post_id=row.id, at=at, from_state=from_state, to_state=row.state, kind=kind, message=message, data=data
            )
        )


def _forget_upload_url(session: Session, post_id: int) -> None:
    """Drop the upload URL (sealed, or plaintext from older versions) from the post's events: once it
    leaves `initialized` nothing may be uploaded to it, and a credential not kept cannot leak."""
    events = session.scalars(
        sa.select(PostEventRow).where(PostEventRow.post_id == post_id, PostEventRow.to_state == PostState.initialized)
    )
    for event in events:
        if (kept := _stripped_of_upload_url(event.data)) is not None:
            event.data = kept


def _without_upload_url(event: PostEvent) -> PostEvent:
    kept = _stripped_of_upload_url(event.data)
    return event if kept is None else event.model_copy(update={"data": kept})


def _stripped_of_upload_url(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """`data` without the upload URL keys; None when it holds none (nothing to change)."""
    if not data or not (_SEALED_UPLOAD_URL in data or _PLAIN_UPLOAD_URL in data):
        return None
    return {key: value for key, value in data.items() if key not in (_SEALED_UPLOAD_URL, _PLAIN_UPLOAD_URL)}


def _one_line(exc: BaseException) -> str:
    """The first line of an error's own text, bounded: for a DB-API error the database's reason (its
    DETAIL, HINT, LINE and statement lines, if any, are left out)."""
    lines = str(exc).strip().splitlines()
    reason = lines[0].strip() if lines else ""
    if len(reason) > _MAX_REASON_LENGTH:
        reason = reason[: _MAX_REASON_LENGTH - 1] + "…"
    return reason or "no reason given"


def _typed_database_error(exc: BaseException, where: str) -> LedgerError | None:
    """The LedgerError standing for a database error (None: not one; raise it as it is).

    SQLAlchemy's errors carry the statement and its parameters in their text; only the wrapped DB-API
    error (`orig`) is quoted, its class and first line."""
    quoted: BaseException | None = exc
    if isinstance(exc, sa_exc.StatementError):
        quoted = exc.orig if exc.orig is not None and not isinstance(exc.orig, sa_exc.StatementError) else None
    cause = f"{_one_line(quoted)} ({type(quoted).__name__})" if quoted is not None else f"({type(exc).__name__})"
    detail = {"error": type(quoted or exc).__name__, "reason": _one_line(quoted) if quoted is not None else None}
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        # Connection refused or lost, lock timeout, serialization failure, deadlock: worth trying again.
        return DatabaseUnavailable(f"ledger database {where} is unavailable: {cause}", detail={"url": where, **detail})
    if isinstance(exc, sa_exc.IntegrityError):
        return ConstraintViolated(f"the ledger database refused a write that conflicts with stored data: {cause}",
                                  detail=detail)
    if isinstance(exc, sa_exc.DataError):  # too long, out of range, NUL in text: final, named
        return LedgerInputInvalid(f"the ledger database refused a value: {cause}", detail=detail)
    if isinstance(exc, sa_exc.DBAPIError):  # ProgrammingError, InternalError, NotSupportedError, ...
        return DatabaseFailed(f"ledger database {where} failed the operation: {cause}", detail={"url": where, **detail})
    if isinstance(quoted, OverflowError | UnicodeError | ValueError | TypeError):
        # A value the driver could not even send: an integer too large for SQLite, a lone surrogate...
        return LedgerInputInvalid(f"the ledger database cannot store a value: {cause}", detail=detail)
    if isinstance(exc, sa_exc.StatementError):
        return DatabaseFailed(f"ledger database {where} failed the operation: {cause}", detail={"url": where, **detail})
    return None


def _check_storable(field: str, value: str) -> None:
    """Refuse text no backend stores alike (NUL: PostgreSQL refuses it, SQLite keeps it; a lone surrogate:
    neither can encode it), before the database sees it: the same LedgerInputInvalid on both."""
    found = UNSTORABLE_CHARACTERS.search(value)
    if found is None:
        return
    what = "a NUL character (U+0000)" if found.group() == "\x00" else f"a lone surrogate (U+{ord(found.group()):04X})"
    raise LedgerInputInvalid(
        f"the {field} contains {what} at position {found.start()}: the ledger stores no such character",
        detail={"field": field, "position": found.start(), "character": f"U+{ord(found.group()):04X}"},
    )


def _check_text(name: str, value: str, max_length: int, *, field: str | None = None) -> None:
    """Refuse a blank value, one over `max_length` characters or one no backend stores alike, naming it."""
    field = field or name
    if not isinstance(value, str) or not value.strip():
        raise LedgerInputInvalid(f"the {name} is blank", detail={"field": field})
    if len(value) > max_length:
        raise LedgerInputInvalid(
            f"the {name} is {len(value)} characters; the ledger keeps at most {max_length}",
            detail={"field": field, "length": len(value), "max_length": max_length},
        )
    _check_storable(field, value)


def _check_owner(owner: str) -> None:
    if not owner or len(owner) > MAX_LEASE_OWNER_LENGTH:
        raise LedgerInputInvalid(
            f"a lease owner is 1 to {MAX_LEASE_OWNER_LENGTH} characters, got {len(owner)}",
            detail={"owner": owner[:MAX_LEASE_OWNER_LENGTH]},
        )


def _post_id(post: Post | int) -> int:
    return post.id if isinstance(post, Post) else post


def _same_post(row: PostRow, wanted: dict[str, Any]) -> Post:
    post = Post.model_validate(row)
    differing = sorted(field for field, value in wanted.items() if getattr(post, field) != value)
    if differing:
        raise DuplicatePost(
            f"idempotency key {post.idempotency_key!r} already belongs to post {post.id}, "
            f"which has a different {', '.join(differing)}",
            detail={"post_id": post.id, "differing": differing},
        )
    return post
