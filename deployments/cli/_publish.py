"""`tiktok-pipeline publish ...`: run the publish-video flow from the command line.

Exit codes (README "Exit codes"): 0 when every account ended published, in the inbox, held,
scheduled or deferred; 2, with one `error:` line, for a request refused before its run
(`deployments.cli._checks`) or by it for what it asked (`publishing.Verdict.refused`); 1, with one
`error:` line per account not posted, when TikTok, the network or a service failed a valid request;
130 when stopped at once (Ctrl-C).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from deployments.cli._common import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, console, fail, fail_each,
                                     pipeline_errors, results_table, timings_table, typed_errors_without_traceback,
                                     watched_run)

if TYPE_CHECKING:
    from publishing import PublishRequest


def publish(
    source: str = typer.Argument(..., help="s3://bucket/key, https:// URL or local path"),
    account: list[str] = typer.Option(..., "--account", "-a", help="Connected account name (repeatable)"),
    caption: str = typer.Option("", help="Caption, with #hashtags and @mentions"),
    privacy: str = typer.Option(None, help="PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, FOLLOWER_OF_CREATOR or SELF_ONLY (required for direct posts)"),
    mode: str = typer.Option("direct", help="direct, inbox or hold"),
    fit: str = typer.Option("blur", help="blur, pad or crop: how non-9:16 video fills the frame"),
    disable_comment: bool = typer.Option(False, "--disable-comment"),
    disable_duet: bool = typer.Option(False, "--disable-duet"),
    disable_stitch: bool = typer.Option(False, "--disable-stitch"),
    brand_content: bool = typer.Option(False, "--brand-content", help="Branded content (paid partnership)"),
    brand_organic: bool = typer.Option(False, "--brand-organic", help="Promotes your own brand"),
    aigc: bool = typer.Option(False, "--aigc", help="Label as AI-generated content"),
    cover_ms: int = typer.Option(None, "--cover-ms", help="Cover frame timestamp in milliseconds"),
    on_too_long: str = typer.Option("trim", "--on-too-long", help="trim to the creator's maximum duration, or reject"),
    schedule_at: datetime = typer.Option(None, "--schedule-at", help="Post at this time (ISO 8601, UTC if no zone); needs the publish-video deployment"),
    cap_policy: str = typer.Option("defer", "--cap-policy", help="When a daily cap is used up: defer (schedule for the next free slot) or fail"),
    source_action: str = typer.Option("keep", "--source-action", help="After success, for an S3 source: keep, delete or move"),
    idempotency_key: str = typer.Option(None, "--idempotency-key", help="Same key = same post (default: content + account + caption + mode)"),
) -> None:
    """Publish a video to one or more accounts; exits non-zero unless every account ended published or in the inbox."""
    from publishing import PublishRequest

    with pipeline_errors(exit_code=EXIT_USAGE):
        request = PublishRequest(
            source=source, accounts=account, caption=caption, privacy_level=privacy, mode=mode, fit=fit,
            disable_comment=disable_comment, disable_duet=disable_duet, disable_stitch=disable_stitch,
            brand_content_toggle=brand_content, brand_organic_toggle=brand_organic, is_aigc=aigc,
            cover_timestamp_ms=cover_ms, idempotency_key=idempotency_key, on_too_long=on_too_long,
            schedule_at=schedule_at, cap_policy=cap_policy, source_action=source_action,
        )
    checked_and_declared(request, check_request)
    run_request(request)


def checked_and_declared(request: Any, check: Callable[[Any], None]) -> None:
    """`check(request)` before anything runs (exit 2 or 1 on a problem, 130 on Ctrl-C), then, for a
    direct post, TikTok's declaration and the label the post will carry."""
    try:
        with pipeline_errors(exit_code=EXIT_USAGE):
            check(request)
    except KeyboardInterrupt:
        fail("interrupted before anything was sent", EXIT_INTERRUPTED)
    if request.mode.value == "direct":
        label = request.commercial_label
        console.print("By posting, you agree to TikTok's Music Usage Confirmation"
                      + (" and Branded Content Policy" if request.brand_content_toggle else "")
                      + (f". Label: {label}." if label else "."))


def check_request(request: PublishRequest) -> None:
    """What can be checked before a run starts (deployments.cli._checks); tests replace it to fuzz the options."""
    from deployments.cli._checks import check_publish

    check_publish(request)


def run_request(request: PublishRequest) -> None:
    """Run publish-video in this process, print its tables and exit as README "Exit codes" says."""
    from flows.publish import publish_video

    run_flow(publish_video, request)


def run_flow(publish_flow: Any, request: Any) -> None:
    """Run `publish_flow(request)` (publish-video, publish-photos) in this process, print its tables
    and exit as README "Exit codes" says."""
    from flows.syndicate import results_of
    from publishing import failure_reason, is_done, verdict

    try:
        with pipeline_errors(), watched_run(), typed_errors_without_traceback(), prefect_available():
            results = results_of(publish_flow(request, return_state=True))
    except KeyboardInterrupt:
        fail("interrupted: the run stops here (Prefect marks it Crashed); the same command resumes it", EXIT_INTERRUPTED)
    console.print(results_table(results))
    console.print(timings_table(results))
    # Held drafts and scheduled posts are what was asked for; anything else must have reached TikTok.
    outcome = verdict(results)
    if outcome.ok:
        return
    if outcome.refused:  # refused for what the request asked: the same request fails the same way
        fail(outcome.message, EXIT_USAGE)
    fail_each([f"{r.account}: {failure_reason(r)}" for r in results if not is_done(r)], EXIT_FAILED)


@contextmanager
def prefect_available() -> Iterator[None]:
    """Prefect's API unreachable (PREFECT_API_URL down, a temporary server that did not start): exit 1, one line.

    Only what the engine raises around a run gets here: the flow's own errors end in its state."""
    import httpx
    from prefect.exceptions import PrefectException
    from prefect.settings import PREFECT_API_URL

    from tiktok_pipeline.errors import PipelineError

    try:
        yield
    except PipelineError:
        raise
    except (httpx.HTTPError, PrefectException, RuntimeError, OSError) as exc:
        where = PREFECT_API_URL.value() or "a temporary server"
        fail(f"the Prefect API ({where}) could not run the flow: {type(exc).__name__}: {exc}", EXIT_FAILED)


def register(app: typer.Typer) -> None:
    app.command()(publish)
