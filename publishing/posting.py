"""The steps of one post, without Prefect: each takes the `Services` and plain arguments and returns
models (the Prefect tasks in `tasks.publishing` add retries, artifacts and the run logger).

The order per account is fixed by TikTok's rules: fresh token → creator_info → cap → init (publish_id
persisted before any byte) → chunked upload → status polling.

    check = check_creator(services, "brand", request)              # CreatorCheck, or a TikTok refusal
    result = init_post(services, request, check, source, media)    # PublishResult (post initialized)
    result = upload(services, result, media)                       # ... uploaded
    result = poll_status(services, result, check.username)         # ... published / in the inbox

Every post the pipeline is asked for ends in the ledger, also when it fails before TikTok is asked
(`record_failures`): only an account that is not connected has no row to record it in.

A post's prepared media is kept under the data dir before init announces its size to TikTok (see
publishing/workdirs.py), and its upload always sends the kept file: a re-run of an interrupted request
(a crash retry) resumes from the byte TikTok holds with the very bytes it was told about, and does
not transcode again what it already has (`plan_media`). Only when no file with those bytes is left
(another worker without a shared data dir) does `init_post` ask TikTok what it holds and decide:
no byte received and nobody left to send one → a fresh init; otherwise a final, named failure.

What only the orchestrator knows is passed in: the id of the current run (`flow_run_id`), whether the
run that initialized a post may still be uploading it (`still_running`), how to schedule a deferred
post (`schedule`), where upload progress goes (`progress`) and which logger to write to (`log`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from functools import partial
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from ledger import (
    BEFORE_INIT_STATES,
    ClaimLost,
    PostClaimedElsewhere,
    AccountNotFound,
    DailyCapReached,
    DatabaseUnavailable,
    IllegalTransition,
    Post,
    PostEvent,
    PostNotFound,
    PostState,
    PublishMode,
)
from publishing._keys import post_idempotency_key, request_json, stored_request, unfetched_idempotency_key
from publishing._models import CapPolicy, PublishRequest, PublishResult, StepTiming
from publishing._photo_models import PhotoPostRequest
from publishing.services import Services
from publishing.sources import FetchedSource, credentials_missing, has_aws_credentials, sha256_of
from publishing.workdirs import KeptMediaDamaged, KeptMediaMissing, KeptMediaUnwritable, keep_media, kept_media_path
from tiktok import (
    CreatorInfo,
    Endpoint,
    InitOutcomeUnknown,
    InitResult,
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
    publish_failed,
)
from tiktok_pipeline.errors import PipelineError
from tiktok_pipeline.settings import MIN_POLL_INTERVAL, Settings

#: A logger or a logger adapter (the Prefect run logger is one): where a step says what it did.
Log = logging.Logger | logging.LoggerAdapter

_LOG = logging.getLogger(__name__)

#: Times an init refused with 429 (nothing created) is tried again inside the step.
INIT_RATE_LIMIT_TRIES = 3
#: How often a second runner of a claimed post looks at it while it waits for the owner's outcome (s).
CLAIM_POLL_INTERVAL = 2.0
#: The states a post's owner leaves it in when it is done with it.
SETTLED_STATES = frozenset({PostState.published, PostState.sent_to_inbox, PostState.failed, PostState.unconfirmed,
                            PostState.discarded})
#: Inits without a usable answer (5xx, timeout, lost answer) tried before the post fails (a re-run goes on),
#: waiting INIT_LOST_BACKOFF s, doubled each time up to INIT_LOST_MAX_BACKOFF.
INIT_LOST_TRIES = 5
INIT_LOST_BACKOFF = 2.0
INIT_LOST_MAX_BACKOFF = 30.0


class InitAttemptsLost(PipelineError):
    """Every init attempt of a post went unanswered; none can publish (no upload URL), the request may run again."""

    retryable = False
#: TikTok's upload URLs live one hour: an upload older than that can no longer complete.
UPLOAD_URL_LIFETIME = timedelta(hours=1)
#: Kept media stays this long after its post's upload URL expired (clock skew, a last chunk in flight).
KEPT_MEDIA_MARGIN = timedelta(hours=1)


# --- what the steps hand each other ----------------------------------------------------------------


class CreatorCheck(BaseModel):
    """What creator_info allowed for one account, fetched fresh for this post."""

    account: str
    open_id: str
    nickname: str | None
    username: str | None
    max_duration_s: int | None
    post_info: dict[str, Any] | None  # the PostInfo that will be sent (direct posts)
    notes: list[str] = []
    #: creator_info as TikTok answered it (None for inbox-only apps): what a review form offers.
    creator: dict[str, Any] | None = None


class PreparedMedia(BaseModel):
    path: str
    size: int
    sha256: str
    duration: float
    path_taken: str  # remux / audio-only / transcode, or "kept" (an earlier run's, see `plan_media`)
    seconds: float


class MediaPlan(BaseModel):
    """Which accounts of a run need this run's transcode, and which resume with media an earlier run
    kept; the others (posted, failed after init, a hold draft) need none."""

    kept: dict[str, PreparedMedia] = {}
    needed: list[str] = []


class StepFailure(BaseModel):
    """Why a step stopped an account's post before TikTok was asked (recorded by `record_failures`)."""

    step: str  # preflight, ingest, check-creator, transcode
    code: str
    message: str
    kind: str = "final"
    #: False when the ledger itself is unreachable: recording would only wait for it again.
    recordable: bool = True

    @classmethod
    def of(cls, step: str, exc: BaseException) -> StepFailure:
        detail = getattr(exc, "detail", None)
        unreachable = isinstance(exc, DatabaseUnavailable) or (isinstance(detail, dict) and detail.get("ledger_unreachable"))
        return cls(step=step, code=str(getattr(exc, "code", None) or type(exc).__name__), message=str(exc),
                   kind=getattr(exc, "kind", "final"), recordable=not unreachable)


class PreflightFailed(PipelineError):
    """Something every post of the run needs is missing (named in the message); final."""


class InitRecord(BaseModel):
    """What the post's latest init announced to TikTok, as its ledger event recorded it."""

    at: datetime
    publish_id: str | None
    upload_url: str | None
    chunk_size: int
    size: int
    sha256: str
    duration: float = 0.0
    flow_run_id: str | None = None  # the run that initialized it (not recorded before kept media)

    def kept_file(self, settings: Settings) -> Path | None:
        """The kept file with the announced bytes (by name and size: `upload` checks the hash), if here."""
        path = kept_media_path(settings, self.sha256)
        return path if path.is_file() and path.stat().st_size == self.size else None

    def url_expired(self, now: datetime, margin: timedelta = timedelta(0)) -> bool:
        return now - self.at > UPLOAD_URL_LIFETIME + margin


@dataclass(frozen=True)
class ScheduledRun:
    """A run the orchestrator scheduled (a deferred post's)."""

    id: str
    name: str


class Progress(Protocol):
    """Where a long step reports how far it is (the Prefect shell: a progress artifact)."""

    def start(self, description: str) -> None: ...

    def update(self, percent: float, description: str | None = None) -> None: ...


class NoProgress:
    def start(self, description: str) -> None:
        pass

    def update(self, percent: float, description: str | None = None) -> None:
        pass


#: Whether the run that initialized a post may still be uploading it: a description of that run, or
#: None when nobody can send the post a byte any more.
StillRunning = Callable[[InitRecord], "str | None"]
#: Schedule a deferred post (ledger id, when); None when nothing could run it later.
Schedule = Callable[[int, datetime], "ScheduledRun | None"]


def megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def post_info_of(request: PublishRequest) -> PostInfo:
    """The PostInfo this request asks TikTok for (before creator_info's rules are applied)."""
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


