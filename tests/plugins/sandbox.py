"""Fixtures: one sandbox (uvicorn on a free loopback port) per session, reset before each test.

    def test_something(sandbox, sandbox_token):
        token = sandbox_token("private_creator")          # access token of that test user
        httpx.post(f"{sandbox.base_url}/v2/post/publish/creator_info/query/",
                   headers={"Authorization": f"Bearer {token}"})
        sandbox.advance_clock(90)                          # expire things without sleeping
        sandbox.add_fault("upload", "lost_answer")         # next chunk applied, answer lost
        assert len(sandbox.posts()) == 1

The session server runs `SandboxConfig(processing_delay=0)`: statuses settle on the first fetch
after the last byte (moderation still takes 60 s of sandbox clock). A test that needs another config
calls `sandbox.reset(config)`; the next test gets the session config back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sandbox import SandboxConfig, SandboxHandle, serve


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxHandle]:
    with serve(SandboxConfig(processing_delay=0)) as handle:
        yield handle


@pytest.fixture
def sandbox(sandbox_server: SandboxHandle) -> SandboxHandle:
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def sandbox_token(sandbox: SandboxHandle) -> Callable[..., str]:
    """`sandbox_token(user=None, scopes=None) -> access token` through the /_sandbox/tokens shortcut."""

    def issue(user: str | None = None, scopes: list[str] | None = None) -> str:
        return str(sandbox.issue_token(user, scopes)["access_token"])

    return issue
