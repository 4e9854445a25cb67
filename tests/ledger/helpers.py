"""Builders shared by the ledger tests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from ledger import Ledger, Post, PostState, PublishMode, TokenGrant
from tiktok_pipeline.errors import PipelineError


class SteppingClock:
    """A clock the test moves by hand (aware UTC), starting at the real current second."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class InvalidGrant(PipelineError):
    """Shaped like the TikTok client's OAuth invalid_grant error: final, needs re-authorization."""

    needs_reauth = True


class TokenEndpointUnavailable(PipelineError):
    """Shaped like the client's temporarily_unavailable / 5xx error: worth retrying."""

    retryable = True


def grant(serial: int, *, open_id: str = "open-brand", expires_in: int = 86_400) -> TokenGrant:
    return TokenGrant(
        access_token=f"act.access-{open_id}-{serial}",
        expires_in=expires_in,
        refresh_token=f"rft.refresh-{open_id}-{serial}",
        refresh_expires_in=31_536_000,
        open_id=open_id,
        scope="user.info.basic,video.publish,video.upload",
    )


def connect(ledger: Ledger, name: str = "brand", **grant_options: object) -> None:
    ledger.upsert_account(
        name, grant(1, open_id=f"open-{name}", **grant_options), username=f"{name}_tt", nickname=name.title()
    )


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_post(ledger: Ledger, key: str, *, account: str = "brand", mode: PublishMode = PublishMode.direct) -> Post:
    post, created = ledger.create_or_get_post(
        key,
        account_name=account,
        source_uri=f"s3://media/{key}.mp4",
        content_sha256=sha256_of(key),
        caption=f"caption of {key}",
        options={"privacy_level": "SELF_ONLY"},
        mode=mode,
    )
    assert created
    return post


def ready_post(ledger: Ledger, key: str, *, account: str = "brand", mode: PublishMode = PublishMode.direct) -> Post:
    """A post whose media is ready: the step right before reserving a slot."""
    return ledger.transition(new_post(ledger, key, account=account, mode=mode), PostState.media_ready)


def initialized_post(ledger: Ledger, key: str, *, account: str = "brand", mode: PublishMode = PublishMode.direct) -> Post:
    post = ledger.reserve_slot(ready_post(ledger, key, account=account, mode=mode))
    return ledger.mark_initialized(post, f"v_pub_{key}")


def insert_legacy_post(connection: sa.Connection, key: str, *, account: str = "brand") -> int:
    """Write an account (if missing) and an initialized post straight into a ledger at an older revision
    (the models describe head, so the Ledger cannot write there): the id of the post."""
    meta = sa.MetaData()
    accounts = sa.Table("accounts", meta, autoload_with=connection)
    posts = sa.Table("posts", meta, autoload_with=connection)
    now = datetime.now(UTC).replace(microsecond=0)
    if connection.dialect.name == "sqlite":  # as the ledger's UTCDateTime stores them there
        now = now.replace(tzinfo=None)
    account_id = connection.scalar(sa.select(accounts.c.id).where(accounts.c.name == account))
    if account_id is None:
        account_id = connection.execute(accounts.insert().values(
            name=account, open_id=f"open-{account}", username=None, nickname=None, scopes=["video.publish"],
            access_token_ciphertext="", refresh_token_ciphertext="", access_expires_at=now, refresh_expires_at=now,
            status="active", status_reason=None, direct_daily_cap=15, inbox_daily_cap=5, created_at=now,
            updated_at=now,
        )).inserted_primary_key[0]
    return connection.execute(posts.insert().values(
        idempotency_key=key, account_id=account_id, source_uri=f"s3://media/{key}.mp4", content_sha256=sha256_of(key),
        caption=f"caption of {key}", options={}, mode="direct", state="initialized", slot_reserved_at=now,
        publish_id=f"v_pub_{key}" if len(key) < 100 else f"v_pub_{sha256_of(key)[:16]}", post_ids=[], created_at=now, updated_at=now,
    )).inserted_primary_key[0]
