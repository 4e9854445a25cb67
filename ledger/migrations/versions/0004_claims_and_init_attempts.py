"""claims and init attempts: posts.lease_owner / lease_expires_at, table init_attempts

A runner claims a post with a lease (compare-and-set on the two new columns) before calling TikTok,
and records every init call in `init_attempts` before making it (write-ahead), with the publish_id
committed the moment it arrives. Existing posts start unclaimed and without attempts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 07:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ATTEMPT_OUTCOMES = ("pending", "answered", "failed", "lost")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    # Nullable columns: a plain ALTER TABLE ADD COLUMN on both backends (no SQLite table rebuild).
    op.add_column("posts", sa.Column("lease_owner", sa.String(length=128), nullable=True))
    op.add_column("posts", sa.Column("lease_expires_at", _utc(), nullable=True))
    op.create_table(
        "init_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column(
            "outcome",
            # VARCHAR + CHECK, named like the models' naming convention (ck_<table>_<enum name>).
            sa.Enum(*ATTEMPT_OUTCOMES, name=op.f("ck_init_attempts_init_attempt_outcome"), native_enum=False,
                    create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column("publish_id", sa.String(length=128), nullable=True),
        sa.Column("error_code", sa.String(length=128), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], name=op.f("fk_init_attempts_post_id_posts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_init_attempts")),
        sa.UniqueConstraint("post_id", "number", name=op.f("uq_init_attempts_post_id_number")),
    )
    op.create_index(op.f("ix_init_attempts_publish_id"), "init_attempts", ["publish_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_init_attempts_publish_id"), table_name="init_attempts")
    op.drop_table("init_attempts")
    for column in ("lease_expires_at", "lease_owner"):
        if op.get_bind().dialect.name == "sqlite":
            # Not batch mode: rebuilding `posts` inside the transaction breaks post_events' foreign keys
            # (see 0003). ALTER TABLE ... DROP COLUMN works in place since SQLite 3.35 (Python 3.11 ships newer).
            op.execute(f"ALTER TABLE posts DROP COLUMN {column}")
        else:
            op.drop_column("posts", column)
