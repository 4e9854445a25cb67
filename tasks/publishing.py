"""Prefect tasks of the publish flow: each binds one step of `publishing.posting` to retries, rate
limits, artifacts and the run logger. The rules (the order per account, what a re-run resumes, when a
post is deferred, failed or left to another run) are the service layer's: see publishing/posting.py.

Each task resolves the Services of this worker (`runtime.services()`) and passes in what only Prefect
knows: the current flow run's id, whether the run that initialized a post is still going (a Prefect
API query), how to schedule a deferred post (a deployment run) and where progress goes (artifacts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.client.orchestration import get_client
from prefect.context import TaskRunContext
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_run_logger
from prefect.runtime import flow_run as current_flow_run

from ledger import Post
from publishing import PublishRequest, PublishResult, is_done, post_description, post_markdown, summary_rows, verdict
from publishing import posting, pull
from publishing.posting import (
    KEPT_MEDIA_MARGIN,
    UPLOAD_URL_LIFETIME,
    CreatorCheck,
    InitRecord,
    MediaPlan,
    PreflightFailed,
    PreparedMedia,
    ScheduledRun,
    StepFailure,
    megabytes,
    result_of,
    unrecorded_failure,
)
from publishing.services import Services
from publishing.sources import FetchedSource, fetch_source, sha256_of
from tasks import runtime
from tasks.policy import STEP_OPTIONS, retry_options
from tiktok import PublishStatus
from transcode import MediaInfo, Policy, make_tiktok_ready

#: Least time between two updates of a progress artifact (transcode, upload).
PROGRESS_EVERY_S = 1.0

__all__ = [
    "KEPT_MEDIA_MARGIN",
    "UPLOAD_URL_LIFETIME",
    "CreatorCheck",
    "InitRecord",
    "MediaPlan",
    "PreflightFailed",
    "PreparedMedia",
    "StepFailure",
    "check_creator",
    "ingest",
    "init_post",
    "initializer_still_running",
    "interrupted_result",
    "kept_media_in_use",
    "log_results",
    "plan_media",
    "poll_status",
    "preflight",
    "stage_for_pull",
    "prepare_media",
    "record_failures",
    "record_status",
    "report_results",
    "result_of",
    "stored_request_of",
    "unrecorded_failure",
    "upload",
]


def artifact_key(*parts: str) -> str:
    raw = "-".join(parts).lower()
    return "".join(c if c.isalnum() or c == "-" else "-" for c in raw)[:100]


def log_attempt(what: str) -> None:
    """Say so when Prefect runs this task again after a retryable failure."""
    context = TaskRunContext.get()
    if context and context.task_run.run_count > 1:
        tries = context.task.retries + 1
        get_run_logger().warning("%s: attempt %d of %d (retry %d)", what, context.task_run.run_count, tries,
                                 context.task_run.run_count - 1)


class ArtifactProgress:
    """`posting.Progress` as a Prefect progress artifact of the current task run.

    Created on the first update at least PROGRESS_EVERY_S after `start`, or by the final one (100 %),
    then updated at most once per PROGRESS_EVERY_S and at 100 %: each call is a request to Prefect's
    API and an event its services process. A step over within a second (a remux, a small upload)
    leaves one artifact, at 100 % with its summary, instead of one per chunk or per 5 %.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.id: Any = None
        self.description = ""
        self.clock = clock
        self.last = 0.0

    def start(self, description: str) -> None:
        self.description, self.last = description, self.clock()

    def update(self, percent: float, description: str | None = None) -> None:
        self.description = description or self.description
        if percent < 100 and self.clock() - self.last < PROGRESS_EVERY_S:
            return
        self.last = self.clock()
        if self.id is None:
            self.id = create_progress_artifact(progress=percent, description=self.description)
        else:
            update_progress_artifact(self.id, progress=percent, description=self.description)


# --- before any post: what the run needs -----------------------------------------------------------


@task(name="preflight", **retry_options())
def preflight(request: PublishRequest) -> dict[str, StepFailure]:
    """Check, before any work, what every post of this run needs: the ledger, the key encrypting
    the tokens and, for an s3:// source, AWS credentials. A missing one fails the run at once with
    one line naming what to set (only an unreachable ledger is retried: it may come back).

    Returns the accounts that are not connected (each with the command that connects it): the
    others carry on without them.
    """
    log_attempt("preflight")
    return posting.preflight(runtime.services(), request, get_run_logger())


@task(name="ingest", **retry_options())
def ingest(source: str, work_dir: str, max_bytes: int) -> FetchedSource:
    """Copy the source into the run's working directory (HEAD first for S3; size checked first)."""
    log_attempt(f"ingest {source}")
    started = time.monotonic()
    fetched = fetch_source(source, Path(work_dir), runtime.settings(), max_bytes=max_bytes)
    get_run_logger().info("fetched %s: %d bytes (%s) in %.1f s, sha256 %s…", fetched.uri, fetched.size,
                          megabytes(fetched.size), time.monotonic() - started, fetched.sha256[:12])
    return fetched


