"""TikTok's webhooks as TikTok sends them: signed JSON POSTs to the app's callback URL, retried, with faults.

What is sent (TikTok's webhooks-overview, -verification and -events pages):
- a POST of JSON `{"client_key", "event", "create_time", "user_openid", "content"}` where `content` is
  itself a JSON *string*; Content Posting events carry `publish_id` and `publish_type` in it
  (post.publish.failed adds `reason`, post.publish.publicly_available and .no_longer_publicaly_available
  add `post_id`), authorization.removed carries an int `reason`;
- the header `TikTok-Signature: t=<unix s>,s=<hex HMAC-SHA256(client_secret, "<t>." + raw body)>`;
- delivery counts only when the receiver answers 200; anything else, or no answer, is retried.

When: `SandboxState.status_notices` compares every post's status with what was last reported and turns
each change into its event (PUBLISH_COMPLETE, FAILED, SEND_TO_USER_INBOX, a post id appearing or going
away); a revoke gives authorization.removed. `WebhookSender.watch` evaluates that every `TICK` seconds
while a callback URL is set, and runs pending media checks itself meanwhile (TikTok processes a post
whether or not anyone polls). Without a callback URL nothing is evaluated, created or sent, and setting
one later does not replay what happened before.

How: one worker on the app's event loop sends deliveries one at a time in the order they fall due, so
events reach the receiver in the order they happened unless a fault or a retry reorders them. A
request is never slowed by a delivery: handlers only queue. Retries wait `webhook_retry_delay`,
doubling, for at most `webhook_max_attempts` attempts (TikTok: exponential backoff for up to 72 h;
a delivery the sandbox gives up on is "failed"). Each attempt is signed anew with the current wall-clock
time as `t` (a receiver checks `t` against its own clock, so it is never the sandbox clock; a retry 72 h
later must still pass a staleness check); `create_time` is the sandbox clock when the event happened.

Faults (`FaultRule(endpoint="webhook", kind=..., event=None | name)`, see `sandbox._faults`) are
picked once per event when it is queued: lost, duplicate, late, out_of_order, bad_signature,
stale_signature.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from sandbox._endpoints import WEBHOOK
from sandbox._faults import FaultBook

if TYPE_CHECKING:
    from sandbox._config import SandboxConfig
    from sandbox._posts import Post


class StateView(Protocol):
    """What the sender reads of `sandbox._state.SandboxState` (which imports this module)."""

    config: SandboxConfig

    def now(self) -> float: ...

    def unsettled(self) -> list[str]: ...

    def status_notices(self) -> list[Notice]: ...

SIGNATURE_HEADER = "TikTok-Signature"
#: Seconds between two evaluations of the posts' statuses while a callback URL is set.
TICK = 0.05
#: How far in the past a stale_signature fault puts `t`.
STALE_SECONDS = 3_600
#: authorization.removed `reason` codes (TikTok's webhooks-events page).
REASON_UNKNOWN = 0
REASON_USER_DISCONNECTED = 1
REASON_ACCOUNT_DELETED = 2
REASON_AGE_CHANGED = 3
REASON_ACCOUNT_BANNED = 4
REASON_DEVELOPER_REVOKED = 5
#: Final statuses and the event each is reported with.
STATUS_EVENTS = {
    "PUBLISH_COMPLETE": "post.publish.complete",
    "FAILED": "post.publish.failed",
    "SEND_TO_USER_INBOX": "post.publish.inbox_delivered",
}
#: Where a post is before any status was reported (every post starts processing).
UNREPORTED = ("PROCESSING", False)

logger = logging.getLogger("sandbox.webhooks")


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<timestamp>,s=<hex HMAC-SHA256 of "<timestamp>." + body keyed with secret>`, TikTok's header."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},s={digest}"


@dataclass(frozen=True)
class Notice:
    """An event to report: its name, whose it is, and its `content` (serialized into a string when sent)."""

    event: str
    open_id: str
    content: dict[str, object]
    publish_id: str | None = None


def publish_type(post: Post) -> str:
    # The shared reference (shared/tiktok-content-posting-api.md) names publish_type but not its
    # values: assumed here are DIRECT_PUBLISH (the app published the post) and INBOX_SHARE (shared to
    # the creator's inbox as a draft, including photo MEDIA_UPLOAD), also for the complete event of an
    # inbox draft the creator posted later.
    return "DIRECT_PUBLISH" if post.mode == "direct" else "INBOX_SHARE"


def post_notice(post: Post, event: str, **extra: object) -> Notice:
    content: dict[str, object] = {"publish_id": post.publish_id, "publish_type": publish_type(post), **extra}
    return Notice(event, post.open_id, content, post.publish_id)


def post_notices(post: Post, before: tuple[str, bool], after: tuple[str, bool], fail_reason: object) -> list[Notice]:
    """The events a post's move from `before` to `after` ((status, publicly available)) is reported with."""
    notices: list[Notice] = []
    status, public = after
    if status != before[0] and status in STATUS_EVENTS:
        extra = {"reason": fail_reason} if status == "FAILED" else {}
        notices.append(post_notice(post, STATUS_EVENTS[status], **extra))
    if public != before[1]:
        # The shared reference says the event carries "the post_id" without a type; the status answer's
        # publicaly_available_post_id holds int64s, sent here as a string (an int64 overflows JS numbers).
        event = "post.publish.publicly_available" if public else "post.publish.no_longer_publicaly_available"
        notices.append(post_notice(post, event, post_id=str(post.post_id)))
    return notices


