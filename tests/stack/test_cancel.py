"""Cancelling a run, as a user does it (`prefect flow-run cancel`, which sets the Cancelling state the
UI's Cancel button sets), on the `make up` stack: the worker sends SIGTERM to the run's launcher,
the launcher passes it to the process forked from the preloaded one, and the run ends Cancelled,
with its working directory removed, no process of it left and nothing published. The next run
still starts warm.

Measured (2026-12-03, twice): Cancelled 33 s after the command. Cancelled mid-upload, Prefect's engine
takes the signal but waits for the task blocked in the upload, so the worker kills the launcher
after its 30 s grace period, and the preloaded process then kills the child (it ends with -9). The
worker runs the flow's on_cancellation hook itself afterwards. (A run started the usual way, with
no preloaded process, runs the same engine; it was not cancelled here.)
"""

from __future__ import annotations

import json
import re
import signal
import time
import uuid

import httpx
import psutil

from tests.plugins.prefect_server import Stack
from tests.stack.groups import STACK_GROUP

pytestmark = STACK_GROUP

SAMPLE = "s3://media/samples/sample.mp4"
#: Holds the upload's answer long enough to cancel the run in the middle of it.
UPLOAD_LATENCY_MS = 120_000
FINAL = {"CANCELLED", "COMPLETED", "FAILED", "CRASHED"}


def forked_pid(stack: Stack, run_id: str, timeout: float = 120.0) -> int:
    """The pid the preloaded process forked for `run_id`, from the worker's log."""
    pattern = re.compile(rf"warm start: flow run {run_id} started in pid (\d+)")
    deadline = time.monotonic() + timeout
    while not (found := pattern.search((stack.log_dir / "worker.log").read_text(encoding="utf-8"))):
        assert time.monotonic() < deadline, f"flow run {run_id} was not forked from the preloaded process"
        time.sleep(0.5)
    return int(found.group(1))


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_run_cancelled_mid_upload_ends_cancelled_with_no_process_left_and_nothing_published(prefect_stack: Stack) -> None:
    stack = prefect_stack
    caption = f"cancelled {uuid.uuid4().hex[:8]}"
    fault = httpx.post(f"{stack.sandbox_url}/_sandbox/faults", timeout=10,
                       json={"endpoint": "upload", "kind": "latency", "latency_ms": UPLOAD_LATENCY_MS}).json()["id"]
    try:
        run = stack.create_run("publish-video/publish-video", {"request": {
            "source": SAMPLE, "accounts": ["main"], "privacy_level": "SELF_ONLY", "caption": caption}})
        pid = forked_pid(stack, run["id"])
        deadline = time.monotonic() + 180
        while any(f["id"] == fault for f in httpx.get(f"{stack.sandbox_url}/_sandbox/faults", timeout=10).json()):
            assert time.monotonic() < deadline, "the upload did not reach the sandbox"
            time.sleep(0.2)
        assert stack.api.flow_run(run["id"])["state"]["type"] == "RUNNING"
        family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        cancelled_at = time.monotonic()
        stack.prefect("flow-run", "cancel", run["id"])
        ended = stack.api.wait_for_run(run["id"], timeout=180, states=FINAL)
        took = time.monotonic() - cancelled_at
    finally:
        httpx.delete(f"{stack.sandbox_url}/_sandbox/faults", timeout=10)

    print(f"measured: Cancelled {took:.1f} s after `prefect flow-run cancel`")
    assert ended["state"]["type"] == "CANCELLED", ended["state"]
    deadline = time.monotonic() + 30
    while not all(gone(p.pid) for p in family):
        assert time.monotonic() < deadline, [p.pid for p in family if not gone(p.pid)]
        time.sleep(0.5)
    expected = {
        # The worker's SIGTERM reached the forked process through its launcher, and the process was reaped.
        "signal passed on": re.escape(f"passing signal {signal.SIGTERM.value} from its launcher to flow run {run['id']} (pid {pid})"),
        "process reaped": re.escape(f"warm start: flow run {run['id']} (pid {pid}) ended with "),
        # The flow's on_cancellation hook removed the run's working directory.
        "hook ran": re.escape("Running hook 'remove_run_dir' in response to entering state 'Cancelling'"),
    }
    deadline = time.monotonic() + 30
    while missing := [what for what, pattern in expected.items()
                      if not re.search(pattern, log := (stack.log_dir / "worker.log").read_text(encoding="utf-8"))]:
        assert time.monotonic() < deadline, (missing, log[-4000:])
        time.sleep(0.5)
    posts = [p for p in stack.sandbox_posts() if (p.get("post_info") or {}).get("title") == caption]
    assert all(p["status"] != "PUBLISH_COMPLETE" for p in posts), posts

    # The preloaded process serves the next run as before.
    after = stack.create_run("publish-video/publish-video", {"request": {
        "source": SAMPLE, "accounts": ["main"], "privacy_level": "SELF_ONLY", "caption": f"after {caption}"}})
    forked_pid(stack, after["id"])
    done = stack.wait_for_run(after["id"])
    assert done["state"]["type"] == "COMPLETED", done["state"]


def preloaded_processes(stack: Stack) -> list[psutil.Process]:
    """The live preloaded process beside the stack's worker (a child of `tiktok-pipeline worker`), if any."""
    wrapper = psutil.Process(json.loads((stack.state_dir / "worker.pid").read_text())["pid"])
    return [p for p in wrapper.children() if p.status() != psutil.STATUS_ZOMBIE
            and "deployments.warmstart._server" in " ".join(p.cmdline())]


def test_a_killed_preloaded_process_is_started_again_and_runs_go_on(prefect_stack: Stack) -> None:
    """kill -9 of the preloaded process beside a real worker: `tiktok-pipeline worker` starts it
    again, and runs go on, the first ones maybe the usual way, then forked from the new process."""
    stack = prefect_stack
    log_file = stack.log_dir / "worker.log"
    (killed,) = preloaded_processes(stack)
    ready_before = log_file.read_text(encoding="utf-8").count("warm start: ready on")
    killed.kill()
    killed.wait(timeout=10)
    during = stack.create_run("publish-video/publish-video", {"request": {
        "source": SAMPLE, "accounts": ["main"], "privacy_level": "SELF_ONLY", "caption": f"preload killed {uuid.uuid4().hex[:8]}"}})
    deadline = time.monotonic() + 120
    while True:
        log = log_file.read_text(encoding="utf-8")
        if [p for p in preloaded_processes(stack) if p.pid != killed.pid] and log.count("warm start: ready on") > ready_before:
            break
        assert time.monotonic() < deadline, log[-4000:]
        time.sleep(0.5)
    assert f"warm start: the preloaded process ended ({-signal.SIGKILL.value}); starting it again" in log, log[-4000:]
    done = stack.wait_for_run(during["id"])
    assert done["state"]["type"] == "COMPLETED", done["state"]
    # Submitted while the process was down or starting: cold or warm, it ran once.
    print("measured: the run submitted right after the kill started "
          + ("warm" if f"flow run {during['id']} started in pid" in log_file.read_text(encoding="utf-8") else "cold"))

    after = stack.create_run("publish-video/publish-video", {"request": {
        "source": SAMPLE, "accounts": ["main"], "privacy_level": "SELF_ONLY", "caption": f"after preload {uuid.uuid4().hex[:8]}"}})
    forked_pid(stack, after["id"])  # forked: by the new process, the old one is gone
    assert stack.wait_for_run(after["id"])["state"]["type"] == "COMPLETED"
