"""Service-layer tests: the real sandbox over HTTP, a SQLite ledger in tmp_path, no Prefect.

`services` is a `publishing.Services` over them with `main` (public creator) and `private` (private
creator) connected through the sandbox's real OAuth flow; `clock` moves the ledger's time; `clip` is
the compliant test clip, fetched and prepared.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from ledger import Ledger, generate_key
from publishing.connect import connect_account
from publishing.posting import PreparedMedia
from publishing.services import Services
from publishing.sources import FetchedSource, sha256_of
from sandbox import free_port
from tiktok_pipeline.settings import Settings


@dataclass
class Clock:
    """The ledger's clock: real time plus whatever a test skipped."""

    skipped: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.skipped

    def advance(self, delta: timedelta) -> None:
        self.skipped += delta


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def services(sandbox, tmp_path: Path, clock: Clock) -> Services:
    env = sandbox.env()
    settings = Settings(
        api_base_url=env["TIKTOK_PIPELINE_API_BASE_URL"],
        authorize_url=env["TIKTOK_PIPELINE_AUTHORIZE_URL"],
        client_key=env["TIKTOK_PIPELINE_CLIENT_KEY"],
        client_secret=env["TIKTOK_PIPELINE_CLIENT_SECRET"],
        app_type=env["TIKTOK_PIPELINE_APP_TYPE"],
        redirect_uri=f"http://localhost:{free_port()}/callback/",
        data_dir=tmp_path / "data",
        database_url=None,
        encryption_key=generate_key(),
        status_poll_interval=2,
        status_poll_timeout=30,
    )
    settings.data_dir.mkdir(parents=True)
    key = settings.encryption_key.get_secret_value()
    book = Ledger(settings.effective_database_url, key, clock=clock)
    built = Services(settings, ledger=book)
    open_url: Callable[[str], object] = lambda url: httpx.get(url, follow_redirects=True, timeout=30)  # noqa: E731
    for name, user in (("main", "studio_main"), ("private", "private_creator")):
        connect_account(settings, book, name, open_url, extra_params={"sandbox_user": user})
    return built


@pytest.fixture
def clip(media, tmp_path: Path) -> tuple[FetchedSource, PreparedMedia]:
    """The compliant test clip as a fetched source and as the media prepared from it (no transcode needed)."""
    path = tmp_path / "work" / "tiktok-ready.mp4"
    path.parent.mkdir()
    shutil.copyfile(media.path("compliant"), path)
    digest, size = sha256_of(path), path.stat().st_size
    source = FetchedSource(uri=str(media.path("compliant")), path=path, size=size, sha256=digest)
    prepared = PreparedMedia(path=str(path), size=size, sha256=digest, duration=3.0, path_taken="remux", seconds=0.1)
    return source, prepared