@task(name="check-creator", **retry_options())
def check_creator(account_name: str, request: PublishRequest) -> CreatorCheck:
    """Fresh token + creator_info; stop now if this creator cannot take this post."""
    log_attempt(f"creator check of {account_name}")
    check = posting.check_creator(runtime.services(), account_name, request, get_run_logger())
    create_markdown_artifact(markdown=posting.creator_markdown(check, request), key=artifact_key("creator", account_name),
                             description=f"Posting as {check.nickname or account_name}")
    return check


@task(name="transcode", **retry_options(retries=1))
def prepare_media(source_path: str, work_dir: str, request: PublishRequest, max_duration_s: float, max_bytes: int) -> PreparedMedia:
    """Validate and transcode once for every account (the strictest max duration wins)."""
    log_attempt("transcode")
    started = time.monotonic()
    policy = Policy(fit=request.fit, max_duration=max_duration_s, on_too_long=request.on_too_long, max_bytes=max_bytes)
    name = Path(source_path).name
    what = (f"{name} ({megabytes(Path(source_path).stat().st_size)}) to 1080x1920 H.264/AAC, fit {request.fit}, "
            f"at most {max_duration_s:g} s")
    progress = ArtifactProgress()
    progress.start(f"Transcoding {what}")

    def on_progress(fraction: float) -> None:
        percent = round(fraction * 100, 0)
        if percent < 100:  # the final update, with the summary, follows the encode
            progress.update(percent)

    out = Path(work_dir) / "tiktok-ready.mp4"
    result = make_tiktok_ready(source_path, out, policy, on_progress=on_progress,
                               niceness=runtime.settings().transcode_niceness)
    info: MediaInfo = result.output
    how = "; ".join(result.reasons) or "already compliant"
    progress.update(100.0, (
        f"{name}: {result.path.value} in {result.elapsed:.1f} s → {megabytes(info.size)}, {info.duration or 0:.1f} s ({how})"))
    get_run_logger().info("media ready by %s in %.1f s: %s, %s", result.path.value, result.elapsed, megabytes(info.size), how)
    return PreparedMedia(path=str(out), size=info.size, sha256=sha256_of(out), duration=info.duration or 0.0,
                         path_taken=result.path.value, seconds=time.monotonic() - started)


@task(name="find-kept-media", **retry_options())
def plan_media(request: PublishRequest, accounts: list[str], source: FetchedSource,
               post_keys: dict[str, str] | None = None) -> MediaPlan:
    """Before transcoding: which posts of this request an earlier run initialized, with media kept
    here (they resume with it: transcoding again would not give the same bytes), and which accounts
    need this run's transcode."""
    return posting.plan_media(runtime.services(), request, accounts, source, post_keys, get_run_logger())


# --- the ledger row of a post ----------------------------------------------------------------------


def stored_request_of(post: Post, services: Services | None = None) -> dict[str, Any]:
    """The request (JSON, without accounts) of the post's latest attempt, as the ledger stored it."""
    return posting.stored_request_of(services or runtime.services(), post)


@task(name="record-failures", **retry_options())
def record_failures(request: PublishRequest, failures: dict[str, StepFailure], source: FetchedSource | None = None,
                    post_keys: dict[str, str] | None = None, nicknames: dict[str, str | None] | None = None,
                    ) -> dict[str, PublishResult]:
    """Every account in `failures` gets a failed post in the ledger (and its result), so the
    history (`tiktok-pipeline posts list --status failed`) holds every post that was asked for.
    An unreachable ledger is retried; posts recorded so far are found again by their keys."""
    return posting.record_failures(runtime.services(), request, failures, source, post_keys, nicknames, get_run_logger())


# --- init, upload, poll ----------------------------------------------------------------------------


def _schedule_deferred(post_id: int, when: datetime) -> ScheduledRun | None:
    """`posting.Schedule`: a publish-deferred-post run for the post at its next free slot."""
    from tasks.scheduling import schedule_deferred

    try:
        run = schedule_deferred(post_id, when)
    except ObjectNotFound:  # no publish-deferred-post deployment on this server: nothing can run it later
        get_run_logger().warning("cannot defer post %d: the publish-deferred-post deployment does not exist", post_id)
        return None
    return ScheduledRun(id=str(run.id), name=run.name)


def current_flow_run_id() -> str | None:
    run_id = current_flow_run.id
    return str(run_id) if run_id else None


def initializer_still_running(record: InitRecord) -> str | None:
    """`posting.StillRunning` asking the Prefect API: the flow run that initialized the post when it may
    still be sending bytes (it is not over and the upload URL still works); None when nobody can send
    the post a byte any more."""
    if record.url_expired(runtime.services().ledger.now()):
        return None  # TikTok refuses every byte to an expired upload URL
    if not record.flow_run_id:
        return "the run that initialized it"  # recorded before runs were: assume the worst until the URL expires
    if record.flow_run_id == str(current_flow_run.id):
        return None
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(record.flow_run_id))
    except ObjectNotFound:
        return None  # deleted from Prefect: long over
    except Exception:  # cannot tell: assume it may still upload
        return f"flow run {record.flow_run_id}"
    if run.state is not None and run.state.is_final():
        return None
    return f"flow run {run.name} ({record.flow_run_id}, {run.state.name if run.state else 'Pending'})"


