"""Upload benchmark: `TikTokClient.upload_video` against a raw upload of the same bytes, on one sandbox, in one run.

The script starts one sandbox (`sandbox.serve`; it writes uploads to disk in its temp directory),
generates one file of random bytes (default 512 MiB) in a temp directory on disk, and uploads that same
file to that same sandbox again and again, alternating, once per chunk size (default: every size class
TikTok allows, 5 MiB (the smallest), 16 MiB (the settings default) and 64 MB (the largest)):

  client  `TikTokClient.upload_video`: httpx, each chunk streamed from disk in blocks of
          256 KiB (bounded memory),
          every answer's status and Content-Range checked, progress reported, ready to retry and resume.
  raw     the least protocol work a legal upload needs. One PUT of the whole file is not legal (TikTok:
          chunks of 5 MiB..64 MB, final chunk up to 128 MB, so 1 GiB takes at least 9 PUTs), so "raw"
          is the same chunk plan written by hand on one keep-alive socket: a request head of four
          header lines, then the chunk straight from the page cache with socket.sendfile() (no copy
          through Python), then the status line. No HTTP library, retries, progress or range checks:
          the ceiling of what any Python uploader can do against this server.

Both run in a child process of their own, so neither shares a GIL with the sandbox's server thread
(and the sandbox's memory is not counted), each on a fresh sandbox state, fresh token and fresh
video/init, and each times only its PUTs. Runs alternate for `--rounds` rounds, and which mode goes
first alternates too (client-raw, raw-client, ...), so neither always meets the disk write-back the
other left behind. The headline ratio per chunk size is median(client MiB/s) / median(raw MiB/s);
per-round ratios are printed too, and so are each mode's CPU time per MiB (its child's user+system
time during the PUTs: what it costs the machine, independent of the load) and the median and 90th
percentile of its per-chunk time (the client's from its own progress callback, the raw one's around
each PUT). The client's peak RSS growth is its resident set, sampled every 2 ms during the upload
(and getrusage's ru_maxrss), minus the resident set just before the first PUT; the worst client run is
reported.

Goals, at every chunk size: client/raw throughput >= 0.8, client RSS growth <= 1.5x chunk size. A
missed goal prints MISSED; the exit status is 0 either way (non-zero only if an upload fails).

Usage: python bench/upload.py [--size-mib 512] [--chunk-mib 5,16,64MB] [--rounds 7]
  --chunk-mib takes a comma-separated list; a bare number is MiB, "64MB" is decimal megabytes
  (64 MiB is over TikTok's 64 MB limit), "min" and "max" are TikTok's bounds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import psutil  # noqa: E402

from sandbox import SandboxConfig, SandboxHandle, serve  # noqa: E402
from tiktok import (  # noqa: E402
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    ChunkPlan,
    InvalidInput,
    PostInfo,
    PrivacyLevel,
    SourceInfo,
    TikTokClient,
    plan_chunks,
)
from tiktok_pipeline.settings import Settings  # noqa: E402

MIB = 1024 * 1024
GOAL_THROUGHPUT_RATIO = 0.8
GOAL_RSS_CHUNKS = 1.5
RSS_SAMPLE_INTERVAL = 0.002
DEFAULT_CHUNK_SIZE: int = Settings.model_fields["chunk_size"].default
DEFAULT_CHUNK_SIZES = "5,16,64MB"
MODES = ("client", "raw")


# --- child process: one upload, measured ----------------------------------------------------------
class PeakRss:
    """Samples this process's resident set in a background thread."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_INTERVAL):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def read_answer(reader: BinaryIO) -> int:
    """Status code of one HTTP/1.1 answer, its headers and body consumed (the body is read by length)."""
    status = int(reader.readline().split()[1])
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    reader.read(length)
    return status


def raw_upload(upload_url: str, file: Path, plan: ChunkPlan, chunk_done: Callable[[], None]) -> None:
    """The chunk plan by hand on one keep-alive socket: request head, then sendfile() of the chunk."""
    url = urlsplit(upload_url)
    target = f"{url.path}?{url.query}"
    with socket.create_connection((url.hostname, url.port)) as sock, file.open("rb") as source:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        for chunk in plan.chunks:
            head = (f"PUT {target} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: video/mp4\r\n"
                    f"Content-Length: {chunk.length}\r\nContent-Range: {chunk.content_range(plan.video_size)}\r\n\r\n")
            sock.sendall(head.encode("ascii"))
            sock.sendfile(source, chunk.first, chunk.length)
            status = read_answer(reader)
            if status not in (201, 206):
                raise SystemExit(f"raw PUT of chunk {chunk.index} answered HTTP {status}")
            chunk_done()


