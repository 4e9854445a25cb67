"""TikTok's webhooks as the sandbox sends them, received over real HTTP by a loopback server of the test's own.

Signatures are checked here with hmac/hashlib directly, as TikTok documents them (not with the
sandbox's code): `TikTok-Signature: t=<unix s>,s=<hex HMAC-SHA256(client_secret, "<t>." + raw body)>`.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox import SandboxConfig, SandboxHandle, free_port, serve
from sandbox._config import DEFAULT_CLIENT_KEY, DEFAULT_CLIENT_SECRET
from tests.sandbox.helpers import CANCEL, REVOKE, STATUS, VIDEO_INIT, call, post_video, status

TokenFactory = Callable[..., str]
OPEN_ID = "sbx-open-id-studio-main"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def event(self) -> str:
        return str(self.json["event"])

    @property
    def content(self) -> dict[str, Any]:
        content = self.json["content"]
        assert isinstance(content, str), "content must be a JSON string"
        return dict(json.loads(content))


class Receiver:
    """A callback URL: records every POST (raw body, headers) and answers `answers` in turn, then 200."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.answers: deque[int] = deque()
        self.delay = 0.0
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests.append(Received(dict(self.headers.items()), body, time.monotonic()))
                    answer = receiver.answers.popleft() if receiver.answers else 200
                    delay = receiver.delay
                time.sleep(delay)
                self.send_response(answer)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tiktok/webhook"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} webhook requests, got {[r.event for r in self.requests]}")

    def quiet_for(self, seconds: float) -> list[Received]:
        """Every request after `seconds` in which none arrives more."""
        time.sleep(seconds)
        with self._lock:
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


@pytest.fixture
def hooked(sandbox: SandboxHandle, receiver: Receiver) -> SandboxHandle:
    """The sandbox with the receiver registered as the app's callback URL."""
    sandbox.set_webhook_url(receiver.url)
    return sandbox


def signature_parts(request: Received) -> dict[str, str]:
    header = request.headers["TikTok-Signature"]
    parts = dict(part.split("=", 1) for part in header.split(","))
    assert set(parts) == {"t", "s"}, header
    return parts


def signed_validly(request: Received, secret: str = DEFAULT_CLIENT_SECRET, tolerance: float = 300) -> bool:
    parts = signature_parts(request)
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["s"]) and abs(time.time() - int(parts["t"])) <= tolerance


def events(requests: list[Received]) -> list[str]:
    return [r.event for r in requests]


def remove_app(sandbox: SandboxHandle, user: str = "studio_main", reason: int = 1) -> None:
    """`user` (who has just authorized the app) removes it: one authorization.removed event."""
    sandbox.issue_token(user)
    assert sandbox.deauthorize(user, reason)


