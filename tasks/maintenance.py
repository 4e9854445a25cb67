"""Tasks of the scheduled maintenance flows: token refresh and account health, reconciliation,
working-file sweeping, and the retry of publish runs whose process died."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
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

from ledger import AccountNeedsReconnect, AccountStatus, Post, PostState
from tasks import _context
from tasks._policy import retry_options
from tasks._workdirs import sweep_kept_media, sweep_work_dirs
from tasks.publishing import UPLOAD_URL_LIFETIME, kept_media_in_use, record_status
from tiktok import PublishFailed, publish_failed
from tiktok_pipeline.errors import PipelineError


@task(name="refresh-token", **retry_options())
def refresh_account_token(account_name: str, margin_hours: float) -> str:
    """Refresh one account's token when it expires within the margin; returns what happened."""
    current = _context.settings()
    try:
        _, refreshed = _context.ledger(current).ensure_fresh_token(
            account_name, _context.refresher(current), margin=timedelta(hours=margin_hours)
        )
    except AccountNeedsReconnect as exc:
        get_run_logger().error(str(exc))
        return "needs_reconnect"
    return "refreshed" if refreshed else "fresh"


@task(name="reconcile-post", **retry_options())
def reconcile_post(post_id: int) -> Post:
    """Ask TikTok where a post stands and record it; returns the post as the ledger has it now."""
    current = _context.settings()
    book = _context.ledger(current)
    post = book.get_post(post_id)
    if not post.publish_id:
        # init's answer was lost before a publish_id arrived: only the creator's app can tell.
        return post
    account = book.get_account(post.account_name)
    if account.status is not AccountStatus.active:
        return post
    try:
        status = _context.with_client(current, post.account_name, lambda c: c.fetch_status(post.publish_id))
    except PipelineError as exc:
        if exc.retryable:
            raise
        get_run_logger().warning("post %d: status/fetch refused: %s", post.id, exc)
        return post
    return _apply_status(post, status, account.username, book.now() - post.updated_at)


def _apply_status(post: Post, status, username: str | None, age: timedelta) -> Post:
    book = _context.ledger()
    if status.status == "FAILED":
        exc: PublishFailed = publish_failed(status)
        return book.transition(post, PostState.failed, error_code=status.fail_reason, error_message=str(exc),
                               message=f"reconciled: TikTok reports FAILED ({status.fail_reason})")
    if status.status in ("PUBLISH_COMPLETE", "SEND_TO_USER_INBOX"):
        if post.state in (PostState.initialized,):
            post = book.transition(post, PostState.uploaded, message="reconciled: TikTok holds every byte")
        if post.state is PostState.sent_to_inbox and status.status == "SEND_TO_USER_INBOX":
            return post
        return record_status(post, status, username)
    # Still processing on TikTok's side.
    if post.state in (PostState.initialized, PostState.uploaded) and age > UPLOAD_URL_LIFETIME:
        uploaded = status.uploaded_bytes or 0
        return book.transition(post, PostState.failed, error_code="upload_incomplete",
                               error_message=f"the upload stopped at {uploaded} bytes and its URL expired; nothing was posted",
                               message="reconciled: upload never completed")
    if post.state is PostState.unconfirmed:
        return book.transition(post, PostState.processing, message="reconciled: TikTok is processing it")
    return post


@task(name="sweep-work-dirs")
def sweep(older_than_hours: float) -> int:
    removed = sweep_work_dirs(_context.settings(), older_than_s=older_than_hours * 3600)
    for path in removed:
        get_run_logger().info("removed stale working directory %s", path)
    return len(removed)


@task(name="sweep-kept-media")
def sweep_media(idle_hours: float = UPLOAD_URL_LIFETIME.total_seconds() / 3600) -> int:
    """Remove the media kept for posts (`<data_dir>/media`) that no post can still send bytes from:
    every post that announced it settled (uploaded, published, in the inbox, failed, discarded...)
    or its upload URL long expired. A file touched within `idle_hours` stays (it may be kept for an
    init under way); a file an initialized post still needs always stays."""
    needed = kept_media_in_use()
    removed = sweep_kept_media(_context.settings(), needed, idle_s=idle_hours * 3600)
    for path in removed:
        get_run_logger().info("removed kept media %s: no post needs it any more", path)
    return len(removed)


