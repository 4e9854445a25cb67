"""Photo posts, without Prefect: 1 to 35 images fetched, prepared, staged under the verified prefix
once, then one content/init per account (TikTok pulls the photos itself; nothing is uploaded to it).

    where = photo_preflight(services, request)                          # PullLocation, or PullPrefixMissing
    sources = fetch_photos(services.settings, request, work_dir)        # FetchedSource per image
    prepared = prepare_photos(sources, work_dir)                        # PreparedPhoto per image
    photo_set = stage_photos(services.settings, where, sources, prepared)   # PhotoSet: one URL per image
    check = check_photo_creator(services, "brand", request)             # fresh creator_info
    result = init_photo_post(services, request, check, photo_set)       # processing, or settled
    result = posting.poll_status(services, result, check.username)      # published / in the inbox

A photo post has no upload URL, so TikTok's init is where it may exist already: an init whose answer
was lost is never asked again (the post becomes unconfirmed, for TikTok's webhook, the cleanup flow
or `tiktok-pipeline posts resolve` to settle), exactly as for a PULL_FROM_URL video
(`posting.send_init`). Each post is claimed before TikTok is asked and each attempt recorded before
it is sent, the same as a video's.

A photo post is identified by its photos' content (the SHA-256 of the sources, in order) with the
account, title, description and mode: the same request again reports the first post.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel

from ledger import BEFORE_INIT_STATES, DailyCapReached, DatabaseUnavailable, Post, PostState, PublishMode, default_idempotency_key
from photos import PhotoError, PreparedPhoto, prepare_photo
from publishing._models import PublishResult
from publishing._photo_models import PhotoPostRequest
from publishing.posting import (
    CreatorCheck,
    InitCall,
    Log,
    OwnerHasEnded,
    StepFailure,
    fail_before_init,
    fail_post,
    first_result,
    megabytes,
    preflight,
    pulling,
    refresh_result,
    runner_id,
    send_init,
    try_again,
    unrecorded_failure,
    while_claimed,
)
from publishing.pull import PullLocation, require_pull_location, stage
from publishing.services import Services
from publishing.sources import FetchedSource, fetch_source
from tiktok import (
    CreatorInfo,
    Endpoint,
    PhotoPostInfo,
    PhotoSourceInfo,
    PostInfo,
    TikTokClient,
    apply_creator_rules,
)
from tiktok_pipeline.errors import PipelineError
from tiktok_pipeline.settings import Settings

_LOG = logging.getLogger(__name__)

#: The largest source image fetched (before it is prepared): a camera's full-size JPEG or PNG fits.
MAX_SOURCE_BYTES = 200_000_000


class PhotoSet(BaseModel):
    """A request's photos, prepared and staged under the verified prefix, in order."""

    sha256: str  # of the sources' SHA-256s in order: what the posts are made of
    sources: list[str]
    urls: list[str]
    sizes: list[int]
    staged_bytes: int  # written to S3 by this run (0 when every photo was there already)

    @property
    def size(self) -> int:
        return sum(self.sizes)


def photo_set_sha256(source_sha256s: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(source_sha256s).encode("ascii")).hexdigest()


def photo_preflight(services: Services, request: PhotoPostRequest, log: Log = _LOG
                    ) -> tuple[PullLocation, dict[str, StepFailure]]:
    """The verified prefix the photos go to (PullPrefixMissing, final, when none is configured: TikTok
    only pulls photos, from verified URLs) and `posting.preflight`'s checks, the staging location's
    AWS credentials included; returns it and the accounts that are not connected."""
    where = require_pull_location(services.settings, "a photo post")
    return where, preflight(services, request, log, writes_to=where.location.uri)


def _image_dir(work_dir: Path, index: int) -> Path:
    return work_dir / f"photo-{index + 1:02d}"  # one directory per image: two sources may share a name


