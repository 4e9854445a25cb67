"""`make up` / `make down` building blocks: the environment, the env file, the process groups, the sample clip."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import psutil
import pytest

from deployments import up
from ledger import Ledger, generate_key
from tiktok_pipeline.settings import load_settings
from transcode import Policy, probe, validate

KEY = generate_key()


def test_ports_default_apart_from_the_oauth_redirect_default() -> None:
    ports = up.Ports.from_env({})
    assert (ports.prefect, ports.sandbox, ports.moto, ports.redirect, ports.webhooks) == (4200, 9400, 9401, 9402, 9403)
    assert up.Ports.from_env({"UP_SANDBOX_PORT": "9500"}).sandbox == 9500


@pytest.mark.parametrize(
    ("environ", "message"),
    [({"UP_MOTO_PORT": "s3"}, "UP_MOTO_PORT"), ({"UP_MOTO_PORT": "70000"}, "UP_MOTO_PORT"),
     ({"UP_MOTO_PORT": "9400"}, "must differ")],
)
def test_bad_ports_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(up.UpError, match=message):
        up.Ports.from_env(environ)


def test_stack_env_points_the_pipeline_at_the_local_services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = up.Layout(tmp_path)
    ports = up.Ports(prefect=4300, sandbox=9500, moto=9501, redirect=9502, webhooks=9503)
    values = up.stack_env(layout, ports, KEY, tmp_path / "prefect-home")
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.api_base_url == "http://127.0.0.1:9500"
    assert settings.authorize_url == "http://127.0.0.1:9500/v2/auth/authorize/"
    assert (settings.client_key, settings.client_secret.get_secret_value()) == ("sbx_client_key", "sbx_client_secret")
    assert settings.redirect_uri == "http://127.0.0.1:9502/callback/"
    assert settings.s3_endpoint_url == "http://127.0.0.1:9501"
    assert settings.data_dir == layout.data_dir
    assert values["PREFECT_API_URL"] == "http://127.0.0.1:4300/api"
    receiver = settings.webhook_receiver  # TikTok's webhooks on, received where `make up` starts the receiver
    assert (receiver.tiktok_webhooks, receiver.tiktok_webhooks_host, receiver.tiktok_webhooks_port) == (True, "127.0.0.1", 9503)
    assert up.webhooks_url(ports) == "http://127.0.0.1:9503/tiktok/webhooks"
    assert values["AWS_ACCESS_KEY_ID"] and values["AWS_SECRET_ACCESS_KEY"]
    layout.data_dir.mkdir(parents=True)
    with Ledger.from_settings(settings) as ledger:  # the database and the key work as they are
        assert ledger.engine.url.database == str(layout.data_dir / "ledger.sqlite3")
        assert ledger.list_accounts() == []


def test_env_file_reads_back_in_dotenv_and_in_a_shell(tmp_path: Path) -> None:
    path = tmp_path / "state dir" / "env"
    values = {"TIKTOK_PIPELINE_ENCRYPTION_KEY": KEY, "PREFECT_HOME": str(tmp_path / "a b"), "EMPTY": ""}
    up.write_env_file(path, values)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert up.saved_encryption_key(path) == KEY
    dump = "import json, os; print(json.dumps({k: os.environ[k] for k in %r}))" % sorted(values)
    shell = subprocess.run(
        ["bash", "-c", f'set -a; . "$1"; exec {sys.executable} -c "$2"', "bash", str(path), dump],
        capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]},
    )
    assert json.loads(shell.stdout) == values
    assert up.saved_encryption_key(tmp_path / "missing") is None


def test_stop_ends_the_whole_process_tree(tmp_path: Path) -> None:
    # A child in the leader's group, and a grandchild that moved to a session of its own.
    script = "sleep 300 & setsid sleep 300 & wait"
    leader = up.start(["bash", "-c", script], os.environ, tmp_path / "x.pid", tmp_path / "x.log", tmp_path)
    descendants: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 10
        while len(descendants := leader.children(recursive=True)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)  # the shell is still forking
        assert len(descendants) == 2
        assert up.running(tmp_path / "x.pid") == leader
        assert up.stop(tmp_path / "x.pid", timeout=10) == leader.pid
        for process in (leader, *descendants):
            assert not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
        assert not (tmp_path / "x.pid").exists()
        assert up.stop(tmp_path / "x.pid") is None  # idempotent
    finally:
        for process in (leader, *descendants):
            with suppress(psutil.Error):
                process.kill()


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        record = {"pid": bystander.pid, "create_time": psutil.Process(bystander.pid).create_time() - 5, "argv": ["x"]}
        (tmp_path / "old.pid").write_text(json.dumps(record))
        assert up.running(tmp_path / "old.pid") is None
        assert up.stop(tmp_path / "old.pid") is None
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_listening_port_is_reported_in_use() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not up.port_is_free(port)
    assert up.port_is_free(port)


def test_sample_clip_is_valid_16_9_input(tmp_path: Path) -> None:
    info = probe(up.make_sample(tmp_path / "sample.mp4"))
    assert (info.video.codec, info.video.width, info.video.height) == ("h264", 1280, 720)
    assert info.audio is not None and info.audio.codec == "aac"
    assert info.duration == pytest.approx(5.0, abs=0.1)
    validate(info, Policy())  # accepted as it is; the pipeline fits it to 9:16


def test_server_log_tracebacks_reads_the_last_start_and_sets_sqlite_contention_apart(tmp_path: Path) -> None:
    log = tmp_path / "prefect.log"
    log.write_text("\n".join([
        "--- 2026-12-01T10:00:00+00:00 prefect server start",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "sqlalchemy.exc.InvalidRequestError: Can't evaluate bulk DML statement",  # an earlier start: not counted
        "--- 2026-12-02T10:00:00+00:00 prefect server start",
        "INFO: Uvicorn running",
        "Traceback (most recent call last):",
        '  File "db.py", line 9, in execute',
        "    cursor.execute(sql)",
        "sqlite3.OperationalError: database is locked",
        "Traceback (most recent call last):",
        '  File "scheduler.py", line 3, in run',
        "sqlalchemy.exc.InvalidRequestError: Can't evaluate bulk DML statement; please supply a bulk_dml decorated function",
        "",
    ]), encoding="utf-8")
    assert up.server_log_tracebacks(log) == [
        "sqlalchemy.exc.InvalidRequestError: Can't evaluate bulk DML statement; please supply a bulk_dml decorated function"]
    assert up.server_log_tracebacks(log, transient=True) == ["sqlite3.OperationalError: database is locked"]
    assert up.server_log_tracebacks(tmp_path / "missing.log") == []


def test_the_stack_uses_the_databases_the_usual_variables_name(tmp_path: Path) -> None:
    layout = up.Layout(tmp_path)
    ports = up.Ports()
    embedded = up.stack_env(layout, ports, KEY, tmp_path / "home")
    assert up.databases(embedded, tmp_path / "home") == (
        f"databases: Prefect server sqlite+aiosqlite:///{tmp_path / 'home' / 'prefect.db'}, "
        f"ledger sqlite:///{layout.data_dir / 'ledger.sqlite3'}")
    ledger = "postgresql+psycopg://app:hunter2@db.internal:5432/ledger"
    production = {**up.stack_env(layout, ports, KEY, tmp_path / "home", ledger_url=ledger),
                  up.PREFECT_DATABASE_VARIABLE: "postgresql+asyncpg://prefect:s3cret@db.internal:5432/prefect"}
    assert production["TIKTOK_PIPELINE_DATABASE_URL"] == ledger
    line = up.databases(production, tmp_path / "home")
    assert line == ("databases: Prefect server postgresql+asyncpg://prefect:***@db.internal:5432/prefect, "
                    "ledger postgresql+psycopg://app:***@db.internal:5432/ledger")


POSTGRES_PREFECT = {up.PREFECT_DATABASE_VARIABLE: "postgresql+asyncpg://postgres@127.0.0.1:5432/prefect"}


@pytest.mark.parametrize(("environ", "message"), [
    ({"UP_EXTRA_API_PORTS": "4201"}, "needs UP_REDIS_URL"),
    ({"UP_REDIS_URL": "redis://127.0.0.1:6379/0"}, "needs the Prefect server on PostgreSQL"),
    ({"UP_REDIS_URL": "127.0.0.1:6379", **POSTGRES_PREFECT}, "not a redis:// or rediss:// URL"),
    ({"UP_EXTRA_API_PORTS": "4201,http", "UP_REDIS_URL": "redis://h/0", **POSTGRES_PREFECT}, "UP_EXTRA_API_PORTS"),
    ({"UP_WORKERS": "0"}, "UP_WORKERS='0' is not a whole number from 1 to 16"),
    ({"UP_WORKERS": "two"}, "UP_WORKERS"),
    ({"UP_WORKER_LIMIT": "-1"}, "UP_WORKER_LIMIT"),
])
def test_a_topology_that_cannot_work_is_refused_naming_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(up.UpError, match=message):
        up.Topology.from_env(environ)


def test_the_default_topology_is_one_server_with_its_services_and_one_bounded_worker() -> None:
    topology = up.Topology.from_env({})
    assert (topology.scaled_out, topology.workers, topology.prefect_env()) == (False, 1, {})
    assert topology.worker_limit == up.default_worker_limit() == 2 * (os.cpu_count() or 1)
    plan = up.services(up.Ports(), topology)
    assert [name for name in plan] == ["prefect", "sandbox", "moto", "worker", "listener", "webhooks"]
    assert plan["webhooks"].argv[1:] == ("webhooks", "serve") and plan["webhooks"].health_url == "http://127.0.0.1:9403/healthz"
    assert "--no-services" not in plan["prefect"].argv
    assert plan["worker"].argv[plan["worker"].argv.index("--limit") + 1] == str(topology.worker_limit)


def test_the_scaled_out_topology_is_prefects_multi_server_setup() -> None:
    topology = up.Topology.from_env({"UP_REDIS_URL": "redis://127.0.0.1:6379/3", "UP_EXTRA_API_PORTS": "4210",
                                     "UP_WORKERS": "3", "UP_WORKER_LIMIT": "2", **POSTGRES_PREFECT})
    env = topology.prefect_env()
    assert {key: env[key] for key in up.REDIS_MODULES} == up.REDIS_MODULES
    assert env["PREFECT_REDIS_MESSAGING_URL"] == env["PREFECT_SERVER_DOCKET_URL"] == "redis://127.0.0.1:6379/3"
    assert env["PREFECT_API_DATABASE_MIGRATE_ON_START"] == "false"
    plan = up.services(up.Ports(), topology)
    assert list(plan) == ["prefect", "prefect-2", "prefect-services", "sandbox", "moto", "worker", "worker-2",
                          "worker-3", "listener", "webhooks"]
    assert plan["prefect-2"].port == 4210 and plan["prefect-2"].health_url == "http://127.0.0.1:4210/api/health"
    assert all("--no-services" in plan[name].argv for name in ("prefect", "prefect-2"))
    assert plan["prefect-services"].argv[1:] == ("server", "services", "start")
    # Workers are spread over the API servers, each named and bounded.
    assert [dict(plan[name].env)["PREFECT_API_URL"] for name in ("worker", "worker-2", "worker-3")] == [
        "http://127.0.0.1:4200/api", "http://127.0.0.1:4210/api", "http://127.0.0.1:4200/api"]
    assert [plan[name].argv[-1] for name in ("worker", "worker-2", "worker-3")] == [
        up.WORKER_NAME, f"{up.WORKER_NAME}-2", f"{up.WORKER_NAME}-3"]
    assert all(plan[name].argv[plan[name].argv.index("--limit") + 1] == "2" for name in plan if name.startswith("worker"))
    # A queued run starts at most 2 s after a slot frees, not Prefect's 10 s.
    assert all(dict(plan[name].env)["PREFECT_WORKER_QUERY_SECONDS"] == "2.0" for name in plan if name.startswith("worker"))


def test_down_stops_the_clients_before_the_servers() -> None:
    names = ["sandbox", "prefect", "moto", "worker-2", "prefect-services", "webhooks", "listener", "prefect-2", "worker"]
    assert up.stop_order(names) == ["listener", "webhooks", "worker", "worker-2", "prefect-services", "prefect", "prefect-2",
                                    "moto", "sandbox"]