def accounts_to_refresh() -> list[str]:
    return [a.name for a in _context.ledger().list_accounts() if a.status is AccountStatus.active]


def posts_to_reconcile(stale_after: timedelta = UPLOAD_URL_LIFETIME) -> list[Post]:
    """Posts whose outcome TikTok may still change, plus uploads abandoned for over an hour."""
    book = _context.ledger()
    cutoff = book.now() - stale_after
    stale = book.list_posts(states=[PostState.initialized, PostState.uploaded])
    return book.posts_to_reconcile() + [p for p in stale if p.updated_at <= cutoff]


# --- account health ------------------------------------------------------------------------------

#: The key of the refresh-tokens table artifact: the UI keeps its history under Artifacts.
ACCOUNT_HEALTH_KEY = "account-health"


class AccountsNeedAttention(PipelineError):
    """refresh-tokens: accounts that cannot post until someone reconnects them, or whose refresh failed.

    `detail` = {"needs_reconnect": [names], "refresh_failed": {name: error}}.
    """


@dataclass(frozen=True)
class AccountHealth:
    """One account as the ledger has it after a refresh-tokens run, and what the run did to it."""

    name: str
    nickname: str | None
    status: AccountStatus
    status_reason: str | None
    access_expires_at: datetime
    refresh_expires_at: datetime
    direct_left: int
    direct_limit: int
    inbox_left: int
    inbox_limit: int
    #: refreshed | fresh | needs_reconnect | error: <message> | not refreshed (needs reconnect)
    outcome: str

    @property
    def needs_reconnect(self) -> bool:
        return self.status is AccountStatus.needs_reconnect

    @property
    def refresh_error(self) -> str | None:
        return self.outcome.removeprefix("error: ") if self.outcome.startswith("error: ") else None


def _expiry(at: datetime, now: datetime, unit: Literal["h", "d"]) -> str:
    if at <= now:
        return f"expired {at:%Y-%m-%d %H:%M} UTC"
    left = (at - now).total_seconds() / (3600 if unit == "h" else 86400)
    return f"{at:%Y-%m-%d %H:%M} UTC (in {left:.1f} {unit})"


def health_rows(accounts: Sequence[AccountHealth], now: datetime) -> list[dict[str, str]]:
    """The account-health table, one row per account, as people read it."""
    return [
        {
            "account": a.name,
            "nickname": a.nickname or "",
            "status": a.status.value + (f" ({a.status_reason})" if a.status_reason else ""),
            "access token expires": _expiry(a.access_expires_at, now, "h"),
            "refresh token expires": _expiry(a.refresh_expires_at, now, "d"),
            "direct posts left today": f"{a.direct_left}/{a.direct_limit}",
            "inbox shares left today": f"{a.inbox_left}/{a.inbox_limit}",
            "this run": a.outcome,
        }
        for a in accounts
    ]


def health_problem(accounts: Sequence[AccountHealth]) -> AccountsNeedAttention | None:
    """The error that fails the run when an account cannot post (or could not be refreshed); else None."""
    reconnect = [a for a in accounts if a.needs_reconnect]
    failed = [a for a in accounts if a.refresh_error and not a.needs_reconnect]
    if not reconnect and not failed:
        return None
    parts = [f"{a.name} needs a reconnect ({a.status_reason or 'marked needs_reconnect'}): run "
             f"`tiktok-pipeline accounts connect {a.name}`" for a in reconnect]
    parts += [f"{a.name}: the token refresh failed ({a.refresh_error}); the next run tries again" for a in failed]
    return AccountsNeedAttention(
        f"{len(reconnect) + len(failed)} account(s) need attention: " + "; ".join(parts),
        detail={"needs_reconnect": [a.name for a in reconnect], "refresh_failed": {a.name: a.refresh_error for a in failed}},
    )