def _named(index: int, count: int, uri: str, exc: PhotoError) -> PhotoError:
    """The same error, its message saying which of the request's images it is about."""
    return type(exc)(f"photo {index + 1} of {count} ({uri}): {exc}", path=exc.path, detail=exc.detail)


def fetch_photos(settings: Settings, request: PhotoPostRequest, work_dir: Path) -> list[FetchedSource]:
    """Every image of the request copied into `work_dir` (a SourceError names the one that failed)."""
    return [fetch_source(uri, _image_dir(work_dir, i), settings, max_bytes=MAX_SOURCE_BYTES)
            for i, uri in enumerate(request.images)]


def prepare_photos(sources: Sequence[FetchedSource], work_dir: Path) -> list[PreparedPhoto]:
    """Each image upright, at most 1080 px on its long side, JPEG or WebP under 20 MB (photos.prepare_photo);
    a PhotoError names the image it is about."""
    prepared = []
    for i, source in enumerate(sources):
        try:
            prepared.append(prepare_photo(source.path, _image_dir(work_dir, i) / "prepared"))
        except PhotoError as exc:
            raise _named(i, len(sources), source.uri, exc) from exc
    return prepared


def stage_photos(settings: Settings, where: PullLocation, sources: Sequence[FetchedSource],
                 prepared: Sequence[PreparedPhoto], *, client=None) -> PhotoSet:
    """Each prepared photo at its pull URL (named by its content: staged once, found the next time)."""
    staged = [stage(settings, where, photo.path, photo.sha256, client=client) for photo in prepared]
    return PhotoSet(sha256=photo_set_sha256([s.sha256 for s in sources]), sources=[s.uri for s in sources],
                    urls=[s.url for s in staged], sizes=[s.size for s in staged], staged_bytes=sum(s.sent for s in staged))


def photo_post_info(request: PhotoPostRequest, creator: CreatorInfo | None) -> tuple[PhotoPostInfo, list[str]]:
    """The `post_info` to send for this creator and the notes to show; PrivacyNotAllowed when the
    privacy chosen is not one of the creator's options. A comment switch the creator disabled stays off."""
    post_info = PhotoPostInfo(
        title=request.title, description=request.description, privacy_level=request.privacy_level,
        disable_comment=request.disable_comment, auto_add_music=request.auto_add_music,
        brand_content_toggle=request.brand_content_toggle, brand_organic_toggle=request.brand_organic_toggle,
    )
    if creator is None:
        return post_info, []
    if request.privacy_level is None:  # an inbox post: the creator chooses in TikTok
        if creator.comment_disabled and not request.disable_comment:
            return post_info.model_copy(update={"disable_comment": True}), [
                f"comment is disabled in {creator.creator_nickname or 'the creator'}'s settings and stays disabled"]
        return post_info, []
    # The video rules (privacy among the options, interactions the creator disabled) for the one
    # interaction a photo post has; duet and stitch do not apply to photos.
    checked = apply_creator_rules(PostInfo(privacy_level=request.privacy_level, disable_comment=request.disable_comment,
                                           disable_duet=True, disable_stitch=True), creator)
    return post_info.model_copy(update={"disable_comment": checked.post_info.disable_comment}), checked.notes


def check_photo_creator(services: Services, account_name: str, request: PhotoPostRequest, log: Log = _LOG) -> CreatorCheck:
    """Fresh token + creator_info; raises (a TikTok or ledger error) if this creator cannot take this post."""
    account = services.ledger.get_account(account_name)
    if request.mode is PublishMode.inbox and "video.publish" not in account.scopes:
        # Inbox-only apps (video.upload) cannot read creator_info; the nickname comes from user info.
        user = services.with_client(account_name, lambda c: c.user_info())
        post_info, notes = photo_post_info(request, None)
        return CreatorCheck(account=account_name, open_id=account.open_id, nickname=user.display_name,
                            username=user.username, max_duration_s=None, post_info=post_info.model_dump(mode="json"))
    creator: CreatorInfo = services.with_client(account_name, lambda c: c.creator_info())
    log.info("creator_info of %s: %s (@%s), privacy options %s", account_name, creator.creator_nickname,
             creator.creator_username, ", ".join(creator.privacy_level_options) or "none")
    post_info, notes = photo_post_info(request, creator)
    return CreatorCheck(account=account_name, open_id=account.open_id, nickname=creator.creator_nickname,
                        username=creator.creator_username, max_duration_s=None,
                        post_info=post_info.model_dump(mode="json"), notes=notes,
                        creator=creator.model_dump(mode="json"))


