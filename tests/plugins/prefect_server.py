"""Fixtures: real Prefect servers, started the way users start them (not `prefect_test_harness`).

- `prefect_stack` (session): what `make up` starts, by running `make up` (UP_*_PORT, UP_STATE_DIR and
  PREFECT_HOME set as docs/deploy.md describes): a `prefect server start` with the UI, the TikTok
  sandbox, a moto S3 server, a process worker and the S3 listener, every one a real process on a
  free loopback port, with its state in a temporary directory. `make down` stops it. The server's
  database is a throwaway PostgreSQL database when PostgreSQL answers (CI has it), as in production:
  on SQLite, a server loaded by the other test processes stalled for over 30 s and its crash
  detection fired minutes late. Without PostgreSQL the stack falls back to SQLite (`make up`'s default).
- `PrefectServer.running(home, database_url=...)`: a bare `prefect server start` (e.g. on PostgreSQL).

    def test_something(prefect_stack):
        run = prefect_stack.create_run("publish-video/publish-video", {"request": {...}})
        done = prefect_stack.wait_for_run(run["id"])
        assert done["state"]["type"] == "FAILED", done["state"]["message"]

One stack serves every test of the session (several servers on one machine starve each other);
tests that need a fresh account or post use their own names and captions.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from dotenv import dotenv_values

from deployments import up
from sandbox import free_port
from tests.plugins.postgres import POSTGRES_ADMIN_DSN, postgres_reachable, throwaway_database

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
#: Variables of the test process that must not leak into the stack: it gets what `make up` gives it.
_PRIVATE_PREFIXES = ("TIKTOK_PIPELINE_", "PREFECT_", "AWS_", "UP_")
#: What the stack's processes get beyond `make up`'s defaults, so failure tests do not wait minutes
#: for retries and polls (the values stay in what the settings accept).
STACK_OVERRIDES = {
    "TIKTOK_PIPELINE_TASK_RETRY_BACKOFF": "1",
    "TIKTOK_PIPELINE_STATUS_POLL_INTERVAL": "2",
    # See conftest.py: the suite's own processes would starve a niced ffmpeg.
    "TIKTOK_PIPELINE_TRANSCODE_NICENESS": "0",
}


def clean_environment(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """This process's environment without the pipeline's, Prefect's and AWS's variables, plus `extra`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_PREFIXES)}
    return {**base, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **extra}


