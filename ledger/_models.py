"""SQLAlchemy tables of the ledger. The Alembic migrations in `ledger/migrations` must match them
(tests/ledger/test_migrations.py compares both)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ledger._states import AccountStatus, AttemptOutcome, DeliveryStatus, PostState, PublishMode

DEFAULT_DIRECT_DAILY_CAP = 15
DEFAULT_INBOX_DAILY_CAP = 5
#: Longest account name (ACCOUNT_NAME_PATTERN of the ledger allows 64 characters).
MAX_ACCOUNT_NAME_LENGTH = 64
#: Longest idempotency key a post can have: a caller's key (up to 200 characters, PublishRequest)
#: + ":" + the account name fits with room to spare (migration 0003 widened it from 128).
MAX_IDEMPOTENCY_KEY_LENGTH = 320
#: Longest lease owner (a runner's identity: host, pid, flow run id...).
MAX_LEASE_OWNER_LENGTH = 128
#: Characters no backend stores alike: PostgreSQL refuses NUL in text, and a lone surrogate cannot be
#: encoded as UTF-8 at all (SQLite and PostgreSQL both fail on it).
UNSTORABLE_CHARACTERS = re.compile("[\x00\ud800-\udfff]")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out. SQLite keeps no zone, so values are stored there as naive UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the ledger only stores timezone-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DiagnosticText(sa.TypeDecorator[str]):
    """Text the ledger writes for people to read (error messages, reasons): stored on every backend.

    Such text often quotes what others sent (TikTok's error messages, exception texts), so a NUL or a
    lone surrogate in it must not make the write fail (on PostgreSQL the post would then never be
    marked failed): each becomes U+FFFD, and a value over `length` characters is shortened with "…".
    Content the ledger keeps as it is given (captions, URIs, keys) is refused instead, by the Ledger.
    """

    impl = sa.Text
    cache_ok = True

    def __init__(self, length: int | None = None) -> None:
        super().__init__()
        self.length = length
        if length is not None:
            self.impl = sa.String(length)  # VARCHAR(length), as the column was declared before

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        value = UNSTORABLE_CHARACTERS.sub("\ufffd", str(value))
        if self.length is not None and len(value) > self.length:
            value = value[: self.length - 1] + "…"
        return value

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return value


def _enum(enum_class: type[StrEnum], name: str) -> sa.Enum:
    # VARCHAR + CHECK on every backend: adding a value later is a plain migration, no ALTER TYPE.
    return sa.Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
    )


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(MAX_ACCOUNT_NAME_LENGTH), unique=True)
    open_id: Mapped[str] = mapped_column(sa.String(128), unique=True)
    username: Mapped[str | None] = mapped_column(sa.String(128))
    nickname: Mapped[str | None] = mapped_column(DiagnosticText(256))  # TikTok's display name, as it sends it
    scopes: Mapped[list[str]] = mapped_column(sa.JSON)
    access_token_ciphertext: Mapped[str] = mapped_column(sa.Text)
    refresh_token_ciphertext: Mapped[str] = mapped_column(sa.Text)
    access_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    refresh_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[AccountStatus] = mapped_column(_enum(AccountStatus, "account_status"))
    status_reason: Mapped[str | None] = mapped_column(DiagnosticText())
    direct_daily_cap: Mapped[int] = mapped_column(default=DEFAULT_DIRECT_DAILY_CAP)
    inbox_daily_cap: Mapped[int] = mapped_column(default=DEFAULT_INBOX_DAILY_CAP)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set by `accounts remove`: the row stays for its posts' history, without tokens (see Ledger.remove_account).
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PostRow(Base):
    __tablename__ = "posts"
    __table_args__ = (sa.Index(None, "account_id", "slot_reserved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(sa.String(MAX_IDEMPOTENCY_KEY_LENGTH), unique=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"))
    source_uri: Mapped[str] = mapped_column(sa.Text)
    content_sha256: Mapped[str] = mapped_column(sa.String(64))
    caption: Mapped[str] = mapped_column(sa.Text)
    options: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    mode: Mapped[PublishMode] = mapped_column(_enum(PublishMode, "post_mode"))
    state: Mapped[PostState] = mapped_column(_enum(PostState, "post_state"), index=True)
    slot_reserved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    publish_id: Mapped[str | None] = mapped_column(sa.String(128), unique=True)
    post_ids: Mapped[list[str]] = mapped_column(sa.JSON)
    share_url: Mapped[str | None] = mapped_column(sa.Text)
    privacy_level: Mapped[str | None] = mapped_column(sa.String(64))
    error_code: Mapped[str | None] = mapped_column(DiagnosticText(128))
    error_message: Mapped[str | None] = mapped_column(DiagnosticText())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The runner that claimed the post (Ledger.claim_post) and until when: compare-and-set, migration 0004.
    lease_owner: Mapped[str | None] = mapped_column(sa.String(MAX_LEASE_OWNER_LENGTH))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The free daily-cap slot a deferred post waits for (Ledger.defer_post, migration 0007): the next
    # deferred post of the account waits for the slot after it, not for the same one.
    deferred_to: Mapped[datetime | None] = mapped_column(UTCDateTime)

    account: Mapped[AccountRow] = relationship(lazy="joined", innerjoin=True)

    @property
    def account_name(self) -> str:
        return self.account.name


class PostEventRow(Base):
    """Append-only audit trail: the ledger only ever inserts here."""

    __tablename__ = "post_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(sa.ForeignKey("posts.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    from_state: Mapped[PostState | None] = mapped_column(_enum(PostState, "post_event_from_state"))
    to_state: Mapped[PostState] = mapped_column(_enum(PostState, "post_event_to_state"))
    kind: Mapped[str] = mapped_column(sa.String(32))
    message: Mapped[str | None] = mapped_column(DiagnosticText())
    data: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)


class InitAttemptRow(Base):
    """Write-ahead log of TikTok init calls: a row is committed before each call, its outcome after."""

    __tablename__ = "init_attempts"
    __table_args__ = (sa.UniqueConstraint("post_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(sa.ForeignKey("posts.id"))
    number: Mapped[int] = mapped_column()  # 1, 2, ... per post
    owner: Mapped[str | None] = mapped_column(sa.String(MAX_LEASE_OWNER_LENGTH))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[AttemptOutcome] = mapped_column(_enum(AttemptOutcome, "init_attempt_outcome"))
    publish_id: Mapped[str | None] = mapped_column(sa.String(128), index=True)
    error_code: Mapped[str | None] = mapped_column(DiagnosticText(128))
    error_message: Mapped[str | None] = mapped_column(DiagnosticText())


class WebhookDeliveryRow(Base):
    """The webhook outbox (migration 0005): one row per (event, receiver), stored before the first try
    and kept until the receiver answered 2xx, so a receiver that is down loses nothing: `cleanup`
    redelivers the stored body, with the same event id, until it is taken or the window ends.

    The receiver's URL is not stored (webhook URLs often carry a token): `receiver` is its SHA-256, matched
    against the configured URLs when redelivering, and `receiver_label` its scheme and host, for people.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (sa.UniqueConstraint("event_id", "receiver"), sa.Index(None, "status", "next_attempt_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(36))
    event_type: Mapped[str] = mapped_column(sa.String(64))
    post_id: Mapped[int | None] = mapped_column(sa.ForeignKey("posts.id"), index=True)
    receiver: Mapped[str] = mapped_column(sa.String(64))
    receiver_label: Mapped[str] = mapped_column(sa.String(256))
    body: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus, "webhook_delivery_status"))
    attempts: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: When a redelivery may try it next; `leased_until`: a sender is trying it now (until then).
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column()  # the receiver's HTTP status, None: no answer
    last_error: Mapped[str | None] = mapped_column(DiagnosticText())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status_reason: Mapped[str | None] = mapped_column(DiagnosticText())  # why it was given up


#: Longest body of a TikTok webhook the ledger keeps (UTF-8 bytes): TikTok's are well under 2 KiB.
MAX_RECEIVED_EVENT_BODY_BYTES = 64 * 1024


class ReceivedEventRow(Base):
    """The webhooks TikTok sent us (migration 0008): each stored under its dedupe key (the SHA-256 hex the
    receiver computes; TikTok gives no delivery id and redelivers for 72 h) before the receiver answers
    200, then marked applied with what applying it did. Applied ones are pruned after the redelivery
    window; pending ones are kept for a restarted receiver to apply."""

    __tablename__ = "received_tiktok_events"
    __table_args__ = (sa.Index(None, "applied_at", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    event: Mapped[str] = mapped_column(sa.String(64))
    user_openid: Mapped[str] = mapped_column(sa.String(128))
    publish_id: Mapped[str | None] = mapped_column(sa.String(128), index=True)
    body: Mapped[str] = mapped_column(sa.Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(DiagnosticText(1024))  # one line: what applying it did


class RateWindowRow(Base):
    """TikTok's per-token rate limits as sliding windows every process shares (migration 0007): the
    times (epoch seconds, ascending) of the calls to one endpoint for one account within the last
    window. One row per (account, endpoint), locked while a call takes its place."""

    __tablename__ = "rate_windows"

    account_key: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    endpoint: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    sent_at: Mapped[list[float]] = mapped_column(sa.JSON)


def _clean_diagnostic_text_on_set() -> None:
    """Apply DiagnosticText's cleaning when such an attribute is set, not only when it is written: the
    views the Ledger hands back from the same session then say what the database holds."""
    for mapper in Base.registry.mappers:
        for attribute in mapper.column_attrs:
            column_type = attribute.columns[0].type
            if isinstance(column_type, DiagnosticText):
                def clean(_target: Any, value: Any, _old: Any, _initiator: Any, kind: DiagnosticText = column_type) -> Any:
                    return kind.process_bind_param(value, None)  # type: ignore[arg-type]

                sa.event.listen(getattr(mapper.class_, attribute.key), "set", clean, retval=True)


_clean_diagnostic_text_on_set()
