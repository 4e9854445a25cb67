"""Fault injection: seeded, per-endpoint 5xx answers, latency, dropped connections, lost and held answers,
and faults of the webhooks the sandbox sends (endpoint "webhook", see `sandbox._webhooks`).

`latency` waits before the request is handled; `held_answer` handles it at once (TikTok has applied it)
and holds the answer back for `latency_ms`: a client killed meanwhile never learns what was applied.

A dropped connection must look to the client exactly like a real network failure: no status line at
all. ASGI has no "close without answering" message and uvicorn turns an app that returns without
answering into a 500, so the sandbox serves with its own uvicorn protocol class that records each
connection's transport by client address (`ConnectionRegistry`); the middleware closes that transport
and then waits for uvicorn to notice the disconnect, after which uvicorn sends nothing.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from sandbox._endpoints import ENDPOINTS, OAUTH_ENDPOINTS, WEBHOOK, WEBHOOK_EVENTS, endpoint_of

ERROR_KIND = re.compile(r"error_(5\d\d)")
#: Fault kinds that need latency_ms.
DELAYS = ("latency", "held_answer", "late")
#: Fault kinds of the API endpoints (besides error_5xx).
HTTP_KINDS = ("latency", "held_answer", "drop", "lost_answer")
#: Fault kinds of the "webhook" endpoint: lost (never sent) | duplicate (sent twice, both validly signed) |
#: late (first sent after latency_ms) | out_of_order (held back, sent right after the next event; with
#: latency_ms > 0 sent after that long at the latest) | bad_signature (signed with a wrong key) |
#: stale_signature (validly signed, but its t lies an hour in the past: a replay).
WEBHOOK_KINDS = ("lost", "duplicate", "late", "out_of_order", "bad_signature", "stale_signature")


class FaultRule(BaseModel):
    """One injected fault. `times` (next N matching requests) or `probability` (seeded); neither = once."""

    model_config = ConfigDict(extra="forbid")

    #: An endpoint name (see sandbox._endpoints.ENDPOINTS), "*" for all of them, or "webhook".
    endpoint: str
    #: error_500 (any error_5xx) | latency (wait, then handle) | drop (no answer, nothing applied) |
    #: lost_answer (applied, no answer) | held_answer (applied at once, answered after latency_ms);
    #: for the "webhook" endpoint one of WEBHOOK_KINDS.
    kind: str
    times: int | None = Field(None, ge=1)
    probability: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    latency_ms: int = Field(0, ge=0)
    #: "webhook" faults only: match only this event (None: any event).
    event: str | None = None

    @field_validator("endpoint")
    @classmethod
    def _known_endpoint(cls, value: str) -> str:
        if value not in ("*", WEBHOOK) and value not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {value!r}; known: {sorted(ENDPOINTS)}, '*' or {WEBHOOK!r}")
        return value

    @field_validator("event")
    @classmethod
    def _known_event(cls, value: str | None) -> str | None:
        if value is not None and value not in WEBHOOK_EVENTS:
            raise ValueError(f"unknown webhook event {value!r}; known: {list(WEBHOOK_EVENTS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FaultRule:
        if self.endpoint == WEBHOOK:
            if self.kind not in WEBHOOK_KINDS:
                raise ValueError(f"a {WEBHOOK} fault's kind must be one of {list(WEBHOOK_KINDS)}")
        else:
            if self.kind not in HTTP_KINDS and not ERROR_KIND.fullmatch(self.kind):
                raise ValueError(
                    "kind must be error_5xx (e.g. error_500), latency, drop, lost_answer or held_answer "
                    f"(webhook kinds {list(WEBHOOK_KINDS)} need endpoint {WEBHOOK!r})"
                )
            if self.event is not None:
                raise ValueError(f"event only applies to {WEBHOOK!r} faults")
        if self.kind in DELAYS and self.latency_ms == 0:
            raise ValueError(f"a {self.kind} fault needs latency_ms > 0")
        if self.times is None and self.probability is None:
            self.times = 1
        return self


@dataclass
class _ActiveFault:
    id: str
    rule: FaultRule
    remaining: int | None
    rng: random.Random
    fired: int = 0


class FaultBook:
    """The active faults; `pick` decides (and consumes) the fault for one request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_ActiveFault] = []

    def add(self, rule: FaultRule) -> str:
        with self._lock:
            fault = _ActiveFault(secrets.token_hex(4), rule, rule.times, random.Random(rule.seed))
            self._faults.append(fault)
            return fault.id

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pick(self, endpoint: str, event: str | None = None) -> FaultRule | None:
        """The fault for one request to `endpoint` (for WEBHOOK: one delivery of `event`), consumed."""
        with self._lock:
            for fault in self._faults:
                # "*" means every API endpoint: webhook faults are always asked for by name.
                if fault.rule.endpoint != endpoint and (fault.rule.endpoint != "*" or endpoint == WEBHOOK):
                    continue
                if fault.rule.event is not None and fault.rule.event != event:
                    continue
                if fault.rule.probability is not None and fault.rng.random() >= fault.rule.probability:
                    continue
                fault.fired += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                return fault.rule
            return None

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"id": f.id, **f.rule.model_dump(), "remaining": f.remaining, "fired": f.fired} for f in self._faults
            ]


