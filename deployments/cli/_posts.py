"""`tiktok-pipeline posts ...`: the post history kept by the ledger, with each post's audit trail.

These commands read and write posts only, never tokens: they open the ledger without the
encryption key and need no Prefect server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table
from rich.text import Text

from deployments.cli._common import EXIT_FAILED, EXIT_USAGE, console, fail, pipeline_errors, print_json, when
from deployments.cli.filters import InvalidFilter, parse_since, parse_states
from tiktok_pipeline.errors import PipelineError

if TYPE_CHECKING:
    from ledger import Ledger, Post

posts_app = typer.Typer(name="posts", help="Post history: list posts, show a post's audit trail, release or discard "
                        "drafts, record the outcome of an unconfirmed post.", no_args_is_help=True)

#: `posts resolve --not-posted` leaves the post failed with this error code.
RESOLVED_NOT_POSTED = "resolved_not_posted"


class ResolveRefused(PipelineError):
    """`posts resolve` refused: the post is not one a person settles, or the verdict given is unclear."""


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
        table.add_row(str(post.id), when(post.created_at), Text(post.account_name), post.mode.value, post.state.value,
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
    with pipeline_errors(exit_code=EXIT_USAGE):
        if limit < 1:
            raise InvalidFilter(f"--limit must be 1 or more, got {limit}", detail={"limit": limit})
        states = parse_states(status)
        with open_ledger() as book:
            after = parse_since(since, book.now()) if since else None
            posts = book.list_posts(account_name=account, states=states, since=after, limit=limit)
    if as_json:
        print_json([post.model_dump(mode="json") for post in posts])
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
    with pipeline_errors(exit_code=EXIT_USAGE), open_ledger() as book:
        record = post_record(book, book.get_post(post_id))
    if as_json:
        print_json(record)
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

    with pipeline_errors(exit_code=EXIT_USAGE), open_ledger() as book:
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
    from deployments.cli._common import results_table, typed_errors_without_traceback, watched_run
    from publishing import verdict

    if mode not in ("direct", "inbox") or (privacy and privacy not in PrivacyLevel.__members__):
        fail(f"--mode must be direct or inbox and --privacy one of {', '.join(PrivacyLevel)}")
    chosen_mode, chosen_privacy = PublishMode(mode), PrivacyLevel(privacy) if privacy else None
    with pipeline_errors(), watched_run(), typed_errors_without_traceback():
        state = release_held_post(post_id, chosen_mode, chosen_privacy, return_state=True)
        result = state.result(raise_on_failure=False)
        if isinstance(result, BaseException):
            raise result  # refused before anything ran (not a hold draft, invalid request): one line
    console.print(results_table([result], title=f"Release of post {post_id}"))
    if not state.is_completed():
        # Refused for what the draft asks (e.g. a privacy level the creator does not offer): exit 2.
        fail(state.message, EXIT_USAGE if verdict([result]).refused else EXIT_FAILED)


def _resolver() -> str:
    """Who resolves: the operating-system user running the command."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no USER/LOGNAME and no passwd entry (some containers)
        return "unknown"


