"""publishing/webhooks.py without Prefect: outcome events, signing, verification, one delivery attempt
against a real receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from ledger import DeliveryStatus, PostState
from publishing import PublishResult
from publishing.maintenance import redeliver_webhooks
from publishing.posting import result_of
from publishing.services import Services
from publishing.webhooks import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    REDELIVERY_WINDOW,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookEvent,
    WebhookRejected,
    WebhookUnavailable,
    deliver_stored,
    outcome_event,
    outcome_event_type,
    receiver_key,
    redacted,
    redelivery_delay,
    send,
    sign,
    store_deliveries,
    verify_signature,
    webhook_request,
)
from sandbox import free_port
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


@pytest.mark.parametrize("timestamp", ["", "soon", "1.8e9", "None", None, 1800000000])
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


# --- canonical timestamps: the helper and the documented stdlib recipe agree ------------------------

#: Timestamps int() reads (or str.isdigit() takes) that are not the one form signed: all refused.
HOSTILE_TIMESTAMPS = [
    " 1800000000", "1800000000 ", "+1800000000", "-1800000000", "1800_000_000", "18_0000_0000", "\t1800000000",
    "1800000000\n", "١٨٠٠٠٠٠٠٠٠", "１８００００００００", "1800000000.0", "0x6b49d200", "²", "", " ",
    "1" * 13, "0" * 5000,
]


def _hmac_over(timestamp: str, body: bytes, secret: str = SECRET) -> str:
    """A v1 header signed over exactly `timestamp` as given (what a forger holding the secret would send)."""
    return "v1=" + hmac.new(secret.encode(), timestamp.encode("utf-8", "surrogatepass") + b"." + body,
                            hashlib.sha256).hexdigest()


def _documented_recipe() -> Callable[..., bool]:
    """The stdlib `verify` of docs/webhooks.md, run from the doc's own code block, its clock fixed at NOW."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text(encoding="utf-8")
    [code] = [block for block in re.findall(r"```python\n(.*?)```", doc, flags=re.S) if "def verify(" in block]
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/webhooks.md", "exec"), namespace)  # noqa: S102 - the documented code itself
    namespace["time"] = SimpleNamespace(time=lambda: NOW)  # the recipe reads time.time() when it runs
    return namespace["verify"]  # type: ignore[return-value]


@pytest.mark.parametrize("timestamp", HOSTILE_TIMESTAMPS)
def test_non_canonical_timestamps_are_refused_by_the_helper_and_the_documented_recipe(timestamp: str) -> None:
    body = _event().body()
    recipe = _documented_recipe()
    canonical = str(int(NOW))
    # Signed over the hostile text itself, or over the canonical form it would read as: neither passes.
    for header in (_hmac_over(timestamp, body), _hmac_over(canonical, body)):
        assert verify_signature(SECRET, body, timestamp, header, now=NOW) is False
        assert recipe(SECRET, body, timestamp, header) is False
    with pytest.raises(ValueError, match="1 to 12 ASCII digits"):
        sign(SECRET, timestamp, body)


def test_the_documented_recipe_accepts_what_the_helper_accepts() -> None:
    body, timestamp, header = _signed(_event())
    recipe = _documented_recipe()
    assert recipe(SECRET, body, timestamp, header) is True is verify_signature(SECRET, body, timestamp, header, now=NOW)
    assert recipe(SECRET, body, timestamp, f"v1=deadbeef, {header}") is True
    assert recipe("another secret", body, timestamp, header) is False
    assert recipe(SECRET, body, str(int(NOW) - 301), _hmac_over(str(int(NOW) - 301), body)) is False
    assert recipe(SECRET, body, "0" + timestamp, _hmac_over(timestamp, body)) is False  # not what was signed


_timestamps = st.one_of(
    st.text(max_size=14),
    st.text(alphabet="0123456789 +-_.\t\n١２", max_size=12),
    st.integers(min_value=int(NOW) - 400, max_value=int(NOW) + 400).map(str),
    st.builds(lambda n, pad: pad.replace("N", str(n)), st.integers(int(NOW) - 400, int(NOW) + 400),
              st.sampled_from(["N", " N", "+N", "N ", "0N", "N\n", "N_"])),
)


@settings(max_examples=400, deadline=None)
@given(timestamp=_timestamps, extra=st.text(max_size=20), signed_over=st.sampled_from(["as sent", "canonical"]))
def test_helper_and_recipe_give_the_same_answer_on_any_timestamp_and_header(
    timestamp: str, extra: str, signed_over: str
) -> None:
    body = b'{"id":"x"}'
    over = timestamp
    if signed_over == "canonical":
        try:
            over = str(int(timestamp))
        except ValueError:
            over = timestamp
    header = f"{extra},{_hmac_over(over, body)}"
    ours = verify_signature(SECRET, body, timestamp, header, now=NOW)
    theirs = RECIPE(SECRET, body, timestamp, header)
    assert ours is theirs
    assert ours == (bool(re.fullmatch(r"[0-9]{1,12}", timestamp)) and over == timestamp
                    and abs(NOW - int(timestamp)) <= 300)


