"""`tiktok-pipeline publish`'s exit codes (README "Exit codes"), with the flow really running.

The README's table is read here and each of its rows is run as a user runs it (a subprocess against
the test Prefect server): the code, the `error:` lines on stderr, and no traceback even where Prefect
logged a task's failure. Errors found inside the flow (a remote file that is not a video, a privacy
level the creator does not offer) reach the command line as the one line a refusal before the run gives.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, LogFilter, LogFilterFlowRunId
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from deployments.cli import build_app
from ledger import PostState

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
runner = CliRunner()


def readme_exit_codes() -> list[int]:
    section = README[README.index("### Exit codes"):]
    section = section[:section.index("\n## ")]
    return [int(code) for code in re.findall(r"^\| (\d+) \|", section, re.MULTILINE)]


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    return subprocess.run([sys.executable, "-m", "deployments.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=environment, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def done(pipeline, media) -> subprocess.CompletedProcess[str]:
    source = pipeline.upload(media.path("compliant"), "in/exit-0.mp4")
    return cli("publish", source, "-a", "main", "--privacy", "SELF_ONLY", "--caption", "exit 0")


def tiktok_failed(pipeline, media) -> subprocess.CompletedProcess[str]:
    source = pipeline.upload(media.path("compliant"), "in/exit-1.mp4")
    pipeline.sandbox.add_fault("creator_info", "error_500", times=20)  # more than every retry of both accounts
    try:
        return cli("publish", source, "-a", "main", "-a", "private", "--privacy", "SELF_ONLY", "--caption", "exit 1")
    finally:
        pipeline.sandbox.clear_faults()


def refused(pipeline, media) -> subprocess.CompletedProcess[str]:
    return cli("publish", str(pipeline.data_dir / "missing.mp4"), "-a", "main", "--privacy", "SELF_ONLY")


def interrupted(pipeline, media) -> subprocess.CompletedProcess[str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts the HEAD of the check, never answers it
    listener.settimeout(120)
    environment = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    argv = [sys.executable, "-m", "deployments.cli", "publish", f"http://127.0.0.1:{listener.getsockname()[1]}/x.mp4",
            "-a", "main", "--privacy", "SELF_ONLY"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=environment)
    try:
        connection, _ = listener.accept()
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)  # the user's Ctrl-C
        out, err = process.communicate(timeout=60)
        connection.close()
    finally:
        listener.close()
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


EXAMPLES = {0: done, 1: tiktok_failed, 2: refused, 130: interrupted}


def test_the_readme_table_lists_the_codes_tested_here() -> None:
    assert readme_exit_codes() == sorted(EXAMPLES)


@pytest.mark.parametrize("code", sorted(EXAMPLES))
def test_each_row_of_the_readme_table(code: int, pipeline, media) -> None:
    ran = EXAMPLES[code](pipeline, media)
    said = ran.stdout + ran.stderr
    assert ran.returncode == code, said
    assert "Traceback" not in said, said
    lines = error_lines(ran.stderr)
    if code == 0:
        assert lines == [] and "published" in ran.stdout, said
    elif code == 1:  # one line per account, each with TikTok's reason
        assert [line.split(":")[1].strip() for line in lines] == ["main", "private"], lines
        assert all("internal_error (HTTP 500)" in line for line in lines), lines
        assert "Retries are exhausted" in ran.stderr  # Prefect said so, in one line per attempt
    elif code == 2:
        assert ran.stderr.splitlines() == [f"error: no such file: {pipeline.data_dir / 'missing.mp4'}"], ran.stderr
        assert ran.stdout == ""  # refused before any run: no Prefect output at all
    else:
        assert ran.stderr.splitlines() == ["error: interrupted before anything was sent"], ran.stderr


def test_the_ui_keeps_the_traceback_the_terminal_left_out(pipeline, media) -> None:
    ran = tiktok_failed(pipeline, media)
    assert ran.returncode == 1 and "Traceback" not in ran.stderr
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["exit-1.mp4 → main, private"])),
                                       sort=FlowRunSort.START_TIME_DESC, limit=1)
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    assert run.state.is_failed()  # the run's state tells the truth
    exhausted = [log.message for log in logs if "Retries are exhausted" in log.message]
    assert exhausted and all("Traceback (most recent call last)" in m and "ServerError" in m for m in exhausted), exhausted


def test_a_remote_file_that_is_not_a_video_is_refused_in_one_line_after_the_run(pipeline) -> None:
    pipeline.s3.put_object(Bucket=pipeline.bucket, Key="in/notes.mp4", Body=b"meeting notes, not a video")
    result = runner.invoke(build_app(), ["publish", f"s3://{pipeline.bucket}/in/notes.mp4", "-a", "main", "-a", "private",
                                         "--privacy", "SELF_ONLY"])
    assert result.exit_code == 2, result.output
    # In this process Prefect's console handler may write to the captured stderr as well (the subprocess
    # tests above see the terminal as a user does): the command's own lines are the `error:` ones.
    (line,) = error_lines(result.stderr)
    assert line.startswith("error: 2 of 2 accounts not posted — main, private: notes-") and "not a video" in line, line
    # The run says the same, and the ledger keeps why (the run was real).
    posts = pipeline.ledger().list_posts()
    assert {(p.account_name, p.state, p.error_code) for p in posts} == {
        ("main", PostState.failed, "NotMediaError"), ("private", PostState.failed, "NotMediaError")}
    assert pipeline.sandbox.posts() == []


def test_a_privacy_level_the_creator_does_not_offer_exits_2_naming_the_account(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/privacy.mp4")
    result = runner.invoke(build_app(), ["publish", source, "-a", "main", "-a", "private", "--privacy", "PUBLIC_TO_EVERYONE"])
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result.stderr)
    assert line.startswith("error: 1 of 2 accounts not posted — private: privacy PUBLIC_TO_EVERYONE is not available"), line
    assert "published" in result.stdout  # main was posted: the table says so
    assert len(pipeline.sandbox.posts()) == 1


def test_a_schedule_without_the_deployment_is_refused_before_a_run(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/later.mp4")
    result = runner.invoke(build_app(), ["publish", source, "-a", "main", "--privacy", "SELF_ONLY",
                                         "--schedule-at", "2099-01-01T09:00:00"])
    (line,) = error_lines(result.stderr)
    assert result.exit_code == 2 and "--schedule-at needs the publish-video/publish-video deployment" in line, line
    assert "ObjectNotFound" not in result.output and pipeline.ledger().list_posts() == []
    with get_client(sync_client=True) as client:
        assert client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["later.mp4 → main"]))) == []
