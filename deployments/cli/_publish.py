"""`tiktok-pipeline publish ...`: run the publish-video flow from the command line."""

from __future__ import annotations

from datetime import datetime

import typer

from deployments.cli._common import EXIT_FAILED, EXIT_USAGE, console, fail, pipeline_errors, results_table, timings_table


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
    if request.mode.value == "direct":
        label = request.commercial_label
        console.print("By posting, you agree to TikTok's Music Usage Confirmation"
                      + (" and Branded Content Policy" if request.brand_content_toggle else "")
                      + (f". Label: {label}." if label else "."))
    from flows.publish import publish_video
    from flows.syndicate import results_of
    from publishing import verdict

    with pipeline_errors():
        results = results_of(publish_video(request, return_state=True))
    console.print(results_table(results))
    console.print(timings_table(results))
    # Held drafts and scheduled posts are what was asked for; anything else must have reached TikTok.
    outcome = verdict(results)
    if not outcome.ok:
        fail(outcome.message, EXIT_FAILED)


def register(app: typer.Typer) -> None:
    app.command()(publish)