class PrefectApi:
    """A few calls of the Prefect REST API, as plain JSON (what the UI and the CLI see)."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.http = httpx.Client(base_url=self.api_url, timeout=30.0)

    def close(self) -> None:
        self.http.close()

    def deployment(self, name: str) -> dict[str, Any]:
        """`flow/deployment` as the server has it."""
        response = self.http.get(f"/deployments/name/{name}")
        response.raise_for_status()
        return response.json()

    def create_run(self, deployment: str, parameters: dict[str, Any], **fields: Any) -> httpx.Response:
        """POST create_flow_run of a deployment, as the UI's Run button does; the raw answer."""
        deployment_id = self.deployment(deployment)["id"]
        for _ in range(3):
            response = self.http.post(f"/deployments/{deployment_id}/create_flow_run",
                                      json={"parameters": parameters, **fields})
            # The SQLite-backed server answers 503 when its database stays locked under load (seen with
            # two pytest sessions on 2 cores); the UI shows an error and the user clicks again.
            if response.status_code != 503:
                break
            time.sleep(2.0)
        return response

    def flow_run(self, flow_run_id: str) -> dict[str, Any]:
        response = self.http.get(f"/flow_runs/{flow_run_id}")
        response.raise_for_status()
        return response.json()

    def wait_for_run(self, flow_run_id: str, timeout: float = 300.0, states: set[str] = FINAL_STATES) -> dict[str, Any]:
        """The flow run once its state type is one of `states` (by default: final)."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.flow_run(flow_run_id)
            if run["state"] and run["state"]["type"] in states:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"flow run {run['name']} ({flow_run_id}) still {run['state']} after {timeout:.0f} s")
            time.sleep(1.0)

    def flow_runs(self, **flow_run_filter: Any) -> list[dict[str, Any]]:
        response = self.http.post("/flow_runs/filter", json={"flow_runs": flow_run_filter, "limit": 200})
        response.raise_for_status()
        return response.json()

    def logs(self, flow_run_id: str) -> list[str]:
        response = self.http.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [flow_run_id]}},
                                                         "sort": "TIMESTAMP_ASC", "limit": 200})
        response.raise_for_status()
        return [entry["message"] for entry in response.json()]

    def artifacts(self, flow_run_id: str) -> list[dict[str, Any]]:
        response = self.http.post("/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
        response.raise_for_status()
        return response.json()


@dataclass
class Stack:
    """The `make up` stack of this test session."""

    state_dir: Path
    ports: up.Ports
    env: dict[str, str]  # what every process of the stack gets (clean environment + .data/up/env)
    output: str  # what `make up` printed
    prefect_database: str | None = None  # the server's PostgreSQL database; None: SQLite in PREFECT_HOME
    extra_up_env: dict[str, str] = field(default_factory=dict)  # what `make up` gets beyond ports and dirs
    api: PrefectApi = field(init=False)

    def __post_init__(self) -> None:
        self.api = PrefectApi(self.api_url)

    @property
    def api_url(self) -> str:
        return up.api_url(self.ports)

    @property
    def ui_url(self) -> str:
        return f"http://{up.HOST}:{self.ports.prefect}"

    @property
    def sandbox_url(self) -> str:
        return up.sandbox_url(self.ports)

    @property
    def prefect_database_url(self) -> str | None:
        return self.prefect_database and f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.prefect_database}"

    @property
    def log_dir(self) -> Path:
        return self.state_dir

    def run(self, *argv: str, timeout: float = 300.0, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        """A command as a user types it after `set -a; . .data/up/env`, from the checkout."""
        done = subprocess.run(list(argv), cwd=ROOT, env={**self.env, **env}, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{argv} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}")
        return done

    def cli(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run(str(BIN / "tiktok-pipeline"), *args, **kwargs)

    def prefect(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run(str(BIN / "prefect"), *args, **kwargs)

    def create_run(self, deployment: str, parameters: dict[str, Any]) -> dict[str, Any]:
        response = self.api.create_run(deployment, parameters)
        assert response.status_code == 201, response.text
        return response.json()

    def wait_for_run(self, flow_run_id: str, timeout: float = 300.0) -> dict[str, Any]:
        return self.api.wait_for_run(flow_run_id, timeout)

    def sandbox_posts(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.sandbox_url}/_sandbox/posts", timeout=10.0).json()

    def up(self, timeout: float = 420.0) -> str:
        """Run `make up` (again: it restarts what died); what it printed."""
        done = subprocess.run(["make", "up"], cwd=ROOT, env=self.up_env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"`make up` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        self.output = done.stdout
        self.env = {**clean_environment(STACK_OVERRIDES), **read_env_file(self.state_dir / "env")}
        return done.stdout

    def down(self) -> str:
        done = subprocess.run(["make", "down"], cwd=ROOT, env=self.up_env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
        return done.stdout + done.stderr

    def up_env(self) -> dict[str, str]:
        return clean_environment({
            **STACK_OVERRIDES,
            "UP_STATE_DIR": str(self.state_dir),
            "PREFECT_HOME": str(self.state_dir / "prefect-home"),
            "UP_PREFECT_PORT": str(self.ports.prefect),
            "UP_SANDBOX_PORT": str(self.ports.sandbox),
            "UP_MOTO_PORT": str(self.ports.moto),
            "UP_REDIRECT_PORT": str(self.ports.redirect),
            "UP_WEBHOOKS_PORT": str(self.ports.webhooks),
            **({up.PREFECT_DATABASE_VARIABLE: self.prefect_database_url} if self.prefect_database_url else {}),
            **self.extra_up_env,
        })


def read_env_file(path: Path) -> dict[str, str]:
    return {key: value or "" for key, value in dotenv_values(path).items()}


def free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


@contextlib.contextmanager
def running_stack(prefect_database: str | None, up_env: Mapping[str, str] = {}) -> Iterator[Stack]:
    """`make up` on free ports in a temporary state directory (with `up_env` on top), `make down` after."""
    # Not under pytest's basetemp: another pytest session on the machine prunes old basetemps, and the
    # stack's pid files must outlive the session's tests (`make down` reads them).
    state_dir = Path(tempfile.mkdtemp(prefix="tiktok-pipeline-stack-"))
    stack = Stack(state_dir=state_dir, ports=up.Ports(*free_ports(5)), env={}, output="",
                  prefect_database=prefect_database, extra_up_env=dict(up_env))
    try:
        stack.up()
        yield stack
    finally:
        stack.api.close()
        print(stack.down())
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_stack() -> Iterator[Stack]:
    with contextlib.ExitStack() as resources:  # the database is dropped last, after `make down`
        database = (resources.enter_context(throwaway_database(POSTGRES_ADMIN_DSN, "tiktok_stack_prefect"))
                    if postgres_reachable() else None)
        yield resources.enter_context(running_stack(database))


#: The Redis database the scale-out stack uses (emptied before and after): none of the others use Redis.
SCALED_REDIS_DB = 11


@pytest.fixture(scope="session")
def scaled_stack(postgres_server: str) -> Iterator[Stack]:
    """Prefect's scale-out setup as docs/deploy.md describes it: two API servers without services,
    the services in a process of their own, Redis between them, the Prefect database and the ledger
    on PostgreSQL, two workers of at most two flow runs each."""
    import redis

    redis_url = f"redis://127.0.0.1:6379/{SCALED_REDIS_DB}"
    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=3)
        client.flushdb()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable at {redis_url}: {exc}")
    with contextlib.ExitStack() as resources:
        resources.callback(client.close)
        resources.callback(client.flushdb)
        prefect = resources.enter_context(throwaway_database(postgres_server, "tiktok_scaled_prefect"))
        ledger = resources.enter_context(throwaway_database(postgres_server, "tiktok_scaled_ledger"))
        yield resources.enter_context(running_stack(prefect, {
            "UP_REDIS_URL": redis_url,
            "UP_EXTRA_API_PORTS": str(free_port()),
            "UP_WORKERS": "2",
            "UP_WORKER_LIMIT": "2",
            "TIKTOK_PIPELINE_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{ledger}",
        }))


@dataclass
class PrefectServer:
    """One `prefect server start` process."""

    api_url: str
    home: Path
    log_file: Path

    def env(self) -> dict[str, str]:
        return {"PREFECT_API_URL": self.api_url, "PREFECT_HOME": str(self.home)}

    def tracebacks(self) -> list[str]:
        return up.server_log_tracebacks(self.log_file)

    @classmethod
    @contextlib.contextmanager
    def running(cls, home: Path, *, database_url: str | None = None, extra_env: Mapping[str, str] = {}) -> Iterator[PrefectServer]:
        """`prefect server start` on a free port with its own PREFECT_HOME (and database), stopped afterwards."""
        home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        env = clean_environment({"PREFECT_HOME": str(home), "PREFECT_UI_API_URL": api_url, **extra_env})
        if database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
        pid_file, log_file = home / "server.pid", home / "server.log"
        process = up.start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                           env, pid_file, log_file, ROOT)
        try:
            up.wait_until(lambda: up.answers(f"{api_url}/health"), process, "prefect server", log_file)
            yield cls(api_url=api_url, home=home, log_file=log_file)
        finally:
            up.stop(pid_file)
