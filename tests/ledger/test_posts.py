from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from ledger import (
    TRANSITIONS,
    DuplicatePost,
    IllegalTransition,
    Ledger,
    LedgerInputInvalid,
    PostNotFound,
    PostState,
    PublishMode,
    default_idempotency_key,
)
from tests.ledger.helpers import SteppingClock, connect, initialized_post, new_post, ready_post, sha256_of

S = PostState


def _path(ledger: Ledger, post_id: int) -> list[tuple[PostState | None, PostState, str]]:
    return [(e.from_state, e.to_state, e.kind) for e in ledger.post_events(post_id)]


def test_default_idempotency_key_is_canonical() -> None:
    digest = sha256_of("video")
    key = default_idempotency_key(digest, "brand", "Hello #fyp", PublishMode.direct)
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == default_idempotency_key(digest, "brand", "Hello #fyp", "direct")
    variants = {
        default_idempotency_key(sha256_of("other"), "brand", "Hello #fyp", "direct"),
        default_idempotency_key(digest, "agency", "Hello #fyp", "direct"),
        default_idempotency_key(digest, "brand", "Hello #fyp ", "direct"),
        default_idempotency_key(digest, "brand", "Hello #fyp", "inbox"),
    }
    assert key not in variants and len(variants) == 4


def test_create_or_get_post_is_idempotent(ledger: Ledger) -> None:
    connect(ledger)
    post = new_post(ledger, "k1")
    assert (post.state, post.mode, post.account_name) == (S.queued, PublishMode.direct, "brand")
    assert post.options == {"privacy_level": "SELF_ONLY"} and post.post_ids == []
    again, created = ledger.create_or_get_post(
        "k1",
        account_name="brand",
        source_uri="file:///elsewhere/same-bytes.mp4",
        content_sha256=sha256_of("k1"),
        caption="caption of k1",
        mode=PublishMode.direct,
    )
    assert (again.id, created) == (post.id, False)
    assert ledger.get_post_by_idempotency_key("k1") == again
    assert _path(ledger, post.id) == [(None, S.queued, "created")]


def test_reusing_a_key_for_other_content_is_refused(ledger: Ledger) -> None:
    connect(ledger)
    new_post(ledger, "k1")
    with pytest.raises(DuplicatePost, match="different caption, content_sha256"):
        ledger.create_or_get_post(
            "k1", account_name="brand", source_uri="s3://x", content_sha256=sha256_of("other"), caption="new"
        )


def test_idempotency_race_creates_one_row(ledger: Ledger) -> None:
    connect(ledger)
    barrier = threading.Barrier(6)
    outcomes: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def create() -> None:
        barrier.wait()
        try:
            post, created = ledger.create_or_get_post(
                "race", account_name="brand", source_uri="s3://m/v.mp4", content_sha256=sha256_of("v")
            )
            outcomes.append((post.id, created))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({post_id for post_id, _ in outcomes}) == 1
    assert sorted(created for _, created in outcomes) == [False] * 5 + [True]
    assert len(ledger.list_posts()) == 1


def test_direct_post_happy_path_writes_every_event(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger)
    post = initialized_post(ledger, "k1")
    assert post.publish_id == "v_pub_k1" and post.state is S.initialized
    assert ledger.get_post_by_publish_id("v_pub_k1").id == post.id
    ledger.transition(post, S.uploaded)
    ledger.transition(post, S.processing, message="status PROCESSING_UPLOAD")
    clock.advance(timedelta(minutes=2))
    published = ledger.transition(
        post, S.published, post_ids=["7301"], share_url="https://www.tiktok.com/@brand_tt/video/7301",
        privacy_level="SELF_ONLY", data={"status": "PUBLISH_COMPLETE"},
    )
    assert published.published_at == clock.now == published.updated_at
    assert published.post_ids == ["7301"] and published.privacy_level == "SELF_ONLY"
    assert _path(ledger, post.id) == [
        (None, S.queued, "created"),
        (S.queued, S.media_ready, "transition"),
        (S.media_ready, S.media_ready, "slot_reserved"),
        (S.media_ready, S.initialized, "transition"),
        (S.initialized, S.uploaded, "transition"),
        (S.uploaded, S.processing, "transition"),
        (S.processing, S.published, "transition"),
    ]
    events = ledger.post_events(post.id)
    assert events[3].data == {"publish_id": "v_pub_k1"}
    assert events[5].message == "status PROCESSING_UPLOAD"
    assert events[6].data is not None and events[6].data["status"] == "PUBLISH_COMPLETE"
    assert events[6].data["post_ids"] == ["7301"]
    assert events[6].at == clock.now


