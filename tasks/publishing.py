"""Prefect tasks of the publish flow: each binds one core step to retries, rate limits, artifacts
and the ledger. The order per account is fixed by TikTok's rules: fresh token → creator_info →
cap → init (publish_id persisted before any byte) → chunked upload → status polling.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_run_logger
from pydantic import BaseModel

from flows.models import CapPolicy, PublishRequest, PublishResult, StepTiming
from ledger import BEFORE_INIT_STATES, DailyCapReached, Post, PostMode, PostState, default_idempotency_key
from tasks import _context
from tasks._policy import retry_options
from tasks._sources import FetchedSource, fetch_source, sha256_of
from tiktok import (
    CreatorInfo,
    InitOutcomeUnknown,
    PollPolicy,
    PostInfo,
    PublishFailed,
    PublishStatus,
    RateLimitExceeded,
    ServerError,
    SourceInfo,
    TikTokClient,
    TransportError,
    UploadError,
    apply_creator_rules,
    plan_chunks,
)
from transcode import MediaInfo, Policy, make_tiktok_ready
from tiktok_pipeline.errors import PipelineError

#: Times an init refused with 429 (nothing created) is tried again inside the task.
_INIT_RATE_LIMIT_TRIES = 3


class CreatorCheck(BaseModel):
    """What creator_info allowed for one account, fetched fresh for this post."""

    account: str
    open_id: str
    nickname: str | None
    username: str | None
    max_duration_s: int | None
    post_info: dict[str, Any] | None  # the PostInfo that will be sent (direct posts)
    notes: list[str] = []


class PreparedMedia(BaseModel):
    path: str
    size: int
    sha256: str
    duration: float
    path_taken: str
    seconds: float


def _artifact_key(*parts: str) -> str:
    raw = "-".join(parts).lower()
    return "".join(c if c.isalnum() or c == "-" else "-" for c in raw)[:100]


def _post_info(request: PublishRequest) -> PostInfo:
    return PostInfo(
        title=request.caption,
        privacy_level=request.privacy_level,
        disable_comment=request.disable_comment,
        disable_duet=request.disable_duet,
        disable_stitch=request.disable_stitch,
        video_cover_timestamp_ms=request.cover_timestamp_ms,
        brand_content_toggle=request.brand_content_toggle,
        brand_organic_toggle=request.brand_organic_toggle,
        is_aigc=request.is_aigc,
    )


@task(name="ingest", **retry_options())
def ingest(source: str, work_dir: str, max_bytes: int) -> FetchedSource:
    """Copy the source into the run's working directory (HEAD first for S3; size checked first)."""
    fetched = fetch_source(source, Path(work_dir), _context.settings(), max_bytes=max_bytes)
    get_run_logger().info("fetched %s (%d bytes, sha256 %s…)", fetched.uri, fetched.size, fetched.sha256[:12])
    return fetched


@task(name="check-creator", **retry_options())
def check_creator(account_name: str, request: PublishRequest) -> CreatorCheck:
    """Fresh token + creator_info; stop now if this creator cannot take this post."""
    current = _context.settings()
    account = _context.ledger(current).get_account(account_name)
    if request.mode is PostMode.inbox and "video.publish" not in account.scopes:
        # Inbox-only apps (video.upload) cannot read creator_info; the nickname comes from user info.
        user = _context.with_client(current, account_name, lambda c: c.user_info())
        check = CreatorCheck(account=account_name, open_id=account.open_id, nickname=user.display_name,
                             username=user.username, max_duration_s=None, post_info=None)
    else:
        creator: CreatorInfo = _context.with_client(current, account_name, lambda c: c.creator_info())
        checked = apply_creator_rules(_post_info(request), creator) if request.privacy_level else None
        check = CreatorCheck(
            account=account_name,
            open_id=account.open_id,
            nickname=creator.creator_nickname,
            username=creator.creator_username,
            max_duration_s=creator.max_video_post_duration_sec,
            post_info=checked.post_info.model_dump(mode="json") if checked else None,
            notes=checked.notes if checked else [],
        )
    lines = [f"# Posting as {check.nickname or account_name}", "", f"- account: `{account_name}` (@{check.username or '?'})"]
    if check.max_duration_s:
        lines.append(f"- longest video allowed: {check.max_duration_s} s")
    if check.post_info:
        lines.append(f"- privacy: {check.post_info['privacy_level']}")
    lines += [f"- {note}" for note in check.notes]
    lines.append("\nBy posting, you agree to TikTok's Music Usage Confirmation"
                 + (" and Branded Content Policy." if request.brand_content_toggle else "."))
    create_markdown_artifact(markdown="\n".join(lines), key=_artifact_key("creator", account_name),
                             description=f"Posting as {check.nickname or account_name}")
    return check


