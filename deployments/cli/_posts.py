"""`tiktok-pipeline posts ...`: the post history kept by the ledger, with each post's audit trail.

These commands read and write posts only, never tokens: they open the ledger without the
encryption key and need no Prefect server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table
from rich.text import Text

from deployments.cli._common import EXIT_FAILED, console, fail, pipeline_errors
from deployments.cli.filters import InvalidFilter, parse_since, parse_states

if TYPE_CHECKING:
    from ledger import Ledger, Post

posts_app = typer.Typer(name="posts", help="Post history: list posts, show a post's audit trail, release or discard drafts.",
                        no_args_is_help=True)


@contextmanager
def open_ledger() -> Iterator[Ledger]:
    """The ledger from the settings, without the token key (nothing here reads tokens)."""
    from ledger import Ledger
    from tiktok_pipeline.settings import load_settings

    with Ledger(load_settings().effective_database_url) as book:
        yield book


def post_record(book: Ledger, post: Post) -> dict[str, Any]:
    """A post, its init attempts (lost ones too: each may hold a daily-cap slot) and its complete audit
    trail, as JSON-ready data."""
    return {
        "post": post.model_dump(mode="json"),
        "init_attempts": [attempt.model_dump(mode="json") for attempt in book.init_attempts(post.id)],
        "events": [event.model_dump(mode="json") for event in book.post_events(post.id)],
    }


def _print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else ""


def _posts_table(posts: list[Post]) -> Table:
    table = Table(title="Posts (newest first, times in UTC)")
    for column in ("id", "created", "account", "mode", "state", "publish_id"):
        table.add_column(column, no_wrap=True)
    table.add_column("caption")
    table.add_column("share URL / error", overflow="fold")
    for post in posts:
        caption = post.caption if len(post.caption) <= 40 else post.caption[:39] + "…"
        outcome = post.share_url or (f"{post.error_code}: {post.error_message}" if post.error_code else "")
        # Text(): captions and errors are shown as written, never read as Rich markup.
        table.add_row(str(post.id), _when(post.created_at), Text(post.account_name), post.mode.value, post.state.value,
                      post.publish_id or "", Text(caption), Text(outcome))
    return table


@posts_app.command("list")
def list_posts(
    account: str = typer.Option(None, "--account", "-a", help="Only this account's posts"),
    status: list[str] = typer.Option([], "--status", "-s", help="Only posts in this state (repeatable or comma-separated)"),
    since: str = typer.Option(None, help="Created at or after: 2026-11-01, 2026-11-01T08:00, or 30m / 24h / 7d / 2w ago"),
    limit: int = typer.Option(50, "--limit", "-n", help="At most this many posts"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table"),
) -> None:
    """Posts, newest first."""
    with pipeline_errors():
        if limit < 1:
            raise InvalidFilter(f"--limit must be 1 or more, got {limit}", detail={"limit": limit})
        states = parse_states(status)
        with open_ledger() as book:
            after = parse_since(since, book.now()) if since else None
            posts = book.list_posts(account_name=account, states=states, since=after, limit=limit)
    if as_json:
        _print_json([post.model_dump(mode="json") for post in posts])
    elif posts:
        console.print(_posts_table(posts))
    else:
        console.print("no posts match")


@posts_app.command("show")
def show(
    post_id: int = typer.Argument(..., help="Ledger id of the post (see `posts list`)"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables"),
) -> None:
    """A post and its full audit trail (every state change and step, oldest first)."""
    with pipeline_errors(), open_ledger() as book:
        record = post_record(book, book.get_post(post_id))
    if as_json:
        _print_json(record)
        return
    post = record["post"]
    details = Table(title=f"Post {post['id']}", show_header=False)
    details.add_column("field", style="bold", no_wrap=True)
    details.add_column("value", overflow="fold")
    for name, value in post.items():
        if value not in (None, "", [], {}):
            details.add_row(name, Text(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)))
    trail = Table(title="Audit trail (UTC)")
    for column in ("at", "change", "kind", "message"):
        trail.add_column(column, no_wrap=column != "message")
    trail.add_column("data", overflow="fold")
    for event in record["events"]:
        change = f"{event['from_state']} → {event['to_state']}" if event["from_state"] else event["to_state"]
        data = json.dumps(event["data"], ensure_ascii=False) if event["data"] else ""
        trail.add_row(event["at"][:19].replace("T", " "), change, event["kind"], Text(event["message"] or ""),
                      Text(data))
    attempts = Table(title="Init attempts (UTC): lost ones count against the daily cap")
    for column in ("#", "started", "owner", "outcome", "publish_id", "error"):
        attempts.add_column(column, no_wrap=column != "error")
    for attempt in record["init_attempts"]:
        error = f"{attempt['error_code']}: {attempt['error_message']}" if attempt["error_code"] else ""
        attempts.add_row(str(attempt["number"]), attempt["started_at"][:19].replace("T", " "), attempt["owner"] or "",
                         attempt["outcome"], attempt["publish_id"] or "", Text(error))
    console.print(details)
    if record["init_attempts"]:
        console.print(attempts)
    console.print(trail)


@posts_app.command("discard")
def discard(
    post_id: int = typer.Argument(..., help="Ledger id of a hold draft or a post that has not reached TikTok"),
    reason: str = typer.Option("discarded from the command line", help="Recorded in the audit trail"),
) -> None:
    """Discard a hold draft, or a post stopped before TikTok's init (its daily slot is freed)."""
    from ledger import TRANSITIONS, IllegalTransition, PostState

    with pipeline_errors(), open_ledger() as book:
        post = book.get_post(post_id)
        if PostState.discarded not in TRANSITIONS[post.state]:
            at_tiktok = f" (TikTok has it as {post.publish_id})" if post.publish_id else ""
            raise IllegalTransition(
                f"post {post_id} is {post.state}{at_tiktok}: only hold drafts and posts that have not reached "
                "TikTok (queued, media_ready) can be discarded",
                detail={"post_id": post_id, "state": str(post.state), "publish_id": post.publish_id},
            )
        # The ledger checks the state again under a row lock: a post that moved on meanwhile is refused.
        discarded = book.transition(post, PostState.discarded, message=reason)
    console.print(f"post {discarded.id} ({post.mode.value}, {post.account_name}) discarded; it was {post.state.value}")


