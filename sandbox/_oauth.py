"""Login Kit OAuth v2 as TikTok runs it: authorize page, code exchange with hex PKCE, rotating refresh, revoke.

`TokenBook` holds no lock of its own: `SandboxState` calls it under the state lock.
"""

from __future__ import annotations

import html

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sandbox._config import LOOPBACK_HOSTS, SandboxConfig, SandboxCreator
from sandbox._errors import ApiRefusal, OAuthRefusal

VERIFIER_PATTERN = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
HEX_CHALLENGE_PATTERN = re.compile(r"[0-9a-f]{64}")


def hex_challenge(verifier: str) -> str:
    """TikTok desktop PKCE: the challenge is the lowercase hex SHA-256 of the verifier (not base64url)."""
    return hashlib.sha256(verifier.encode("ascii")).hexdigest()


@dataclass
class AuthorizationCode:
    code: str
    open_id: str
    scopes: tuple[str, ...]
    redirect_uri: str
    code_challenge: str | None
    expires_at: float
    used: bool = False
    #: The PKCE verifier the client sent when it exchanged the code (kept for `issued_secrets`).
    verifier: str | None = None


@dataclass
class AccessToken:
    token: str
    open_id: str
    scopes: tuple[str, ...]
    expires_at: float
    revoked: bool = False


@dataclass
class RefreshToken:
    token: str
    open_id: str
    scopes: tuple[str, ...]
    expires_at: float
    #: False once rotated (a refresh used it) or revoked.
    valid: bool = True


@dataclass
class TokenBook:
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    access: dict[str, AccessToken] = field(default_factory=dict)
    refresh: dict[str, RefreshToken] = field(default_factory=dict)

    # --- authorize page ---------------------------------------------------------------------------
    def authorize(self, config: SandboxConfig, query: Mapping[str, str], now: float) -> str:
        """The URL the authorize page redirects to (with a code or an error).

        Raises OAuthRefusal when nothing may be redirected to (unknown app or unregistered redirect).
        """
        if query.get("client_key") != config.client_key:
            raise OAuthRefusal(400, "invalid_client", "unknown client_key")
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri_allowed(config, redirect_uri):
            raise OAuthRefusal(400, "invalid_request", f"redirect_uri {redirect_uri!r} is not registered")
        state = query.get("state")

        def back(**params: str) -> str:
            if state is not None:
                params["state"] = state
            return with_query(redirect_uri, params)

        def error(code: str, description: str) -> str:
            return back(error=code, error_description=description)

        if query.get("response_type") != "code":
            return error("unsupported_response_type", "response_type must be code")
        scopes = tuple(s.strip() for s in query.get("scope", "").split(",") if s.strip())
        if not scopes:
            return error("invalid_scope", "scope is required")
        refused = [s for s in scopes if s not in config.scopes]
        if refused:
            return error("invalid_scope", f"app is not approved for {','.join(refused)}")
        challenge = query.get("code_challenge")
        if challenge is not None or config.app_type == "desktop":
            if query.get("code_challenge_method") != "S256":
                return error("invalid_request", "code_challenge_method must be S256")
            if challenge is None or not HEX_CHALLENGE_PATTERN.fullmatch(challenge):
                return error("invalid_request", "code_challenge must be the hex SHA-256 of the code_verifier")
        wanted = query.get("sandbox_user")
        creator = config.creator(wanted) if wanted else config.creators[0]
        if creator is None:
            return error("invalid_request", f"sandbox_user {wanted!r} is not a configured test user")
        if creator.denies_authorization:
            return error("access_denied", "the user denied the authorization")
        code = "sbx_code_" + secrets.token_urlsafe(24)
        self.codes[code] = AuthorizationCode(
            code=code,
            open_id=creator.open_id,
            scopes=scopes,
            redirect_uri=redirect_uri,
            code_challenge=challenge,
            expires_at=now + config.authorization_code_ttl,
        )
        return back(code=code, scopes=",".join(scopes))

    # --- token endpoint ---------------------------------------------------------------------------
    def exchange_code(self, config: SandboxConfig, form: Mapping[str, str], now: float) -> dict[str, object]:
        code_text = require(form, "code")
        redirect_uri = require(form, "redirect_uri")
        code = self.codes.get(code_text)
        if code is None or code.used or now >= code.expires_at:
            raise OAuthRefusal(400, "invalid_grant", "authorization code is invalid, expired or already used")
        if redirect_uri != code.redirect_uri:
            raise OAuthRefusal(400, "invalid_grant", "redirect_uri differs from the one sent to authorize")
        if code.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            if not VERIFIER_PATTERN.fullmatch(verifier):
                raise OAuthRefusal(400, "invalid_request", "code_verifier must be 43-128 chars of [A-Za-z0-9-._~]")
            if hex_challenge(verifier) != code.code_challenge:
                raise OAuthRefusal(400, "invalid_grant", "code_verifier does not match the code_challenge")
        code.used = True
        code.verifier = form.get("code_verifier") or None
        return self.issue(config, code.open_id, code.scopes, now)

    def rotate(self, config: SandboxConfig, form: Mapping[str, str], now: float) -> dict[str, object]:
        old = self.refresh.get(require(form, "refresh_token"))
        if old is None or not old.valid or now >= old.expires_at:
            raise OAuthRefusal(400, "invalid_grant", "refresh token is invalid, expired, rotated or revoked")
        old.valid = False
        return self.issue(config, old.open_id, old.scopes, now)

    def issue(self, config: SandboxConfig, open_id: str, scopes: tuple[str, ...], now: float) -> dict[str, object]:
        access = AccessToken("act.sbx" + secrets.token_urlsafe(32), open_id, scopes, now + config.access_token_ttl)
        refresh = RefreshToken("rft.sbx" + secrets.token_urlsafe(32), open_id, scopes, now + config.refresh_token_ttl)
        self.access[access.token] = access
        self.refresh[refresh.token] = refresh
        return {
            "access_token": access.token,
            "expires_in": int(config.access_token_ttl),
            "open_id": open_id,
            "refresh_expires_in": int(config.refresh_token_ttl),
            "refresh_token": refresh.token,
            "scope": ",".join(scopes),
            "token_type": "Bearer",
        }

    def issued_secrets(self) -> dict[str, list[str]]:
        """Every credential this authorization server handed out or received (for leak scans)."""
        return {
            "access_tokens": [t.token for t in self.access.values()],
            "refresh_tokens": [t.token for t in self.refresh.values()],
            "authorization_codes": list(self.codes),
            "pkce_verifiers": [c.verifier for c in self.codes.values() if c.verifier],
        }

    def revoke(self, token: str, now: float) -> str | None:
        """Revoking either token of a user ends the app's whole authorization for that user.

        The open_id whose authorization this ended (None: unknown token, or nothing of it was live).
        """
        known = self.access.get(token) or self.refresh.get(token)
        if known is None:
            return None
        return self.revoke_user(known.open_id, now)

    def revoke_user(self, open_id: str, now: float) -> str | None:
        """End every token of `open_id`; `open_id` if one of them was still live, else None."""
        live = False
        for access in self.access.values():
            if access.open_id == open_id:
                live = live or (not access.revoked and now < access.expires_at)
                access.revoked = True
        for refresh in self.refresh.values():
            if refresh.open_id == open_id:
                live = live or (refresh.valid and now < refresh.expires_at)
                refresh.valid = False
        return open_id if live else None

    # --- bearer check -----------------------------------------------------------------------------
    def bearer(self, authorization: str | None, now: float) -> AccessToken:
        scheme, _, token_text = (authorization or "").partition(" ")
        token = self.access.get(token_text.strip()) if scheme.lower() == "bearer" else None
        if token is None or token.revoked or now >= token.expires_at:
            raise ApiRefusal(401, "access_token_invalid", "The access token is invalid or not found in the request.")
        return token