@task(name="transcode", **retry_options(retries=1))
def prepare_media(source_path: str, work_dir: str, request: PublishRequest, max_duration_s: float, max_bytes: int) -> PreparedMedia:
    """Validate and transcode once for every account (the strictest max duration wins)."""
    started = time.monotonic()
    policy = Policy(fit=request.fit, max_duration=max_duration_s, on_too_long=request.on_too_long, max_bytes=max_bytes)
    progress_id = create_progress_artifact(progress=0.0, description="Transcoding")
    last = [0.0]

    def on_progress(fraction: float) -> None:
        percent = round(fraction * 100, 0)
        if percent - last[0] >= 5 or percent >= 100:
            last[0] = percent
            update_progress_artifact(progress_id, progress=percent)

    out = Path(work_dir) / "tiktok-ready.mp4"
    result = make_tiktok_ready(source_path, out, policy, on_progress=on_progress)
    update_progress_artifact(progress_id, progress=100.0)
    info: MediaInfo = result.output
    get_run_logger().info("media ready by %s in %.1f s: %s", result.path.value, result.elapsed, "; ".join(result.reasons) or "already compliant")
    return PreparedMedia(path=str(out), size=info.size, sha256=sha256_of(out), duration=info.duration or 0.0,
                         path_taken=result.path.value, seconds=time.monotonic() - started)


def _result(post: Post, check: CreatorCheck, *, reused: bool = False) -> PublishResult:
    """The first result of an account's chain, made from its ledger row."""
    return _refresh(PublishResult(account=post.account_name, state=post.state, nickname=check.nickname, reused=reused), post)


def result_of(post: Post) -> PublishResult:
    """A post's PublishResult as the ledger has it (for posts settled outside a publish run)."""
    return _refresh(PublishResult(account=post.account_name, state=post.state), post)


def _refresh(result: PublishResult, post: Post, step: str | None = None, started: float | None = None) -> PublishResult:
    """`result` brought up to date with the ledger row, plus the timing of the step just done."""
    timings = list(result.timings)
    if step and started is not None:
        timings.append(StepTiming(step=step, seconds=round(time.monotonic() - started, 3)))
    return result.model_copy(update={
        "state": post.state,
        "post_id": post.id,
        "idempotency_key": post.idempotency_key,
        "publish_id": post.publish_id,
        "privacy_level": post.privacy_level,
        "share_url": post.share_url,
        "post_ids": [int(p) for p in post.post_ids if str(p).isdigit()],
        "error_code": post.error_code,
        "error_message": post.error_message,
        "timings": timings,
    })


def _fail(post: Post, exc: BaseException, *, state: PostState = PostState.failed) -> Post:
    code = getattr(exc, "code", None) or type(exc).__name__
    return _context.ledger().transition(post, state, message=str(exc), error_code=str(code), error_message=str(exc),
                                        data={"kind": getattr(exc, "kind", "final")})


def open_post(request: PublishRequest, check: CreatorCheck, source: FetchedSource, post_key: str | None) -> tuple[Post, bool]:
    """The ledger row for this account and request: (post, created)."""
    key = post_key or (request.idempotency_key and f"{request.idempotency_key}:{check.account}")
    key = key or default_idempotency_key(source.sha256, check.account, request.caption, request.mode)
    options = {
        "request": request.model_dump(mode="json", exclude={"accounts"}),
        "post_info": check.post_info,
        "notes": check.notes,
        "source_etag": source.etag,
    }
    return _context.ledger().create_or_get_post(
        key, account_name=check.account, source_uri=source.uri, content_sha256=source.sha256,
        caption=request.caption, options=options, mode=request.mode,
    )


