"""Throwaway databases on the machine's PostgreSQL (127.0.0.1:5432, user postgres, trust auth) for the
benchmarks: created empty, dropped with their connections afterwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


def reachable() -> bool:
    try:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as connection:
            connection.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


@contextlib.contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """The name of a new, empty database `<prefix>_<random>`, dropped when the block ends."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