@posts_app.command("release")
def release(
    post_id: int = typer.Argument(..., help="Ledger id of a hold draft"),
    mode: str = typer.Option("direct", help="direct (posted) or inbox (a draft in the creator's TikTok inbox)"),
    privacy: str = typer.Option(None, help="Privacy level, when the draft was held without one or to change it"),
) -> None:
    """Send a hold draft now (runs the release-held-post flow); exits non-zero unless it reached TikTok."""
    from flows.drafts import release_held_post
    from ledger import PublishMode
    from tiktok import PrivacyLevel
    from deployments.cli._common import results_table

    if mode not in ("direct", "inbox") or (privacy and privacy not in PrivacyLevel.__members__):
        fail(f"--mode must be direct or inbox and --privacy one of {', '.join(PrivacyLevel)}")
    chosen_mode, chosen_privacy = PublishMode(mode), PrivacyLevel(privacy) if privacy else None
    with pipeline_errors():
        state = release_held_post(post_id, chosen_mode, chosen_privacy, return_state=True)
        result = state.result(raise_on_failure=False)
        if isinstance(result, BaseException):
            raise result  # refused before anything ran (not a hold draft, invalid request): one line
    console.print(results_table([result], title=f"Release of post {post_id}"))
    if not state.is_completed():
        fail(state.message, EXIT_FAILED)


def register(app: typer.Typer) -> None:
    app.add_typer(posts_app)
