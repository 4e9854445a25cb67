"""What the OAuth and API clients share: httpx client construction and transport-error wrapping."""

from __future__ import annotations

import functools
import os
import ssl
from types import TracebackType
from typing import Any, Self

import httpx

from tiktok._errors import TransportError, UnexpectedResponse
from tiktok_pipeline.settings import TikTokAppSettings

# Failures raised before any byte of the request can have reached the server.
_NOT_DELIVERED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def api_timeout(settings: TikTokAppSettings) -> httpx.Timeout:
    return httpx.Timeout(settings.http_read_timeout, connect=settings.http_connect_timeout)


def upload_timeout(settings: TikTokAppSettings) -> httpx.Timeout:
    return httpx.Timeout(settings.upload_timeout, connect=settings.http_connect_timeout)


@functools.cache
def _tls_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx.create_ssl_context()  # what httpx builds by default, SSL_CERT_FILE / SSL_CERT_DIR included


def shared_tls_context() -> ssl.SSLContext:
    """One TLS context per process (per certificate setting): httpx would build a new one for every
    client, loading the CA bundle each time (about 28 ms of CPU), and a run makes a client per step."""
    return _tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


def new_http_client(settings: TikTokAppSettings, transport: httpx.BaseTransport | None) -> httpx.Client:
    # Redirects are never followed: an OAuth or API answer that redirects is a misconfiguration.
    return httpx.Client(
        base_url=settings.api_base_url.rstrip("/"),
        timeout=api_timeout(settings),
        transport=transport,
        verify=shared_tls_context() if transport is None else True,
        follow_redirects=False,
        headers={"User-Agent": "tiktok-pipeline"},
    )


def send(http: httpx.Client, request: httpx.Request) -> httpx.Response:
    """Send and read the answer, turning httpx transport failures into `TransportError`."""
    try:
        return http.send(request)
    except httpx.TransportError as exc:
        delivered = not isinstance(exc, _NOT_DELIVERED)
        raise TransportError(
            f"{type(exc).__name__} on {request.method} {request.url.copy_with(query=None)}: {exc}",
            maybe_delivered=delivered,
            detail={"exception": type(exc).__name__, "url": str(request.url.copy_with(query=None))},
        ) from exc


def json_body(response: httpx.Response) -> dict[str, Any] | None:
    """The answer's JSON object, or None when it is not JSON (proxies, gateways)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def unexpected(response: httpx.Response, problem: str, *, detail: Any = None) -> UnexpectedResponse:
    """`detail` defaults to the start of the body; pass something else when the body holds secrets."""
    return UnexpectedResponse(
        f"unexpected answer from {response.request.url.path} (HTTP {response.status_code}): {problem}",
        http_status=response.status_code,
        detail={"body": response.text[:2000]} if detail is None else detail,
    )


class HttpResource:
    """Owns an `httpx.Client` in `self._http`: closed by `close()` or on leaving a `with` block."""

    _http: httpx.Client

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
