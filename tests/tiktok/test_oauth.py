"""OAuth v2: authorize URL, desktop PKCE (hex), callback parsing, token exchange/refresh/revoke."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import tiktok
from tiktok import OAuthClient, new_code_verifier, parse_callback
from tiktok._models import OAuthCallback
from tiktok._oauth import build_authorize_url, code_challenge, new_authorization_request
from tiktok_pipeline.settings import Settings

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def token_answer(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "access_token": "act.new",
        "expires_in": 86400,
        "open_id": "open-1",
        "refresh_expires_in": 31536000,
        "refresh_token": "rft.same",
        "scope": "user.info.basic,video.publish",
        "token_type": "Bearer",
    }
    body.update(overrides)
    return body


class TokenEndpoint:
    """MockTransport handler that records form posts and answers with a scripted response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.response

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.requests[-1].content.decode(), keep_blank_values=True).items()}


def oauth_client(settings: Settings, response: httpx.Response) -> tuple[OAuthClient, TokenEndpoint]:
    endpoint = TokenEndpoint(response)
    return OAuthClient(settings, transport=httpx.MockTransport(endpoint), clock=lambda: NOW), endpoint


# --- authorize URL and PKCE ------------------------------------------------------------------------
def test_desktop_authorize_url_carries_hex_challenge_of_a_fresh_verifier(settings: Settings) -> None:
    first = new_authorization_request(settings, extra_params={"sandbox_user": "alice"})
    second = new_authorization_request(settings)
    assert first.url.startswith(settings.authorize_url + "?")
    params = query_of(first.url)
    assert first.code_verifier is not None
    assert params == {
        "client_key": "ck-123",
        "scope": "user.info.basic,video.publish,video.upload",
        "redirect_uri": "http://localhost:8765/callback/",
        "state": first.state,
        "response_type": "code",
        "code_challenge": hashlib.sha256(first.code_verifier.encode()).hexdigest(),
        "code_challenge_method": "S256",
        "sandbox_user": "alice",
    }
    assert re.fullmatch(r"[0-9a-f]{64}", params["code_challenge"])
    assert first.code_verifier != second.code_verifier and first.state != second.state


@pytest.mark.parametrize("length", [43, 64, 128])
def test_verifier_alphabet_and_length(length: int) -> None:
    verifier = new_code_verifier(length)
    assert re.fullmatch(r"[A-Za-z0-9\-._~]{%d}" % length, verifier)


@pytest.mark.parametrize("length", [42, 129])
def test_verifier_length_out_of_bounds_is_refused(length: int) -> None:
    with pytest.raises(tiktok.InvalidInput):
        new_code_verifier(length)


def test_challenge_is_hex_not_base64url() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == hashlib.sha256(verifier.encode()).hexdigest()
    assert code_challenge(verifier) != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636 base64url


def test_web_app_has_no_pkce(settings: Settings) -> None:
    web = settings.model_copy(update={"app_type": "web"})
    request = new_authorization_request(web)
    assert request.code_verifier is None
    assert "code_challenge" not in query_of(request.url)


def test_desktop_url_without_verifier_is_refused(settings: Settings) -> None:
    with pytest.raises(tiktok.InvalidInput):
        build_authorize_url(settings, state="s")


def test_authorize_url_with_existing_query_is_extended(settings: Settings) -> None:
    odd = settings.model_copy(update={"authorize_url": "https://auth.test/authorize?lang=en"})
    url = build_authorize_url(odd, state="s", code_verifier="v" * 43)
    assert url.startswith("https://auth.test/authorize?lang=en&client_key=ck-123")


# --- callback -----------------------------------------------------------------------------------
def test_callback_parsed_from_url_query_or_mapping() -> None:
    url = "http://localhost:8765/callback/?code=abc%2A1&scopes=user.info.basic%2Cvideo.publish&state=xyz"
    expected = OAuthCallback(code="abc*1", scopes=["user.info.basic", "video.publish"], state="xyz")
    assert parse_callback(url, expected_state="xyz") == expected
    assert parse_callback("?" + urlsplit(url).query, expected_state="xyz") == expected
    assert parse_callback({"code": "abc*1", "scopes": "user.info.basic,video.publish", "state": "xyz"},
                          expected_state="xyz") == expected


@pytest.mark.parametrize("query", ["code=abc&state=other", "code=abc", "error=access_denied&state=other"])
def test_callback_state_mismatch(query: str) -> None:
    with pytest.raises(tiktok.StateMismatch) as caught:
        parse_callback(query, expected_state="xyz")
    assert caught.value.final


def test_callback_error_is_typed() -> None:
    with pytest.raises(tiktok.AccessDenied) as caught:
        parse_callback("error=access_denied&error_description=User+said+no&state=xyz", expected_state="xyz")
    assert "User said no" in str(caught.value)


def test_callback_without_code_or_error() -> None:
    with pytest.raises(tiktok.InvalidInput):
        parse_callback("state=xyz", expected_state="xyz")


# --- token endpoint --------------------------------------------------------------------------------
def test_exchange_code_posts_the_form_and_computes_expiries(settings: Settings) -> None:
    client, endpoint = oauth_client(settings, httpx.Response(200, json=token_answer()))
    with client:
        tokens = client.exchange_code("the-code", code_verifier="v" * 50)
    request = endpoint.requests[0]
    assert request.method == "POST" and str(request.url) == "https://api.tiktok.test/v2/oauth/token/"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert endpoint.form == {
        "client_key": "ck-123",
        "client_secret": "cs-secret",
        "code": "the-code",
        "grant_type": "authorization_code",
        "redirect_uri": "http://localhost:8765/callback/",
        "code_verifier": "v" * 50,
    }
    assert tokens.access_token.get_secret_value() == "act.new"
    assert tokens.open_id == "open-1" and tokens.scopes == ["user.info.basic", "video.publish"]
    assert tokens.obtained_at == NOW
    assert tokens.expires_at == NOW + timedelta(days=1)
    assert tokens.refresh_expires_at == NOW + timedelta(days=365)
    assert tokens.expires_at.tzinfo is not None
    assert tokens.refresh_token_rotated is False
    assert "act.new" not in repr(tokens)


