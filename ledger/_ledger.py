"""The `Ledger`: one object wrapping an Engine, a session per call and explicit transactions.

Concurrency model
- Writes that must see a consistent picture lock first: on PostgreSQL `SELECT ... FOR UPDATE` on the
  account row (daily caps, token refresh) or the post row (transitions); on SQLite every write
  transaction is `BEGIN IMMEDIATE`, which takes the database's single write lock up front, so
  check-then-write sequences of threads and processes never interleave.
- Reads run in ordinary transactions (WAL lets SQLite readers run beside the writer).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ledger import _migrate
from ledger._crypto import TokenCipher
from ledger._errors import (
    AccountConflict,
    AccountNeedsReconnect,
    AccountNotFound,
    DailyCapReached,
    DatabaseUnavailable,
    DuplicatePost,
    IllegalTransition,
    LedgerInputInvalid,
    PostNotFound,
)
from ledger._models import (
    DEFAULT_DIRECT_DAILY_CAP,
    DEFAULT_INBOX_DAILY_CAP,
    MAX_ACCOUNT_NAME_LENGTH,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    AccountRow,
    PostEventRow,
    PostRow,
)
from ledger._states import (
    BEFORE_INIT_STATES,
    RECONCILE_STATES,
    AccountStatus,
    PostState,
    PublishMode,
    check_transition,
)
from ledger._types import Account, CapsLeft, CapUsage, Post, PostEvent, TokenGrant
from tiktok_pipeline.errors import is_retryable, needs_reauth
from tiktok_pipeline.settings import StorageSettings

Clock = Callable[[], datetime]
#: Exchanges a refresh token for a new grant (the TikTok client's refresh call, injected by the caller).
Refresher = Callable[[str], TokenGrant]

CAP_WINDOW = timedelta(hours=24)
ACCOUNT_NAME_PATTERN = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_ACCOUNT_NAME_LENGTH - 1}}}$")
#: Seconds a SQLite connection waits for the write lock before giving up (then: DatabaseUnavailable).
SQLITE_BUSY_TIMEOUT = 30.0
POSTGRES_CONNECT_TIMEOUT = 10


def default_idempotency_key(content_sha256: str, account_name: str, caption: str, mode: PublishMode | str) -> str:
    """The same video, account, caption and mode give the same key, so a re-run finds the first post."""
    canonical = json.dumps(
        {"account": account_name, "caption": caption, "content_sha256": content_sha256, "mode": str(mode)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def cap_usage(reserved_at: Sequence[datetime], limit: int, now: datetime) -> CapUsage:
    """Usage of one cap given the reservation times of the slots that count."""
    window = sorted(t for t in reserved_at if t > now - CAP_WINDOW)
    used = len(window)
    next_slot_at = None
    if used >= limit and used > 0:
        # The slot that frees next is the one whose leaving brings usage below the limit.
        next_slot_at = window[used - limit] + CAP_WINDOW
    return CapUsage(limit=limit, used=used, next_slot_at=next_slot_at)


def create_ledger_engine(database_url: str) -> sa.Engine:
    url = sa.make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT})
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})
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
        if not ACCOUNT_NAME_PATTERN.match(name):
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
        except IntegrityError as exc:
            raise AccountConflict(
                f"account {name!r} or TikTok user {open_id} was connected by another process at the same time; "
                "run the command again",
                detail={"name": name, "open_id": open_id},
            ) from exc

    def get_account(self, name: str) -> Account:
        with self._transaction(write=False) as session:
            return Account.model_validate(self._account(session, name))

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
            limit = account.direct_daily_cap if row.mode is PublishMode.direct else account.inbox_daily_cap
            usage = cap_usage(self._slot_times(session, account.id, row.mode, now), limit, now)
            if usage.left == 0:
                when = f"at {usage.next_slot_at:%Y-%m-%d %H:%M:%S} UTC" if usage.next_slot_at else "never (cap is 0)"
                raise DailyCapReached(
                    f"account {account.name!r} used {usage.used} of its {limit} {row.mode} posts in the last 24 h; "
                    f"the next slot frees {when}",
                    next_slot_at=usage.next_slot_at,
                    detail={"account_name": account.name, "mode": str(row.mode), **usage.model_dump(mode="json")},
                )
            row.slot_reserved_at = now
            row.updated_at = now
            self._add_event(
                session, row, row.state, kind="slot_reserved", at=now, data={"used": usage.used + 1, "limit": limit}
            )
            return Post.model_validate(row)

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
        except IntegrityError:
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
    ) -> Post:
        """Move the post to `to_state` (validated against the state it has in the database), set the given
        fields (None = unchanged) and append the event, all in one transaction."""
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
        except IntegrityError as exc:
            raise DuplicatePost(
                f"publish_id {publish_id} already belongs to another post", detail={"publish_id": publish_id}
            ) from exc

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
            return [PostEvent.model_validate(row) for row in rows]

    # --- internals --------------------------------------------------------------------------------

    @contextmanager
    def _database_errors(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            where = self.engine.url.render_as_string(hide_password=True)
            raise DatabaseUnavailable(
                f"ledger database {where} is unavailable: {exc.orig}", detail={"url": where}
            ) from exc
        except DataError as exc:  # a value the database refuses (too long, out of range): final, named
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise LedgerInputInvalid(f"the ledger database refused a value: {reason}", detail={"reason": reason}) from exc

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
    def _post_by_key(session: Session, idempotency_key: str) -> PostRow | None:
        return session.scalar(sa.select(PostRow).where(PostRow.idempotency_key == idempotency_key))

    @staticmethod
    def _slot_times(session: Session, account_id: int, mode: PublishMode, now: datetime) -> list[datetime]:
        reached_tiktok = sa.or_(
            PostRow.publish_id.is_not(None), PostRow.state.not_in([PostState.failed, PostState.discarded])
        )
        query = sa.select(PostRow.slot_reserved_at).where(
            PostRow.account_id == account_id,
            PostRow.mode == mode,
            PostRow.slot_reserved_at > now - CAP_WINDOW,
            reached_tiktok,
        )
        return [t for t in session.scalars(query) if t is not None]

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
        session.add(
            PostEventRow(
                post_id=row.id, at=at, from_state=from_state, to_state=row.state, kind=kind, message=message, data=data
            )
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
