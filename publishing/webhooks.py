"""Outgoing webhooks without Prefect: outcome events, their JSON body, Stripe-style HMAC-SHA256
signatures and their verification, the outbox in the ledger and one delivery attempt.

Receivers verify a delivery with `verify_signature` (stdlib only; see docs/webhooks.md):

    ok = verify_signature(secret, raw_body, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER])

Nothing is sent before it is stored: `store_deliveries` writes one outbox row per (event, URL) in the
ledger, `deliver_stored` tries one row (claimed first, so two senders never send it at once) and
records the answer; a row stays pending until its receiver answers 2xx. Its body is stored, so every
try sends the same bytes with the same event id, signed afresh. Retrying is not done here: the
`deliver-webhook` Prefect task (tasks/notify.py) repeats a try while it raises a retryable error, and
the `cleanup` flow (`publishing.maintenance.redeliver_webhooks`) redelivers what is still pending,
with `redelivery_delay` between tries, for `REDELIVERY_WINDOW`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel

from ledger import Ledger, OutboxEntry, WebhookDelivery
from tiktok_pipeline.errors import PipelineError

TIMESTAMP_HEADER = "X-TikTok-Pipeline-Timestamp"
SIGNATURE_HEADER = "X-TikTok-Pipeline-Signature"
EVENT_ID_HEADER = "X-TikTok-Pipeline-Event-Id"
EVENT_TYPE_HEADER = "X-TikTok-Pipeline-Event-Type"
SIGNATURE_SCHEME = "v1"
#: Seconds a signed timestamp stays acceptable (both ways), so a captured delivery cannot be replayed later.
DEFAULT_TOLERANCE_S = 300
USER_AGENT = "tiktok-pipeline-webhooks/1"
#: The only timestamp form signed and accepted: Unix seconds as 1 to 12 ASCII digits, exactly as sent
#: (no sign, space, underscore, fraction or non-ASCII digit, all of which int() would take).
CANONICAL_TIMESTAMP = re.compile(r"[0-9]{1,12}")

#: How long `cleanup` redelivers an event its receiver has not taken (from when it was stored).
REDELIVERY_WINDOW = timedelta(hours=24)
#: The wait after a failed try, doubled for each further try, up to REDELIVERY_MAX_DELAY.
REDELIVERY_FIRST_DELAY = timedelta(minutes=1)
REDELIVERY_MAX_DELAY = timedelta(minutes=30)

#: Every event type, keyed by the post state a publish run ended in. queued and media_ready are
#: mapped by mode (see `outcome_event_type`).
OUTCOME_EVENT_TYPES: dict[str, str] = {
    "published": "tiktok.post.published",
    "sent_to_inbox": "tiktok.post.sent_to_inbox",
    "failed": "tiktok.post.failed",
    "unconfirmed": "tiktok.post.unconfirmed",
    "processing": "tiktok.post.processing",  # polling gave up; reconcile settles it later
    "initialized": "tiktok.post.interrupted",  # upload interrupted: the same request resumes it
    "uploaded": "tiktok.post.interrupted",
    "discarded": "tiktok.post.discarded",
}
HELD = "tiktok.post.held"
INTERRUPTED = "tiktok.post.interrupted"

# Fixed namespace: the same outcome of the same post always gets the same event id, so receivers
# (and Prefect, which stores an event id once) drop the repeat when a re-run reports it again.
_EVENT_NAMESPACE = uuid.UUID("5d0c6f7e-4b8e-4c1a-9a51-7f3c2b1e9d40")


class WebhookError(PipelineError):
    """A webhook delivery attempt did not get a 2xx answer."""


class WebhookUnavailable(WebhookError):
    """Timeout, connection error, 429 or 5xx: the receiver may take it later."""

    retryable = True


class WebhookRejected(WebhookError):
    """The receiver answered another non-2xx status: sending the same body again will not help."""


class WebhookEvent(BaseModel):
    """One outcome as delivered: the body of the POST is this model as JSON."""

    id: uuid.UUID
    type: str
    occurred_at: datetime
    data: dict[str, Any]

    def body(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


def outcome_event_type(state: str, mode: str) -> str:
    """The event type of a publish run that left its post in `state` (a PostState value)."""
    if state in ("queued", "media_ready"):
        # Before init a hold draft is waiting for a human; any other post stopped on its way.
        return HELD if mode == "hold" else INTERRUPTED
    return OUTCOME_EVENT_TYPES[state]


def outcome_event_id(event_type: str, post_id: int | None, idempotency_key: str | None) -> uuid.UUID:
    """Stable per (post, outcome); random for an outcome without a ledger row (nothing to dedupe on)."""
    if post_id is None:
        return uuid.uuid4()
    return uuid.uuid5(_EVENT_NAMESPACE, f"{post_id}:{idempotency_key}:{event_type}")


def outcome_event(data: Mapping[str, Any], *, occurred_at: datetime) -> WebhookEvent:
    """The event for one outcome; `data` is a PublishResult as JSON plus the post's `mode`."""
    event_type = outcome_event_type(data["state"], data["mode"])
    return WebhookEvent(
        id=outcome_event_id(event_type, data.get("post_id"), data.get("idempotency_key")),
        type=event_type,
        occurred_at=occurred_at,
        data=dict(data),
    )


