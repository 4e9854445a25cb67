"""A real webhook receiver for the tests: stdlib http.server on 127.0.0.1, one thread, stopped by
the test. It answers the statuses it was scripted with (then 200) and records every delivery.

A receiver that is down is a port nobody listens on (`refused_url`, or `free_port()` before the
receiver starts on it with `receiver(port=...)`, which is how a test brings it back)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sandbox import free_port
from publishing.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    def verified(self, secret: str) -> bool:
        return verify_signature(secret, self.body, self.headers[TIMESTAMP_HEADER], self.headers[SIGNATURE_HEADER])


@dataclass
class Receiver:
    url: str
    statuses: list[int]
    deliveries: list[Delivery] = field(default_factory=list)
    #: While cleared, answers wait for it (up to 30 s): lets a test make the client time out.
    answer: threading.Event = field(default_factory=threading.Event)

    @property
    def accepted(self) -> list[Delivery]:
        return [d for d in self.deliveries if 200 <= d.status < 300]

    def accepted_ids(self) -> list[str]:
        """The event ids of the deliveries answered 2xx, in the order they arrived."""
        return [d.event["id"] for d in self.accepted]


@contextmanager
def receiver(*statuses: int, path: str = "/hooks/tiktok", answer_at_once: bool = True, port: int = 0
             ) -> Iterator[Receiver]:
    """Serve on `port` of 127.0.0.1 (0: a free one); the n-th POST gets `statuses[n]` (200 once they run out)."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                n = len(state.deliveries)
                status = state.statuses[n] if n < len(state.statuses) else 200
                state.deliveries.append(Delivery(dict(self.headers.items()), body, status))
            state.answer.wait(30)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender timed out and left: it gets this event again on its next try

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    state = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}{path}", statuses=list(statuses))
    if answer_at_once:
        state.answer.set()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.answer.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def refused_url(path: str = "/hooks/down") -> str:
    """A loopback URL nobody listens on (the port was free a moment ago): connection refused."""
    return f"http://127.0.0.1:{free_port()}{path}"
