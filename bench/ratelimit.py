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
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._postgres import reachable, throwaway_database  # noqa: E402

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
    from publishing.ratelimits import RATE_MARGIN, TIKTOK_WINDOW

    with Ledger(url) as ledger:
        def acquire() -> None:
            ledger.reserve_rate_slot("bench-account", "video_init", 10_000, TIKTOK_WINDOW + RATE_MARGIN)

        return timed(acquire, calls)


def places_per_minute(minutes: int, work: Path) -> dict[str, float]:
    """Video/init places one account gets per minute with work always waiting (simulated time)."""
    from ledger import Ledger
    from publishing.ratelimits import RATE_MARGIN, TIKTOK_WINDOW, LedgerRateLimiter
    from tiktok import TIKTOK_RATE_LIMITS, Endpoint

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
    # Now: the deployed limiter itself, over a SQLite ledger whose clock its sleeps move.
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    end = now[0] + timedelta(minutes=minutes)

    def sleep(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)

    with Ledger(f"sqlite:///{work / 'simulated.sqlite3'}", clock=lambda: now[0]) as ledger:
        limiter = LedgerRateLimiter(ledger, sleep=sleep)
        sent = 0
        while True:
            limiter("bench-account", Endpoint.VIDEO_INIT)
            if now[0] >= end:
                break
            sent += 1
    window = (TIKTOK_WINDOW + RATE_MARGIN).total_seconds()
    results[f"ledger ({TIKTOK_RATE_LIMITS[Endpoint.VIDEO_INIT]} per {window:g} s)"] = sent / minutes
    return results


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
    if reachable():
        with throwaway_database("bench_ratelimit") as name:
            results["ledger on PostgreSQL"] = ledger_samples(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
                                                             args.calls)
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
    for name, rate in places_per_minute(args.minutes, work).items():
        print(f"  {name:<28} {rate:.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
