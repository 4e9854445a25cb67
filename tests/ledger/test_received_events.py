"""The webhooks TikTok sends us, stored by the ledger (`received_tiktok_events`) on SQLite and PostgreSQL:
once per dedupe key (also when two receivers race), applied with an outcome, listed, pruned; and the two
lookups the receiver needs (`get_account_by_open_id`, `add_public_post_ids`)."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import timedelta
from typing import Any

import pytest

from ledger import (
    TIKTOK_REDELIVERY_WINDOW,
    AccountNotFound,
    IllegalTransition,
    Ledger,
    LedgerInputInvalid,
    PostNotFound,
    PostState,
    ReceivedEvent,
    ReceivedEventNotFound,
)
from tests.ledger.helpers import SteppingClock, connect, initialized_post


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _body(event: str = "post.publish.complete", publish_id: str | None = "v_pub_1", **content: Any) -> str:
    return json.dumps({"client_key": "ck", "event": event, "create_time": 1_700_000_000, "user_openid": "open-brand",
                       "content": json.dumps({"publish_id": publish_id, **content})})


def _record(ledger: Ledger, name: str, *, publish_id: str | None = "v_pub_1",
            event: str = "post.publish.complete") -> tuple[ReceivedEvent, bool]:
    return ledger.record_received_event(_key(name), event=event, user_openid="open-brand", publish_id=publish_id,
                                        body=_body(event, publish_id))


def _published_post(ledger: Ledger, key: str) -> Any:
    post = initialized_post(ledger, key)
    ledger.transition(post, PostState.processing)
    return ledger.transition(post, PostState.published, post_ids=["7300000000000000001"])


def test_the_first_delivery_is_stored_and_a_redelivery_gets_its_row(ledger: Ledger, clock: SteppingClock) -> None:
    stored, created = _record(ledger, "event-1")
    assert created
    assert (stored.key, stored.event, stored.user_openid, stored.publish_id) == (
        _key("event-1"), "post.publish.complete", "open-brand", "v_pub_1")
    assert stored.body == _body() and stored.received_at == clock.now
    assert (stored.applied_at, stored.outcome) == (None, None)
    assert "body" not in repr(stored)  # kept out of logs

    clock.advance(timedelta(hours=1))  # TikTok redelivers, maybe with another body: the first one stands
    again, created = ledger.record_received_event(_key("event-1"), event="post.publish.failed",
                                                  user_openid="open-other", publish_id=None, body="{}")
    assert not created and again == stored
    assert ledger.received_events() == [stored]


def test_two_receivers_storing_the_same_event_at_once_store_one_row(ledger: Ledger) -> None:
    barrier = threading.Barrier(2)
    results: list[tuple[ReceivedEvent, bool]] = []
    errors: list[BaseException] = []

    def receive() -> None:
        barrier.wait()
        try:
            results.append(_record(ledger, "raced"))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=receive) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(created for _, created in results) == [False, True]
    assert results[0][0].id == results[1][0].id
    assert len(ledger.received_events()) == 1


def test_the_loser_of_the_insert_race_reads_the_winners_row(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    winner, _ = _record(ledger, "raced")
    # The loser's read ran before the winner's commit: it saw nothing, so it inserts and hits the unique key.
    original = Ledger._received_by_key
    reads: list[str] = []

    def first_read_misses(session: Any, key: str) -> Any:
        reads.append(key)
        return None if len(reads) == 1 else original(session, key)

    monkeypatch.setattr(Ledger, "_received_by_key", staticmethod(first_read_misses))
    loser, created = _record(ledger, "raced")
    assert not created and loser == winner and len(reads) == 2


def test_marking_applied_records_when_and_what_and_a_reapplication_overwrites(
    ledger: Ledger, clock: SteppingClock
) -> None:
    stored, _ = _record(ledger, "event-1")
    clock.advance(timedelta(seconds=2))
    applied = ledger.mark_received_event_applied(stored.id, "post 12 published")
    assert (applied.id, applied.applied_at, applied.outcome) == (stored.id, clock.now, "post 12 published")
    assert applied.received_at == stored.received_at
    clock.advance(timedelta(minutes=5))
    again = ledger.mark_received_event_applied(stored.id, "post 12 is published already\n(re-applied)")
    assert (again.applied_at, again.outcome) == (clock.now, "post 12 is published already (re-applied)")
    assert ledger.received_events() == [again]
    # A redelivery returns the row as it stands now: applied, so the receiver does not apply it again.
    assert _record(ledger, "event-1") == (again, False)
    with pytest.raises(ReceivedEventNotFound, match="no received TikTok event with id 999"):
        ledger.mark_received_event_applied(999, "post 1 published")
    with pytest.raises(LedgerInputInvalid, match="outcome") as caught:
        ledger.mark_received_event_applied(stored.id, "  ")
    assert caught.value.detail["field"] == "outcome"


def test_listing_is_oldest_first_filtered_by_publish_id_and_pending(ledger: Ledger, clock: SteppingClock) -> None:
    first, _ = _record(ledger, "one", publish_id="v_pub_1")
    clock.advance(timedelta(seconds=1))
    second, _ = _record(ledger, "two", publish_id="v_pub_2")
    clock.advance(timedelta(seconds=1))
    third, _ = _record(ledger, "three", publish_id="v_pub_1", event="post.publish.publicly_available")
    removal, _ = _record(ledger, "four", publish_id=None, event="authorization.removed")
    ledger.mark_received_event_applied(first.id, "post 1 published")

    assert [e.id for e in ledger.received_events()] == [first.id, second.id, third.id, removal.id]
    assert [e.id for e in ledger.received_events(limit=2)] == [first.id, second.id]
    assert [e.id for e in ledger.received_events(limit=2, newest_first=True)] == [removal.id, third.id]
    assert [e.id for e in ledger.received_events(publish_id="v_pub_1")] == [first.id, third.id]
    assert [e.id for e in ledger.received_events(pending_only=True)] == [second.id, third.id, removal.id]
    assert [e.id for e in ledger.received_events(publish_id="v_pub_1", pending_only=True)] == [third.id]
    assert ledger.received_events(publish_id="v_pub_unknown") == []
    assert removal.publish_id is None
    with pytest.raises(LedgerInputInvalid, match="limit must be at least 1"):
        ledger.received_events(limit=0)


def test_pruning_deletes_only_applied_events_older_than_the_window(ledger: Ledger, clock: SteppingClock) -> None:
    old_applied, _ = _record(ledger, "old-applied")
    old_pending, _ = _record(ledger, "old-pending")
    ledger.mark_received_event_applied(old_applied.id, "post 1 published")
    clock.advance(timedelta(hours=71))
    recent_applied, _ = _record(ledger, "recent-applied")
    ledger.mark_received_event_applied(recent_applied.id, "post 2 published")

    assert ledger.prune_received_events(TIKTOK_REDELIVERY_WINDOW) == 0  # nothing is 72 h old yet
    clock.advance(timedelta(hours=1, seconds=1))
    assert ledger.prune_received_events(TIKTOK_REDELIVERY_WINDOW) == 1
    assert [e.id for e in ledger.received_events()] == [old_pending.id, recent_applied.id]
    # A redelivery of a pruned key (after TikTok's window: it no longer sends one) would be new again.
    assert _record(ledger, "old-applied")[1] is True

    clock.advance(timedelta(days=30))  # pending events are never pruned: a receiver still has to apply them
    assert ledger.prune_received_events(timedelta(days=7)) == 1
    assert [e.id for e in ledger.received_events(pending_only=True)] == [
        old_pending.id, ledger.received_events()[-1].id]
    assert {e.id for e in ledger.received_events()} & {old_applied.id, recent_applied.id} == set()
    with pytest.raises(LedgerInputInvalid, match="at least 3 days") as caught:
        ledger.prune_received_events(timedelta(hours=1))
    assert caught.value.detail["field"] == "older_than"


@pytest.mark.parametrize(
    ("field", "changes", "match"),
    [
        ("key", {"key": "A" * 64}, "64 lowercase hex"),
        ("key", {"key": "a" * 63}, "64 lowercase hex"),
        ("key", {"key": ""}, "64 lowercase hex"),
        ("event", {"event": " "}, "event is blank"),
        ("event", {"event": "e" * 65}, "event is 65 characters"),
        ("user_openid", {"user_openid": ""}, "user_openid is blank"),
        ("user_openid", {"user_openid": "o" * 129}, "user_openid is 129 characters"),
        ("user_openid", {"user_openid": "open\x00id"}, "user_openid contains a NUL"),
        ("publish_id", {"publish_id": "p" * 129}, "publish_id is 129 characters"),
        ("publish_id", {"publish_id": ""}, "publish_id is blank"),
        ("body", {"body": "{\x00}"}, "body contains a NUL"),
        ("body", {"body": "é" * (32 * 1024 + 1)}, "body is 65538 bytes"),
    ],
)
def test_bad_inputs_are_refused_naming_the_field(ledger: Ledger, field: str, changes: dict[str, Any],
                                                 match: str) -> None:
    arguments: dict[str, Any] = {"key": _key("event"), "event": "post.publish.complete", "user_openid": "open-brand",
                                 "publish_id": "v_pub_1", "body": _body(), **changes}
    key = arguments.pop("key")
    with pytest.raises(LedgerInputInvalid, match=match) as caught:
        ledger.record_received_event(key, **arguments)
    assert caught.value.detail["field"] == field
    assert ledger.received_events() == []


def test_a_body_of_64_kib_is_kept(ledger: Ledger) -> None:
    body = json.dumps({"padding": "x" * (64 * 1024 - 20)})
    body += " " * (64 * 1024 - len(body))
    stored, created = ledger.record_received_event(_key("big"), event="post.publish.complete",
                                                   user_openid="open-brand", publish_id=None, body=body)
    assert created and ledger.received_events()[0].body == body


def test_an_account_is_found_by_its_tiktok_user_unless_removed(ledger: Ledger) -> None:
    connect(ledger, "brand")
    connect(ledger, "other")
    found = ledger.get_account_by_open_id("open-brand")
    assert (found.name, found.open_id) == ("brand", "open-brand")
    with pytest.raises(AccountNotFound, match="no connected account is TikTok user open-nobody"):
        ledger.get_account_by_open_id("open-nobody")
    for unusable in ("", "o" * 500, "open\x00brand"):
        with pytest.raises(AccountNotFound):
            ledger.get_account_by_open_id(unusable)
    ledger.remove_account("other")
    with pytest.raises(AccountNotFound, match="account 'other' was removed"):
        ledger.get_account_by_open_id("open-other")


def test_public_post_ids_are_merged_into_a_published_post_with_an_audit_event(
    ledger: Ledger, clock: SteppingClock
) -> None:
    connect(ledger)
    post = _published_post(ledger, "k-public")
    assert (post.post_ids, post.share_url) == (["7300000000000000001"], None)
    clock.advance(timedelta(minutes=10))
    url = "https://www.tiktok.com/@brand_tt/video/7300000000000000002"
    updated = ledger.add_public_post_ids(post, ["7300000000000000001", "7300000000000000002", "7300000000000000002"],
                                         share_url=url, message="TikTok: publicly available as post 7300000000000000002")
    assert updated.post_ids == ["7300000000000000001", "7300000000000000002"]
    assert (updated.share_url, updated.state, updated.updated_at) == (url, PostState.published, clock.now)
    assert ledger.get_post(post.id) == updated
    event = ledger.post_events(post.id)[-1]
    assert (event.kind, event.from_state, event.to_state, event.at) == (
        "public_post_ids", PostState.published, PostState.published, clock.now)
    assert event.message == "TikTok: publicly available as post 7300000000000000002"
    assert event.data == {"post_ids": ["7300000000000000002"], "share_url": url}

    # The share URL is set once; later ids are appended in order.
    again = ledger.add_public_post_ids(post.id, ["7300000000000000003"], share_url="https://other.example/x",
                                       message="TikTok: another public id")
    assert again.post_ids == ["7300000000000000001", "7300000000000000002", "7300000000000000003"]
    assert again.share_url == url
    assert ledger.post_events(post.id)[-1].data == {"post_ids": ["7300000000000000003"]}


def test_public_post_ids_are_refused_for_a_post_not_published(ledger: Ledger) -> None:
    connect(ledger)
    post = initialized_post(ledger, "k-processing")
    ledger.transition(post, PostState.processing)
    events = ledger.post_events(post.id)
    with pytest.raises(IllegalTransition, match=f"post {post.id} is processing") as caught:
        ledger.add_public_post_ids(post, ["7300000000000000001"], message="TikTok: publicly available")
    assert caught.value.detail == {"post_id": post.id, "state": "processing"}
    assert ledger.get_post(post.id).post_ids == [] and ledger.post_events(post.id) == events
    with pytest.raises(PostNotFound):
        ledger.add_public_post_ids(999, ["7300000000000000001"], message="TikTok: publicly available")


def test_public_post_ids_must_be_usable(ledger: Ledger) -> None:
    connect(ledger)
    post = _published_post(ledger, "k-bad-ids")
    for post_ids, match in ((["   "], "post id is blank"), (["7" * 65], "post id is 65 characters"),
                            ("7300000000000000001", "not one string")):
        with pytest.raises(LedgerInputInvalid, match=match) as caught:
            ledger.add_public_post_ids(post, post_ids, message="TikTok: publicly available")
        assert caught.value.detail["field"] == "post_ids"
    with pytest.raises(LedgerInputInvalid, match="share_url contains a NUL") as caught:
        ledger.add_public_post_ids(post, [], share_url="https://x\x00", message="m")
    assert caught.value.detail["field"] == "share_url"
    assert ledger.get_post(post.id).post_ids == ["7300000000000000001"]


def test_get_received_event_reads_it_as_stored_now(ledger) -> None:
    stored, _ = ledger.record_received_event("b" * 64, event="post.publish.complete", user_openid="u",
                                             publish_id="p", body="{}")
    assert ledger.get_received_event(stored.id).applied_at is None
    ledger.mark_received_event_applied(stored.id, "post 1 published")
    assert ledger.get_received_event(stored.id).outcome == "post 1 published"
    with pytest.raises(ReceivedEventNotFound):
        ledger.get_received_event(stored.id + 1000)