def removed_notice(open_id: str, reason: int) -> Notice:
    return Notice("authorization.removed", open_id, {"reason": reason})


@dataclass
class Attempt:
    #: Sandbox clock.
    at: float
    signature: str
    status_code: int | None = None
    error: str | None = None


@dataclass(eq=False)
class Delivery:
    """One event as sent to the callback URL (a duplicate fault makes a second one of the same body)."""

    id: str
    event: str
    user_openid: str
    publish_id: str | None
    url: str
    body: bytes
    client_secret: str
    created_at: float
    retry_delay: float
    max_attempts: int
    timeout: float
    generation: int
    signature: str
    fault: str | None = None
    duplicate_of: str | None = None
    #: pending (queued, or waiting for a retry) | held (out_of_order, waiting for the next event) |
    #: delivered (answered 200) | lost (a lost fault: never sent) | failed (every attempt failed)
    state: str = "pending"
    attempts: list[Attempt] = field(default_factory=list)
    #: The queue entry that is current (an earlier one is skipped when popped).
    ticket: int = 0

    def sign(self) -> str:
        """The TikTok-Signature header for an attempt made now (a signature fault applied)."""
        stamp = int(time.time()) - (STALE_SECONDS if self.fault == "stale_signature" else 0)
        key = "not-the-client-secret-" + self.client_secret if self.fault == "bad_signature" else self.client_secret
        return signature_header(key, stamp, self.body)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "user_openid": self.user_openid,
            "publish_id": self.publish_id,
            "url": self.url,
            "state": self.state,
            "fault": self.fault,
            "duplicate_of": self.duplicate_of,
            "created_at": self.created_at,
            "body": json.loads(self.body),
            "raw_body": self.body.decode(),
            "signature": self.signature,
            "attempts": [
                {"at": a.at, "status_code": a.status_code, "error": a.error, "signature": a.signature}
                for a in self.attempts
            ],
        }


