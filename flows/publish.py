"""The publish-video flow: one video, one or more accounts, exactly once per account.

`publish` is the composition the publish flows share (publish-video, release-held-post,
publish-deferred-post): preflight → ingest once → check every creator (fresh creator_info) →
find the media earlier runs kept → transcode once, for the strictest creator among the accounts
that still need media → per account, concurrently: init → upload → poll. A re-run of an
interrupted request (a crash retry) resumes each initialized post with the very media its init
announced, kept under the data dir, and transcodes nothing it already has. A step
that stops an account records the failed post in the ledger; nothing raises out of it for a bad
source, video or account. `conclude` turns the results into the run's state: Completed when every
account is done (published, in the inbox, held, scheduled, deferred), Failed otherwise, with a
message naming each account not posted and why, and the results readable either way.

The working directory is removed whatever happens (finally + state hooks; the cleanup flow sweeps
after crashes).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.context import get_run_context
from prefect.exceptions import ObjectNotFound
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Completed, Failed

from publishing import PhotoPostRequest, PublishRequest, PublishResult, StepTiming
from tasks.scheduling import is_due, schedule_publish
from ledger import PostState, PublishMode
from publishing import review
from publishing.pull import pull_location
from publishing.review import ReviewTicket
from publishing import publish_run_name, verdict
from tasks import runtime
from publishing.sources import FetchedSource, apply_source_action
from publishing.workdirs import make_work_dir, remove_work_dir, work_root
from tasks.notify import notify_outcomes
from publishing.posting import CreatorCheck, MediaPlan, PreparedMedia, StepFailure, first_result, unrecorded_failure
from tasks.policy import with_retries
from tasks.publishing import (
    check_creator,
    ingest,
    init_post,
    interrupted_result,
    log_results,
    plan_media,
    poll_status,
    preflight,
    prepare_media,
    record_failures,
    report_results,
    stage_for_pull,
    upload,
)
from tasks.review import ask_for_review, keep_held, open_for_review, preview_media, record_review
from tiktok_pipeline.errors import PipelineError
from tiktok_pipeline.settings import Settings
from transcode import Policy


def current_run_id() -> str:
    context = get_run_context()
    return str(context.flow_run.id) if getattr(context, "flow_run", None) else f"local-{time.time_ns()}"


def remove_run_dir(flow, flow_run, state) -> None:  # state hook: cancellation and crashes
    path = work_root(runtime.settings()) / str(flow_run.id)
    if path.exists():
        remove_work_dir(path)


def _outcome(future: PrefectFuture) -> object:
    """A task's return value or exception; None when it never ran (an upstream task failed)."""
    future.wait()
    if future.state.is_final():
        return future.result(raise_on_failure=False)
    return None


def step_failure(step: str, state: State) -> StepFailure | None:
    """None when the task's state is Completed; else why it stopped."""
    if state.is_completed():
        return None
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BaseException):
        return StepFailure.of(step, outcome)
    return StepFailure(step=step, code=state.name or "Failed", message=state.message or f"{step} ended {state.name}")


def _record(settings: Settings, request: PublishRequest, failures: Mapping[str, StepFailure],
            source: FetchedSource | None, post_keys: Mapping[str, str],
            nicknames: Mapping[str, str | None] | None = None) -> dict[str, PublishResult]:
    """Failed results for `failures`, recorded in the ledger when it takes them."""
    if not failures:
        return {}
    if not all(f.recordable for f in failures.values()):  # the ledger is down: say so without waiting for it again
        return {name: unrecorded_failure(name, request.mode, f) for name, f in failures.items()}
    state = with_retries(record_failures, settings)(request, dict(failures), source, dict(post_keys), dict(nicknames or {}), return_state=True)
    recorded = state.result(raise_on_failure=False)
    if isinstance(recorded, dict):
        return recorded
    return {name: unrecorded_failure(name, request.mode, f.model_copy(update={
        "message": f"{f.message} (not recorded in the ledger: {recorded})"})) for name, f in failures.items()}


def settle_chain(account: str, chain: list[PrefectFuture], check: CreatorCheck, request: PublishRequest | PhotoPostRequest
                 ) -> PublishResult:
    """The result of one account's chain (init → upload → poll, or a photo post's init → poll); when a
    task gave up, the ledger says where the post stopped."""
    outcomes = [_outcome(f) for f in chain]
    if isinstance(outcomes[-1], PublishResult):
        return outcomes[-1]
    exc = next((o for o in outcomes if isinstance(o, BaseException)), RuntimeError("the publish chain did not finish"))
    started = outcomes[0]
    if not isinstance(started, PublishResult) or started.post_id is None:
        return unrecorded_failure(account, request.mode, exc)
    return interrupted_result(account, started.post_id, exc, check.nickname)


