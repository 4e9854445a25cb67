"""`tiktok-pipeline worker`: Prefect's process worker with a preloaded process beside it.

Both are children of this process, in its process group, so stopping or killing the group ends the
worker, the preloaded process and (through it) every flow run forked from it. The preloaded process
is started again if it dies; until it is back, the launcher starts flow runs the usual way.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from deployments.warmstart._launch import SOCKET_VARIABLE

RESTART_PAUSE = 5.0


def _start_server(socket_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "deployments.warmstart._server", str(socket_path)],
                            stdin=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[2])


def run_worker(worker_args: Sequence[str]) -> int:
    """Run `prefect worker start WORKER_ARGS` with warm starts; its exit code."""
    state = Path(tempfile.mkdtemp(prefix="tiktok-pipeline-warm-"))
    socket_path = state / "flow-runs.sock"
    # Both start at once: the worker does not wait for the preload (a few seconds, more on a loaded
    # machine); a run it starts before the preloaded process is ready starts the usual way.
    server = _start_server(socket_path)
    env = {**os.environ, SOCKET_VARIABLE: str(socket_path)}
    worker = subprocess.Popen([sys.executable, "-m", "prefect", "--no-prompt", "worker", "start", *worker_args], env=env)
    stopping: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        stopping.append(signum)
        for process in (worker, server):
            if process.poll() is None:
                process.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    restart_at: float | None = None
    try:
        while worker.poll() is None:
            time.sleep(0.5)
            if stopping or server.poll() is None:
                continue
            if restart_at is None:
                print(f"warm start: the preloaded process ended ({server.returncode}); starting it again",
                      file=sys.stderr, flush=True)
                restart_at = time.monotonic() + RESTART_PAUSE
            elif time.monotonic() >= restart_at:
                server, restart_at = _start_server(socket_path), None
        return worker.returncode
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(state, ignore_errors=True)
