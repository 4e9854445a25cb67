"""A worker killed in the middle of a publish (real `kill -9` of the worker and its flow-run process):
the run ends Crashed through the heartbeat-based detection of `tiktok-pipeline setup`, the crash
starts the cleanup flow at once (the trigger of the cleanup deployment), which runs publish-s3-object
again with the same parameters; the re-run continues the same ledger post, so the S3 object is
published once, by the one publish_id that ever received bytes.

The source is the stack's 16:9 sample, which must be transcoded, and a transcode does not give the
same bytes twice: the re-run resumes with the media the crashed run kept under the data dir before
its init (`<data_dir>/media/<sha256>.mp4`) and transcodes nothing.

The sandbox delays the upload's answer (a latency fault), so the run is killed with its upload in
flight, right after its second heartbeat. Measured on a loaded 2-core machine (3 runs, transcoded
sample): Crashed 86-87 s after the kill (90 s after the last heartbeat), the retry run created 6-9 s
later, the post published 11-13 s after that (no transcode in the retry); the test takes about 150 s
after the stack has started (215 s with it).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import psutil

from deployments.automations import (
    CRASH_AUTOMATION_NAME,
    CRASH_MESSAGE,
    HEARTBEAT_EVENT,
    HEARTBEAT_SECONDS,
    HEARTBEAT_VARIABLE,
)
from ledger import Ledger
from tasks.maintenance import RETRY_TAG, retry_idempotency_key
from tests.plugins.prefect_server import Stack
from tests.stack.groups import STACK_GROUP

pytestmark = STACK_GROUP

#: Holds the run in its upload until it has sent two heartbeats; shorter than the kill plus the
#: crash detection, so the request the killed process had sent is over before the retry runs.
UPLOAD_LATENCY_MS = 60_000
CRASH_TIMEOUT = 240.0  # detection needs 60-90 s after the kill; a loaded machine gets slack


def s3_client(stack: Stack) -> Any:
    env = stack.env
    return boto3.client("s3", endpoint_url=env["TIKTOK_PIPELINE_S3_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def poll(what: str, check, timeout: float, every: float = 1.0):
    """`check()`'s first truthy answer; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if found := check():
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def runs_of(stack: Stack, deployment: str, **parameters: Any) -> list[dict[str, Any]]:
    deployment_id = stack.api.deployment(deployment)["id"]
    runs = stack.api.flow_runs(deployment_id={"any_": [deployment_id]})
    return sorted((r for r in runs if all(r["parameters"].get(k) == v for k, v in parameters.items())),
                  key=lambda r: r["created"])


def kill_worker(stack: Stack) -> list[int]:
    """SIGKILL the worker and every process under it (flow-run processes start sessions of their own,
    but stay its children): nothing gets to report a state."""
    worker = psutil.Process(json.loads((stack.state_dir / "worker.pid").read_text())["pid"])
    victims = [worker, *worker.children(recursive=True)]
    for process in victims:
        process.kill()
    psutil.wait_procs(victims, timeout=10)
    return [p.pid for p in victims]


def heartbeats(stack: Stack, run_id: str) -> list[datetime]:
    """When the run's `prefect.flow-run.heartbeat` events occurred, as the server stored them."""
    response = stack.api.http.post("/events/filter", json={"filter": {
        "event": {"name": [HEARTBEAT_EVENT]}, "resource": {"id": [f"prefect.flow-run.{run_id}"]}}, "limit": 50})
    response.raise_for_status()
    return sorted(datetime.fromisoformat(e["occurred"].replace("Z", "+00:00")) for e in response.json()["events"])


def crash_diagnosis(stack: Stack, run_id: str, up_output: str) -> str:
    """What to look at when the killed run was not marked Crashed: did heartbeats go on (a process of
    the run survived the kill), did the automation trigger or its action fail, what did setup do."""
    response = stack.api.http.post("/events/filter", json={"filter": {"event": {"prefix": ["prefect.automation"]}},
                                                           "limit": 50})
    automation_events = [(e["occurred"], e["event"], e["resource"]["prefect.resource.id"],
                          e.get("payload", {}).get("reason") or "") for e in response.json().get("events", [])]
    automations = [{k: a.get(k) for k in ("id", "name", "enabled", "updated")}
                   for a in stack.api.http.post("/automations/filter", json={}).json()]
    # A forked run's environment is set after the fork, so /proc shows the preloaded process's: the
    # worker's log names its pid. A cold-started run's environment names the run.
    log = (stack.log_dir / "worker.log").read_text(encoding="utf-8", errors="replace")
    forked = {int(pid) for pid in re.findall(rf"flow run {run_id} started in pid (\d+)", log)}
    survivors = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            if process.pid in forked or run_id in (process.environ().get("PREFECT__FLOW_RUN_ID") or ""):
                survivors.append((process.pid, process.info["cmdline"], process.status()))
        except (psutil.Error, OSError):
            continue
    setup_lines = [line for line in up_output.splitlines() if "crash detection" in line]
    return (f"\nheartbeats: {heartbeats(stack, run_id)}\nautomation events: {automation_events}"
            f"\nautomations: {automations}\nprocesses of the run still alive: {survivors}"
            f"\nsetup after the kill: {setup_lines}\nserver log: {stack.log_dir / 'prefect.log'}")


