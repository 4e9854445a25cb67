"""`tiktok-pipeline setup` without a Prefect server: the refusals."""

from __future__ import annotations


import pytest
import typer
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

from deployments.local import free_port
from deployments.bootstrap import EncryptionKeyNotSet, SetupReport, store_encryption_key
from tiktok_pipeline import _cli_setup
from tiktok_pipeline.settings import load_settings


def run_setup(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    app.callback()(lambda: None)
    _cli_setup.register(app)
    result = CliRunner().invoke(app, ["setup", *args])
    return result.exit_code, result.output


closed_port = free_port  # nothing listens there: a refused connection


def test_setup_refuses_without_a_configured_server() -> None:
    # Unset, Prefect would start a throwaway in-process server and the setup would vanish with it.
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        code, output = run_setup()
    assert code == 1
    assert "PREFECT_API_URL is not set" in output


def test_setup_names_the_server_that_does_not_answer() -> None:
    url = f"http://127.0.0.1:{closed_port()}/api"
    with temporary_settings(updates={PREFECT_API_URL: url}):
        code, output = run_setup("--store-encryption-key")
    assert code == 1
    assert f"the Prefect API at {url} does not answer" in output


def test_storing_the_key_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIKTOK_PIPELINE_ENCRYPTION_KEY", raising=False)
    with pytest.raises(EncryptionKeyNotSet, match="tiktok-pipeline db generate-key"):
        store_encryption_key(load_settings(_env_file=None))


def test_report_says_what_was_done() -> None:
    report = SetupReport(api_url="http://127.0.0.1:4200/api", work_pool="tiktok-pipeline", work_pool_created=True,
                         accounts=["main"], rate_limits=["tiktok:a:b"] * 7, key_block="tiktok-pipeline-encryption-key")
    assert report.lines() == [
        "Prefect API: http://127.0.0.1:4200/api",
        "work pool 'tiktok-pipeline' (process): created",
        "rate limits: 7 created or updated for 1 account(s): main",
        "encryption key stored in the Prefect Secret block 'tiktok-pipeline-encryption-key'",
    ]
    assert "no account in the ledger yet" in SetupReport("u", "p", False).lines()[2]