@task(name="report-account-health")
def report_account_health(outcomes: dict[str, str]) -> list[AccountHealth]:
    """Every account's tokens, caps and status as a table artifact (key `account-health`)."""
    book = _context.ledger()
    health = []
    for account in book.list_accounts():
        caps = book.caps_left(account.name)
        outcome = outcomes.get(account.name) or (
            "not refreshed (needs reconnect)" if account.status is AccountStatus.needs_reconnect else "not refreshed")
        health.append(AccountHealth(
            name=account.name, nickname=account.nickname, status=account.status, status_reason=account.status_reason,
            access_expires_at=account.access_expires_at, refresh_expires_at=account.refresh_expires_at,
            direct_left=caps.direct.left, direct_limit=caps.direct.limit, inbox_left=caps.inbox.left,
            inbox_limit=caps.inbox.limit, outcome=outcome,
        ))
    problem = health_problem(health)
    create_table_artifact(
        table=health_rows(health, book.now()), key=ACCOUNT_HEALTH_KEY,
        description=str(problem) if problem else f"{len(health)} account(s), all able to post",
    )
    return health


# --- crashed publish runs ------------------------------------------------------------------------

#: Flows whose crashed deployment runs the cleanup flow runs again with the same parameters (the
#: ledger makes a re-run continue the same posts). The cleanup deployment's trigger in prefect.yaml
#: names the same flows, so a crash is retried at once rather than at the next half hour.
PUBLISHING_FLOWS = ("publish-video", "publish-s3-object", "release-held-post", "publish-deferred-post")
#: Crashes of the same request (deployment + parameters) after which it is no longer retried.
MAX_CRASHES = 3
RETRY_TAG = "crash-retry"
#: Put on the last crashed run of a request the cleanup flow gave up on, so it says so only once.
GIVEN_UP_TAG = "crash-retries-exhausted"


class CrashRetriesExhausted(PipelineError):
    """cleanup: a publish request crashed MAX_CRASHES times and is no longer retried.

    `detail` = [{"flow_run_id", "flow_run", "flow", "crashes"}]: run it again by hand once the cause is fixed.
    """


@dataclass(frozen=True)
class RunRecord:
    """What the retry decision needs to know about one flow run."""

    id: str
    name: str
    flow: str
    deployment_id: str
    parameters: dict[str, Any]
    state: str  # Prefect's state type, e.g. "CRASHED"
    state_name: str
    created: datetime
    tags: frozenset[str] = frozenset()

    @property
    def request(self) -> tuple[str, str]:
        """Runs of the same deployment with the same parameters publish the same thing."""
        return self.deployment_id, json.dumps(self.parameters, sort_keys=True, default=str)


@dataclass(frozen=True)
class CrashPlan:
    """What to do about the latest crashed run of one request."""

    run: RunRecord
    crashes: int
    action: Literal["retry", "give_up", "skip"]
    reason: str


def plan_crash_retries(runs: Iterable[RunRecord], max_crashes: int = MAX_CRASHES) -> list[CrashPlan]:
    """One plan per request that has a crashed run: retry it, give up on it, or leave it (a later run
    settled it or is on it, or it was given up already). Pure: `runs` are every run of the window."""
    by_request: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for run in runs:
        by_request[run.request].append(run)
    plans = []
    for group in by_request.values():
        crashed = sorted((r for r in group if r.state == StateType.CRASHED.value), key=lambda r: r.created)
        if not crashed:
            continue
        latest, count = crashed[-1], len(crashed)
        later = sorted((r for r in group if r.state != StateType.CRASHED.value and r.created > latest.created),
                       key=lambda r: r.created)
        if later:
            plans.append(CrashPlan(latest, count, "skip", f"run {later[-1].name} came after it ({later[-1].state_name})"))
        elif GIVEN_UP_TAG in latest.tags:
            plans.append(CrashPlan(latest, count, "skip", "given up already"))
        elif count >= max_crashes:
            plans.append(CrashPlan(latest, count, "give_up", f"crashed {count} times with these parameters"))
        else:
            plans.append(CrashPlan(latest, count, "retry", f"crash {count} of at most {max_crashes}"))
    return plans


def retry_idempotency_key(crashed_run_id: str) -> str:
    """Derived from the crashed run: two cleanups retrying the same crash start one run."""
    return f"crash-retry:{crashed_run_id}"


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


@task(name="retry-crashed-runs")
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
