"""Login Kit OAuth v2: authorize URL (+ desktop PKCE), callback parsing, token exchange/refresh/revoke."""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from pydantic import SecretStr

from tiktok._errors import (
    InvalidInput,
    RateLimitExceeded,
    ServerError,
    StateMismatch,
    api_error,
    oauth_error,
    parse_retry_after,
)
from tiktok._http import HttpResource, json_body, new_http_client, send, unexpected
from tiktok._models import AuthorizationRequest, OAuthCallback, TokenSet
from tiktok_pipeline.settings import AppType, TikTokAppSettings

TOKEN_PATH = "/v2/oauth/token/"
REVOKE_PATH = "/v2/oauth/revoke/"

PKCE_ALPHABET = string.ascii_letters + string.digits + "-._~"
PKCE_VERIFIER_LENGTH = 64  # TikTok accepts 43..128


def new_code_verifier(length: int = PKCE_VERIFIER_LENGTH) -> str:
    """A fresh PKCE verifier: `length` (43..128) random chars of [A-Za-z0-9-._~]."""
    if not 43 <= length <= 128:
        raise InvalidInput(f"PKCE verifier length must be 43..128, got {length}", detail={"length": length})
    return "".join(secrets.choice(PKCE_ALPHABET) for _ in range(length))


def code_challenge(code_verifier: str) -> str:
    """TikTok desktop PKCE challenge: the HEX SHA-256 of the verifier (not RFC 7636's base64url)."""
    return hashlib.sha256(code_verifier.encode("ascii")).hexdigest()


def build_authorize_url(
    settings: TikTokAppSettings,
    *,
    state: str,
    code_verifier: str | None = None,
    extra_params: Mapping[str, str] | None = None,
) -> str:
    """The Login Kit authorize URL (pure). Desktop apps must pass a `code_verifier`."""
    if settings.app_type is AppType.desktop and code_verifier is None:
        raise InvalidInput("desktop apps need a PKCE code_verifier for the authorize URL")
    params: dict[str, str] = {
        "client_key": settings.client_key,
        "scope": ",".join(settings.scope_list),
        "redirect_uri": settings.redirect_uri,
        "state": state,
        "response_type": "code",
    }
    if code_verifier is not None:
        params["code_challenge"] = code_challenge(code_verifier)
        params["code_challenge_method"] = "S256"
    params.update(extra_params or {})
    separator = "&" if urlsplit(settings.authorize_url).query else "?"
    return f"{settings.authorize_url}{separator}{urlencode(params)}"


def new_authorization_request(
    settings: TikTokAppSettings, *, extra_params: Mapping[str, str] | None = None
) -> AuthorizationRequest:
    """A fresh state (and PKCE verifier for desktop apps) and the URL that carries them."""
    state = secrets.token_urlsafe(32)
    verifier = new_code_verifier() if settings.app_type is AppType.desktop else None
    url = build_authorize_url(settings, state=state, code_verifier=verifier, extra_params=extra_params)
    return AuthorizationRequest(url=url, state=state, code_verifier=verifier)


def parse_callback(query: str | Mapping[str, str], *, expected_state: str) -> OAuthCallback:
    """Check and parse the redirect's query (`code`, `scopes`, `state` or `error`, `error_description`).

    `query` is the raw query string (a leading "?" or a full URL is fine) or an already-parsed mapping.
    The state is checked first so that a forged callback never reaches error handling or exchange.
    """
    if isinstance(query, str):
        raw = urlsplit(query).query if "://" in query else query.lstrip("?")
        params = {key: values[0] for key, values in parse_qs(raw, keep_blank_values=True).items()}
    else:
        params = dict(query)
    state = params.get("state", "")
    if not secrets.compare_digest(state.encode(), expected_state.encode()):
        raise StateMismatch(
            "OAuth callback state does not match the authorization request (stale tab or forgery)",
            code="state_mismatch",
            detail={"received_state_present": bool(state)},
        )
    if params.get("error"):
        raise oauth_error(params["error"], params.get("error_description"), None)
    if not params.get("code"):
        raise InvalidInput("OAuth callback carries neither code nor error", detail={"keys": sorted(params)})
    scopes = [s for s in params.get("scopes", "").split(",") if s]
    return OAuthCallback(code=params["code"], scopes=scopes, state=state)


def token_expiries(obtained_at: datetime, expires_in: int, refresh_expires_in: int) -> tuple[datetime, datetime]:
    return obtained_at + timedelta(seconds=expires_in), obtained_at + timedelta(seconds=refresh_expires_in)