def _tiktok_post_url(url: str) -> str:
    """`url` when it is an https URL on tiktok.com (the post as the creator's app shares it)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        scheme, host, userinfo = parts.scheme, (parts.hostname or "").rstrip("."), parts.username
    except ValueError:  # e.g. an unbalanced [ in the host
        scheme, host, userinfo = "", "", None
    if (scheme != "https" or userinfo is not None or any(c.isspace() for c in url)
            or not (host == "tiktok.com" or host.endswith(".tiktok.com"))):
        raise ResolveRefused(
            f"--post-url must be an https URL on tiktok.com, e.g. https://www.tiktok.com/@name/video/7311..., "
            f"got {url!r}", detail={"post_url": url},
        )
    return url


def _not_resolvable(post: Post) -> str | None:
    """Why a person cannot settle this post by hand (None: it is unconfirmed with nothing to ask TikTok)."""
    from ledger import BEFORE_INIT_STATES, PostState, PublishMode

    state = post.state
    if state is PostState.unconfirmed:
        return None
    if state in (PostState.published, PostState.failed, PostState.discarded):
        return f"post {post.id} is {state}: nothing to resolve"
    if state is PostState.processing:
        hint = "TikTok is processing it and the cleanup flow reconciles it through status/fetch"
    elif state is PostState.sent_to_inbox:
        hint = "it is a draft in the creator's TikTok inbox; the cleanup flow records it once the creator posts it"
    elif state in BEFORE_INIT_STATES and post.mode is PublishMode.hold:
        hint = f"it is a hold draft: release it (`tiktok-pipeline posts release {post.id}`) or discard it"
    elif state in BEFORE_INIT_STATES:
        hint = f"it has not reached TikTok; a run sends it, or `tiktok-pipeline posts discard {post.id}` drops it"
    else:  # initialized, uploaded
        hint = "it is being uploaded, or the cleanup flow reconciles it once its upload is abandoned"
    return f"post {post.id} is {state}: {hint}; only unconfirmed posts are resolved by hand"


@posts_app.command("resolve")
def resolve(
    post_id: int = typer.Argument(..., help="Ledger id of an unconfirmed post (see `posts list --status unconfirmed`)"),
    published: bool = typer.Option(False, "--published", help="The creator's TikTok app shows the post"),
    not_posted: bool = typer.Option(False, "--not-posted", help="The creator's TikTok app does not show it"),
    reason: str = typer.Option(None, help="What you saw, recorded in the audit trail (and as the error of --not-posted)"),
    post_url: str = typer.Option(None, "--post-url", help="With --published: the post's https://www.tiktok.com/... URL"),
    force: bool = typer.Option(False, "--force", help="Record the verdict although the post has a publish_id (cleanup would ask "
                                                    "TikTok's status/fetch, which is authoritative)"),
) -> None:
    """Record what the creator's TikTok app shows for an unconfirmed post that TikTok cannot be asked about."""
    from ledger import IllegalTransition, PostNotFound, PostState

    try:  # the verdict first: a refused one needs no ledger
        if published == not_posted:
            raise ResolveRefused("give exactly one of --published or --not-posted (what the creator's TikTok app "
                                 "shows)", detail={"post_id": post_id})
        if post_url is not None and not published:
            raise ResolveRefused("--post-url goes with --published", detail={"post_id": post_id})
        if reason is not None and not reason.strip():
            raise ResolveRefused("--reason must not be empty", detail={"post_id": post_id})
        share_url = _tiktok_post_url(post_url) if post_url is not None else None
    except ResolveRefused as exc:
        fail(str(exc), EXIT_USAGE)
    # Refusals exit 2 (input this command does not take); a ledger that cannot be reached exits 1.
    with pipeline_errors(), open_ledger() as book:
        try:
            post = book.get_post(post_id)
            if (refusal := _not_resolvable(post)) is not None:
                raise ResolveRefused(refusal, detail={"post_id": post_id, "state": str(post.state)})
            if post.publish_id and not force:
                raise ResolveRefused(
                    f"post {post_id} is unconfirmed with publish_id {post.publish_id}: the cleanup flow reconciles "
                    "it through TikTok's status/fetch, which is authoritative; wait for it, or pass --force to record "
                    "what the creator's app shows anyway",
                    detail={"post_id": post_id, "publish_id": post.publish_id},
                )
            verdict = "published" if published else "not_posted"
            said = reason.strip() if reason else (
                "seen in the creator's TikTok app" if published else "not in the creator's TikTok app")
            data: dict[str, Any] = {"resolved_by": _resolver(), "verdict": verdict}
            if post.publish_id:
                data["forced"] = True  # over cleanup's status/fetch
            # `only_from`: the ledger checks again under the post's row lock that it is still unconfirmed, so a
            # post that the cleanup flow (or another person) settled meanwhile is refused, not overwritten.
            if published:
                resolved = book.transition(post, PostState.published, message=f"resolved by a person: {said}",
                                           data=data, share_url=share_url, only_from=PostState.unconfirmed)
            else:
                resolved = book.transition(post, PostState.failed, message=f"resolved by a person: {said}", data=data,
                                           error_code=RESOLVED_NOT_POSTED, error_message=said,
                                           only_from=PostState.unconfirmed)
        except (ResolveRefused, PostNotFound, IllegalTransition) as exc:
            fail(str(exc), EXIT_USAGE)
    what = f"post {resolved.id} ({resolved.mode.value}, {resolved.account_name})"
    if published:
        typer.echo(f"{what} recorded as published by {data['resolved_by']}"
                   + (f" at {resolved.share_url}" if share_url else "") + "; it was unconfirmed")
    elif resolved.publish_id:
        typer.echo(f"{what} recorded as not posted (failed, {RESOLVED_NOT_POSTED}) by {data['resolved_by']}; it "
                   f"reached TikTok as {resolved.publish_id}, so running its request again sends nothing")
    else:
        typer.echo(f"{what} recorded as not posted (failed, {RESOLVED_NOT_POSTED}) by {data['resolved_by']}; running "
                   "the same request again posts it anew")


def register(app: typer.Typer) -> None:
    app.add_typer(posts_app)
