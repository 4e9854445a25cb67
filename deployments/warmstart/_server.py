"""The preloaded process: imports Prefect's engine and the pipeline's flows once, then forks a child per
flow run that a launcher (deployments/warmstart/_launch.py) hands it over a Unix socket.

Why: a flow run in a fresh process spends 1.5-2.5 s of CPU importing Prefect and the pipeline before
it does anything (measured: `import prefect.engine` 1.4 s, the flows another 1.0 s on this 2-core
machine), which is most of the CPU a remux post costs. A forked child starts with all of that in
memory (shared, copy-on-write) and runs the very same engine (`prefect.engine` as `__main__`) with
the environment, working directory and standard streams of the launcher the worker started.

Fork safety: this process never starts a thread, an event loop or a connection (it serves with one
`selectors` loop and a self-pipe for SIGCHLD), so a child inherits no lock held by another thread.
Each child leads a session of its own, has its standard streams replaced by the launcher's, reads its
settings afresh from the launcher's environment, and is killed if this process dies
(PR_SET_PDEATHSIG). What the launcher asks for is passed on: a signal goes to the child's process
group; a closed connection (the launcher was killed) kills the group; the child's end is sent back.

Code updates: the modules preloaded from the checkout are stat-ed before each fork. If one changed,
the launcher is told to start cold, and this process re-executes itself (a fresh preload) as soon
as no child of it is running.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: What a flow run of this project imports before its first line runs (prefect.yaml's entrypoints).
#: Besides the flow modules: the ledger's PostgreSQL driver, which SQLAlchemy imports only when a run
#: builds its engine (psycopg and libpq: about 0.1 s of CPU per run, measured with py-spy on the `make
#: up` stack), and the module Prefect's engine imports when it loads a flow. Importing them opens no
#: connection and starts no thread. tests/deployments/test_warmstart.py checks that a run imports
#: nothing else.
PRELOAD = (
    "prefect.engine", "prefect.flow_engine", "prefect.task_engine", "prefect.deployments.steps",
    "prefect.runner.storage", "prefect.utilities.visualization", "sqlalchemy.dialects.postgresql.psycopg",
    "psycopg", "flows.publish", "flows.photo_posts", "flows.maintenance", "flows.drafts", "flows.s3_events",
    "flows.syndicate",
)
ENGINE_MODULE = "prefect.engine"
_PR_SET_PDEATHSIG = 1
_REQUEST_TIMEOUT = 10.0


@dataclass
class Job:
    """What a forked child runs: the launcher's flow run, in the launcher's environment."""

    env: dict[str, str]
    cwd: str
    argv: list[str]
    module: str


@dataclass
class _Child:
    connection: socket.socket
    run_id: str
    started: float = field(default_factory=time.monotonic)
    launcher_gone: bool = False


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} warm start: {message}", flush=True)


def code_files(root: Path) -> dict[str, int]:
    """The preloaded modules' source files inside `root`, with their modification times."""
    found: dict[str, int] = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path or not path.startswith(str(root)) or "/.venv/" in path or "site-packages" in path:
            continue
        try:
            found[path] = os.stat(path).st_mtime_ns
        except OSError:
            continue
    return found


def changed_file(snapshot: dict[str, int]) -> str | None:
    for path, mtime in snapshot.items():
        try:
            if os.stat(path).st_mtime_ns != mtime:
                return path
        except OSError:
            return path
    return None