RECIPE = _documented_recipe()


# --- the outbox: stored before the first try, same id and body every time ---------------------------


def _settings_with_webhooks(services: Services, *urls: str, timeout: float = 5.0) -> Services:
    settings = services.settings.model_copy(update={"webhook_urls": list(urls), "webhook_secret": SecretStr(SECRET),
                                                    "webhook_timeout": timeout})
    return Services(settings, ledger=services.ledger)


def _outcomes(services: Services, count: int) -> list[WebhookEvent]:
    """`count` outcomes of posts of `main`, as publish runs report them, plus one without a ledger row."""
    book, events = services.ledger, []
    for n in range(count):
        post, _ = book.create_or_get_post(f"outbox-{n}", account_name="main", source_uri=f"s3://media/{n}.mp4",
                                          content_sha256=hashlib.sha256(str(n).encode()).hexdigest(), caption=f"#{n}")
        post = book.transition(post, PostState.failed, error_code="test", error_message=f"outcome {n}")
        events.append(outcome_event({**result_of(post).model_dump(mode="json"), "mode": "direct"},
                                    occurred_at=book.now()))
    failed = PublishResult(account="ghost", state=PostState.failed, error_code="AccountNotFound")
    events.append(outcome_event({**failed.model_dump(mode="json"), "mode": "direct"}, occurred_at=book.now()))
    return events


def test_every_delivery_is_stored_before_it_is_tried_and_kept_until_a_2xx(services: Services) -> None:
    with receiver(503) as hook:
        svc = _settings_with_webhooks(services, hook.url)
        [event] = _outcomes(svc, 1)[:1]
        [(url, stored)] = store_deliveries(svc.ledger, [event], [hook.url])
        assert hook.deliveries == []  # stored, nothing sent yet
        assert (url, stored.status, stored.body.encode(), stored.event_id) == (
            hook.url, DeliveryStatus.pending, event.body(), str(event.id))
        assert stored.receiver == receiver_key(hook.url) and hook.url not in stored.model_dump_json()  # no URL at rest
        with pytest.raises(WebhookUnavailable, match="answered 503"):
            deliver_stored(svc.ledger, stored.id, hook.url, SECRET, timeout=5)
        kept = svc.ledger.get_webhook_delivery(stored.id)
        assert (kept.status, kept.attempts, kept.last_status) == (DeliveryStatus.pending, 1, 503)
        assert kept.next_attempt_at == kept.last_attempt_at + redelivery_delay(1)
        assert deliver_stored(svc.ledger, stored.id, hook.url, SECRET, timeout=5) == 200
        assert deliver_stored(svc.ledger, stored.id, hook.url, SECRET, timeout=5) is None  # taken: not sent again
    assert [d.status for d in hook.deliveries] == [503, 200]
    assert all(d.body == event.body() and d.verified(SECRET) for d in hook.deliveries)
    assert svc.ledger.get_webhook_delivery(stored.id).status is DeliveryStatus.delivered
    # The same outcome reported again (a re-run) finds its row: nothing is sent twice.
    [(_, again)] = store_deliveries(svc.ledger, [event], [hook.url])
    assert again.id == stored.id and again.status is DeliveryStatus.delivered


def test_a_receiver_slower_than_the_timeout_gets_the_same_event_on_every_try(services: Services, clock) -> None:
    with receiver(answer_at_once=False) as slow:
        svc = _settings_with_webhooks(services, slow.url, timeout=0.3)
        [(_, stored)] = store_deliveries(svc.ledger, _outcomes(svc, 1)[:1], [slow.url])
        for _ in range(3):
            with pytest.raises(WebhookUnavailable, match="timed out"):
                deliver_stored(svc.ledger, stored.id, slow.url, SECRET, timeout=0.3)
            clock.advance(timedelta(hours=1))
            redeliver_webhooks(svc)  # cleanup's pass: times out as well
        slow.answer.set()
        clock.advance(timedelta(hours=1))
        assert redeliver_webhooks(svc).delivered == [f"{stored.event_type} {stored.event_id} → {stored.receiver_label}"]
    assert len(slow.deliveries) == 7
    assert {d.headers[EVENT_ID_HEADER] for d in slow.deliveries} == {stored.event_id}  # never a new event
    assert {d.body for d in slow.deliveries} == {stored.body.encode()}
    assert all(d.verified(SECRET) for d in slow.accepted)
    assert svc.ledger.get_webhook_delivery(stored.id).attempts == 7


