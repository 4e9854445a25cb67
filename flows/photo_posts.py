"""The publish-photos flow: 1 to 35 images, one or more accounts, exactly once per account.

preflight (a verified URL prefix is required: TikTok pulls photos, it takes no upload of them) →
fetch every image → prepare each (upright, ≤ 1080 px, JPEG/WebP ≤ 20 MB) → stage each once under the
verified prefix → per account, concurrently: fresh creator_info → content/init → status polling.

A request refused before any post can exist (no verified prefix, no AWS credentials, a photo that
cannot be fetched) fails the run with one line saying why. A step that stops an account later
records its failed post in the ledger. `conclude` makes the run Completed only when every account
got its post (published, or in the creator's inbox).
"""

from __future__ import annotations

from collections.abc import Mapping

from prefect import flow
from prefect.runtime import flow_run as current_flow_run

from flows.publish import check_creators, conclude, current_run_id, remove_run_dir, settle_chain, step_failure
from publishing import PhotoPostRequest, PublishResult, photo_run_name
from publishing.photo_posts import PhotoSet, photo_set_sha256
from publishing.posting import StepFailure, unrecorded_failure
from publishing.workdirs import make_work_dir, remove_work_dir
from tasks import runtime
from tasks.notify import notify_outcomes
from tasks.photo_posts import (
    check_photo_creator,
    fetch_photos,
    init_photo_post,
    photo_preflight,
    prepare_photos,
    record_photo_failures,
    stage_photos,
)
from tasks.policy import with_retries
from tasks.publishing import log_results, poll_status, report_results
from tiktok_pipeline.settings import Settings


def _unrecorded(request: PhotoPostRequest, failures: Mapping[str, StepFailure]) -> dict[str, PublishResult]:
    return {name: unrecorded_failure(name, request.mode, failure) for name, failure in failures.items()}


def _recorded(settings: Settings, request: PhotoPostRequest, failures: Mapping[str, StepFailure], sha256: str,
              nicknames: Mapping[str, str | None] | None = None) -> dict[str, PublishResult]:
    if not failures:
        return {}
    if not all(f.recordable for f in failures.values()):  # the ledger is down: say so without waiting for it again
        return _unrecorded(request, failures)
    state = with_retries(record_photo_failures, settings)(request, dict(failures), sha256, dict(nicknames or {}),
                                                          return_state=True)
    recorded = state.result(raise_on_failure=False)
    return recorded if isinstance(recorded, dict) else _unrecorded(request, failures)


def _post_photos(settings: Settings, request: PhotoPostRequest, work_dir: str) -> dict[str, PublishResult]:
    checked = with_retries(photo_preflight, settings)(request, return_state=True)
    if (failure := step_failure("preflight", checked)) is not None:
        return _unrecorded(request, dict.fromkeys(request.accounts, failure))
    results = _unrecorded(request, checked.result())  # accounts not connected: the fix named, no ledger row
    connected = [name for name in request.accounts if name not in results]
    if not connected:
        return results
    fetched = with_retries(fetch_photos, settings)(request, work_dir, return_state=True)
    if (failure := step_failure("fetch-photos", fetched)) is not None:  # no content hash yet: nothing to key a post by
        return results | _unrecorded(request, dict.fromkeys(connected, failure))
    sources = fetched.result()
    sha256 = photo_set_sha256([s.sha256 for s in sources])
    prepared = with_retries(prepare_photos, settings)(sources, work_dir, return_state=True)
    if (failure := step_failure("prepare-photos", prepared)) is not None:
        return results | _recorded(settings, request, dict.fromkeys(connected, failure), sha256)
    staged = with_retries(stage_photos, settings)(sources, prepared.result(), return_state=True)
    if (failure := step_failure("stage-photos", staged)) is not None:
        return results | _recorded(settings, request, dict.fromkeys(connected, failure), sha256)
    photo_set: PhotoSet = staged.result()
    checks, refused = check_creators(settings, request, connected, check_photo_creator)
    results |= _recorded(settings, request, refused, sha256)
    poll_ = with_retries(poll_status, settings)
    chains = {}
    for name, check in checks.items():
        initialized = init_photo_post.submit(request, check, photo_set)
        chains[name] = [initialized, poll_.submit(initialized, check.username)]
    for name, chain in chains.items():
        results[name] = settle_chain(name, chain, checks[name], request)
    return results


def post_photos(request: PhotoPostRequest) -> list[PublishResult]:
    """Post `request` inside the current flow run; one PublishResult per account, in request order.
    Also reports: outcome events and webhooks, the run table and one artifact per post."""
    settings = runtime.settings()
    work_dir = make_work_dir(settings, current_run_id())
    try:
        results = _post_photos(settings, request, str(work_dir))
    finally:
        remove_work_dir(work_dir)
    ordered = [results[name] for name in request.accounts]
    notify_outcomes(request.mode, ordered)
    report_results(ordered, photo_run_name(request.images, request.accounts, request.mode.value))
    log_results(ordered)
    return ordered


def _photo_flow_run_name() -> str:
    raw = current_flow_run.parameters.get("request")
    if isinstance(raw, PhotoPostRequest):
        return photo_run_name(raw.images, raw.accounts, raw.mode.value)
    raw = raw if isinstance(raw, dict) else {}
    return photo_run_name([str(i) for i in raw.get("images") or []], [str(a) for a in raw.get("accounts") or []],
                          str(raw.get("mode") or "direct"))


@flow(name="publish-photos", flow_run_name=_photo_flow_run_name, persist_result=True,
      on_cancellation=[remove_run_dir], on_crashed=[remove_run_dir])
def publish_photos(request: PhotoPostRequest) -> object:
    """Post 1 to 35 photos as one TikTok photo post to every account in the request.

    Needs a verified URL prefix (TIKTOK_PIPELINE_PULL_URL_PREFIXES): TikTok pulls photos from it.
    Ends Completed when every account's post is published or in the creator's inbox; Failed otherwise,
    naming each account and its reason. The result is the list of PublishResult either way.
    """
    return conclude(post_photos(request))
