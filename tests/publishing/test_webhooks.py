"""publishing/webhooks.py without Prefect: outcome events, signing, verification, one delivery attempt
against a real receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import httpx
import pytest

from publishing import PublishResult
from ledger import PostState
from publishing.webhooks import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookEvent,
    WebhookRejected,
    WebhookUnavailable,
    outcome_event,
    outcome_event_type,
    redacted,
    send,
    sign,
    verify_signature,
    webhook_request,
)
from tests.plugins.webhook_receiver import receiver, refused_url

SECRET = "whsec_test_0123456789"
NOW = 1_800_000_000.0


def _event(**result: object) -> WebhookEvent:
    fields = {"account": "main", "state": PostState.published, "post_id": 7, "idempotency_key": "key-7",
              "publish_id": "v_pub_7", "share_url": "https://www.tiktok.com/@studio/video/1"} | result
    data = PublishResult(**fields).model_dump(mode="json")
    return outcome_event({**data, "mode": "direct"}, occurred_at=datetime(2026, 11, 3, 10, 0, tzinfo=UTC))


def _signed(event: WebhookEvent, *, now: float = NOW, secret: str = SECRET) -> tuple[bytes, str, str]:
    request = webhook_request("https://hooks.example.com/tiktok", event, secret, now=now)
    return request.content, request.headers[TIMESTAMP_HEADER], request.headers[SIGNATURE_HEADER]


# --- signing and verification --------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body, timestamp, header = _signed(_event())
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert timestamp == str(int(NOW))
    assert header == f"v1={expected}" == f"v1={sign(SECRET, timestamp, body)}"


def test_valid_signature_verifies() -> None:
    body, timestamp, header = _signed(_event())
    assert verify_signature(SECRET, body, timestamp, header, now=NOW + 299)
    assert verify_signature(SECRET.encode(), body, timestamp, header, now=NOW - 299)


def test_tampered_body_is_rejected() -> None:
    body, timestamp, header = _signed(_event())
    tampered = body.replace(b'"published"', b'"failed"')
    assert tampered != body
    assert not verify_signature(SECRET, tampered, timestamp, header, now=NOW)
    # Re-serializing the JSON (key order, spaces) is a different body too: receivers verify raw bytes.
    assert not verify_signature(SECRET, json.dumps(json.loads(body), indent=1).encode(), timestamp, header, now=NOW)


def test_wrong_secret_is_rejected() -> None:
    body, timestamp, header = _signed(_event())
    assert not verify_signature("whsec_someone_else", body, timestamp, header, now=NOW)


def test_stale_or_future_timestamp_is_rejected_even_with_a_valid_signature() -> None:
    body, timestamp, header = _signed(_event())
    assert not verify_signature(SECRET, body, timestamp, header, now=NOW + 301)
    assert not verify_signature(SECRET, body, timestamp, header, now=NOW - 301)
    assert verify_signature(SECRET, body, timestamp, header, tolerance_s=600, now=NOW + 301)


def test_replaying_the_signature_with_a_new_timestamp_is_rejected() -> None:
    body, timestamp, header = _signed(_event())
    assert not verify_signature(SECRET, body, str(int(NOW) + 60), header, now=NOW + 60)


@pytest.mark.parametrize("timestamp", ["", "soon", "1.8e9", "None"])
def test_malformed_timestamp_is_rejected(timestamp: str) -> None:
    body, _, header = _signed(_event())
    assert not verify_signature(SECRET, body, timestamp, header, now=NOW)


def test_header_with_several_signatures_verifies_when_one_matches() -> None:
    body, timestamp, header = _signed(_event())
    assert verify_signature(SECRET, body, timestamp, f"v1=deadbeef, {header}", now=NOW)
    assert not verify_signature(SECRET, body, timestamp, header.replace("v1=", "v0="), now=NOW)
    assert not verify_signature(SECRET, body, timestamp, "", now=NOW)


def test_verify_uses_the_current_time_by_default() -> None:
    body, timestamp, header = _signed(_event(), now=time.time())
    assert verify_signature(SECRET, body, timestamp, header)
    old_body, old_timestamp, old_header = _signed(_event(), now=time.time() - 3600)
    assert not verify_signature(SECRET, old_body, old_timestamp, old_header)


# --- events ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "mode", "expected"),
    [
        ("published", "direct", "tiktok.post.published"),
        ("sent_to_inbox", "inbox", "tiktok.post.sent_to_inbox"),
        ("failed", "direct", "tiktok.post.failed"),
        ("unconfirmed", "direct", "tiktok.post.unconfirmed"),
        ("processing", "direct", "tiktok.post.processing"),
        ("media_ready", "hold", "tiktok.post.held"),
        ("queued", "hold", "tiktok.post.held"),
        ("media_ready", "direct", "tiktok.post.interrupted"),
        ("initialized", "direct", "tiktok.post.interrupted"),
        ("uploaded", "inbox", "tiktok.post.interrupted"),
        ("discarded", "hold", "tiktok.post.discarded"),
    ],
)
def test_event_type_per_outcome(state: str, mode: str, expected: str) -> None:
    assert outcome_event_type(state, mode) == expected


def test_every_post_state_has_an_event_type() -> None:
    for state in PostState:
        for mode in ("direct", "inbox", "hold"):
            assert outcome_event_type(state, mode).startswith("tiktok.post.")


def test_event_body_shape_and_stable_id() -> None:
    event = _event()
    body = json.loads(event.body())
    assert list(body) == ["id", "type", "occurred_at", "data"]
    assert body["type"] == "tiktok.post.published" and body["occurred_at"] == "2026-11-03T10:00:00Z"
    assert body["data"]["post_id"] == 7 and body["data"]["publish_id"] == "v_pub_7" and body["data"]["mode"] == "direct"
    assert body["data"] == PublishResult(**{k: v for k, v in body["data"].items() if k != "mode"}).model_dump(mode="json") | {"mode": "direct"}
    # A re-run reporting the same outcome of the same post repeats the id (receivers dedupe on it) ...
    assert _event().id == event.id
    # ... another outcome or another post does not; an outcome without a ledger row is always new.
    assert _event(state=PostState.failed).id != event.id
    assert _event(post_id=8).id != event.id
    assert _event(post_id=None).id != _event(post_id=None).id


# --- one delivery attempt over real HTTP -------------------------------------------------------------


def test_request_is_built_without_sending() -> None:
    event = _event()
    request = webhook_request("https://hooks.example.com/tiktok?team=7", event, SECRET, now=NOW)
    assert request.method == "POST" and str(request.url) == "https://hooks.example.com/tiktok?team=7"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers[EVENT_ID_HEADER] == str(event.id)
    assert request.headers[EVENT_TYPE_HEADER] == "tiktok.post.published"
    assert request.content == event.body()


def test_delivery_reaches_a_real_receiver_that_verifies_it() -> None:
    event = _event()
    with receiver() as hook, httpx.Client(timeout=5) as client:
        status = send(client, webhook_request(hook.url, event, SECRET, now=time.time()))
    assert status == 200
    [delivery] = hook.deliveries
    assert delivery.verified(SECRET) and not delivery.verified("another secret")
    assert delivery.event["id"] == str(event.id) and delivery.event["data"]["post_id"] == 7
    assert delivery.body == event.body()


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_5xx_and_429_are_retryable(status: int) -> None:
    with receiver(status) as hook, httpx.Client(timeout=5) as client:
        with pytest.raises(WebhookUnavailable, match=str(status)) as caught:
            send(client, webhook_request(hook.url, _event(), SECRET, now=time.time()))
    assert caught.value.retryable and caught.value.detail["status"] == status


@pytest.mark.parametrize("status", [400, 401, 404, 410, 301])
def test_other_answers_are_final(status: int) -> None:
    with receiver(status) as hook, httpx.Client(timeout=5) as client:
        with pytest.raises(WebhookRejected, match=str(status)) as caught:
            send(client, webhook_request(hook.url, _event(), SECRET, now=time.time()))
    assert caught.value.final and len(hook.deliveries) == 1


def test_connection_refused_is_retryable() -> None:
    with httpx.Client(timeout=5) as client, pytest.raises(WebhookUnavailable, match="unreachable") as caught:
        send(client, webhook_request(refused_url(), _event(), SECRET, now=time.time()))
    assert caught.value.retryable


def test_timeout_is_retryable() -> None:
    with receiver(answer_at_once=False) as hook, httpx.Client(timeout=0.3) as client:
        with pytest.raises(WebhookUnavailable, match="timed out") as caught:
            send(client, webhook_request(hook.url, _event(), SECRET, now=time.time()))
    assert caught.value.retryable and len(hook.deliveries) == 1


def test_logs_show_only_scheme_and_host_of_a_url() -> None:
    assert redacted("https://user:pw@hooks.example.com/services/T000/B000/XXXX?token=abc") == "https://hooks.example.com/…"
    assert redacted("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080/…"
