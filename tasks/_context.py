"""Wiring shared by the tasks: settings, the ledger, token refresh and per-account API clients."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency.sync import rate_limit

from ledger import EncryptionKeyMissing, Ledger, TokenGrant
from tasks._policy import rate_limit_name
from tiktok import AccessTokenInvalid, OAuthClient, TikTokClient, TokenSet
from tiktok_pipeline.settings import Settings, load_settings

#: Name of the Prefect Secret block that may hold the Fernet key when no setting provides it.
ENCRYPTION_KEY_BLOCK = "tiktok-pipeline-encryption-key"
#: The setting that holds the key (TIKTOK_PIPELINE_ prefix + Settings.encryption_key).
KEY_ENV_VAR = "TIKTOK_PIPELINE_ENCRYPTION_KEY"

T = TypeVar("T")


def settings() -> Settings:
    return load_settings()


def encryption_key(current: Settings) -> str | None:
    """The Fernet key for the tokens: the setting, else the Secret block; None when neither has one."""
    if current.encryption_key is not None:
        return current.encryption_key.get_secret_value()
    return _key_from_secret_block()


_encryption_key = encryption_key  # the name the tests and older callers use


def encryption_key_missing() -> EncryptionKeyMissing:
    """The error naming both places the key may come from (the ledger's own names only the variable)."""
    return EncryptionKeyMissing(
        f"no encryption key for the account tokens: set {KEY_ENV_VAR} in the worker's environment "
        f"(`tiktok-pipeline db generate-key` makes one) or store it in the Prefect Secret block {ENCRYPTION_KEY_BLOCK}",
        detail={"setting": KEY_ENV_VAR, "secret_block": ENCRYPTION_KEY_BLOCK},
    )


_block_key: list[str] = []  # the Secret block's value once read: every task asks for the ledger


def _key_from_secret_block() -> str | None:
    if _block_key:
        return _block_key[0]
    try:
        from prefect.blocks.system import Secret

        _block_key.append(str(Secret.load(ENCRYPTION_KEY_BLOCK).get()))
    except Exception:  # no block, no Prefect API reachable, ...: the setting is the documented way
        return None  # the ledger raises EncryptionKeyMissing with the fix when a token is touched
    return _block_key[0]


@functools.lru_cache(maxsize=8)
def _ledger_for(url: str, key: str | None) -> Ledger:
    return Ledger(url, key)


def ledger(current: Settings | None = None) -> Ledger:
    """One Ledger (engine + pool) per database and key in this process."""
    current = current or settings()
    return _ledger_for(current.effective_database_url, encryption_key(current))


def grant_from(tokens: TokenSet) -> TokenGrant:
    return TokenGrant(
        access_token=tokens.access_token.get_secret_value(),
        expires_in=tokens.expires_in,
        refresh_token=tokens.refresh_token.get_secret_value(),
        refresh_expires_in=tokens.refresh_expires_in,
        open_id=tokens.open_id,
        scope=tokens.scope,
    )


def refresher(current: Settings) -> Callable[[str], TokenGrant]:
    def refresh(refresh_token: str) -> TokenGrant:
        with OAuthClient(current) as oauth:
            return grant_from(oauth.refresh(refresh_token))

    return refresh


def prefect_rate_limit(account_key: str, endpoint: str) -> None:
    """RateLimitHook routing every TikTok call through Prefect's global rate limits.

    The limits (one per account and endpoint) are created by `tiktok-pipeline setup`; an account
    connected since gets its limits here on first use (`strict=True` never means "no limit").
    """
    name = rate_limit_name(account_key, endpoint)
    try:
        rate_limit(name, strict=True)
    except ConcurrencySlotAcquisitionError:
        from deployments.ratelimits import ensure_rate_limits

        ensure_rate_limits([account_key])
        rate_limit(name, strict=True)


def with_client(current: Settings, account_name: str, call: Callable[[TikTokClient], T], *, use_prefect_limits: bool = True) -> T:
    """Run `call` with a client holding a fresh token; on access_token_invalid refresh once and retry.

    Only for calls that TikTok rejected outright (401): nothing happened on TikTok's side, so the
    second attempt cannot duplicate anything.
    """
    if encryption_key(current) is None:
        raise encryption_key_missing()
    book = ledger(current)
    account = book.get_account(account_name)
    refresh = refresher(current)
    token, _ = book.ensure_fresh_token(account_name, refresh)
    hook = prefect_rate_limit if use_prefect_limits else None
    try:
        with TikTokClient(token, current, account_key=account.open_id, rate_limit=hook) as client:
            return call(client)
    except AccessTokenInvalid:
        token, _ = book.ensure_fresh_token(account_name, refresh, rejected_token=token)
        with TikTokClient(token, current, account_key=account.open_id, rate_limit=hook) as client:
            return call(client)
