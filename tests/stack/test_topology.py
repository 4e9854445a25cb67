"""Prefect's scale-out setup, as docs/deploy.md (*Scaling out*) describes it and `make up` starts it:
two API servers started with `--no-services`, Prefect's background services in a process of their
own, Redis (prefect-redis) carrying events between them, the Prefect database and the ledger on
PostgreSQL, two workers of at most two flow runs each, the S3 listener.

A batch submitted through both API servers is published exactly once per request, the runs queue
instead of all starting at once, both workers take part, and TikTok's sandbox answers no 429."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from deployments import up
from tests.plugins.prefect_server import FINAL_STATES, PrefectApi, Stack
from tests.stack.groups import TOPOLOGY_GROUP

pytestmark = [TOPOLOGY_GROUP, pytest.mark.postgres]

SAMPLE = "s3://media/samples/sample.mp4"
BATCH = 8  # 4 per account: over the burst of init slots, so the rate limits are exercised too
SUBMITTED = re.compile(r"Worker '([^']+)' submitting flow run '([0-9a-f-]{36})'")


def _api_servers(stack: Stack) -> list[PrefectApi]:
    extra = [int(port) for port in stack.extra_up_env["UP_EXTRA_API_PORTS"].split(",")]
    return [stack.api, *(PrefectApi(f"http://{up.HOST}:{port}/api") for port in extra)]


def _interval(run: dict[str, Any]) -> tuple[datetime, datetime]:
    return (datetime.fromisoformat(run["start_time"].replace("Z", "+00:00")),
            datetime.fromisoformat(run["end_time"].replace("Z", "+00:00")))


def _most_at_once(runs: list[dict[str, Any]]) -> int:
    """The largest number of these runs that were running at the same moment."""
    edges = sorted([(start, 1) for start, _ in map(_interval, runs)] + [(end, -1) for _, end in map(_interval, runs)],
                   key=lambda edge: (edge[0], edge[1]))
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


@pytest.mark.timeout(900)
def test_a_batch_through_two_api_servers_and_two_bounded_workers_is_published_once_each(
    scaled_stack: Stack, request: pytest.FixtureRequest
) -> None:
    stack = scaled_stack
    output = stack.output
    assert "databases: Prefect server postgresql+asyncpg://" in output and ", ledger postgresql+psycopg://" in output
    assert "prefect-services: started" in output and "worker-2: started" in output, output
    servers = _api_servers(stack)
    request.addfinalizer(servers[1].close)
    assert len(servers) == 2 and all(httpx.get(f"{api.api_url}/health", timeout=10).status_code == 200 for api in servers)
    # The scheduler runs in the services process only (the API servers run none): it scheduled anyway.
    assert all(up.upcoming_runs(stack.api_url).values())

    tag = uuid.uuid4().hex[:8]
    runs = []
    for index in range(BATCH):
        api = servers[index % 2]  # half the batch through each API server
        account = ("main", "private")[index % 2]
        response = api.create_run("publish-video/publish-video", {"request": {
            "source": SAMPLE, "accounts": [account], "privacy_level": "SELF_ONLY", "caption": f"batch {tag} {index}"}})
        assert response.status_code == 201, response.text
        runs.append(response.json()["id"])
    deadline = time.monotonic() + 600
    while True:
        done = [servers[1].flow_run(run) for run in runs]  # read back through the other server
        if all(run["state"]["type"] in FINAL_STATES for run in done):
            break
        assert time.monotonic() < deadline, [run["state"]["type"] for run in done]
        time.sleep(2)
    assert [run["state"]["type"] for run in done] == ["COMPLETED"] * BATCH, [run["state"] for run in done]

    # Exactly once: one TikTok post per request, every byte received, none over TikTok's limits.
    posts = [p for p in stack.sandbox_posts() if str((p.get("post_info") or {}).get("title", "")).startswith(f"batch {tag} ")]
    titles = sorted(p["post_info"]["title"] for p in posts)
    assert titles == sorted(f"batch {tag} {index}" for index in range(BATCH)), titles
    assert all(p["status"] == "PUBLISH_COMPLETE" and p["received_bytes"] == p["video_size"] for p in posts), posts
    state = httpx.get(f"{stack.sandbox_url}/_sandbox/state", timeout=10).json()
    assert state["rate_limited"] == {}, state["rate_limited"]
    ledger = [post for post in json.loads(stack.cli("posts", "list", "--json").stdout)
              if post["caption"].startswith(f"batch {tag} ")]
    assert sorted(post["state"] for post in ledger) == ["published"] * BATCH, ledger

    # Bounded: never more runs at once than 2 workers x 2; and both workers took part.
    assert _most_at_once(done) <= 4, [_interval(run) for run in done]
    submitted: dict[str, str] = {}
    for name in ("worker", "worker-2"):
        for worker, run_id in SUBMITTED.findall((stack.state_dir / f"{name}.log").read_text(errors="replace")):
            submitted[run_id] = worker
    by_worker = {worker: sum(1 for run in runs if submitted.get(run) == worker)
                 for worker in (up.WORKER_NAME, f"{up.WORKER_NAME}-2")}
    assert sum(by_worker.values()) == BATCH and all(by_worker.values()), by_worker
    print(f"measured: {BATCH} runs, at most {_most_at_once(done)} at once, by worker {by_worker}")