class Server:
    """Accepts launchers on `socket_path` and forks a child per flow run; `serve` returns in a child only."""

    def __init__(self, socket_path: Path, root: Path, preload: Sequence[str] = PRELOAD,
                 module: str = ENGINE_MODULE) -> None:
        self.socket_path, self.root, self.preload, self.module = socket_path, root, tuple(preload), module
        self.children: dict[int, _Child] = {}
        self.stale: str | None = None
        self.stopping = False

    def load(self) -> None:
        started = time.monotonic()
        if str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))
        for name in self.preload:
            importlib.import_module(name)
        self.snapshot = code_files(self.root)
        gc.collect()
        gc.freeze()  # what is loaded now stays shared with the children instead of being copied by the GC
        _log(f"preloaded {len(self.preload)} modules ({len(sys.modules)} in all) in {time.monotonic() - started:.1f} s")

    def serve(self) -> Job | None:
        """Serve until stopped (returns None) or, in a forked child, return the child's job."""
        if self.socket_path.exists():
            self.socket_path.unlink()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.socket_path))
        self.listener.listen(64)
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)
        os.set_blocking(self.wake_read, False)
        signal.set_wakeup_fd(self.wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wake_read, selectors.EVENT_READ, "wake")
        _log(f"ready on {self.socket_path}")
        while not (self.stopping and not self.children):
            for key, _ in self.selector.select(timeout=1.0):
                if key.data == "accept":
                    job = self._accept()
                    if job is not None:
                        return job
                elif key.data == "wake":
                    self._drain_wake()
                else:
                    self._from_launcher(key.data, key.fileobj)
            self._reap()
            if self.stale and not self.children:
                self._reload()
        self._close()
        return None

    def _stop(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            _log(f"stopping (signal {signum}); passing it to {len(self.children)} running flow run(s)")
        self.stopping = True
        for pid in self.children:
            self._signal(pid, signum)

    def _drain_wake(self) -> None:
        try:
            while os.read(self.wake_read, 512):
                pass
        except BlockingIOError:
            pass

    def _signal(self, pid: int, signum: int) -> None:
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            pass

    def _accept(self) -> Job | None:
        connection, _ = self.listener.accept()
        connection.settimeout(_REQUEST_TIMEOUT)
        fds: list[int] = []
        try:
            data, fds, _flags, _address = socket.recv_fds(connection, 1 << 20, 3)
            while not data.endswith(b"\n"):
                more = connection.recv(1 << 20)
                if not more:
                    raise ConnectionError("the launcher hung up mid-request")
                data += more
            request = json.loads(data)
            if len(fds) != 3:
                raise ValueError(f"expected 3 file descriptors, got {len(fds)}")
        except (OSError, ValueError) as error:
            _log(f"refused a launcher: {type(error).__name__}: {error}")
            for fd in fds:
                os.close(fd)
            connection.close()
            return None
        connection.settimeout(None)
        run_id = request["env"].get("PREFECT__FLOW_RUN_ID", "?")
        self.stale = self.stale or changed_file(self.snapshot)
        if self.stopping or self.stale:
            reason = "stopping" if self.stopping else f"{self.stale} changed since it was preloaded"
            self._answer(connection, f"cold {reason}")
            for fd in fds:
                os.close(fd)
            connection.close()
            return None
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            return self._become_child(connection, fds, request)
        for fd in fds:
            os.close(fd)
        self.children[pid] = _Child(connection, run_id)
        self.selector.register(connection, selectors.EVENT_READ, pid)
        self._answer(connection, f"started {pid}")
        _log(f"flow run {run_id} started in pid {pid}")
        return None

    def _answer(self, connection: socket.socket, line: str) -> None:
        try:
            connection.sendall(line.encode() + b"\n")
        except OSError:
            pass

    def _from_launcher(self, pid: int, connection: socket.socket) -> None:
        child = self.children.get(pid)
        try:
            data = connection.recv(4096)  # readable: returns what is there, or b"" at the end
        except OSError:
            data = b""
        if not data:
            # The launcher is gone (killed with its worker): the child goes the same way.
            self.selector.unregister(connection)
            if child is not None and not child.launcher_gone:
                child.launcher_gone = True
                _log(f"the launcher of flow run {child.run_id} went away: killing pid {pid}")
                self._signal(pid, signal.SIGKILL)
            return
        for line in data.decode(errors="replace").splitlines():
            kind, _, value = line.partition(" ")
            if kind == "signal" and value.isdigit():
                if child is not None:
                    _log(f"passing signal {value} from its launcher to flow run {child.run_id} (pid {pid})")
                self._signal(pid, int(value))

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            _log(f"flow run {child.run_id} (pid {pid}) ended with {code} after {time.monotonic() - child.started:.1f} s")
            if not child.launcher_gone:
                try:
                    self.selector.unregister(child.connection)
                except (KeyError, ValueError):
                    pass
                self._answer(child.connection, f"exit {code}")
            child.connection.close()

    def _reload(self) -> None:
        _log(f"{self.stale} changed: loading the code again")
        self._close()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])

    def _close_serving(self) -> None:
        """Close what serving opened: the wake-up pipe, the selector and the listening socket."""
        signal.set_wakeup_fd(-1)
        self.selector.close()
        self.listener.close()
        os.close(self.wake_read)
        os.close(self.wake_write)

    def _close(self) -> None:
        self._close_serving()
        if self.socket_path.exists():
            self.socket_path.unlink()

    def _become_child(self, connection: socket.socket, fds: list[int], request: dict) -> Job:
        self._close_serving()  # the socket file stays: it is the server's, which goes on serving
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for child in self.children.values():
            child.connection.close()
        connection.close()
        os.setsid()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() == 1:  # the server died between the fork and the prctl
            os._exit(1)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        return Job(env=dict(request["env"]), cwd=str(request["cwd"]), argv=list(request.get("argv", [])),
                   module=self.module)


def run_job(job: Job) -> None:
    """In the forked child: become the flow-run process the launcher stands for, then run the engine."""
    os.environ.clear()
    os.environ.update(job.env)
    os.chdir(job.cwd)
    sys.argv = [sys.argv[0], *job.argv]
    if job.module == ENGINE_MODULE:
        # Prefect read its settings (and set up logging from them) when the server imported it.
        from prefect.context import refresh_global_settings_context
        from prefect.logging.configuration import setup_logging

        refresh_global_settings_context()
        setup_logging(incremental=False)
    runpy.run_module(job.module, run_name="__main__", alter_sys=True)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m deployments.warmstart._server SOCKET [--module M] [--preload A,B]`: what the worker wrapper runs."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("socket", type=Path)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("--module", default=ENGINE_MODULE, help="what a child runs as __main__")
    parser.add_argument("--preload", default=",".join(PRELOAD), help="comma-separated modules to import first")
    args = parser.parse_args(argv)
    server = Server(args.socket, args.root.resolve(), [m for m in args.preload.split(",") if m], args.module)
    server.load()
    job = server.serve()
    if job is not None:
        run_job(job)  # a SystemExit from the engine ends the child as it would end `python -m prefect.engine`


if __name__ == "__main__":
    main()
