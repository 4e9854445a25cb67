"""Login Kit OAuth through `OAuthClient` against the sandbox: authorize page, exchange, expiry, rotation, revoke."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from sandbox import SandboxCreator, SandboxHandle, default_creators
from tiktok import (
    AccessDenied,
    AccessTokenInvalid,
    AuthorizationRequest,
    InvalidClient,
    InvalidGrant,
    OAuthClient,
    OAuthTemporarilyUnavailable,
    SlidingWindowRateLimiter,
    StateMismatch,
    TikTokClient,
    TokenSet,
    new_code_verifier,
    parse_callback,
)
from tiktok_pipeline.settings import AppType, Settings

from .conftest import FakeTime
from .helpers import assert_kind, config

WEB_REDIRECT = "https://studio.example.com/tiktok/callback"
PRIVATE_OPEN_ID = "sbx-open-id-private-creator"


def visit(request: AuthorizationRequest) -> str:
    """What the browser does: open the authorize page and read where it redirects (not following it)."""
    answer = httpx.get(request.url, follow_redirects=False, timeout=30)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def authorize(oauth: OAuthClient, extra_params: Mapping[str, str] | None = None) -> TokenSet:
    request = oauth.authorization_request(extra_params=extra_params)
    callback = parse_callback(visit(request), expected_state=request.state)
    return oauth.exchange_code(callback.code, code_verifier=request.code_verifier)


@pytest.fixture
def api_client(settings_for: Callable[..., Settings], fake_time: FakeTime) -> Callable[[TokenSet], TikTokClient]:
    def make(tokens: TokenSet) -> TikTokClient:
        limiter = SlidingWindowRateLimiter(sleep=fake_time.sleep, clock=fake_time.clock)
        return TikTokClient(tokens.access_token, settings_for(), account_key=tokens.open_id, rate_limit=limiter)

    return make


def test_desktop_pkce_dance_gives_tokens_that_work(
    sandbox: SandboxHandle, settings_for: Callable[..., Settings], api_client: Callable[[TokenSet], TikTokClient]
) -> None:
    settings = settings_for()
    assert settings.app_type is AppType.desktop
    with OAuthClient(settings) as oauth:
        request = oauth.authorization_request(extra_params={"sandbox_user": "private_creator"})
        assert request.code_verifier is not None
        sent = query_of(request.url)
        assert sent["code_challenge"] == hashlib.sha256(request.code_verifier.encode()).hexdigest()
        assert sent["code_challenge_method"] == "S256"

        location = visit(request)
        assert location.startswith(settings.redirect_uri)
        callback = parse_callback(location, expected_state=request.state)
        assert callback.scopes == settings.scope_list
        tokens = oauth.exchange_code(callback.code, code_verifier=request.code_verifier)

        with pytest.raises(InvalidGrant) as replayed:  # a code is single-use
            oauth.exchange_code(callback.code, code_verifier=request.code_verifier)
        assert_kind(replayed.value, "needs_reauth", code="invalid_grant")

    assert tokens.open_id == PRIVATE_OPEN_ID
    assert tokens.scopes == settings.scope_list
    assert tokens.expires_at - tokens.obtained_at == timedelta(seconds=sandbox.config.access_token_ttl)
    assert tokens.refresh_expires_at - tokens.obtained_at == timedelta(seconds=sandbox.config.refresh_token_ttl)
    assert not tokens.refresh_token_rotated
    with api_client(tokens) as tiktok:
        assert tiktok.user_info().open_id == PRIVATE_OPEN_ID
        assert tiktok.creator_info().creator_username == "private_creator"


def test_desktop_exchange_with_another_verifier_is_invalid_grant(settings_for: Callable[..., Settings]) -> None:
    with OAuthClient(settings_for()) as oauth:
        request = oauth.authorization_request()
        callback = parse_callback(visit(request), expected_state=request.state)
        with pytest.raises(InvalidGrant) as refused:
            oauth.exchange_code(callback.code, code_verifier=new_code_verifier())
    assert_kind(refused.value, "needs_reauth", code="invalid_grant", http_status=400)


def test_web_app_dance_without_pkce(
    sandbox: SandboxHandle, settings_for: Callable[..., Settings], api_client: Callable[[TokenSet], TikTokClient]
) -> None:
    sandbox.reset(config(app_type="web", redirect_uris=[WEB_REDIRECT]))
    settings = settings_for()
    assert (settings.app_type, settings.redirect_uri) == (AppType.web, WEB_REDIRECT)
    with OAuthClient(settings) as oauth:
        request = oauth.authorization_request()
        assert request.code_verifier is None
        assert "code_challenge" not in query_of(request.url)
        location = visit(request)
        assert location.startswith(WEB_REDIRECT + "?")
        callback = parse_callback(location, expected_state=request.state)
        tokens = oauth.exchange_code(callback.code)
    assert tokens.open_id == sandbox.config.creators[0].open_id
    with api_client(tokens) as tiktok:
        assert tiktok.creator_info().creator_username == sandbox.config.creators[0].username


def test_callback_with_another_state_is_refused_before_exchange(settings_for: Callable[..., Settings]) -> None:
    settings = settings_for()
    with OAuthClient(settings) as oauth:
        request = oauth.authorization_request()
        location = visit(request)
        stale = oauth.authorization_request()  # e.g. a second tab started another authorization
        with pytest.raises(StateMismatch) as mismatch:
            parse_callback(location, expected_state=stale.state)
        assert_kind(mismatch.value, "final", code="state_mismatch")
        # The code was never spent: the right request can still finish.
        callback = parse_callback(location, expected_state=request.state)
        assert oauth.exchange_code(callback.code, code_verifier=request.code_verifier).access_token


def test_user_who_denies_gives_access_denied(sandbox: SandboxHandle, settings_for: Callable[..., Settings]) -> None:
    denier = SandboxCreator(open_id="sbx-open-id-denier", username="denier", denies_authorization=True)
    sandbox.reset(config(creators=[*default_creators(), denier]))
    with OAuthClient(settings_for()) as oauth:
        request = oauth.authorization_request(extra_params={"sandbox_user": "denier"})
        location = visit(request)
    assert query_of(location)["error"] == "access_denied"
    with pytest.raises(AccessDenied) as denied:
        parse_callback(location, expected_state=request.state)
    assert_kind(denied.value, "final", code="access_denied")


def test_expired_access_token_then_refresh_rotates_the_refresh_token(
    sandbox: SandboxHandle, settings_for: Callable[..., Settings], api_client: Callable[[TokenSet], TikTokClient]
) -> None:
    with OAuthClient(settings_for()) as oauth:
        tokens = authorize(oauth)
        with api_client(tokens) as tiktok:
            tiktok.creator_info()
            sandbox.advance_clock(tokens.expires_in + 1)
            with pytest.raises(AccessTokenInvalid) as expired:
                tiktok.creator_info()
        assert_kind(expired.value, "needs_reauth", code="access_token_invalid", http_status=401)

        refreshed = oauth.refresh(tokens.refresh_token)
        assert refreshed.refresh_token_rotated
        assert refreshed.refresh_token.get_secret_value() != tokens.refresh_token.get_secret_value()
        assert refreshed.access_token.get_secret_value() != tokens.access_token.get_secret_value()
        assert refreshed.open_id == tokens.open_id
        with api_client(refreshed) as tiktok:
            assert tiktok.creator_info().creator_username == "studio_main"

        with pytest.raises(InvalidGrant) as rotated_away:
            oauth.refresh(tokens.refresh_token)
        assert_kind(rotated_away.value, "needs_reauth", code="invalid_grant")
        assert oauth.refresh(refreshed.refresh_token).refresh_token_rotated  # the newest one still works


def test_expired_refresh_token_is_invalid_grant(sandbox: SandboxHandle, settings_for: Callable[..., Settings]) -> None:
    with OAuthClient(settings_for()) as oauth:
        tokens = authorize(oauth)
        sandbox.advance_clock(tokens.refresh_expires_in + 1)
        with pytest.raises(InvalidGrant) as expired:
            oauth.refresh(tokens.refresh_token)
    assert_kind(expired.value, "needs_reauth", code="invalid_grant")


def test_revoke_ends_the_authorization(
    settings_for: Callable[..., Settings], api_client: Callable[[TokenSet], TikTokClient]
) -> None:
    with OAuthClient(settings_for()) as oauth:
        tokens = authorize(oauth)
        oauth.revoke(tokens.access_token)
        with api_client(tokens) as tiktok, pytest.raises(AccessTokenInvalid):
            tiktok.creator_info()
        with pytest.raises(InvalidGrant):
            oauth.refresh(tokens.refresh_token)


def test_wrong_client_secret_is_invalid_client(settings_for: Callable[..., Settings]) -> None:
    request_settings = settings_for()
    with OAuthClient(request_settings) as oauth:
        request = oauth.authorization_request()
        callback = parse_callback(visit(request), expected_state=request.state)
    with OAuthClient(settings_for(client_secret="not-the-secret")) as wrong:
        with pytest.raises(InvalidClient) as refused:
            wrong.exchange_code(callback.code, code_verifier=request.code_verifier)
    assert_kind(refused.value, "final", code="invalid_client", http_status=401)


def test_token_endpoint_5xx_is_retryable_and_spends_nothing(
    sandbox: SandboxHandle, settings_for: Callable[..., Settings]
) -> None:
    with OAuthClient(settings_for()) as oauth:
        request = oauth.authorization_request()
        callback = parse_callback(visit(request), expected_state=request.state)
        sandbox.add_fault("oauth_token", "error_503")
        with pytest.raises(OAuthTemporarilyUnavailable) as unavailable:
            oauth.exchange_code(callback.code, code_verifier=request.code_verifier)
        assert_kind(unavailable.value, "retryable", code="server_error", http_status=503)
        assert oauth.exchange_code(callback.code, code_verifier=request.code_verifier).open_id
