"""Fixtures of the tiktok client tests: settings pointing at a fake host, clients on MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tiktok import TikTokClient
from tiktok_pipeline.settings import Settings

API = "https://api.tiktok.test"


@pytest.fixture
def settings() -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        api_base_url=API,
        authorize_url="https://auth.tiktok.test/v2/auth/authorize/",
        client_key="ck-123",
        client_secret="cs-secret",
        redirect_uri="http://localhost:8765/callback/",
        app_type="desktop",
        scopes="user.info.basic,video.publish,video.upload",
    )


def envelope(data: dict[str, Any] | None = None, code: str = "ok", message: str = "", log_id: str = "log-1") -> bytes:
    return json.dumps({"data": data or {}, "error": {"code": code, "message": message, "log_id": log_id}}).encode()


def ok(data: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.Response(200, content=envelope(data), headers={"Content-Type": "application/json"})


class RateLimitRecorder:
    """A rate-limit hook that records every (account_key, endpoint) it is asked about."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, account_key: str, endpoint: str) -> None:
        self.calls.append((account_key, endpoint))


@pytest.fixture
def make_client(settings: Settings) -> Iterator[Callable[..., TikTokClient]]:
    clients: list[TikTokClient] = []

    def make(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> TikTokClient:
        kwargs.setdefault("rate_limit", RateLimitRecorder())
        client = TikTokClient("act.token", settings, transport=httpx.MockTransport(handler), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