def check_creators(settings: Settings, request: PublishRequest | PhotoPostRequest, accounts: Sequence[str],
                   check_task: Any = check_creator) -> tuple[dict[str, CreatorCheck], dict[str, StepFailure]]:
    """Fresh creator_info for every account, concurrently (`check_task`: the check-creator task of the
    request's kind): (accounts that may post, why the others may not)."""
    check = with_retries(check_task, settings)
    futures = {name: check.submit(name, request) for name in accounts}
    checks: dict[str, CreatorCheck] = {}
    failed: dict[str, StepFailure] = {}
    for name, future in futures.items():
        future.wait()
        failure = step_failure("check-creator", future.state)
        if failure is None:
            checks[name] = future.result()
        else:
            failed[name] = failure
    return checks, failed


def _scheduled(settings: Settings, request: PublishRequest) -> list[PublishResult]:
    try:
        run = schedule_publish(request, request.schedule_at)
    except ObjectNotFound:  # no publish-video deployment on this server: nothing would ever run it
        failure = StepFailure(step="schedule", code="DeploymentNotFound", message=(
            "cannot schedule the post: the publish-video deployment does not exist on this Prefect server "
            "(deploy prefect.yaml, see docs/deploy.md)"))
        results = _record(settings, request, {name: failure for name in request.accounts}, None, {})
        return [results[name] for name in request.accounts]
    get_run_logger().info("scheduled for %s as flow run %s (%s)", request.schedule_at.isoformat(), run.name, run.id)
    return [PublishResult(account=name, state=PostState.queued, mode=request.mode, scheduled_for=request.schedule_at,
                          flow_run_id=str(run.id)) for name in request.accounts]


def _timed(step: str, started: float) -> StepTiming:
    return StepTiming(step=step, seconds=round(time.monotonic() - started, 3))


def _publish_due(settings: Settings, request: PublishRequest, post_keys: Mapping[str, str], work_dir: Path
                 ) -> tuple[dict[str, PublishResult], list[StepTiming], FetchedSource | None]:
    checked = with_retries(preflight, settings)(request, return_state=True)
    if (failure := step_failure("preflight", checked)) is not None:
        return _record(settings, request, dict.fromkeys(request.accounts, failure), None, post_keys), [], None
    unknown: dict[str, StepFailure] = checked.result()  # accounts not connected: no ledger row, the fix named
    results = {name: unrecorded_failure(name, request.mode, why) for name, why in unknown.items()}
    connected = [name for name in request.accounts if name not in unknown]
    if not connected:
        return results, [], None
    started = time.monotonic()
    fetched = with_retries(ingest, settings)(request.source, str(work_dir), Policy().max_bytes, return_state=True)
    if (failure := step_failure("ingest", fetched)) is not None:
        failed = _record(settings, request, dict.fromkeys(connected, failure), None, post_keys)
        return results | failed, [_timed("ingest", started)], None
    source: FetchedSource = fetched.result()
    timings = [_timed("ingest", started)]
    checks, refused = check_creators(settings, request, connected)
    results |= _record(settings, request, refused, source, post_keys)
    if not checks:
        return results, timings, source
    media_for, failed, transcode_timing = _prepare(settings, request, checks, source, post_keys, work_dir)
    results |= failed
    timings += transcode_timing
    checks = {name: check for name, check in checks.items() if name not in failed}
    requests = dict.fromkeys(checks, request)
    keys = dict(post_keys)
    if request.review and request.mode is not PublishMode.hold and checks:
        started = time.monotonic()
        reviewed, settled = _review(settings, request, checks, source, media_for, keys, work_dir)
        results |= settled
        timings.append(_timed("review", started))
        checks = {name: check for name, (_, check, _) in reviewed.items()}
        requests = {name: account_request for name, (account_request, _, _) in reviewed.items()}
        keys |= {name: key for name, (_, _, key) in reviewed.items()}
    pull_urls, unstaged = _staged(settings, checks, media_for, request, source, keys)
    results |= unstaged
    checks = {name: check for name, check in checks.items() if name not in unstaged}
    chains = {}
    upload_, poll_ = with_retries(upload, settings), with_retries(poll_status, settings)
    for name, check in checks.items():
        initialized = init_post.submit(requests[name], check, source, media_for.get(name), keys.get(name),
                                       pull_urls.get(name))
        uploaded = upload_.submit(initialized, media_for.get(name))
        chains[name] = [initialized, uploaded, poll_.submit(uploaded, check.username)]
    for name, chain in chains.items():
        results[name] = settle_chain(name, chain, checks[name], requests[name])
    return results, timings, source


