"""Idempotency keys and the request stored with a post (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from ledger import PostEvent, PostState, default_idempotency_key
from publishing import PublishRequest, post_idempotency_key, request_json, stored_request, unfetched_idempotency_key


def request(**fields) -> PublishRequest:
    return PublishRequest(**({"source": "s3://m/a.mp4", "accounts": ["main", "private"], "caption": "c",
                              "privacy_level": "SELF_ONLY"} | fields))


def test_post_keys_are_the_callers_or_the_contents() -> None:
    assert post_idempotency_key(request(idempotency_key="ep-42"), "main", "abc") == "ep-42:main"
    assert post_idempotency_key(request(), "main", "abc") == default_idempotency_key("abc", "main", "c", "direct")


def test_unfetched_keys_depend_on_the_request_not_on_the_other_accounts() -> None:
    key = unfetched_idempotency_key(request(), "main")
    assert key.startswith("unfetched:") and len(key) <= 128
    assert key == unfetched_idempotency_key(request(accounts=["main"]), "main")  # same post for `main`
    assert key == unfetched_idempotency_key(request(privacy_level="PUBLIC_TO_EVERYONE"), "main")  # a fix keeps the post
    assert key != unfetched_idempotency_key(request(), "private")
    assert key != unfetched_idempotency_key(request(caption="other"), "main")
    assert key != unfetched_idempotency_key(request(source="s3://m/b.mp4"), "main")
    assert key != unfetched_idempotency_key(request(mode="hold"), "main")
    assert key != unfetched_idempotency_key(request(idempotency_key="k"), "main")


def _event(kind: str, data: dict | None, n: int) -> PostEvent:
    return PostEvent(id=n, post_id=1, at=datetime(2026, 1, 1, tzinfo=UTC), from_state=PostState.queued,
                     to_state=PostState.queued, kind=kind, message=None, data=data)


def test_the_latest_attempts_request_wins() -> None:
    first = request_json(request())
    assert "accounts" not in first
    fixed = request_json(request(privacy_level="FOLLOWER_OF_CREATOR"))
    deferred = request_json(request(caption="c", disable_comment=True))
    assert stored_request({"request": first}, []) == first
    assert stored_request({"request": first}, [_event("created", None, 1), _event("request", {"request": fixed}, 2)]) == fixed
    events = [_event("request", {"request": fixed}, 2), _event("deferred", {"request": deferred, "flow_run_id": "x"}, 3),
              _event("slot_reserved", {"used": 1}, 4)]
    assert stored_request({"request": first}, events) == deferred
    assert stored_request({}, []) == {}
