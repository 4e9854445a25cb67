"""The rules of the scheduled maintenance, without Prefect: token refresh and account health,
reconciliation of posts TikTok may still change, which crashed publish runs to run again, and the
redelivery of webhooks still in the outbox.

    outcome = refresh_token(services, "brand", margin_hours=6)     # refreshed | fresh | needs_reconnect
    post = reconcile_post(services, post_id)                         # the post as the ledger has it now
    health = account_health(services, {"brand": outcome})           # one AccountHealth per account
    plans = plan_crash_retries(runs)                                 # retry / give_up / skip per request
    done = redeliver_webhooks(services)                              # delivered / failed / given up

The Prefect shell (`tasks.maintenance`) adds retries, the account-health table artifact and the
Prefect client queries of the crash retries.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx

from ledger import AccountNeedsReconnect, AccountStatus, DeliveryStatus, Post, PostState
from publishing.posting import UPLOAD_URL_LIFETIME, Log, record_status
from publishing.services import Services
from publishing.webhooks import REDELIVERY_WINDOW, WebhookError, WebhookUnavailable, deliver_stored, receiver_key
from tiktok import PublishFailed, PublishStatus, publish_failed
from tiktok_pipeline.errors import PipelineError

_LOG = logging.getLogger(__name__)


# --- tokens --------------------------------------------------------------------------------------


def refresh_token(services: Services, account_name: str, margin_hours: float, log: Log = _LOG) -> str:
    """Refresh one account's token when it expires within the margin: refreshed | fresh | needs_reconnect."""
    try:
        _, refreshed = services.ledger.ensure_fresh_token(
            account_name, services.refresher(), margin=timedelta(hours=margin_hours)
        )
    except AccountNeedsReconnect as exc:
        log.error(str(exc))
        return "needs_reconnect"
    return "refreshed" if refreshed else "fresh"


def accounts_to_refresh(services: Services) -> list[str]:
    return [a.name for a in services.ledger.list_accounts() if a.status is AccountStatus.active]


# --- reconciliation ------------------------------------------------------------------------------


def posts_to_reconcile(services: Services, stale_after: timedelta = UPLOAD_URL_LIFETIME) -> list[Post]:
    """Posts whose outcome TikTok may still change, plus uploads abandoned for over an hour."""
    book = services.ledger
    cutoff = book.now() - stale_after
    stale = book.list_posts(states=[PostState.initialized, PostState.uploaded])
    return book.posts_to_reconcile() + [p for p in stale if p.updated_at <= cutoff]


def reconcile_post(services: Services, post_id: int, log: Log = _LOG) -> Post:
    """Ask TikTok where a post stands and record it; returns the post as the ledger has it now.

    A retryable TikTok error raises (the caller tries again); a refusal leaves the post as it is.
    """
    book = services.ledger
    post = book.get_post(post_id)
    if not post.publish_id:
        # init's answer was lost before a publish_id arrived: only the creator's app can tell.
        return post
    account = book.get_account(post.account_name)
    if account.status is not AccountStatus.active:
        return post
    try:
        status = services.with_client(post.account_name, lambda c: c.fetch_status(post.publish_id))
    except PipelineError as exc:
        if exc.retryable:
            raise
        log.warning("post %d: status/fetch refused: %s", post.id, exc)
        return post
    return apply_status(services, post, status, account.username, book.now() - post.updated_at)


def apply_status(services: Services, post: Post, status: PublishStatus, username: str | None, age: timedelta) -> Post:
    """Record what TikTok's status/fetch says of a post last changed `age` ago."""
    book = services.ledger
    if status.status == "FAILED":
        exc: PublishFailed = publish_failed(status)
        return book.transition(post, PostState.failed, error_code=status.fail_reason, error_message=str(exc),
                               message=f"reconciled: TikTok reports FAILED ({status.fail_reason})")
    if status.status in ("PUBLISH_COMPLETE", "SEND_TO_USER_INBOX"):
        if post.state in (PostState.initialized,):
            post = book.transition(post, PostState.uploaded, message="reconciled: TikTok holds every byte")
        if post.state is PostState.sent_to_inbox and status.status == "SEND_TO_USER_INBOX":
            return post
        return record_status(services, post, status, username)
    # Still processing on TikTok's side.
    if post.state in (PostState.initialized, PostState.uploaded) and age > UPLOAD_URL_LIFETIME:
        uploaded = status.uploaded_bytes or 0
        return book.transition(post, PostState.failed, error_code="upload_incomplete",
                               error_message=f"the upload stopped at {uploaded} bytes and its URL expired; nothing was posted",
                               message="reconciled: upload never completed")
    if post.state is PostState.unconfirmed:
        return book.transition(post, PostState.processing, message="reconciled: TikTok is processing it")
    return post


# --- account health ------------------------------------------------------------------------------


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