def run_has_ended(owner: str) -> bool:
    """`posting.OwnerHasEnded` asking the Prefect API: whether the flow run holding a post's lease is over
    (a final state, or unknown to Prefect). An owner that is not a flow run id is never assumed over."""
    if owner == str(current_flow_run.id):
        return False
    try:
        with get_client(sync_client=True) as client:
            return runtime.flow_run_has_ended(client, owner)
    except Exception:  # cannot tell: its lease decides
        return False


@task(name="init-post", retries=0, **STEP_OPTIONS)
def init_post(request: PublishRequest, check: CreatorCheck, source: FetchedSource, media: PreparedMedia | None,
              post_key: str | None = None, pull_url: str | None = None) -> PublishResult:
    """Reserve a daily slot, keep the media, call init and persist the publish_id before any byte is uploaded.

    Not retried by Prefect: the step retries an init without a usable answer itself (a new init is
    safe for FILE_UPLOAD: the lost one gave no upload URL), and nothing else. A post that exists but never
    reached TikTok (deferred, released from hold, interrupted before init) carries on; one an
    earlier run initialized resumes with the media kept at its init (`media` is None for posts
    that need none: posted, failed after init, hold drafts).
    """
    return posting.init_post(runtime.services(), request, check, source, media, post_key, flow_run_id=current_flow_run_id(),
                             still_running=initializer_still_running, schedule=_schedule_deferred,
                             owner_has_ended=run_has_ended, pull_url=pull_url,
                             log=get_run_logger())


@task(name="stage-for-pull", **retry_options())
def stage_for_pull(media: PreparedMedia) -> str:
    """Write the prepared video once under the verified URL prefix (TIKTOK_PIPELINE_PULL_URL_PREFIXES);
    its URL, which every account's init gives TikTok to pull (no upload from this worker)."""
    current = runtime.settings()
    where = pull.require_pull_location(current, "PULL_FROM_URL")
    staged = pull.stage(current, where, Path(media.path), media.sha256)
    get_run_logger().info("%s: %s", staged.url, f"written to {staged.location.uri} ({megabytes(staged.size)})"
                          if staged.sent else f"already at {staged.location.uri}: nothing sent")
    return staged.url


@task(name="upload", **retry_options())
def upload(result: PublishResult, media: PreparedMedia | None) -> PublishResult:
    """Send the media init announced (the kept file) in chunks; a retry, or a re-run of the request,
    resumes where TikTok's upload host says it is, with the very same bytes."""
    if result.post_id is not None:
        log_attempt(f"upload of post {result.post_id} ({result.publish_id})")
    return posting.upload(runtime.services(), result, media, progress=ArtifactProgress(), log=get_run_logger(),
                          owner=current_flow_run_id())


@task(name="poll-status", **retry_options())
def poll_status(result: PublishResult, username: str | None = None) -> PublishResult:
    """Poll status/fetch until TikTok answers PUBLISH_COMPLETE, SEND_TO_USER_INBOX or FAILED."""
    log_attempt(f"status polling of post {result.post_id} ({result.publish_id})")
    return posting.poll_status(runtime.services(), result, username, get_run_logger(), owner=current_flow_run_id())


def record_status(post: Post, status: PublishStatus, username: str | None, services: Services | None = None) -> Post:
    """Store a terminal (or still processing) status answer in the ledger."""
    return posting.record_status(services or runtime.services(), post, status, username)


def kept_media_in_use(services: Services | None = None) -> set[str]:
    """Content hashes of the kept media a post may still send bytes from (see `posting.kept_media_in_use`)."""
    return posting.kept_media_in_use(services or runtime.services())


def interrupted_result(account: str, post_id: int, exc: BaseException, nickname: str | None,
                       services: Services | None = None) -> PublishResult:
    """The result of a chain whose task gave up after `post_id` was recorded: the ledger says where it stopped."""
    return posting.interrupted_result(services or runtime.services(), account, post_id, exc, nickname)


# --- what the run shows --------------------------------------------------------------------------


def report_results(results: Sequence[PublishResult], title: str) -> None:
    """The run-level table (one row per account) and one artifact per post, SELF_ONLY and failures
    included: publish_id, state, privacy and the link or the reason there is none."""
    outcome = verdict(results)
    create_table_artifact(table=summary_rows(results), key="publish-results",
                          description=f"{title}: {outcome.message}")
    for result in results:
        if result.post_id is None and is_done(result):
            continue  # scheduled for later: the scheduled run makes the post and its artifact
        create_markdown_artifact(markdown=post_markdown(result), key=artifact_key("post", result.account),
                                 description=post_description(result))


def log_results(results: Sequence[PublishResult]) -> None:
    logger = get_run_logger()
    for r in results:
        detail = r.share_url or r.error_message or ""
        logger.info("%s: %s%s%s", r.account, r.state.value, f" ({r.publish_id})" if r.publish_id else "",
                    f" — {detail}" if detail else "")
