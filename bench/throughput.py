"""Throughput benchmark: N posts over M accounts through Prefect's scale-out topology, against the
least time TikTok's limits and the measured work of one post allow.

For each configuration (default: 24 posts over 4 accounts, then 60 over 10) the script:

1. starts the topology docs/deploy.md (*Scaling out*) describes with `make up`, in a temporary state
   directory on free ports: two API servers (`--no-services`), Prefect's services in a process of their
   own, Redis (db `--redis-db`), the Prefect database and the ledger on the machine's PostgreSQL (fresh
   databases), two process workers with `make up`'s default limit (two flow runs per core each);
2. gives the sandbox M public creators and connects them as accounts `bench-0` ... through the real
   OAuth flow, and uploads one compliant clip (1080x1920 H.264/AAC, so each post remuxes: the work
   left is what the topology and TikTok's limits cost);
3. publishes one post alone and takes its flow run's duration (start to end) as the work of one post, W;
4. submits the N requests at once, alternately through both API servers, accounts round-robin, and
   waits until every run is final, sampling the resident memory of each worker's process tree;
5. prints the wall time (first submission to last run's end) and the theoretical minimum:
     max(rate bound, work bound), where
       rate bound = floor((k - 1) / 6) x 62 s + W   (k posts per account, 6 inits per 62 s window)
       work bound = ceil(N / C) x W                 (C = flow runs the workers may run at once)
   their ratio (goal <= 1.3), the 429s the sandbox answered (goal 0), duplicates (posts TikTok got
   per request beyond one; goal 0), posts published, and each worker's peak memory.

The minimum assumes C posts in parallel each take W, as the one alone did; on a 2-core machine C
runs at once contend for the CPU, which is part of what the ratio measures.

The default configurations are 24x4, 60x10 and a burst of 100 over 10 accounts (which must queue,
at most C at once, and spread over both workers: the script prints both).

Usage: python bench/throughput.py [--config 24x4 --config 60x10 --config 100x10] [--redis-db 12]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from bench._postgres import throwaway_database  # noqa: E402
from deployments import up  # noqa: E402
from publishing.ratelimits import RATE_MARGIN, TIKTOK_WINDOW  # noqa: E402
from sandbox import free_port  # noqa: E402
from tiktok import TIKTOK_RATE_LIMITS, Endpoint  # noqa: E402

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
SUBMITTED = re.compile(r"Worker '([^']+)' submitting flow run '([0-9a-f-]{36})'")
WARM = re.compile(r"warm start: flow run ([0-9a-f-]{36}) started in pid")
INIT_WINDOW_S = (TIKTOK_WINDOW + RATE_MARGIN).total_seconds()  # what the ledger's limiter holds to
INITS_PER_WINDOW = TIKTOK_RATE_LIMITS[Endpoint.VIDEO_INIT]
GOAL_RATIO = 1.3


@contextlib.contextmanager
def topology(redis_db: int) -> Iterator[dict[str, Any]]:
    """`make up` of the scale-out shape; yields the stack's environment, ports and state directory."""
    import redis

    redis_url = f"redis://127.0.0.1:6379/{redis_db}"
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    state = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    ports: list[int] = []
    while len(ports) < 6:  # free_port() may hand out a port twice: make up refuses equal ports
        if (port := free_port()) not in ports:
            ports.append(port)
    with throwaway_database("bench_prefect") as prefect_db, throwaway_database("bench_ledger") as ledger_db:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("TIKTOK_PIPELINE_", "PREFECT_", "UP_", "AWS_"))}
        env.update({
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "UP_STATE_DIR": str(state), "PREFECT_HOME": str(state / "prefect-home"),
            "UP_PREFECT_PORT": str(ports[0]), "UP_SANDBOX_PORT": str(ports[1]), "UP_MOTO_PORT": str(ports[2]),
            "UP_REDIRECT_PORT": str(ports[3]), "UP_EXTRA_API_PORTS": str(ports[4]), "UP_WEBHOOKS_PORT": str(ports[5]),
            "UP_REDIS_URL": redis_url, "UP_WORKERS": "2",
            "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{prefect_db}",
            "TIKTOK_PIPELINE_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{ledger_db}",
        })
        try:
            done = subprocess.run(["make", "up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                                  stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                raise SystemExit(f"`make up` failed:\n{done.stdout}\n{done.stderr}")
            from dotenv import dotenv_values

            stack_env = {**env, **{k: v or "" for k, v in dotenv_values(state / "env").items()}}
            yield {"env": stack_env, "state": state, "apis": [f"http://127.0.0.1:{ports[0]}/api",
                                                            f"http://127.0.0.1:{ports[4]}/api"],
                   "sandbox": f"http://127.0.0.1:{ports[1]}", "moto": f"http://127.0.0.1:{ports[2]}",
                   "output": done.stdout}
        finally:
            subprocess.run(["make", "down"], cwd=ROOT, env=env, capture_output=True, timeout=300)
            shutil.rmtree(state, ignore_errors=True)
            client.flushdb()
            client.close()


def connect_accounts(stack: dict[str, Any], count: int) -> list[str]:
    """M public creators in the sandbox (its state reset), connected through OAuth as bench-0, ..."""
    from sandbox import SandboxConfig, SandboxCreator

    creators = [SandboxCreator(open_id=f"sbx-open-id-bench-{i}", username=f"bench_{i}", nickname=f"Bench {i}",
                               max_video_post_duration_sec=600) for i in range(count)]
    # The running config with these creators: make up's webhook URL (posts settle by TikTok's webhook)
    # and verified prefix stay. A fresh SandboxConfig would drop them, and each post would then wait for
    # the 60 s safety-net poll, inflating the work of one post that the minimum is made of.
    running = httpx.get(f"{stack['sandbox']}/_sandbox/state", timeout=30).json()["config"]
    config = SandboxConfig.model_validate({**running, "creators": [c.model_dump(mode="json") for c in creators]})
    assert config.webhook_url, "the stack's sandbox has no webhook URL: posts would settle by polling only"
    httpx.post(f"{stack['sandbox']}/_sandbox/reset", json={"config": config.model_dump(mode="json")},
               timeout=30).raise_for_status()
    names = []
    for index, creator in enumerate(creators):
        name = f"bench-{index}"
        code = ("from deployments.up.seed import open_in_sandbox; from ledger import Ledger; "
                "from publishing.connect import connect_account; from tiktok_pipeline.settings import load_settings; "
                "s = load_settings(); b = Ledger.from_settings(s); "
                f"connect_account(s, b, {name!r}, open_in_sandbox, extra_params={{'sandbox_user': {creator.username!r}}}, "
                "timeout=30.0)")
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=stack["env"], check=True, capture_output=True,
                       timeout=120)
        names.append(name)
    # The publish form (the deployment's parameter schema, which the server enforces) offers the
    # connected accounts: `setup` writes the new ones into it, as after any `accounts connect`.
    subprocess.run([str(up.BIN / "tiktok-pipeline"), "setup"], cwd=ROOT, env=stack["env"], check=True,
                   capture_output=True, timeout=300)
    return names


def upload_clip(stack: dict[str, Any], work: Path) -> str:
    import boto3

    clip = work / "compliant.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=s=1080x1920:r=30:d=5",
                    "-f", "lavfi", "-i", "sine=f=440:d=5:sample_rate=48000,aformat=channel_layouts=stereo",
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                    "-movflags", "+faststart", str(clip)], check=True)
    s3 = boto3.client("s3", endpoint_url=stack["moto"], region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    s3.upload_file(str(clip), "media", "bench/compliant.mp4")
    return "s3://media/bench/compliant.mp4"


def submit(api: str, account: str, source: str, caption: str, job_variables: dict[str, Any] | None = None) -> str:
    deployment = httpx.get(f"{api}/deployments/name/publish-video/publish-video", timeout=30).json()["id"]
    body: dict[str, Any] = {"parameters": {
        "request": {"source": source, "accounts": [account], "privacy_level": "SELF_ONLY", "caption": caption}}}
    if job_variables:
        body["job_variables"] = job_variables
    response = httpx.post(f"{api}/deployments/{deployment}/create_flow_run", timeout=60, json=body)
    if response.status_code != 201:
        raise SystemExit(f"create_flow_run answered {response.status_code}: {response.text}")
    return response.json()["id"]


def wait_all(api: str, runs: list[str], timeout: float = 3600) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = httpx.post(f"{api}/flow_runs/filter", timeout=60,
                           json={"flow_runs": {"id": {"any_": runs}}, "limit": len(runs)}).json()
        if len(found) == len(runs) and all(run["state"]["type"] in FINAL for run in found):
            return found
        if time.monotonic() > deadline:
            raise SystemExit(f"runs not final after {timeout:.0f} s")
        time.sleep(2)


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


class MemorySampler:
    """Peak memory (proportional set size) of each worker's process tree (the worker, its preloaded
    process and its flow-run processes)."""

    def __init__(self, state: Path, workers: list[str]) -> None:
        self.state, self.workers = state, workers
        self.peak = {name: 0 for name in workers}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for name in self.workers:
                leader = up.running(self.state / f"{name}.pid")
                if leader is None:
                    continue
                total = 0
                with contextlib.suppress(psutil.Error):
                    for process in (leader, *leader.children(recursive=True)):
                        with contextlib.suppress(psutil.Error):
                            # PSS: pages a forked flow run shares with the preloaded process count once.
                            total += process.memory_full_info().pss
                self.peak[name] = max(self.peak[name], total)


def tree_cpu(state: Path, names: tuple[str, ...]) -> float:
    """CPU seconds of these `make up` processes, their descendants and what those have reaped, so far."""
    total = 0.0
    for name in names:
        leader = up.running(state / f"{name}.pid")
        if leader is None:
            continue
        with contextlib.suppress(psutil.Error):
            for process in (leader, *leader.children(recursive=True)):
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    total += times.user + times.system + times.children_user + times.children_system
    return total


#: The `make up` processes (pid file names) of the two workers, Prefect's API servers and its services.
WORKERS = ("worker", "worker-2")
API_SERVERS = ("prefect", "prefect-2")
SERVICES = ("prefect-services",)


def worker_cpu(state: Path) -> float:
    """The workers' process trees: the worker, its preloaded process, flow runs and their ffmpeg."""
    return tree_cpu(state, WORKERS)


def server_cpu(state: Path) -> float:
    """Prefect's server processes: both API servers and the services."""
    return tree_cpu(state, API_SERVERS + SERVICES)


#: Where the machine's CPU goes during a burst: the `make up` services by pid file, then the machine's
#: own services by process name.
CPU_GROUPS: dict[str, tuple[str, ...]] = {
    "workers (flow runs, ffmpeg)": WORKERS,
    "Prefect API servers": API_SERVERS,
    "Prefect services": SERVICES,
    "TikTok sandbox": ("sandbox",),
    "S3 (moto)": ("moto",),
    "webhook receiver, S3 listener": ("webhooks", "listener"),
}
SYSTEM_GROUPS = {"PostgreSQL": "postgres", "Redis": "redis-server"}


def cpu_by_group(state: Path) -> dict[str, float]:
    """CPU seconds so far: the machine's busy time, each group of CPU_GROUPS (trees) and SYSTEM_GROUPS."""
    times = psutil.cpu_times()
    busy = sum(getattr(times, field, 0.0) for field in ("user", "nice", "system", "irq", "softirq", "steal"))
    found = {"machine": busy, **{group: tree_cpu(state, names) for group, names in CPU_GROUPS.items()}}
    for group, process_name in SYSTEM_GROUPS.items():
        total = 0.0
        for process in psutil.process_iter(["name", "cpu_times"]):
            if process.info["name"] == process_name and process.info["cpu_times"] is not None:
                total += process.info["cpu_times"].user + process.info["cpu_times"].system
        found[group] = total
    return found


def most_at_once(runs: list[dict[str, Any]]) -> int:
    """The largest number of these runs Running at the same moment."""
    edges = sorted([(parse(r["start_time"]), 1) for r in runs] + [(parse(r["end_time"]), -1) for r in runs])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def run_config(posts: int, accounts: int, redis_db: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-throughput-media-"))
    with topology(redis_db) as stack:
        names = connect_accounts(stack, accounts)
        source = upload_clip(stack, work)
        apis = stack["apis"]
        limit = up.default_worker_limit()
        concurrency = 2 * limit
        # The work of one post, alone on the stack, and the CPU its worker's process tree spent on it
        # (flow-run processes and their ffmpeg are reaped by the worker: their CPU time accrues to it).
        before, server_before = worker_cpu(stack["state"]), server_cpu(stack["state"])
        (alone,) = wait_all(apis[0], [submit(apis[0], names[0], source, f"alone {uuid.uuid4().hex[:6]}")])
        time.sleep(3)  # the flow-run process exits (and is reaped) just after its run ends
        cpu_one, server_one = worker_cpu(stack["state"]) - before, server_cpu(stack["state"]) - server_before
        if alone["state"]["type"] != "COMPLETED":
            raise SystemExit(f"the single post did not complete: {alone['state']}")
        one = (parse(alone["end_time"]) - parse(alone["start_time"])).total_seconds()

        tag = uuid.uuid4().hex[:8]
        captions = [f"bench {tag} {i}" for i in range(posts)]
        with MemorySampler(stack["state"], list(WORKERS)) as memory:
            started, cpu_before = datetime.now(UTC), cpu_by_group(stack["state"])
            runs = [submit(apis[i % 2], names[i % accounts], source, caption) for i, caption in enumerate(captions)]
            done = wait_all(apis[1], runs)
            cpu_spent = {group: spent - cpu_before[group] for group, spent in cpu_by_group(stack["state"]).items()}
            cpu_window = (datetime.now(UTC) - started).total_seconds()
        ended = max(parse(run["end_time"]) for run in done)
        wall = (ended - started).total_seconds()

        per_account = math.ceil(posts / accounts)
        rate_bound = (per_account - 1) // INITS_PER_WINDOW * INIT_WINDOW_S + one
        work_bound = math.ceil(posts / concurrency) * one
        minimum = max(rate_bound, work_bound)
        state = httpx.get(f"{stack['sandbox']}/_sandbox/state", timeout=30).json()
        received = httpx.get(f"{stack['sandbox']}/_sandbox/posts", timeout=30).json()
        per_caption: dict[str, int] = {}
        for post in received:
            title = str((post.get("post_info") or {}).get("title", ""))
            if title.startswith(f"bench {tag} "):
                per_caption[title] = per_caption.get(title, 0) + 1
        published = sum(1 for post in received if str((post.get("post_info") or {}).get("title", "")).startswith(
            f"bench {tag} ") and post["status"] == "PUBLISH_COMPLETE")
        duplicates = sum(count - 1 for count in per_caption.values())
        states = [run["state"]["type"] for run in done]
        ratio = wall / minimum
        print(f"\n{posts} posts over {accounts} accounts ({per_account} each), 2 API servers, 2 workers x {limit} runs, "
              f"load average {os.getloadavg()[0]:.2f}:")
        print(f"  one post alone (flow run duration): {one:.1f} s")
        print(f"  wall time: {wall:.1f} s; theoretical minimum {minimum:.1f} s "
              f"(rate bound {rate_bound:.1f} s, work bound {work_bound:.1f} s)")
        print(f"  ratio wall/minimum: {ratio:.2f} (goal <= {GOAL_RATIO}: {'met' if ratio <= GOAL_RATIO else 'MISSED'})")
        print(f"  runs: {states.count('COMPLETED')} completed of {posts}; TikTok posts published: {published}; "
              f"requests TikTok never got: {posts - len(per_caption)}")
        others = [run for run in done if run["state"]["type"] != "COMPLETED"]
        for run in others:
            print(f"  NOT COMPLETED: flow run {run['id']} ({run['name']}): {run['state']['type']} "
                  f"{run['state'].get('name')!r}: {run['state'].get('message')}")
        if others:  # the stack's logs go with its state directory: kept for whoever looks into it
            kept = Path(tempfile.mkdtemp(prefix="bench-throughput-logs-"))
            for log in stack["state"].glob("*.log"):
                shutil.copy2(log, kept / log.name)
            print(f"  the stack's logs are kept in {kept}")
        print(f"  429s answered by the sandbox: {sum(state['rate_limited'].values())} {state['rate_limited']}; "
              f"duplicates: {duplicates}")
        durations = sorted((parse(r["end_time"]) - parse(r["start_time"])).total_seconds() for r in done)
        queued = sorted((parse(r["start_time"]) - parse(r["created"])).total_seconds() for r in done)
        first_start = min(parse(r["start_time"]) for r in done)
        cores = os.cpu_count() or 1
        print(f"  CPU of one post: {cpu_one:.1f} s in the worker's process tree (flow run, ffmpeg), {server_one:.1f} s in "
              f"Prefect's server (its background loops over that time included); {posts} posts on {cores} cores need at least "
              f"{posts * (cpu_one + server_one) / cores:.1f} s of CPU time (not part of the minimum above)")
        machine = cpu_spent.pop("machine")
        # The sampling reads each process tree through its pid file: a group that read nothing is missing, not idle.
        print(f"  CPU during the burst (first submission until every run was seen final, {cpu_window:.0f} s): machine busy "
              f"{machine:.1f} s of {cores * cpu_window:.0f} s ({machine / posts:.2f} s per post): "
              + ", ".join(f"{group} {spent:.1f} s" if spent > 0 else f"{group} not read" for group, spent in cpu_spent.items())
              + f", the rest {machine - sum(cpu_spent.values()):.1f} s")
        print(f"  where the time went: first run Running {(first_start - started).total_seconds():.1f} s after the "
              f"first submission; run duration median {durations[len(durations) // 2]:.1f} s (max {durations[-1]:.1f} s, "
              f"alone {one:.1f} s); queued before Running median {queued[len(queued) // 2]:.1f} s (max {queued[-1]:.1f} s)")
        # Each worker's log names the runs it submitted and the runs its preloaded process forked (the
        # ones it ran, so a run both logged as submitting is counted for the one that ran it.
        by_worker: dict[str, int] = {}
        submitted: dict[str, int] = {}
        warm = 0
        for name in WORKERS:
            log = stack["state"] / f"{name}.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            ran = set(WARM.findall(text)) & set(runs)
            by_worker[name] = len(ran)
            for run_id in {run_id for _, run_id in SUBMITTED.findall(text)} & set(runs):
                submitted[run_id] = submitted.get(run_id, 0) + 1
            warm += len(ran)
        contested = sum(1 for count in submitted.values() if count > 1)
        print(f"  concurrency: at most {most_at_once(done)} runs at once (limit {concurrency}); runs per worker "
              f"{by_worker} ({contested} logged as submitted by both workers); started warm (forked from the "
              f"preloaded process): {warm} of {posts}")
        print("  peak memory (PSS) per worker (worker, preloaded process, flow runs): "
              + ", ".join(f"{name} {peak / 2**20:.0f} MiB" for name, peak in memory.peak.items()))
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", help="POSTSxACCOUNTS, e.g. 24x4 (repeatable)")
    parser.add_argument("--redis-db", type=int, default=12, help="Redis database to use (emptied before and after)")
    args = parser.parse_args()
    configs = [tuple(int(part) for part in config.split("x")) for config in (args.config or ["24x4", "60x10", "100x10"])]
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores")
    for posts, accounts in configs:
        run_config(posts, accounts, args.redis_db)


if __name__ == "__main__":
    main()
