"""What `make up` checks on the running Prefect server: the worker's heartbeat, the scheduler's
upcoming runs and the tracebacks in the server's log."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import httpx

from deployments.names import WORK_POOL_NAME
from deployments.up.layout import Ports, UpError, api_url

WORKER_NAME = "tiktok-pipeline-local"
#: The deployments the server's scheduler must give upcoming runs (prefect.yaml schedules them).
SCHEDULED_DEPLOYMENTS = ("refresh-tokens/refresh-tokens", "cleanup/cleanup")
SCHEDULER_TIMEOUT = 120.0
#: SQLite answers "database is locked" to a write racing another one (a loaded machine, several
#: workers); Prefect logs the traceback and does the work again (its event queue retries the message,
#: the worker's next heartbeat is stored): contention, which PostgreSQL avoids, not a broken server.
TRANSIENT_SERVER_ERRORS = ("database is locked",)


def warm_start_ready(log_file: Path) -> bool:
    """True once the preloaded process of the worker last started with this log serves (`tiktok-pipeline
    worker` logs "warm start: ready" after its start line)."""
    if not log_file.exists():
        return False
    latest = log_file.read_text(encoding="utf-8", errors="replace").rsplit("\n--- ", 1)[-1]
    return "warm start: ready on " in latest


def worker_online(ports: Ports, since: datetime, name: str = WORKER_NAME) -> bool:
    """True once our worker `name` has sent a heartbeat to the server after `since`."""
    try:
        response = httpx.post(f"{api_url(ports)}/work_pools/{WORK_POOL_NAME}/workers/filter", json={}, timeout=5.0)
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    for worker in response.json():
        beat = worker.get("last_heartbeat_time")
        if worker.get("name") == name and worker.get("status") == "ONLINE" and beat:
            if datetime.fromisoformat(beat.replace("Z", "+00:00")) >= since:
                return True
    return False


def upcoming_runs(api: str, deployments: Sequence[str] = SCHEDULED_DEPLOYMENTS) -> dict[str, list[datetime]]:
    """Start times of the scheduled runs of each `flow/deployment` that are still ahead, soonest first.

    Runs whose time has passed (Late: scheduled by an earlier server, never picked up) do not count:
    only runs ahead show that the scheduler works now.
    """
    now = datetime.now(timezone.utc).isoformat()
    upcoming: dict[str, list[datetime]] = {}
    for name in deployments:
        flow, _, deployment = name.partition("/")
        response = httpx.get(f"{api}/deployments/name/{flow}/{deployment}", timeout=10.0)
        if response.status_code == 404:
            upcoming[name] = []
            continue
        response.raise_for_status()
        runs = httpx.post(f"{api}/flow_runs/filter", timeout=10.0, json={
            "flow_runs": {"deployment_id": {"any_": [response.json()["id"]]}, "state": {"type": {"any_": ["SCHEDULED"]}},
                          "expected_start_time": {"after_": now}},
            "sort": "EXPECTED_START_TIME_ASC", "limit": 10,
        })
        runs.raise_for_status()
        upcoming[name] = [datetime.fromisoformat(r["expected_start_time"].replace("Z", "+00:00")) for r in runs.json()]
    return upcoming


def wait_for_schedules(api: str, timeout: float = SCHEDULER_TIMEOUT) -> dict[str, datetime]:
    """The next run of every scheduled deployment, once the server's scheduler has created them all.

    A server whose scheduler service is broken (SQLAlchemy 2.1 under Prefect 3.8) never creates one:
    that is the failure this waits for, and names.
    """
    deadline = time.monotonic() + timeout
    while True:
        upcoming = upcoming_runs(api)
        if all(upcoming.values()):
            return {name: times[0] for name, times in upcoming.items()}
        if time.monotonic() > deadline:
            missing = ", ".join(name for name, times in upcoming.items() if not times)
            raise UpError(f"the Prefect scheduler created no upcoming run of {missing} within {timeout:.0f} s; "
                          "see the Prefect server log")
        time.sleep(2.0)


def server_log_tracebacks(log_file: Path, *, transient: bool = False) -> list[str]:
    """The last line of every traceback the server logged since it was last started by `up`: those of
    real failures, or with `transient` those of TRANSIENT_SERVER_ERRORS only."""
    if not log_file.exists():
        return []
    lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("--- ")]
    lines = lines[starts[-1] + 1:] if starts else lines
    found: list[str] = []
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            tail = next((later for later in lines[i + 1:] if later and not later[0].isspace()), line)
            if any(error in tail for error in TRANSIENT_SERVER_ERRORS) == transient:
                found.append(tail.strip())
    return found
