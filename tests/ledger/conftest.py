"""Ledger fixtures: every `ledger` test runs on SQLite (a file in tmp_path) and on the machine's PostgreSQL
(a throwaway database per test), skipped with the reason when PostgreSQL is unreachable."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from ledger import Ledger, generate_key
from tests.ledger.helpers import SteppingClock

POSTGRES_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin DSN of a reachable PostgreSQL (the skip is cached for the session)."""
    try:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as connection:
            connection.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432 as user postgres (trust auth): {exc}".strip())
    return POSTGRES_ADMIN_DSN


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A new, empty database, dropped after the test."""
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
