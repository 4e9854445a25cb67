"""`accounts remove`: the account stops being offered and usable, its posts keep their history."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from ledger import AccountConflict, AccountNeedsReconnect, AccountNotFound, AccountStatus, Ledger, PostState
from ledger._migrate import alembic_config
from tests.ledger.helpers import SteppingClock, connect, grant, initialized_post, new_post
from tests.ledger.test_accounts import _never_called, _token_columns  # the same checks as the account tests


def test_a_removed_account_is_no_longer_listed_nor_usable_but_its_posts_stay(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger, "brand")
    connect(ledger, "agency")
    published = ledger.transition(ledger.transition(initialized_post(ledger, "launch"), PostState.uploaded),
                                  PostState.published)
    clock.advance(timedelta(minutes=5))

    removed, now = ledger.remove_account("brand")

    assert now is True and removed.removed_at == clock.now
    assert removed.status is AccountStatus.needs_reconnect and "accounts remove" in removed.status_reason
    assert [a.name for a in ledger.list_accounts()] == ["agency"]
    assert [a.name for a in ledger.list_accounts(include_removed=True)] == ["agency", "brand"]
    assert ledger.get_account("brand") == removed  # export and history still find it
    assert ledger.list_posts(account_name="brand") == [ledger.get_post(published.id)]
    assert ledger.post_events(published.id)  # the audit trail too
    assert _token_columns(ledger, "brand") == ("", "")  # nothing left to leak or use
    with pytest.raises(AccountNeedsReconnect, match="removed on .*`tiktok-pipeline accounts connect brand`"):
        ledger.ensure_fresh_token("brand", _never_called)  # type: ignore[arg-type]
    assert ledger.reencrypt_tokens() == 1  # only agency has tokens to rotate


def test_removing_twice_says_so_and_an_unknown_name_is_refused(ledger: Ledger, clock: SteppingClock) -> None:
    connect(ledger)
    first, _ = ledger.remove_account("brand")
    clock.advance(timedelta(hours=1))
    again, now = ledger.remove_account("brand")
    assert now is False and again.removed_at == first.removed_at
    with pytest.raises(AccountNotFound, match="no account named 'ghost'"):
        ledger.remove_account("ghost")


def test_connecting_the_name_again_restores_the_account_with_its_history_and_caps(ledger: Ledger) -> None:
    connect(ledger)
    post = initialized_post(ledger, "before-removal")
    caps_before = ledger.caps_left("brand")
    ledger.remove_account("brand")

    again = ledger.upsert_account("brand", grant(2), username="brand_tt", nickname="Brand")

    assert again.removed_at is None and again.status is AccountStatus.active and again.status_reason is None
    assert [a.name for a in ledger.list_accounts()] == ["brand"]
    assert ledger.ensure_fresh_token("brand", _never_called) == (grant(2).access_token, False)  # type: ignore[arg-type]
    assert [p.id for p in ledger.list_posts(account_name="brand")] == [post.id]
    assert ledger.caps_left("brand") == caps_before  # the slot taken before removal still counts
    new_post(ledger, "after-reconnect")


def test_a_removed_creator_comes_back_under_its_own_name(ledger: Ledger) -> None:
    connect(ledger)
    ledger.remove_account("brand")
    with pytest.raises(AccountConflict, match=r"was connected as account 'brand' \(removed .*accounts connect brand"):
        ledger.upsert_account("other", grant(3))  # same TikTok user (open-brand), another name
    assert [a.name for a in ledger.list_accounts(include_removed=True)] == ["brand"]


def test_migration_0002_keeps_existing_accounts_connected(database_url: str, encryption_key: str) -> None:
    with Ledger(database_url, encryption_key, migrate=False) as ledger:
        with ledger.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0001")
        with ledger.engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO accounts (name, open_id, scopes, access_token_ciphertext, refresh_token_ciphertext, "
                "access_expires_at, refresh_expires_at, status, direct_daily_cap, inbox_daily_cap, created_at, "
                "updated_at) VALUES ('old', 'open-old', '[]', 'a', 'r', :t, :t, 'active', 15, 5, :t, :t)"),
                {"t": "2026-01-01 00:00:00"})
        assert ledger.current_revision() == "0001"
        assert ledger.migrate() is True
        assert ledger.current_revision() == ledger.head_revision()
        (account,) = ledger.list_accounts()
        assert account.name == "old" and account.removed_at is None
        with ledger.engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0001")
            assert "removed_at" not in {c["name"] for c in sa.inspect(connection).get_columns("accounts")}