def _staged(settings: Settings, checks: Mapping[str, CreatorCheck], media_for: Mapping[str, PreparedMedia],
            request: PublishRequest, source: FetchedSource, post_keys: Mapping[str, str]
            ) -> tuple[dict[str, str], dict[str, PublishResult]]:
    """With a verified URL prefix (and TIKTOK_PIPELINE_PULL_VIDEOS on), each prepared video written there once: (its pull URL per account,
    the failed results of the accounts whose staging failed). A fan-out to N accounts sends the bytes
    once, to S3. Media an earlier run kept for an upload it began is not staged: that upload resumes."""
    urls: dict[str, str] = {}
    failed: dict[str, PublishResult] = {}
    if pull_location(settings) is None or not settings.pull_videos:
        return urls, failed
    by_media: dict[str, list[str]] = {}
    for name in checks:
        media = media_for.get(name)
        if media is not None and media.path_taken != "kept":
            by_media.setdefault(media.sha256, []).append(name)
    stage = with_retries(stage_for_pull, settings)
    for names in by_media.values():
        staged = stage(media_for[names[0]], return_state=True)
        if (failure := step_failure("stage-for-pull", staged)) is not None:
            failed |= _record(settings, request, dict.fromkeys(names, failure), source, post_keys,
                              {name: checks[name].nickname for name in names})
            continue
        urls |= dict.fromkeys(names, staged.result())
    return urls, failed


def _review(settings: Settings, request: PublishRequest, checks: Mapping[str, CreatorCheck], source: FetchedSource,
            media_for: Mapping[str, PreparedMedia], post_keys: Mapping[str, str], work_dir: Path
            ) -> tuple[dict[str, tuple[PublishRequest, CreatorCheck, str]], dict[str, PublishResult]]:
    """Each account's post waits as a hold draft while a person reviews it in the Prefect UI; (what to
    send per account: its reviewed request, check and post key; the results of the others: kept held,
    or failed)."""
    open_ = with_retries(open_for_review, settings)
    futures = {name: open_.submit(request, check, source, post_keys.get(name)) for name, check in checks.items()}
    tickets: dict[str, ReviewTicket] = {}
    failed: dict[str, StepFailure] = {}
    for name, future in futures.items():
        future.wait()
        if (failure := step_failure("open-for-review", future.state)) is None:
            tickets[name] = future.result()
        else:
            failed[name] = failure
    nicknames = {name: check.nickname for name, check in checks.items()}
    settled = _record(settings, request, failed, source, post_keys, nicknames)
    send: dict[str, tuple[PublishRequest, CreatorCheck, str]] = {}
    for name, ticket in tickets.items():
        # Reviewed by an earlier run of this request: its choices stand. Further than a review (sent, or
        # posted without one): init_post reports or resumes it.
        earlier = PublishRequest.model_validate({**ticket.reviewed, "accounts": [name]}) if ticket.reviewed else None
        if ticket.settled:
            send[name] = (earlier or request, checks[name], ticket.post_key)
        elif earlier is not None:
            send[name] = (earlier, review.recheck(checks[name], earlier), ticket.post_key)
    pending = [name for name, ticket in tickets.items() if ticket.pending]
    if not pending:
        return send, settled
    media = next((media_for[name] for name in pending if name in media_for), None)
    images: dict[str, str] = {}
    if media is not None:
        preview = preview_media(media, str(work_dir), request.cover_timestamp_ms, return_state=True)
        images = preview.result() if preview.is_completed() else {}  # a review without the stills still works
    answers = ask_for_review([checks[name] for name in pending], request, media, images, settings.review_timeout)
    for name in pending:
        ticket, check = tickets[name], checks[name]
        if answers is None:
            why = f"no review within {settings.review_timeout} s: kept held, release it with `tiktok-pipeline posts release {ticket.post_id}`"
            post = keep_held(ticket, why)
            settled[name] = first_result(post, check.nickname).model_copy(update={"error_message": why})
            continue
        account_request, answer = answers[name]
        post = record_review(ticket, account_request, answer)
        if account_request is None:
            why = f"the review kept it held (no consent): release it with `tiktok-pipeline posts release {ticket.post_id}`"
            settled[name] = first_result(post, check.nickname).model_copy(update={"error_message": why})
            continue
        try:
            send[name] = (account_request, review.recheck(check, account_request), ticket.post_key)
        except PipelineError as exc:  # creator_info's rules refuse the choice (TikTok changed them meanwhile)
            settled |= _record(settings, account_request, {name: StepFailure.of("review", exc)}, source,
                               {name: ticket.post_key}, nicknames)
    return send, settled