def require(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise OAuthRefusal(400, "invalid_request", f"{name} is required")
    return value


def check_client(config: SandboxConfig, form: Mapping[str, str]) -> None:
    if form.get("client_key") != config.client_key or form.get("client_secret") != config.client_secret:
        raise OAuthRefusal(401, "invalid_client", "client_key or client_secret is wrong")


def redirect_uri_allowed(config: SandboxConfig, redirect_uri: str) -> bool:
    if config.app_type == "web":
        return redirect_uri in config.redirect_uris
    parts = urlsplit(redirect_uri)
    return parts.scheme in ("http", "https") and parts.hostname in LOOPBACK_HOSTS


def with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def avatar_url(creator: SandboxCreator, base_url: str) -> str:
    """The creator's picture: the configured URL, else the one the sandbox at `base_url` serves."""
    return creator.avatar_url or f"{base_url.rstrip('/')}/_sandbox/avatars/{creator.username}.svg"


def avatar_svg(username: str) -> str:
    """A round picture with the creator's initial, its colour derived from the name."""
    hue = sum(username.encode()) * 37 % 360
    initial = (username[:1] or "?").upper()
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100" viewBox="0 0 100 100">'
            f'<circle cx="50" cy="50" r="50" fill="hsl({hue},60%,45%)"/>'
            '<text x="50" y="50" dy="0.35em" text-anchor="middle" font-family="sans-serif" font-size="48" '
            f'fill="#fff">{html.escape(initial)}</text></svg>')


def user_fields(creator: SandboxCreator, published_posts: int, base_url: str = "") -> dict[str, object]:
    """Every /v2/user/info/ field the sandbox answers, grouped by the scope that unlocks it."""
    avatar = avatar_url(creator, base_url)
    return {
        "user.info.basic": {
            "open_id": creator.open_id,
            "union_id": creator.union_id,
            "avatar_url": avatar,
            "avatar_url_100": avatar,
            "avatar_large_url": avatar,
            "display_name": creator.nickname or creator.username,
        },
        "user.info.profile": {
            "username": creator.username,
            "bio_description": "",
            "profile_deep_link": f"https://www.tiktok.com/@{creator.username}",
            "is_verified": False,
        },
        "user.info.stats": {
            "follower_count": 0,
            "following_count": 0,
            "likes_count": 0,
            "video_count": published_posts,
        },
    }
