"""Contention benchmark: a chunked upload while two full transcodes run, niced and not, in one run.

The script starts one sandbox and measures `TikTokClient.upload_video` of one file of random bytes
(default 512 MiB, the settings' chunk size) exactly as bench/upload.py does (its `measure`: a child
process, a fresh sandbox state, token and init per upload), in three conditions, alternated round by
round so that a change in the machine's background load hits all of them:

  idle       nothing else running;
  not niced  two `make_tiktok_ready` full transcodes of a generated grainy 1080p 30 s clip
             (bench/transcode.py's) running meanwhile with `niceness=0`;
  niced      the same two transcodes at the pipeline's niceness (TIKTOK_PIPELINE_TRANSCODE_NICENESS's
             default: the transcode task runs ffmpeg under `nice -n 10`).

The transcodes are started before each upload, the upload begins once both are encoding, they are
restarted if they finish first, and cancelled once the upload is done. Besides the upload's wall
time the script prints how fast the two transcodes went meanwhile (seconds of video encoded per
second), i.e. what niceness costs them. Headline: median upload time niced / not niced.

Usage: python bench/contention.py [--size-mib 512] [--rounds 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import upload as upload_bench  # noqa: E402  (bench/upload.py)
from sandbox import SandboxConfig, serve  # noqa: E402
from tiktok import plan_chunks  # noqa: E402
from transcode import TranscodeCancelledError, make_tiktok_ready  # noqa: E402
from tiktok_pipeline.settings import Settings  # noqa: E402

#: What the pipeline's transcode task runs ffmpeg at (TIKTOK_PIPELINE_TRANSCODE_NICENESS's default).
DEFAULT_NICENESS: int = Settings.model_fields["transcode_niceness"].default

MIB = upload_bench.MIB
TRANSCODES = 2
CONDITIONS = ("idle", "not niced", "niced")


def bench_transcode_module():
    """bench/transcode.py (its name clashes with the `transcode` package, so it is loaded by path)."""
    spec = importlib.util.spec_from_file_location("bench_transcode", BENCH / "transcode.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Transcodes:
    """`count` full transcodes of `clip` in threads, each restarted when it finishes, until the block ends."""

    def __init__(self, clip: Path, directory: Path, niceness: int, duration: float, count: int = TRANSCODES) -> None:
        self.clip, self.directory, self.niceness, self.duration = clip, directory, niceness, duration
        self.stop = threading.Event()
        self.done = [0.0] * count  # seconds of video encoded, per transcode slot
        self.started = [threading.Event() for _ in range(count)]
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(slot,), daemon=True) for slot in range(count)]

    def _run(self, slot: int) -> None:
        out = self.directory / f"contention_{slot}.mp4"
        finished = 0.0
        while not self.stop.is_set():
            def progress(fraction: float, base: float = finished) -> None:
                self.done[slot] = base + fraction * self.duration
                self.started[slot].set()
            try:
                make_tiktok_ready(self.clip, out, niceness=self.niceness, on_progress=progress, cancel=self.stop)
                finished += self.duration
            except TranscodeCancelledError:
                return
            except BaseException as exc:  # reported by the caller
                self.errors.append(exc)
                self.started[slot].set()
                return

    def __enter__(self) -> Transcodes:
        for thread in self.threads:
            thread.start()
        for started in self.started:
            started.wait()
        if self.errors:
            raise self.errors[0]
        self.since, self.done_before = time.perf_counter(), sum(self.done)
        return self

    def __exit__(self, *exc: object) -> None:
        self.rate = (sum(self.done) - self.done_before) / (time.perf_counter() - self.since)
        self.stop.set()
        for thread in self.threads:
            thread.join()
        if self.errors and not exc[0]:
            raise self.errors[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=float, default=512.0, help="upload size in MiB (default 512)")
    parser.add_argument("--rounds", type=int, default=3, help="uploads per condition (default 3)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the transcoded clip (default 30)")
    parser.add_argument("--keep", type=Path, help="directory for the generated clips (kept between runs)")
    args = parser.parse_args()

    plan = plan_chunks(int(args.size_mib * MIB), upload_bench.DEFAULT_CHUNK_SIZE)
    with tempfile.TemporaryDirectory(prefix="bench-contention-") as scratch:
        directory = args.keep or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        clip = bench_transcode_module().generate(directory, args.seconds)[0]
        file = Path(scratch) / "upload.mp4"  # random bytes; the client tells the container by the name
        upload_bench.generate(file, plan.video_size)
        seconds: dict[str, list[float]] = {condition: [] for condition in CONDITIONS}
        rates: dict[str, list[float]] = {condition: [] for condition in CONDITIONS[1:]}
        with serve(SandboxConfig(processing_delay=0)) as sandbox:
            print(f"contention benchmark {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC: {os.cpu_count()} "
                  f"CPUs, load average {upload_bench.load_average()}; upload {plan.video_size / MIB:g} MiB in "
                  f"{plan.total_chunk_count} chunks of {plan.chunk_size / MIB:g} MiB beside {TRANSCODES} full "
                  f"transcodes of {clip.name} ({args.seconds:g} s); default niceness {DEFAULT_NICENESS}")
            print(f"{'round':>5}  {'condition':9}  {'upload s':>8}  {'MiB/s':>7}  {'transcode video s/s':>19}")
            for round_number in range(1, args.rounds + 1):
                shift = round_number % len(CONDITIONS)
                for condition in CONDITIONS[shift:] + CONDITIONS[:shift]:
                    def upload() -> float:
                        return upload_bench.measure(sandbox, "client", file, plan).seconds
                    if condition == "idle":
                        took, rate = upload(), None
                    else:
                        niceness = DEFAULT_NICENESS if condition == "niced" else 0
                        with Transcodes(clip, directory, niceness, args.seconds) as transcodes:
                            took = upload()
                        rate = transcodes.rate
                        rates[condition].append(rate)
                    seconds[condition].append(took)
                    shown = "" if rate is None else f"{rate:19.2f}"
                    print(f"{round_number:>5}  {condition:9}  {took:8.2f}  {plan.video_size / MIB / took:7.1f}  {shown}",
                          flush=True)

    median = {condition: statistics.median(values) for condition, values in seconds.items()}
    print(f"median upload: idle {median['idle']:.2f} s, beside not-niced transcodes {median['not niced']:.2f} s, "
          f"beside niced transcodes {median['niced']:.2f} s; load average now {upload_bench.load_average()}")
    print(f"transcodes meanwhile (median video s/s): not niced {statistics.median(rates['not niced']):.2f}, "
          f"niced {statistics.median(rates['niced']):.2f}")
    print(f"upload time ratio niced / not niced = {median['niced'] / median['not niced']:.2f}  "
          f"(niced / idle = {median['niced'] / median['idle']:.2f}, "
          f"not niced / idle = {median['not niced'] / median['idle']:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
