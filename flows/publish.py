"""The publish-video flow: one video, one or more accounts, exactly once per account.

It only composes tasks: ingest once → check every creator (fresh creator_info) → transcode once
for the strictest creator → per account, concurrently: init → upload → poll. The working directory
is removed whatever happens (finally + state hooks; the cleanup flow sweeps after crashes).
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from prefect.futures import PrefectFuture

from flows.models import PublishRequest, PublishResult, StepTiming
from flows.scheduling import is_due, schedule_publish
from ledger import PostState
from tasks import _context
from tasks._sources import apply_source_action
from tasks._workdirs import make_work_dir, remove_work_dir, work_root
from tasks.notify import notify_outcomes
from tasks.publishing import CreatorCheck, check_creator, ingest, init_post, poll_status, prepare_media, upload
from transcode import Policy


def _run_id() -> str:
    context = get_run_context()
    return str(context.flow_run.id) if getattr(context, "flow_run", None) else f"local-{time.time_ns()}"


def _remove_run_dir(flow, flow_run, state) -> None:  # state hook: cancellation and crashes
    path = work_root(_context.settings()) / str(flow_run.id)
    if path.exists():
        remove_work_dir(path)


def _failed(account: str, exc: BaseException) -> PublishResult:
    return PublishResult(account=account, state=PostState.failed, error_code=getattr(exc, "code", None) or type(exc).__name__,
                         error_message=str(exc))


def _outcome(future: PrefectFuture) -> object:
    """A task's return value or exception; None when it never ran (an upstream task failed)."""
    future.wait()
    if future.state.is_final():
        return future.result(raise_on_failure=False)
    return None


def _settle(account: str, chain: list[PrefectFuture], check: CreatorCheck) -> PublishResult:
    """The result of one account's chain (init → upload → poll); when a task gave up, the ledger
    says where the post stopped."""
    outcomes = [_outcome(f) for f in chain]
    if isinstance(outcomes[-1], PublishResult):
        return outcomes[-1]
    exc = next((o for o in outcomes if isinstance(o, BaseException)), RuntimeError("the publish chain did not finish"))
    started = outcomes[0]
    if not isinstance(started, PublishResult) or started.post_id is None:
        return _failed(account, exc)
    post = _context.ledger().get_post(started.post_id)
    message = post.error_message or str(exc)
    if post.state in (PostState.initialized, PostState.uploaded):
        # The publish_id is recorded and TikTok keeps the upload open for an hour: running the same
        # request again resumes it; after that the cleanup flow records it as failed.
        message = f"upload interrupted ({exc}); run the same request again within the hour to resume"
    # `processing`: polling gave up; the cleanup flow reconciles it later.
    return PublishResult(account=account, state=post.state, post_id=post.id, publish_id=post.publish_id,
                         idempotency_key=post.idempotency_key, nickname=check.nickname,
                         error_code=post.error_code or type(exc).__name__, error_message=message)


def _check_creators(request: PublishRequest) -> tuple[dict[str, CreatorCheck], dict[str, PublishResult]]:
    """Fresh creator_info for every account, concurrently: (accounts that may post, failed results)."""
    futures = {name: check_creator.submit(name, request) for name in request.accounts}
    checks: dict[str, CreatorCheck] = {}
    failed: dict[str, PublishResult] = {}
    for name, future in futures.items():
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, CreatorCheck):
            checks[name] = outcome
        else:
            failed[name] = _failed(name, outcome)
    return checks, failed


def _scheduled(request: PublishRequest) -> list[PublishResult]:
    run = schedule_publish(request, request.schedule_at)
    get_run_logger().info("scheduled for %s as flow run %s", request.schedule_at.isoformat(), run.id)
    return [PublishResult(account=name, state=PostState.queued, scheduled_for=request.schedule_at, flow_run_id=str(run.id))
            for name in request.accounts]


@flow(name="publish-video", persist_result=True, on_cancellation=[_remove_run_dir], on_crashed=[_remove_run_dir])
def publish_video(request: PublishRequest, post_keys: dict[str, str] | None = None) -> list[PublishResult]:
    """Publish one video to every account in the request (see PublishRequest for the fields).

    `post_keys` (advanced) names the ledger post to continue per account; the pipeline sets it when
    it releases a held draft or defers a post past a daily cap.
    """
    if not is_due(request):
        return _scheduled(request)
    logger = get_run_logger()
    current = _context.settings()
    work_dir = make_work_dir(current, _run_id())
    max_bytes = Policy().max_bytes
    timings: list[StepTiming] = []
    try:
        try:
            started = time.monotonic()
            source = ingest(request.source, str(work_dir), max_bytes)
            timings.append(StepTiming(step="ingest", seconds=round(time.monotonic() - started, 3)))
            checks, results = _check_creators(request)
            if checks:
                limits = [c.max_duration_s for c in checks.values() if c.max_duration_s]
                max_duration = float(min(limits)) if limits else Policy().max_duration
                media = prepare_media(str(source.path), str(work_dir), request, max_duration, max_bytes)
                timings.append(StepTiming(step="transcode", seconds=round(media.seconds, 3)))
        except Exception as exc:
            # The source or the video is unusable: every account's post fails; say so to listeners, then
            # fail the run with the error's message.
            notify_outcomes(request.mode, [_failed(name, exc) for name in request.accounts])
            raise
        chains = {}
        for name, check in checks.items():
            initialized = init_post.submit(request, check, source, media, (post_keys or {}).get(name))
            uploaded = upload.submit(initialized, media)
            chains[name] = [initialized, uploaded, poll_status.submit(uploaded, check.username)]
        for name, chain in chains.items():
            results[name] = _settle(name, chain, checks[name])
        ordered = [results[name].model_copy(update={"timings": timings + results[name].timings}) for name in request.accounts]
        notify_outcomes(request.mode, ordered)  # events + webhooks; never raises
        if ordered and all(r.ok for r in ordered) and not any(r.reused for r in ordered):
            moved = apply_source_action(current, source.uri, request.source_action.value, request.move_prefix)
            if moved:
                logger.info("source moved to %s", moved)
        for r in ordered:
            logger.info("%s: %s%s", r.account, r.state.value, f" ({r.error_message})" if r.error_message else "")
        return ordered
    finally:
        remove_work_dir(Path(work_dir))
