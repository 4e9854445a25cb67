"""longer idempotency keys: posts.idempotency_key VARCHAR(128) -> VARCHAR(320)

A post's key is `<the caller's idempotency_key, up to 200 characters>:<account name, up to 64>`:
PostgreSQL refused such keys over 128 characters (SQLite never enforced the length).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 00:00:01

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sqlite_declared_length(old: int, new: int) -> None:
    """Change the declared length in SQLite's stored schema, nothing else.

    SQLite ignores VARCHAR lengths (both are TEXT affinity: not one stored byte changes), and the
    usual table rebuild is impossible here: dropping `posts` inside the migration's transaction
    breaks the foreign keys of post_events, which cannot be switched off in a transaction. This is
    the procedure SQLite documents for schema changes that leave the stored content as it is
    (sqlite.org/lang_altertable.html, "Making Other Kinds Of Table Schema Changes"): edit
    sqlite_schema and bump schema_version in one transaction, then check integrity.
    """
    connection = op.get_bind()
    before, after = f"idempotency_key VARCHAR({old})", f"idempotency_key VARCHAR({new})"
    sql = connection.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'posts'")).scalar_one()
    if before not in sql:
        raise RuntimeError(f"posts table is not as migration 0002 left it (no {before!r} in {sql!r})")
    version = connection.execute(sa.text("PRAGMA schema_version")).scalar_one()
    connection.execute(sa.text("PRAGMA writable_schema = ON"))
    connection.execute(sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'posts'"),
                       {"sql": sql.replace(before, after)})
    connection.execute(sa.text(f"PRAGMA schema_version = {int(version) + 1}"))
    connection.execute(sa.text("PRAGMA writable_schema = OFF"))
    problems = connection.execute(sa.text("PRAGMA integrity_check")).scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"integrity check after changing posts.idempotency_key: {problems}")


def _resize(old: int, new: int) -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_declared_length(old, new)
        return
    op.alter_column("posts", "idempotency_key", existing_type=sa.String(length=old), type_=sa.String(length=new),
                    existing_nullable=False)


def upgrade() -> None:
    _resize(128, 320)


def downgrade() -> None:
    # Refused by PostgreSQL while a longer key is stored: shorten or delete those posts first.
    _resize(320, 128)