def _prepare(settings: Settings, request: PublishRequest, checks: Mapping[str, CreatorCheck], source: FetchedSource,
             post_keys: Mapping[str, str], work_dir: Path
             ) -> tuple[dict[str, PreparedMedia], dict[str, PublishResult], list[StepTiming]]:
    """Media per account: what an earlier run kept for a post it initialized, else one transcode
    for the accounts that still need media (none for posts that need none). Also the failed results
    when the transcode fails, and its timing."""
    planned = with_retries(plan_media, settings)(request, list(checks), source, dict(post_keys), return_state=True)
    plan: MediaPlan = planned.result() if planned.is_completed() else MediaPlan(needed=list(checks))
    media_for: dict[str, PreparedMedia] = dict(plan.kept)
    if not plan.needed:
        return media_for, {}, []
    limits = [checks[name].max_duration_s for name in plan.needed if checks[name].max_duration_s]
    max_duration = float(min(limits)) if limits else Policy().max_duration
    prepared = with_retries(prepare_media, settings)(str(source.path), str(work_dir), request, max_duration, Policy().max_bytes, return_state=True)
    if (failure := step_failure("transcode", prepared)) is not None:
        nicknames = {name: checks[name].nickname for name in plan.needed}
        return media_for, _record(settings, request, dict.fromkeys(plan.needed, failure), source, post_keys, nicknames), []
    media: PreparedMedia = prepared.result()
    media_for |= dict.fromkeys(plan.needed, media)
    return media_for, {}, [StepTiming(step="transcode", seconds=round(media.seconds, 3))]


def _apply_source_action(settings: Settings, request: PublishRequest, source: FetchedSource | None,
                         results: Sequence[PublishResult]) -> None:
    """keep / delete / move an S3 source once every account has its post (not for a repeated request)."""
    if source is None or not results or not all(r.ok for r in results) or any(r.reused for r in results):
        return
    try:
        moved = apply_source_action(settings, source.uri, request.source_action.value, request.move_prefix)
    except PipelineError as exc:  # the posts are out: the run says what is left to do by hand
        get_run_logger().error("source_action %s of %s failed: %s", request.source_action.value, source.uri, exc)
        return
    if moved:
        get_run_logger().info("source moved to %s", moved)


def publish(request: PublishRequest, post_keys: Mapping[str, str] | None = None, *, title: str | None = None
            ) -> list[PublishResult]:
    """Publish `request` inside the current flow run; one PublishResult per account, in request order.

    `post_keys` names the ledger post to continue per account (a released hold draft, a deferred
    post). Also reports: outcome events and webhooks, the run table and one artifact per post.
    The settings (the steps' retries included) are read once, when the run starts.
    """
    settings = runtime.settings()
    keys = dict(post_keys or {})
    source: FetchedSource | None = None
    due = is_due(request)
    if not due:
        ordered = _scheduled(settings, request)
    else:
        work_dir = make_work_dir(settings, current_run_id())
        try:
            results, timings, source = _publish_due(settings, request, keys, work_dir)
        finally:
            remove_work_dir(Path(work_dir))
        ordered = [results[name].model_copy(update={"timings": timings + results[name].timings}) for name in request.accounts]
    # Events + webhooks (never raises); a run merely scheduled for later has no outcome to announce yet.
    notify_outcomes(request.mode, ordered if due else [r for r in ordered if r.scheduled_for is None])
    _apply_source_action(settings, request, source, ordered)
    report_results(ordered, title or publish_run_name(request.source, request.accounts, request.mode.value))
    log_results(ordered)
    return ordered


def conclude(results: Sequence[PublishResult], data: Any = None) -> State:
    """The run's final state: Completed when every account is done, else Failed naming who and why.

    Either way the state carries `data` (default: the results), persisted so that
    `state.result(raise_on_failure=False)` reads it from another process too.
    """
    outcome = verdict(results)
    value = list(results) if data is None else data
    if outcome.ok:
        get_run_logger().info(outcome.message)
        return Completed(message=outcome.message, data=value)
    get_run_logger().error(outcome.message)
    return Failed(message=outcome.message, data=value)


def _publish_run_name() -> str:
    raw = current_flow_run.parameters.get("request")
    if isinstance(raw, PublishRequest):
        return publish_run_name(raw.source, raw.accounts, raw.mode.value)
    raw = raw if isinstance(raw, dict) else {}
    return publish_run_name(str(raw.get("source") or "video"), [str(a) for a in raw.get("accounts") or []],
                            str(raw.get("mode") or "direct"))


@flow(name="publish-video", flow_run_name=_publish_run_name, persist_result=True,
      on_cancellation=[remove_run_dir], on_crashed=[remove_run_dir])
def publish_video(request: PublishRequest) -> State:
    """Publish one video to every account in the request (see PublishRequest for the fields).

    Ends Completed when every account ended published, in the inbox, held, scheduled or deferred;
    Failed otherwise, naming each account and its reason. The result is the list of PublishResult
    either way.
    """
    return conclude(publish(request))
