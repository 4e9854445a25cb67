"""Tasks of the scheduled maintenance flows: token refresh and account health, reconciliation,
working-file sweeping, the retry of publish runs whose process died, and the redelivery of webhooks
still in the outbox.

The rules are the service layer's (`publishing.maintenance`); these tasks add retries, the
account-health artifact, the run logger, and the Prefect API queries that find and retry crashed runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowFilter,
    FlowFilterId,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.logging import get_run_logger
from prefect.states import Crashed

from ledger import Post
from publishing.maintenance import (
    GIVEN_UP_TAG,
    MAX_CRASHES,
    PUBLISHING_FLOWS,
    RETRY_TAG,
    AccountHealth,
    AccountsNeedAttention,
    CrashPlan,
    CrashRetriesExhausted,
    RunRecord,
    WebhookRedelivery,
    account_health,
    health_problem,
    health_rows,
    plan_crash_retries,
    prune_received_webhooks,
    redeliver_webhooks,
    refresh_token,
    retry_idempotency_key,
)
from publishing.maintenance import accounts_to_refresh as active_accounts
from publishing.maintenance import posts_to_reconcile as stale_posts
from publishing.maintenance import reconcile_post as reconcile
from publishing.posting import UPLOAD_URL_LIFETIME, kept_media_in_use
from publishing.services import Services
from publishing.workdirs import sweep_ended_runs, sweep_kept_media, sweep_work_dirs
from tasks import runtime
from tasks.policy import STEP_OPTIONS, retry_options

__all__ = [
    "ACCOUNT_HEALTH_KEY",
    "GIVEN_UP_TAG",
    "MAX_CRASHES",
    "PUBLISHING_FLOWS",
    "RETRY_TAG",
    "AccountHealth",
    "AccountsNeedAttention",
    "CrashPlan",
    "CrashRetries",
    "CrashRetriesExhausted",
    "RunRecord",
    "WebhookRedelivery",
    "accounts_to_refresh",
    "health_problem",
    "health_rows",
    "plan_crash_retries",
    "posts_to_reconcile",
    "reconcile_post",
    "prune_tiktok_webhooks",
    "redeliver_pending_webhooks",
    "refresh_account_token",
    "report_account_health",
    "retry_crashed_runs",
    "retry_idempotency_key",
    "sweep",
    "sweep_media",
]


@task(name="refresh-token", **retry_options())
def refresh_account_token(account_name: str, margin_hours: float) -> str:
    """Refresh one account's token when it expires within the margin; returns what happened."""
    return refresh_token(runtime.services(), account_name, margin_hours, get_run_logger())


@task(name="reconcile-post", **retry_options())
def reconcile_post(post_id: int) -> Post:
    """Ask TikTok where a post stands and record it; returns the post as the ledger has it now."""
    return reconcile(runtime.services(), post_id, get_run_logger())


@task(name="sweep-work-dirs", **STEP_OPTIONS)
def sweep(older_than_hours: float) -> int:
    """Remove the working directories of runs that ended without removing theirs (a killed worker), then
    any directory untouched for `older_than_hours`."""
    current = runtime.settings()
    with get_client(sync_client=True) as client:
        ended = sweep_ended_runs(current, lambda run_id: runtime.flow_run_has_ended(client, run_id))
    for path in ended:
        get_run_logger().info("removed the working directory of ended run %s", path.name)
    removed = sweep_work_dirs(current, older_than_s=older_than_hours * 3600)
    for path in removed:
        get_run_logger().info("removed stale working directory %s", path)
    return len(ended) + len(removed)


@task(name="sweep-kept-media", **STEP_OPTIONS)
def sweep_media(idle_hours: float = UPLOAD_URL_LIFETIME.total_seconds() / 3600) -> int:
    """Remove the media kept for posts (`<data_dir>/media`) that no post can still send bytes from:
    every post that announced it settled (uploaded, published, in the inbox, failed, discarded...)
    or its upload URL long expired. A file touched within `idle_hours` stays (it may be kept for an
    init under way); a file an initialized post still needs always stays."""
    svc = runtime.services()
    removed = sweep_kept_media(svc.settings, kept_media_in_use(svc), idle_s=idle_hours * 3600)
    for path in removed:
        get_run_logger().info("removed kept media %s: no post needs it any more", path)
    return len(removed)


@task(name="redeliver-webhooks", **STEP_OPTIONS)
def redeliver_pending_webhooks() -> WebhookRedelivery:
    """Send the webhooks of the outbox that are due again (same body and event id), give up on those no
    receiver took within 24 h (the reason recorded in the ledger). Not retried: the next cleanup is."""
    return redeliver_webhooks(runtime.services(), get_run_logger())


@task(name="prune-tiktok-webhooks", **STEP_OPTIONS)
def prune_tiktok_webhooks() -> int:
    """Delete the TikTok webhooks received and applied longer ago than TIKTOK_WEBHOOKS_KEEP_HOURS (at
    least TikTok's 72 h of redelivery, so a redelivery is still recognised). Not retried: the next cleanup is."""
    return prune_received_webhooks(runtime.services(), get_run_logger())


def accounts_to_refresh(services: Services | None = None) -> list[str]:
    return active_accounts(services or runtime.services())


def posts_to_reconcile(stale_after: timedelta = UPLOAD_URL_LIFETIME, services: Services | None = None) -> list[Post]:
    """Posts whose outcome TikTok may still change, plus uploads abandoned for over an hour."""
    return stale_posts(services or runtime.services(), stale_after)


# --- account health ------------------------------------------------------------------------------

#: The key of the refresh-tokens table artifact: the UI keeps its history under Artifacts.
ACCOUNT_HEALTH_KEY = "account-health"


