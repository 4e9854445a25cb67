"""Scheduled flows: keep tokens fresh and show account health, retry publish runs whose process died,
reconcile posts TikTok may still change, redeliver webhooks still in the outbox, sweep working files
and the media kept for settled posts."""

from __future__ import annotations

from collections import Counter

from prefect import flow, get_run_logger

from ledger import Post
from tasks.maintenance import (
    MAX_CRASHES,
    CrashRetriesExhausted,
    WebhookRedelivery,
    accounts_to_refresh,
    health_problem,
    posts_to_reconcile,
    reconcile_post,
    prune_tiktok_webhooks,
    redeliver_pending_webhooks,
    refresh_account_token,
    report_account_health,
    retry_crashed_runs,
    sweep,
    sweep_media,
)
from publishing.posting import result_of
from tasks import runtime
from tasks.notify import notify_outcomes
from tasks.policy import with_retries


def _outcome(result: object) -> str:
    return f"error: {result}" if isinstance(result, BaseException) else str(result)


@flow(name="refresh-tokens")
def refresh_tokens(margin_hours: float = 6.0) -> dict[str, str]:
    """Refresh every active account whose access token expires within `margin_hours`, then leave the
    `account-health` table of every account (token expiries, daily caps left, status).

    The run fails, naming them, when accounts need a reconnect (fix with `tiktok-pipeline accounts
    connect NAME`) or a refresh failed; the table is there all the same.
    """
    names = accounts_to_refresh()
    refresh = with_retries(refresh_account_token, runtime.settings())
    futures = {name: refresh.submit(name, margin_hours) for name in names}
    outcome = {name: _outcome(f.result(raise_on_failure=False)) for name, f in futures.items()}
    health = report_account_health(outcome)
    get_run_logger().info("tokens: %s", dict(Counter(outcome.values())) or "no accounts")
    if problem := health_problem(health):
        raise problem
    return outcome


@flow(name="cleanup")
def cleanup(stale_work_dir_hours: float = 6.0, retry_crashed_within_hours: float = 24.0) -> dict[str, int]:
    """Retry publish runs that crashed (at most 3 crashes per request), remove working directories
    left by crashed runs, reconcile processing, unconfirmed, inbox and abandoned posts with
    TikTok's status/fetch, redeliver the webhooks of the outbox that are due (for 24 h, same event
    id), prune the TikTok webhooks received over TIKTOK_WEBHOOKS_KEEP_HOURS ago, then remove the kept
    media no post needs any more. A publish run's crash starts this flow at once (prefect.yaml trigger)."""
    # Retries first: a post waiting for one matters more than the rest, which runs even if they fail.
    crashes = retry_crashed_runs.submit(retry_crashed_within_hours).result(raise_on_failure=False)
    removed = sweep(stale_work_dir_hours)
    before = posts_to_reconcile()
    reconcile = with_retries(reconcile_post, runtime.settings())
    futures = [reconcile.submit(post.id) for post in before]
    after = [f.result(raise_on_failure=False) for f in futures]
    changed = [(old, new) for old, new in zip(before, after, strict=True) if isinstance(new, Post) and new.state is not old.state]
    for mode in {new.mode for _, new in changed}:  # announce what TikTok settled since the publish run
        notify_outcomes(mode, [result_of(new) for _, new in changed if new.mode is mode])
    states = Counter(new.state.value if isinstance(new, Post) else "error" for new in after)
    # After the announcements above (their deliveries are tried there first); a failure here is logged
    # and left to the next cleanup, whose redelivery finds the same rows.
    webhooks = redeliver_pending_webhooks(return_state=True)
    redelivered = webhooks.result() if webhooks.is_completed() else None
    pruning = prune_tiktok_webhooks(return_state=True)
    pruned = pruning.result() if pruning.is_completed() else None
    # After the reconciliation, which settles abandoned uploads; its failure fails the run below.
    swept = sweep_media(return_state=True)
    media_removed = swept.result() if swept.is_completed() else 0
    if isinstance(crashes, BaseException):
        raise crashes  # after the sweep and the reconciliation, which do not depend on it
    if not swept.is_completed():
        swept.result()  # raises the sweep's error
    get_run_logger().info("retried %d crashed run(s); removed %d working directories and %d kept media file(s); "
                          "reconciled %d posts: %s; webhooks: %s; TikTok's webhooks pruned: %s", len(crashes.retried),
                          removed, media_removed, len(before), dict(states), _webhook_summary(redelivered),
                          "failed (see its task run), the next cleanup tries again" if pruned is None else pruned)
    if crashes.given_up:
        raise CrashRetriesExhausted(
            f"gave up on {len(crashes.given_up)} publish run(s) that crashed {MAX_CRASHES} times with the same "
            "parameters: " + ", ".join(f"{g['flow']} run {g['flow_run']} ({g['flow_run_id']})" for g in crashes.given_up)
            + "; find the cause in their logs, then run them again by hand",
            detail=crashes.given_up,
        )
    return {"crashed_runs_retried": len(crashes.retried), "work_dirs_removed": removed,
            "kept_media_removed": media_removed, "posts_checked": len(before),
            **{f"now_{k}": v for k, v in states.items()},
            **({"webhooks_redelivered": len(redelivered.delivered), "webhooks_failed": len(redelivered.failed),
                "webhooks_given_up": len(redelivered.given_up), "webhooks_pending": redelivered.pending}
               if redelivered is not None else {"webhooks_redelivery_failed": 1}),
            **({"tiktok_webhooks_pruned": pruned} if pruned is not None else {"tiktok_webhooks_pruning_failed": 1})}


def _webhook_summary(done: WebhookRedelivery | None) -> str:
    if done is None:
        return "the redelivery failed (see its task run); the next cleanup tries again"
    return (f"{len(done.delivered)} redelivered, {len(done.failed)} not taken, {len(done.given_up)} given up, "
            f"{done.pending} pending")
