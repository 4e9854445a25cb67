from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from sandbox import free_port
from ledger import DatabaseUnavailable, Ledger
from ledger._models import Base
from deployments.cli import build_app
from tiktok_pipeline.settings import load_settings

LEDGER_TABLES = {"accounts", "posts", "post_events", "alembic_version"}


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_first_use_migrates_an_empty_database_and_reruns_are_no_ops(database_url: str) -> None:
    with Ledger(database_url, migrate=False) as ledger:
        assert ledger.current_revision() is None
        assert _tables(database_url) == set()
        assert ledger.migrate() is True
        assert ledger.current_revision() == ledger.head_revision() is not None
        assert ledger.migrate() is False
    with Ledger(database_url) as again:  # automatic migration on construction, now a no-op
        assert again.current_revision() == again.head_revision()
    assert _tables(database_url) == LEDGER_TABLES


def test_concurrent_first_use_migrates_once(database_url: str) -> None:
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            Ledger(database_url).close()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [
            Ledger.head_revision()
        ]
    engine.dispose()


def test_models_and_migrations_agree(ledger: Ledger) -> None:
    with ledger.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_default_sqlite_file_goes_under_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIKTOK_PIPELINE_DATABASE_URL", raising=False)
    settings = load_settings(data_dir=tmp_path / "not" / "yet")
    with Ledger.from_settings(settings) as ledger:
        assert ledger.current_revision() == ledger.head_revision()
    assert (tmp_path / "not" / "yet" / "ledger.sqlite3").is_file()


def test_unreachable_postgres_is_a_retryable_typed_error() -> None:
    port = free_port()  # nobody listens there
    with pytest.raises(DatabaseUnavailable) as caught:
        Ledger(f"postgresql+psycopg://postgres@127.0.0.1:{port}/ledger")
    assert caught.value.retryable
    assert f"127.0.0.1:{port}" in str(caught.value)


def test_cli_db_upgrade_and_current(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_DATABASE_URL", database_url)
    app = build_app()
    runner = CliRunner()
    head = Ledger.head_revision()

    before = runner.invoke(app, ["db", "current"])
    assert before.exit_code == 0, before.output
    assert "(empty database)" in before.output and "db upgrade" in before.output

    first = runner.invoke(app, ["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert f"upgraded to revision {head}" in first.output
    second = runner.invoke(app, ["db", "upgrade"])
    assert f"already at revision {head}" in second.output

    after = runner.invoke(app, ["db", "current"])
    assert f"revision {head}, head {head} (up to date)" in after.output