def photo_post_key(request: PhotoPostRequest, account: str, photo_set_sha256: str) -> str:
    """The key of this account's post: the caller's key (`KEY:account`) or photos + account + text + mode."""
    if request.idempotency_key:
        return f"{request.idempotency_key}:{account}"
    return default_idempotency_key(f"photos:{photo_set_sha256}", account, request.caption, request.mode)


def open_photo_post(services: Services, request: PhotoPostRequest, account: str, photo_set_sha256: str, *,
                    check: CreatorCheck | None = None, urls: Sequence[str] = ()) -> tuple[Post, bool]:
    """The ledger row for this account and request (claimed by its idempotency key): (post, created)."""
    first = request.images[0]
    return services.ledger.create_or_get_post(
        photo_post_key(request, account, photo_set_sha256), account_name=account,
        source_uri=first if len(request.images) == 1 else f"{first} (+{len(request.images) - 1} more)",
        content_sha256=photo_set_sha256, caption=request.caption, mode=request.mode,
        options={"request": request.model_dump(mode="json", exclude={"accounts"}), "media_type": "PHOTO",
                 "post_info": check.post_info if check else None, "notes": check.notes if check else [],
                 "photo_urls": list(urls)},
    )


def record_photo_failures(services: Services, request: PhotoPostRequest, failures: Mapping[str, StepFailure],
                          photo_set_sha256: str, nicknames: Mapping[str, str | None] | None = None,
                          log: Log = _LOG) -> dict[str, PublishResult]:
    """Every account in `failures` gets a failed post in the ledger (and its result), under the key its
    post has: the same request run again tries again. An unreachable ledger raises DatabaseUnavailable."""
    results: dict[str, PublishResult] = {}
    for account, failure in failures.items():
        nickname = (nicknames or {}).get(account)
        try:
            post, created = open_photo_post(services, request, account, photo_set_sha256)
            results[account] = fail_before_init(services, request, post, created, failure, nickname)
        except DatabaseUnavailable:
            raise
        except PipelineError as exc:  # e.g. the key belongs to another post: keep the reason, say why unrecorded
            log.warning("%s: the failure could not be recorded in the ledger: %s", account, exc)
            results[account] = unrecorded_failure(account, request.mode, failure)
            continue
        log.error("%s: %s failed: %s (post %d)", account, failure.step, failure.message, results[account].post_id)
    return results


def _pulling_message(photo_set: PhotoSet) -> str:
    return f"TikTok pulls the {len(photo_set.urls)} photo(s) from {photo_set.urls[0]}" + (
        f" and {len(photo_set.urls) - 1} more URL(s) under the same prefix" if len(photo_set.urls) > 1 else "")


def init_photo_post(services: Services, request: PhotoPostRequest, check: CreatorCheck, photo_set: PhotoSet, *,
                    flow_run_id: str | None = None, owner: str | None = None,
                    owner_has_ended: OwnerHasEnded | None = None, log: Log = _LOG,
                    sleep: Callable[[float], None] = time.sleep) -> PublishResult:
    """Claim the post, reserve a daily slot, record the attempt and call content/init; the publish_id is
    recorded as it arrives and the post is processing (TikTok pulls the photos).

    An existing post is reported as it is (published, failed after init, unconfirmed), one whose runner
    stopped right after its publish_id goes on to processing, and one that failed before TikTok was
    asked is tried again. A used-up daily cap fails the post, naming when the next slot frees."""
    started = time.monotonic()
    owner = owner or runner_id(flow_run_id)
    post, created = open_photo_post(services, request, check.account, photo_set.sha256, check=check,
                                    urls=photo_set.urls)

    def init_claimed(post: Post, created: bool) -> PublishResult:
        return _photo_init_claimed(services, request, check, photo_set, post, created, flow_run_id=flow_run_id,
                                   owner=owner, log=log, sleep=sleep, started=started)

    return while_claimed(services, post, created, check, owner, init_claimed, log, sleep=sleep,
                         owner_has_ended=owner_has_ended)


