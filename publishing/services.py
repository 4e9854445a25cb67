"""The composition root: settings, the ledger and TikTok clients, built once and handed to every step.

    services = Services(load_settings())          # an entry point builds it
    services.ledger.get_account("brand")          # one Ledger (engine + pool) per database and key
    services.with_client("brand", lambda c: c.query_creator_info())

Nothing here knows Prefect: the Prefect shell (`tasks.runtime`) builds a Services whose encryption key may
come from a Secret block, by passing `key_fallback`. Every TikTok call goes through TikTok's rate limits
kept in the ledger (`publishing.ratelimits`), shared by every worker on that database, unless a caller
passes another `rate_limit` hook. Tests build one over a SQLite ledger and the sandbox.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from ledger import EncryptionKeyMissing, Ledger, TokenGrant
from publishing.ratelimits import LedgerRateLimiter
from tiktok import AccessTokenInvalid, OAuthClient, RateLimitHook, TikTokClient, TokenSet, check_chunk_size
from tiktok_pipeline.settings import Settings, TikTokAppSettings

#: The setting that holds the Fernet key (TIKTOK_PIPELINE_ prefix + Settings.encryption_key).
KEY_ENV_VAR = "TIKTOK_PIPELINE_ENCRYPTION_KEY"

T = TypeVar("T")


def grant_from(tokens: TokenSet) -> TokenGrant:
    """The ledger's view of a token set TikTok returned."""
    return TokenGrant(
        access_token=tokens.access_token.get_secret_value(),
        expires_in=tokens.expires_in,
        refresh_token=tokens.refresh_token.get_secret_value(),
        refresh_expires_in=tokens.refresh_expires_in,
        open_id=tokens.open_id,
        scope=tokens.scope,
    )


def refresher(settings: TikTokAppSettings) -> Callable[[str], TokenGrant]:
    """The refresh callback the ledger calls, under its row lock, when a token is due."""

    def refresh(refresh_token: str) -> TokenGrant:
        with OAuthClient(settings) as oauth:
            return grant_from(oauth.refresh(refresh_token))

    return refresh


def _prepaid_once(hook: RateLimitHook, endpoint: str) -> RateLimitHook:
    """`hook`, except that the first call for `endpoint` passes: its place was taken beforehand."""
    owed = [endpoint]

    def limited(account_key: str, called: str) -> None:
        if owed and called == owed[0]:
            owed.clear()
            return
        hook(account_key, called)

    return limited


@functools.lru_cache(maxsize=8)
def _ledger_for(url: str, key: str | None) -> Ledger:
    # One engine and pool per database and key in this process, however many Services are built.
    return Ledger(url, key)


class Services:
    """What the steps of a post need from the outside world, chosen by configuration."""

    def __init__(
        self,
        settings: Settings,
        *,
        key_fallback: Callable[[], str | None] | None = None,
        key_location: str | None = None,
        rate_limit: RateLimitHook | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        # TikTok's chunk bounds are TikTok's (tiktok/): refused here, at startup, not at the first upload.
        check_chunk_size(settings.chunk_size)
        self.settings = settings
        self._key_fallback = key_fallback
        self._key_location = key_location
        self._rate_limit = rate_limit
        self._ledger = ledger

    def encryption_key(self) -> str | None:
        """The Fernet key for the tokens: the setting, else the fallback (e.g. a Secret block); None when neither has one."""
        if self.settings.encryption_key is not None:
            return self.settings.encryption_key.get_secret_value()
        return self._key_fallback() if self._key_fallback else None

    def encryption_key_missing(self) -> EncryptionKeyMissing:
        """The error naming every place the key may come from (the ledger's own names only the variable)."""
        elsewhere = f" or store it in {self._key_location}" if self._key_location else ""
        return EncryptionKeyMissing(
            f"no encryption key for the account tokens: set {KEY_ENV_VAR} in the worker's environment "
            f"(`tiktok-pipeline db generate-key` makes one){elsewhere}",
            detail={"setting": KEY_ENV_VAR, "elsewhere": self._key_location},
        )

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = _ledger_for(self.settings.storage.effective_database_url, self.encryption_key())
        return self._ledger

    @property
    def rate_limit(self) -> RateLimitHook:
        """The hook every TikTok call passes first: the caller's, else TikTok's limits in the ledger."""
        if self._rate_limit is None:
            self._rate_limit = LedgerRateLimiter(self.ledger)
        return self._rate_limit

    def refresher(self) -> Callable[[str], TokenGrant]:
        return refresher(self.settings.tiktok)

    def with_client(self, account_name: str, call: Callable[[TikTokClient], T], *, rate_limited: bool = True,
                    prepaid: str | None = None) -> T:
        """Run `call` with a client holding a fresh token; on access_token_invalid refresh once and retry.

        Only for calls that TikTok rejected outright (401): nothing happened on TikTok's side, so the
        second attempt cannot duplicate anything. `prepaid`: an endpoint whose rate-limit place the
        caller already took (`rate_limit`) for this call: its first request does not take another.
        """
        if self.encryption_key() is None:
            raise self.encryption_key_missing()
        book = self.ledger
        account = book.get_account(account_name)
        refresh = self.refresher()
        token, _ = book.ensure_fresh_token(account_name, refresh)
        hook = self.rate_limit if rate_limited else None
        if hook is not None and prepaid is not None:
            hook = _prepaid_once(hook, prepaid)
        try:
            with TikTokClient(token, self.settings.tiktok, account_key=account.open_id, rate_limit=hook) as client:
                return call(client)
        except AccessTokenInvalid:
            token, _ = book.ensure_fresh_token(account_name, refresh, rejected_token=token)
            with TikTokClient(token, self.settings.tiktok, account_key=account.open_id, rate_limit=hook) as client:
                return call(client)
