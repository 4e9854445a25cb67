"""Flow tests: one session-scoped Prefect test server, the real sandbox, a real moto S3 server.

Each test gets a fresh data directory (ledger + working files), a fresh bucket, a reset sandbox
and two accounts connected through the real OAuth flow.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest
from prefect.testing.utilities import prefect_test_harness

from sandbox import free_port
from ledger import Ledger, generate_key


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@dataclass
class Pipeline:
    """Everything a flow test needs to drive and inspect one run."""

    data_dir: Path
    bucket: str
    s3: object
    sandbox: object

    def upload(self, path: Path, key: str) -> str:
        self.s3.upload_file(str(path), self.bucket, key)
        return f"s3://{self.bucket}/{key}"

    def ledger(self) -> Ledger:
        from tasks import runtime

        return runtime.ledger()

    def reset_sandbox(self, config_updates: dict[str, object] | None = None, **creator_updates: object) -> None:
        """Run the sandbox with its config changed by `config_updates` and every test creator by
        `creator_updates`, and reconnect (a sandbox reset forgets every token)."""
        config = self.sandbox.config
        creators = [c.model_copy(update=creator_updates) for c in config.creators]
        self.sandbox.reset(config.model_copy(update={"creators": creators, **(config_updates or {})}))
        connect_test_accounts()

    def work_files(self) -> list[Path]:
        root = self.data_dir / "work"
        return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def connect_test_accounts() -> None:
    """Connect `main` (public) and `private` through the sandbox's real OAuth flow."""
    from tasks import runtime
    from publishing.connect import connect_account

    settings = runtime.settings()
    for name, user in (("main", "studio_main"), ("private", "private_creator")):
        connect_account(settings, runtime.ledger(settings), name,
                        lambda url: httpx.get(url, follow_redirects=True, timeout=30), extra_params={"sandbox_user": user})


@pytest.fixture
def pipeline(sandbox, s3_bucket: str, moto_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TIKTOK_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TIKTOK_PIPELINE_REDIRECT_URI", f"http://localhost:{free_port()}/callback/")
    monkeypatch.setenv("TIKTOK_PIPELINE_ENCRYPTION_KEY", generate_key())
    monkeypatch.setenv("TIKTOK_PIPELINE_STATUS_POLL_INTERVAL", "2")
    connect_test_accounts()  # new tokens, and a new ledger: TikTok's per-minute windows start empty
    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    pipeline = Pipeline(data_dir=tmp_path / "data", bucket=s3_bucket, s3=s3, sandbox=sandbox)
    yield pipeline
    # Whatever the test did (success, failure, interruption), no working file may be left behind.
    assert pipeline.work_files() == [], pipeline.work_files()


@pytest.fixture
def prefect_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Run and task logs, which Prefect's logger does not pass to the root logger by default."""
    prefect_logger = logging.getLogger("prefect")
    prefect_logger.propagate = True
    try:
        yield caplog
    finally:
        prefect_logger.propagate = False


@pytest.fixture
def verified_prefix(pipeline, moto_server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A URL prefix verified for the app (TIKTOK_PIPELINE_PULL_URL_PREFIXES and the sandbox agree),
    served by the moto bucket's tiktok-pull/ folder, which anyone may read (as a CDN in front of it)."""
    prefix = f"{moto_server.endpoint_url}/{pipeline.bucket}/tiktok-pull/"
    pipeline.s3.put_bucket_policy(Bucket=pipeline.bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{pipeline.bucket}/tiktok-pull/*"}]}))
    monkeypatch.setenv("TIKTOK_PIPELINE_PULL_URL_PREFIXES", json.dumps({prefix: f"s3://{pipeline.bucket}/tiktok-pull/"}))
    pipeline.reset_sandbox({"verified_url_prefixes": [prefix]})
    return prefix
