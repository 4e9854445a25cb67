"""`make up` / `make down`: the whole pipeline on this machine, in the background.

`python -m deployments.up up` starts a Prefect server (UI on :4200), the TikTok sandbox and a moto
S3 server, connects two sandbox accounts through the real OAuth flow (`main` = studio_main,
`private` = private_creator), prepares the server as `tiktok-pipeline setup` does, uploads a sample
clip to s3://media/samples/sample.mp4, deploys prefect.yaml and starts a process worker. It never
reads stdin. `python -m deployments.up down` stops what `up` started and keeps the data.

Everything lives under .data/up/: a pid file and a log per process, `env` (every variable the
processes get, with the generated encryption key, which later runs reuse) and `data/` (ledger and
working files). Running `up` again leaves running processes alone and redoes the idempotent steps.
Ports: UP_PREFECT_PORT (4200), UP_SANDBOX_PORT (9400), UP_MOTO_PORT (9401), UP_REDIRECT_PORT (9402).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psutil
from dotenv import dotenv_values

from deployments.listener import wire_bucket
from deployments.local import FAKE_AWS_ENV
from ledger import generate_key
from sandbox import SandboxConfig, pipeline_env
from tiktok_pipeline.errors import PipelineError

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
BIN = Path(sys.executable).parent
WORK_POOL = "tiktok-pipeline"  # deployments.bootstrap.WORK_POOL_NAME, without importing Prefect here
WORKER_NAME = "tiktok-pipeline-local"
SAMPLE_BUCKET = "media"
SAMPLE_KEY = "samples/sample.mp4"
SAMPLE_URI = f"s3://{SAMPLE_BUCKET}/{SAMPLE_KEY}"
#: Ledger account name → sandbox test user who approves the OAuth request.
ACCOUNTS = {"main": "studio_main", "private": "private_creator"}
#: Start order; `down` stops in reverse.
SERVICES = ("prefect", "sandbox", "moto", "worker", "listener")
#: Uploads under this prefix of the sample bucket are published by the S3 → SQS listener.
INCOMING_PREFIX = "incoming/"

STARTUP_TIMEOUT = 180.0  # the first Prefect start creates its database
STOP_TIMEOUT = 20.0


class UpError(RuntimeError):
    """A step of `up` failed; the message says which and where its log is."""


@dataclass(frozen=True)
class Ports:
    prefect: int = 4200
    sandbox: int = 9400
    moto: int = 9401
    redirect: int = 9402

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Ports:
        values: dict[str, int] = {}
        for name, default in cls().__dict__.items():
            variable = f"UP_{name.upper()}_PORT"
            raw = environ.get(variable, str(default))
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise UpError(f"{variable}={raw!r} is not a TCP port")
            values[name] = int(raw)
        if len(set(values.values())) != len(values):
            raise UpError(f"the ports must differ, got {values}")
        return cls(**values)


@dataclass(frozen=True)
class Layout:
    """Where `up` keeps its state: `.data/up` in the checkout, or UP_STATE_DIR."""

    root: Path
    state: Path | None = None

    @classmethod
    def from_env(cls, root: Path, environ: Mapping[str, str]) -> Layout:
        state = environ.get("UP_STATE_DIR")
        return cls(root, Path(state).resolve() if state else None)

    @property
    def state_dir(self) -> Path:
        return self.state or self.root / ".data" / "up"

    @property
    def env_file(self) -> Path:
        return self.state_dir / "env"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def sample(self) -> Path:
        return self.state_dir / "sample.mp4"

    def pid_file(self, service: str) -> Path:
        return self.state_dir / f"{service}.pid"

    def log_file(self, name: str) -> Path:
        return self.state_dir / f"{name}.log"


@dataclass(frozen=True)
class Service:
    name: str
    argv: tuple[str, ...]
    port: int | None  # must be free before the start
    health_url: str | None  # None: readiness is checked another way


def api_url(ports: Ports) -> str:
    return f"http://{HOST}:{ports.prefect}/api"


def sandbox_url(ports: Ports) -> str:
    return f"http://{HOST}:{ports.sandbox}"


def stack_env(layout: Layout, ports: Ports, encryption_key: str, prefect_home: Path) -> dict[str, str]:
    """Every variable the processes of the stack need (the same for all of them)."""
    return {
        "PREFECT_API_URL": api_url(ports),
        # The UI asks this URL for its data; left unset it asks :4200 whatever port the server has.
        "PREFECT_UI_API_URL": api_url(ports),
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        **pipeline_env(sandbox_url(ports), SandboxConfig()),
        "TIKTOK_PIPELINE_REDIRECT_URI": f"http://{HOST}:{ports.redirect}/callback/",
        "TIKTOK_PIPELINE_DATA_DIR": str(layout.data_dir),
        "TIKTOK_PIPELINE_DATABASE_URL": f"sqlite:///{layout.data_dir / 'ledger.sqlite3'}",
        "TIKTOK_PIPELINE_ENCRYPTION_KEY": encryption_key,
        "TIKTOK_PIPELINE_S3_ENDPOINT_URL": f"http://{HOST}:{ports.moto}",
        "TIKTOK_PIPELINE_AWS_REGION": FAKE_AWS_ENV["AWS_DEFAULT_REGION"],
        "TIKTOK_PIPELINE_S3_PREFIXES": INCOMING_PREFIX,
        **FAKE_AWS_ENV,
    }


def services(ports: Ports) -> dict[str, Service]:
    prefect = str(BIN / "prefect")
    return {
        "prefect": Service(
            "prefect", (prefect, "server", "start", "--host", HOST, "--port", str(ports.prefect)),
            ports.prefect, f"{api_url(ports)}/health",
        ),
        "sandbox": Service(
            "sandbox",
            (str(BIN / "tiktok-pipeline"), "sandbox", "--host", HOST, "--port", str(ports.sandbox),
             "--log-level", "warning"),
            ports.sandbox, f"{sandbox_url(ports)}/_sandbox/clock",
        ),
        "moto": Service(
            "moto", (str(BIN / "moto_server"), "-H", HOST, "-p", str(ports.moto)), ports.moto,
            f"http://{HOST}:{ports.moto}/moto-api/",
        ),
        "worker": Service(
            "worker", (prefect, "--no-prompt", "worker", "start", "--pool", WORK_POOL, "--name", WORKER_NAME),
            None, None,
        ),
        "listener": Service("listener", (str(BIN / "tiktok-pipeline"), "listen"), None, None),
    }


def sample_clip_command(path: Path) -> list[str]:
    """ffmpeg: 5 s of 1280x720 (16:9, so the pipeline has to fit it to 9:16) H.264 video with AAC audio."""
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=5",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=5",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-shortest", "-movflags", "+faststart", str(path),
    ]  # fmt: skip


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    """KEY=value lines readable by `set -a; . FILE` and by dotenv; 0600 as it holds the key."""
    lines = ["# Written by `make up` (deployments/up.py); the encryption key is kept across runs."]
    lines += [f"{key}={shlex.quote(value)}" for key, value in sorted(values.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def saved_encryption_key(path: Path) -> str | None:
    if not path.exists():
        return None
    return dotenv_values(path).get("TIKTOK_PIPELINE_ENCRYPTION_KEY") or None


# --- processes -----------------------------------------------------------------------------------


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


def wait_until(ready, process: psutil.Process, what: str, log_file: Path, timeout: float = STARTUP_TIMEOUT) -> None:
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


def worker_online(ports: Ports, since: datetime) -> bool:
    """True once our worker has sent a heartbeat to the server after `since`."""
    try:
        response = httpx.post(f"{api_url(ports)}/work_pools/{WORK_POOL}/workers/filter", json={}, timeout=5.0)
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    for worker in response.json():
        beat = worker.get("last_heartbeat_time")
        if worker.get("name") == WORKER_NAME and worker.get("status") == "ONLINE" and beat:
            if datetime.fromisoformat(beat.replace("Z", "+00:00")) >= since:
                return True
    return False


# --- steps ---------------------------------------------------------------------------------------


def ensure_running(service: Service, env: Mapping[str, str], layout: Layout) -> tuple[psutil.Process, bool]:
    """(process, started now)."""
    pid_file, log_file = layout.pid_file(service.name), layout.log_file(service.name)
    process = running(pid_file)
    if process is not None:
        if json.loads(pid_file.read_text(encoding="utf-8"))["argv"] != list(service.argv):
            raise UpError(f"{service.name} is running with other options (ports changed?): run `make down` first")
        return process, False
    if service.port is not None and not port_is_free(service.port):
        raise UpError(
            f"port {service.port} ({service.name}) is used by another program: stop it, or choose another port "
            f"with UP_{service.name.upper()}_PORT"
        )
    return start(service.argv, env, pid_file, log_file, layout.root), True


def make_sample(path: Path) -> Path:
    if not path.exists():
        partial = path.with_suffix(".partial.mp4")
        subprocess.run(sample_clip_command(partial), check=True, stdin=subprocess.DEVNULL)
        partial.replace(path)
    return path


def upload_sample(sample: Path, endpoint_url: str) -> None:
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=FAKE_AWS_ENV["AWS_DEFAULT_REGION"])
    try:
        s3.create_bucket(Bucket=SAMPLE_BUCKET)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
    s3.upload_file(str(sample), SAMPLE_BUCKET, SAMPLE_KEY, ExtraArgs={"ContentType": "video/mp4"})


def open_in_sandbox(url: str) -> None:
    """What a browser does on the sandbox's authorize page: follow its redirect to our callback."""
    httpx.get(url, follow_redirects=True, timeout=30.0).raise_for_status()


