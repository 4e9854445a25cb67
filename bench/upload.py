"""Upload benchmark: `TikTokClient.upload_video` against a raw upload of the same bytes, on one sandbox, in one run.

The script starts one sandbox (`sandbox.serve`; it writes uploads to disk in its temp directory),
generates one file of random bytes (default 1 GiB) in a temp directory on disk, and uploads that same
file to that same sandbox again and again, alternating:

  client  `TikTokClient.upload_video`: httpx, each chunk streamed from disk in 1 MiB blocks (bounded
          memory), every answer's status and Content-Range checked, progress reported, ready to retry
          and resume.
  raw     the least protocol work a legal upload needs. One PUT of the whole file is not legal (TikTok:
          chunks of 5 MiB..64 MB, final chunk up to 128 MB, so 1 GiB takes at least 9 PUTs), so "raw"
          is the same chunk plan written by hand on one keep-alive socket: a request head of four
          header lines, then the chunk straight from the page cache with socket.sendfile() (no copy
          through Python), then the status line. No HTTP library, retries, progress or range checks:
          the ceiling of what any Python uploader can do against this server.

Both run in a child process of their own, so neither shares a GIL with the sandbox's server thread
(and the sandbox's memory is not counted), each on a fresh sandbox state, fresh token and fresh
video/init, and each times only its PUTs. Runs alternate client/raw for `--rounds` rounds; the
headline ratio is median(client MiB/s) / median(raw MiB/s); per-round ratios are printed too. The
client's peak RSS growth is its resident set, sampled every 2 ms during the upload (and getrusage's
ru_maxrss), minus the resident set just before the first PUT; the worst client run is reported.

Goals: client/raw throughput >= 0.8, client RSS growth <= 1.5x chunk size. A missed goal prints MISSED;
the exit status is 0 either way (non-zero only if an upload fails).

Usage: python bench/upload.py [--size-mib 1024] [--chunk-mib 16] [--rounds 7]
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
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import psutil  # noqa: E402

from sandbox import SandboxConfig, SandboxHandle, serve  # noqa: E402
from tiktok import ChunkPlan, InvalidInput, PostInfo, PrivacyLevel, SourceInfo, TikTokClient, plan_chunks  # noqa: E402
from tiktok_pipeline.settings import Settings  # noqa: E402

MIB = 1024 * 1024
GOAL_THROUGHPUT_RATIO = 0.8
GOAL_RSS_CHUNKS = 1.5
RSS_SAMPLE_INTERVAL = 0.002
DEFAULT_CHUNK_SIZE: int = Settings.model_fields["chunk_size"].default
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


def raw_upload(upload_url: str, file: Path, plan: ChunkPlan) -> None:
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


def run_child(mode: str, base_url: str, upload_url: str, file: Path, plan: ChunkPlan) -> None:
    """Upload once and print {"seconds", "rss_growth"} as JSON on stdout."""
    settings = Settings(_env_file=None, api_base_url=base_url)  # type: ignore[call-arg]
    # Everything is built and imported before the baseline, so only the upload itself counts.
    client = TikTokClient("upload-needs-no-token", settings, rate_limit=lambda account, endpoint: None)
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with PeakRss() as rss:
        baseline = rss.peak
        started = time.perf_counter()
        if mode == "client":
            result = client.upload_video(file, upload_url, plan)
            if result.total_bytes != plan.video_size or result.retries:
                raise SystemExit(f"client upload did not go cleanly: {result}")
        else:
            raw_upload(upload_url, file, plan)
        seconds = time.perf_counter() - started
    maxrss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - maxrss_before
    client.close()
    print(json.dumps({"seconds": seconds, "rss_growth": max(rss.peak - baseline, maxrss_growth)}))


# --- parent process: sandbox, file, alternation, report --------------------------------------------
@dataclass(frozen=True)
class Run:
    mode: str
    seconds: float
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
    return Run(mode, figures["seconds"], figures["rss_growth"])


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=float, default=1024.0, help="file size in MiB (default 1024)")
    parser.add_argument("--chunk-mib", type=float, default=DEFAULT_CHUNK_SIZE / MIB,
                        help=f"chunk size in MiB (default: the settings default, {DEFAULT_CHUNK_SIZE / MIB:g})")
    parser.add_argument("--rounds", type=int, default=7, help="client/raw pairs to run (default 7)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--upload-url", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.base_url, args.upload_url, args.file, ChunkPlan.model_validate_json(args.plan))
        return 0

    try:
        plan = plan_chunks(int(args.size_mib * MIB), int(args.chunk_mib * MIB))
    except InvalidInput as exc:
        parser.error(str(exc))
    size = plan.video_size
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as directory:
        file = Path(directory) / "bench.mp4"
        generate(file, size)
        with serve(SandboxConfig(processing_delay=0)) as sandbox:
            print(f"upload benchmark {datetime.date.today()}: {os.cpu_count()} CPUs, Python "
                  f"{platform.python_version()}, httpx {httpx.__version__}, loopback sandbox {sandbox.base_url}, "
                  f"load average {load_average()}")
            print(f"file {size / MIB:g} MiB of random bytes on disk; plan {plan.total_chunk_count} chunks of "
                  f"{plan.chunk_size / MIB:g} MiB (last {plan.chunks[-1].length / MIB:.2f} MiB); {args.rounds} rounds")
            print(f"{'run':>3}  {'mode':6}  {'seconds':>7}  {'MiB/s':>7}  {'RSS growth MiB':>14}")
            runs: list[Run] = []
            for round_number in range(1, args.rounds + 1):
                for mode in MODES:
                    run = measure(sandbox, mode, file, plan)
                    runs.append(run)
                    print(f"{round_number:>3}  {mode:6}  {run.seconds:7.2f}  {size / MIB / run.seconds:7.1f}  "
                          f"{run.rss_growth / MIB:14.1f}")

    rate = {mode: statistics.median(size / MIB / r.seconds for r in runs if r.mode == mode) for mode in MODES}
    ratio = rate["client"] / rate["raw"]
    client_rss = max(r.rss_growth for r in runs if r.mode == "client")
    raw_rss = max(r.rss_growth for r in runs if r.mode == "raw")
    rss_chunks = client_rss / plan.chunk_size
    pairs = [raw.seconds / client.seconds for client, raw in zip(runs[::2], runs[1::2], strict=True)]
    print(f"median throughput: client {rate['client']:.1f} MiB/s, raw {rate['raw']:.1f} MiB/s; load average now "
          f"{load_average()}")
    print(f"per-round client/raw: {' '.join(f'{r:.2f}' for r in pairs)} (median {statistics.median(pairs):.2f})")
    print(f"throughput ratio client/raw = {ratio:.2f} (goal >= {GOAL_THROUGHPUT_RATIO}): "
          f"{verdict(ratio >= GOAL_THROUGHPUT_RATIO)}")
    print(f"peak RSS growth client = {client_rss / MIB:.1f} MiB = {rss_chunks:.2f}x chunk size "
          f"(goal <= {GOAL_RSS_CHUNKS}x): {verdict(rss_chunks <= GOAL_RSS_CHUNKS)}  [raw: {raw_rss / MIB:.1f} MiB]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