def _photo_init_claimed(services: Services, request: PhotoPostRequest, check: CreatorCheck, photo_set: PhotoSet,
                        post: Post, created: bool, *, flow_run_id: str | None, owner: str, log: Log,
                        sleep: Callable[[float], None], started: float) -> PublishResult:
    book = services.ledger
    if not created and post.state is PostState.failed and post.publish_id is None:
        post = try_again(services, post, request)
    if not created and post.state is PostState.initialized:
        # Its runner stopped between the publish_id and the next step: TikTok is pulling the photos.
        post = pulling(services, post, _pulling_message(photo_set))
        return refresh_result(first_result(post, check.nickname), post, "init", started)
    if not created and post.state not in BEFORE_INIT_STATES:
        log.info("idempotency key %s already used by post %d (%s): nothing sent", post.idempotency_key, post.id, post.state)
        return first_result(post, check.nickname, reused=True)
    try:
        if post.state is PostState.queued:
            post = book.transition(post, PostState.media_ready, message=f"{len(photo_set.urls)} photo(s) ready",
                                   data={"media_sha256": photo_set.sha256, "media_size": photo_set.size,
                                         "photo_urls": photo_set.urls})
        post = book.reserve_slot(post)
    except DailyCapReached as exc:  # photo posts are not deferred: the message names the next free slot
        return first_result(fail_post(services, post, exc), check.nickname)
    except PipelineError as exc:  # e.g. the account needs reconnecting: the post fails before TikTok
        return first_result(fail_post(services, post, exc), check.nickname)
    post_info = PhotoPostInfo.model_validate(check.post_info)
    source_info = PhotoSourceInfo(photo_images=photo_set.urls, photo_cover_index=request.photo_cover_index)

    def send(client: TikTokClient):
        return client.init_photo_post(request.post_mode, post_info, source_info)

    inbox = request.mode is PublishMode.inbox
    call = InitCall(
        endpoint=Endpoint.CONTENT_INIT,
        kind="photo inbox upload" if inbox else f"photo direct post ({post_info.privacy_level})",
        media=f"{len(photo_set.urls)} photo(s), {megabytes(photo_set.size)}, for TikTok to pull from {photo_set.urls[0]}"
              + (" and the others" if len(photo_set.urls) > 1 else ""),
        send=send,
        privacy_level=post_info.privacy_level.value if post_info.privacy_level else None,
        pull_url=photo_set.urls[0],
        pulling=_pulling_message(photo_set),
        data={"media_type": "PHOTO", "media_sha256": photo_set.sha256, "media_size": photo_set.size,
              "photo_urls": photo_set.urls, "pull_url": photo_set.urls[0],
              "photo_cover_index": request.photo_cover_index, "flow_run_id": flow_run_id},
    )
    post = send_init(services, post, check, call, log, sleep=sleep, owner=owner)
    return refresh_result(first_result(post, check.nickname), post, "init", started)


__all__ = [
    "MAX_SOURCE_BYTES",
    "PhotoSet",
    "check_photo_creator",
    "fetch_photos",
    "init_photo_post",
    "open_photo_post",
    "photo_post_info",
    "photo_post_key",
    "photo_preflight",
    "prepare_photos",
    "record_photo_failures",
    "stage_photos",
]
