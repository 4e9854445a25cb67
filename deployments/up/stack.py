"""`make up` / `make down`: start the stack's processes in order, seed them, deploy, check, report."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from deployments.names import WORK_POOL_NAME
from deployments.up.checks import WORKER_NAME, server_log_tracebacks, wait_for_schedules, warm_start_ready, worker_online
from deployments.up.server import deploy, migrate, prepare_prefect, sync_forms
from deployments.up.layout import (
    BIN,
    HOST,
    INCOMING_PREFIX,
    PULL_PREFIX,
    REVIEW_PREFIX,
    ROOT,
    SAMPLE_BUCKET,
    SAMPLE_URI,
    Layout,
    Ports,
    UpError,
    api_url,
    databases,
    pull_url_prefix,
    sandbox_url,
    saved_encryption_key,
    webhooks_url,
    shown,
    stack_env,
    write_env_file,
)
from deployments.up.processes import Service, answers, ensure_running, port_is_free, stop, wait_until
from deployments.up.topology import Topology
from deployments.up.seed import (
    connect_sandbox_accounts,
    make_sample,
    register_webhook_url,
    serve_pull_prefix,
    upload_sample,
    wire_sample_bucket,
)
from ledger import generate_key
from tiktok_pipeline.errors import PipelineError

#: Start order; `down` stops in reverse.
SERVICES = ("prefect", "sandbox", "moto", "worker", "listener", "webhooks")


def api_ports(ports: Ports, topology: Topology) -> tuple[int, ...]:
    return (ports.prefect, *topology.extra_api_ports)


def services(ports: Ports, topology: Topology = Topology()) -> dict[str, Service]:
    """Every process of the stack, in start order (`prefect` is the first API server)."""
    prefect = str(BIN / "prefect")
    plan: dict[str, Service] = {}
    servers = api_ports(ports, topology)
    for index, port in enumerate(servers, 1):
        name = "prefect" if index == 1 else f"prefect-{index}"
        plan[name] = Service(
            name, (prefect, "server", "start", "--host", HOST, "--port", str(port),
                   *(("--no-services",) if topology.scaled_out else ())),
            port, f"http://{HOST}:{port}/api/health",
        )
    if topology.scaled_out:
        plan["prefect-services"] = Service("prefect-services", (prefect, "server", "services", "start"), None, None)
    plan["sandbox"] = Service(
        "sandbox",
        # The receiver's URL as the app's callback from the start: a sandbox reset restores it too.
        (str(BIN / "tiktok-pipeline"), "sandbox", "--host", HOST, "--port", str(ports.sandbox),
         "--webhook-url", webhooks_url(ports), "--verified-url-prefix", pull_url_prefix(ports), "--log-level", "warning"),
        ports.sandbox, f"{sandbox_url(ports)}/_sandbox/clock",
    )
    plan["moto"] = Service(
        "moto", (str(BIN / "moto_server"), "-H", HOST, "-p", str(ports.moto)), ports.moto,
        f"http://{HOST}:{ports.moto}/moto-api/",
    )
    for index, worker_name in enumerate(topology.worker_names(WORKER_NAME)):
        name = "worker" if index == 0 else f"worker-{index + 1}"
        server = servers[index % len(servers)]  # workers spread over the API servers
        plan[name] = Service(
            # `tiktok-pipeline worker`: Prefect's worker, with flow runs forked from a preloaded process.
            name, (str(BIN / "tiktok-pipeline"), "worker", "--limit", str(topology.worker_limit),
                   "--pool", WORK_POOL_NAME, "--name", worker_name),
            None, None, env=(("PREFECT_API_URL", f"http://{HOST}:{server}/api"),
                             ("PREFECT_WORKER_QUERY_SECONDS", str(topology.worker_query_seconds))),
        )
    plan["listener"] = Service("listener", (str(BIN / "tiktok-pipeline"), "listen"), None, None)
    # Host and port come from the environment (TIKTOK_PIPELINE_TIKTOK_WEBHOOKS_HOST/_PORT, `stack_env`).
    plan["webhooks"] = Service("webhooks", (str(BIN / "tiktok-pipeline"), "webhooks", "serve"), ports.webhooks,
                               f"http://{HOST}:{ports.webhooks}/healthz")
    return plan


def stop_order(names: Sequence[str]) -> list[str]:
    """What stops first: the listener and workers (they talk to the servers), then Prefect, then the rest."""
    rank = {"listener": 0, "webhooks": 0, "worker": 1, "prefect-services": 2, "prefect": 3, "moto": 4, "sandbox": 5}
    return sorted(names, key=lambda name: (rank.get(name, rank.get(name.rsplit("-", 1)[0], 1)), name))


def publish_parameters() -> dict[str, object]:
    return {"request": {"source": SAMPLE_URI, "accounts": ["main"], "privacy_level": "SELF_ONLY"}}


def summary(ports: Ports, layout: Layout, accounts: Sequence[str], seconds: float,
            topology: Topology = Topology()) -> str:
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
        *([f"  API servers     {', '.join(f'http://{HOST}:{port}/api' for port in api_ports(ports, topology))}"
           " (+ Prefect's services in a process of their own, events through Redis)"] if topology.scaled_out else []),
        f"  TikTok sandbox  {sandbox_url(ports)}  (posts received: {sandbox_url(ports)}/_sandbox/posts)",
        f"  S3 (moto)       http://{HOST}:{ports.moto}  sample clip: {SAMPLE_URI}",
        f"  TikTok webhooks {webhooks_url(ports)}  (the sandbox sends its webhooks there; polling is the safety net)",
        f"  accounts        {', '.join(accounts)}",
        f"  worker          {', '.join(topology.worker_names(WORKER_NAME))} on work pool {WORK_POOL_NAME}, "
        f"at most {topology.worker_limit} flow runs at once each",
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
        f"Under s3://{SAMPLE_BUCKET}/{REVIEW_PREFIX} the run waits for a review in the UI first: open it (Paused), "
        "Resume, fill TikTok's form.",
        "",
        "Stop everything with `make down` (the ledger and the Prefect database are kept).",
    ])  # fmt: skip


def up(layout: Layout = Layout(ROOT)) -> None:
    started = time.monotonic()
    ports = Ports.from_env(os.environ)
    topology = Topology.from_env(os.environ)
    if clash := set(topology.extra_api_ports) & {*ports.__dict__.values()}:
        raise UpError(f"UP_EXTRA_API_PORTS repeats a port of the stack: {sorted(clash)}")
    layout.state_dir.mkdir(parents=True, exist_ok=True)
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    key = saved_encryption_key(layout.env_file) or generate_key()
    prefect_home = Path(os.environ.get("PREFECT_HOME") or layout.root / ".prefect")
    # The production databases (PostgreSQL) when the usual variables name them; SQLite otherwise.
    values = {**stack_env(layout, ports, key, prefect_home, ledger_url=os.environ.get("TIKTOK_PIPELINE_DATABASE_URL")),
              **topology.prefect_env()}
    write_env_file(layout.env_file, values)
    # This process connects the accounts and runs the setup: it sees what the services see.
    os.environ.update(values)
    env = dict(os.environ)
    plan = services(ports, topology)
    servers = [name for name in plan if name.startswith("prefect")]

    print(databases(env, prefect_home), flush=True)
    if topology.scaled_out:
        migrate(env, layout)
        print("prefect: database migrated (`prefect server database upgrade -y`)", flush=True)
    processes = {}

    def start(name: str) -> None:
        processes[name], fresh = ensure_running(plan[name], env, layout)
        print(f"{name}: {'started' if fresh else 'already running'} (pid {processes[name].pid})", flush=True)

    # The first server alone: every server registers Prefect's block types when it starts, and two
    # at once on one database collide (unique violation on block_type.slug) and one exits.
    for name in ("prefect", "sandbox", "moto"):
        start(name)

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
    serve_pull_prefix(values["TIKTOK_PIPELINE_S3_ENDPOINT_URL"])
    print(f"photo posts: staged under s3://{SAMPLE_BUCKET}/{PULL_PREFIX}, pulled by TikTok from {pull_url_prefix(ports)}",
          flush=True)
    wiring = wire_sample_bucket(values["TIKTOK_PIPELINE_S3_ENDPOINT_URL"])
    values.update(wiring.env())
    env.update(wiring.env())
    os.environ.update(wiring.env())
    write_env_file(layout.env_file, values)
    print(f"bucket notification: s3://{SAMPLE_BUCKET}/{INCOMING_PREFIX}* → {wiring.env()['TIKTOK_PIPELINE_S3_QUEUE_URL']}",
          flush=True)
    wait_healthy("prefect")
    for name in servers[1:]:
        start(name)
    for name in servers[1:]:
        if plan[name].health_url:
            wait_healthy(name)
    for line in prepare_prefect(ports):
        print(f"setup: {line}", flush=True)
    deploy(env, layout)
    print("deployed prefect.yaml (publish-video, publish-s3-object, refresh-tokens, cleanup, ...)", flush=True)
    print("\n".join(sync_forms(ports)), flush=True)
    for name, when in wait_for_schedules(api_url(ports)).items():
        print(f"scheduler: next {name} run at {when:%Y-%m-%d %H:%M} UTC", flush=True)
    for name in servers:
        if problems := server_log_tracebacks(layout.log_file(name)):
            raise UpError(f"the Prefect server ({name}) logged {len(problems)} traceback(s), the last: {problems[-1]}; "
                          f"see {shown(layout, layout.log_file(name))}")
    retried = [line for name in servers for line in server_log_tracebacks(layout.log_file(name), transient=True)]
    print("Prefect server log: no traceback" + (f" ({len(retried)} transient SQLite 'database is locked', retried by "
                                                 "Prefect)" if retried else ""), flush=True)

    # Before the workers: the first post's webhook has a receiver.
    start("webhooks")
    wait_healthy("webhooks")
    register_webhook_url(sandbox_url(ports), webhooks_url(ports))
    print(f"sandbox: sends TikTok's webhooks to {webhooks_url(ports)}", flush=True)

    since = datetime.now(timezone.utc)
    workers = {name: service for name, service in plan.items() if name.startswith("worker")}
    started_workers = []
    for (name, service), worker_name in zip(workers.items(), topology.worker_names(WORKER_NAME)):
        worker, fresh = ensure_running(service, env, layout)
        if fresh:
            wait_until(lambda: worker_online(ports, since, worker_name), worker, name, layout.log_file(name))
            started_workers.append((name, worker))
        print(f"{name}: {'started' if fresh else 'already running'} (pid {worker.pid}, "
              f"at most {topology.worker_limit} flow runs at once)", flush=True)
    for name, worker in started_workers:  # the preloads ran meanwhile: runs submitted from now on start warm
        log = layout.log_file(name)
        wait_until(lambda: warm_start_ready(log), worker, f"{name}'s preloaded process", log)
    listener, fresh = ensure_running(plan["listener"], env, layout)
    if fresh:
        log = layout.log_file("listener")
        wait_until(lambda: log.exists() and "listening to" in log.read_text(errors="replace"), listener, "listener", log)
    print(f"listener: {'started' if fresh else 'already running'} (pid {listener.pid})", flush=True)
    print()
    print(summary(ports, layout, accounts, time.monotonic() - started, topology))


def down(layout: Layout = Layout(ROOT)) -> None:
    started = {path.stem for path in layout.state_dir.glob("*.pid")} if layout.state_dir.is_dir() else set()
    for name in stop_order(sorted({*SERVICES, *started})):
        pid = stop(layout.pid_file(name))
        print(f"{name}: stopped (pid {pid})" if pid else f"{name}: not running", flush=True)
    print(f"data kept in {shown(layout, layout.state_dir)}/")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.up",
                                     description="`make up` / `make down`: the whole pipeline on this machine, in the background.")
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
