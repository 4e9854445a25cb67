"""Idempotency keys of every length a request can make are stored (PostgreSQL enforces VARCHAR
lengths, SQLite does not), an impossible one is refused with a typed error, and a value the
database itself refuses is a typed, readable error too. Also: giving up a publish_id that never
received a byte (tasks/publishing.py decides when; the ledger makes it race-free)."""

from __future__ import annotations

import pydantic
import pytest
import sqlalchemy as sa
from alembic import command

from ledger import IllegalTransition, Ledger, LedgerInputInvalid, PostState
from ledger._migrate import alembic_config
from ledger._models import MAX_ACCOUNT_NAME_LENGTH, MAX_IDEMPOTENCY_KEY_LENGTH
from publishing import PublishRequest, post_idempotency_key
from tests.ledger.helpers import connect, initialized_post, insert_legacy_post, sha256_of

LONGEST_ACCOUNT = "a" * MAX_ACCOUNT_NAME_LENGTH


def _longest_caller_key() -> str:
    """The longest idempotency_key a PublishRequest accepts (one more character is refused)."""
    fields = {"source": "s3://media/clip.mp4", "accounts": ["main"], "privacy_level": "SELF_ONLY"}
    length = 200
    PublishRequest(**fields, idempotency_key="k" * length)
    with pytest.raises(pydantic.ValidationError):
        PublishRequest(**fields, idempotency_key="k" * (length + 1))
    return "k" * length


def _post_with_key(ledger: Ledger, key: str, account: str = LONGEST_ACCOUNT):
    return ledger.create_or_get_post(key, account_name=account, source_uri="s3://media/clip.mp4",
                                     content_sha256=sha256_of("clip"), caption="long key")


def test_the_longest_key_a_request_can_make_is_stored(ledger: Ledger) -> None:
    connect(ledger, LONGEST_ACCOUNT)
    with pytest.raises(LedgerInputInvalid, match="account name"):
        connect(ledger, LONGEST_ACCOUNT + "a")  # names are bounded, so keys are
    request = PublishRequest(source="s3://media/clip.mp4", accounts=[LONGEST_ACCOUNT], privacy_level="SELF_ONLY",
                             idempotency_key=_longest_caller_key())
    key = post_idempotency_key(request, LONGEST_ACCOUNT, sha256_of("clip"))
    assert len(key) == 200 + 1 + MAX_ACCOUNT_NAME_LENGTH <= MAX_IDEMPOTENCY_KEY_LENGTH
    post, created = _post_with_key(ledger, key)
    assert created and post.idempotency_key == key
    assert ledger.get_post_by_idempotency_key(key).id == post.id
    assert _post_with_key(ledger, key) == (post, False)


def test_a_key_longer_than_any_request_makes_is_refused_with_a_typed_error(ledger: Ledger) -> None:
    connect(ledger, LONGEST_ACCOUNT)
    with pytest.raises(LedgerInputInvalid, match=rf"idempotency key of {MAX_IDEMPOTENCY_KEY_LENGTH + 1} characters") as caught:
        _post_with_key(ledger, "k" * (MAX_IDEMPOTENCY_KEY_LENGTH + 1))
    assert caught.value.final and caught.value.detail["max_length"] == MAX_IDEMPOTENCY_KEY_LENGTH
    assert ledger.list_posts() == []


@pytest.mark.postgres
def test_a_value_postgresql_refuses_is_a_typed_readable_error(postgres_url: str, encryption_key: str) -> None:
    with Ledger(postgres_url, encryption_key) as ledger:
        connect(ledger)
        post = initialized_post(ledger, "k1")
        with pytest.raises(LedgerInputInvalid, match=r"the ledger database refused a value: value too long for type "
                                               r"character varying\(32\)") as caught:
            ledger.note(post, "k" * 40, "an event kind longer than its column")
        assert caught.value.final
        assert ledger.get_post(post.id).state is PostState.initialized  # nothing half-written


def test_migration_0003_widens_the_keys_of_an_existing_ledger(database_url: str, encryption_key: str) -> None:
    long_key = "k" * 265
    with Ledger(database_url, encryption_key, migrate=False) as ledger:
        with ledger.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0002")
            before = insert_legacy_post(connection, "before-0003")
        if ledger.engine.dialect.name == "postgresql":  # the bug: PostgreSQL refused such keys
            with pytest.raises(sa.exc.DataError, match=r"character varying\(128\)"):
                with ledger.engine.begin() as connection:
                    insert_legacy_post(connection, long_key)
        with ledger.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0003")
            inserted = insert_legacy_post(connection, "x" + long_key)
            (column,) = [c for c in sa.inspect(connection).get_columns("posts") if c["name"] == "idempotency_key"]
            assert column["type"].length == MAX_IDEMPOTENCY_KEY_LENGTH
        assert ledger.migrate() is True and ledger.current_revision() == ledger.head_revision()
        kept = ledger.get_post(before)  # the change (SQLite: of the stored schema only) kept the rows
        assert (kept.idempotency_key, kept.state, kept.publish_id) == ("before-0003", PostState.initialized,
                                                                     "v_pub_before-0003")
        assert len(ledger.get_post(inserted).idempotency_key) == 266
        post, created = _post_with_key(ledger, "y" + long_key, "brand")
        assert created and len(post.idempotency_key) == 266


def test_a_publish_id_that_never_received_a_byte_can_be_given_up_once(ledger: Ledger) -> None:
    connect(ledger)
    post = initialized_post(ledger, "k1")
    caps = ledger.caps_left("brand")
    again = ledger.abandon_publish_id(post, "v_pub_k1", "its media is gone and TikTok holds no byte",
                                      data={"uploaded_bytes": 0})
    assert (again.state, again.publish_id) == (PostState.media_ready, None)
    assert again.slot_reserved_at == post.slot_reserved_at and ledger.caps_left("brand") == caps
    event = ledger.post_events(post.id)[-1]
    assert (event.kind, event.from_state, event.to_state) == ("publish_id_abandoned", PostState.initialized,
                                                              PostState.media_ready)
    assert event.data == {"abandoned_publish_id": "v_pub_k1", "uploaded_bytes": 0}
    with pytest.raises(IllegalTransition, match="only an initialized post can give up its publish_id v_pub_k1"):
        ledger.abandon_publish_id(again, "v_pub_k1", "a second caller")  # lost the race: nothing changes
    assert ledger.reserve_slot(again).slot_reserved_at == post.slot_reserved_at
    renewed = ledger.mark_initialized(again, "v_pub_k1-second")
    assert renewed.state is PostState.initialized and renewed.publish_id == "v_pub_k1-second"
    with pytest.raises(IllegalTransition):
        ledger.abandon_publish_id(renewed, "v_pub_k1", "an old publish_id")
