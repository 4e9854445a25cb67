"""The ASGI app: parse the HTTP request, delegate to the service layer, answer."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence

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

#: Waits before applying a stored event again when applying it failed (a busy or unreachable ledger).
APPLY_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
#: How often the receiver applies what is stored but not applied yet.
PENDING_SWEEP_SECONDS = 30.0


class _TooLarge(Exception):
    pass


async def _bounded_body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WEBHOOK_BODY_SIZE:
            raise _TooLarge
    return bytes(body)


def receiver_app(services: Services, *, on_applied: OnApplied | None = None,
                 retry_delays: Sequence[float] = APPLY_RETRY_DELAYS, sweep_every: float = PENDING_SWEEP_SECONDS
                 ) -> Starlette:
    """The receiver over `services`; `on_applied` is called after each event is applied (e.g. to emit
    events). An apply the ledger refused is tried again after each of `retry_delays`; what is stored
    but not applied is applied every `sweep_every` seconds."""

    # One event at a time in this process: two deliveries of one post (complete and publicly_available
    # sent together) would otherwise both start from the same state. The service layer keeps the
    # ledger right across processes too; this keeps each event's recorded outcome exact.
    applying = threading.Lock()
    stopping = threading.Event()

    def apply(stored: ReceivedEvent) -> None:
        for attempt, pause in enumerate((*retry_delays, None), start=1):
            try:
                with applying:
                    outcome = apply_stored(services, services.ledger.get_received_event(stored.id))
                break
            except Exception as exc:  # e.g. a ledger busy with other writers: stored, applied later
                if pause is None or stopping.is_set():
                    _LOG.exception("TikTok %s (stored event %d) could not be applied yet; the receiver's sweep "
                                   "applies it", stored.event, stored.id)
                    return
                _LOG.warning("TikTok %s (stored event %d) could not be applied (%s), attempt %d: again in %.1f s",
                             stored.event, stored.id, exc, attempt, pause)
                stopping.wait(pause)
        if on_applied is not None:
            on_applied(stored, outcome)

    def sweep() -> None:
        """Apply what is stored but not applied (an apply that kept failing, another receiver's leftovers)."""
        while not stopping.wait(sweep_every):
            try:
                pending = services.ledger.received_events(pending_only=True)
            except Exception as exc:
                _LOG.warning("could not read the TikTok webhooks waiting to be applied: %s", exc)
                continue
            for stored in pending:
                apply(stored)

    def start_sweep() -> None:
        stopping.clear()
        threading.Thread(target=sweep, name="tiktok-webhooks-sweep", daemon=True).start()

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

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        start_sweep()
        try:
            yield
        finally:
            stopping.set()

    return Starlette(routes=[Route(WEBHOOK_PATH, receive, methods=["POST"]), Route("/healthz", health)],
                     lifespan=lifespan)
