"""The command line reports every error one way: `error: <message>` as one line on stderr, and an exit
code (2: input refused, 1: work that failed, 130: stopped at once), through `_common.fail`."""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

from deployments.cli import build_app
from tests.deployments.helpers import one_error_line
from deployments.cli._common import fail, pipeline_errors
from deployments.cli._publish import run_request as REAL_RUN_REQUEST
from ledger import DatabaseUnavailable, LedgerError
from sandbox import free_port

CLI = Path(__file__).resolve().parents[2] / "deployments" / "cli"
runner = CliRunner()


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


def test_a_retryable_error_is_never_reported_as_refused_input() -> None:
    app = typer.Typer()

    @app.command()
    def command(kind: str) -> None:
        with pipeline_errors(exit_code=2):
            raise (DatabaseUnavailable("the ledger does not answer") if kind == "busy" else LedgerError("bad name"))

    assert one_error_line(runner.invoke(app, ["busy"]), 1) == "error: the ledger does not answer"
    assert one_error_line(runner.invoke(app, ["bad"]), 2) == "error: bad name"


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


# --- Typer's own usage errors, and what an error line shows -----------------------------------------


@pytest.mark.parametrize(("argv", "words"), [
    (["publish", "clip.mp4", "--bogus"], "No such option: --bogus (see `tiktok-pipeline publish --help`)"),
    (["publish"], "Missing argument 'source' (see `tiktok-pipeline publish --help`)"),
    (["publish", "clip.mp4", "-a", "main", "--schedule-at", "soon"], "Invalid value for '--schedule-at'"),
    (["publish", "clip.mp4", "-a", "main", "--cover-ms", "x" * 5000], "Invalid value for '--cover-ms'"),
    (["nosuch"], "No such command 'nosuch' (see `tiktok-pipeline --help`)"),
    (["transcode", "in.mp4"], "Missing argument 'output' (see `tiktok-pipeline transcode --help`)"),
])
def test_usage_errors_are_one_line_too(argv: list[str], words: str) -> None:
    line = one_error_line(runner.invoke(build_app(), argv), 2)
    assert words in line, line


def test_a_bare_group_still_prints_its_help() -> None:
    for argv in ([], ["accounts"]):
        result = runner.invoke(build_app(), argv)
        assert result.exit_code == 2 and "Usage:" in result.stdout and result.stderr == "", result.output
    assert runner.invoke(build_app(), ["publish", "--help"]).exit_code == 0


def test_an_error_line_shows_control_and_bidi_characters_escaped() -> None:
    app = typer.Typer()

    @app.command()
    def echo_back(text: str) -> None:
        fail(f"no such file: {text}")

    line = one_error_line(runner.invoke(app, ["a\x1b[31mb\u202ec\x00d\ttab"]), 2)
    assert line == "error: no such file: a\\x1b[31mb\\u202ec\\x00d tab"
    line = one_error_line(runner.invoke(app, ["x" * 200_000 + "END"]), 2)
    assert len(line) < 4100 and line.startswith("error: no such file: xxx") and line.endswith("xxEND")


def test_a_typed_error_logged_by_prefect_shows_without_traceback_on_the_terminal() -> None:
    import io
    import logging

    from prefect.logging.handlers import PrefectConsoleHandler

    from deployments.cli._common import typed_errors_without_traceback
    from publishing.sources import SourceUnavailable

    def logged(exc: Exception) -> str:
        stream = io.StringIO()
        handler = PrefectConsoleHandler(stream=stream)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        other = io.StringIO()
        api = logging.StreamHandler(other)  # stands for Prefect's API handler: the UI keeps the traceback
        logger = logging.getLogger("tests.typed-errors")
        logger.addHandler(api)
        try:
            with typed_errors_without_traceback():
                try:
                    raise exc
                except Exception:
                    logger.error("Task run failed with exception: %r - Retries are exhausted", exc, exc_info=True)
        finally:
            root.removeHandler(handler)
            logger.removeHandler(api)
        assert "Traceback" in other.getvalue()
        return stream.getvalue()

    typed = logged(SourceUnavailable("download of http://x/clip.mp4 failed: timed out"))
    assert "Traceback" not in typed and typed.count("\n") == 1 and "Retries are exhausted" in typed
    assert "Traceback" in logged(ValueError("a bug"))  # an unexpected error keeps its traceback


# --- publish: what is checked before a Prefect run starts -------------------------------------------


