"""The ASGI app: parse the HTTP request, delegate to the service layer, answer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ledger import LedgerError, ReceivedEvent
from publishing.services import Services
from publishing.tiktok_events import EventOutcome, accept_delivery, apply_stored
from tiktok import MAX_WEBHOOK_BODY_SIZE, WebhookPayloadInvalid, WebhookRejected

_LOG = logging.getLogger(__name__)

WEBHOOK_PATH = "/tiktok/webhooks"
SIGNATURE_HEADER = "TikTok-Signature"

OnApplied = Callable[[ReceivedEvent, EventOutcome], None]


class _TooLarge(Exception):
    pass


async def _bounded_body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WEBHOOK_BODY_SIZE:
            raise _TooLarge
    return bytes(body)


def receiver_app(services: Services, *, on_applied: OnApplied | None = None) -> Starlette:
    """The receiver over `services`; `on_applied` is called after each event is applied (e.g. to emit events)."""

    # One event at a time in this process: two deliveries of one post (complete and publicly_available
    # sent together) would otherwise both start from the same state. The service layer keeps the
    # ledger right across processes too; this keeps each event's recorded outcome exact.
    applying = threading.Lock()

    def apply(stored: ReceivedEvent) -> None:
        try:
            with applying:
                outcome = apply_stored(services, services.ledger.get_received_event(stored.id))
        except Exception:  # stored, not applied: `apply_pending` applies it on the next start
            _LOG.exception("TikTok %s (stored event %d) could not be applied yet", stored.event, stored.id)
            return
        if on_applied is not None:
            on_applied(stored, outcome)

    async def receive(request: Request) -> JSONResponse:
        try:
            body = await _bounded_body(request)
        except _TooLarge:
            return JSONResponse({"error": "WebhookPayloadInvalid",
                                 "message": f"body over {MAX_WEBHOOK_BODY_SIZE} bytes"}, status_code=413)
        try:
            stored, _event, fresh = await run_in_threadpool(
                accept_delivery, services, body, request.headers.get(SIGNATURE_HEADER))
        except WebhookRejected as exc:
            status = 400 if isinstance(exc, WebhookPayloadInvalid) else 401
            _LOG.warning("refused a webhook delivery (%d): %s", status, exc)
            return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, status_code=status)
        except LedgerError as exc:
            _LOG.error("could not store a webhook delivery, TikTok will deliver it again: %s", exc)
            return JSONResponse({"error": type(exc).__name__, "message": "not stored; deliver again"}, status_code=503)
        task = BackgroundTask(apply, stored) if stored.applied_at is None else None
        return JSONResponse({"stored": stored.id, "duplicate": not fresh}, background=task)

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route(WEBHOOK_PATH, receive, methods=["POST"]), Route("/healthz", health)])