class ConnectionRegistry:
    """Transports of open connections by client (host, port), so a fault can close one."""

    def __init__(self) -> None:
        self._transports: dict[tuple[str, int], asyncio.Transport] = {}

    def protocol_class(self) -> type[H11Protocol]:
        """uvicorn's h11 protocol, recording each connection here (pass as `uvicorn.Config(http=...)`)."""
        registry = self._transports

        class SandboxH11Protocol(H11Protocol):
            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                if self.client:
                    registry[tuple(self.client)] = transport  # type: ignore[index]

            def connection_lost(self, exc: Exception | None) -> None:
                if self.client:
                    registry.pop(tuple(self.client), None)  # type: ignore[arg-type]
                super().connection_lost(exc)

        return SandboxH11Protocol

    def close(self, client: Any) -> bool:
        transport = self._transports.get(tuple(client)) if client else None
        if transport is None:
            return False
        transport.close()
        return True


class FaultInjectionMiddleware:
    def __init__(self, app: ASGIApp, faults: FaultBook, connections: ConnectionRegistry) -> None:
        self.app = app
        self.faults = faults
        self.connections = connections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = endpoint_of(scope["method"], scope["path"]) if scope["type"] == "http" else None
        rule = self.faults.pick(endpoint) if endpoint else None
        if rule is None or endpoint is None:
            await self.app(scope, receive, send)
            return
        if rule.kind == "latency":
            await asyncio.sleep(rule.latency_ms / 1000)
            await self.app(scope, receive, send)
        elif rule.kind == "drop":
            await _drain(receive)
            await self._hang_up(scope, receive, send)
        elif rule.kind == "held_answer":
            held: list[Message] = []

            async def hold(message: Message) -> None:
                held.append(message)

            await self.app(scope, receive, hold)
            await asyncio.sleep(rule.latency_ms / 1000)
            for message in held:  # to a client that may be gone: then uvicorn drops it
                await send(message)
        elif rule.kind == "lost_answer":

            async def swallow(message: Message) -> None:
                return None

            await self.app(scope, receive, swallow)
            await self._hang_up(scope, receive, send)
        else:
            await _drain(receive)
            status = int(rule.kind.removeprefix("error_"))
            await _answer(send, status, _error_body(endpoint, "injected fault"))

    async def _hang_up(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.connections.close(scope.get("client")):
            # Served by a plain uvicorn: say so loudly rather than pretend the connection dropped.
            await _answer(send, 500, _error_body("", "drop faults need sandbox.serve() or the sandbox CLI"))
            return
        # uvicorn reports the disconnect through receive(); returning earlier would make it send a 500.
        while (await receive())["type"] != "http.disconnect":
            pass


async def _drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return


def _error_body(endpoint: str, message: str) -> dict[str, Any]:
    log_id = secrets.token_hex(16)
    if endpoint in OAUTH_ENDPOINTS:
        return {"error": "server_error", "error_description": message, "log_id": log_id}
    return {"data": {}, "error": {"code": "internal_error", "message": message, "log_id": log_id}}


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
