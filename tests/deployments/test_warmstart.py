"""Warm starts with real processes: a preloaded server, launchers started as the worker starts them,
real signals and SIGKILL. The child runs a small module instead of Prefect's engine (the stack tests
run the engine itself through `tiktok-pipeline worker`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from deployments.warmstart import LAUNCHER, SOCKET_VARIABLE, launch_command, with_launch_command

ROOT = Path(__file__).resolve().parents[2]

FAKE_ENGINE = textwrap.dedent("""
    import os, subprocess, sys, time
    import helper
    print(f"child {os.getpid()} cwd={os.getcwd()} X={os.environ.get('X')} argv={sys.argv[1:]} helper={helper.VALUE}",
          flush=True)
    print("on stderr", file=sys.stderr, flush=True)
    if os.environ.get("MODE") == "sleep":
        grandchild = subprocess.Popen(["sleep", "300"])
        print(f"grandchild {grandchild.pid}", flush=True)
        time.sleep(300)
    sys.exit(int(os.environ.get("CODE", "0")))
""")


class Server:
    def __init__(self, root: Path) -> None:
        self.root, self.socket = root, root / "warm.sock"
        self.log = root / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "deployments.warmstart._server", str(self.socket), "--root", str(self.root),
                 "--module", "fake_engine", "--preload", "helper"],
                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(self.root)}, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the server did not get ready"
            time.sleep(0.05)

    def launch(self, *, socket: Path | None = None, **env: str) -> subprocess.Popen[str]:
        """A launcher as the worker starts it: its own session, the pool's command line."""
        return subprocess.Popen(
            [*launch_command().split()], cwd=self.root, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, SOCKET_VARIABLE: str(socket or self.socket), **env}, start_new_session=True)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "fake_engine.py").write_text(FAKE_ENGINE, encoding="utf-8")
    (tmp_path / "helper.py").write_text("VALUE = 'preloaded'\n", encoding="utf-8")
    running = Server(tmp_path)
    running.start()
    yield running
    assert running.process is not None
    running.process.kill()
    running.process.wait(timeout=10)


def _line(process: subprocess.Popen[str], prefix: str) -> str:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no line starting with {prefix!r}: {process.communicate()}")


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_a_forked_child_gets_the_launchers_environment_directory_streams_and_exit_code(server: Server) -> None:
    launcher = server.launch(X="from the worker", CODE="3")
    out, err = launcher.communicate(timeout=30)
    assert launcher.returncode == 3, (out, err)
    assert f"cwd={server.root} X=from the worker argv=[] helper=preloaded" in out
    assert "on stderr" in err and "warm start unavailable" not in err
    child_pid = int(out.split()[1])
    assert child_pid != launcher.pid  # it ran in the forked child, not in the launcher
    assert f"started in pid {child_pid}" in server.log.read_text()


def test_a_signal_to_the_launcher_reaches_the_childs_process_group_and_it_ends_the_same_way(server: Server) -> None:
    launcher = server.launch(MODE="sleep")
    child = int(_line(launcher, "child ").split()[1])
    grandchild = int(_line(launcher, "grandchild ").split()[1])
    os.killpg(launcher.pid, signal.SIGTERM)  # what the worker does to cancel a run
    launcher.wait(timeout=30)
    assert launcher.returncode == -signal.SIGTERM
    assert _gone(child) and _gone(grandchild)


def test_a_killed_launcher_takes_the_child_and_its_children_with_it(server: Server) -> None:
    launcher = server.launch(MODE="sleep")
    child = int(_line(launcher, "child ").split()[1])
    grandchild = int(_line(launcher, "grandchild ").split()[1])
    os.killpg(launcher.pid, signal.SIGKILL)  # a lost worker
    launcher.wait(timeout=30)
    assert _gone(child) and _gone(grandchild)
    assert "went away: killing pid" in server.log.read_text()


def test_when_the_server_dies_its_children_die_and_the_launcher_says_so(server: Server) -> None:
    launcher = server.launch(MODE="sleep")
    child = int(_line(launcher, "child ").split()[1])
    grandchild = int(_line(launcher, "grandchild ").split()[1])
    assert server.process is not None
    server.process.kill()
    out, err = launcher.communicate(timeout=30)  # the pipes close: nothing the child started holds them
    assert launcher.returncode == 1 and "the preloaded process went away" in err
    assert _gone(child) and _gone(grandchild)


