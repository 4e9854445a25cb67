"""Ledger fixtures: every `ledger` test runs on SQLite (a file in tmp_path) and on the machine's PostgreSQL
(a throwaway database per test), skipped with the reason when PostgreSQL is unreachable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger import Ledger, generate_key
from tests.ledger.helpers import SteppingClock
from tests.plugins.postgres import throwaway_database


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A new, empty database, dropped after the test."""
    with throwaway_database(postgres_server, "ledger_test") as name:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def encryption_key() -> str:
    return generate_key()


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def ledger(database_url: str, encryption_key: str, clock: SteppingClock) -> Iterator[Ledger]:
    with Ledger(database_url, encryption_key, clock=clock) as instance:
        yield instance
