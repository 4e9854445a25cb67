"""Alembic, configured in code: the scripts ship inside the package, no alembic.ini is read."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

#: pg_advisory_xact_lock key serialising migrations of concurrent processes ("tiktok" in ASCII).
_PG_MIGRATION_LOCK = 0x74696B746F6B


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # env.py migrates through this connection (and its open transaction) instead of creating an engine.
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: sa.Engine) -> bool:
    """Bring the schema to head; True when migrations ran. Safe when several processes start at once:
    the check is repeated under a lock (advisory lock on PostgreSQL, the write lock on SQLite)."""
    if current_revision(engine) == head_revision():
        return False
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
        command.upgrade(alembic_config(connection), "head")
    return True