def connect_sandbox_accounts() -> list[str]:
    from ledger import Ledger
    from tiktok_pipeline._connect import connect_account
    from tiktok_pipeline.settings import load_settings

    settings = load_settings()
    connected = []
    with Ledger.from_settings(settings) as book:
        for name, user in ACCOUNTS.items():
            account = connect_account(settings, book, name, open_in_sandbox, extra_params={"sandbox_user": user},
                                      timeout=30.0)
            connected.append(f"{account.name} ({account.nickname or account.open_id})")
    return connected


def prepare_prefect(ports: Ports) -> list[str]:
    """What `tiktok-pipeline setup` does: work pool and rate limits (in this process, same code)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.bootstrap import bootstrap
    from tiktok_pipeline.settings import load_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url(ports)}):
        return bootstrap(load_settings(), work_pool=WORK_POOL).lines()


def deploy(env: Mapping[str, str], layout: Layout) -> None:
    log_file = layout.log_file("deploy")
    with log_file.open("wb") as log:
        result = subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=layout.root, env=dict(env),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
    if result.returncode != 0:
        raise UpError(f"`prefect deploy --all` failed; end of {log_file}:\n{log_tail(log_file, 40)}")


#: The deployments the server's scheduler must give upcoming runs (prefect.yaml schedules them).
SCHEDULED_DEPLOYMENTS = ("refresh-tokens/refresh-tokens", "cleanup/cleanup")
SCHEDULER_TIMEOUT = 120.0


def upcoming_runs(api: str, deployments: Sequence[str] = SCHEDULED_DEPLOYMENTS) -> dict[str, list[datetime]]:
    """Start times of the scheduled runs of each `flow/deployment` that are still ahead, soonest first.

    Runs whose time has passed (Late: scheduled by an earlier server, never picked up) do not count:
    only runs ahead show that the scheduler works now.
    """
    now = datetime.now(timezone.utc).isoformat()
    upcoming: dict[str, list[datetime]] = {}
    for name in deployments:
        flow, _, deployment = name.partition("/")
        response = httpx.get(f"{api}/deployments/name/{flow}/{deployment}", timeout=10.0)
        if response.status_code == 404:
            upcoming[name] = []
            continue
        response.raise_for_status()
        runs = httpx.post(f"{api}/flow_runs/filter", timeout=10.0, json={
            "flow_runs": {"deployment_id": {"any_": [response.json()["id"]]}, "state": {"type": {"any_": ["SCHEDULED"]}},
                          "expected_start_time": {"after_": now}},
            "sort": "EXPECTED_START_TIME_ASC", "limit": 10,
        })
        runs.raise_for_status()
        upcoming[name] = [datetime.fromisoformat(r["expected_start_time"].replace("Z", "+00:00")) for r in runs.json()]
    return upcoming


def wait_for_schedules(api: str, timeout: float = SCHEDULER_TIMEOUT) -> dict[str, datetime]:
    """The next run of every scheduled deployment, once the server's scheduler has created them all.

    A server whose scheduler service is broken (SQLAlchemy 2.1 under Prefect 3.8) never creates one:
    that is the failure this waits for, and names.
    """
    deadline = time.monotonic() + timeout
    while True:
        upcoming = upcoming_runs(api)
        if all(upcoming.values()):
            return {name: times[0] for name, times in upcoming.items()}
        if time.monotonic() > deadline:
            missing = ", ".join(name for name, times in upcoming.items() if not times)
            raise UpError(f"the Prefect scheduler created no upcoming run of {missing} within {timeout:.0f} s; "
                          "see the Prefect server log")
        time.sleep(2.0)


#: SQLite answers "database is locked" to a write racing another one (a loaded machine, several
#: workers); Prefect logs the traceback and does the work again (its event queue retries the message,
#: the worker's next heartbeat is stored): contention, which PostgreSQL avoids, not a broken server.
TRANSIENT_SERVER_ERRORS = ("database is locked",)


def server_log_tracebacks(log_file: Path, *, transient: bool = False) -> list[str]:
    """The last line of every traceback the server logged since it was last started by `up`: those of
    real failures, or with `transient` those of TRANSIENT_SERVER_ERRORS only."""
    if not log_file.exists():
        return []
    lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("--- ")]
    lines = lines[starts[-1] + 1:] if starts else lines
    found: list[str] = []
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            tail = next((later for later in lines[i + 1:] if later and not later[0].isspace()), line)
            if any(error in tail for error in TRANSIENT_SERVER_ERRORS) == transient:
                found.append(tail.strip())
    return found


def publish_parameters() -> dict[str, object]:
    return {"request": {"source": SAMPLE_URI, "accounts": ["main"], "privacy_level": "SELF_ONLY"}}


def summary(ports: Ports, layout: Layout, accounts: Sequence[str], seconds: float) -> str:
    parameters = publish_parameters()
    run = (
        f"PREFECT_API_URL={api_url(ports)} {shlex.quote(str(BIN / 'prefect'))} deployment run "
        f"publish-video/publish-video --params {shlex.quote(json.dumps(parameters))} --watch"
    )
    env_file = shown(layout, layout.env_file)
    metadata = {"tiktok-accounts": "main", "tiktok-privacy-level": "SELF_ONLY", "tiktok-caption": "Dropped in the bucket"}
    code = (  # single quotes only, so the whole line can go in double quotes
        f"import boto3; boto3.client('s3', endpoint_url='http://{HOST}:{ports.moto}', region_name='us-east-1', "
        "aws_access_key_id='testing', aws_secret_access_key='testing').upload_file("
        f"'{layout.sample}', '{SAMPLE_BUCKET}', '{INCOMING_PREFIX}clip.mp4', ExtraArgs={{'Metadata': {metadata!r}}})"
    )
    upload = f'{BIN / "python"} -c "{code}"'
    return "\n".join([
        f"tiktok-pipeline is up ({seconds:.1f} s)",
        f"  Prefect UI      http://{HOST}:{ports.prefect}",
        f"  TikTok sandbox  {sandbox_url(ports)}  (posts received: {sandbox_url(ports)}/_sandbox/posts)",
        f"  S3 (moto)       http://{HOST}:{ports.moto}  sample clip: {SAMPLE_URI}",
        f"  accounts        {', '.join(accounts)}",
        f"  worker          {WORKER_NAME} on work pool {WORK_POOL}",
        f"  environment     {env_file}  (logs: {env_file.parent}/*.log)",
        "",
        "Publish the sample from the UI: Deployments → publish-video → Run → Custom run, then in `request`:",
        f"  source         {SAMPLE_URI}",
        "  accounts       main",
        "  privacy_level  SELF_ONLY",
        "  (leave the other fields as they are; as JSON: " + json.dumps(parameters["request"]) + ")",
        "",
        "Or from a shell:",
        f"  {run}",
        "The same request twice gives the first post back (idempotency): change the caption to post again.",
        "",
        f"Or let the bucket publish by itself: anything uploaded under s3://{SAMPLE_BUCKET}/{INCOMING_PREFIX} is picked up by",
        "the listener (S3 → SQS → publish-s3-object), with what to publish in a <key>.json sidecar or metadata:",
        f"  {upload}",
        "",
        "Stop everything with `make down` (the ledger and the Prefect database are kept).",
    ])  # fmt: skip


def shown(layout: Layout, path: Path) -> Path:
    """`path` relative to the checkout when it is inside it (as people type it), else absolute."""
    try:
        return path.relative_to(layout.root)
    except ValueError:
        return path


def up(layout: Layout = Layout(ROOT)) -> None:
    started = time.monotonic()
    ports = Ports.from_env(os.environ)
    layout.state_dir.mkdir(parents=True, exist_ok=True)
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    key = saved_encryption_key(layout.env_file) or generate_key()
    prefect_home = Path(os.environ.get("PREFECT_HOME") or layout.root / ".prefect")
    values = stack_env(layout, ports, key, prefect_home)
    write_env_file(layout.env_file, values)
    # This process connects the accounts and runs the setup: it sees what the services see.
    os.environ.update(values)
    env = dict(os.environ)
    plan = services(ports)

    processes = {}
    for name in ("prefect", "sandbox", "moto"):
        processes[name], fresh = ensure_running(plan[name], env, layout)
        print(f"{name}: {'started' if fresh else 'already running'} (pid {processes[name].pid})", flush=True)

    def wait_healthy(name: str) -> None:
        url = plan[name].health_url
        wait_until(lambda: answers(url), processes[name], name, layout.log_file(name))
        print(f"{name}: ready at {url}", flush=True)

    # Work that needs only the sandbox and S3 overlaps the Prefect server's (slower) start.
    make_sample(layout.sample)
    wait_healthy("sandbox")
    if not port_is_free(ports.redirect):
        raise UpError(f"port {ports.redirect} (OAuth redirect) is used by another program: set UP_REDIRECT_PORT")
    accounts = connect_sandbox_accounts()
    print(f"accounts connected through OAuth: {', '.join(accounts)}", flush=True)
    wait_healthy("moto")
    upload_sample(layout.sample, values["TIKTOK_PIPELINE_S3_ENDPOINT_URL"])
    print(f"sample clip uploaded to {SAMPLE_URI}", flush=True)
    wiring = wire_bucket(SAMPLE_BUCKET, endpoint_url=values["TIKTOK_PIPELINE_S3_ENDPOINT_URL"], prefix=INCOMING_PREFIX)
    values.update(wiring.env())
    env.update(wiring.env())
    os.environ.update(wiring.env())
    write_env_file(layout.env_file, values)
    print(f"bucket notification: s3://{SAMPLE_BUCKET}/{INCOMING_PREFIX}* → {wiring.env()['TIKTOK_PIPELINE_S3_QUEUE_URL']}",
          flush=True)
    wait_healthy("prefect")
    for line in prepare_prefect(ports):
        print(f"setup: {line}", flush=True)
    deploy(env, layout)
    print("deployed prefect.yaml (publish-video, publish-s3-object, refresh-tokens, cleanup, ...)", flush=True)
    from deployments.forms import sync_publish_forms  # `prefect deploy` rewrote the form: offer the accounts again

    print("\n".join(sync_publish_forms(api_url=api_url(ports)).lines()), flush=True)
    for name, when in wait_for_schedules(api_url(ports)).items():
        print(f"scheduler: next {name} run at {when:%Y-%m-%d %H:%M} UTC", flush=True)
    if problems := server_log_tracebacks(layout.log_file("prefect")):
        raise UpError(f"the Prefect server logged {len(problems)} traceback(s), the last: {problems[-1]}; "
                      f"see {shown(layout, layout.log_file('prefect'))}")
    retried = server_log_tracebacks(layout.log_file("prefect"), transient=True)
    print("Prefect server log: no traceback" + (f" ({len(retried)} transient SQLite 'database is locked', retried by "
                                                 "Prefect)" if retried else ""), flush=True)

    since = datetime.now(timezone.utc)
    worker, fresh = ensure_running(plan["worker"], env, layout)
    if fresh:
        wait_until(lambda: worker_online(ports, since), worker, "worker", layout.log_file("worker"))
    print(f"worker: {'started' if fresh else 'already running'} (pid {worker.pid})", flush=True)
    listener, fresh = ensure_running(plan["listener"], env, layout)
    if fresh:
        log = layout.log_file("listener")
        wait_until(lambda: log.exists() and "listening to" in log.read_text(errors="replace"), listener, "listener", log)
    print(f"listener: {'started' if fresh else 'already running'} (pid {listener.pid})", flush=True)
    print()
    print(summary(ports, layout, accounts, time.monotonic() - started))


def down(layout: Layout = Layout(ROOT)) -> None:
    for name in reversed(SERVICES):
        pid = stop(layout.pid_file(name))
        print(f"{name}: stopped (pid {pid})" if pid else f"{name}: not running", flush=True)
    print(f"data kept in {shown(layout, layout.state_dir)}/")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.up", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down"))
    command = parser.parse_args(argv).command
    try:
        layout = Layout.from_env(ROOT, os.environ)
        up(layout) if command == "up" else down(layout)
    except (UpError, PipelineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if command == "up":
            print("What started is still running (see the logs); `make down` stops it.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
