"""Release a held draft: a `hold` post is sent as a direct post or an inbox draft when a human says so."""

from __future__ import annotations

from prefect import flow

from flows.models import PublishRequest, PublishResult
from flows.publish import publish_video
from ledger import BEFORE_INIT_STATES, PostMode
from tasks import _context
from tiktok import PrivacyLevel


@flow(name="release-held-post")
def release_held_post(post_id: int, mode: PostMode = PostMode.direct, privacy_level: PrivacyLevel | None = None) -> PublishResult:
    """Send held post `post_id` now, as `mode` (direct or inbox), with the request it was held with.

    The source is fetched and checked again (the working files of the hold run are gone), and the
    creator's current creator_info decides, as for any post.
    """
    book = _context.ledger()
    post = book.get_post(post_id)
    stored = dict(post.options.get("request") or {})
    stored.update(accounts=[post.account_name], mode=mode.value, schedule_at=None)
    if privacy_level is not None:
        stored["privacy_level"] = privacy_level.value
    request = PublishRequest.model_validate(stored)  # checks privacy is set for a direct post
    if post.mode is PostMode.hold or post.state not in BEFORE_INIT_STATES:
        book.release_hold(post, mode)  # IllegalTransition unless it is a draft not yet at TikTok
    # else: a release that stopped before TikTok (source unreachable, ...) is being run again.
    return publish_video(request, post_keys={post.account_name: post.idempotency_key})[0]