@pytest.fixture
def connected(sandbox, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`main` and `private` connected through the sandbox's OAuth, a bucket, and no Prefect run allowed."""
    import httpx

    from ledger import generate_key
    from publishing.connect import connect_account
    from sandbox import free_port
    from tasks import runtime

    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TIKTOK_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TIKTOK_PIPELINE_REDIRECT_URI", f"http://localhost:{free_port()}/callback/")
    monkeypatch.setenv("TIKTOK_PIPELINE_ENCRYPTION_KEY", generate_key())
    settings = runtime.settings()
    for name, user in (("main", "studio_main"), ("private", "private_creator")):
        connect_account(settings, runtime.ledger(settings), name,
                        lambda url: httpx.get(url, follow_redirects=True, timeout=30), extra_params={"sandbox_user": user})
    runs: list[object] = []
    monkeypatch.setattr("deployments.cli._publish.run_request", runs.append)
    return SimpleNamespace(bucket=s3_bucket, dir=tmp_path, runs=runs, ledger=runtime.ledger(settings))


def put(bucket: str, key: str, body: bytes) -> str:
    import os

    import boto3

    boto3.client("s3", endpoint_url=os.environ["TIKTOK_PIPELINE_S3_ENDPOINT_URL"]).put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def publish(*argv: str):
    return runner.invoke(build_app(), ["publish", *argv])


def refused(result, *words: str) -> str:
    line = one_error_line(result, 2)
    assert all(w in line for w in words), line
    assert result.stdout == ""  # not even the Music Usage Confirmation: nothing is being posted
    return line


def test_bad_sources_and_media_are_refused_before_a_run(connected, media) -> None:
    folder = connected.dir / "folder.mp4"
    folder.mkdir()
    fifo = connected.dir / "fifo.mp4"
    os.mkfifo(fifo)
    text = connected.dir / "text.mp4"
    text.write_text("not a video", encoding="utf-8")
    cases = {
        str(connected.dir / "missing.mp4"): "no such file",
        str(folder): "is a directory, not a video file",
        str(fifo): "is a FIFO, not a video file",
        "/dev/zero": "is a device, not a video file",
        str(text): "text.mp4: not a video or audio file",
        str(media.path("empty")): "is empty (0 bytes)",
        str(media.path("image")): "still image",
        str(media.path("short")): "shorter than the minimum",
        f"s3://{connected.bucket}/missing.mp4": "S3 object not found",
        "s3://Bad_Bucket!/clip.mp4": "not a valid S3 location",
        "s3://bucket-only": "not an S3 URI of the form s3://bucket/key",
        f"s3://{connected.bucket}/" + "k" * 1100: "S3 object keys are at most 1024 bytes",
        "ftp://host/clip.mp4": "unsupported source scheme 'ftp'",
        f"http://127.0.0.1:{free_port()}/clip.mp4": "Connection refused",
    }
    for source, words in cases.items():
        refused(publish(source, "-a", "main", "--privacy", "SELF_ONLY"), words)
    assert connected.runs == [] and connected.ledger.list_posts() == []


def test_every_problem_is_named_in_the_one_line(connected) -> None:
    line = refused(publish(f"s3://{connected.bucket}/missing.mp4", "-a", "main", "-a", "nobody", "-a", "other",
                           "--privacy", "SELF_ONLY", "--schedule-at", "2001-01-01T00:00:00"))
    assert "--schedule-at 2001-01-01 00:00:00 UTC is in the past" in line
    assert "`tiktok-pipeline accounts connect nobody`" in line and "`tiktok-pipeline accounts connect other`" in line
    assert "S3 object not found" in line
    assert connected.runs == []


def test_accounts_that_cannot_post_are_refused_before_a_run(connected, media) -> None:
    clip = str(media.path("compliant"))
    connected.ledger.mark_needs_reconnect("private", "invalid_grant: refresh token revoked")
    refused(publish(clip, "-a", "main", "-a", "private", "--privacy", "SELF_ONLY"),
            "account private needs reconnecting (invalid_grant: refresh token revoked)",
            "run `tiktok-pipeline accounts connect private`")
    connected.ledger.remove_account("main")
    refused(publish(clip, "-a", "main", "--privacy", "SELF_ONLY"), "account main was removed")
    assert connected.runs == []


def test_a_schedule_needs_a_future_time_and_a_server_that_runs_it(connected, media) -> None:
    clip = str(media.path("compliant"))
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        refused(publish(clip, "-a", "main", "--privacy", "SELF_ONLY", "--schedule-at", "2020-05-01T10:00:00+02:00"),
                "--schedule-at 2020-05-01 08:00:00 UTC is in the past")
        refused(publish(clip, "-a", "main", "--privacy", "SELF_ONLY", "--schedule-at", "2099-01-01T00:00:00"),
                "--schedule-at needs the Prefect server that runs the publish-video deployment: set PREFECT_API_URL")
    with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        result = publish(clip, "-a", "main", "--privacy", "SELF_ONLY", "--schedule-at", "2099-01-01T00:00:00")
    assert "cannot reach the Prefect server at http://127.0.0.1:" in one_error_line(result, 1)
    assert connected.runs == []


def test_settings_every_post_needs_are_refused_and_an_unreachable_ledger_fails(connected, media,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    clip = str(media.path("compliant"))
    key = os.environ["TIKTOK_PIPELINE_ENCRYPTION_KEY"]
    monkeypatch.setenv("TIKTOK_PIPELINE_ENCRYPTION_KEY", "not-a-fernet-key")
    refused(publish(clip, "-a", "main", "--privacy", "SELF_ONLY"), "invalid settings: TIKTOK_PIPELINE_ENCRYPTION_KEY")
    monkeypatch.delenv("TIKTOK_PIPELINE_ENCRYPTION_KEY")
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # no server that could hold the key's Secret block
        refused(publish(clip, "-a", "main", "--privacy", "SELF_ONLY"), "no encryption key for the account tokens: set "
                "TIKTOK_PIPELINE_ENCRYPTION_KEY")
    monkeypatch.setenv("TIKTOK_PIPELINE_ENCRYPTION_KEY", key)
    monkeypatch.setenv("TIKTOK_PIPELINE_DATABASE_URL", f"postgresql+psycopg://u:p@127.0.0.1:{free_port()}/ledger")
    result = publish(clip, "-a", "main", "--privacy", "SELF_ONLY")
    assert "127.0.0.1" in one_error_line(result, 1)  # the ledger does not answer: nothing could be checked
    assert connected.runs == []


def test_a_request_that_passes_the_checks_runs(connected, media) -> None:
    result = publish(str(media.path("compliant")), "-a", "main", "-a", "private", "--privacy", "SELF_ONLY",
                     "--caption", "checked")
    assert result.exit_code == 0, result.output
    assert "Music Usage Confirmation" in result.stdout and result.stderr == ""
    (request,) = connected.runs
    assert request.accounts == ["main", "private"] and request.caption == "checked"
    source = put(connected.bucket, "in/clip.mp4", media.path("compliant").read_bytes())
    assert publish(source, "-a", "main", "--mode", "inbox").exit_code == 0  # remote media: the run probes it
    assert len(connected.runs) == 2


def test_ctrl_c_during_the_checks_exits_130_with_one_line(tmp_path: Path) -> None:
    """What a user's Ctrl-C does while a URL takes its time to answer."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts, never answers
    environment = {**os.environ, "TIKTOK_PIPELINE_DATA_DIR": str(tmp_path / "data"),
                   "TIKTOK_PIPELINE_ENCRYPTION_KEY": __import__("ledger").generate_key()}
    argv = [sys.executable, "-m", "deployments.cli", "publish", f"http://127.0.0.1:{listener.getsockname()[1]}/x.mp4",
            "-a", "main", "--privacy", "SELF_ONLY"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
                               cwd=CLI.parents[1])
    listener.settimeout(60)
    connection, _ = listener.accept()  # the check's HEAD is waiting for its answer
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    connection.close()
    listener.close()
    assert process.returncode == 130, (out, err)
    assert err.splitlines() == ["error: interrupted before anything was sent"], err


def test_a_prefect_server_that_does_not_answer_fails_the_run_in_one_line(connected, media,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from deployments.cli import _publish

    monkeypatch.setattr(_publish, "run_request", REAL_RUN_REQUEST)  # the real flow call, this time
    with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        result = publish(str(media.path("compliant")), "-a", "main", "--privacy", "SELF_ONLY")
    line = one_error_line(result, 1)
    assert line.startswith("error: the Prefect API (http://127.0.0.1:") and "could not run the flow" in line, line
    assert connected.ledger.list_posts() == [] and connected.runs == []
