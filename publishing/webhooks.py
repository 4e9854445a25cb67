"""Outgoing webhooks without Prefect: outcome events, their JSON body, Stripe-style HMAC-SHA256
signatures and their verification, and one delivery attempt.

Receivers verify a delivery with `verify_signature` (stdlib only; see docs/webhooks.md):

    ok = verify_signature(secret, raw_body, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER])

Retrying is not done here: the `deliver-webhook` Prefect task (tasks/notify.py) repeats `send`
while it raises a retryable error.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel

from tiktok_pipeline.errors import PipelineError

TIMESTAMP_HEADER = "X-TikTok-Pipeline-Timestamp"
SIGNATURE_HEADER = "X-TikTok-Pipeline-Signature"
EVENT_ID_HEADER = "X-TikTok-Pipeline-Event-Id"
EVENT_TYPE_HEADER = "X-TikTok-Pipeline-Event-Type"
SIGNATURE_SCHEME = "v1"
#: Seconds a signed timestamp stays acceptable (both ways), so a captured delivery cannot be replayed later.
DEFAULT_TOLERANCE_S = 300
USER_AGENT = "tiktok-pipeline-webhooks/1"

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


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of `timestamp + "." + body` (Stripe's scheme: the timestamp is signed too)."""
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
    list several signatures (`v1=abc,v1=def`); one match is enough.
    """
    try:
        signed_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - signed_at) > tolerance_s:
        return False
    expected = sign(secret, str(signed_at), body)
    for part in signature_header.split(","):
        scheme, _, value = part.strip().partition("=")
        if scheme == SIGNATURE_SCHEME and hmac.compare_digest(value, expected):
            return True
    return False


def webhook_request(url: str, event: WebhookEvent, secret: str | bytes, *, now: float) -> httpx.Request:
    """The signed POST of `event` to `url`, signed at `now` (a Unix time): built, not sent."""
    body = event.body()
    timestamp = str(int(now))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: str(event.id),
        EVENT_TYPE_HEADER: event.type,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: f"{SIGNATURE_SCHEME}={sign(secret, timestamp, body)}",
    }
    return httpx.Request("POST", url, headers=headers, content=body)


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