# --- before any post: what the run needs -----------------------------------------------------------


def preflight(services: Services, request: PublishRequest | PhotoPostRequest, log: Log = _LOG, *,
              writes_to: str | None = None) -> dict[str, StepFailure]:
    """Check, before any work, what every post of this run needs: the ledger, the key encrypting
    the tokens and, for an s3:// source (or `writes_to`, where the media is staged), AWS credentials.
    A missing one raises PreflightFailed (final) with one line naming what to set; an unreachable
    ledger alone raises DatabaseUnavailable (retryable).

    Returns the accounts that are not connected (each with the command that connects it): the
    others carry on without them.
    """
    current = services.settings
    problems: list[str] = []
    s3_uris = [uri for uri in [*request.sources, writes_to] if uri and uri.startswith("s3://")]
    if s3_uris and not has_aws_credentials(current):
        problems.append(str(credentials_missing(s3_uris[0])))
    if services.encryption_key() is None:
        problems.append(str(services.encryption_key_missing()))
    unreachable: DatabaseUnavailable | None = None
    try:
        services.ledger.current_revision()
    except DatabaseUnavailable as exc:
        unreachable = exc
    except PipelineError as exc:  # e.g. a key that is not a Fernet key
        problems.append(str(exc))
    if problems:
        if unreachable:
            problems.append(str(unreachable))
        raise PreflightFailed("; ".join(problems), detail={"problems": problems, "ledger_unreachable": bool(unreachable)})
    if unreachable:
        raise unreachable
    unknown = {}
    for name in request.accounts:
        try:
            services.ledger.get_account(name)
        except AccountNotFound as exc:  # its message names the fix: `tiktok-pipeline accounts connect NAME`
            unknown[name] = StepFailure.of("preflight", exc)
    log.info("preflight: ledger reachable, encryption key present%s%s",
             ", AWS credentials found" if s3_uris else "",
             f"; not connected: {', '.join(unknown)}" if unknown else "")
    return unknown


def check_creator(services: Services, account_name: str, request: PublishRequest, log: Log = _LOG) -> CreatorCheck:
    """Fresh token + creator_info; raises (a TikTok or ledger error) if this creator cannot take this post."""
    account = services.ledger.get_account(account_name)
    if request.mode is PublishMode.inbox and "video.publish" not in account.scopes:
        # Inbox-only apps (video.upload) cannot read creator_info; the nickname comes from user info.
        user = services.with_client(account_name, lambda c: c.user_info())
        return CreatorCheck(account=account_name, open_id=account.open_id, nickname=user.display_name,
                            username=user.username, max_duration_s=None, post_info=None)
    creator: CreatorInfo = services.with_client(account_name, lambda c: c.creator_info())
    log.info("creator_info of %s: %s (@%s), privacy options %s, longest video %s s", account_name,
             creator.creator_nickname, creator.creator_username,
             ", ".join(creator.privacy_level_options) or "none", creator.max_video_post_duration_sec)
    checked = apply_creator_rules(post_info_of(request), creator) if request.privacy_level else None
    return CreatorCheck(
        account=account_name,
        open_id=account.open_id,
        nickname=creator.creator_nickname,
        username=creator.creator_username,
        max_duration_s=creator.max_video_post_duration_sec,
        post_info=checked.post_info.model_dump(mode="json") if checked else None,
        notes=checked.notes if checked else [],
        creator=creator.model_dump(mode="json"),
    )


def creator_markdown(check: CreatorCheck, request: PublishRequest) -> str:
    """What a creator is shown before posting as them (the creator artifact)."""
    lines = [f"# Posting as {check.nickname or check.account}", "",
             f"- account: `{check.account}` (@{check.username or '?'})"]
    if check.max_duration_s:
        lines.append(f"- longest video allowed: {check.max_duration_s} s")
    if check.post_info:
        lines.append(f"- privacy: {check.post_info['privacy_level']}")
    lines += [f"- {note}" for note in check.notes]
    lines.append("\nBy posting, you agree to TikTok's Music Usage Confirmation"
                 + (" and Branded Content Policy." if request.brand_content_toggle else "."))
    return "\n".join(lines)


def needs_media(post: Post) -> bool:
    """Whether `init_post` would prepare or announce media for this existing post (the same rules)."""
    if post.state is PostState.failed and post.publish_id is None:
        return True  # tried again from the start
    return post.state in BEFORE_INIT_STATES and post.mode is not PublishMode.hold


def plan_media(services: Services, request: PublishRequest, accounts: list[str], source: FetchedSource,
               post_keys: Mapping[str, str] | None = None, log: Log = _LOG) -> MediaPlan:
    """Before transcoding: which posts of this request an earlier run initialized, with media kept
    here (they resume with it: transcoding again would not give the same bytes), and which accounts
    need this run's transcode."""
    current = services.settings
    book = services.ledger
    plan = MediaPlan()
    for name in accounts:
        key = (post_keys or {}).get(name) or post_idempotency_key(request, name, source.sha256)
        try:
            post = book.get_post_by_idempotency_key(key)
        except PostNotFound:
            plan.needed.append(name)
            continue
        if post.state is not PostState.initialized:
            # A hold draft of a reviewed request waits for its review: the review shows, and then sends, this media.
            if needs_media(post) or (request.review and request.mode is not PublishMode.hold
                                     and post.mode is PublishMode.hold and post.state in BEFORE_INIT_STATES):
                plan.needed.append(name)
            continue
        record = init_record(services, post.id)
        kept = record.kept_file(current) if record else None
        if record is None or kept is None:
            where = kept_media_path(current, record.sha256) if record and record.sha256 else "the data dir"
            log.warning("%s: post %d (%s) was initialized by an earlier run, but the media it announced is not in %s "
                        "on this worker: transcoding, then asking TikTok what it holds", name, post.id, post.publish_id, where)
            plan.needed.append(name)
            continue
        plan.kept[name] = PreparedMedia(path=str(kept), size=record.size, sha256=record.sha256, duration=record.duration,
                                        path_taken="kept", seconds=0.0)
        log.info("%s: post %d (%s) was initialized by an earlier run; its upload resumes with the media kept at init, "
                 "%s (%s, sha256 %s…): not transcoded again", name, post.id, post.publish_id, kept, megabytes(record.size),
                 record.sha256[:12])
    if not plan.needed:
        log.info("every post of this request already has its media: nothing to transcode")
    return plan


# --- results from ledger rows ----------------------------------------------------------------------


def first_result(post: Post, nickname: str | None, *, reused: bool = False) -> PublishResult:
    """The first result of an account's chain, made from its ledger row."""
    return refresh_result(PublishResult(account=post.account_name, state=post.state, nickname=nickname, reused=reused), post)


def result_of(post: Post) -> PublishResult:
    """A post's PublishResult as the ledger has it (for posts settled outside a publish run)."""
    return refresh_result(PublishResult(account=post.account_name, state=post.state), post)


