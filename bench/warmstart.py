"""Warm starts against cold ones: what one flow run costs when the worker forks it from a preloaded
process (`tiktok-pipeline worker`, the pool's launcher) and when it starts the way Prefect's process
worker starts it by default (`python -m prefect.engine`, a fresh Python), side by side in one run.

On one `make up` stack of the scale-out shape (bench/throughput.py's `topology`: Prefect and the
ledger on PostgreSQL, Redis, two API servers, two workers), one connected sandbox account and a
compliant clip (each post is a remux), the script publishes `--rounds` pairs of posts one at a time,
alternating a cold post (the run's `command` job variable set to `<python> -m prefect.engine`) and a
warm one (the pool's default command, the launcher). For each post it measures:

- CPU: the workers' process trees (worker, preloaded process, flow-run process, ffmpeg), and
  Prefect's server processes, over the post (until its process has exited), less what the server
  spends idle over the same time (measured for 20 s before the first post);
- start latency: from the run's creation to Running (the worker's poll, the process start, the
  engine's imports and loading the flow);
- the run's duration (Running to its end) and the wall time from creation to the end.

It prints the medians of each kind and the warm/cold ratios. Usage:
python bench/warmstart.py [--rounds 5] [--redis-db 13]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.throughput import (  # noqa: E402
    connect_accounts,
    parse,
    server_cpu,
    submit,
    topology,
    upload_clip,
    wait_all,
    worker_cpu,
)


def one_post(stack: dict, account: str, source: str, cold: bool, idle_rate: float = 0.0) -> dict[str, float]:
    api = stack["apis"][0]
    job_variables = {"command": f"{sys.executable} -m prefect.engine"} if cold else None
    workers, server, began = worker_cpu(stack["state"]), server_cpu(stack["state"]), time.monotonic()
    run_id = submit(api, account, source, f"{'cold' if cold else 'warm'} {uuid.uuid4().hex[:8]}", job_variables)
    (run,) = wait_all(api, [run_id])
    if run["state"]["type"] != "COMPLETED":
        raise SystemExit(f"a {'cold' if cold else 'warm'} post did not complete: {run['state']}")
    time.sleep(3)  # the flow-run process exits (and is reaped) a moment after its run ends
    created, started, ended = parse(run["created"]), parse(run["start_time"]), parse(run["end_time"])
    server_busy = server_cpu(stack["state"]) - server - idle_rate * (time.monotonic() - began)
    return {"worker CPU s": worker_cpu(stack["state"]) - workers, "server CPU s": server_busy,
            "to Running s": (started - created).total_seconds(), "run s": (ended - started).total_seconds(),
            "created to end s": (ended - created).total_seconds()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis-db", type=int, default=13, help="Redis database to use (emptied before and after)")
    args = parser.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    work = Path(tempfile.mkdtemp(prefix="bench-warmstart-"))
    with topology(args.redis_db) as stack:
        # Prefect's server spends CPU when idle too (its services' loops): measured first, subtracted below.
        idle_before, idle_started = server_cpu(stack["state"]), time.monotonic()
        time.sleep(20)
        idle_rate = (server_cpu(stack["state"]) - idle_before) / (time.monotonic() - idle_started)
        (account,) = connect_accounts(stack, 1)
        source = upload_clip(stack, work)
        one_post(stack, account, source, cold=False)  # warm-up: the first post pays for first connections
        one_post(stack, account, source, cold=True)
        measured: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        for _ in range(args.rounds):
            for cold in (True, False):
                measured[cold].append(one_post(stack, account, source, cold, idle_rate))
    print(f"\n{args.rounds} posts each, one at a time, medians (load average now {os.getloadavg()[0]:.2f}; "
          f"Prefect's server idles at {idle_rate:.2f} CPU s/s, subtracted):")
    print(f"  {'':18} {'cold':>8} {'warm':>8} {'warm/cold':>10}")
    for key in measured[True][0]:
        cold = statistics.median(m[key] for m in measured[True])
        warm = statistics.median(m[key] for m in measured[False])
        print(f"  {key:18} {cold:8.2f} {warm:8.2f} {warm / cold:10.2f}")


if __name__ == "__main__":
    main()
