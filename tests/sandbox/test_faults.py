"""Injected faults as a client sees them: 5xx, latency, dropped connections and lost answers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from sandbox import SandboxHandle
from tests.sandbox.helpers import CREATOR_INFO, MIB, STATUS, TOKEN, VIDEO_INIT, call, code_of, put_chunk, video_init_body

TokenFactory = Callable[..., str]


def test_error_500_is_answered_once_and_nothing_is_applied(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    token = sandbox_token()
    sandbox.add_fault("video_init", "error_500", times=1)
    failed = call(sandbox.base_url, VIDEO_INIT, token, video_init_body(1000))
    assert failed.status_code == 500 and code_of(failed) == "internal_error"
    assert sandbox.posts() == []
    assert call(sandbox.base_url, VIDEO_INIT, token, video_init_body(1000)).status_code == 200
    assert len(sandbox.posts()) == 1


def test_oauth_faults_use_the_flat_error_format(sandbox: SandboxHandle) -> None:
    sandbox.add_fault("oauth_token", "error_503", times=1)
    answer = httpx.post(f"{sandbox.base_url}{TOKEN}", data={"grant_type": "refresh_token"})
    assert answer.status_code == 503 and answer.json()["error"] == "server_error"


def test_latency_is_felt_by_the_client(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    token = sandbox_token()
    sandbox.add_fault("creator_info", "latency", latency_ms=1500, times=1)
    # The server sleeps at least 1.5 s before answering, so a 0.2 s read timeout always fires.
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{sandbox.base_url}{CREATOR_INFO}", headers={"Authorization": f"Bearer {token}"}, timeout=0.2)
    assert call(sandbox.base_url, CREATOR_INFO, token).status_code == 200


def test_drop_closes_without_answer_and_applies_nothing(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    token = sandbox_token()
    sandbox.add_fault("video_init", "drop", times=1)
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {token}"}) as client:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            client.post(VIDEO_INIT, json=video_init_body(1000))
        assert sandbox.posts() == []
        assert client.post(VIDEO_INIT, json=video_init_body(1000)).status_code == 200


def test_lost_answer_applies_the_init(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    """The duplicate-post trap: the client saw a failure, yet TikTok created the post."""
    token = sandbox_token()
    sandbox.add_fault("video_init", "lost_answer", times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        call(sandbox.base_url, VIDEO_INIT, token, video_init_body(1000))
    assert len(sandbox.posts()) == 1


def test_held_answer_applies_at_once_and_answers_late(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    """A client killed while TikTok holds the answer never learns of the post TikTok already made."""
    token = sandbox_token()
    sandbox.add_fault("video_init", "held_answer", latency_ms=1500, times=2)
    with pytest.raises(httpx.ReadTimeout):  # gave up waiting: the init was applied all the same
        httpx.post(f"{sandbox.base_url}{VIDEO_INIT}", headers={"Authorization": f"Bearer {token}"},
                   json=video_init_body(1000), timeout=0.3)
    assert len(sandbox.posts()) == 1
    answered = call(sandbox.base_url, VIDEO_INIT, token, video_init_body(1000))  # a patient client is answered
    assert answered.status_code == 200 and answered.json()["data"]["publish_id"]
    assert len(sandbox.posts()) == 2


def test_held_answer_needs_a_delay(sandbox: SandboxHandle) -> None:
    answer = httpx.post(f"{sandbox.base_url}/_sandbox/faults", json={"endpoint": "video_init", "kind": "held_answer"})
    assert answer.status_code == 422 and "held_answer fault needs latency_ms" in answer.text


def test_lost_chunk_answer_then_resume_from_416(sandbox: SandboxHandle, sandbox_token: TokenFactory, media: dict[str, Path]) -> None:
    data = media["noise"].read_bytes()
    total = len(data)
    token = sandbox_token()
    upload_url = call(sandbox.base_url, VIDEO_INIT, token, video_init_body(total)).json()["data"]["upload_url"]
    sandbox.add_fault("upload", "lost_answer", times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        put_chunk(upload_url, data, 0, 5 * MIB - 1)
    resent = put_chunk(upload_url, data, 0, 5 * MIB - 1)
    assert resent.status_code == 416 and resent.headers["Content-Range"] == f"bytes 0-{5 * MIB - 1}/{total}"
    assert put_chunk(upload_url, data, 5 * MIB, total - 1).status_code == 201


def test_dropped_chunk_is_not_applied(sandbox: SandboxHandle, sandbox_token: TokenFactory, media: dict[str, Path]) -> None:
    data = media["noise"].read_bytes()
    token = sandbox_token()
    init = call(sandbox.base_url, VIDEO_INIT, token, video_init_body(len(data))).json()["data"]
    sandbox.add_fault("upload", "drop", times=1)
    with pytest.raises(httpx.TransportError):
        put_chunk(init["upload_url"], data, 0, 5 * MIB - 1)
    assert call(sandbox.base_url, STATUS, token, {"publish_id": init["publish_id"]}).json()["data"]["uploaded_bytes"] == 0
    assert put_chunk(init["upload_url"], data, 0, 5 * MIB - 1).status_code == 206


def test_seeded_probability_repeats_the_same_pattern(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    def pattern() -> list[int]:
        token = sandbox_token()
        sandbox.add_fault("creator_info", "error_502", probability=0.5, seed=7)
        with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {token}"}) as client:
            codes = [client.post(CREATOR_INFO).status_code for _ in range(16)]
        sandbox.reset()
        return codes

    first, second = pattern(), pattern()
    assert first == second
    assert set(first) == {200, 502}


def test_fault_rules_are_validated_and_listed(sandbox: SandboxHandle) -> None:
    for rule in ({"endpoint": "nope", "kind": "drop"}, {"endpoint": "upload", "kind": "error_404"},
                 {"endpoint": "upload", "kind": "latency"}):
        assert httpx.post(f"{sandbox.base_url}/_sandbox/faults", json=rule).status_code == 422
    sandbox.add_fault("*", "error_500", times=2)
    listed = httpx.get(f"{sandbox.base_url}/_sandbox/faults").json()
    assert [(f["endpoint"], f["remaining"]) for f in listed] == [("*", 2)]
    sandbox.clear_faults()
    assert httpx.get(f"{sandbox.base_url}/_sandbox/faults").json() == []
