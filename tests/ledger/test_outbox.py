"""The webhook outbox of the ledger (`webhook_deliveries`), on SQLite and PostgreSQL: stored before the
first try, claimed by one sender at a time, kept until a 2xx, given up with a reason."""

from __future__ import annotations

import hashlib
import threading
import uuid
from datetime import timedelta

import pytest

from ledger import (
    DeliveryNotFound,
    DeliveryStatus,
    Ledger,
    LedgerInputInvalid,
    OutboxEntry,
    PostNotFound,
)
from tests.ledger.helpers import SteppingClock, connect, initialized_post

LEASE = timedelta(seconds=70)


def _entry(post_id: int | None, *, event: str | None = None, url: str = "https://hooks.example.com/a",
           body: str | None = None) -> OutboxEntry:
    event_id = event or str(uuid.uuid4())
    return OutboxEntry(
        event_id=event_id, event_type="tiktok.post.published", post_id=post_id,
        receiver=hashlib.sha256(url.encode()).hexdigest(), receiver_label="https://hooks.example.com/…",
        body=body or f'{{"id":"{event_id}","type":"tiktok.post.published","data":{{"post_id":{post_id}}}}}',
    )


def test_deliveries_are_stored_pending_and_due_at_once_and_never_twice(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger)
    post = initialized_post(ledger, "k-out")
    first, other_url = _entry(post.id), _entry(post.id, url="https://hooks.example.com/b")
    other_url = other_url.model_copy(update={"event_id": first.event_id, "body": first.body})
    unrecorded = _entry(None)
    stored = ledger.add_webhook_deliveries([first, other_url, unrecorded])
    assert [(d.event_id, d.receiver, d.status, d.attempts) for d in stored] == [
        (first.event_id, first.receiver, DeliveryStatus.pending, 0),
        (first.event_id, other_url.receiver, DeliveryStatus.pending, 0),
        (unrecorded.event_id, unrecorded.receiver, DeliveryStatus.pending, 0),
    ]
    assert all(d.created_at == d.next_attempt_at == clock.now and d.leased_until is None for d in stored)
    assert stored[0].body == first.body and stored[2].post_id is None
    assert [d.id for d in ledger.webhook_deliveries(due=True)] == [d.id for d in stored]
    assert [d.id for d in ledger.webhook_deliveries(post_id=post.id)] == [stored[0].id, stored[1].id]

    # The same outcome reported again (a re-run): the stored row, body and all, delivered or not.
    ledger.claim_webhook_delivery(stored[0].id, LEASE, due_only=True)
    ledger.record_webhook_attempt(stored[0].id, status_code=200)
    clock.advance(timedelta(minutes=5))
    again = ledger.add_webhook_deliveries([first.model_copy(update={"body": '{"id":"changed"}'})])
    assert [(d.id, d.body, d.status) for d in again] == [(stored[0].id, first.body, DeliveryStatus.delivered)]
    assert len(ledger.webhook_deliveries()) == 3


def test_a_claim_is_one_senders_at_a_time_and_lapses(ledger: Ledger, clock: SteppingClock) -> None:
    [delivery] = ledger.add_webhook_deliveries([_entry(None)])
    claimed = ledger.claim_webhook_delivery(delivery.id, LEASE, due_only=True)
    assert claimed is not None and claimed.leased_until == clock.now + LEASE
    assert ledger.claim_webhook_delivery(delivery.id, LEASE, due_only=False) is None  # being sent
    assert ledger.webhook_deliveries(due=True) == []
    clock.advance(LEASE)  # its sender died: the lease lapses, the delivery is due again
    assert ledger.webhook_deliveries(due=True)[0].id == delivery.id
    assert ledger.claim_webhook_delivery(delivery.id, LEASE, due_only=True) is not None
    with pytest.raises(LedgerInputInvalid, match="a lease must be positive"):
        ledger.claim_webhook_delivery(delivery.id, timedelta(0), due_only=True)
    with pytest.raises(DeliveryNotFound, match="no webhook delivery with id 999"):
        ledger.claim_webhook_delivery(999, LEASE, due_only=True)


def test_a_failed_try_is_due_again_later_a_2xx_delivers_and_giving_up_records_why(
    ledger: Ledger, clock: SteppingClock
) -> None:
    [delivery] = ledger.add_webhook_deliveries([_entry(None)])
    ledger.claim_webhook_delivery(delivery.id, LEASE, due_only=True)
    failed = ledger.record_webhook_attempt(delivery.id, status_code=503, error="webhook https://h/… answered 503",
                                           retry_in=timedelta(minutes=2))
    assert (failed.status, failed.attempts, failed.last_status, failed.leased_until) == (
        DeliveryStatus.pending, 1, 503, None)
    assert failed.next_attempt_at == clock.now + timedelta(minutes=2) and failed.last_attempt_at == clock.now
    assert ledger.claim_webhook_delivery(delivery.id, LEASE, due_only=True) is None  # not due yet
    clock.advance(timedelta(minutes=2))
    assert ledger.claim_webhook_delivery(delivery.id, LEASE, due_only=True) is not None
    taken = ledger.record_webhook_attempt(delivery.id, status_code=204)
    assert (taken.status, taken.attempts, taken.delivered_at, taken.last_error) == (
        DeliveryStatus.delivered, 2, clock.now, None)
    assert ledger.claim_webhook_delivery(delivery.id, LEASE, due_only=False) is None  # nothing left to send

    [other] = ledger.add_webhook_deliveries([_entry(None)])
    gone = ledger.give_up_webhook_delivery(other.id, "no 2xx answer within 24 h")
    assert (gone.status, gone.status_reason, gone.leased_until) == (DeliveryStatus.given_up, "no 2xx answer within 24 h", None)
    assert ledger.claim_webhook_delivery(other.id, LEASE, due_only=False) is None
    assert ledger.give_up_webhook_delivery(delivery.id, "too late").status is DeliveryStatus.delivered  # unchanged
    # A 2xx that arrives after all (a try under way when it was given up) is still the truth.
    assert ledger.record_webhook_attempt(other.id, status_code=200).status is DeliveryStatus.delivered
    assert ledger.webhook_deliveries(statuses=[DeliveryStatus.given_up]) == []


def test_of_concurrent_claimers_exactly_one_gets_the_delivery(ledger: Ledger) -> None:
    [delivery] = ledger.add_webhook_deliveries([_entry(None)])
    barrier, won, errors = threading.Barrier(6), [], []

    def claim() -> None:
        barrier.wait()
        try:
            won.append(ledger.claim_webhook_delivery(delivery.id, LEASE, due_only=True))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(won) == 6
    assert len([c for c in won if c is not None]) == 1


def test_what_cannot_be_stored_is_refused_before_anything_is(ledger: Ledger) -> None:
    with pytest.raises(PostNotFound, match="no post with id 4242"):
        ledger.add_webhook_deliveries([_entry(None), _entry(4242)])
    with pytest.raises(LedgerInputInvalid, match="webhook body contains a NUL character"):
        ledger.add_webhook_deliveries([_entry(None, body='{"caption":"a\x00b"}')])
    assert ledger.webhook_deliveries() == []
