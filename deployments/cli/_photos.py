"""`tiktok-pipeline photos post ...`: run the publish-photos flow from the command line.

The exit codes are `publish`'s (README "Exit codes"). Without a verified URL prefix
(TIKTOK_PIPELINE_PULL_URL_PREFIXES) the request is refused before anything runs, in one line: TikTok
takes photos only by pulling them from a URL verified for the app.
"""

from __future__ import annotations

import typer

from deployments.cli._common import EXIT_USAGE, pipeline_errors

photos_app = typer.Typer(help="Photo posts: 1 to 35 images as one TikTok post, pulled from a verified URL prefix.",
                         no_args_is_help=True)


@photos_app.command("post")
def post(
    images: list[str] = typer.Argument(..., help="1 to 35 photos in order: s3://bucket/key, https:// URLs or local paths"),
    account: list[str] = typer.Option(..., "--account", "-a", help="Connected account name (repeatable)"),
    title: str = typer.Option("", help="Title (90 UTF-16 units max)"),
    description: str = typer.Option("", help="Description with #hashtags and @mentions (4000 UTF-16 units max)"),
    privacy: str = typer.Option(None, help="PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, FOLLOWER_OF_CREATOR or SELF_ONLY (required for direct posts)"),
    mode: str = typer.Option("direct", help="direct, or inbox (the creator finishes the post in TikTok)"),
    cover_index: int = typer.Option(0, "--cover-index", help="Which photo is the cover, counted from 0"),
    auto_add_music: bool = typer.Option(False, "--auto-add-music", help="Let TikTok add recommended music"),
    disable_comment: bool = typer.Option(False, "--disable-comment"),
    brand_content: bool = typer.Option(False, "--brand-content", help="Branded content (paid partnership)"),
    brand_organic: bool = typer.Option(False, "--brand-organic", help="Promotes your own brand"),
    idempotency_key: str = typer.Option(None, "--idempotency-key", help="Same key = same post (default: photos + account + text + mode)"),
) -> None:
    """Post photos to one or more accounts; exits non-zero unless every account's post was published or is in the inbox."""
    from publishing import PhotoPostRequest

    with pipeline_errors(exit_code=EXIT_USAGE):
        request = PhotoPostRequest(
            images=images, accounts=account, title=title, description=description, privacy_level=privacy, mode=mode,
            photo_cover_index=cover_index, auto_add_music=auto_add_music, disable_comment=disable_comment,
            brand_content_toggle=brand_content, brand_organic_toggle=brand_organic, idempotency_key=idempotency_key,
        )
    from deployments.cli._checks import check_photo_post
    from deployments.cli._publish import checked_and_declared, run_flow
    from flows.photo_posts import publish_photos

    checked_and_declared(request, check_photo_post)
    run_flow(publish_photos, request)


def register(app: typer.Typer) -> None:
    app.add_typer(photos_app, name="photos")
