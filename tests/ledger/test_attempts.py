"""Write-ahead init attempts: each init call is recorded (committed) before it is made, its publish_id the
moment it arrives, and attempts whose answer was lost stay visible and count against the daily cap."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledger import (
    AttemptOutcome,
    ClaimLost,
    DailyCapReached,
    DuplicatePost,
    IllegalTransition,
    InitAttempt,
    Ledger,
    PostState,
    PublishMode,
)
from tests.ledger.helpers import SteppingClock, connect, new_post, ready_post


def _slotted(ledger: Ledger, key: str, *, mode: PublishMode = PublishMode.direct):
    return ledger.reserve_slot(ready_post(ledger, key, mode=mode))


def test_an_attempt_is_committed_before_the_call_and_its_publish_id_on_arrival(
    ledger: Ledger, database_url: str, encryption_key: str, clock: SteppingClock
) -> None:
    connect(ledger)
    post = _slotted(ledger, "p")
    attempt = ledger.record_init_attempt(post, owner=None)
    assert (attempt.post_id, attempt.number, attempt.outcome, attempt.publish_id) == (
        post.id, 1, AttemptOutcome.pending, None,
    )
    assert attempt.started_at == clock.now and attempt.finished_at is None
    with Ledger(database_url, encryption_key) as other_process:  # committed: visible to anyone
        assert other_process.init_attempts(post.id) == [attempt]
        assert other_process.get_post(post.id).state is PostState.media_ready

    clock.advance(timedelta(seconds=2))
    initialized = ledger.record_publish_id(attempt, "v_pub_1")
    assert (initialized.state, initialized.publish_id) == (PostState.initialized, "v_pub_1")
    with Ledger(database_url, encryption_key) as other_process:
        (answered,) = other_process.init_attempts(post.id)
        assert other_process.get_post(post.id).publish_id == "v_pub_1"
    assert (answered.outcome, answered.publish_id, answered.finished_at) == (
        AttemptOutcome.answered, "v_pub_1", clock.now,
    )
    # The same answer stored twice (a retried task) is a no-op; another publish_id for it is refused.
    assert ledger.record_publish_id(attempt.id, "v_pub_1") == initialized
    with pytest.raises(IllegalTransition, match="already answered with publish_id v_pub_1"):
        ledger.record_publish_id(attempt, "v_pub_2")
    events = ledger.post_events(post.id)
    assert [e.kind for e in events][-2:] == ["init_attempt", "transition"]
    assert events[-1].data == {"publish_id": "v_pub_1", "attempt": 1, "attempt_id": attempt.id}
    assert (events[-1].from_state, events[-1].to_state) == (PostState.media_ready, PostState.initialized)
    # Initialized now: no further init attempt.
    with pytest.raises(IllegalTransition, match="initialized with publish_id v_pub_1"):
        ledger.record_init_attempt(post)


def test_attempts_need_a_media_ready_post_holding_a_slot(ledger: Ledger) -> None:
    connect(ledger)
    with pytest.raises(IllegalTransition, match="queued"):
        ledger.record_init_attempt(new_post(ledger, "queued"))
    with pytest.raises(IllegalTransition, match="reserve_slot comes before init"):
        ledger.record_init_attempt(ready_post(ledger, "no-slot"))
    assert ledger.init_attempts(ledger.get_post_by_idempotency_key("no-slot")) == []


def test_only_the_claim_holder_records_an_attempt(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger)
    post = _slotted(ledger, "p")
    ledger.claim_post(post, "runner-a", timedelta(minutes=1))
    clock.advance(timedelta(minutes=2))
    ledger.claim_post(post, "runner-b", timedelta(minutes=1))  # took over the expired lease
    with pytest.raises(ClaimLost) as caught:
        ledger.record_init_attempt(post, owner="runner-a")
    assert caught.value.holder == "runner-b"
    assert ledger.init_attempts(post) == []
    assert ledger.record_init_attempt(post, owner="runner-b").owner == "runner-b"


def test_a_lost_answer_is_retried_and_both_attempts_stay_visible(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger)
    post = _slotted(ledger, "p")
    first = ledger.record_init_attempt(post)
    lost = ledger.mark_attempt_lost(first, "init answered HTTP 503")
    assert (lost.outcome, lost.error_message, lost.finished_at) == (AttemptOutcome.lost, "init answered HTTP 503",
                                                                    clock.now)
    assert ledger.mark_attempt_lost(first, "again") == lost  # idempotent
    assert ledger.get_post(post.id).state is PostState.media_ready
    clock.advance(timedelta(seconds=30))
    second = ledger.record_init_attempt(post)
    assert second.number == 2
    ledger.record_publish_id(second, "v_pub_2")
    assert [(a.number, a.outcome, a.publish_id) for a in ledger.init_attempts(post)] == [
        (1, AttemptOutcome.lost, None), (2, AttemptOutcome.answered, "v_pub_2"),
    ]
    kinds = [e.kind for e in ledger.post_events(post.id)]
    assert kinds[-4:] == ["init_attempt", "init_attempt_lost", "init_attempt", "transition"]
    with pytest.raises(IllegalTransition, match="answered; it cannot become lost"):
        ledger.mark_attempt_lost(second, "too late")


def test_a_pending_attempt_of_a_dead_runner_is_marked_lost_by_the_next(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger)
    post = _slotted(ledger, "p")
    ledger.claim_post(post, "dead-runner", timedelta(minutes=1))
    crashed = ledger.record_init_attempt(post, owner="dead-runner")  # killed before any answer was stored
    clock.advance(timedelta(minutes=1))
    ledger.claim_post(post, "next-runner", timedelta(minutes=1))
    retry = ledger.record_init_attempt(post, owner="next-runner")
    (old, new) = ledger.init_attempts(post)
    assert (old.id, old.outcome, new.id, new.outcome) == (crashed.id, AttemptOutcome.lost, retry.id,
                                                          AttemptOutcome.pending)
    assert "superseded by attempt 2" in (old.error_message or "")
    lost_event = [e for e in ledger.post_events(post.id) if e.kind == "init_attempt_lost"]
    assert lost_event[0].data == {"attempt": 1, "attempt_id": crashed.id}


def test_an_answer_arriving_after_a_retry_won_is_kept_but_refused(ledger: Ledger) -> None:
    connect(ledger)
    post = _slotted(ledger, "p")
    first = ledger.record_init_attempt(post)
    ledger.mark_attempt_lost(first, "read timeout")
    second = ledger.record_init_attempt(post)
    ledger.record_publish_id(second, "v_pub_2")
    with pytest.raises(IllegalTransition, match="nothing may be uploaded to it"):
        ledger.record_publish_id(first, "v_pub_1")
    assert ledger.get_post(post.id).publish_id == "v_pub_2"
    (late, _) = ledger.init_attempts(post)
    assert (late.outcome, late.publish_id) == (AttemptOutcome.answered, "v_pub_1")  # committed all the same
    assert ledger.post_events(post.id)[-1].kind == "init_answer_late"


def test_a_publish_id_of_another_post_is_a_duplicate(ledger: Ledger) -> None:
    connect(ledger)
    one, two = _slotted(ledger, "one"), _slotted(ledger, "two")
    ledger.record_publish_id(ledger.record_init_attempt(one), "v_pub_x")
    attempt = ledger.record_init_attempt(two)
    with pytest.raises(DuplicatePost):
        ledger.record_publish_id(attempt, "v_pub_x")
    assert ledger.init_attempts(two) == [attempt]  # rolled back together


def test_a_refused_init_is_failed_and_frees_its_cap_slot(ledger: Ledger) -> None:
    connect(ledger)
    ledger.set_daily_caps("brand", direct=1)
    post = _slotted(ledger, "p")
    attempt = ledger.record_init_attempt(post)
    failed = ledger.mark_attempt_failed(attempt, error_code="spam_risk_too_many_posts", error_message="capped")
    assert (failed.outcome, failed.error_code) == (AttemptOutcome.failed, "spam_risk_too_many_posts")
    with pytest.raises(IllegalTransition):
        ledger.record_publish_id(attempt, "v_pub_1")
    with pytest.raises(IllegalTransition):
        ledger.mark_attempt_lost(attempt, "no")
    ledger.transition(post, PostState.failed, error_code="spam_risk_too_many_posts")
    assert ledger.caps_left("brand").direct.used == 0  # TikTok created nothing


def test_lost_inits_count_against_the_cap(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger)
    ledger.set_daily_caps("brand", direct=3)
    start = clock.now
    post = _slotted(ledger, "p")
    ledger.mark_attempt_lost(ledger.record_init_attempt(post), "503")
    assert ledger.caps_left("brand").direct.used == 1  # the slot stands for the first init
    clock.advance(timedelta(hours=1))
    retry = ledger.record_init_attempt(post)  # a second init TikTok may count: a slot of its own
    assert ledger.caps_left("brand").direct.used == 2
    ledger.mark_attempt_lost(retry, "timeout")
    clock.advance(timedelta(hours=1))
    ledger.mark_attempt_lost(ledger.record_init_attempt(post), "dropped")
    assert ledger.caps_left("brand").direct.used == 3
    with pytest.raises(DailyCapReached) as caught:
        ledger.record_init_attempt(post)
    assert caught.value.next_slot_at == start + timedelta(hours=24)
    assert "inits whose answer was lost count too" in str(caught.value)
    with pytest.raises(DailyCapReached):
        ledger.reserve_slot(ready_post(ledger, "other"))
    # The post gives up: its slot no longer counts, its orphan inits still do, each for 24 h from its start.
    ledger.transition(post, PostState.failed, error_code="init_outcome_unknown")
    assert ledger.caps_left("brand").direct.used == 3
    clock.now = start + timedelta(hours=24)
    assert ledger.caps_left("brand").direct.used == 2
    clock.now = start + timedelta(hours=26)
    assert ledger.caps_left("brand").direct.used == 0


def test_an_abandoned_publish_id_counts_as_an_init(ledger: Ledger) -> None:
    connect(ledger)
    post = _slotted(ledger, "p")
    ledger.record_publish_id(ledger.record_init_attempt(post), "v_pub_1")
    ledger.abandon_publish_id(post, "v_pub_1", "upload_url expired before any byte")
    assert ledger.caps_left("brand").direct.used == 1
    ledger.record_publish_id(ledger.record_init_attempt(post), "v_pub_2")
    assert ledger.caps_left("brand").direct.used == 2


def test_only_the_creators_own_mode_counts(ledger: Ledger) -> None:
    connect(ledger)
    connect(ledger, "agency")
    post = _slotted(ledger, "p", mode=PublishMode.inbox)
    ledger.mark_attempt_lost(ledger.record_init_attempt(post), "503")
    ledger.record_init_attempt(post)
    caps = ledger.caps_left("brand")
    assert (caps.inbox.used, caps.direct.used, ledger.caps_left("agency").inbox.used) == (2, 0, 0)


def test_attempt_views_are_the_public_type(ledger: Ledger) -> None:
    connect(ledger)
    attempt = ledger.record_init_attempt(_slotted(ledger, "p"))
    assert isinstance(attempt, InitAttempt)
    with pytest.raises(Exception, match="no init attempt with id"):
        ledger.mark_attempt_lost(attempt.id + 1000, "x")


def test_the_upload_url_is_kept_encrypted_and_forgotten_once_the_upload_is_over(
    ledger: Ledger, database_url: str, encryption_key: str
) -> None:
    connect(ledger)
    post = _slotted(ledger, "sealed")
    url = "https://upload.example/upload/abc?upload_token=SECRET-upload-token-123"
    attempt = ledger.record_init_attempt(post, owner=None)
    ledger.record_publish_id(attempt, "v_pub_sealed", data={"chunk_size": 5}, upload_url=url)

    def stored_event_data() -> str:  # what is at rest, read past the Ledger's own API
        import sqlalchemy as sa

        engine = sa.create_engine(database_url)
        try:
            with engine.connect() as connection:
                rows = connection.execute(sa.text("SELECT data FROM post_events WHERE post_id = :p"), {"p": post.id})
                return " ".join(str(row[0]) for row in rows)
        finally:
            engine.dispose()

    assert "SECRET-upload-token-123" not in stored_event_data() and "upload_url_sealed" in stored_event_data()
    assert ledger.upload_url(post) == url
    with Ledger(database_url, encryption_key) as other_process:  # another worker with the key reads it
        assert other_process.upload_url(post.id) == url
    # Nobody who reads the audit trail gets it (posts show, accounts export print these).
    assert all("upload_url" not in str(e.data) for e in ledger.post_events(post.id))

    ledger.transition(ledger.get_post(post.id), PostState.uploaded, message="uploaded")
    assert ledger.upload_url(post) is None
    assert "upload_url" not in stored_event_data()  # not even the ciphertext is kept
    assert [e.data for e in ledger.post_events(post.id) if e.kind == "transition"][-2]["chunk_size"] == 5


def test_an_unconfirmed_post_adopts_the_publish_id_tiktok_names_later(ledger: Ledger) -> None:
    connect(ledger)
    post = ledger.reserve_slot(ready_post(ledger, "pulled"))
    attempt = ledger.record_init_attempt(post)
    ledger.mark_attempt_lost(attempt, "no answer; TikTok may be pulling it already")
    post = ledger.transition(post, PostState.unconfirmed, message="unconfirmed: the PULL_FROM_URL init's answer was lost")
    adopted = ledger.adopt_publish_id(post, "v_pub_named_later", message="named by a webhook", data={"event": "x"})
    assert (adopted.state, adopted.publish_id) == (PostState.unconfirmed, "v_pub_named_later")
    (answered,) = ledger.init_attempts(post.id)
    assert (answered.outcome, answered.publish_id) == (AttemptOutcome.answered, "v_pub_named_later")
    assert ledger.get_post_by_publish_id("v_pub_named_later").id == post.id
    with pytest.raises(IllegalTransition, match="only an unconfirmed post without a publish_id"):
        ledger.adopt_publish_id(post, "v_pub_other", message="again")
    other = ledger.transition(ledger.reserve_slot(ready_post(ledger, "other")), PostState.unconfirmed, message="lost")
    with pytest.raises(DuplicatePost, match="v_pub_named_later"):
        ledger.adopt_publish_id(other, "v_pub_named_later", message="the same id")
    assert ledger.get_post(other.id).publish_id is None