def _defer(request: PublishRequest, post: Post, check: CreatorCheck, exc: DailyCapReached) -> PublishResult | None:
    """Schedule this account's post for the creator's next free slot; None when that is impossible."""
    from flows.scheduling import schedule_publish  # the flow layer owns deployments

    if request.cap_policy is not CapPolicy.defer or exc.next_slot_at is None:
        return None
    try:
        run = schedule_publish(request.model_copy(update={"accounts": [check.account]}), exc.next_slot_at,
                               post_keys={check.account: post.idempotency_key})
    except ObjectNotFound:  # no publish-video deployment on this server: nothing can run it later
        get_run_logger().warning("cannot defer post %d: the publish-video deployment does not exist", post.id)
        return None
    post = _context.ledger().note(post, "deferred", f"daily cap reached; deferred to {exc.next_slot_at:%Y-%m-%d %H:%M} UTC",
                                  data={"flow_run_id": str(run.id), "scheduled_for": exc.next_slot_at.isoformat()})
    return _result(post, check).model_copy(update={"scheduled_for": exc.next_slot_at, "flow_run_id": str(run.id),
                                                   "error_message": str(exc), "error_code": "DailyCapReached"})


@task(name="init-post", retries=0)
def init_post(request: PublishRequest, check: CreatorCheck, source: FetchedSource, media: PreparedMedia,
              post_key: str | None = None) -> PublishResult:
    """Reserve a daily slot, call init and persist the publish_id before any byte is uploaded.

    Never retried: an init whose answer was lost may have created the post, so it becomes
    `unconfirmed` (reconciled later) instead of being sent twice. A post that exists but never
    reached TikTok (deferred, released from hold, interrupted before init) carries on.
    """
    logger = get_run_logger()
    started = time.monotonic()
    book = _context.ledger()
    post, created = open_post(request, check, source, post_key)
    if not created and post.state is PostState.failed and post.publish_id is None:
        post = book.retry_before_init(post, f"tried again after: {post.error_message}")
    if not created and (post.state not in BEFORE_INIT_STATES or post.mode is PostMode.hold):
        logger.info("idempotency key %s already used by post %d (%s): nothing sent", post.idempotency_key, post.id, post.state)
        return _result(post, check, reused=True)
    if post.state is PostState.queued:
        post = book.transition(post, PostState.media_ready, message=f"media ready ({media.path_taken})",
                               data={"media_sha256": media.sha256, "media_size": media.size, "duration": media.duration})
    if request.mode is PostMode.hold:
        logger.info("held as draft post %d: nothing sent to TikTok", post.id)
        return _result(post, check)
    try:
        post = book.reserve_slot(post)
    except DailyCapReached as exc:
        return _defer(request, post, check, exc) or _result(_fail(post, exc), check)
    chunk_size = _context.settings().chunk_size
    plan = plan_chunks(media.size, chunk_size)
    source_info = SourceInfo.file_upload(plan)
    post_info = PostInfo.model_validate(check.post_info) if check.post_info else None

    def init(client: TikTokClient):
        if request.mode is PostMode.inbox:
            return client.init_inbox_video(source_info)
        return client.init_video(post_info, source_info)

    for attempt in range(1, _INIT_RATE_LIMIT_TRIES + 1):
        try:
            answer = _context.with_client(_context.settings(), check.account, init)
            break
        except RateLimitExceeded as exc:  # refused before anything was created: safe to ask again
            if attempt == _INIT_RATE_LIMIT_TRIES:
                return _result(_fail(post, exc), check)
            time.sleep(exc.retry_after or 10.0)
        except (InitOutcomeUnknown, ServerError) as exc:
            # The request may have created a post: never initialize again on our own.
            post = _fail(post, exc, state=PostState.unconfirmed)
            logger.error("init outcome unknown for post %d: marked unconfirmed, not retried", post.id)
            return _result(post, check)
        except TransportError as exc:  # not delivered at all: nothing exists on TikTok's side
            if attempt == _INIT_RATE_LIMIT_TRIES:
                return _result(_fail(post, exc), check)
        except PipelineError as exc:
            return _result(_fail(post, exc), check)
    post = book.transition(
        post, PostState.initialized, publish_id=answer.publish_id,
        privacy_level=post_info.privacy_level.value if post_info else None,
        message=f"initialized as {answer.publish_id}",
        data={"upload_url": answer.upload_url, "chunk_size": chunk_size, "chunks": plan.total_chunk_count,
              "media_sha256": media.sha256, "media_size": media.size},
    )
    return _refresh(_result(post, check), post, "init", started)