def sandbox_fault_pending(stack: Stack, fault_id: str) -> bool:
    faults = httpx.get(f"{stack.sandbox_url}/_sandbox/faults", timeout=10).json()
    return any(f["id"] == fault_id for f in faults)


def subflow_task_names(stack: Stack, run_id: str) -> set[str]:
    """Names (without the run-count suffix) of the task runs of the publish-video subflow of `run_id`."""
    (child,) = stack.api.flow_runs(parent_flow_run_id={"any_": [run_id]})
    response = stack.api.http.post("/task_runs/filter", json={"flow_runs": {"id": {"any_": [child["id"]]}}})
    response.raise_for_status()
    return {t["name"].rsplit("-", 1)[0] for t in response.json()}


@pytest.mark.timeout(900)  # kill, 90 s without heartbeat, retry, publish: minutes on a loaded machine
def test_a_killed_publish_run_ends_crashed_and_its_retry_publishes_the_object_once(prefect_stack: Stack) -> None:
    stack = prefect_stack
    caption = f"crash test {uuid.uuid4().hex[:8]}"
    key = f"incoming/crash-{uuid.uuid4().hex[:8]}.mp4"
    # 16:9: transcoded to 1080x1920, so the retry can only resume with the media the crashed run kept.
    clip = stack.state_dir / "sample.mp4"
    fault = httpx.post(f"{stack.sandbox_url}/_sandbox/faults", timeout=10,
                       json={"endpoint": "upload", "kind": "latency", "latency_ms": UPLOAD_LATENCY_MS}).json()["id"]
    try:
        s3_client(stack).upload_file(str(clip), "media", key, ExtraArgs={"Metadata": {
            "tiktok-accounts": "main", "tiktok-privacy-level": "SELF_ONLY", "tiktok-caption": caption}})
        (run,) = poll("the listener starting a publish-s3-object run",
                      lambda: runs_of(stack, "publish-s3-object/publish-s3-object", key=key), timeout=120)
        poll("the upload request reaching TikTok", lambda: not sandbox_fault_pending(stack, fault), timeout=180, every=0.2)
        # Two heartbeats HEARTBEAT_SECONDS apart: the pool's template set the frequency (the worker's own
        # environment does not; Prefect's default of 180 s would get healthy runs crashed after 90 s).
        beats = poll("two heartbeats", lambda: (b := heartbeats(stack, run["id"])) and len(b) >= 2 and b, timeout=60)
        assert HEARTBEAT_SECONDS - 2 <= (beats[1] - beats[0]).total_seconds() <= HEARTBEAT_SECONDS + 10, beats
        assert HEARTBEAT_VARIABLE not in stack.env
        assert stack.api.flow_run(run["id"])["state"]["type"] == "RUNNING"
        killed = kill_worker(stack)
        killed_at = time.monotonic()
    finally:
        httpx.delete(f"{stack.sandbox_url}/_sandbox/faults", timeout=10)
    assert len(killed) >= 2, f"expected the worker and its flow-run process, killed {killed}"

    up_output = stack.up()  # `make up` again: starts a new worker, leaves the rest running
    # Its setup leaves the crash detection as it is: an update would reset the trigger, which would then
    # never see this run's last heartbeat, nor mark it Crashed.
    assert f"crash detection: automation {CRASH_AUTOMATION_NAME!r} unchanged" in up_output, up_output
    try:
        crashed = stack.api.wait_for_run(run["id"], timeout=CRASH_TIMEOUT, states={"CRASHED", "COMPLETED", "FAILED"})
    except AssertionError as exc:
        raise AssertionError(f"{exc}{crash_diagnosis(stack, run['id'], up_output)}") from None
    crashed_after = time.monotonic() - killed_at
    assert crashed["state"]["type"] == "CRASHED", crashed["state"]
    assert crashed["state"]["message"] == CRASH_MESSAGE

    (retry,) = poll("a retry of the crashed run",
                    lambda: [r for r in runs_of(stack, "publish-s3-object/publish-s3-object", key=key)
                             if r["idempotency_key"] == retry_idempotency_key(run["id"])], timeout=180)
    retried_after = time.monotonic() - killed_at
    assert RETRY_TAG in retry["tags"] and retry["parameters"] == run["parameters"]
    done = stack.wait_for_run(retry["id"], timeout=300)
    published_after = time.monotonic() - killed_at
    assert done["state"]["type"] == "COMPLETED", (done["state"], stack.api.logs(retry["id"]))
    # The crashed run transcoded; the retry did not.
    assert "transcode" in subflow_task_names(stack, run["id"])
    assert "transcode" not in subflow_task_names(stack, retry["id"])
    (retried_subflow,) = stack.api.flow_runs(parent_flow_run_id={"any_": [retry["id"]]})

    # The bytes the killed run sent reached TikTok after it died (the held PUT was handled). Either the
    # retry resumed with the media the crashed run kept (TikTok answered that it holds them all), or
    # TikTok's webhook had settled the post meanwhile and the retry reported it: one publish_id either way.
    def how_retried() -> str | None:
        lines = stack.api.logs(retried_subflow["id"])
        if any("resumes with the media kept at init" in line and "not transcoded again" in line for line in lines):
            return "resumed"
        if any("already used by post" in line and "(published): nothing sent" in line for line in lines):
            return "settled"
        return None

    try:
        retried = poll("the retry's log saying how it went on (logs reach the server after the state)", how_retried,
                       timeout=60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the retry's subflow logged:\n" + "\n".join(stack.api.logs(retried_subflow["id"]))) from None

    # The cleanup run that retried it was started by the crash, not by its half-hourly schedule.
    cleanups = [r for r in stack.api.flow_runs(deployment_id={"any_": [stack.api.deployment("cleanup/cleanup")["id"]]})
                if (r.get("created_by") or {}).get("type") == "AUTOMATION"]
    assert any(any("retried as run" in line and retry["id"] in line for line in stack.api.logs(c["id"]))
               for c in cleanups), [c["name"] for c in cleanups]
    # The subflow the crashed run was in the middle of does not stay Running either.
    children = stack.api.flow_runs(parent_flow_run_id={"any_": [run["id"]]})
    assert children and all(c["state"]["type"] == "CRASHED" for c in children), [c["state"] for c in children]

    posts = [p for p in stack.sandbox_posts() if (p.get("post_info") or {}).get("title") == caption]
    assert len(posts) == 1, posts  # one publish_id, created by the crashed run, finished by the retry
    (post,) = posts
    assert post["received_bytes"] == post["video_size"]
    assert post["status"] == "PUBLISH_COMPLETE", post
    if retried == "settled":  # by the stack's receiver: TikTok's webhook, stored and applied
        book = Ledger(stack.env["TIKTOK_PIPELINE_DATABASE_URL"], stack.env["TIKTOK_PIPELINE_ENCRYPTION_KEY"])
        try:
            events = book.received_events(publish_id=post["publish_id"])
            assert any(e.event == "post.publish.complete" and (e.outcome or "").endswith("-> published") for e in events), events
        finally:
            book.engine.dispose()
    # Exactly the bytes init announced: the kept file, named by its content hash.
    received = post["check"]["sha256"]  # the sandbox checked the file it received for this publish_id
    assert (Path(stack.env["TIKTOK_PIPELINE_DATA_DIR"]) / "media" / f"{received}.mp4").is_file()
    print(f"measured: Crashed {crashed_after:.0f} s after the kill, retry created after {retried_after:.0f} s, "
          f"published after {published_after:.0f} s (the retry {retried})")


def test_setup_keeps_one_crash_detection_and_puts_it_back_in_place(prefect_stack: Stack) -> None:
    def automations() -> list[dict[str, Any]]:
        found = prefect_stack.api.http.post("/automations/filter", json={}).json()
        return [a for a in found if a["name"] == CRASH_AUTOMATION_NAME]

    (before,) = automations()  # `make up` ran the setup already, maybe more than once
    prefect_stack.prefect("automation", "pause", "--id", before["id"])  # someone switched it off by hand
    assert "crash detection: automation " + repr(CRASH_AUTOMATION_NAME) + " updated" in prefect_stack.cli("setup").stdout
    (after,) = automations()
    assert after["id"] == before["id"] and after["enabled"] is True
    assert "unchanged" in prefect_stack.cli("setup").stdout
    pool = prefect_stack.api.http.get("/work_pools/tiktok-pipeline").json()
    assert pool["base_job_template"]["variables"]["properties"]["env"]["default"] == {
        HEARTBEAT_VARIABLE: str(HEARTBEAT_SECONDS)}


def test_setup_removes_the_prefect_rate_limits_of_earlier_versions(prefect_stack: Stack) -> None:
    """TikTok's limits live in the ledger now: the global concurrency limits earlier versions kept them
    in (`tiktok:<open_id>:<endpoint>`) are deleted by `setup`, and other limits are left alone."""
    http = prefect_stack.api.http
    old, unrelated = "tiktok:sbx-open-id-studio-main:video_init", "someone-elses-limit"
    for name in (old, unrelated):
        response = http.post("/v2/concurrency_limits/", json={"name": name, "limit": 3, "slot_decay_per_second": 0.05})
        assert response.status_code in (200, 201), response.text
    output = prefect_stack.cli("setup").stdout
    assert "removed 1 Prefect rate limit(s) of an earlier version" in output, output
    assert http.get(f"/v2/concurrency_limits/{old}").status_code == 404
    assert http.get(f"/v2/concurrency_limits/{unrelated}").status_code == 200
    http.delete(f"/v2/concurrency_limits/{unrelated}")
    assert "removed" not in prefect_stack.cli("setup").stdout  # nothing left to remove