class OAuthClient(HttpResource):
    """Token endpoint client. Form posts to `{api_base_url}/v2/oauth/token/` and `/v2/oauth/revoke/`."""

    def __init__(
        self,
        settings: TikTokAppSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] = partial(datetime.now, UTC),
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._http = new_http_client(settings, transport)

    def authorization_request(self, *, extra_params: Mapping[str, str] | None = None) -> AuthorizationRequest:
        return new_authorization_request(self._settings, extra_params=extra_params)

    def exchange_code(self, code: str, *, code_verifier: str | None = None) -> TokenSet:
        """Trade the callback's code for tokens. Desktop apps must pass the request's verifier."""
        if self._settings.app_type is AppType.desktop and not code_verifier:
            raise InvalidInput("desktop apps must send the PKCE code_verifier with the code exchange")
        form = {
            **self._client_credentials(),
            "code": code,
            "grant_type": "authorization_code",
            "redirect_uri": self._settings.redirect_uri,
        }
        if code_verifier:
            form["code_verifier"] = code_verifier
        return self._token_set(self._post(TOKEN_PATH, form), sent_refresh_token=None)

    def refresh(self, refresh_token: str | SecretStr) -> TokenSet:
        """New tokens; `refresh_token_rotated` tells whether the refresh token changed (store it)."""
        sent = refresh_token.get_secret_value() if isinstance(refresh_token, SecretStr) else refresh_token
        form = {**self._client_credentials(), "grant_type": "refresh_token", "refresh_token": sent}
        return self._token_set(self._post(TOKEN_PATH, form), sent_refresh_token=sent)

    def revoke(self, token: str | SecretStr) -> None:
        value = token.get_secret_value() if isinstance(token, SecretStr) else token
        # A successful revoke may answer with an empty body: only errors matter.
        oauth_answer(self._post(REVOKE_PATH, {**self._client_credentials(), "token": value}))


    def _client_credentials(self) -> dict[str, str]:
        return {
            "client_key": self._settings.client_key,
            "client_secret": self._settings.client_secret.get_secret_value(),
        }

    def _post(self, path: str, form: dict[str, str]) -> httpx.Response:
        request = self._http.build_request(
            "POST",
            path,
            data=form,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cache-Control": "no-cache"},
        )
        return send(self._http, request)

    def _token_set(self, response: httpx.Response, *, sent_refresh_token: str | None) -> TokenSet:
        body = oauth_answer(response)
        if body is None:
            raise unexpected(response, "token answer is not a JSON object")
        try:
            obtained_at = self._clock()
            expires_at, refresh_expires_at = token_expiries(
                obtained_at, int(body["expires_in"]), int(body["refresh_expires_in"])
            )
            refresh_token = str(body["refresh_token"])
            return TokenSet(
                access_token=str(body["access_token"]),
                refresh_token=refresh_token,
                open_id=str(body["open_id"]),
                scope=str(body.get("scope", "")),
                token_type=str(body.get("token_type", "Bearer")),
                expires_in=int(body["expires_in"]),
                refresh_expires_in=int(body["refresh_expires_in"]),
                obtained_at=obtained_at,
                expires_at=expires_at,
                refresh_expires_at=refresh_expires_at,
                refresh_token_rotated=sent_refresh_token is not None and refresh_token != sent_refresh_token,
            )
        except (KeyError, TypeError, ValueError) as exc:
            # The body holds tokens: only its field names go into the error.
            raise unexpected(
                response, f"token answer lacks or mangles a field: {exc!r}", detail={"fields": sorted(body)}
            ) from exc


def oauth_answer(response: httpx.Response) -> dict[str, Any] | None:
    """The answer's JSON, or the typed error it carries (TikTok may send errors with HTTP 200)."""
    body = json_body(response)
    error = body.get("error") if body else None
    if body is not None and isinstance(error, str) and error:
        raise oauth_error(error, body.get("error_description"), body.get("log_id"), http_status=response.status_code)
    if isinstance(error, dict) and error.get("code") not in (None, "ok"):
        # Some v2 answers use the API envelope instead of the flat format.
        raise api_error(
            response.status_code,
            error.get("code"),
            error.get("message"),
            error.get("log_id"),
            headers=response.headers,
        )
    if response.status_code == 429:
        raise RateLimitExceeded(
            "TikTok OAuth rate limit (HTTP 429)", http_status=429, retry_after=parse_retry_after(response.headers)
        )
    if response.status_code >= 500:
        raise ServerError(f"TikTok OAuth answered HTTP {response.status_code}", http_status=response.status_code)
    if not response.is_success:
        raise unexpected(response, "HTTP error without an OAuth error field")
    return body
