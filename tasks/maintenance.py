"""Tasks of the scheduled maintenance flows: token refresh, reconciliation, working-file sweeping."""

from __future__ import annotations

from datetime import timedelta

from prefect import task
from prefect.logging import get_run_logger

from ledger import AccountNeedsReconnect, AccountStatus, Post, PostState
from tasks import _context
from tasks._policy import retry_options
from tasks._workdirs import sweep_work_dirs
from tasks.publishing import record_status
from tiktok import PublishFailed, publish_failed
from tiktok_pipeline.errors import PipelineError

#: TikTok's upload URLs live one hour: an upload older than that can no longer complete.
UPLOAD_URL_LIFETIME = timedelta(hours=1)


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


def accounts_to_refresh() -> list[str]:
    return [a.name for a in _context.ledger().list_accounts() if a.status is AccountStatus.active]


def posts_to_reconcile(stale_after: timedelta = UPLOAD_URL_LIFETIME) -> list[Post]:
    """Posts whose outcome TikTok may still change, plus uploads abandoned for over an hour."""
    book = _context.ledger()
    cutoff = book.now() - stale_after
    stale = book.list_posts(states=[PostState.initialized, PostState.uploaded])
    return book.posts_to_reconcile() + [p for p in stale if p.updated_at <= cutoff]
