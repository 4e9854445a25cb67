"""Rate limits, creator caps, unaudited-app rules, privacy options and creator_info per creator."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from sandbox import SandboxCreator, SandboxHandle
from tests.sandbox.helpers import (
    CONTENT_INIT,
    CREATOR_INFO,
    INBOX_INIT,
    STATUS,
    USER_INFO,
    VIDEO_INIT,
    call,
    code_of,
    plan,
    video_init_body,
)

TokenFactory = Callable[..., str]


def _user_info(base_url: str, token: str) -> httpx.Response:
    return httpx.get(f"{base_url}{USER_INFO}", params={"fields": "open_id"}, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(
    ("path", "limit"),
    [(CREATOR_INFO, 20), (VIDEO_INIT, 6), (INBOX_INIT, 6), (CONTENT_INIT, 6), (STATUS, 30), (USER_INFO, 600)],
)
def test_every_rate_limit_answers_429_with_retry_after(
    sandbox: SandboxHandle, sandbox_token: TokenFactory, path: str, limit: int
) -> None:
    token = sandbox_token()
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {token}"}) as client:

        def hit() -> httpx.Response:
            if path == USER_INFO:
                return client.get(path, params={"fields": "open_id"})
            return client.post(path, json={})  # invalid bodies still count against the limit

        def answered_429() -> int:  # what the sandbox counts for benchmarks: 429s it answered
            return sum(httpx.get(f"{sandbox.base_url}/_sandbox/state").json()["rate_limited"].values())

        answers = [hit() for _ in range(limit)]
        assert all(a.status_code != 429 for a in answers)
        before = answered_429()
        limited = hit()
        assert limited.status_code == 429 and code_of(limited) == "rate_limit_exceeded"
        assert answered_429() == before + 1
        assert int(limited.headers["Retry-After"]) in range(1, 61)
        # The limit is per token: another token of the same user is not limited.
        other = sandbox_token()
        assert call(sandbox.base_url, CREATOR_INFO, other).status_code == 200
        sandbox.advance_clock(60)
        assert hit().status_code != 429


def test_daily_post_cap_of_fifteen(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    token = sandbox_token()
    for number in range(15):
        if number and number % 6 == 0:
            sandbox.advance_clock(60)  # stay under the 6/min init limit
        assert call(sandbox.base_url, VIDEO_INIT, token, video_init_body(1000)).status_code == 200
    sandbox.advance_clock(60)
    refused = call(sandbox.base_url, VIDEO_INIT, token, video_init_body(1000))
    assert refused.status_code == 403 and code_of(refused) == "spam_risk_too_many_posts"
    info = call(sandbox.base_url, CREATOR_INFO, token)
    assert info.status_code == 200 and code_of(info) == "spam_risk_too_many_posts"
    sandbox.advance_clock(86_400)  # rolling 24 h (the access token expired meanwhile too)
    assert call(sandbox.base_url, VIDEO_INIT, sandbox_token(), video_init_body(1000)).status_code == 200


def test_daily_cap_is_per_creator(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    config = sandbox.config.model_copy(deep=True)
    config.creators[1].daily_post_cap = 1
    sandbox.reset(config)
    private = sandbox_token("private_creator")
    assert call(sandbox.base_url, VIDEO_INIT, private, video_init_body(1000, "SELF_ONLY")).status_code == 200
    assert code_of(call(sandbox.base_url, VIDEO_INIT, private, video_init_body(1000, "SELF_ONLY"))) == "spam_risk_too_many_posts"
    assert call(sandbox.base_url, VIDEO_INIT, sandbox_token("studio_main"), video_init_body(1000)).status_code == 200


def test_five_pending_inbox_shares(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    token = sandbox_token()
    for _ in range(5):
        assert call(sandbox.base_url, INBOX_INIT, token, {"source_info": plan(1000)}).status_code == 200
    sandbox.advance_clock(60)
    refused = call(sandbox.base_url, INBOX_INIT, token, {"source_info": plan(1000)})
    assert refused.status_code == 403 and code_of(refused) == "spam_risk_too_many_pending_share"
    # Direct posts are a separate budget.
    assert call(sandbox.base_url, VIDEO_INIT, token, video_init_body(1000)).status_code == 200


def test_active_user_cap(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    sandbox.reset(sandbox.config.model_copy(update=dict(active_user_cap=1)))
    assert call(sandbox.base_url, VIDEO_INIT, sandbox_token("studio_main"), video_init_body(1000)).status_code == 200
    second_user = sandbox_token("private_creator")
    info = call(sandbox.base_url, CREATOR_INFO, second_user)
    assert info.status_code == 200 and code_of(info) == "reached_active_user_cap"
    refused = call(sandbox.base_url, INBOX_INIT, second_user, {"source_info": plan(1000)})
    assert refused.status_code == 403 and code_of(refused) == "reached_active_user_cap"


def test_banned_creator(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    config = sandbox.config.model_copy(deep=True)
    config.creators[0].banned_from_posting = True
    sandbox.reset(config)
    token = sandbox_token()
    info = call(sandbox.base_url, CREATOR_INFO, token)
    assert info.status_code == 200 and code_of(info) == "spam_risk_user_banned_from_posting"
    assert info.json()["data"]["creator_username"] == "studio_main"
    refused = call(sandbox.base_url, VIDEO_INIT, token, video_init_body(1000))
    assert refused.status_code == 403 and code_of(refused) == "spam_risk_user_banned_from_posting"


def test_unaudited_app(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    private_creators = [
        SandboxCreator(open_id=f"private-{n}", username=f"private_{n}", private_account=True) for n in range(6)
    ]
    public = SandboxCreator(open_id="public-1", username="public_1")
    sandbox.reset(sandbox.config.model_copy(update=dict(unaudited=True, creators=[public, *private_creators])))
    refused = call(sandbox.base_url, VIDEO_INIT, sandbox_token("public_1"), video_init_body(1000))
    assert refused.status_code == 403 and code_of(refused) == "unaudited_client_can_only_post_to_private_accounts"
    for creator in private_creators[:5]:
        body = video_init_body(1000, "FOLLOWER_OF_CREATOR")
        assert call(sandbox.base_url, VIDEO_INIT, sandbox_token(creator.username), body).status_code == 200
    sixth = call(sandbox.base_url, VIDEO_INIT, sandbox_token("private_5"), video_init_body(1000, "SELF_ONLY"))
    assert sixth.status_code == 403 and code_of(sixth) == "reached_active_user_cap"
    posts = sandbox.posts()
    assert len(posts) == 5
    assert {p["privacy_level"] for p in posts} == {"SELF_ONLY"}
    assert {p["post_info"]["privacy_level"] for p in posts} == {"FOLLOWER_OF_CREATOR"}


@pytest.mark.parametrize(("user", "privacy"), [("studio_main", "FOLLOWER_OF_CREATOR"), ("private_creator", "PUBLIC_TO_EVERYONE")])
def test_privacy_outside_the_options_is_refused(
    sandbox: SandboxHandle, sandbox_token: TokenFactory, user: str, privacy: str
) -> None:
    refused = call(sandbox.base_url, VIDEO_INIT, sandbox_token(user), video_init_body(1000, privacy))
    assert refused.status_code == 403 and code_of(refused) == "privacy_level_option_mismatch"
    assert sandbox.posts() == []


def test_the_sandbox_serves_each_creators_picture(sandbox: SandboxHandle) -> None:
    import httpx

    picture = httpx.get(f"{sandbox.base_url}/_sandbox/avatars/studio_main.svg", timeout=10)
    assert picture.status_code == 200 and picture.headers["content-type"].startswith("image/svg+xml")
    assert picture.text.startswith("<svg") and ">S</text>" in picture.text


def test_creator_info_per_creator(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    public = call(sandbox.base_url, CREATOR_INFO, sandbox_token("studio_main")).json()
    private = call(sandbox.base_url, CREATOR_INFO, sandbox_token("private_creator")).json()
    assert public["error"]["code"] == "ok" and private["error"]["code"] == "ok"
    assert public["data"] == {
        "creator_avatar_url": f"{sandbox.base_url}/_sandbox/avatars/studio_main.svg",
        "creator_username": "studio_main",
        "creator_nickname": "Studio Main",
        "privacy_level_options": ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"],
        "comment_disabled": False,
        "duet_disabled": False,
        "stitch_disabled": False,
        "max_video_post_duration_sec": 600,
    }
    assert private["data"]["creator_username"] == "private_creator"
    assert private["data"]["privacy_level_options"] == ["FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
    assert private["data"]["duet_disabled"] and private["data"]["stitch_disabled"]
    assert private["data"]["max_video_post_duration_sec"] == 180
