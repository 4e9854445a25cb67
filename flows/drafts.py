"""Posts the ledger already holds, sent later: a held draft released by a human (release-held-post)
and a post a daily cap held back, sent in its next free slot (publish-deferred-post).

Both read the request stored with the post, run the same composition as publish-video
(`flows.publish.publish`, with the post's idempotency key so the same ledger row carries on) and end
Completed or Failed by the same rule, with the post's PublishResult as their result.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run as current_flow_run

from publishing import PublishRequest
from flows.publish import conclude, publish, remove_run_dir
from ledger import BEFORE_INIT_STATES, IllegalTransition, Post, PostState, PublishMode
from publishing import deferred_run_name, release_run_name
from tasks import runtime
from tasks.publishing import stored_request_of
from tiktok import PrivacyLevel


def request_for_post(post: Post, **changes: Any) -> PublishRequest:
    """The request stored with `post` for its account alone, sent now, with `changes` applied;
    validated as any request (a direct post without privacy is refused)."""
    stored = stored_request_of(post) | {"accounts": [post.account_name], "mode": post.mode.value, "schedule_at": None}
    return PublishRequest.model_validate(stored | changes)


def _send(post: Post, request: PublishRequest, title: str) -> State:
    results = publish(request, post_keys={post.account_name: post.idempotency_key}, title=title)
    return conclude(results, data=results[0])


def _released_before(post: Post) -> bool:
    """A release of this draft already ran and stopped before TikTok (source unreachable, creator refused, ...)."""
    if post.state not in BEFORE_INIT_STATES and not (post.state is PostState.failed and post.publish_id is None):
        return False
    return any(event.kind == "mode_changed" for event in runtime.ledger().post_events(post.id))


def _release_run_name() -> str:
    parameters = current_flow_run.parameters
    mode = parameters.get("mode") or PublishMode.direct
    return release_run_name(int(parameters.get("post_id", 0)), getattr(mode, "value", str(mode)))


@flow(name="release-held-post", flow_run_name=_release_run_name, persist_result=True,
      on_cancellation=[remove_run_dir], on_crashed=[remove_run_dir])
def release_held_post(post_id: int, mode: PublishMode = PublishMode.direct, privacy_level: PrivacyLevel | None = None) -> State:
    """Send held post `post_id` now, as `mode` (direct or inbox), with the request it was held with.

    The source is fetched and checked again (the working files of the hold run are gone), and the
    creator's current creator_info decides, as for any post. Ends Failed, with the post's result,
    when it was not posted.
    """
    book = runtime.ledger()
    post = book.get_post(post_id)
    changes: dict[str, Any] = {"mode": mode.value}
    if privacy_level is not None:
        changes["privacy_level"] = privacy_level.value
    request = request_for_post(post, **changes)  # checks privacy is set for a direct post
    if post.mode is PublishMode.hold:
        post = book.release_hold(post, mode)  # IllegalTransition unless it is a draft not yet at TikTok
    elif not _released_before(post):
        raise IllegalTransition(
            f"post {post_id} is a {post.mode} post in state {post.state}, not a hold draft",
            detail={"post_id": post_id, "mode": str(post.mode), "state": str(post.state)},
        )
    elif post.mode is not mode:
        raise IllegalTransition(
            f"post {post_id} was released as {post.mode}; release it again as {post.mode} (its mode is fixed now)",
            detail={"post_id": post_id, "mode": str(post.mode)},
        )
    # else: a release that stopped before TikTok is being run again.
    return _send(post, request, release_run_name(post_id, mode.value))


def _deferred_run_name() -> str:
    return deferred_run_name(int(current_flow_run.parameters.get("post_id", 0)))


@flow(name="publish-deferred-post", flow_run_name=_deferred_run_name, persist_result=True,
      on_cancellation=[remove_run_dir], on_crashed=[remove_run_dir])
def publish_deferred_post(post_id: int) -> State:
    """Send ledger post `post_id`, which a used-up daily cap deferred, with the request it was deferred with.

    Scheduled by publish-video for the creator's next free slot; a post that went out meanwhile is
    not sent again (its result is returned), a cap still used up defers it once more.
    """
    post = runtime.ledger().get_post(post_id)
    return _send(post, request_for_post(post), deferred_run_name(post_id))