def refresh_result(result: PublishResult, post: Post, step: str | None = None, started: float | None = None) -> PublishResult:
    """`result` brought up to date with the ledger row, plus the timing of the step just done
    (`started` is a time.monotonic() reading)."""
    timings = list(result.timings)
    if step and started is not None:
        timings.append(StepTiming(step=step, seconds=round(time.monotonic() - started, 3)))
    return result.model_copy(update={
        "state": post.state,
        "mode": post.mode,
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


def unrecorded_failure(account: str, mode: PublishMode, exc: BaseException | StepFailure) -> PublishResult:
    """A failed result with no ledger row (the account is not connected, or the ledger refused the write)."""
    failure = exc if isinstance(exc, StepFailure) else StepFailure.of("publish", exc)
    return PublishResult(account=account, state=PostState.failed, mode=mode, error_code=failure.code,
                         error_message=failure.message)


def fail_post(services: Services, post: Post, exc: BaseException, *, state: PostState = PostState.failed) -> Post:
    """Record `exc` as the reason the post ended in `state` (failed, or unconfirmed)."""
    code = getattr(exc, "code", None) or type(exc).__name__
    return services.ledger.transition(post, state, message=str(exc), error_code=str(code), error_message=str(exc),
                                      data={"kind": getattr(exc, "kind", "final")})


# --- the ledger row of a post ----------------------------------------------------------------------


def open_post(services: Services, request: PublishRequest, account: str, source: FetchedSource, post_key: str | None,
              check: CreatorCheck | None = None) -> tuple[Post, bool]:
    """The ledger row for this account and request (claimed by its idempotency key): (post, created)."""
    key = post_key or post_idempotency_key(request, account, source.sha256)
    options = {
        "request": request_json(request),
        "post_info": check.post_info if check else None,
        "notes": check.notes if check else [],
        "source_etag": source.etag,
    }
    post, created = services.ledger.create_or_get_post(
        key, account_name=account, source_uri=source.uri, content_sha256=source.sha256,
        caption=request.caption, options=options, mode=request.mode,
    )
    if post_key is None:
        _supersede_unfetched(services, request, account, post)
    return post, created


def _supersede_unfetched(services: Services, request: PublishRequest, account: str, post: Post) -> None:
    """Close the record of an earlier run of this request that could not fetch the source: the
    source is fetched now, and `post` carries the request on (its audit trail says so)."""
    book = services.ledger
    try:
        earlier = book.get_post_by_idempotency_key(unfetched_idempotency_key(request, account))
    except PostNotFound:
        return
    if earlier.state is PostState.failed and earlier.publish_id is None:
        earlier = book.retry_before_init(earlier, f"the source was fetched on a later run: continued as post {post.id}")
        book.transition(earlier, PostState.discarded, message=f"superseded by post {post.id}",
                        data={"superseded_by": post.id})


def stored_request_of(services: Services, post: Post) -> dict[str, Any]:
    """The request (JSON, without accounts) of the post's latest attempt, as the ledger stored it."""
    return stored_request(post.options, services.ledger.post_events(post.id))


def try_again(services: Services, post: Post, request: PublishRequest | PhotoPostRequest) -> Post:
    """A post that failed before TikTok's init goes back to queued for this attempt; when this
    attempt's request differs from the stored one (a fix), the audit trail keeps the new one."""
    book = services.ledger
    post = book.retry_before_init(post, f"tried again after: {post.error_message}")
    wanted = request_json(request)
    if stored_request_of(services, post) != wanted:
        post = book.note(post, "request", "this attempt's request differs from the stored one", data={"request": wanted})
    return post


def _post_for_failure(services: Services, request: PublishRequest, account: str, source: FetchedSource | None,
                      post_key: str | None) -> tuple[Post, bool]:
    book = services.ledger
    if post_key:
        return book.get_post_by_idempotency_key(post_key), False
    if source is None:  # never fetched: no content hash, so the key is the request's own
        post, created = book.create_or_get_post(
            unfetched_idempotency_key(request, account), account_name=account, source_uri=request.source,
            content_sha256="", caption=request.caption, options={"request": request_json(request)}, mode=request.mode,
        )
        return post, created
    return open_post(services, request, account, source, None)


def record_failure(services: Services, request: PublishRequest, account: str, failure: StepFailure,
                   source: FetchedSource | None, post_key: str | None = None, nickname: str | None = None) -> PublishResult:
    """Record in the ledger that `failure` stopped this account's post before TikTok was asked.

    The same request run again finds the same row and tries again (a retry event, then the new
    outcome); a post that already went further (published by an earlier run, a hold draft) is
    returned as it is, as for any repeated request.
    """
    if failure.code == AccountNotFound.__name__:
        return unrecorded_failure(account, request.mode, failure)  # no account row to record it under
    post, created = _post_for_failure(services, request, account, source, post_key)
    return fail_before_init(services, request, post, created, failure, nickname, keep_draft=post_key is None)


def fail_before_init(services: Services, request: PublishRequest | PhotoPostRequest, post: Post, created: bool,
                     failure: StepFailure, nickname: str | None, *, keep_draft: bool = True) -> PublishResult:
    """`post` failed by `failure` before TikTok was asked; one that failed so before is tried again
    (a retry event, then the new outcome), one that went further (or a hold draft, when `keep_draft`)
    is reported as it is."""
    if not created:
        if post.state is PostState.failed and post.publish_id is None:
            post = try_again(services, post, request)
        elif post.state not in BEFORE_INIT_STATES or (post.mode is PublishMode.hold and keep_draft):
            return first_result(post, nickname, reused=True)
    post = services.ledger.transition(post, PostState.failed, message=f"{failure.step} failed: {failure.message}",
                                      error_code=failure.code, error_message=failure.message,
                                      data={"kind": failure.kind, "step": failure.step})
    return first_result(post, nickname)


def record_failures(services: Services, request: PublishRequest, failures: Mapping[str, StepFailure],
                    source: FetchedSource | None = None, post_keys: Mapping[str, str] | None = None,
                    nicknames: Mapping[str, str | None] | None = None, log: Log = _LOG) -> dict[str, PublishResult]:
    """Every account in `failures` gets a failed post in the ledger (and its result), so the
    history (`tiktok-pipeline posts list --status failed`) holds every post that was asked for.
    An unreachable ledger raises DatabaseUnavailable (posts recorded so far are found again by their keys)."""
    results: dict[str, PublishResult] = {}
    for account, failure in failures.items():
        try:
            result = record_failure(services, request, account, failure, source, (post_keys or {}).get(account),
                                    (nicknames or {}).get(account))
        except DatabaseUnavailable:
            raise
        except PipelineError as exc:  # e.g. the key belongs to another video: keep the reason, say why unrecorded
            log.warning("%s: the failure could not be recorded in the ledger: %s", account, exc)
            result = unrecorded_failure(account, request.mode, failure)
        if result.post_id is None:
            log.error("%s: %s failed: %s (not in the ledger)", account, failure.step, failure.message)
        else:
            log.error("%s: %s failed: %s (post %d)", account, failure.step, failure.message, result.post_id)
        results[account] = result
    return results


# --- what init announced -------------------------------------------------------------------------


def _init_event(services: Services, post_id: int) -> PostEvent | None:
    """The post's latest transition into `initialized` that says what init announced (notes and
    claim events on an initialized post stay in its state)."""
    for event in reversed(services.ledger.post_events(post_id)):
        if event.to_state is PostState.initialized and event.from_state is not PostState.initialized and event.data:
            return event
    return None


def init_record(services: Services, post_id: int) -> InitRecord | None:
    """The post's latest `initialized` event as an InitRecord; None when it has none (or a foreign one,
    or a PULL_FROM_URL init, which announced no upload)."""
    event = _init_event(services, post_id)
    if event is None:
        return None
    data = event.data
    if not data.get("media_sha256") or not data.get("chunk_size"):
        return None
    return InitRecord(at=event.at, publish_id=data.get("publish_id"), upload_url=services.ledger.upload_url(post_id),
                      chunk_size=int(data["chunk_size"]), size=int(data["media_size"]),
                      sha256=str(data["media_sha256"]), duration=float(data.get("media_duration") or 0.0),
                      flow_run_id=data.get("flow_run_id"))


def kept_media_in_use(services: Services) -> set[str]:
    """Content hashes of the kept media a post may still send bytes from: initialized posts whose
    upload URL has not long expired. Any other post (uploaded, published, in the inbox, failed,
    discarded...) needs its media no more."""
    book = services.ledger
    now = book.now()
    needed = set()
    for post in book.list_posts(states=[PostState.initialized]):
        record = init_record(services, post.id)
        if record is not None and not record.url_expired(now, KEPT_MEDIA_MARGIN):
            needed.add(record.sha256)
    return needed


def announced_file(settings: Settings, record: InitRecord, media: PreparedMedia | None) -> Path | None:
    """A file holding exactly the bytes this post's init announced: the kept one, or this run's media
    when it has the same hash (then kept for the next run too); None when neither is here."""
    if (kept := record.kept_file(settings)) is not None:
        kept.touch()  # in use: the sweep's grace counts from its last use
        return kept
    if media is not None and media.sha256 == record.sha256 and Path(media.path).is_file():
        return keep_media(settings, Path(media.path), media.sha256)
    return None


def _missing_media(settings: Settings, post: Post, record: InitRecord, held: int | None) -> KeptMediaMissing:
    where = kept_media_path(settings, record.sha256)
    holds = f"TikTok already holds {held} of its {record.size} bytes" if held else "TikTok's upload may hold some of its bytes"
    return KeptMediaMissing(
        f"post {post.id} ({post.publish_id}): the media its init announced to TikTok ({record.size} bytes, sha256 "
        f"{record.sha256[:12]}…) is not in {where} on this worker, and {holds}: only those very bytes may complete "
        "the upload, and no other publish_id may receive this post's bytes, so it cannot be finished here. The run "
        "that initialized it kept the file under its own data dir: share TIKTOK_PIPELINE_DATA_DIR between workers "
        "(one volume mounted by all), so any worker resumes it. To publish this video now, post it again with a new "
        "idempotency_key.",
        detail={"post_id": post.id, "publish_id": post.publish_id, "media_sha256": record.sha256,
                "media_size": record.size, "kept_media": str(where), "uploaded_bytes": held},
    )


def initializer_unknown(services: Services) -> StillRunning:
    """`still_running` without an orchestrator to ask: the initializer may be uploading until the URL expires."""

    def still_running(record: InitRecord) -> str | None:
        if record.url_expired(services.ledger.now()):
            return None
        return f"flow run {record.flow_run_id}" if record.flow_run_id else "the run that initialized it"

    return still_running


# --- init, upload, poll ----------------------------------------------------------------------------


def claim_lease(services: Services) -> timedelta:
    """A runner's lease on a post (ledger `claim_post`, setting claim_lease), renewed four times a lease
    while it uploads; once it lapses (its runner died) the next runner of the post takes it over."""
    return timedelta(seconds=services.settings.claim_lease)


def runner_id(flow_run_id: str | None = None) -> str:
    """Who works on a post: the flow run, else this process on this host (a caller without a flow run;
    one that runs several runners in a process passes each its own `owner`)."""
    return flow_run_id or f"process-{socket.gethostname()}-{os.getpid()}"


#: owner_has_ended(owner): True when the runner holding a lease is known to be over (its flow run ended).
OwnerHasEnded = Callable[[str], bool]


def claim_or_wait(services: Services, post: Post, owner: str, check: CreatorCheck, log: Log = _LOG, *,
                  sleep: Callable[[float], None] = time.sleep,
                  owner_has_ended: OwnerHasEnded | None = None) -> Post | PublishResult:
    """The post, claimed for `owner` before anything is asked of TikTok; or, when another runner holds
    its lease, that runner's outcome once the post settles (a lapsed lease is taken over).

    Two runs of one request (S3 events are at-least-once, Prefect retries runs) thus never both call
    init: the second waits and reports what the first achieved. A holder `owner_has_ended` says is over
    (its run failed or crashed) is taken over at once. It gives up waiting, saying the post is in
    progress elsewhere, after one status-poll timeout plus a lease.
    """
    book = services.ledger
    waiting_since = book.now()
    lease = claim_lease(services)
    deadline = time.monotonic() + services.settings.status_poll_timeout + lease.total_seconds()
    announced = False
    dead: str | None = None
    while True:
        try:
            claim = book.claim_post(post, owner, lease, take_over_from=dead)
        except PostClaimedElsewhere as exc:
            if owner_has_ended is not None and exc.owner != dead and owner_has_ended(exc.owner):
                dead = exc.owner
                continue
            current = book.get_post(post.id)
            # Only an outcome reached while we waited is the owner's (a failure from an earlier run is not).
            if current.state in SETTLED_STATES and current.updated_at >= waiting_since:
                log.info("post %d: %s settled it as %s", post.id, exc.owner, current.state)
                return first_result(current, check.nickname, reused=True)
            if time.monotonic() > deadline:
                message = (f"post {post.id} is being published by {exc.owner} (lease until "
                           f"{exc.lease_expires_at:%H:%M:%S} UTC), which has not finished; this run sent nothing")
                log.warning(message)
                return first_result(current, check.nickname).model_copy(
                    update={"error_code": "PostInProgressElsewhere", "error_message": message})
            if not announced:
                log.info("post %d is being published by %s: waiting for its outcome", post.id, exc.owner)
                announced = True
            sleep(CLAIM_POLL_INTERVAL)
            continue
        if claim.taken_over_from:
            log.warning("post %d: took over from %s, %s", post.id, claim.taken_over_from,
                        "whose run has ended" if claim.taken_over_from == dead else "whose lease lapsed")
        return book.get_post(post.id)


def release(services: Services, post: Post, owner: str | None) -> None:
    """Give up `owner`'s lease once it is done with the post (a waiting runner then sees the outcome)."""
    if owner is not None:
        services.ledger.release_claim(post, owner)


def resume_initialized(services: Services, post: Post, check: CreatorCheck, media: PreparedMedia | None,
                       still_running: StillRunning, log: Log = _LOG) -> PublishResult | None:
    """An earlier run initialized this post: its result when it resumes (or is settled here); None
    when its publish_id was given up and a fresh init must follow (see the module docstring)."""
    book = services.ledger
    record = init_record(services, post.id)
    if record is not None and (path := announced_file(services.settings, record, media)) is not None:
        log.info("post %d: %s was initialized by an earlier run; its upload resumes with the media announced at "
                 "init, %s", post.id, post.publish_id, path)
        return first_result(post, check.nickname)
    if record is None:  # no record of what init announced: nothing can be matched against it
        return first_result(fail_post(services, post, UploadError(
            f"post {post.id}: its init event does not say which media it announced; "
            "post it again with a new idempotency_key")), check.nickname)
    try:
        status = services.with_client(post.account_name, lambda c: c.fetch_status(post.publish_id))
    except PipelineError as exc:  # the post stays as it is: the next run asks again
        log.error("post %d: its media is not on this worker and TikTok's status of %s could not be read: %s",
                  post.id, post.publish_id, exc)
        return first_result(post, check.nickname).model_copy(update={"error_code": type(exc).__name__, "error_message": (
            f"the media announced for {post.publish_id} is not on this worker and TikTok's status could not be "
            f"read ({exc}); run the same request again")})
    held = status.uploaded_bytes
    log.warning("post %d: the media announced for %s is not on this worker; TikTok reports %s, %s of %d bytes "
                "received", post.id, post.publish_id, status.status, "?" if held is None else held, record.size)
    if status.status == "FAILED":
        return first_result(fail_post(services, post, publish_failed(status)), check.nickname)
    if status.status in ("PUBLISH_COMPLETE", "SEND_TO_USER_INBOX") or (held or 0) >= record.size:
        post = book.transition(post, PostState.uploaded, message=f"TikTok holds all {record.size} bytes of "
                               f"{post.publish_id}: nothing left to upload (its media is not on this worker)")
        return first_result(post, check.nickname)
    if (owner := still_running(record)) is not None:
        message = (f"post {post.id} ({post.publish_id}) was initialized by {owner}, which may still be uploading it, "
                   "and its media is not on this worker: this run leaves the upload to it")
        log.warning(message)
        return first_result(post, check.nickname).model_copy(update={"error_code": "UploadInProgressElsewhere",
                                                                     "error_message": message})
    if held == 0 and media is not None:
        # Nobody can send this publish_id a byte any more and it holds none: giving it up keeps
        # "exactly one publish_id per post ever receives bytes" (TikTok expires it unpublished).
        book.abandon_publish_id(post, post.publish_id, (
            f"the media announced for {post.publish_id} is not on this worker and TikTok holds no byte of it: "
            "initialized again with this run's media"), data={"uploaded_bytes": 0, "media_sha256": record.sha256})
        log.warning("post %d: gave up publish_id %s (it received no byte, its media is gone); initializing anew",
                    post.id, post.publish_id)
        return None
    return first_result(fail_post(services, post, _missing_media(services.settings, post, record, held)), check.nickname)


def defer(services: Services, request: PublishRequest, post: Post, check: CreatorCheck, exc: DailyCapReached,
          schedule: Schedule | None, log: Log = _LOG) -> PublishResult | None:
    """Schedule this account's post for the creator's next free slot; None when that is impossible
    (the request does not defer, the cap names no next slot, or nothing can schedule it)."""
    if request.cap_policy is not CapPolicy.defer or exc.next_slot_at is None or schedule is None:
        return None
    run = schedule(post.id, exc.next_slot_at)
    if run is None:
        return None
    # Promised to this post: the account's next deferred post is told the slot after this one.
    post = services.ledger.defer_post(post, exc.next_slot_at,
                                      f"daily cap reached; deferred to {exc.next_slot_at:%Y-%m-%d %H:%M} UTC",
                                      data={"flow_run_id": run.id, "scheduled_for": exc.next_slot_at.isoformat(),
                                            "request": request_json(request)})
    log.info("post %d deferred to %s UTC as flow run %s (%s)", post.id, f"{exc.next_slot_at:%Y-%m-%d %H:%M}",
             run.name, run.id)
    return first_result(post, check.nickname).model_copy(update={"scheduled_for": exc.next_slot_at, "flow_run_id": run.id,
                                                                 "error_message": str(exc), "error_code": "DailyCapReached"})


@contextlib.contextmanager
def lease_kept(services: Services, post: Post, owner: str | None, log: Log = _LOG) -> Iterator[None]:
    """Renew `owner`'s lease every quarter lease while a blocking call runs (an init TikTok is slow to
    answer): a lapsed lease must mean a dead owner, or another runner takes over and calls init too."""
    if owner is None:
        yield
        return
    lease = claim_lease(services)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(lease.total_seconds() / 4):
            try:
                services.ledger.renew_claim(post, owner, lease)
            except ClaimLost:
                return  # taken over anyway: the answer, when it comes, is recorded as late
            except PipelineError as exc:  # the ledger unreachable for a moment: the next renewal may succeed
                log.warning("post %d: could not renew the lease during init (%s)", post.id, exc)

    renewer = threading.Thread(target=renew, name=f"lease-post-{post.id}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()


@dataclass(frozen=True)
class InitCall:
    """One init to send for a post, whatever its media: what `send_init` needs besides the post.

    `pull_url` is set when TikTok fetches the media itself (PULL_FROM_URL videos, photo posts): an
    attempt whose outcome is unknown may already be a post, so it is never asked again. `data` is
    recorded with the publish_id (what the init announced).
    """

    endpoint: Endpoint
    kind: str  # for the log: "direct post (SELF_ONLY)", "inbox upload", "photo post (3 photos, ...)"
    media: str  # for the log: "11.5 MB in 3 chunk(s)", "11.5 MB for TikTok to pull from URL"
    send: Callable[[TikTokClient], InitResult]
    data: dict[str, Any]
    privacy_level: str | None = None
    pull_url: str | None = None
    pulling: str = ""  # the processing event's message once TikTok has the init (pull_url set)


def call_init(services: Services, request: PublishRequest, post: Post, check: CreatorCheck, media: PreparedMedia,
              flow_run_id: str | None = None, log: Log = _LOG, *, sleep: Callable[[float], None] = time.sleep,
              owner: str | None = None, pull_url: str | None = None) -> Post:
    """Ask TikTok for a video's publish_id (`send_init`), the media kept first for a FILE_UPLOAD.

    An attempt whose outcome is unknown (5xx, a timeout, an answer lost) is tried again: for
    FILE_UPLOAD, direct and inbox alike, TikTok publishes nothing until the upload_url it answered with
    receives bytes, and an answer we never read gave us no upload_url, so that attempt can never
    publish. It may have used a slot of TikTok's daily cap; the ledger keeps it as a lost attempt.

    With `pull_url` (the media staged under a verified prefix) TikTok fetches the video itself
    (PULL_FROM_URL): an attempt whose outcome is unknown may already be a post, so it is never asked
    again; the post becomes unconfirmed, for its webhook, the cleanup flow or a person
    (`tiktok-pipeline posts resolve`) to settle.
    """
    chunk_size = services.settings.chunk_size
    plan = plan_chunks(media.size, chunk_size)
    source_info = SourceInfo.pull_from_url(pull_url) if pull_url else SourceInfo.file_upload(plan)
    post_info = PostInfo.model_validate(check.post_info) if check.post_info else None
    kept: Path | None = None
    if pull_url is None:
        try:  # before TikTok hears of these bytes: the upload, and any resume of it, sends this file
            kept = keep_media(services.settings, Path(media.path), media.sha256)
        except KeptMediaUnwritable as exc:
            return fail_post(services, post, exc)

    def init(client: TikTokClient) -> InitResult:
        if request.mode is PublishMode.inbox:
            return client.init_inbox_video(source_info)
        return client.init_video(post_info, source_info)

    inbox = request.mode is PublishMode.inbox
    call = InitCall(
        endpoint=Endpoint.INBOX_VIDEO_INIT if inbox else Endpoint.VIDEO_INIT,
        kind="inbox upload" if inbox else f"direct post ({post_info.privacy_level})",
        media=(f"{megabytes(media.size)} for TikTok to pull from {pull_url}" if pull_url
               else f"{megabytes(media.size)} in {plan.total_chunk_count} chunk(s)"),
        send=init,
        privacy_level=post_info.privacy_level.value if post_info else None,
        pull_url=pull_url,
        pulling=f"TikTok pulls the video from {pull_url}",
        data={"media_sha256": media.sha256, "media_size": media.size, "media_duration": media.duration,
              "flow_run_id": flow_run_id, **({"pull_url": pull_url} if pull_url else {
                  "chunk_size": chunk_size, "chunks": plan.total_chunk_count, "kept_media": str(kept)})},
    )
    return send_init(services, post, check, call, log, sleep=sleep, owner=owner)


def send_init(services: Services, post: Post, check: CreatorCheck, call: InitCall, log: Log = _LOG, *,
              sleep: Callable[[float], None] = time.sleep, owner: str | None = None) -> Post:
    """Ask TikTok for a publish_id, each attempt recorded before it is sent and the publish_id as soon
    as it arrives; the post comes back initialized (processing when TikTok pulls the media), failed,
    or unconfirmed (a pulled init whose answer was lost). See `call_init` for when a lost answer is
    asked again."""
    book = services.ledger
    refused = lost = 0
    while True:
        # TikTok's per-minute limit is waited for before the attempt goes on record, and the lease is
        # renewed after the wait: a long wait must not leave a recorded attempt under a lapsed lease
        # that another runner takes over (both would then call init).
        services.rate_limit(check.open_id, call.endpoint)
        try:  # write-ahead: on record (and committed) before TikTok hears of it; only the lease holder may
            if owner is not None:
                book.renew_claim(post, owner, claim_lease(services))
            attempt = book.record_init_attempt(post, owner=owner)
        except ClaimLost:
            log.warning("post %d: another runner took over its lease; this run sends no init", post.id)
            raise
        except PipelineError as exc:  # e.g. the daily cap left no slot for one more attempt
            return fail_post(services, post, exc)
        log.info("post %d: init attempt %d, %s, %s", post.id, attempt.number, call.kind, call.media)
        try:
            with lease_kept(services, post, owner, log):  # however long TikTok takes to answer
                answer = services.with_client(check.account, call.send, prepaid=call.endpoint)
            break
        except RateLimitExceeded as exc:  # refused before anything was created: safe to ask again
            book.mark_attempt_failed(attempt, error_code=exc.code or "rate_limit_exceeded", error_message=str(exc))
            refused += 1
            if refused == INIT_RATE_LIMIT_TRIES:
                return fail_post(services, post, exc)
            log.warning("post %d: init refused (rate limit), %d of %d; waiting %.0f s", post.id, refused,
                        INIT_RATE_LIMIT_TRIES, exc.retry_after or 10.0)
            sleep(exc.retry_after or 10.0)
        except (InitOutcomeUnknown, ServerError, TransportError) as exc:
            if call.pull_url:
                # TikTok may be fetching the media already: a second init could post it twice.
                book.mark_attempt_lost(attempt, f"no answer ({exc}); TikTok may be pulling {call.pull_url} already")
                log.error("post %d: the PULL_FROM_URL init got no usable answer (%s); it may be a post already, so "
                          "it is not asked again: unconfirmed until TikTok's webhook, cleanup or `tiktok-pipeline "
                          "posts resolve %d` settles it", post.id, exc, post.id)
                return book.transition(post, PostState.unconfirmed, error_code=InitOutcomeUnknown.__name__,
                                       error_message=(
                    f"{PULL_INIT_LOST} ({exc}); the post may exist: check the "
                    f"creator's profile, then `tiktok-pipeline posts resolve {post.id} --published|--not-posted`"),
                                       message="unconfirmed: the PULL_FROM_URL init's answer was lost")
            # No upload_url reached us, so nothing can ever be uploaded to what this attempt may have
            # created (see call_init): a new init is safe. A re-run of the request goes on after the last one.
            book.mark_attempt_lost(attempt, f"no answer ({exc}); it can publish nothing (no upload URL was received)")
            lost += 1
            if lost == INIT_LOST_TRIES:
                return fail_post(services, post, InitAttemptsLost(
                    f"TikTok's init gave no usable answer {lost} times (last: {exc}); nothing was posted, "
                    "since no upload URL was received: run the request again",
                    detail={"attempts": attempt.number, "last_error": type(exc).__name__},
                ))
            pause = min(INIT_LOST_MAX_BACKOFF, INIT_LOST_BACKOFF * 2 ** (lost - 1))
            log.warning("post %d: init attempt %d got no usable answer (%s); a new init is safe, trying again in "
                        "%.0f s (%d of %d)", post.id, attempt.number, exc, pause, lost, INIT_LOST_TRIES)
            sleep(pause)
        except PipelineError as exc:
            book.mark_attempt_failed(attempt, error_code=getattr(exc, "code", None) or type(exc).__name__,
                                     error_message=str(exc))
            return fail_post(services, post, exc)
    try:  # the publish_id in its own commit, the moment it arrives
        post = book.record_publish_id(
            attempt, answer.publish_id,
            privacy_level=call.privacy_level,
            message=f"initialized as {answer.publish_id}",
            upload_url=answer.upload_url,  # a credential: the ledger keeps it encrypted, until the upload is over
            data=call.data,
        )
    except IllegalTransition as exc:
        current = book.get_post(post.id)
        if current.publish_id is None or current.publish_id == answer.publish_id:
            raise
        # Our answer came after another runner (which took the lapsed lease over) stored its own: the
        # ledger keeps ours on the attempt, and nothing is ever uploaded to it. The post is the other's.
        log.warning("post %d: init answer %s arrived after another runner initialized the post as %s; %s receives "
                    "nothing (it counts against the daily cap); waiting for the other runner's outcome",
                    post.id, answer.publish_id, current.publish_id, answer.publish_id)
        raise ClaimLost(post.id, owner or "", current.lease_owner) from exc
    except PipelineError:
        # TikTok holds a post the ledger does not know: the run log is the record until someone reconciles it.
        log.error("post %d: TikTok answered publish_id %s but the ledger could not record it; do not post this "
                  "request again before `tiktok-pipeline posts show %d` is checked", post.id, answer.publish_id, post.id)
        raise
    log.info("post %d: publish_id %s recorded", post.id, answer.publish_id)
    if call.pull_url:  # nothing to upload: TikTok fetches it
        post = pulling(services, post, call.pulling)
    return post


#: How the error of a post whose PULL_FROM_URL init went unanswered begins (TikTok's webhook may name it later).
PULL_INIT_LOST = "TikTok's answer to the PULL_FROM_URL init was lost"


def pulling(services: Services, post: Post, message: str) -> Post:
    """An initialized post whose media TikTok fetches itself: processing, with nothing to upload."""
    return services.ledger.transition(post, PostState.processing, message=message)


def pull_url_of(services: Services, post: Post) -> str | None:
    """The URL an initialized post's init told TikTok to pull its video from (None: FILE_UPLOAD)."""
    event = _init_event(services, post.id)
    return event.data.get("pull_url") if event is not None else None


def init_post(services: Services, request: PublishRequest, check: CreatorCheck, source: FetchedSource,
              media: PreparedMedia | None, post_key: str | None = None, *, flow_run_id: str | None = None,
              still_running: StillRunning | None = None, schedule: Schedule | None = None,
              log: Log = _LOG, sleep: Callable[[float], None] = time.sleep, owner: str | None = None,
              owner_has_ended: OwnerHasEnded | None = None, pull_url: str | None = None) -> PublishResult:
    """Claim the post, reserve a daily slot, keep the media, call init and persist the publish_id
    before any byte is uploaded.

    An init without a usable answer is asked again (`call_init`): it gave no upload URL, so it can
    publish nothing. A post that exists but never reached TikTok (deferred,
    released from hold, interrupted before init) carries on; one an earlier run initialized resumes
    with the media kept at its init (`media` is None for posts that need none: posted, failed after
    init, hold drafts). A used-up daily cap defers the post through `schedule` when the request says so.
    """
    started = time.monotonic()
    owner = owner or runner_id(flow_run_id)
    post, created = open_post(services, request, check.account, source, post_key, check)

    def init_claimed(post: Post, created: bool) -> PublishResult:
        return _init_claimed(services, request, check, post, created, media, flow_run_id=flow_run_id,
                             still_running=still_running, schedule=schedule, log=log, sleep=sleep,
                             started=started, owner=owner, pull_url=pull_url)

    return while_claimed(services, post, created, check, owner, init_claimed, log, sleep=sleep,
                         owner_has_ended=owner_has_ended)


def while_claimed(services: Services, post: Post, created: bool, check: CreatorCheck, owner: str,
                  init_claimed: Callable[[Post, bool], PublishResult], log: Log = _LOG, *,
                  sleep: Callable[[float], None] = time.sleep,
                  owner_has_ended: OwnerHasEnded | None = None) -> PublishResult:
    """`init_claimed(post, created)` under the post's lease when the post may still need an init
    (else at once: it reports the post as it is), or the outcome of the runner holding the lease.

    The lease is released afterwards unless the post is left initialized: its upload follows, by the
    same owner."""
    while True:
        retried = post.state is PostState.failed and post.publish_id is None
        if post.mode is not PublishMode.hold and (post.state in BEFORE_INIT_STATES
                                                  or post.state is PostState.initialized or retried):
            claimed = claim_or_wait(services, post, owner, check, log, sleep=sleep, owner_has_ended=owner_has_ended)
            if isinstance(claimed, PublishResult):
                return claimed
            post = claimed
            # While this run waited for the lease, the runner holding it may have taken the post further,
            # even one this run created: from here on it is an existing post like any other.
            created = created and post.state in BEFORE_INIT_STATES
        try:
            result = init_claimed(post, created)
        except ClaimLost:
            # Another runner took the lease over (ours lapsed): it is that runner's post now. Wait for
            # its outcome, or take over again if it dies too, as any second runner of the request does.
            log.warning("post %d: another runner took over its lease; waiting for that runner's outcome", post.id)
            post, created = services.ledger.get_post(post.id), False
            continue
        break
    if result.post_id is not None and result.state is not PostState.initialized:
        release(services, services.ledger.get_post(result.post_id), owner)
    return result


def _init_claimed(services: Services, request: PublishRequest, check: CreatorCheck, post: Post, created: bool,
                  media: PreparedMedia | None, *, flow_run_id: str | None, still_running: StillRunning | None,
                  schedule: Schedule | None, log: Log, sleep: Callable[[float], None], started: float,
                  owner: str, pull_url: str | None = None) -> PublishResult:
    book = services.ledger
    retried = post.state is PostState.failed and post.publish_id is None
    if not created and retried:
        post = try_again(services, post, request)
    if not created and post.state is PostState.initialized and (pulled := pull_url_of(services, post)):
        # Its runner stopped between the publish_id and the next step: TikTok is pulling it, nothing to upload.
        post = pulling(services, post, f"TikTok pulls the video from {pulled}")
        return refresh_result(first_result(post, check.nickname), post, "init", started)
    if not created and post.state is PostState.initialized:
        # We hold the lease: whoever initialized it is done with it or dead (a live owner renews its lease).
        running = still_running or initializer_unknown(services)
        if (resumed := resume_initialized(services, post, check, media, running, log)) is not None:
            return resumed
        post = book.get_post(post.id)  # its publish_id was given up: initialized anew below
    elif not created and (post.state not in BEFORE_INIT_STATES or post.mode is PublishMode.hold):
        log.info("idempotency key %s already used by post %d (%s): nothing sent", post.idempotency_key, post.id, post.state)
        return first_result(post, check.nickname, reused=True)
    if media is None:  # plan_media gave this account no media, yet its post needs some: say so, send nothing
        return first_result(post, check.nickname).model_copy(update={"error_code": "MediaMissing", "error_message": (
            f"post {post.id} ({post.state}) needs prepared media and this run has none for it; run the request again")})
    try:
        if post.state is PostState.queued:
            post = book.transition(post, PostState.media_ready, message=f"media ready ({media.path_taken})",
                                   data={"media_sha256": media.sha256, "media_size": media.size, "duration": media.duration})
        if request.mode is PublishMode.hold:
            log.info("held as draft post %d: nothing sent to TikTok", post.id)
            return first_result(post, check.nickname)
        post = book.reserve_slot(post)
    except DailyCapReached as exc:
        return (defer(services, request, post, check, exc, schedule, log)
                or first_result(fail_post(services, post, exc), check.nickname))
    except PipelineError as exc:  # e.g. the account needs reconnecting: the post fails before TikTok
        return first_result(fail_post(services, post, exc), check.nickname)
    post = call_init(services, request, post, check, media, flow_run_id, log, sleep=sleep, owner=owner,
                     pull_url=pull_url)
    return refresh_result(first_result(post, check.nickname), post, "init", started)


def upload(services: Services, result: PublishResult, media: PreparedMedia | None, *,
           progress: Progress | None = None, log: Log = _LOG, owner: str | None = None) -> PublishResult:
    """Send the media init announced (the kept file) in chunks; a retry, or a re-run of the request,
    resumes where TikTok's upload host says it is, with the very same bytes. A retryable interruption
    raises (the caller tries again); any other failure is recorded."""
    progress = progress or NoProgress()
    started = time.monotonic()
    book = services.ledger
    if result.post_id is None:
        return result
    post = book.get_post(result.post_id)
    if post.state is not PostState.initialized:
        return result
    record = init_record(services, post.id)
    if record is None or record.upload_url is None:
        return refresh_result(result, fail_post(services, post, UploadError(
            f"post {post.id}: its init event does not say which media and upload URL it announced; "
            "post it again with a new idempotency_key")))
    path = announced_file(services.settings, record, media)
    if path is None:  # init_post left the post as it is (another run may upload it): so does the upload
        return result if result.error_message else result.model_copy(update={
            "error_code": KeptMediaMissing.__name__, "error_message": (
                f"post {post.id} ({post.publish_id}): the media its init announced is no longer in "
                f"{kept_media_path(services.settings, record.sha256)}; nothing was sent. Run the same request again: "
                "it asks TikTok what it holds and resumes, re-initializes or fails the post for good")})
    if (actual := sha256_of(path)) != record.sha256:
        return refresh_result(result, fail_post(services, post, KeptMediaDamaged(
            f"post {post.id}: {path} no longer holds the bytes init announced (sha256 {actual[:12]}…, announced "
            f"{record.sha256[:12]}…); nothing more was sent. Post it again with a new idempotency_key",
            detail={"path": str(path), "sha256": actual, "announced_sha256": record.sha256})), "upload", started)
    plan = plan_chunks(record.size, record.chunk_size)
    who = result.nickname or result.account
    what = f"{megabytes(record.size)} to {who} in {plan.total_chunk_count} chunk(s)"
    progress.start(f"Uploading {what}")
    confirmed = [0]

    renewed = [time.monotonic()]

    def on_progress(sent: int, total: int) -> None:
        confirmed[0] += 1
        if owner is not None and time.monotonic() - renewed[0] > lease.total_seconds() / 4:
            book.renew_claim(post, owner, lease)  # ClaimLost: another runner took over; stop sending
            renewed[0] = time.monotonic()
        log.info("post %d: chunk %d of %d confirmed, %d of %d bytes", post.id, min(confirmed[0], plan.total_chunk_count),
                 plan.total_chunk_count, sent, total)
        if sent < total:  # the last chunk's is the final update below, with the publish_id
            progress.update(round(100.0 * sent / total, 1), f"Uploading {what}: {megabytes(sent)} sent")

    lease = claim_lease(services)
    if owner is not None:
        book.renew_claim(post, owner, lease)  # before the first byte: ClaimLost if another runner took over
    try:
        sent = services.with_client(
            post.account_name,
            lambda c: c.upload_video(path, record.upload_url, plan, on_progress=on_progress),
        )
    except ClaimLost:
        log.warning("post %d: another runner took over its lease; this run stops uploading", post.id)
        raise
    except PipelineError as exc:
        if exc.retryable:
            log.warning("post %d: upload interrupted (%s); Prefect retries it and it resumes from TikTok's offset", post.id, exc)
            raise  # the caller retries; the next try resumes from the server's Content-Range
        failed = fail_post(services, post, exc)
        release(services, failed, owner)
        return refresh_result(result, failed, "upload", started)
    chunks = plan.total_chunk_count
    post = book.transition(post, PostState.uploaded, message=f"uploaded {sent.total_bytes} bytes in {chunks} chunks",
                           data={"chunk_puts": sent.chunks_sent, "retries": sent.retries, "resyncs": sent.resyncs})
    progress.update(100.0, f"Uploaded {megabytes(sent.total_bytes)} to {who} in {chunks} chunk(s) ({post.publish_id})")
    log.info("post %d: uploaded %d bytes in %d chunk(s) for %s (this try: %d chunk PUTs accepted, %d sent again, "
             "%d resyncs)", post.id, sent.total_bytes, chunks, post.publish_id, sent.chunks_sent, sent.retries, sent.resyncs)
    return refresh_result(result, post, "upload", started)


def share_url(username: str | None, status: PublishStatus) -> str | None:
    if not username or not status.publicaly_available_post_id:
        return None
    return f"https://www.tiktok.com/@{username}/video/{status.publicaly_available_post_id[0]}"


def poll_status(services: Services, result: PublishResult, username: str | None = None, log: Log = _LOG,
                owner: str | None = None) -> PublishResult:
    """Poll status/fetch until TikTok answers PUBLISH_COMPLETE, SEND_TO_USER_INBOX or FAILED, and record it."""
    started = time.monotonic()
    book = services.ledger
    post = book.get_post(result.post_id)

    def settled_meanwhile(post: Post, polls: int) -> PublishResult:
        log.info("post %d (%s): %s, told by TikTok's webhook, after %d status poll(s)", post.id, post.publish_id,
                 post.state, polls)
        release(services, post, owner)
        return refresh_result(result, post, "poll", started)

    if post.state in SETTLED_STATES and result.state in (PostState.uploaded, PostState.processing):
        # TikTok's webhook (or another runner) settled the post between the upload and this first read:
        # TikTok may settle a small upload within a second, before this task starts.
        return settled_meanwhile(post, 0)
    if post.state not in (PostState.uploaded, PostState.processing):
        return result  # nothing uploaded to poll for (held, deferred, failed): the result stands as it is
    if post.state is PostState.uploaded:
        post = _unless_settled_meanwhile(
            services, post, lambda: book.transition(post, PostState.processing, message="TikTok is processing the upload"))
        if post.state is not PostState.processing:  # another runner polled it to its end meanwhile
            return refresh_result(result, post, "poll", started)
    polls = [0]
    lease = claim_lease(services)
    renewed = [time.monotonic()]

    def keep_claim() -> None:
        if owner is not None and time.monotonic() - renewed[0] > lease.total_seconds() / 4:
            # A live owner keeps its lease while it waits on TikTok, so a lapsed lease means a dead one.
            try:
                book.renew_claim(post, owner, lease)
            except ClaimLost:  # another runner took the post over: both only read its status now
                pass
            renewed[0] = time.monotonic()

    def on_status(status: PublishStatus) -> None:
        polls[0] += 1
        keep_claim()
        log.info("post %d: status poll %d of %s: %s (uploaded %s bytes%s)", post.id, polls[0], post.publish_id,
                 status.status, status.uploaded_bytes if status.uploaded_bytes is not None else "?",
                 f", fail_reason {status.fail_reason}" if status.fail_reason else "")

    current = services.settings
    poll = PollPolicy(initial_interval=current.status_poll_interval, timeout=current.status_poll_timeout)
    sleep = None
    if current.tiktok_webhooks:
        # TikTok's webhook settles the post (the receiver writes the ledger); polling is the safety net
        # for a webhook that never comes, at its own slow pace (at least twice within the poll's timeout).
        interval = max(MIN_POLL_INTERVAL, min(current.tiktok_webhooks_poll_interval, current.status_poll_timeout / 2))
        poll = PollPolicy(initial_interval=interval, max_interval=interval, timeout=current.status_poll_timeout)
        sleep = _watching_ledger(services, post.id, keep_claim)
    try:
        status = services.with_client(
            post.account_name, lambda c: c.wait_for_publish(post.publish_id, poll=poll, on_status=on_status, sleep=sleep))
    except _SettledMeanwhile as settled:
        return settled_meanwhile(settled.post, polls[0])
    except PublishFailed as exc:
        post = _unless_settled_meanwhile(services, post, partial(fail_post, services, post, exc))
    else:
        post = record_status(services, post, status, username)
    log.info("post %d (%s): %s after %d status poll(s)", post.id, post.publish_id, post.state, polls[0])
    release(services, post, owner)
    return refresh_result(result, post, "poll", started)


#: How often a poll waiting for TikTok's webhook reads the post's state in the ledger (a cheap query).
LEDGER_WATCH_INTERVAL = 1.0


class _SettledMeanwhile(Exception):
    """The post was settled in the ledger (by TikTok's webhook, or another runner) while the poll waited."""

    def __init__(self, post: Post) -> None:
        super().__init__(f"post {post.id} is {post.state}")
        self.post = post


def _watching_ledger(services: Services, post_id: int, keep_claim: Callable[[], None]) -> Callable[[float], None]:
    """A wait between status fetches that reads the ledger every LEDGER_WATCH_INTERVAL and ends with
    `_SettledMeanwhile` as soon as the post is settled there."""

    def sleep(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(LEDGER_WATCH_INTERVAL, left))
            keep_claim()
            current = services.ledger.get_post(post_id)
            if current.state in SETTLED_STATES:
                raise _SettledMeanwhile(current)

    return sleep


def _unless_settled_meanwhile(services: Services, post: Post, record: Callable[[], Post]) -> Post:
    """`record()` the outcome TikTok gave, or the post as it is when another runner polling the same
    post (a second run of the request finds it processing and polls too; so does `cleanup`) recorded
    one first: TikTok told both the same."""
    try:
        return record()
    except IllegalTransition:
        current = services.ledger.get_post(post.id)
        if current.state not in SETTLED_STATES:
            raise
        return current


def record_status(services: Services, post: Post, status: PublishStatus, username: str | None) -> Post:
    """Store a terminal (or still processing) status answer in the ledger (unless another runner
    polling the same post stored one first)."""
    book = services.ledger
    ids = [str(i) for i in status.publicaly_available_post_id]
    if status.status == "PUBLISH_COMPLETE":
        return _unless_settled_meanwhile(services, post, lambda: book.transition(
            post, PostState.published, post_ids=ids, share_url=share_url(username, status),
            message="published" + ("" if ids else " (public post id not assigned yet)")))
    if status.status == "SEND_TO_USER_INBOX":
        return _unless_settled_meanwhile(services, post, lambda: book.transition(
            post, PostState.sent_to_inbox, message="sent to the creator's TikTok inbox"))
    return post


def interrupted_result(services: Services, account: str, post_id: int, exc: BaseException,
                       nickname: str | None) -> PublishResult:
    """The result of a chain whose step gave up after `post_id` was recorded: the ledger says where it stopped."""
    post = services.ledger.get_post(post_id)
    message = post.error_message or str(exc)
    if post.state in (PostState.initialized, PostState.uploaded):
        # The publish_id is recorded and TikTok keeps the upload open for an hour: running the same
        # request again resumes it; after that the cleanup flow records it as failed.
        message = f"upload interrupted ({exc}); run the same request again within the hour to resume"
    # `processing`: polling gave up; the cleanup flow reconciles it later.
    return first_result(post, nickname).model_copy(update={"error_code": post.error_code or type(exc).__name__,
                                                           "error_message": message})
