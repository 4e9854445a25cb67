"""Prefect tasks of the publish-photos flow: each binds one step of `publishing.photo_posts` to retries,
artifacts and the run logger (the rules are the service layer's). Status polling is the video's
`tasks.publishing.poll_status`: a photo post is a publish_id like any other."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger

from photos import PreparedPhoto
from publishing import PhotoPostRequest, PublishResult
from publishing import photo_posts
from publishing.photo_posts import PhotoSet
from publishing.posting import CreatorCheck, StepFailure, megabytes
from publishing.pull import require_pull_location
from publishing.sources import FetchedSource
from tasks import runtime
from tasks.policy import STEP_OPTIONS, retry_options
from tasks.publishing import artifact_key, current_flow_run_id, log_attempt, run_has_ended


@task(name="photo-preflight", **retry_options())
def photo_preflight(request: PhotoPostRequest) -> dict[str, StepFailure]:
    """A verified URL prefix to stage the photos under (none: the run fails at once, in one line),
    and what every post needs (ledger, encryption key, AWS credentials); the accounts not connected."""
    log_attempt("preflight")
    _, unknown = photo_posts.photo_preflight(runtime.services(), request, get_run_logger())
    return unknown


@task(name="fetch-photos", **retry_options())
def fetch_photos(request: PhotoPostRequest, work_dir: str) -> list[FetchedSource]:
    """Copy every image into the run's working directory."""
    log_attempt(f"fetch of {len(request.images)} photo(s)")
    started = time.monotonic()
    fetched = photo_posts.fetch_photos(runtime.settings(), request, Path(work_dir))
    get_run_logger().info("fetched %d photo(s), %s, in %.1f s", len(fetched), megabytes(sum(f.size for f in fetched)),
                          time.monotonic() - started)
    return fetched


@task(name="prepare-photos", **retry_options(retries=1))
def prepare_photos(sources: list[FetchedSource], work_dir: str) -> list[PreparedPhoto]:
    """Each photo upright (EXIF orientation applied), at most 1080 px on its long side, JPEG or WebP under 20 MB."""
    prepared = photo_posts.prepare_photos(sources, Path(work_dir))
    logger = get_run_logger()
    for i, (source, photo) in enumerate(zip(sources, prepared, strict=True), start=1):
        logger.info("photo %d: %s (%s, %s) -> %s %dx%d, %s%s%s", i, source.uri, photo.source_format,
                    megabytes(source.size), photo.format, photo.width, photo.height, megabytes(photo.size_bytes),
                    ", turned upright" if photo.orientation_applied else "", ", scaled down" if photo.resized else "")
    return prepared


@task(name="stage-photos", **retry_options())
def stage_photos(sources: list[FetchedSource], prepared: list[PreparedPhoto]) -> PhotoSet:
    """Write each prepared photo once under the verified URL prefix, where TikTok pulls it from."""
    current = runtime.settings()
    photo_set = photo_posts.stage_photos(current, require_pull_location(current, "a photo post"), sources, prepared)
    get_run_logger().info("%d photo(s) under %s: %s written, the rest already there", len(photo_set.urls),
                          photo_set.urls[0].rsplit("/", 1)[0] + "/", megabytes(photo_set.staged_bytes))
    create_markdown_artifact(markdown=photo_set_markdown(photo_set, prepared), key="photos",
                             description=f"{len(photo_set.urls)} photo(s) for TikTok to pull")
    return photo_set


def photo_set_markdown(photo_set: PhotoSet, prepared: Sequence[PreparedPhoto]) -> str:
    rows = ["| # | source | prepared | pull URL |", "|---|---|---|---|"]
    for i, (source, url, photo) in enumerate(zip(photo_set.sources, photo_set.urls, prepared, strict=True), start=1):
        rows.append(f"| {i} | `{source}` | {photo.format} {photo.width}x{photo.height}, "
                    f"{megabytes(photo.size_bytes)} | {url} |")
    return "# Photos\n\n" + "\n".join(rows)


@task(name="check-photo-creator", **retry_options())
def check_photo_creator(account_name: str, request: PhotoPostRequest) -> CreatorCheck:
    """Fresh token + creator_info; stop now if this creator cannot take this post."""
    log_attempt(f"creator check of {account_name}")
    check = photo_posts.check_photo_creator(runtime.services(), account_name, request, get_run_logger())
    lines = [f"# Posting as {check.nickname or account_name}", "", f"- account: `{account_name}` (@{check.username or '?'})"]
    if request.privacy_level:
        lines.append(f"- privacy: {request.privacy_level}")
    lines += [f"- {note}" for note in check.notes]
    create_markdown_artifact(markdown="\n".join(lines), key=artifact_key("creator", account_name),
                             description=f"Posting as {check.nickname or account_name}")
    return check


@task(name="record-failures", **retry_options())
def record_photo_failures(request: PhotoPostRequest, failures: dict[str, StepFailure], photo_set_sha256: str,
                          nicknames: dict[str, str | None] | None = None) -> dict[str, PublishResult]:
    """Every account in `failures` gets a failed post in the ledger, and its result."""
    return photo_posts.record_photo_failures(runtime.services(), request, failures, photo_set_sha256, nicknames,
                                             get_run_logger())


@task(name="init-photo-post", retries=0, **STEP_OPTIONS)
def init_photo_post(request: PhotoPostRequest, check: CreatorCheck, photo_set: PhotoSet) -> PublishResult:
    """Reserve a daily slot, record the attempt and call content/init (the publish_id persisted at once).

    Not retried by Prefect, nor by the step when the answer is lost: TikTok may be pulling the photos
    already, so such a post is unconfirmed until its webhook, the cleanup flow or a person settles it.
    """
    return photo_posts.init_photo_post(runtime.services(), request, check, photo_set, flow_run_id=current_flow_run_id(),
                                       owner_has_ended=run_has_ended, log=get_run_logger())
