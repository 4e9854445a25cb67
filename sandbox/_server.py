"""Running the sandbox: uvicorn on a loopback port, in a background thread (`serve`) or in the foreground.

`SandboxHandle` also wraps the /_sandbox/* control endpoints, so tests and the demo drive the
emulator in one line (reset, clock, faults, tokens, posts, webhooks) over real HTTP.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import httpx
import uvicorn
from fastapi import FastAPI

from sandbox._app import create_app
from sandbox._config import SandboxConfig
from sandbox._errors import SandboxError

STARTUP_TIMEOUT = 15.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for a server about to start, or a refused connection)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one (read it back with getsockname)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto is IPPROTO_TCP,
    # and without it every answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SandboxError(f"cannot listen on {host}:{port}: {exc}", detail=str(exc)) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def uvicorn_server(app: FastAPI, *, log_level: str = "warning") -> uvicorn.Server:
    """uvicorn with the protocol class that lets fault injection drop connections."""
    config = uvicorn.Config(
        app,
        http=app.state.connections.protocol_class(),
        lifespan="on",
        log_level=log_level,
        proxy_headers=False,  # connections are found again by client address; keep the real one
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


def base_url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class SandboxHandle:
    """A running sandbox: where it is, and its control endpoints."""

    def __init__(self, base_url: str, config: SandboxConfig, stop: Any) -> None:
        self.base_url = base_url
        self.config = config
        self._stop = stop

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/v2/auth/authorize/"

    def stop(self) -> None:
        self._stop()

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        response = httpx.request(method, f"{self.base_url}{path}", json=json, timeout=30)
        response.raise_for_status()
        return response.json()

    def reset(self, config: SandboxConfig | None = None) -> SandboxConfig:
        """Forget all tokens, posts, faults, webhooks and clock offset; run with `config` (default: startup config)."""
        body = {"config": config.model_dump(mode="json")} if config else None
        self.config = SandboxConfig.model_validate(self._call("POST", "/_sandbox/reset", body)["config"])
        return self.config

    def advance_clock(self, seconds: float) -> float:
        return float(self._call("POST", "/_sandbox/clock", {"advance_seconds": seconds})["now"])

    def add_fault(self, endpoint: str, kind: str, **options: Any) -> str:
        return str(self._call("POST", "/_sandbox/faults", {"endpoint": endpoint, "kind": kind, **options})["id"])

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sandbox/faults")

    def issue_token(self, user: str | None = None, scopes: list[str] | None = None) -> dict[str, Any]:
        """Test shortcut to the token answer a completed OAuth dance would give (`/_sandbox/tokens`)."""
        return dict(self._call("POST", "/_sandbox/tokens", {"user": user, "scopes": scopes}))

    def posts(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/_sandbox/posts"))

    def publish_from_inbox(self, publish_id: str, privacy_level: str = "PUBLIC_TO_EVERYONE") -> dict[str, Any]:
        return dict(self._call("POST", f"/_sandbox/inbox/{publish_id}/publish", {"privacy_level": privacy_level}))

    def take_down(self, publish_id: str) -> dict[str, Any]:
        """TikTok takes a publicly available post down (post.publish.no_longer_publicaly_available)."""
        return dict(self._call("POST", f"/_sandbox/posts/{publish_id}/take_down"))

    def deauthorize(self, user: str, reason: int = 1) -> bool:
        """`user` removes the app in TikTok: every token ends, authorization.removed with `reason` is sent."""
        return bool(self._call("POST", f"/_sandbox/users/{user}/deauthorize", {"reason": reason})["revoked"])

    def set_webhook_url(self, url: str | None) -> None:
        """Register the app's callback URL (None: remove it); only later events are sent to it."""
        if url is None:
            self._call("DELETE", "/_sandbox/webhook")
        else:
            self._call("PUT", "/_sandbox/webhook", {"url": url})

    def webhooks(self) -> list[dict[str, Any]]:
        """Every webhook event queued since the last reset: body, signature, attempts and state."""
        return list(self._call("GET", "/_sandbox/webhooks"))

    def env(self) -> dict[str, str]:
        """The TIKTOK_PIPELINE_* settings that point the pipeline at this sandbox."""
        return pipeline_env(self.base_url, self.config)


def pipeline_env(base_url: str, config: SandboxConfig) -> dict[str, str]:
    """The TIKTOK_PIPELINE_* settings that point the pipeline at a sandbox running `config` at `base_url`."""
    values = {
        "TIKTOK_PIPELINE_API_BASE_URL": base_url,
        "TIKTOK_PIPELINE_AUTHORIZE_URL": f"{base_url}/v2/auth/authorize/",
        "TIKTOK_PIPELINE_CLIENT_KEY": config.client_key,
        "TIKTOK_PIPELINE_CLIENT_SECRET": config.client_secret,
        "TIKTOK_PIPELINE_APP_TYPE": config.app_type,
    }
    if config.app_type == "web":
        values["TIKTOK_PIPELINE_REDIRECT_URI"] = config.redirect_uris[0]
    return values


@contextmanager
def serve(config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> Iterator[SandboxHandle]:
    """Run the sandbox in a background thread until the block ends (port 0: a free port)."""
    config = config or SandboxConfig()
    sock = bind_socket(host, port)
    server = uvicorn_server(create_app(config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="tiktok-sandbox", daemon=True)

    def stop() -> None:
        server.should_exit = True
        if thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=10)
        sock.close()

    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            stop()
            raise SandboxError(f"the sandbox did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield SandboxHandle(base_url_of(sock), config, stop)
    finally:
        stop()