def test_inbox_and_reconcile_paths(ledger: Ledger) -> None:
    connect(ledger)
    inbox = initialized_post(ledger, "inbox", mode=PublishMode.inbox)
    for state in (S.uploaded, S.processing, S.sent_to_inbox, S.published):
        assert ledger.transition(inbox, state).state is state
    lost = initialized_post(ledger, "lost")
    for state in (S.unconfirmed, S.processing, S.unconfirmed, S.published):
        assert ledger.transition(lost, state).state is state
    gone = initialized_post(ledger, "gone")
    ledger.transition(gone, S.unconfirmed)
    failed = ledger.transition(gone, S.failed, error_code="spam_risk_too_many_posts", error_message="cap")
    assert (failed.error_code, failed.error_message) == ("spam_risk_too_many_posts", "cap")


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], S.initialized),  # init needs media first
        ([S.media_ready], S.published),
        ([S.failed], S.media_ready),  # terminal
        ([S.discarded], S.queued),
        ([S.media_ready], S.media_ready),  # no self-transition
    ],
)
def test_illegal_transitions_are_refused_without_a_trace(
    ledger: Ledger, path: list[PostState], illegal: PostState
) -> None:
    connect(ledger)
    post = new_post(ledger, "k1")
    for state in path:
        post = ledger.transition(post, state)
    events_before = ledger.post_events(post.id)
    with pytest.raises(IllegalTransition, match=f"cannot go from {post.state} to {illegal}") as caught:
        ledger.transition(post, illegal, publish_id="v_pub_x")
    assert caught.value.detail == {"post_id": post.id, "from_state": str(post.state), "to_state": str(illegal)}
    assert ledger.get_post(post.id) == post
    assert ledger.post_events(post.id) == events_before


def test_transition_is_checked_against_the_stored_state(ledger: Ledger) -> None:
    """A stale view cannot rewind a post: two workers finishing the same post, only one wins."""
    connect(ledger)
    post = ledger.transition(initialized_post(ledger, "k1"), S.processing)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def finish() -> None:
        barrier.wait()
        try:
            ledger.transition(post, S.published)
            outcomes.append("published")
        except IllegalTransition:
            outcomes.append("refused")

    threads = [threading.Thread(target=finish) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["published"] + ["refused"] * 3
    assert [e.to_state for e in ledger.post_events(post.id)].count(S.published) == 1


def test_only_from_refuses_a_post_that_moved_on_even_to_a_legal_predecessor(ledger: Ledger) -> None:
    """A verdict decided on an unconfirmed post is not recorded once reconciliation made it processing,
    although processing -> failed is a legal move."""
    connect(ledger)
    post = ledger.transition(initialized_post(ledger, "k-verdict"), S.unconfirmed)
    ledger.transition(post, S.processing, message="reconciled: TikTok is processing it")
    events_before = ledger.post_events(post.id)
    with pytest.raises(IllegalTransition, match="is processing, no longer unconfirmed: it was not moved to failed") as caught:
        ledger.transition(post, S.failed, error_code="resolved_not_posted", only_from=S.unconfirmed)
    assert caught.value.detail == {"post_id": post.id, "state": "processing", "expected_state": "unconfirmed",
                                   "to_state": "failed"}
    assert ledger.get_post(post.id).state is S.processing and ledger.get_post(post.id).error_code is None
    assert ledger.post_events(post.id) == events_before
    # In the expected state the move is made as any other, and the state machine still has the last word.
    other = ledger.transition(initialized_post(ledger, "k-verdict-2"), S.unconfirmed)
    assert ledger.transition(other, S.published, only_from=S.unconfirmed).state is S.published
    with pytest.raises(IllegalTransition, match="cannot go from media_ready to published"):
        ledger.transition(ready_post(ledger, "k-verdict-3"), S.published, only_from=S.media_ready)


def test_every_state_is_reachable_and_terminal_states_are_final() -> None:
    reachable, frontier = {S.queued}, [S.queued]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()] - reachable:
            reachable.add(nxt)
            frontier.append(nxt)
    assert reachable == set(PostState)
    assert {s for s, targets in TRANSITIONS.items() if not targets} == {S.published, S.failed, S.discarded}


def test_initialized_needs_a_unique_publish_id(ledger: Ledger) -> None:
    connect(ledger)
    initialized_post(ledger, "first")
    second = ledger.reserve_slot(ready_post(ledger, "second"))
    with pytest.raises(LedgerInputInvalid, match="needs the publish_id"):
        ledger.transition(second, S.initialized)
    with pytest.raises(DuplicatePost, match="publish_id v_pub_first"):
        ledger.mark_initialized(second, "v_pub_first")
    assert ledger.get_post(second.id).state is S.media_ready