def test_a_receiver_outage_of_an_hour_loses_no_event(services: Services, clock) -> None:
    """Outcomes announced while the receiver is down for an hour, `cleanup` passing every 30 minutes
    (the ledger's clock moved, a real receiver brought back on the same port): each event arrives
    once it is back, exactly once, with the id and body it was stored with."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks/tiktok"
    svc = _settings_with_webhooks(services, url)
    events = _outcomes(svc, 5)
    stored = store_deliveries(svc.ledger, events, [url])
    for _, delivery in stored:  # the publish run's own tries: connection refused
        with pytest.raises(WebhookUnavailable, match="unreachable"):
            deliver_stored(svc.ledger, delivery.id, url, SECRET, timeout=5)
    started = clock()
    while clock() - started < timedelta(hours=1):
        clock.advance(timedelta(minutes=30))
        done = redeliver_webhooks(svc)
        assert done.delivered == [] and done.given_up == [] and done.pending == len(events)
    with receiver(port=port) as hook:  # back after an hour
        passes = 0
        while svc.ledger.webhook_deliveries(statuses=[DeliveryStatus.pending]) and passes < 3:
            clock.advance(timedelta(minutes=30))
            redeliver_webhooks(svc)
            passes += 1
        assert passes == 1  # everything was due at the first cleanup after the receiver came back
        clock.advance(timedelta(hours=2))
        assert redeliver_webhooks(svc).delivered == []  # nothing is sent twice
    assert sorted(hook.accepted_ids()) == sorted(str(e.id) for e in events) and len(hook.deliveries) == len(events)
    assert {d.event["id"]: d.body for d in hook.deliveries} == {str(e.id): e.body() for e in events}
    assert all(d.verified(SECRET) for d in hook.deliveries)
    assert {d.status for d in svc.ledger.webhook_deliveries()} == {DeliveryStatus.delivered}


def test_redelivery_gives_up_after_24_hours_recording_why(services: Services, clock) -> None:
    down = refused_url()
    gone = refused_url("/hooks/removed")
    svc = _settings_with_webhooks(services, down)
    [event] = _outcomes(svc, 1)[:1]
    [(_, kept)] = store_deliveries(svc.ledger, [event], [down])
    [(_, orphan)] = store_deliveries(svc.ledger, [event], [gone])  # a URL since removed from webhook_urls
    passes = given_up = 0
    while given_up == 0:
        clock.advance(timedelta(minutes=30))
        done = redeliver_webhooks(svc)
        passes, given_up = passes + 1, len(done.given_up)
        assert done.deferred == (0 if given_up else 1)  # the removed URL waits out the window too
    assert passes == 48 and done.pending == 0
    dead = svc.ledger.get_webhook_delivery(kept.id)
    assert dead.status is DeliveryStatus.given_up and dead.attempts == 47
    assert dead.status_reason.startswith("no 2xx answer within 24 h of the event, after 47 tries; last: webhook "
                                         f"http://127.0.0.1:{down.split(':')[2].split('/')[0]}/… unreachable")
    removed = svc.ledger.get_webhook_delivery(orphan.id)
    assert removed.status is DeliveryStatus.given_up and removed.attempts == 0
    assert "its receiver is not among this worker's webhook_urls" in removed.status_reason
    assert "/hooks/removed" not in removed.status_reason


def test_a_refusal_stays_in_the_outbox_and_is_taken_once_the_receiver_is_fixed(services: Services, clock) -> None:
    with receiver(401) as hook:
        svc = _settings_with_webhooks(services, hook.url)
        [(_, stored)] = store_deliveries(svc.ledger, _outcomes(svc, 1)[:1], [hook.url])
        with pytest.raises(WebhookRejected, match="answered 401"):
            deliver_stored(svc.ledger, stored.id, hook.url, SECRET, timeout=5)
        assert redeliver_webhooks(svc).delivered == []  # not due for a minute
        clock.advance(redelivery_delay(1))
        assert len(redeliver_webhooks(svc).delivered) == 1
    assert [d.status for d in hook.deliveries] == [401, 200]


def test_a_delivery_being_sent_is_not_sent_again_by_a_cleanup_meanwhile(services: Services) -> None:
    with receiver(answer_at_once=False) as slow:
        svc = _settings_with_webhooks(services, slow.url)
        [(_, stored)] = store_deliveries(svc.ledger, _outcomes(svc, 1)[:1], [slow.url])
        with ThreadPoolExecutor(1) as pool:
            sending = pool.submit(deliver_stored, svc.ledger, stored.id, slow.url, SECRET, timeout=10)
            deadline = time.monotonic() + 10
            while not slow.deliveries and time.monotonic() < deadline:
                time.sleep(0.02)
            assert redeliver_webhooks(svc).delivered == [] and len(slow.deliveries) == 1  # claimed by the first
            slow.answer.set()
            assert sending.result(timeout=10) == 200
    assert len(slow.deliveries) == 1


def test_the_redelivery_delays_grow_to_half_an_hour() -> None:
    assert [redelivery_delay(n) for n in range(1, 8)] == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 30, 30)]
    assert redelivery_delay(10_000) == timedelta(minutes=30)
    assert REDELIVERY_WINDOW == timedelta(hours=24)
