"""Login Kit OAuth as the sandbox runs it: authorize redirects, hex PKCE, expiry, rotation, revoke, scopes."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sandbox import SandboxHandle
from sandbox._config import DEFAULT_CLIENT_KEY, DEFAULT_CLIENT_SECRET
from tests.sandbox.helpers import AUTHORIZE, CREATOR_INFO, INBOX_INIT, REVOKE, TOKEN, USER_INFO, call, code_of, pkce, plan

REDIRECT = "http://localhost:8765/callback/"
SCOPES = "user.info.basic,video.publish,video.upload"


def authorize(sandbox: SandboxHandle, **params: str) -> httpx.Response:
    query = {"client_key": DEFAULT_CLIENT_KEY, "scope": SCOPES, "redirect_uri": REDIRECT, "state": "st-1",
             "response_type": "code", **params}
    return httpx.get(f"{sandbox.base_url}{AUTHORIZE}", params={k: v for k, v in query.items() if v is not None})


def callback(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


def token_request(sandbox: SandboxHandle, **form: str) -> httpx.Response:
    return httpx.post(f"{sandbox.base_url}{TOKEN}",
                      data={"client_key": DEFAULT_CLIENT_KEY, "client_secret": DEFAULT_CLIENT_SECRET, **form})


def desktop_login(sandbox: SandboxHandle, **params: str) -> dict[str, object]:
    verifier, challenge = pkce()
    answer = callback(authorize(sandbox, code_challenge=challenge, code_challenge_method="S256", **params))
    tokens = token_request(sandbox, code=answer["code"], grant_type="authorization_code", redirect_uri=REDIRECT,
                           code_verifier=verifier)
    assert tokens.status_code == 200, tokens.text
    return dict(tokens.json())


def test_desktop_pkce_dance_gives_working_tokens(sandbox: SandboxHandle) -> None:
    verifier, challenge = pkce()
    answer = callback(authorize(sandbox, code_challenge=challenge, code_challenge_method="S256"))
    assert answer["state"] == "st-1" and answer["scopes"] == SCOPES and answer["code"]

    tokens = token_request(sandbox, code=answer["code"], grant_type="authorization_code", redirect_uri=REDIRECT,
                           code_verifier=verifier).json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["open_id"] == "sbx-open-id-studio-main"
    assert tokens["scope"] == SCOPES
    assert tokens["expires_in"] == 86_400 and tokens["refresh_expires_in"] == 31_536_000
    me = httpx.get(f"{sandbox.base_url}{USER_INFO}", params={"fields": "open_id,display_name"},
                   headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.json()["data"]["user"] == {"open_id": "sbx-open-id-studio-main", "display_name": "Studio Main"}
    # A code is single use.
    again = token_request(sandbox, code=answer["code"], grant_type="authorization_code", redirect_uri=REDIRECT,
                          code_verifier=verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_sandbox_user_picks_the_approving_test_user(sandbox: SandboxHandle) -> None:
    assert desktop_login(sandbox, sandbox_user="private_creator")["open_id"] == "sbx-open-id-private-creator"
    assert desktop_login(sandbox, sandbox_user="sbx-open-id-private-creator")["open_id"] == "sbx-open-id-private-creator"


def test_wrong_verifier_is_invalid_grant(sandbox: SandboxHandle) -> None:
    _, challenge = pkce()
    other_verifier, _ = pkce()
    answer = callback(authorize(sandbox, code_challenge=challenge, code_challenge_method="S256"))
    refused = token_request(sandbox, code=answer["code"], grant_type="authorization_code", redirect_uri=REDIRECT,
                            code_verifier=other_verifier)
    assert refused.status_code == 400
    assert set(refused.json()) == {"error", "error_description", "log_id"}  # flat OAuth error format
    assert refused.json()["error"] == "invalid_grant"


def test_base64url_challenge_is_refused_on_desktop(sandbox: SandboxHandle) -> None:
    verifier, _ = pkce()
    rfc_challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    answer = callback(authorize(sandbox, code_challenge=rfc_challenge, code_challenge_method="S256"))
    assert answer["error"] == "invalid_request" and answer["state"] == "st-1" and "code" not in answer


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "video.publish,video.delete"}, "invalid_scope"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"sandbox_user": "nobody"}, "invalid_request"),
    ],
)
def test_authorize_errors_redirect_with_error(sandbox: SandboxHandle, params: dict[str, str | None], error: str) -> None:
    _, challenge = pkce()
    query = {"code_challenge": challenge, "code_challenge_method": "S256", **params}
    answer = callback(authorize(sandbox, **query))  # type: ignore[arg-type]
    assert answer["error"] == error and answer["error_description"]


def test_user_who_denies_gives_access_denied(sandbox: SandboxHandle) -> None:
    config = sandbox.config.model_copy(deep=True)
    config.creators[0].denies_authorization = True
    sandbox.reset(config)
    _, challenge = pkce()
    assert callback(authorize(sandbox, code_challenge=challenge, code_challenge_method="S256"))["error"] == "access_denied"


def test_unknown_client_or_foreign_redirect_is_not_redirected(sandbox: SandboxHandle) -> None:
    _, challenge = pkce()
    pkce_params = {"code_challenge": challenge, "code_challenge_method": "S256"}
    unknown_client = authorize(sandbox, client_key="nope", **pkce_params)
    assert unknown_client.status_code == 400 and unknown_client.json()["error"] == "invalid_client"
    foreign = authorize(sandbox, redirect_uri="https://evil.example.com/cb", **pkce_params)
    assert foreign.status_code == 400 and "location" not in foreign.headers
    any_port = callback(authorize(sandbox, redirect_uri="http://127.0.0.1:50123/cb?x=1", **pkce_params))
    assert any_port["code"]


def test_web_app_uses_registered_redirect_without_pkce(sandbox: SandboxHandle) -> None:
    registered = "https://app.example.com/tiktok/callback"
    sandbox.reset(sandbox.config.model_copy(update=dict(app_type="web", redirect_uris=[registered])))
    assert authorize(sandbox, redirect_uri="http://localhost:8765/callback/").status_code == 400
    answer = callback(authorize(sandbox, redirect_uri=registered))
    tokens = token_request(sandbox, code=answer["code"], grant_type="authorization_code", redirect_uri=registered)
    assert tokens.status_code == 200 and tokens.json()["open_id"] == "sbx-open-id-studio-main"
    mismatch = callback(authorize(sandbox, redirect_uri=registered))
    refused = token_request(sandbox, code=mismatch["code"], grant_type="authorization_code",
                            redirect_uri=registered + "/other")
    assert refused.json()["error"] == "invalid_grant"


def test_wrong_secret_is_invalid_client(sandbox: SandboxHandle) -> None:
    answer = httpx.post(f"{sandbox.base_url}{TOKEN}", data={"client_key": DEFAULT_CLIENT_KEY, "client_secret": "x",
                                                           "grant_type": "refresh_token", "refresh_token": "r"})
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    unsupported = token_request(sandbox, grant_type="password")
    assert unsupported.json()["error"] == "unsupported_grant_type"


def test_access_token_expires_on_the_sandbox_clock(sandbox: SandboxHandle) -> None:
    tokens = desktop_login(sandbox)
    assert call(sandbox.base_url, CREATOR_INFO, str(tokens["access_token"])).status_code == 200
    sandbox.advance_clock(86_400)
    expired = call(sandbox.base_url, CREATOR_INFO, str(tokens["access_token"]))
    assert expired.status_code == 401 and code_of(expired) == "access_token_invalid"


def test_refresh_rotates_and_old_refresh_token_is_rejected(sandbox: SandboxHandle) -> None:
    first = desktop_login(sandbox)
    sandbox.advance_clock(86_400)
    second = token_request(sandbox, grant_type="refresh_token", refresh_token=str(first["refresh_token"]))
    assert second.status_code == 200
    second_tokens = second.json()
    assert second_tokens["refresh_token"] != first["refresh_token"]
    assert second_tokens["access_token"] != first["access_token"]
    assert call(sandbox.base_url, CREATOR_INFO, second_tokens["access_token"]).status_code == 200
    reused = token_request(sandbox, grant_type="refresh_token", refresh_token=str(first["refresh_token"]))
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"


def test_refresh_token_expires(sandbox: SandboxHandle) -> None:
    sandbox.reset(sandbox.config.model_copy(update=dict(refresh_token_ttl=3600)))
    tokens = desktop_login(sandbox)
    assert tokens["refresh_expires_in"] == 3600
    sandbox.advance_clock(3600)
    expired = token_request(sandbox, grant_type="refresh_token", refresh_token=str(tokens["refresh_token"]))
    assert expired.json()["error"] == "invalid_grant"


def test_revoke_ends_access_and_refresh(sandbox: SandboxHandle) -> None:
    tokens = desktop_login(sandbox)
    other_user = desktop_login(sandbox, sandbox_user="private_creator")
    revoked = httpx.post(f"{sandbox.base_url}{REVOKE}", data={"client_key": DEFAULT_CLIENT_KEY,
                                                             "client_secret": DEFAULT_CLIENT_SECRET,
                                                             "token": tokens["access_token"]})
    assert revoked.status_code == 200
    assert code_of(call(sandbox.base_url, CREATOR_INFO, str(tokens["access_token"]))) == "access_token_invalid"
    refresh = token_request(sandbox, grant_type="refresh_token", refresh_token=str(tokens["refresh_token"]))
    assert refresh.json()["error"] == "invalid_grant"
    assert call(sandbox.base_url, CREATOR_INFO, str(other_user["access_token"])).status_code == 200


def test_scopes_are_enforced_per_endpoint(sandbox: SandboxHandle, sandbox_token) -> None:  # type: ignore[no-untyped-def]
    basic_only = sandbox_token(scopes=["user.info.basic"])
    refused = call(sandbox.base_url, CREATOR_INFO, basic_only)
    assert refused.status_code == 401 and code_of(refused) == "scope_not_authorized"
    upload_only = sandbox_token(scopes=["video.upload"])
    assert code_of(call(sandbox.base_url, CREATOR_INFO, upload_only)) == "scope_not_authorized"
    assert call(sandbox.base_url, INBOX_INIT, upload_only, {"source_info": plan(1000)}).status_code == 200
    publish_only = sandbox_token(scopes=["video.publish"])
    assert code_of(call(sandbox.base_url, INBOX_INIT, publish_only, {"source_info": plan(1000)})) == "scope_not_authorized"
    headers = {"Authorization": f"Bearer {basic_only}"}
    profile = httpx.get(f"{sandbox.base_url}{USER_INFO}", params={"fields": "open_id,username"}, headers=headers)
    assert profile.status_code == 401 and code_of(profile) == "scope_not_authorized"
    unknown_field = httpx.get(f"{sandbox.base_url}{USER_INFO}", params={"fields": "open_id,shoe_size"}, headers=headers)
    assert unknown_field.status_code == 400 and code_of(unknown_field) == "invalid_param"
    no_token = httpx.post(f"{sandbox.base_url}{CREATOR_INFO}")
    assert no_token.status_code == 401 and code_of(no_token) == "access_token_invalid"
