"""Fixtures: the machine's PostgreSQL (127.0.0.1:5432, user postgres, trust auth) and throwaway databases.

Tests that need it skip with the reason when no PostgreSQL answers; CI has one, so there they run.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg
import pytest

POSTGRES_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


def _unreachable_reason() -> str | None:
    try:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as connection:
            connection.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        return f"PostgreSQL not reachable at 127.0.0.1:5432 as user postgres (trust auth): {exc}".strip()
    return None


def postgres_reachable() -> bool:
    return _unreachable_reason() is None


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin DSN of a reachable PostgreSQL (the skip is cached for the session)."""
    if reason := _unreachable_reason():
        pytest.skip(reason)
    return POSTGRES_ADMIN_DSN


@contextlib.contextmanager
def throwaway_database(admin_dsn: str, prefix: str) -> Iterator[str]:
    """A new, empty database named `<prefix>_<random>`, dropped (connections and all) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