def _secret_bytes(secret: str | bytes) -> bytes:
    return secret if isinstance(secret, bytes) else secret.encode("utf-8")


def is_canonical_timestamp(timestamp: object) -> bool:
    """Whether `timestamp` is a signed timestamp's one form: 1 to 12 ASCII digits (`CANONICAL_TIMESTAMP`)."""
    return isinstance(timestamp, str) and CANONICAL_TIMESTAMP.fullmatch(timestamp) is not None


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of `timestamp + "." + body` (Stripe's scheme: the timestamp is signed too).

    `timestamp` must be canonical (ASCII digits only): ValueError otherwise."""
    if not is_canonical_timestamp(timestamp):
        raise ValueError(f"a webhook timestamp is 1 to 12 ASCII digits (Unix seconds), got {timestamp!r}")
    return hmac.new(_secret_bytes(secret), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str | bytes,
    body: bytes,
    timestamp: str,
    signature_header: str,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now: float | None = None,
) -> bool:
    """True when `signature_header` holds a v1 signature of `body` made with `secret` at `timestamp`,
    and that timestamp is within `tolerance_s` seconds of `now` (default: the current time).

    `body` must be the raw bytes received (re-serialized JSON changes the signature). The header may
    list several signatures (`v1=abc,v1=def`); one match is enough. The timestamp is checked and signed
    exactly as received, and only in its canonical form (ASCII digits): ' 17…', '+17…', '17_96…' and
    the like are refused although int() reads them, as the stdlib recipe of docs/webhooks.md does.
    """
    if not is_canonical_timestamp(timestamp) or not isinstance(signature_header, str):
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body)
    for part in signature_header.split(","):
        scheme, _, value = part.strip().partition("=")
        # compare_digest refuses non-ASCII text (TypeError): such a value is no hex signature anyway.
        if scheme == SIGNATURE_SCHEME and value.isascii() and hmac.compare_digest(value, expected):
            return True
    return False


def signed_request(url: str, *, event_id: str, event_type: str, body: bytes, secret: str | bytes, now: float
                   ) -> httpx.Request:
    """The POST of `body` (an event as JSON) to `url`, signed at `now` (a Unix time): built, not sent."""
    timestamp = str(int(now))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: event_id,
        EVENT_TYPE_HEADER: event_type,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: f"{SIGNATURE_SCHEME}={sign(secret, timestamp, body)}",
    }
    return httpx.Request("POST", url, headers=headers, content=body)


def webhook_request(url: str, event: WebhookEvent, secret: str | bytes, *, now: float) -> httpx.Request:
    """The signed POST of `event` to `url`, signed at `now` (a Unix time): built, not sent."""
    return signed_request(url, event_id=str(event.id), event_type=event.type, body=event.body(), secret=secret, now=now)


def redacted(url: str) -> str:
    """The URL as logs show it: scheme and host only (paths and queries often carry tokens)."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}/…"


def send(client: httpx.Client, request: httpx.Request) -> int:
    """Send one attempt; the 2xx status, or `WebhookUnavailable` / `WebhookRejected`."""
    where = redacted(str(request.url))
    try:
        response = client.send(request)
    except httpx.TimeoutException as exc:
        raise WebhookUnavailable(f"webhook {where} timed out: {exc}", detail={"url": where}) from exc
    except httpx.TransportError as exc:
        raise WebhookUnavailable(f"webhook {where} unreachable: {exc}", detail={"url": where}) from exc
    if response.is_success:
        return response.status_code
    detail = {"url": where, "status": response.status_code, "body": response.text[:500]}
    message = f"webhook {where} answered {response.status_code}"
    if response.status_code == 429 or response.status_code >= 500:
        raise WebhookUnavailable(message, detail=detail)
    raise WebhookRejected(message, detail=detail)


# --- the outbox --------------------------------------------------------------------------------------


def receiver_key(url: str) -> str:
    """How the outbox names a receiver: the SHA-256 of its URL (webhook URLs often carry a token, so the
    URL itself is not stored; a redelivery finds it again among the configured `webhook_urls`)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def redelivery_delay(attempts: int) -> timedelta:
    """The wait before the next try of a delivery that failed `attempts` times: 1, 2, 4, 8, 16, then 30 min."""
    if attempts <= 1:
        return REDELIVERY_FIRST_DELAY
    return min(REDELIVERY_FIRST_DELAY * 2 ** min(attempts - 1, 20), REDELIVERY_MAX_DELAY)


def delivery_lease(timeout_s: float) -> timedelta:
    """How long one try holds its claim on a delivery: well past what an attempt with `timeout_s`
    can take (connect, write and read are each bounded by it); a sender that died loses it then."""
    return timedelta(seconds=4 * timeout_s + 30)


def outbox_entries(events: Sequence[WebhookEvent], urls: Sequence[str]) -> list[tuple[str, OutboxEntry]]:
    """(url, the outbox entry) for every event and URL, events first (the order deliveries are made in)."""
    return [
        (url, OutboxEntry(event_id=str(event.id), event_type=event.type, post_id=event.data.get("post_id"),
                          receiver=receiver_key(url), receiver_label=redacted(url)[:256],
                          body=event.body().decode("utf-8")))
        for event in events for url in urls
    ]


def store_deliveries(ledger: Ledger, events: Sequence[WebhookEvent], urls: Sequence[str]
                     ) -> list[tuple[str, WebhookDelivery]]:
    """Store a delivery of every event to every URL in the outbox (committed before anything is sent):
    (url, delivery) pairs. An event already stored for a URL keeps its row, and so its body and id:
    a re-run reporting the same outcome does not resend what the receiver took."""
    pairs = outbox_entries(events, urls)
    if not pairs:
        return []
    stored = ledger.add_webhook_deliveries([entry for _, entry in pairs])
    return [(url, delivery) for (url, _), delivery in zip(pairs, stored, strict=True)]


def deliver_stored(
    ledger: Ledger, delivery_id: int, url: str, secret: str | bytes, *, timeout: float, due_only: bool = False,
    client: httpx.Client | None = None,
) -> int | None:
    """One try of a stored delivery: claimed in the ledger, its stored body signed now and POSTed to `url`,
    the answer recorded. Returns the 2xx status; None when there was nothing to try (delivered already,
    given up, another sender is trying it, or, with `due_only`, not due yet). A failed try raises
    `WebhookUnavailable` / `WebhookRejected` after it is recorded, with the next try due
    `redelivery_delay` later; the delivery stays pending either way. A try that ends without an answer
    (an interrupt, a crash) leaves its claim to lapse (`delivery_lease`), and the delivery pending.
    """
    delivery = ledger.claim_webhook_delivery(delivery_id, delivery_lease(timeout), due_only=due_only)
    if delivery is None:
        return None
    request = signed_request(url, event_id=delivery.event_id, event_type=delivery.event_type,
                             body=delivery.body.encode("utf-8"), secret=secret, now=time.time())
    try:
        if client is None:
            with httpx.Client(timeout=timeout) as own:
                status = send(own, request)
        else:
            status = send(client, request)
    except WebhookError as exc:
        answered = exc.detail.get("status") if isinstance(exc.detail, dict) else None
        ledger.record_webhook_attempt(delivery_id, status_code=answered, error=str(exc),
                                      retry_in=redelivery_delay(delivery.attempts + 1))
        raise
    ledger.record_webhook_attempt(delivery_id, status_code=status)
    return status
