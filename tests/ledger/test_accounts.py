from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from ledger import (
    AccountConflict,
    AccountNotFound,
    AccountStatus,
    EncryptionKeyInvalid,
    EncryptionKeyMissing,
    Ledger,
    LedgerInputInvalid,
    generate_key,
)
from tests.ledger.helpers import SteppingClock, connect, grant


def _token_columns(ledger: Ledger, name: str) -> tuple[str, str]:
    with ledger.engine.connect() as connection:
        row = connection.execute(
            sa.text("SELECT access_token_ciphertext, refresh_token_ciphertext FROM accounts WHERE name = :name"),
            {"name": name},
        ).one()
    return row[0], row[1]


def _never_called(refresh_token: str) -> object:
    raise AssertionError(f"refresher called with {refresh_token}")


def test_upsert_get_and_list_accounts(ledger: Ledger, clock: SteppingClock) -> None:
    account = ledger.upsert_account("brand", grant(1), username="brand_tt", nickname="Brand")
    assert account.name == "brand" and account.open_id == "open-brand"
    assert account.scopes == ["user.info.basic", "video.publish", "video.upload"]
    assert account.status is AccountStatus.active
    assert account.access_expires_at == clock.now + timedelta(seconds=86_400)
    assert account.access_expires_at.tzinfo is not None
    assert (account.direct_daily_cap, account.inbox_daily_cap) == (15, 5)
    connect(ledger, "agency")
    assert [a.name for a in ledger.list_accounts()] == ["agency", "brand"]
    assert ledger.get_account("brand") == account
    with pytest.raises(AccountNotFound, match="tiktok-pipeline accounts connect ghost"):
        ledger.get_account("ghost")


def test_reconnecting_replaces_tokens_and_reactivates(ledger: Ledger) -> None:
    connect(ledger)
    ledger.mark_needs_reconnect("brand", "auth_removed")
    assert ledger.get_account("brand").status is AccountStatus.needs_reconnect
    again = ledger.upsert_account("brand", grant(7), username="renamed", nickname="Brand")
    assert again.status is AccountStatus.active and again.status_reason is None
    assert again.username == "renamed"
    assert ledger.ensure_fresh_token("brand", _never_called) == (grant(7).access_token, False)  # type: ignore[arg-type]


def test_one_creator_cannot_be_two_accounts(ledger: Ledger) -> None:
    connect(ledger, "brand")
    with pytest.raises(AccountConflict, match="already connected as account 'brand'"):
        ledger.upsert_account("brand-2", grant(2, open_id="open-brand"), username="x")


@pytest.mark.parametrize("name", ["", "-dash-first", "has space", "x" * 65])
def test_bad_account_names_are_refused(ledger: Ledger, name: str) -> None:
    with pytest.raises(LedgerInputInvalid, match="account name"):
        ledger.upsert_account(name, grant(1))


def test_tokens_are_encrypted_at_rest(ledger: Ledger, database_url: str, encryption_key: str) -> None:
    connect(ledger)
    access_ciphertext, refresh_ciphertext = _token_columns(ledger, "brand")
    secrets = (grant(1).access_token, grant(1).refresh_token)
    for ciphertext in (access_ciphertext, refresh_ciphertext):
        assert all(secret not in ciphertext for secret in secrets)
        assert all(secret.split("-", 1)[1] not in ciphertext for secret in secrets)
    if database_url.startswith("sqlite"):
        database_file = Path(database_url.removeprefix("sqlite:///"))
        ledger.close()
        files = (database_file, database_file.with_name(database_file.name + "-wal"))
        raw = b"".join(path.read_bytes() for path in files if path.exists())
        assert b"open-brand" in raw  # the row is there, in the clear where it is not secret...
        assert all(secret.encode() not in raw for secret in secrets)  # ...and the tokens are not


def test_missing_key_is_a_typed_error_naming_the_fix(database_url: str, clock: SteppingClock) -> None:
    with Ledger(database_url, None, clock=clock) as keyless:
        with pytest.raises(EncryptionKeyMissing, match="TIKTOK_PIPELINE_ENCRYPTION_KEY is not set.*db generate-key"):
            connect(keyless)
        assert keyless.list_accounts() == []  # nothing half-written


def test_wrong_key_is_a_typed_error(ledger: Ledger, database_url: str, clock: SteppingClock) -> None:
    connect(ledger)
    with Ledger(database_url, generate_key(), clock=clock) as other_key:
        with pytest.raises(EncryptionKeyInvalid, match="account 'brand'"):
            other_key.ensure_fresh_token("brand", _never_called)  # type: ignore[arg-type]


def test_malformed_key_is_refused_up_front(database_url: str) -> None:
    with pytest.raises(EncryptionKeyInvalid, match="key #2 is not a Fernet key"):
        Ledger(database_url, f"{generate_key()},not-a-key", migrate=False)


def test_key_rotation(ledger: Ledger, database_url: str, encryption_key: str, clock: SteppingClock) -> None:
    connect(ledger)
    old_ciphertexts = _token_columns(ledger, "brand")
    new_key = generate_key()
    with Ledger(database_url, f"{new_key},{encryption_key}", clock=clock) as rotating:
        assert rotating.ensure_fresh_token("brand", _never_called)[0] == grant(1).access_token  # type: ignore[arg-type]
        assert rotating.reencrypt_tokens() == 1
        assert _token_columns(rotating, "brand") != old_ciphertexts
    with Ledger(database_url, new_key, clock=clock) as rotated:
        assert rotated.ensure_fresh_token("brand", _never_called)[0] == grant(1).access_token  # type: ignore[arg-type]


def test_daily_caps_are_configurable_per_account(ledger: Ledger) -> None:
    connect(ledger, "brand")
    connect(ledger, "agency")
    assert ledger.set_daily_caps("brand", direct=3).direct_daily_cap == 3
    assert ledger.get_account("brand").inbox_daily_cap == 5
    assert ledger.get_account("agency").direct_daily_cap == 15
    with pytest.raises(LedgerInputInvalid, match="inbox daily cap must be 0 or more"):
        ledger.set_daily_caps("brand", inbox=-1)
