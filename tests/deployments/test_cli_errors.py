"""The command line reports every error one way: `error: <message>` as one line on stderr, and an exit
code (2: input refused, 1: work that failed, 130: stopped at once), through `_common.fail`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

from deployments.cli import build_app
from deployments.cli._common import fail, pipeline_errors
from ledger import LedgerError

CLI = Path(__file__).resolve().parents[2] / "deployments" / "cli"
runner = CliRunner()


def one_error_line(result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_fail_prints_one_line_on_stderr_and_exits_with_the_code() -> None:
    app = typer.Typer()

    @app.command()
    def broken() -> None:
        print("partial output")
        fail("first line\n   second  line", 7)

    result = runner.invoke(app, [])
    assert one_error_line(result, 7) == "error: first line second line"
    assert result.stdout == "partial output\n"


def test_project_errors_exit_1_and_invalid_models_exit_2() -> None:
    app = typer.Typer()

    @app.command()
    def command(kind: str) -> None:
        from publishing import PublishRequest

        with pipeline_errors():
            if kind == "ledger":
                raise LedgerError("no account named 'x'")
            PublishRequest(source="s3://b/k.mp4", accounts=[], privacy_level="nope")

    assert one_error_line(runner.invoke(app, ["ledger"]), 1) == "error: no account named 'x'"
    assert one_error_line(runner.invoke(app, ["model"]), 2).startswith("error: invalid request: ")


def test_sandbox_with_an_unreadable_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text("{not json", encoding="utf-8")
    line = one_error_line(runner.invoke(build_app(), ["sandbox", "--config", str(config)]), 2)
    assert str(config) in line


def test_listen_without_a_prefect_server_exits_2() -> None:
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = runner.invoke(build_app(), ["listen"])
    assert "PREFECT_API_URL is not set" in one_error_line(result, 2)


def test_invalid_settings_are_named_not_shown_as_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_S3_MAX_RECEIVES", "many")
    result = runner.invoke(build_app(), ["db", "current"])
    assert one_error_line(result, 2).startswith("error: invalid settings: ")
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_no_command_reports_an_error_another_way() -> None:
    # typer.Exit, sys.exit and hand-written "error:" lines belong to `fail` alone.
    other_ways = re.compile(r"typer\.Exit|sys\.exit|BadParameter|[\"']error: |\[red\]error")
    for module in sorted(CLI.glob("*.py")):
        if module.name == "_common.py":
            continue
        found = [line.strip() for line in module.read_text(encoding="utf-8").splitlines() if other_ways.search(line)]
        assert found == [], f"{module.name} reports errors without deployments.cli._common.fail: {found}"