def run_child(mode: str, base_url: str, upload_url: str, file: Path, plan: ChunkPlan) -> None:
    """Upload once and print {"seconds", "cpu_seconds", "chunk_seconds", "rss_growth"} as JSON on stdout."""
    settings = Settings(_env_file=None, api_base_url=base_url)  # type: ignore[call-arg]
    # Everything is built and imported before the baseline, so only the upload itself counts.
    client = TikTokClient("upload-needs-no-token", settings, rate_limit=lambda account, endpoint: None)
    marks: list[float] = []  # perf_counter() when each chunk was confirmed

    def chunk_done(*_: int) -> None:
        marks.append(time.perf_counter())

    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with PeakRss() as rss:
        baseline = rss.peak
        cpu_before = os.times()
        started = time.perf_counter()
        if mode == "client":
            result = client.upload_video(file, upload_url, plan, on_progress=chunk_done)
            if result.total_bytes != plan.video_size or result.retries:
                raise SystemExit(f"client upload did not go cleanly: {result}")
        else:
            raw_upload(upload_url, file, plan, chunk_done)
        seconds = time.perf_counter() - started
        cpu_after = os.times()
    maxrss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - maxrss_before
    client.close()
    # Both children run the same 2 ms RSS sampler thread, so its CPU time is in both figures.
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    chunk_seconds = [b - a for a, b in zip([started, *marks], marks, strict=False)]
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "chunk_seconds": chunk_seconds,
                      "rss_growth": max(rss.peak - baseline, maxrss_growth)}))


# --- parent process: sandbox, file, alternation, report --------------------------------------------
@dataclass(frozen=True)
class Run:
    mode: str
    seconds: float
    cpu_seconds: float
    chunk_seconds: list[float]
    rss_growth: int


def generate(file: Path, size: int) -> None:
    with file.open("wb") as target:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, 8 * MIB))
            target.write(block)
            remaining -= len(block)


def measure(sandbox: SandboxHandle, mode: str, file: Path, plan: ChunkPlan) -> Run:
    """One upload by `mode` in a child process, on a fresh sandbox state and a fresh video/init."""
    sandbox.reset()  # also deletes the previous run's upload from the sandbox's disk
    token = sandbox.issue_token()["access_token"]
    settings = Settings(_env_file=None, api_base_url=sandbox.base_url)  # type: ignore[call-arg]
    # A fresh token on a reset sandbox per run: TikTok's 6 inits/min per token is never reached.
    with TikTokClient(token, settings, rate_limit=lambda account, endpoint: None) as tiktok:
        init = tiktok.init_video(PostInfo(privacy_level=PrivacyLevel.SELF_ONLY), SourceInfo.file_upload(plan))
    command = [sys.executable, __file__, "--child", mode, "--base-url", sandbox.base_url,
               "--upload-url", init.upload_url or "", "--file", str(file), "--plan", plan.model_dump_json()]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} upload failed:\n{done.stderr or done.stdout}")
    received = sandbox.posts()[0]["received_bytes"]
    if received != plan.video_size:
        raise SystemExit(f"{mode} upload: the sandbox holds {received} of {plan.video_size} bytes")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return Run(mode, figures["seconds"], figures["cpu_seconds"], figures["chunk_seconds"], figures["rss_growth"])


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


def parse_chunk_sizes(text: str) -> list[int]:
    """"5,16,64MB" -> bytes: a bare number is MiB, a number ending in MB is decimal megabytes, min/max TikTok's bounds."""
    sizes = []
    for item in (part.strip().lower() for part in text.split(",")):
        if item in ("min", "max"):
            sizes.append(MIN_CHUNK_SIZE if item == "min" else MAX_CHUNK_SIZE)
        elif item.endswith("mb"):
            sizes.append(int(float(item[:-2]) * 1_000_000))
        else:
            sizes.append(int(float(item.removesuffix("mib")) * MIB))
    return sizes