def test_without_a_server_the_launcher_becomes_prefects_engine(tmp_path: Path) -> None:
    missing = Server(tmp_path)
    launcher = missing.launch(socket=tmp_path / "nothing.sock")
    out, err = launcher.communicate(timeout=120)
    assert "warm start unavailable (FileNotFoundError" in err
    # `python -m prefect.engine` itself, which refuses to run without a flow run id.
    assert launcher.returncode == 1 and "Invalid flow run id" in err, (out, err)


def test_changed_code_is_run_cold_then_preloaded_again(server: Server) -> None:
    (server.root / "helper.py").write_text("VALUE = 'edited'\n", encoding="utf-8")
    os.utime(server.root / "helper.py", (time.time() + 5, time.time() + 5))  # a new mtime whatever the clock's grain
    cold = server.launch()
    _, err = cold.communicate(timeout=120)
    assert "warm start unavailable (" in err and "helper.py changed since it was preloaded" in err
    deadline = time.monotonic() + 60
    while "loading the code again" not in server.log.read_text() or not server.socket.exists():
        assert time.monotonic() < deadline, server.log.read_text()
        time.sleep(0.1)
    time.sleep(0.5)
    warm = server.launch()
    out, err = warm.communicate(timeout=60)
    assert warm.returncode == 0 and "helper=edited" in out, (out, err)


def test_the_pool_command_is_the_launcher_unless_someone_set_another() -> None:
    from prefect.workers.process import ProcessWorker

    default = ProcessWorker.get_default_base_job_template()
    template = with_launch_command(default)
    assert template["variables"]["properties"]["command"]["default"] == launch_command()
    assert str(LAUNCHER) in launch_command() and " -S " in launch_command()
    assert default["variables"]["properties"]["command"].get("default") is None  # the input is left alone
    assert with_launch_command(template) == template  # idempotent
    moved = with_launch_command(template, "/elsewhere/python -S /old/checkout/deployments/warmstart/_launch.py")
    assert with_launch_command(moved) == template  # an earlier launcher's command is brought up to date
    custom = with_launch_command(default)
    custom["variables"]["properties"]["command"]["default"] = "my-wrapper python -m prefect.engine"
    assert with_launch_command(custom) == custom  # a command set by hand is kept


def test_make_up_waits_for_the_preload_of_the_worker_it_last_started(tmp_path: Path) -> None:
    from deployments.up.checks import warm_start_ready

    log = tmp_path / "worker.log"
    assert not warm_start_ready(log)
    log.write_text("\n--- 2026-12-03T10:00 tiktok-pipeline worker\n12:00:01 warm start: ready on /tmp/a.sock\n")
    assert warm_start_ready(log)
    with log.open("a") as more:  # started again: the earlier start's line does not count
        more.write("\n--- 2026-12-03T11:00 tiktok-pipeline worker\nWorker 'x' started!\n")
    assert not warm_start_ready(log)
    with log.open("a") as more:
        more.write("12:00:05 warm start: ready on /tmp/b.sock\n")
    assert warm_start_ready(log)


PRELOAD_PROBE = textwrap.dedent("""
    import importlib, json, sys
    from deployments.warmstart._server import PRELOAD
    for name in PRELOAD:
        importlib.import_module(name)
    before = set(sys.modules)
    import yaml
    from prefect.flows import load_flow_from_entrypoint
    from ledger._ledger import create_ledger_engine
    entrypoints = [d["entrypoint"] for d in yaml.safe_load(open("prefect.yaml"))["deployments"]]
    for entrypoint in entrypoints:
        load_flow_from_entrypoint(entrypoint)
    create_ledger_engine("postgresql+psycopg://postgres@127.0.0.1:5432/not-connected")
    print(json.dumps({"entrypoints": entrypoints, "imported": {
        name: getattr(sys.modules[name], "__file__", None) for name in set(sys.modules) - before}}))
""")


def test_a_flow_run_imports_nothing_the_preloaded_process_has_not_imported() -> None:
    """What a forked run imports costs CPU in every run (psycopg alone about 0.1 s): after the preload,
    loading each deployment's flow as the engine loads it and building the ledger's PostgreSQL engine
    import nothing but the entrypoint scripts themselves."""
    done = subprocess.run([sys.executable, "-c", PRELOAD_PROBE], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, check=True)
    found = json.loads(done.stdout.splitlines()[-1])
    scripts = {str(ROOT / entrypoint.split(":")[0]) for entrypoint in found["entrypoints"]}
    others = sorted(name for name, path in found["imported"].items() if path not in scripts)
    assert not others, f"imported by a run, not preloaded (add them to PRELOAD): {others}"
