"""Post modes and the post state machine, as pure data and functions."""

from __future__ import annotations

from enum import StrEnum

from ledger._errors import IllegalTransition


class PublishMode(StrEnum):
    direct = "direct"  # DIRECT_POST: published on the creator's profile
    inbox = "inbox"  # MEDIA_UPLOAD: sent to the creator's TikTok inbox as a draft
    hold = "hold"  # media prepared, waiting for a human to choose direct or inbox (or discard)


class AccountStatus(StrEnum):
    active = "active"
    needs_reconnect = "needs_reconnect"


class AttemptOutcome(StrEnum):
    """What became of one init call (the write-ahead `init_attempts` log)."""

    pending = "pending"  # recorded before the call; no answer stored (yet): in flight, or its runner died
    answered = "answered"  # TikTok answered with a publish_id (stored the moment it arrived)
    failed = "failed"  # TikTok answered with an error: no post was created
    lost = "lost"  # the answer never arrived (5xx, timeout, crash): TikTok may have created a post


class DeliveryStatus(StrEnum):
    """Where one webhook delivery of the outbox (`webhook_deliveries`) stands."""

    pending = "pending"  # stored before the first try; stays until its receiver answers 2xx
    delivered = "delivered"  # the receiver answered 2xx
    given_up = "given_up"  # no 2xx within the redelivery window (or its receiver was removed): why is recorded


#: Outcomes after which TikTok may have counted the init against the creator's daily cap.
CAP_COUNTED_OUTCOMES: frozenset[AttemptOutcome] = frozenset(
    {AttemptOutcome.pending, AttemptOutcome.answered, AttemptOutcome.lost}
)


class PostState(StrEnum):
    queued = "queued"
    media_ready = "media_ready"
    initialized = "initialized"  # TikTok gave a publish_id: from here on the post exists on TikTok's side
    uploaded = "uploaded"
    processing = "processing"
    published = "published"
    sent_to_inbox = "sent_to_inbox"
    failed = "failed"
    unconfirmed = "unconfirmed"  # outcome unknown (lost answer, polling gave up): reconcile decides
    discarded = "discarded"


_S = PostState
#: Every legal move. Anything not listed (including staying in the same state) is illegal.
TRANSITIONS: dict[PostState, frozenset[PostState]] = {
    _S.queued: frozenset({_S.media_ready, _S.failed, _S.discarded}),
    # unconfirmed: init was sent but its answer was lost; TikTok may or may not have the post.
    _S.media_ready: frozenset({_S.initialized, _S.failed, _S.unconfirmed, _S.discarded}),
    # PULL_FROM_URL has no upload step, hence initialized -> processing.
    _S.initialized: frozenset({_S.uploaded, _S.processing, _S.failed, _S.unconfirmed}),
    # A status fetch right after the last chunk may already answer the final state.
    _S.uploaded: frozenset({_S.processing, _S.published, _S.sent_to_inbox, _S.failed, _S.unconfirmed}),
    _S.processing: frozenset({_S.published, _S.sent_to_inbox, _S.failed, _S.unconfirmed}),
    _S.unconfirmed: frozenset({_S.processing, _S.published, _S.sent_to_inbox, _S.failed}),
    # The creator posted the inbox draft.
    _S.sent_to_inbox: frozenset({_S.published}),
    _S.published: frozenset(),
    _S.failed: frozenset(),
    _S.discarded: frozenset(),
}

#: States whose outcome TikTok may still change: `reconcile` polls them.
RECONCILE_STATES: frozenset[PostState] = frozenset({_S.processing, _S.unconfirmed, _S.sent_to_inbox})

#: States in which a post has not reached TikTok yet (a slot may be reserved, the mode changed).
BEFORE_INIT_STATES: frozenset[PostState] = frozenset({_S.queued, _S.media_ready})


def check_transition(post_id: int, from_state: PostState, to_state: PostState) -> None:
    """Raise `IllegalTransition` unless the state machine allows `from_state -> to_state`."""
    if to_state not in TRANSITIONS[from_state]:
        allowed = ", ".join(sorted(TRANSITIONS[from_state])) or "none (final state)"
        raise IllegalTransition(
            f"post {post_id} cannot go from {from_state} to {to_state}; allowed: {allowed}",
            detail={"post_id": post_id, "from_state": str(from_state), "to_state": str(to_state)},
        )