@dataclass(frozen=True)
class Outcome:
    plan: ChunkPlan
    ratio: float
    rss_chunks: float


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def bench_one(sandbox: SandboxHandle, file: Path, plan: ChunkPlan, rounds: int) -> Outcome:
    size = plan.video_size
    print(f"\n--- chunks of {plan.chunk_size / MIB:g} MiB: {plan.total_chunk_count} PUTs "
          f"(last {plan.chunks[-1].length / MIB:.2f} MiB), {rounds} rounds, load average {load_average()}")
    print(f"{'run':>3}  {'mode':6}  {'seconds':>7}  {'MiB/s':>7}  {'CPU s':>5}  {'RSS growth MiB':>14}")
    runs: list[Run] = []
    for round_number in range(1, rounds + 1):
        order = MODES if round_number % 2 else MODES[::-1]
        for mode in order:
            run = measure(sandbox, mode, file, plan)
            runs.append(run)
            print(f"{round_number:>3}  {mode:6}  {run.seconds:7.2f}  {size / MIB / run.seconds:7.1f}  "
                  f"{run.cpu_seconds:5.2f}  {run.rss_growth / MIB:14.1f}")

    by_mode = {mode: [r for r in runs if r.mode == mode] for mode in MODES}
    rate = {mode: statistics.median(size / MIB / r.seconds for r in by_mode[mode]) for mode in MODES}
    ratio = rate["client"] / rate["raw"]
    client_rss = max(r.rss_growth for r in by_mode["client"])
    raw_rss = max(r.rss_growth for r in by_mode["raw"])
    rss_chunks = client_rss / plan.chunk_size
    pairs = [raw.seconds / client.seconds for client, raw in zip(by_mode["client"], by_mode["raw"], strict=True)]
    print(f"median throughput: client {rate['client']:.1f} MiB/s, raw {rate['raw']:.1f} MiB/s; load average now "
          f"{load_average()}")
    for mode in MODES:
        cpu_per_mib = statistics.median(r.cpu_seconds for r in by_mode[mode]) * 1000 / (size / MIB)
        chunk_ms = [seconds * 1000 for r in by_mode[mode] for seconds in r.chunk_seconds]
        print(f"  {mode:6} CPU {cpu_per_mib:.2f} ms/MiB (median run); per-chunk time p50 "
              f"{percentile(chunk_ms, 0.5):.1f} ms, p90 {percentile(chunk_ms, 0.9):.1f} ms, max {max(chunk_ms):.1f} ms")
    print(f"per-round client/raw: {' '.join(f'{r:.2f}' for r in pairs)} (median {statistics.median(pairs):.2f})")
    print(f"throughput ratio client/raw = {ratio:.2f} (goal >= {GOAL_THROUGHPUT_RATIO}): "
          f"{verdict(ratio >= GOAL_THROUGHPUT_RATIO)}")
    print(f"peak RSS growth client = {client_rss / MIB:.1f} MiB = {rss_chunks:.2f}x chunk size "
          f"(goal <= {GOAL_RSS_CHUNKS}x): {verdict(rss_chunks <= GOAL_RSS_CHUNKS)}  [raw: {raw_rss / MIB:.1f} MiB]")
    return Outcome(plan, ratio, rss_chunks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=float, default=512.0, help="file size in MiB (default 512)")
    parser.add_argument("--chunk-mib", default=DEFAULT_CHUNK_SIZES,
                        help=f"chunk sizes, comma-separated: MiB, or NNMB for decimal megabytes, or min/max "
                             f"(default {DEFAULT_CHUNK_SIZES}; the settings default is {DEFAULT_CHUNK_SIZE / MIB:g} MiB)")
    parser.add_argument("--rounds", type=int, default=7, help="client/raw pairs per chunk size (default 7)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--upload-url", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.base_url, args.upload_url, args.file, ChunkPlan.model_validate_json(args.plan))
        return 0

    size = int(args.size_mib * MIB)
    try:
        plans = [plan_chunks(size, chunk_size) for chunk_size in parse_chunk_sizes(args.chunk_mib)]
    except ValueError as exc:
        parser.error(f"--chunk-mib {args.chunk_mib!r}: {exc}")
    except InvalidInput as exc:
        parser.error(f"{exc} (TikTok's largest chunk is 64 MB, not 64 MiB: write 64MB or max)")
    started = time.monotonic()
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as directory:
        file = Path(directory) / "bench.mp4"
        generate(file, size)
        with serve(SandboxConfig(processing_delay=0)) as sandbox:
            print(f"upload benchmark {datetime.date.today()}: {os.cpu_count()} CPUs, Python "
                  f"{platform.python_version()}, httpx {httpx.__version__}, loopback sandbox {sandbox.base_url}, "
                  f"load average {load_average()}")
            print(f"file {size / MIB:g} MiB of random bytes on disk")
            for plan in plans:
                outcomes.append(bench_one(sandbox, file, plan, args.rounds))

    print(f"\n=== summary ({time.monotonic() - started:.0f} s, load average now {load_average()})")
    for outcome in outcomes:
        print(f"chunk {outcome.plan.chunk_size / MIB:6.2f} MiB ({outcome.plan.total_chunk_count:>3} PUTs): "
              f"client/raw {outcome.ratio:.2f} {verdict(outcome.ratio >= GOAL_THROUGHPUT_RATIO):6}  "
              f"RSS growth {outcome.rss_chunks:.2f}x chunk {verdict(outcome.rss_chunks <= GOAL_RSS_CHUNKS)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