def _init_data(post_id: int) -> dict[str, Any]:
    for event in reversed(_context.ledger().post_events(post_id)):
        if event.to_state is PostState.initialized and event.data:
            return event.data
    return {}


@task(name="upload", **retry_options())
def upload(result: PublishResult, media: PreparedMedia) -> PublishResult:
    """Send the file in chunks; a retry resumes where TikTok's upload host says it is."""
    started = time.monotonic()
    book = _context.ledger()
    post = book.get_post(result.post_id)
    if post.state is not PostState.initialized:
        return result
    data = _init_data(post.id)
    if data.get("media_sha256") != media.sha256:
        post = _fail(post, UploadError("the prepared media differs from what was initialized; re-post with a new idempotency key"),
                     state=PostState.unconfirmed)
        return _refresh(result, post)
    plan = plan_chunks(media.size, int(data["chunk_size"]))
    progress_id = create_progress_artifact(progress=0.0, description=f"Uploading to {result.nickname or result.account}")

    def on_progress(sent: int, total: int) -> None:
        update_progress_artifact(progress_id, progress=round(100.0 * sent / total, 1))

    try:
        sent = _context.with_client(
            _context.settings(), post.account_name,
            lambda c: c.upload_video(Path(media.path), data["upload_url"], plan, on_progress=on_progress),
        )
    except PipelineError as exc:
        if exc.retryable:
            raise  # Prefect retries the task; the next try resumes from the server's Content-Range
        return _refresh(result, _fail(post, exc), "upload", started)
    post = book.transition(post, PostState.uploaded, message=f"uploaded {sent.total_bytes} bytes in {sent.chunks_sent} chunks",
                           data={"retries": sent.retries, "resyncs": sent.resyncs})
    return _refresh(result, post, "upload", started)


def share_url(username: str | None, status: PublishStatus) -> str | None:
    if not username or not status.publicaly_available_post_id:
        return None
    return f"https://www.tiktok.com/@{username}/video/{status.publicaly_available_post_id[0]}"


@task(name="poll-status", **retry_options())
def poll_status(result: PublishResult, username: str | None = None) -> PublishResult:
    """Poll status/fetch until TikTok answers PUBLISH_COMPLETE, SEND_TO_USER_INBOX or FAILED."""
    started = time.monotonic()
    book = _context.ledger()
    post = book.get_post(result.post_id)
    if post.state not in (PostState.uploaded, PostState.processing):
        return _refresh(result, post)
    if post.state is PostState.uploaded:
        post = book.transition(post, PostState.processing, message="TikTok is processing the upload")
    try:
        current = _context.settings()
        poll = PollPolicy(initial_interval=current.status_poll_interval, timeout=current.status_poll_timeout)
        status = _context.with_client(current, post.account_name, lambda c: c.wait_for_publish(post.publish_id, poll=poll))
    except PublishFailed as exc:
        post = _fail(post, exc)
    else:
        post = record_status(post, status, username)
    if post.share_url:
        create_link_artifact(link=post.share_url, link_text=f"TikTok post by {result.nickname or post.account_name}",
                             key=_artifact_key("post", post.account_name))
    return _refresh(result, post, "poll", started)


def record_status(post: Post, status: PublishStatus, username: str | None) -> Post:
    """Store a terminal (or still processing) status answer in the ledger."""
    book = _context.ledger()
    ids = [str(i) for i in status.publicaly_available_post_id]
    if status.status == "PUBLISH_COMPLETE":
        return book.transition(post, PostState.published, post_ids=ids, share_url=share_url(username, status),
                               message="published" + ("" if ids else " (public post id not assigned yet)"))
    if status.status == "SEND_TO_USER_INBOX":
        return book.transition(post, PostState.sent_to_inbox, message="sent to the creator's TikTok inbox")
    return post
