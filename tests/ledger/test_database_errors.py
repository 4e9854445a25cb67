"""Database errors never become user-facing messages: whatever the database or its driver refuses leaves
the ledger as a typed LedgerError of one short line (the error's class and the database's one-line
reason), never the statement or its parameters, which go to the `ledger` logger only. On SQLite and
PostgreSQL alike."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from deployments.cli import build_app
from ledger import (
    ConstraintViolated,
    DatabaseFailed,
    DatabaseUrlInvalid,
    Ledger,
    LedgerError,
    LedgerInputInvalid,
    PostState,
)
from tests.ledger.helpers import connect, initialized_post, sha256_of

#: A value no message may quote: it stands for whatever a statement's parameters hold.
MARKER = "param-marker-5f1e"
#: What SQLAlchemy's own message of an error holds and a LedgerError's must not.
STATEMENT_WORDS = ("INSERT", "UPDATE", "SELECT", "[SQL", "[parameters", "sqlalche.me", "%(")


def _assert_short_and_safe(error: LedgerError, *, hidden: tuple[str, ...] = (MARKER,)) -> None:
    message = str(error)
    assert "\n" not in message and len(message) < 400, message
    for word in STATEMENT_WORDS + hidden:
        assert word not in message, f"{word!r} in {message!r}"


def _the_full_error_was_logged(caplog: pytest.LogCaptureFixture, *words: str) -> None:
    records = [r for r in caplog.records if r.name == "ledger" and r.exc_info]
    assert records, "the full error was not logged"
    logged = logging.Formatter().formatException(records[-1].exc_info)
    assert all(word in logged for word in words), logged


@pytest.mark.parametrize(("caption", "what"), [
    (f"a NUL\x00 in {MARKER}", "a NUL character (U+0000) at position 5"),
    (f"a lone surrogate \ud800 in {MARKER}", "a lone surrogate (U+D800) at position 17"),
])
def test_a_caption_no_backend_can_store_is_refused_in_one_line_on_both(ledger: Ledger, caption: str, what: str) -> None:
    """On PostgreSQL a NUL made the INSERT fail, and its text (statement, parameters) became the post's
    message; on SQLite the same caption was stored and published. Now both refuse it alike, up front."""
    connect(ledger)
    with pytest.raises(LedgerInputInvalid) as caught:
        ledger.create_or_get_post("k-nul", account_name="brand", source_uri=f"s3://media/{MARKER}.mp4",
                                  content_sha256=sha256_of("k-nul"), caption=caption)
    assert str(caught.value) == f"the caption contains {what}: the ledger stores no such character"
    assert caught.value.final and caught.value.detail["field"] == "caption"
    _assert_short_and_safe(caught.value)
    assert ledger.list_posts() == []


def test_a_value_the_database_refuses_is_its_class_and_reason_only(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    connect(ledger)
    too_big = 2**64
    caplog.set_level(logging.WARNING, logger="ledger")
    with pytest.raises(LedgerInputInvalid) as caught:
        ledger.set_daily_caps("brand", direct=too_big)
    expected = {
        "postgresql": "the ledger database refused a value: integer out of range (NumericValueOutOfRange)",
        "sqlite": "the ledger database cannot store a value: Python int too large to convert to SQLite INTEGER "
                  "(OverflowError)",
    }
    assert str(caught.value) == expected[ledger.engine.dialect.name]
    _assert_short_and_safe(caught.value, hidden=(str(too_big),))
    assert ledger.get_account("brand").direct_daily_cap == 15  # nothing half-written
    if ledger.engine.dialect.name == "postgresql":  # SQLite's driver refuses it before any statement
        _the_full_error_was_logged(caplog, "UPDATE accounts", str(too_big))


def test_a_constraint_the_database_enforces_is_named_without_the_statement(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    connect(ledger)
    caplog.set_level(logging.INFO, logger="ledger")
    insert = sa.text("INSERT INTO accounts (name, open_id, scopes, access_token_ciphertext, refresh_token_ciphertext, "
                     "access_expires_at, refresh_expires_at, status, direct_daily_cap, inbox_daily_cap, created_at, "
                     "updated_at) VALUES ('brand', :open_id, '[]', '', '', :at, :at, 'active', 1, 1, :at, :at)")
    with pytest.raises(ConstraintViolated) as caught:
        with ledger._database_errors(), ledger.engine.begin() as connection:
            connection.execute(insert, {"open_id": MARKER, "at": ledger.now()})
    reason = {"postgresql": 'duplicate key value violates unique constraint "uq_accounts_name" (UniqueViolation)',
              "sqlite": "UNIQUE constraint failed: accounts.name (IntegrityError)"}[ledger.engine.dialect.name]
    assert str(caught.value) == f"the ledger database refused a write that conflicts with stored data: {reason}"
    _assert_short_and_safe(caught.value)
    _the_full_error_was_logged(caplog, "INSERT INTO accounts", MARKER)


@pytest.mark.postgres
def test_any_other_database_error_is_one_line_too(postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with Ledger(postgres_url) as ledger, pytest.raises(DatabaseFailed) as caught:
        with ledger._database_errors(), ledger.engine.begin() as connection:
            connection.execute(sa.text("SELECT * FROM no_such_table WHERE name = :name"), {"name": MARKER})
    assert str(caught.value).endswith(': relation "no_such_table" does not exist (UndefinedTable)')
    assert "***" in str(caught.value) or "@127.0.0.1" in str(caught.value)  # names the database, no password
    _assert_short_and_safe(caught.value)
    assert not caught.value.retryable


def test_diagnostic_text_quoting_others_is_stored_on_both_backends(ledger: Ledger) -> None:
    """A TikTok error message with a NUL (or a lone surrogate) must not make recording the failure fail:
    the post would never be marked failed on PostgreSQL. Such text is stored with U+FFFD instead."""
    connect(ledger)
    post = initialized_post(ledger, "k-diag")
    failed = ledger.transition(post, PostState.failed, error_code="x\x00" + "c" * 200,
                               error_message="TikTok said \x00 and \ud83d", message="failed: \x00")
    assert failed.state is PostState.failed
    assert failed.error_message == "TikTok said \ufffd and \ufffd"
    assert failed.error_code == "x\ufffd" + "c" * 125 + "…" and len(failed.error_code) == 128
    assert ledger.post_events(post.id)[-1].message == "failed: \ufffd"


@pytest.mark.parametrize(("url", "expected", "secret"), [
    ("foo://user:hunter2@db.example.com/ledger",
     "ledger database foo://user:***@db.example.com/ledger: SQLAlchemy has no database dialect 'foo' "
     "(NoSuchModuleError)", "hunter2"),
    ("postgresql://user:hunter2@127.0.0.1/ledger",
     "ledger database postgresql://user:***@127.0.0.1/ledger: its driver is not installed (ModuleNotFoundError: "
     "No module named 'psycopg2')", "hunter2"),
    ("postgresql+asyncpg://user:hunter2@127.0.0.1/ledger",
     "ledger database postgresql+asyncpg://user:***@127.0.0.1/ledger: postgresql+asyncpg is an asyncio driver",
     "hunter2"),
    ("hunter2 is not a URL", "the ledger database URL is not a SQLAlchemy URL (ArgumentError)", "hunter2"),
])
def test_an_unusable_database_url_is_a_typed_error_without_its_password(url: str, expected: str, secret: str) -> None:
    with pytest.raises(DatabaseUrlInvalid) as caught:
        Ledger(url, migrate=False)
    assert str(caught.value).startswith(expected), str(caught.value)
    assert "sqlite:///PATH or postgresql+psycopg://" in str(caught.value) and caught.value.final
    _assert_short_and_safe(caught.value, hidden=(secret,))


def test_cli_db_current_with_an_unusable_url_prints_one_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_DATABASE_URL", "postgresql://user:hunter2@127.0.0.1/ledger")
    result = CliRunner().invoke(build_app(), ["db", "current"])
    assert result.exit_code != 0 and not isinstance(result.exception, LedgerError | sa.exc.SQLAlchemyError)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ledger database postgresql://user:***@127.0.0.1/ledger: "
                                                   "its driver is not installed"), result.output
    assert "Traceback" not in result.output and "hunter2" not in result.output