def test_hold_drafts(ledger: Ledger) -> None:
    connect(ledger)
    draft = ready_post(ledger, "draft", mode=PublishMode.hold)
    with pytest.raises(IllegalTransition, match="hold draft"):
        ledger.reserve_slot(draft)
    released = ledger.release_hold(draft, PublishMode.inbox)
    assert released.mode is PublishMode.inbox
    assert ledger.reserve_slot(released).slot_reserved_at is not None
    with pytest.raises(IllegalTransition, match="not a hold draft"):
        ledger.release_hold(released, PublishMode.direct)
    dropped = ledger.transition(ready_post(ledger, "dropped", mode=PublishMode.hold), S.discarded)
    assert dropped.state is S.discarded
    assert [e.kind for e in ledger.post_events(draft.id)] == ["created", "transition", "mode_changed", "slot_reserved"]


def test_a_reviewed_post_goes_on_with_the_reviewers_mode_and_caption(ledger: Ledger) -> None:
    connect(ledger)
    draft = ready_post(ledger, "review", mode=PublishMode.hold)
    with pytest.raises(LedgerInputInvalid, match="direct or inbox"):
        ledger.release_reviewed(draft, PublishMode.hold, "x", message="m", data={})
    reviewed = ledger.release_reviewed(draft, PublishMode.direct, "the reviewer's caption", message="reviewed: direct",
                                       data={"answer": {"consent": True}})
    assert (reviewed.mode, reviewed.caption, reviewed.state) == (PublishMode.direct, "the reviewer's caption", S.media_ready)
    (event,) = [e for e in ledger.post_events(draft.id) if e.kind == "reviewed"]
    assert event.message == "reviewed: direct" and event.data == {"answer": {"consent": True}}
    # Found by its key with the new caption (a re-run of the reviewed request matches it).
    assert ledger.get_post_by_idempotency_key(draft.idempotency_key).caption == "the reviewer's caption"
    sent = initialized_post(ledger, "sent")
    with pytest.raises(IllegalTransition, match="only a post not yet sent to TikTok can be reviewed"):
        ledger.release_reviewed(sent, PublishMode.direct, "late", message="m", data={})


def test_queries(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger, "brand")
    connect(ledger, "agency")
    old = new_post(ledger, "old")
    clock.advance(timedelta(hours=1))
    processing = ledger.transition(initialized_post(ledger, "processing"), S.processing)
    unconfirmed = ledger.transition(initialized_post(ledger, "unconfirmed", account="agency"), S.unconfirmed)
    inbox = ledger.transition(
        ledger.transition(initialized_post(ledger, "inbox", mode=PublishMode.inbox), S.processing), S.sent_to_inbox
    )
    done = ledger.transition(ledger.transition(initialized_post(ledger, "done"), S.processing), S.published)

    assert [p.id for p in ledger.list_posts()] == [done.id, inbox.id, unconfirmed.id, processing.id, old.id]
    assert [p.id for p in ledger.list_posts(account_name="agency")] == [unconfirmed.id]
    assert [p.id for p in ledger.list_posts(states=[S.queued, S.published])] == [done.id, old.id]
    assert old.id not in {p.id for p in ledger.list_posts(since=clock.now)}
    assert len(ledger.list_posts(limit=2)) == 2
    assert {p.id for p in ledger.posts_to_reconcile()} == {processing.id, unconfirmed.id, inbox.id}
    assert [p.id for p in ledger.posts_to_reconcile(account_name="agency")] == [unconfirmed.id]
    with pytest.raises(PostNotFound):
        ledger.get_post(10_000)
    with pytest.raises(PostNotFound):
        ledger.get_post_by_publish_id("v_pub_nothing")
    with pytest.raises(PostNotFound):
        ledger.post_events(10_000)


def test_a_post_that_failed_before_init_can_be_tried_again_and_frees_its_slot(ledger: Ledger) -> None:
    connect(ledger)
    post = ledger.reserve_slot(ready_post(ledger, "k-retry"))
    post = ledger.transition(post, S.failed, error_code="privacy_level_option_mismatch", error_message="nope")
    again = ledger.retry_before_init(post, "tried again")
    assert again.state is S.queued and again.error_code is None and again.slot_reserved_at is None
    assert _path(ledger, post.id)[-1] == (S.failed, S.queued, "retry")
    assert ledger.post_events(post.id)[-1].data == {"error_code": "privacy_level_option_mismatch", "error_message": "nope"}


def test_a_post_that_failed_at_tiktok_is_never_tried_again(ledger: Ledger) -> None:
    connect(ledger)
    post = ledger.transition(initialized_post(ledger, "k-at-tiktok"), S.failed, error_code="spam_risk")
    with pytest.raises(IllegalTransition, match="at TikTok"):
        ledger.retry_before_init(post, "no")
    with pytest.raises(IllegalTransition):
        ledger.retry_before_init(ready_post(ledger, "k-not-failed"), "no")