def test_desktop_exchange_needs_the_verifier(settings: Settings) -> None:
    client, endpoint = oauth_client(settings, httpx.Response(200, json=token_answer()))
    with client, pytest.raises(tiktok.InvalidInput):
        client.exchange_code("the-code")
    assert endpoint.requests == []


def test_web_exchange_sends_no_verifier(settings: Settings) -> None:
    web = settings.model_copy(update={"app_type": "web"})
    client, endpoint = oauth_client(web, httpx.Response(200, json=token_answer()))
    with client:
        client.exchange_code("the-code")
    assert "code_verifier" not in endpoint.form


@pytest.mark.parametrize(("returned", "rotated"), [("rft.same", False), ("rft.rotated", True)])
def test_refresh_surfaces_a_rotated_refresh_token(settings: Settings, returned: str, rotated: bool) -> None:
    answer = token_answer(refresh_token=returned, expires_in=7200, refresh_expires_in=86400)
    client, endpoint = oauth_client(settings, httpx.Response(200, json=answer))
    with client:
        tokens = client.refresh("rft.same")
    assert endpoint.form == {
        "client_key": "ck-123",
        "client_secret": "cs-secret",
        "grant_type": "refresh_token",
        "refresh_token": "rft.same",
    }
    assert tokens.refresh_token.get_secret_value() == returned
    assert tokens.refresh_token_rotated is rotated
    # Lifetimes come from this answer, not from a hard-coded 24 h / 365 d.
    assert tokens.expires_at == NOW + timedelta(hours=2)
    assert tokens.refresh_expires_at == NOW + timedelta(days=1)


@pytest.mark.parametrize(
    ("status", "error", "cls", "kind"),
    [
        (400, "invalid_grant", tiktok.InvalidGrant, "needs_reauth"),
        (200, "invalid_grant", tiktok.InvalidGrant, "needs_reauth"),
        (500, "server_error", tiktok.OAuthTemporarilyUnavailable, "retryable"),
        (503, "temporarily_unavailable", tiktok.OAuthTemporarilyUnavailable, "retryable"),
        (401, "invalid_client", tiktok.InvalidClient, "final"),
        (400, "invalid_request", tiktok.OAuthError, "final"),
    ],
)
def test_refresh_errors_are_typed(settings: Settings, status: int, error: str, cls: type, kind: str) -> None:
    body = {"error": error, "error_description": "described", "log_id": "L-7"}
    client, _ = oauth_client(settings, httpx.Response(status, json=body))
    with client, pytest.raises(cls) as caught:
        client.refresh("rft.old")
    assert caught.value.kind == kind
    assert (caught.value.code, caught.value.log_id, caught.value.http_status) == (error, "L-7", status)


@pytest.mark.parametrize(
    ("response", "cls"),
    [
        (httpx.Response(502, text="<html>bad gateway</html>"), tiktok.ServerError),
        (httpx.Response(429, headers={"Retry-After": "3"}, text=""), tiktok.RateLimitExceeded),
        (httpx.Response(200, text="not json"), tiktok.UnexpectedResponse),
        (httpx.Response(200, json={"access_token": "act.secret-value"}), tiktok.UnexpectedResponse),
        (httpx.Response(401, json={"error": {"code": "access_token_invalid", "message": "m", "log_id": "l"}}),
         tiktok.AccessTokenInvalid),
    ],
)
def test_non_oauth_failures(settings: Settings, response: httpx.Response, cls: type) -> None:
    client, _ = oauth_client(settings, response)
    with client, pytest.raises(cls) as caught:
        client.refresh("rft.old")
    assert "act.secret-value" not in repr(caught.value.detail) + str(caught.value)


def test_rate_limited_token_endpoint_reports_retry_after(settings: Settings) -> None:
    client, _ = oauth_client(settings, httpx.Response(429, headers={"Retry-After": "3"}))
    with client, pytest.raises(tiktok.RateLimitExceeded) as caught:
        client.refresh("rft.old")
    assert caught.value.retry_after == 3.0


def test_timeout_on_token_endpoint_is_a_retryable_transport_error(settings: Settings) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("slow", request=request)

    with OAuthClient(settings, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(tiktok.TransportError) as caught:
            client.refresh("rft.old")
    assert caught.value.retryable and caught.value.maybe_delivered is False


@pytest.mark.parametrize("answer", [httpx.Response(200, json={}), httpx.Response(200, text="")])
def test_revoke_posts_the_token(settings: Settings, answer: httpx.Response) -> None:
    client, endpoint = oauth_client(settings, answer)
    with client:
        client.revoke("act.old")
    assert str(endpoint.requests[0].url) == "https://api.tiktok.test/v2/oauth/revoke/"
    assert endpoint.form == {"client_key": "ck-123", "client_secret": "cs-secret", "token": "act.old"}


def test_revoke_error(settings: Settings) -> None:
    body = json.dumps({"error": "invalid_request", "error_description": "bad token", "log_id": "x"})
    client, _ = oauth_client(settings, httpx.Response(400, text=body))
    with client, pytest.raises(tiktok.OAuthError):
        client.revoke("act.old")
