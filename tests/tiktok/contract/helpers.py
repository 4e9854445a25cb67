"""What the contract tests share: sandbox-side inspection and error-kind assertions."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from sandbox import SandboxConfig, SandboxHandle
from tiktok import TikTokError

MIB = 1024 * 1024


def config(**overrides: Any) -> SandboxConfig:
    """A sandbox config like the session one (statuses settle at once) with `overrides`."""
    return SandboxConfig(**{"processing_delay": 0, **overrides})


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(4 * MIB):
            digest.update(block)
    return digest.hexdigest()


def received_file(sandbox: SandboxHandle, upload_url: str) -> Path:
    """The file the sandbox assembled from the chunks PUT to `upload_url` (its storage dir + upload id)."""
    state = httpx.get(f"{sandbox.base_url}/_sandbox/state", timeout=30).json()
    upload_id = urlsplit(upload_url).path.rsplit("/", 1)[-1]
    return Path(state["storage_dir"]) / upload_id


def pending_faults(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    return list(httpx.get(f"{sandbox.base_url}/_sandbox/faults", timeout=30).json())


def only_post(sandbox: SandboxHandle) -> dict[str, Any]:
    """The one post the sandbox holds; fails when it holds none or several (duplicate posts)."""
    posts = sandbox.posts()
    assert len(posts) == 1, [(p["publish_id"], p["status"]) for p in posts]
    return posts[0]


def assert_kind(error: TikTokError, kind: str, *, code: str | None = None, http_status: int | None = None) -> None:
    """`kind` is "retryable", "needs_reauth" or "final"; code/http_status are checked when given."""
    assert error.kind == kind, (type(error).__name__, error.kind, str(error))
    assert error.final is (kind == "final")
    if code is not None:
        assert error.code == code, (error.code, str(error))
    if http_status is not None:
        assert error.http_status == http_status, (error.http_status, str(error))
