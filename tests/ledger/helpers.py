"""Builders shared by the ledger tests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

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
