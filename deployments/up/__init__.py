"""`make up` / `make down`: the whole pipeline on this machine, in the background.

`python -m deployments.up up` starts a Prefect server (UI on :4200), the TikTok sandbox and a moto
S3 server, connects two sandbox accounts through the real OAuth flow (`main` = studio_main,
`private` = private_creator), prepares the server as `tiktok-pipeline setup` does, uploads a sample
clip to s3://media/samples/sample.mp4, deploys prefect.yaml and starts a process worker and the S3
listener and the TikTok webhook receiver. It never reads stdin. `python -m deployments.up down` stops what `up` started and keeps the data.

Everything lives under .data/up/: a pid file and a log per process, `env` (every variable the
processes get, with the generated encryption key, which later runs reuse) and `data/` (ledger and
working files). Running `up` again leaves running processes alone and redoes the idempotent steps.
Ports: UP_PREFECT_PORT (4200), UP_SANDBOX_PORT (9400), UP_MOTO_PORT (9401), UP_REDIRECT_PORT (9402),
UP_WEBHOOKS_PORT (9403, the TikTok webhook receiver).
Databases: SQLite, unless PREFECT_API_DATABASE_CONNECTION_URL (Prefect's own setting: the server's)
and TIKTOK_PIPELINE_DATABASE_URL (the ledger's) name others, e.g. PostgreSQL. Scale-out (Prefect's
multi-server setup): UP_REDIS_URL, UP_EXTRA_API_PORTS, UP_WORKERS, UP_WORKER_LIMIT (see `topology`).

One module per job:

- `layout`    ports, the state directory, the environment of every process, the env file
- `processes` the supervisor: start in a session of its own, pid files that survive pid reuse, stop a tree
- `seed`      the sample clip in S3, the bucket's notification to the listener, the sandbox accounts (OAuth),
              the app's webhook URL
- `server`    the Prefect server: `tiktok-pipeline setup`'s steps, `prefect deploy --all`, the publish form
- `topology`  one server, or Prefect's scale-out setup (API servers, services, Redis); workers and their limit
- `checks`    the worker's heartbeat, the scheduler's upcoming runs, tracebacks in the server log
- `stack`     `up` and `down` (the order of the steps above) and the command line

The names below are the public surface (tests/plugins and tests/stack use them as `up.NAME`).
"""

from deployments.up.checks import (
    SCHEDULED_DEPLOYMENTS,
    SCHEDULER_TIMEOUT,
    TRANSIENT_SERVER_ERRORS,
    WORKER_NAME,
    server_log_tracebacks,
    upcoming_runs,
    wait_for_schedules,
    worker_online,
)
from deployments.up.layout import (
    BIN,
    HOST,
    INCOMING_PREFIX,
    PULL_PREFIX,
    REVIEW_PREFIX,
    PREFECT_DATABASE_VARIABLE,
    ROOT,
    SAMPLE_BUCKET,
    SAMPLE_KEY,
    SAMPLE_URI,
    Layout,
    Ports,
    UpError,
    api_url,
    databases,
    pull_url_prefix,
    sandbox_url,
    saved_encryption_key,
    shown,
    stack_env,
    webhooks_url,
    write_env_file,
)
from deployments.up.processes import (
    STARTUP_TIMEOUT,
    STOP_TIMEOUT,
    Service,
    answers,
    ensure_running,
    log_tail,
    port_is_free,
    running,
    start,
    stop,
    wait_until,
)
from deployments.up.seed import (
    ACCOUNTS,
    connect_sandbox_accounts,
    make_sample,
    open_in_sandbox,
    register_webhook_url,
    sample_clip_command,
    serve_pull_prefix,
    upload_sample,
    wire_sample_bucket,
)
from deployments.up.server import deploy, prepare_prefect, sync_forms
from deployments.up.stack import SERVICES, api_ports, down, main, publish_parameters, services, stop_order, summary, up
from deployments.up.topology import REDIS_MODULES, Topology, default_worker_limit

__all__ = [
    "ACCOUNTS", "BIN", "HOST", "INCOMING_PREFIX", "PULL_PREFIX", "REVIEW_PREFIX", "ROOT", "SAMPLE_BUCKET", "SAMPLE_KEY", "SAMPLE_URI",
    "PREFECT_DATABASE_VARIABLE", "REDIS_MODULES", "SCHEDULED_DEPLOYMENTS", "SCHEDULER_TIMEOUT", "SERVICES", "STARTUP_TIMEOUT", "STOP_TIMEOUT",
    "TRANSIENT_SERVER_ERRORS", "WORKER_NAME",
    "Layout", "Ports", "Service", "Topology", "UpError",
    "answers", "api_ports", "api_url", "connect_sandbox_accounts", "databases", "default_worker_limit", "deploy", "down", "ensure_running", "log_tail", "main",
    "make_sample", "open_in_sandbox", "port_is_free", "prepare_prefect", "publish_parameters", "pull_url_prefix",
    "register_webhook_url",
    "running",
    "sample_clip_command", "sandbox_url", "saved_encryption_key", "serve_pull_prefix", "server_log_tracebacks",
    "services", "shown",
    "stack_env", "start", "stop", "stop_order", "summary", "sync_forms", "up", "upcoming_runs", "upload_sample",
    "wait_for_schedules", "wait_until", "webhooks_url", "wire_sample_bucket", "worker_online", "write_env_file",
]