class WebhookSender:
    """Turns notices into signed deliveries and sends them in the background; all on the app's loop."""

    def __init__(self, state: StateView, faults: FaultBook, settle: Callable[[str], Awaitable[None]]) -> None:
        self._state = state
        self._faults = faults
        self._settle = settle
        self._log: list[Delivery] = []
        self._held: list[Delivery] = []
        self._queue: list[tuple[float, int, Delivery]] = []
        self._tickets = 0
        self._generation = 0
        self._settling: dict[str, asyncio.Task[None]] = {}
        self._broken: set[str] = set()  # posts whose background processing raised: not tried again
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self._client: httpx.AsyncClient | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self._ready = asyncio.Event()
        # trust_env=False: the callback URL is called directly, never through a proxy from the environment.
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        self._tasks = [
            asyncio.create_task(self._send_forever(), name="sandbox-webhook-sender"),
            asyncio.create_task(self._watch_forever(), name="sandbox-webhook-watcher"),
        ]

    async def stop(self) -> None:
        """Stop sending (deliveries not made yet are abandoned) and close the HTTP client."""
        tasks = self._tasks + list(self._settling.values()) + ([self._inflight] if self._inflight else [])
        self._tasks, self._settling = [], {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def reset(self) -> None:
        """Forget every delivery; one under way is abandoned (the receiver may still get it)."""
        self._generation += 1
        self._log.clear()
        self._held.clear()
        self._queue.clear()
        self._broken.clear()
        if self._inflight is not None:
            self._inflight.cancel()

    def describe(self) -> list[dict[str, Any]]:
        return [d.describe() for d in self._log]

    # --- queueing ----------------------------------------------------------------------------------
    def emit(self, notices: list[Notice]) -> None:
        """Queue one delivery per notice (faults applied) to the callback URL set now; none without one."""
        config = self._state.config
        url = config.webhook_url
        if url is None:
            return
        loop = asyncio.get_running_loop()
        for notice in notices:
            body = json.dumps(
                {
                    "client_key": config.client_key,
                    "event": notice.event,
                    "create_time": int(self._state.now()),
                    "user_openid": notice.open_id,
                    "content": json.dumps(notice.content, separators=(",", ":")),
                },
                separators=(",", ":"),
            ).encode()
            rule = self._faults.pick(WEBHOOK, notice.event)
            delivery = Delivery(
                id=secrets.token_hex(6),
                event=notice.event,
                user_openid=notice.open_id,
                publish_id=notice.publish_id,
                url=url,
                body=body,
                client_secret=config.client_secret,
                created_at=self._state.now(),
                retry_delay=config.webhook_retry_delay,
                max_attempts=config.webhook_max_attempts,
                timeout=config.webhook_timeout,
                generation=self._generation,
                signature="",
                fault=rule.kind if rule else None,
            )
            delivery.signature = delivery.sign()  # what it would send now (each attempt signs anew)
            self._log.append(delivery)
            delay = rule.latency_ms / 1000 if rule else 0.0
            if delivery.fault == "lost":
                delivery.state = "lost"
                self._release_held(loop.time())
            elif delivery.fault == "out_of_order":
                delivery.state = "held"
                self._held.append(delivery)
                if delay:  # sent after latency_ms even if no other event comes
                    self._schedule(delivery, loop.time() + delay)
            else:
                due = loop.time() + (delay if delivery.fault == "late" else 0.0)
                self._schedule(delivery, due)
                if delivery.fault == "duplicate":
                    copy = replace(delivery, id=secrets.token_hex(6), duplicate_of=delivery.id, attempts=[])
                    self._log.append(copy)
                    self._schedule(copy, due)
                self._release_held(due)

    def _release_held(self, due: float) -> None:
        """Held (out_of_order) deliveries go right after the event queued now, due at `due`."""
        for held in self._held:
            self._schedule(held, due)
        self._held.clear()

    def _schedule(self, delivery: Delivery, due: float) -> None:
        self._tickets += 1
        delivery.ticket = self._tickets
        heapq.heappush(self._queue, (due, self._tickets, delivery))
        if self._ready is not None:
            self._ready.set()

    # --- background work ---------------------------------------------------------------------------
    async def _send_forever(self) -> None:
        assert self._ready is not None
        loop = asyncio.get_running_loop()
        while True:
            self._ready.clear()
            timeout: float | None = None
            if self._queue:
                due, ticket, delivery = self._queue[0]
                timeout = due - loop.time()
                if timeout <= 0:
                    heapq.heappop(self._queue)
                    if ticket == delivery.ticket and delivery.generation == self._generation:
                        self._held = [held for held in self._held if held is not delivery]
                        # A task of its own, so that a reset can abandon it without stopping this loop.
                        self._inflight = asyncio.create_task(self._attempt(delivery))
                        await asyncio.wait([self._inflight])
                        self._inflight = None
                    continue
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                pass

    async def _attempt(self, delivery: Delivery) -> None:
        assert self._client is not None
        delivery.state = "pending"
        header = delivery.signature = delivery.sign()
        attempt = Attempt(self._state.now(), header)
        try:
            response = await self._client.post(
                delivery.url,
                content=delivery.body,
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: header},
                timeout=delivery.timeout,
            )
            attempt.status_code = response.status_code
        except Exception as exc:  # connection refused, timeout, protocol error...: a failed attempt, retried
            attempt.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if delivery.generation != self._generation:
            return  # a reset came meanwhile
        delivery.attempts.append(attempt)
        if attempt.status_code == 200:
            delivery.state = "delivered"
        elif len(delivery.attempts) >= delivery.max_attempts:
            delivery.state = "failed"
        else:
            backoff = delivery.retry_delay * 2 ** (len(delivery.attempts) - 1)
            self._schedule(delivery, asyncio.get_running_loop().time() + backoff)

    async def _watch_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                self.watch()
            except Exception:  # a bug here must not stop the webhooks for good
                logger.exception("evaluating post statuses for webhooks failed")

    def watch(self) -> None:
        """One evaluation: start the media checks still due, queue the events of every status change."""
        if self._state.config.webhook_url is None:
            return
        for publish_id in self._state.unsettled():
            if publish_id not in self._settling and publish_id not in self._broken:
                task = asyncio.create_task(self._settle_quietly(publish_id), name=f"sandbox-settle-{publish_id}")
                self._settling[publish_id] = task
        self.emit(self._state.status_notices())

    async def _settle_quietly(self, publish_id: str) -> None:
        try:
            await self._settle(publish_id)
        except Exception:
            self._broken.add(publish_id)
            logger.exception("processing post %s in the background failed (a status fetch tries again)", publish_id)
        finally:
            self._settling.pop(publish_id, None)