@task(name="report-account-health", **STEP_OPTIONS)
def report_account_health(outcomes: dict[str, str]) -> list[AccountHealth]:
    """Every account's tokens, caps and status as a table artifact (key `account-health`)."""
    svc = runtime.services()
    health = account_health(svc, outcomes)
    problem = health_problem(health)
    create_table_artifact(
        table=health_rows(health, svc.ledger.now()), key=ACCOUNT_HEALTH_KEY,
        description=str(problem) if problem else f"{len(health)} account(s), all able to post",
    )
    return health


# --- crashed publish runs: the plan is the service layer's, the Prefect API queries are here -----


@dataclass
class CrashRetries:
    """What `retry_crashed_runs` did."""

    retried: list[str] = field(default_factory=list)  # "crashed run → retry run"
    given_up: list[dict[str, Any]] = field(default_factory=list)
    orphans_crashed: int = 0


def _all_runs(client: SyncPrefectClient, **filters: Any) -> list[FlowRun]:
    runs: list[FlowRun] = []
    while True:
        page = client.read_flow_runs(sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=200, offset=len(runs), **filters)
        runs += page
        if len(page) < 200:
            return runs


def _record(run: FlowRun, flow_names: dict[UUID, str]) -> RunRecord:
    return RunRecord(
        id=str(run.id), name=run.name, flow=flow_names.get(run.flow_id, "?"), deployment_id=str(run.deployment_id),
        parameters=dict(run.parameters or {}), state=run.state.type.value if run.state else "PENDING",
        state_name=run.state.name if run.state else "Pending", created=run.created or datetime.now(UTC),
        tags=frozenset(run.tags or ()),
    )


def _crash_orphans(client: SyncPrefectClient, crashed: Sequence[FlowRun]) -> int:
    """Subflow runs (publish-video under publish-s3-object, ...) still Running under a crashed run
    died with it: their heartbeats are not watched (they carry no deployment tag), so say it here."""
    if not crashed:
        return 0
    orphans = _all_runs(client, flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id for run in crashed]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])),
    ))
    for orphan in orphans:
        client.set_flow_run_state(orphan.id, Crashed(message="the flow run it ran in crashed"), force=True)
        get_run_logger().warning("subflow run %s was still Running under a crashed run: marked Crashed", orphan.name)
    return len(orphans)


def _retry(client: SyncPrefectClient, plan: CrashPlan, label: str) -> str:
    """A new run of the crashed run's deployment with its parameters; how to find it (its name is the
    server's until the run starts and names itself from its request)."""
    retry = client.create_flow_run_from_deployment(
        UUID(plan.run.deployment_id), parameters=plan.run.parameters, tags=[RETRY_TAG],
        idempotency_key=retry_idempotency_key(plan.run.id),
    )
    get_run_logger().info("%s crashed (%s): retried as run %s (%s)", label, plan.reason, retry.name, retry.id)
    return f"{retry.name} ({retry.id})"


def _give_up(client: SyncPrefectClient, plan: CrashPlan, label: str) -> dict[str, Any]:
    client.update_flow_run(UUID(plan.run.id), tags=sorted(plan.run.tags | {GIVEN_UP_TAG}))
    get_run_logger().error("%s %s: no more retries; run it again by hand once the cause is fixed", label, plan.reason)
    return {"flow_run_id": plan.run.id, "flow_run": plan.run.name, "flow": plan.run.flow, "crashes": plan.crashes}


@task(name="retry-crashed-runs", **STEP_OPTIONS)
def retry_crashed_runs(within_hours: float, max_crashes: int = MAX_CRASHES) -> CrashRetries:
    """Run publish runs that crashed within the last `within_hours` again, with their parameters.

    At most `max_crashes` crashes per request; each retry's idempotency key is derived from the run it
    retries, so overlapping cleanups start one retry. The re-run continues the same ledger posts.
    """
    logger = get_run_logger()
    done = CrashRetries()
    cutoff = datetime.now(UTC) - timedelta(hours=within_hours)
    with get_client(sync_client=True) as client:
        flows = client.read_flows(flow_filter=FlowFilter(name=FlowFilterName(any_=list(PUBLISHING_FLOWS))))
        flow_names = {f.id: f.name for f in flows}
        if not flow_names:
            return done
        in_window = FlowRunFilterExpectedStartTime(after_=cutoff)
        crashed = _all_runs(client, flow_filter=FlowFilter(id=FlowFilterId(any_=list(flow_names))), flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.CRASHED])),
            expected_start_time=in_window,
        ))
        # Their working directories are left to the sweeper: a run marked Crashed while the server was
        # unreachable may still be alive, and its files in use.
        done.orphans_crashed = _crash_orphans(client, crashed)
        deployment_ids = sorted({run.deployment_id for run in crashed if run.deployment_id}, key=str)
        if not deployment_ids:
            return done
        runs = _all_runs(client, flow_run_filter=FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=deployment_ids), expected_start_time=in_window))
        deployments = {d.id: d.name for d in client.read_deployments(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployment_ids)))}
        for plan in plan_crash_retries((_record(r, flow_names) for r in runs), max_crashes):
            label = f"{plan.run.flow}/{deployments.get(UUID(plan.run.deployment_id), '?')} run {plan.run.name}"
            if plan.action == "retry":
                done.retried.append(f"{plan.run.name} → {_retry(client, plan, label)}")
            elif plan.action == "give_up":
                done.given_up.append(_give_up(client, plan, label))
            else:
                logger.debug("%s crashed: not retried, %s", label, plan.reason)
    return done
