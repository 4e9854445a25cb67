"""The process supervisor of `make up`: background processes with a pid file and a log each.

A pid file records the pid, its create time and its argv, so a reused pid is never taken for ours
and a process started with other options is noticed. Each process leads a session of its own, so
`stop` ends its whole tree.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psutil

from deployments.up.layout import HOST, Layout, UpError

STARTUP_TIMEOUT = 180.0  # the first Prefect start creates its database
STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class Service:
    name: str
    argv: tuple[str, ...]
    port: int | None  # must be free before the start
    health_url: str | None  # None: readiness is checked another way
    env: tuple[tuple[str, str], ...] = ()  # on top of the stack's environment, for this process only


def running(pid_file: Path) -> psutil.Process | None:
    """The process a pid file names, if it is still that process (pids get reused)."""
    try:
        record = json.loads(pid_file.read_text(encoding="utf-8"))
        process = psutil.Process(int(record["pid"]))
        if process.create_time() != record["create_time"] or process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except (OSError, ValueError, KeyError, psutil.Error):
        return None


def start(argv: Sequence[str], env: Mapping[str, str], pid_file: Path, log_file: Path, cwd: Path) -> psutil.Process:
    """Start `argv` in the background as the leader of a new session, so `stop` can end its children too."""
    with log_file.open("ab") as log:
        log.write(f"\n--- {datetime.now(timezone.utc).isoformat()} {shlex.join(argv)}\n".encode())
        log.flush()
        child = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process = psutil.Process(child.pid)
    pid_file.write_text(json.dumps({"pid": child.pid, "create_time": process.create_time(), "argv": list(argv)}))
    return process


def _group_of(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except ProcessLookupError:
        return None


def stop(pid_file: Path, timeout: float = STOP_TIMEOUT) -> int | None:
    """SIGTERM the process group (and descendants that left it), SIGKILL what is left; the pid stopped."""
    leader = running(pid_file)
    if leader is None:
        pid_file.unlink(missing_ok=True)
        return None
    members = [leader, *leader.children(recursive=True)]
    strays = [member for member in members[1:] if _group_of(member) not in (leader.pid, None)]
    with suppress(ProcessLookupError):
        os.killpg(leader.pid, signal.SIGTERM)
    for member in strays:  # e.g. flow-run supervisors, which the worker starts in sessions of their own
        with suppress(psutil.Error):
            member.terminate()
    _, alive = psutil.wait_procs(members, timeout=timeout)
    for member in alive:
        with suppress(psutil.Error):
            member.kill()
    psutil.wait_procs(alive, timeout=5)
    pid_file.unlink(missing_ok=True)
    return leader.pid


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers do not count
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def log_tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def wait_until(ready: Callable[[], bool], process: psutil.Process, what: str, log_file: Path,
               timeout: float = STARTUP_TIMEOUT) -> None:
    """Poll `ready()` until it is true; fail early when the process died."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
            raise UpError(f"{what} exited during startup; end of {log_file}:\n{log_tail(log_file)}")
        if time.monotonic() > deadline:
            raise UpError(f"{what} not ready after {timeout:.0f} s; end of {log_file}:\n{log_tail(log_file)}")
        time.sleep(0.25)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def ensure_running(service: Service, env: Mapping[str, str], layout: Layout) -> tuple[psutil.Process, bool]:
    """(process, started now)."""
    pid_file, log_file = layout.pid_file(service.name), layout.log_file(service.name)
    process = running(pid_file)
    if process is not None:
        if json.loads(pid_file.read_text(encoding="utf-8"))["argv"] != list(service.argv):
            raise UpError(f"{service.name} is running with other options (ports changed?): run `make down` first")
        return process, False
    if service.port is not None and not port_is_free(service.port):
        variable = "UP_EXTRA_API_PORTS" if service.name.startswith("prefect-") else f"UP_{service.name.upper()}_PORT"
        raise UpError(
            f"port {service.port} ({service.name}) is used by another program: stop it, or choose another port "
            f"with {variable}"
        )
    return start(service.argv, {**env, **dict(service.env)}, pid_file, log_file, layout.root), True