def account_health(services: Services, outcomes: Mapping[str, str]) -> list[AccountHealth]:
    """Every account's tokens, caps and status, with what this run did to it (`outcomes` by name)."""
    book = services.ledger
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
    return health


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


# --- crashed publish runs ------------------------------------------------------------------------

#: Flows whose crashed deployment runs the cleanup flow runs again with the same parameters (the
#: ledger makes a re-run continue the same posts). The cleanup deployment's trigger in prefect.yaml
#: names the same flows, so a crash is retried at once rather than at the next half hour.
PUBLISHING_FLOWS = ("publish-video", "publish-photos", "publish-s3-object", "release-held-post", "publish-deferred-post")
#: Crashes of the same request (deployment + parameters) after which it is no longer retried.
MAX_CRASHES = 3
RETRY_TAG = "crash-retry"
#: Put on the last crashed run of a request the cleanup flow gave up on, so it says so only once.
GIVEN_UP_TAG = "crash-retries-exhausted"
#: The orchestrator's state type of a run whose process died (Prefect's StateType.CRASHED).
CRASHED = "CRASHED"


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
    state: str  # the state type, e.g. "CRASHED"
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
        crashed = sorted((r for r in group if r.state == CRASHED), key=lambda r: r.created)
        if not crashed:
            continue
        latest, count = crashed[-1], len(crashed)
        later = sorted((r for r in group if r.state != CRASHED and r.created > latest.created),
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


# --- webhooks still in the outbox ------------------------------------------------------------------


@dataclass
class WebhookRedelivery:
    """What one redelivery pass did; each entry reads `<event type> <event id> → <receiver>`."""

    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)
    #: Due, not tried in this pass: their receiver did not answer an earlier try of the same pass, or it
    #: is not among this process's webhook_urls (a worker configured otherwise gives nothing up early).
    deferred: int = 0
    #: Still pending after the pass (due later, or deferred).
    pending: int = 0


def redeliver_webhooks(services: Services, log: Log = _LOG, *, client: httpx.Client | None = None) -> WebhookRedelivery:
    """Try every due delivery of the outbox again (oldest first), with its stored body and event id.

    A try that fails is due again `redelivery_delay` later; a delivery that no receiver took within
    `REDELIVERY_WINDOW` of being stored is given up, the reason recorded in the ledger. A receiver
    that times out or refuses connections is not tried again in the same pass (its other deliveries
    wait for the next pass instead of each costing a timeout). Never raises for a receiver's answer.
    """
    book, settings = services.ledger, services.settings
    urls = {receiver_key(url): url for url in settings.webhook_urls}
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    done, down = WebhookRedelivery(), set()
    own = client or httpx.Client(timeout=settings.webhook_timeout)
    try:
        for delivery in book.webhook_deliveries(due=True):
            label = f"{delivery.event_type} {delivery.event_id} → {delivery.receiver_label}"
            url = urls.get(delivery.receiver)
            if book.now() - delivery.created_at >= REDELIVERY_WINDOW:
                last = delivery.last_error or "never tried"
                where = "" if url else " (its receiver is not among this worker's webhook_urls)"
                reason = (f"no 2xx answer within {_hours(REDELIVERY_WINDOW)} of the event{where}, "
                          f"after {delivery.attempts} tries; last: {last}")
                if book.claim_webhook_delivery(delivery.id, timedelta(minutes=1), due_only=True) is not None:
                    book.give_up_webhook_delivery(delivery.id, reason)
                    done.given_up.append(label)
                    log.error("webhook %s given up: %s", label, reason)
                continue
            if url is None or secret is None or delivery.receiver in down:
                done.deferred += 1
                continue
            try:
                status = deliver_stored(book, delivery.id, url, secret, timeout=settings.webhook_timeout,
                                        due_only=True, client=own)
            except WebhookError as exc:
                if isinstance(exc, WebhookUnavailable):
                    down.add(delivery.receiver)
                done.failed.append(label)
                log.warning("webhook %s not taken (try %d, kept for redelivery): %s", label, delivery.attempts + 1, exc)
                continue
            if status is not None:
                done.delivered.append(label)
                log.info("webhook %s redelivered (%d) after %d earlier tries", label, status, delivery.attempts)
    finally:
        if client is None:
            own.close()
    done.pending = len(book.webhook_deliveries(statuses=[DeliveryStatus.pending]))
    return done


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} h"


def prune_received_webhooks(services: Services, log: Log = _LOG) -> int:
    """Delete the TikTok webhooks received and applied more than `tiktok_webhooks_keep_hours` ago (never
    within TikTok's 72 h of redelivery, never one not applied yet); the number deleted."""
    hours = services.settings.tiktok_webhooks_keep_hours
    pruned = services.ledger.prune_received_events(older_than=timedelta(hours=hours))
    if pruned:
        log.info("pruned %d TikTok webhook(s) received and applied over %g h ago", pruned, hours)
    return pruned
