from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Barrier as ProcessBarrier

import pytest

from ledger import CAP_WINDOW, DailyCapReached, Ledger, PostState, PublishMode, cap_usage, next_free_slot
from tests.ledger.helpers import SteppingClock, connect, initialized_post, ready_post

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_cap_usage_is_a_rolling_window() -> None:
    times = [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    assert cap_usage(times, 3, T0 + timedelta(hours=3)).model_dump() == {
        "limit": 3, "used": 3, "next_slot_at": T0 + CAP_WINDOW,
    }
    # Over the limit (the limit was lowered): the next slot frees when usage drops below it.
    assert cap_usage(times, 2, T0 + timedelta(hours=3)).next_slot_at == T0 + timedelta(hours=25)
    assert cap_usage(times, 3, T0 + CAP_WINDOW).used == 2  # T0 just left the window
    spare = cap_usage(times, 5, T0 + timedelta(hours=3))
    assert (spare.left, spare.next_slot_at) == (2, None)
    assert cap_usage([], 0, T0).model_dump() == {"limit": 0, "used": 0, "next_slot_at": None}
    # A cap lowered to 0 under posts already counted: no slot ever frees (this raised IndexError before).
    assert cap_usage(times, 0, T0 + timedelta(hours=3)).model_dump() == {"limit": 0, "used": 3, "next_slot_at": None}


def test_direct_cap_rolls_over_24_hours(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger)
    ledger.set_daily_caps("brand", direct=3)
    start = clock.now
    for n in range(3):
        initialized_post(ledger, f"p{n}")
        clock.advance(timedelta(hours=1))
    blocked = ready_post(ledger, "p3")
    with pytest.raises(DailyCapReached) as caught:
        ledger.reserve_slot(blocked)
    assert caught.value.next_slot_at == start + CAP_WINDOW
    assert caught.value.final
    assert "used 3 of its 3 direct posts" in str(caught.value)
    assert ledger.get_post(blocked.id).slot_reserved_at is None
    caps = ledger.caps_left("brand")
    assert (caps.direct.used, caps.direct.left, caps.direct.next_slot_at) == (3, 0, start + CAP_WINDOW)
    assert (caps.inbox.used, caps.inbox.left) == (0, 5)

    clock.now = start + CAP_WINDOW - timedelta(seconds=1)
    with pytest.raises(DailyCapReached):
        ledger.reserve_slot(blocked)
    clock.now = start + CAP_WINDOW
    assert ledger.reserve_slot(blocked).slot_reserved_at == clock.now
    assert ledger.caps_left("brand").direct.left == 0


def test_what_counts_toward_the_cap(ledger: Ledger) -> None:
    connect(ledger)
    ledger.set_daily_caps("brand", direct=2)
    # Failed before init (TikTok never saw it): the slot comes back.
    early = ledger.reserve_slot(ready_post(ledger, "early"))
    assert ledger.caps_left("brand").direct.used == 1
    ledger.transition(early, PostState.failed, error_code="transcode_failed")
    assert ledger.caps_left("brand").direct.used == 0
    # Discarded before init: same.
    ledger.transition(ledger.reserve_slot(ready_post(ledger, "dropped")), PostState.discarded)
    assert ledger.caps_left("brand").direct.used == 0
    # Failed after init: TikTok counted the attempt, so do we.
    ledger.transition(initialized_post(ledger, "late"), PostState.failed, error_code="spam_risk")
    assert ledger.caps_left("brand").direct.used == 1
    # Reserving twice holds one slot.
    held = ledger.reserve_slot(ready_post(ledger, "held"))
    assert ledger.reserve_slot(held).slot_reserved_at == held.slot_reserved_at
    assert ledger.caps_left("brand").direct.used == 2
    with pytest.raises(DailyCapReached):
        ledger.reserve_slot(ready_post(ledger, "one-too-many"))
    # Only posts of this creator count.
    connect(ledger, "agency")
    assert ledger.reserve_slot(ready_post(ledger, "other", account="agency")).slot_reserved_at is not None


def test_inbox_pending_cap_is_separate(ledger: Ledger) -> None:
    connect(ledger)
    for n in range(5):
        ledger.transition(initialized_post(ledger, f"i{n}", mode=PublishMode.inbox), PostState.processing)
    with pytest.raises(DailyCapReached, match="5 inbox posts"):
        ledger.reserve_slot(ready_post(ledger, "i5", mode=PublishMode.inbox))
    assert ledger.reserve_slot(ready_post(ledger, "direct")).slot_reserved_at is not None
    caps = ledger.caps_left("brand")
    assert (caps.inbox.used, caps.direct.used) == (5, 1)


def test_slots_are_taken_before_init_only(ledger: Ledger) -> None:
    connect(ledger)
    post = initialized_post(ledger, "p")
    with pytest.raises(Exception, match="slots are reserved before init"):
        ledger.reserve_slot(post)


def test_zero_cap_never_frees(ledger: Ledger) -> None:
    connect(ledger)
    ledger.set_daily_caps("brand", direct=0)
    with pytest.raises(DailyCapReached, match="never") as caught:
        ledger.reserve_slot(ready_post(ledger, "p"))
    assert caught.value.next_slot_at is None


def _one_slot_left(ledger: Ledger, contenders: int) -> list[int]:
    connect(ledger)
    ledger.set_daily_caps("brand", direct=2)
    initialized_post(ledger, "used")
    return [ready_post(ledger, f"contender-{n}").id for n in range(contenders)]


def test_threads_racing_for_the_last_slot(ledger: Ledger) -> None:
    post_ids = _one_slot_left(ledger, 6)
    barrier = threading.Barrier(len(post_ids))
    outcomes: list[str] = []

    def publish(post_id: int) -> None:
        barrier.wait()
        try:
            ledger.reserve_slot(post_id)
            outcomes.append("won")
        except DailyCapReached:
            outcomes.append("capped")

    threads = [threading.Thread(target=publish, args=(post_id,)) for post_id in post_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["capped"] * 5 + ["won"]
    assert ledger.caps_left("brand").direct.used == 2


def _reserve_in_process(
    database_url: str, key: str, post_id: int, barrier: ProcessBarrier, results: multiprocessing.Queue
) -> None:
    with Ledger(database_url, key) as ledger:  # its own engine, connections and (real) clock
        barrier.wait(timeout=60)
        try:
            ledger.reserve_slot(post_id)
            results.put("won")
        except DailyCapReached:
            results.put("capped")
        except BaseException as exc:  # noqa: BLE001 - surfaced to the parent's assertion
            results.put(f"error: {exc!r}")


def test_processes_racing_for_the_last_slot(ledger: Ledger, database_url: str, encryption_key: str) -> None:
    post_ids = _one_slot_left(ledger, 3)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(post_ids))
    results = context.Queue()
    workers = [
        context.Process(target=_reserve_in_process, args=(database_url, encryption_key, post_id, barrier, results))
        for post_id in post_ids
    ]
    for worker in workers:
        worker.start()
    outcomes = sorted(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    assert outcomes == ["capped", "capped", "won"]
    assert ledger.caps_left("brand").direct.used == 2


def test_next_free_slot_gives_each_deferred_post_a_slot_of_its_own() -> None:
    hour = timedelta(hours=1)
    taken = [T0, T0 + hour, T0 + 2 * hour]  # a cap of 3, used up
    now = T0 + 3 * hour
    assert next_free_slot(taken, 3, now) == T0 + CAP_WINDOW  # what cap_usage says, with nothing promised
    first = next_free_slot(taken, 3, now)
    second = next_free_slot([*taken, first], 3, now)
    third = next_free_slot([*taken, first, second], 3, now)
    fourth = next_free_slot([*taken, first, second, third], 3, now)
    assert (first, second, third) == (T0 + CAP_WINDOW, T0 + hour + CAP_WINDOW, T0 + 2 * hour + CAP_WINDOW)
    assert fourth == first + CAP_WINDOW  # the slots the deferred posts took free again 24 h later
    assert next_free_slot([], 3, now) == now and next_free_slot(taken, 4, now) == now
    assert next_free_slot(taken, 0, now) is None
    # A promise further ahead leaves room before it only where no 24 h window would exceed the cap.
    assert next_free_slot([*taken, T0 + 2 * CAP_WINDOW], 3, now) == T0 + CAP_WINDOW


def test_deferred_posts_wait_for_successive_slots_and_take_them(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger)
    ledger.set_daily_caps("brand", direct=2)
    start = clock.now
    for n in range(2):
        initialized_post(ledger, f"p{n}")
        clock.advance(timedelta(hours=1))
    waiting = [ready_post(ledger, f"w{n}") for n in range(3)]
    promised = []
    for post in waiting:
        with pytest.raises(DailyCapReached) as caught:
            ledger.reserve_slot(post)
        assert caught.value.next_slot_at is not None
        deferred = ledger.defer_post(post, caught.value.next_slot_at, "deferred by the test")
        assert deferred.deferred_to == caught.value.next_slot_at
        promised.append(caught.value.next_slot_at)
    assert promised == [start + CAP_WINDOW, start + timedelta(hours=1) + CAP_WINDOW, start + 2 * CAP_WINDOW]
    assert [e.kind for e in ledger.post_events(waiting[0].id)][-1] == "deferred"
    # Asked again, a deferred post is told its own slot, not a later one (it does not count itself).
    with pytest.raises(DailyCapReached) as again:
        ledger.reserve_slot(waiting[1])
    assert again.value.next_slot_at == promised[1]
    clock.now = promised[0]
    taken = ledger.reserve_slot(waiting[0])
    assert (taken.slot_reserved_at, taken.deferred_to) == (promised[0], None)


def test_a_slot_counts_from_when_tiktok_answered_the_init(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger)
    ledger.set_daily_caps("brand", direct=1)
    post = ledger.reserve_slot(ready_post(ledger, "slow"))
    reserved = post.slot_reserved_at
    clock.advance(timedelta(minutes=4))  # e.g. a rate-limit wait between the slot and the init
    attempt = ledger.record_init_attempt(post)
    clock.advance(timedelta(seconds=2))
    answered = ledger.record_publish_id(attempt, "v_pub_slow")
    assert answered.slot_reserved_at == reserved + timedelta(minutes=4, seconds=2)
    blocked = ready_post(ledger, "next")
    with pytest.raises(DailyCapReached) as caught:
        ledger.reserve_slot(blocked)
    assert caught.value.next_slot_at == answered.slot_reserved_at + CAP_WINDOW  # not 4 minutes before TikTok frees it


def test_a_lost_init_counts_from_when_its_answer_was_given_up(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger)
    ledger.set_daily_caps("brand", direct=5)
    post = ledger.reserve_slot(ready_post(ledger, "lost"))
    first = ledger.record_init_attempt(post)
    clock.advance(timedelta(seconds=30))
    ledger.mark_attempt_lost(first, "timed out")
    assert ledger.get_post(post.id).slot_reserved_at == clock.now
    # The retry's own slot counts from its answer; the post's slot stays with the first attempt.
    clock.advance(timedelta(seconds=10))
    second = ledger.record_init_attempt(post)
    clock.advance(timedelta(seconds=1))
    ledger.record_publish_id(second, "v_pub_lost")
    assert ledger.get_post(post.id).slot_reserved_at == clock.now - timedelta(seconds=11)
    assert ledger.caps_left("brand").direct.used == 2
