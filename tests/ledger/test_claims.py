"""Claims: a post is leased to one runner at a time by compare-and-set, on SQLite and PostgreSQL; an
expired lease is taken over; claims, takeovers and releases are in the post's audit trail."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import timedelta
from multiprocessing.synchronize import Barrier as ProcessBarrier

import pytest

from ledger import Claim, ClaimLost, Ledger, LedgerInputInvalid, PostClaimedElsewhere, PostNotFound
from tests.ledger.helpers import SteppingClock, connect, ready_post

LEASE = timedelta(minutes=5)


def _claim_events(ledger: Ledger, post_id: int) -> list[tuple[str, dict | None]]:
    return [(e.kind, e.data) for e in ledger.post_events(post_id) if e.kind.startswith("claim")]


def test_a_free_post_is_claimed_and_others_are_told_who_holds_it(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger)
    post = ready_post(ledger, "p")
    claim = ledger.claim_post(post, "runner-a", LEASE)
    assert claim == Claim(post_id=post.id, owner="runner-a", expires_at=clock.now + LEASE, taken_over_from=None)
    assert ledger.get_claim(post) == claim
    stored = ledger.get_post(post.id)
    assert (stored.lease_owner, stored.lease_expires_at, stored.state) == ("runner-a", clock.now + LEASE, post.state)

    clock.advance(timedelta(minutes=4, seconds=59))
    with pytest.raises(PostClaimedElsewhere) as caught:
        ledger.claim_post(post.id, "runner-b", LEASE)
    error = caught.value
    assert error.final and not error.retryable
    assert (error.post_id, error.owner, error.lease_expires_at) == (post.id, "runner-a", claim.expires_at)
    assert "in progress elsewhere" in str(error) and "'runner-a'" in str(error)
    assert ledger.get_post(post.id).lease_owner == "runner-a"
    assert _claim_events(ledger, post.id) == [
        ("claimed", {"owner": "runner-a", "lease_expires_at": claim.expires_at.isoformat()}),
    ]


def test_claiming_again_as_the_owner_renews_without_an_event(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger)
    post = ready_post(ledger, "p")
    ledger.claim_post(post, "runner-a", LEASE)
    clock.advance(timedelta(minutes=3))
    again = ledger.claim_post(post, "runner-a", LEASE)
    assert (again.expires_at, again.taken_over_from) == (clock.now + LEASE, None)
    clock.advance(timedelta(minutes=3))
    renewed = ledger.renew_claim(post, "runner-a", timedelta(minutes=10))
    assert renewed.expires_at == clock.now + timedelta(minutes=10)
    clock.advance(timedelta(minutes=9))  # past the first two leases, within the renewal
    with pytest.raises(PostClaimedElsewhere):
        ledger.claim_post(post, "runner-b", LEASE)
    assert [kind for kind, _ in _claim_events(ledger, post.id)] == ["claimed"]


def test_an_expired_lease_is_taken_over_and_its_old_owner_is_told(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger)
    post = ready_post(ledger, "p")
    first = ledger.claim_post(post, "dead-runner", LEASE)
    clock.advance(LEASE)  # expired at its expiry instant
    taken = ledger.claim_post(post, "runner-b", LEASE)
    assert (taken.owner, taken.taken_over_from, taken.expires_at) == ("runner-b", "dead-runner", clock.now + LEASE)
    assert _claim_events(ledger, post.id)[-1] == (
        "claim_taken_over",
        {"owner": "runner-b", "lease_expires_at": taken.expires_at.isoformat(), "taken_over_from": "dead-runner",
         "expired_at": first.expires_at.isoformat()},
    )
    # The old owner comes back: it cannot renew, release or claim over the live lease.
    with pytest.raises(ClaimLost) as caught:
        ledger.renew_claim(post, "dead-runner", LEASE)
    assert (caught.value.holder, caught.value.owner, caught.value.final) == ("runner-b", "dead-runner", True)
    assert ledger.release_claim(post, "dead-runner") is False
    with pytest.raises(PostClaimedElsewhere, match="runner-b"):
        ledger.claim_post(post, "dead-runner", LEASE)
    assert ledger.get_claim(post) == Claim(post_id=post.id, owner="runner-b", expires_at=taken.expires_at)


def test_an_expired_lease_nobody_took_can_still_be_renewed(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger)
    post = ready_post(ledger, "p")
    ledger.claim_post(post, "slow-runner", LEASE)
    clock.advance(LEASE + timedelta(seconds=1))
    assert ledger.get_claim(post) is None  # expired: takeable
    assert ledger.renew_claim(post, "slow-runner", LEASE).expires_at == clock.now + LEASE
    with pytest.raises(PostClaimedElsewhere):
        ledger.claim_post(post, "runner-b", LEASE)


def test_release_frees_the_post_once(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger)
    post = ready_post(ledger, "p")
    ledger.claim_post(post, "runner-a", LEASE)
    assert ledger.release_claim(post, "runner-a") is True
    assert ledger.release_claim(post, "runner-a") is False
    assert ledger.get_claim(post) is None
    stored = ledger.get_post(post.id)
    assert (stored.lease_owner, stored.lease_expires_at) == (None, None)
    with pytest.raises(ClaimLost, match="nobody holds it"):
        ledger.renew_claim(post, "runner-a", LEASE)
    assert ledger.claim_post(post, "runner-b", LEASE).taken_over_from is None
    assert [kind for kind, _ in _claim_events(ledger, post.id)] == ["claimed", "claim_released", "claimed"]


def test_claim_inputs_are_checked(ledger: Ledger) -> None:
    connect(ledger)
    post = ready_post(ledger, "p")
    with pytest.raises(LedgerInputInvalid, match="positive"):
        ledger.claim_post(post, "runner-a", timedelta(0))
    with pytest.raises(LedgerInputInvalid, match="lease owner"):
        ledger.claim_post(post, "", LEASE)
    with pytest.raises(LedgerInputInvalid, match="lease owner"):
        ledger.claim_post(post, "r" * 129, LEASE)
    assert ledger.claim_post(post, "r" * 128, LEASE).owner == "r" * 128
    with pytest.raises(PostNotFound):
        ledger.claim_post(post.id + 1000, "runner-a", LEASE)
    with pytest.raises(PostNotFound):
        ledger.renew_claim(post.id + 1000, "runner-a", LEASE)


def test_threads_racing_for_a_claim_one_wins(ledger: Ledger) -> None:
    connect(ledger)
    post = ready_post(ledger, "p")
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def claim(n: int) -> None:
        barrier.wait()
        try:
            outcomes.append(f"won {ledger.claim_post(post.id, f'thread-{n}', LEASE).owner}")
        except PostClaimedElsewhere as exc:
            outcomes.append(f"elsewhere {exc.owner}")

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1 and len(outcomes) == 6
    owner = winners[0].removeprefix("won ")
    assert sorted(outcomes) == sorted([f"elsewhere {owner}"] * 5 + [f"won {owner}"])
    assert ledger.get_post(post.id).lease_owner == owner


def _claim_in_process(
    database_url: str, post_id: int, owner: str, barrier: ProcessBarrier, results: multiprocessing.Queue
) -> None:
    with Ledger(database_url) as ledger:  # its own engine, connections and (real) clock
        barrier.wait(timeout=60)
        try:
            claim = ledger.claim_post(post_id, owner, LEASE)
            results.put(("won", owner, claim.taken_over_from))
        except PostClaimedElsewhere as exc:
            results.put(("elsewhere", exc.owner, None))
        except BaseException as exc:  # noqa: BLE001 - surfaced to the parent's assertion
            results.put(("error", repr(exc), None))


def _race(database_url: str, post_id: int, contenders: int) -> list[tuple[str, str, str | None]]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(contenders)
    results = context.Queue()
    workers = [
        context.Process(target=_claim_in_process, args=(database_url, post_id, f"process-{n}", barrier, results))
        for n in range(contenders)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    return outcomes


@pytest.mark.parametrize("previous", ["none", "expired"])
def test_processes_racing_for_a_claim_one_wins(
    ledger: Ledger, database_url: str, clock: SteppingClock, previous: str
) -> None:
    connect(ledger)
    post = ready_post(ledger, "p")
    if previous == "expired":  # a runner died an hour ago holding a one-minute lease
        clock.advance(timedelta(hours=-1))
        ledger.claim_post(post, "dead-runner", timedelta(minutes=1))
    outcomes = _race(database_url, post.id, 4)
    winners = [o for o in outcomes if o[0] == "won"]
    assert len(winners) == 1, outcomes
    _, owner, taken_over_from = winners[0]
    assert taken_over_from == ("dead-runner" if previous == "expired" else None)
    assert sorted(o for o in outcomes if o[0] != "won") == [("elsewhere", owner, None)] * 3
    assert ledger.get_post(post.id).lease_owner == owner
    kinds = [kind for kind, _ in _claim_events(ledger, post.id)]
    assert kinds == (["claimed", "claim_taken_over"] if previous == "expired" else ["claimed"])
