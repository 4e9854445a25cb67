"""rate windows and deferred slots: table rate_windows, column posts.deferred_to

`rate_windows` holds TikTok's per-token rate limits as sliding windows shared by every worker (one
row per account and endpoint: the times of the calls within the last window); before this, the
limits were Prefect global concurrency limits on the server. `posts.deferred_to` is the daily-cap
slot a deferred post waits for, so that each deferred post of an account gets a slot of its own.
Existing ledgers start with empty windows and no deferred slot recorded.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_windows",
        sa.Column("account_key", sa.String(length=128), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("sent_at", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("account_key", "endpoint", name=op.f("pk_rate_windows")),
    )
    # Nullable: a plain ALTER TABLE ADD COLUMN on both backends (no SQLite table rebuild).
    op.add_column("posts", sa.Column("deferred_to", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # In place, as in 0004: a batch rebuild of `posts` breaks post_events' foreign keys.
        op.execute("ALTER TABLE posts DROP COLUMN deferred_to")
    else:
        op.drop_column("posts", "deferred_to")
    op.drop_table("rate_windows")
