"""Scheduled flows: keep tokens fresh, reconcile posts TikTok may still change, sweep working files."""

from __future__ import annotations

from collections import Counter

from prefect import flow, get_run_logger

from ledger import Post
from tasks.maintenance import accounts_to_refresh, posts_to_reconcile, reconcile_post, refresh_account_token, sweep
from tasks.notify import notify_outcomes
from tasks.publishing import result_of


@flow(name="refresh-tokens")
def refresh_tokens(margin_hours: float = 6.0) -> dict[str, str]:
    """Refresh every active account whose access token expires within `margin_hours`.

    Accounts whose refresh token TikTok no longer accepts are marked needs-reconnect (fix with
    `tiktok-pipeline accounts connect NAME`).
    """
    names = accounts_to_refresh()
    futures = {name: refresh_account_token.submit(name, margin_hours) for name in names}
    outcome = {name: str(f.result(raise_on_failure=False)) for name, f in futures.items()}
    get_run_logger().info("tokens: %s", dict(Counter(outcome.values())) or "no accounts")
    return outcome


@flow(name="cleanup")
def cleanup(stale_work_dir_hours: float = 6.0) -> dict[str, int]:
    """Remove working directories left by crashed runs and reconcile processing, unconfirmed,
    inbox and abandoned posts with TikTok's status/fetch."""
    removed = sweep(stale_work_dir_hours)
    before = posts_to_reconcile()
    futures = [reconcile_post.submit(post.id) for post in before]
    after = [f.result(raise_on_failure=False) for f in futures]
    changed = [(old, new) for old, new in zip(before, after, strict=True) if isinstance(new, Post) and new.state is not old.state]
    for mode in {new.mode for _, new in changed}:  # announce what TikTok settled since the publish run
        notify_outcomes(mode, [result_of(new) for _, new in changed if new.mode is mode])
    states = Counter(new.state.value if isinstance(new, Post) else "error" for new in after)
    get_run_logger().info("removed %d working directories; reconciled %d posts: %s", removed, len(before), dict(states))
    return {"work_dirs_removed": removed, "posts_checked": len(before), **{f"now_{k}": v for k, v in states.items()}}
