"""Rate-limit benchmark: what taking a free place for one TikTok call costs, Prefect's global
concurrency limit against the ledger's sliding window, side by side in one run.

  prefect  `prefect.concurrency.sync.rate_limit(name, strict=True)` on a decaying global concurrency
           limit shaped as earlier versions shaped video/init (a burst of 3, then 3 more per minute),
           against a real `prefect server start` (SQLite, its default) on loopback, as a worker calls it.
  ledger   `Ledger.reserve_rate_slot` (publishing.ratelimits.LedgerRateLimiter's one call): the
           row-locked window of one (account, endpoint), on SQLite and on PostgreSQL when reachable.

Every acquisition is of a free place (the window is emptied or the limit is large enough), so what is
timed is the bookkeeping, not a wait. Each kind runs `--calls` acquisitions after 5 warm-up calls;
the medians, 90th percentiles and the ratio prefect/ledger are printed. Goal: the ledger's median in
milliseconds (under 10 ms). Then the throughput half, computed from each shape (not timed): how many video/init places one
account gets per minute over `--minutes` of simulated time when work is always waiting, against
TikTok's 6. bench/throughput.py measures it for real, through the topology.

Usage: python bench/ratelimit.py [--calls 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL_MEDIAN_MS = 10.0


def timed(acquire: Callable[[], None], calls: int) -> list[float]:
    for _ in range(5):
        acquire()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        acquire()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def describe(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"  {name:<22} median {statistics.median(samples):8.2f} ms   p90 {p90:8.2f} ms   ({len(samples)} calls)"


def prefect_samples(calls: int) -> list[float]:
    """Acquisitions through a real Prefect server, started and stopped here."""
    from deployments import up
    from sandbox import free_port

    home = Path(tempfile.mkdtemp(prefix="bench-ratelimit-prefect-"))
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    process = up.start([str(up.BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                       env, home / "server.pid", home / "server.log", ROOT)
    try:
        up.wait_until(lambda: up.answers(f"{api}/health"), process, "prefect server", home / "server.log")
        from prefect.client.orchestration import get_client
        from prefect.concurrency.sync import rate_limit
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api}):
            with get_client(sync_client=True) as client:
                # Large enough that every acquisition finds a free slot: the call is what is timed.
                client.upsert_global_concurrency_limit_by_name("bench:free", 10_000, slot_decay_per_second=100.0)
            return timed(lambda: rate_limit("bench:free", strict=True), calls)
    finally:
        up.stop(home / "server.pid")


def ledger_samples(url: str, calls: int) -> list[float]:
    from ledger import Ledger

    with Ledger(url) as ledger:
        window = timedelta(seconds=62)
        return timed(lambda: ledger.reserve_rate_slot("bench-account", "video_init", 10_000, window) and None, calls)


def places_per_minute(minutes: int) -> dict[str, float]:
    """Video/init places one account gets per minute with work always waiting (simulated time)."""
    from publishing.ratelimits import RATE_MARGIN, TIKTOK_WINDOW

    results = {}
    # Earlier versions: a decaying limit of 3 slots, 3 more per minute (0.05/s), taken as soon as free.
    limit, decay = 3, 3 / 60
    occupied, clock, taken = 0.0, 0.0, 0
    while clock < minutes * 60:
        occupied = max(0.0, occupied - decay * 1.0)
        while occupied + 1 <= limit:
            occupied += 1
            taken += 1
        clock += 1.0
    results["prefect (burst 3 + 3/min)"] = taken / minutes
    # The ledger: a sliding window of 6 over TikTok's 60 s + the margin, a call whenever it has room.
    span = (TIKTOK_WINDOW + RATE_MARGIN).total_seconds()
    results[f"ledger (6 per {span:g} s)"] = _count_window(minutes, span) / minutes
    return results


def _count_window(minutes: int, span: float) -> int:
    """Calls a sliding window of 6 per `span` lets through in `minutes`, a call as soon as one fits."""
    sent: list[float] = []
    total = 0
    clock = 0.0
    while clock < minutes * 60:
        sent = [at for at in sent if at > clock - span]
        while len(sent) < 6:
            sent.append(clock)
            total += 1
        clock += 0.1
    return total


def postgres_url() -> str | None:
    """A throwaway database on the machine's PostgreSQL, or None when there is none."""
    try:
        import psycopg

        name = f"bench_ratelimit_{os.getpid()}"
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres connect_timeout=3", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    except Exception:  # noqa: BLE001 - no PostgreSQL here: the SQLite figure stands alone
        return None


def drop_postgres(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres connect_timeout=3", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--minutes", type=int, default=60, help="simulated minutes for the throughput half")
    args = parser.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} cores; acquiring a free place, {args.calls} calls each:")
    work = Path(tempfile.mkdtemp(prefix="bench-ratelimit-"))
    results = {"prefect server (SQLite)": prefect_samples(args.calls),
               "ledger on SQLite": ledger_samples(f"sqlite:///{work / 'ledger.sqlite3'}", args.calls)}
    if url := postgres_url():
        try:
            results["ledger on PostgreSQL"] = ledger_samples(url, args.calls)
        finally:
            drop_postgres(url)
    for name, samples in results.items():
        print(describe(name, samples))
    prefect_median = statistics.median(results["prefect server (SQLite)"])
    for name in (n for n in results if n.startswith("ledger")):
        median = statistics.median(results[name])
        verdict = "met" if median < GOAL_MEDIAN_MS else "MISSED"
        print(f"  prefect / {name}: {prefect_median / median:.1f}x; {name} median {median:.2f} ms "
              f"(goal < {GOAL_MEDIAN_MS:g} ms: {verdict})")
    print(f"video/init places per minute for one account with work always waiting, computed from each shape "
          f"over {args.minutes} simulated minutes (not timed; TikTok allows 6):")
    for name, rate in places_per_minute(args.minutes).items():
        print(f"  {name:<28} {rate:.2f}")
    subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