def wait_for_state(sandbox: SandboxHandle, index: int, state: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = sandbox.webhooks()
        if len(listed) > index and listed[index]["state"] == state:
            return listed[index]
        time.sleep(0.02)
    raise AssertionError(f"webhook {index} never became {state}: {sandbox.webhooks()}")


# --- events --------------------------------------------------------------------------------------
def test_published_post_sends_one_signed_complete(
    hooked: SandboxHandle, receiver: Receiver, sandbox_token: TokenFactory, media: dict[str, Path]
) -> None:
    token = sandbox_token()
    publish_id = post_video(hooked.base_url, token, media["good"].read_bytes(), "SELF_ONLY")
    # Nobody polls: TikTok processes the post and reports it all the same.
    (request,) = receiver.wait_for(1)
    assert request.headers["Content-Type"] == "application/json"
    assert signed_validly(request)
    body = request.json
    assert set(body) == {"client_key", "event", "create_time", "user_openid", "content"}
    assert body["client_key"] == DEFAULT_CLIENT_KEY and body["user_openid"] == OPEN_ID
    assert body["event"] == "post.publish.complete"
    assert isinstance(body["create_time"], int) and abs(body["create_time"] - time.time()) < 60
    assert request.content == {"publish_id": publish_id, "publish_type": "DIRECT_PUBLISH"}
    assert status(hooked.base_url, token, publish_id)["status"] == "PUBLISH_COMPLETE"
    assert len(receiver.quiet_for(0.5)) == 1  # exactly one: polling reports nothing again
    (listed,) = hooked.webhooks()
    assert listed["state"] == "delivered" and listed["url"] == receiver.url and listed["fault"] is None
    assert listed["raw_body"].encode() == request.body and listed["body"] == body
    assert listed["signature"] == request.headers["TikTok-Signature"]
    assert [a["status_code"] for a in listed["attempts"]] == [200]


def test_failed_post_sends_failed_with_its_reason(
    hooked: SandboxHandle, receiver: Receiver, sandbox_token: TokenFactory, media: dict[str, Path]
) -> None:
    publish_id = post_video(hooked.base_url, sandbox_token(), media["fps15"].read_bytes(), "SELF_ONLY")
    (request,) = receiver.wait_for(1)
    assert request.event == "post.publish.failed" and signed_validly(request)
    assert request.content == {"publish_id": publish_id, "publish_type": "DIRECT_PUBLISH",
                               "reason": "frame_rate_check_failed"}


def test_cancelled_pull_sends_failed_publish_cancelled(
    hooked: SandboxHandle, receiver: Receiver, sandbox_token: TokenFactory
) -> None:
    # A host that takes the connection and never answers: the pull stays PROCESSING_DOWNLOAD.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        prefix = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        hooked.reset(hooked.config.model_copy(update={"verified_url_prefixes": [prefix]}))
        hooked.set_webhook_url(receiver.url)
        token = sandbox_token()
        body = {"post_info": {"privacy_level": "SELF_ONLY"},
                "source_info": {"source": "PULL_FROM_URL", "video_url": f"{prefix}clip.mp4"}}
        publish_id = call(hooked.base_url, VIDEO_INIT, token, body).json()["data"]["publish_id"]
        assert receiver.quiet_for(0.3) == []
        assert call(hooked.base_url, CANCEL, token, {"publish_id": publish_id}).status_code == 200
        (request,) = receiver.wait_for(1)
    assert request.event == "post.publish.failed"
    assert request.content == {"publish_id": publish_id, "publish_type": "DIRECT_PUBLISH", "reason": "publish_cancelled"}


def test_inbox_share_sends_inbox_delivered_then_complete(
    hooked: SandboxHandle, receiver: Receiver, sandbox_token: TokenFactory, media: dict[str, Path]
) -> None:
    publish_id = post_video(hooked.base_url, sandbox_token(), media["good"].read_bytes(), inbox=True)
    (delivered,) = receiver.wait_for(1)
    assert delivered.event == "post.publish.inbox_delivered" and signed_validly(delivered)
    assert delivered.content == {"publish_id": publish_id, "publish_type": "INBOX_SHARE"}
    hooked.publish_from_inbox(publish_id, "SELF_ONLY")  # the creator posts the draft in the app
    complete = receiver.wait_for(2)[1]
    assert complete.event == "post.publish.complete"
    assert complete.content == {"publish_id": publish_id, "publish_type": "INBOX_SHARE"}


def test_public_post_sends_publicly_available_with_its_post_id_and_its_take_down(
    hooked: SandboxHandle, receiver: Receiver, sandbox_token: TokenFactory, media: dict[str, Path]
) -> None:
    token = sandbox_token()
    publish_id = post_video(hooked.base_url, token, media["good"].read_bytes(), "PUBLIC_TO_EVERYONE")
    assert events(receiver.wait_for(1)) == ["post.publish.complete"]
    assert len(receiver.quiet_for(0.3)) == 1  # moderation takes 60 s of sandbox clock
    hooked.advance_clock(61)
    available = receiver.wait_for(2)[1]
    assert available.event == "post.publish.publicly_available" and signed_validly(available)
    post_ids = status(hooked.base_url, token, publish_id)["publicaly_available_post_id"]
    assert available.content == {"publish_id": publish_id, "publish_type": "DIRECT_PUBLISH",
                                 "post_id": str(post_ids[0])}
    hooked.take_down(publish_id)
    gone = receiver.wait_for(3)[2]
    assert gone.event == "post.publish.no_longer_publicaly_available"  # TikTok's spelling
    assert gone.content["post_id"] == str(post_ids[0])
    assert status(hooked.base_url, token, publish_id)["publicaly_available_post_id"] == []


def test_revoke_sends_authorization_removed(hooked: SandboxHandle, receiver: Receiver) -> None:
    tokens = hooked.issue_token()
    form = {"client_key": DEFAULT_CLIENT_KEY, "client_secret": DEFAULT_CLIENT_SECRET, "token": tokens["access_token"]}
    assert httpx.post(f"{hooked.base_url}{REVOKE}", data=form).status_code == 200
    (request,) = receiver.wait_for(1)
    assert request.event == "authorization.removed" and signed_validly(request)
    assert request.json["user_openid"] == OPEN_ID
    assert request.content == {"reason": 5}  # 5 = developer revoked the authorization
    # Revoking what is already revoked removes nothing: no second event.
    assert httpx.post(f"{hooked.base_url}{REVOKE}", data=form).status_code == 200
    assert len(receiver.quiet_for(0.3)) == 1


def test_user_removing_the_app_sends_its_reason(hooked: SandboxHandle, receiver: Receiver) -> None:
    token = str(hooked.issue_token("private_creator")["access_token"])
    assert hooked.deauthorize("private_creator", reason=4)  # 4 = the account got banned
    (request,) = receiver.wait_for(1)
    assert request.json["user_openid"] == "sbx-open-id-private-creator" and request.content == {"reason": 4}
    assert call(hooked.base_url, STATUS, token, {"publish_id": "x"}).status_code == 401
    assert not hooked.deauthorize("private_creator")  # nothing left to remove, nothing sent
    assert len(receiver.quiet_for(0.3)) == 1


# --- delivery ------------------------------------------------------------------------------------
def test_retries_until_answered_200(hooked: SandboxHandle, receiver: Receiver) -> None:
    receiver.answers.extend([500, 500])
    remove_app(hooked, "studio_main")
    requests = receiver.wait_for(3)
    assert len({r.body for r in requests}) == 1 and all(signed_validly(r) for r in requests)
    # Exponential backoff: 0.2 s, then 0.4 s.
    assert requests[1].at - requests[0].at >= 0.18 and requests[2].at - requests[1].at >= 0.38
    listed = wait_for_state(hooked, 0, "delivered")
    assert [a["status_code"] for a in listed["attempts"]] == [500, 500, 200]
    assert len(receiver.quiet_for(0.8)) == 3


def test_gives_up_after_the_last_attempt(hooked: SandboxHandle, receiver: Receiver) -> None:
    hooked.reset(hooked.config.model_copy(update={"webhook_max_attempts": 3, "webhook_retry_delay": 0.05}))
    hooked.set_webhook_url(receiver.url)
    receiver.answers.extend([503] * 10)
    remove_app(hooked, "studio_main")
    listed = wait_for_state(hooked, 0, "failed")
    assert [a["status_code"] for a in listed["attempts"]] == [503, 503, 503]
    assert len(receiver.quiet_for(0.5)) == 3


def test_connection_errors_are_retried(hooked: SandboxHandle) -> None:
    hooked.reset(hooked.config.model_copy(update={"webhook_max_attempts": 2, "webhook_retry_delay": 0.05}))
    hooked.set_webhook_url(f"http://127.0.0.1:{free_port()}/hook")  # nobody listens there
    remove_app(hooked, "studio_main")
    listed = wait_for_state(hooked, 0, "failed")
    assert len(listed["attempts"]) == 2
    assert all(a["status_code"] is None and "ConnectError" in a["error"] for a in listed["attempts"])


def test_no_callback_url_sends_nothing(
    sandbox: SandboxHandle, receiver: Receiver, sandbox_token: TokenFactory, media: dict[str, Path]
) -> None:
    token = sandbox_token()
    publish_id = post_video(sandbox.base_url, token, media["good"].read_bytes(), "SELF_ONLY")
    assert status(sandbox.base_url, token, publish_id)["status"] == "PUBLISH_COMPLETE"
    remove_app(sandbox, "private_creator")
    assert receiver.quiet_for(0.4) == [] and sandbox.webhooks() == []
    # A callback URL registered later gets later events only, not what happened before.
    sandbox.set_webhook_url(receiver.url)
    assert receiver.quiet_for(0.3) == [] and sandbox.webhooks() == []
    remove_app(sandbox, "studio_main")
    assert events(receiver.wait_for(1)) == ["authorization.removed"]
    sandbox.set_webhook_url(None)
    remove_app(sandbox, "studio_main")
    assert len(receiver.quiet_for(0.3)) == 1


def test_a_slow_receiver_does_not_slow_the_api(
    hooked: SandboxHandle, receiver: Receiver, sandbox_token: TokenFactory, media: dict[str, Path]
) -> None:
    receiver.delay = 1.5
    token = sandbox_token()
    publish_id = post_video(hooked.base_url, token, media["good"].read_bytes(), "SELF_ONLY")
    receiver.wait_for(1)  # the receiver now holds the complete event for 1.5 s
    started = time.monotonic()
    assert status(hooked.base_url, token, publish_id)["status"] == "PUBLISH_COMPLETE"
    form = {"client_key": DEFAULT_CLIENT_KEY, "client_secret": DEFAULT_CLIENT_SECRET, "token": token}
    assert httpx.post(f"{hooked.base_url}{REVOKE}", data=form).status_code == 200  # queues an event
    assert time.monotonic() - started < 0.75
    assert wait_for_state(hooked, 1, "delivered")["event"] == "authorization.removed"


def test_reset_forgets_the_webhooks_and_the_callback_url(hooked: SandboxHandle, receiver: Receiver) -> None:
    remove_app(hooked, "studio_main")
    wait_for_state(hooked, 0, "delivered")
    hooked.reset()
    assert hooked.webhooks() == []
    assert httpx.get(f"{hooked.base_url}/_sandbox/webhook").json() == {"url": None}


def test_a_stopped_sandbox_sends_no_more(receiver: Receiver) -> None:
    receiver.answers.extend([500] * 10)
    config = SandboxConfig(webhook_url=receiver.url, webhook_retry_delay=0.4)  # registered at startup
    with serve(config) as sandbox:
        remove_app(sandbox)
        receiver.wait_for(1)
        started = time.monotonic()
    assert time.monotonic() - started < 3  # pending retries do not hold the shutdown up
    assert len(receiver.quiet_for(1.0)) == 1


def test_callback_url_must_be_https_or_loopback(sandbox: SandboxHandle) -> None:
    answer = httpx.put(f"{sandbox.base_url}/_sandbox/webhook", json={"url": "http://example.com/hook"})
    assert answer.status_code == 422 and "must be https" in answer.text
    assert httpx.put(f"{sandbox.base_url}/_sandbox/webhook", json={"url": "https://example.com/hook"}).status_code == 200
    assert httpx.get(f"{sandbox.base_url}/_sandbox/webhook").json() == {"url": "https://example.com/hook"}


# --- faults --------------------------------------------------------------------------------------
def test_lost_event_is_never_sent(hooked: SandboxHandle, receiver: Receiver) -> None:
    hooked.add_fault("webhook", "lost")
    remove_app(hooked, "studio_main")
    remove_app(hooked, "private_creator")
    (request,) = receiver.wait_for(1)
    assert request.json["user_openid"] == "sbx-open-id-private-creator"  # the first one was lost
    assert len(receiver.quiet_for(0.4)) == 1
    first, second = hooked.webhooks()
    assert (first["state"], first["fault"], first["attempts"]) == ("lost", "lost", [])
    assert second["state"] == "delivered"


def test_duplicate_event_is_sent_twice_validly_signed(hooked: SandboxHandle, receiver: Receiver) -> None:
    hooked.add_fault("webhook", "duplicate")
    remove_app(hooked, "studio_main")
    first, second = receiver.wait_for(2)
    assert first.body == second.body and signed_validly(first) and signed_validly(second)
    assert len(receiver.quiet_for(0.4)) == 2
    original, copy = hooked.webhooks()
    assert copy["duplicate_of"] == original["id"] and copy["body"] == original["body"]


def test_late_event_is_sent_after_its_delay(hooked: SandboxHandle, receiver: Receiver) -> None:
    hooked.add_fault("webhook", "late", latency_ms=800)
    remove_app(hooked, "studio_main")
    assert receiver.quiet_for(0.4) == []
    (request,) = receiver.wait_for(1)
    assert signed_validly(request)
    listed = wait_for_state(hooked, 0, "delivered")
    assert listed["attempts"][0]["at"] - listed["created_at"] >= 0.75


def test_out_of_order_event_comes_after_the_next_one(
    hooked: SandboxHandle, receiver: Receiver, sandbox_token: TokenFactory, media: dict[str, Path]
) -> None:
    hooked.reset(hooked.config.model_copy(update={"moderation_delay": 0}))
    hooked.set_webhook_url(receiver.url)
    hooked.add_fault("webhook", "out_of_order", event="post.publish.complete")
    publish_id = post_video(hooked.base_url, sandbox_token(), media["good"].read_bytes(), "PUBLIC_TO_EVERYONE")
    requests = receiver.wait_for(2)
    assert events(requests) == ["post.publish.publicly_available", "post.publish.complete"]
    assert all(r.content["publish_id"] == publish_id and signed_validly(r) for r in requests)
    assert [w["fault"] for w in hooked.webhooks()] == ["out_of_order", None]


def test_out_of_order_event_without_a_next_one_is_held(hooked: SandboxHandle, receiver: Receiver) -> None:
    hooked.add_fault("webhook", "out_of_order")
    remove_app(hooked, "studio_main")
    assert receiver.quiet_for(0.4) == []
    assert hooked.webhooks()[0]["state"] == "held"
    remove_app(hooked, "private_creator")
    assert [r.json["user_openid"] for r in receiver.wait_for(2)] == ["sbx-open-id-private-creator", OPEN_ID]
    # With latency_ms it is held that long at most.
    hooked.add_fault("webhook", "out_of_order", latency_ms=300)
    remove_app(hooked, "studio_main")
    assert len(receiver.wait_for(3)) == 3


def test_bad_and_stale_signatures(hooked: SandboxHandle, receiver: Receiver) -> None:
    hooked.add_fault("webhook", "bad_signature")
    remove_app(hooked, "studio_main")
    (bad,) = receiver.wait_for(1)
    assert not signed_validly(bad, tolerance=10**9) and signature_parts(bad)["t"].isdigit()
    hooked.add_fault("webhook", "stale_signature")
    remove_app(hooked, "private_creator")
    stale = receiver.wait_for(2)[1]
    assert signed_validly(stale, tolerance=10**9) and not signed_validly(stale)  # valid, but an hour old
    assert time.time() - int(signature_parts(stale)["t"]) >= 3_000


def test_faults_match_by_event_and_count(
    hooked: SandboxHandle, receiver: Receiver, sandbox_token: TokenFactory, media: dict[str, Path]
) -> None:
    hooked.add_fault("webhook", "lost", event="post.publish.complete", times=2)
    hooked.add_fault("*", "error_500", times=1)  # "*" is every API endpoint, never the webhook
    token = sandbox_token()  # /_sandbox/tokens is no API endpoint either
    data = media["good"].read_bytes()
    assert call(hooked.base_url, STATUS, token, {"publish_id": "x"}).status_code == 500
    remove_app(hooked, "private_creator")
    assert events(receiver.wait_for(1)) == ["authorization.removed"]
    for _ in range(3):
        post_video(hooked.base_url, token, data, "SELF_ONLY")
    assert events(receiver.wait_for(2)) == ["authorization.removed", "post.publish.complete"]
    assert len(receiver.quiet_for(0.4)) == 2
    assert [w["state"] for w in hooked.webhooks()] == ["delivered", "lost", "lost", "delivered"]


def test_webhook_fault_rules_are_validated(sandbox: SandboxHandle) -> None:
    for rule in (
        {"endpoint": "webhook", "kind": "error_500"},
        {"endpoint": "webhook", "kind": "drop"},
        {"endpoint": "video_init", "kind": "duplicate"},
        {"endpoint": "*", "kind": "lost"},
        {"endpoint": "webhook", "kind": "late"},  # needs latency_ms
        {"endpoint": "webhook", "kind": "lost", "event": "post.publish.completed"},
        {"endpoint": "video_init", "kind": "error_500", "event": "post.publish.complete"},
    ):
        assert httpx.post(f"{sandbox.base_url}/_sandbox/faults", json=rule).status_code == 422, rule
    sandbox.add_fault("webhook", "lost", event="post.publish.no_longer_publicaly_available", probability=0.5, seed=1)
    (listed,) = httpx.get(f"{sandbox.base_url}/_sandbox/faults").json()
    assert (listed["endpoint"], listed["event"], listed["remaining"]) == (
        "webhook", "post.publish.no_longer_publicaly_available", None)
