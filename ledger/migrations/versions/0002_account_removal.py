"""account removal: accounts.removed_at

An account removed with `tiktok-pipeline accounts remove` keeps its row (its posts refer to it and
keep their history) with its tokens erased and `removed_at` set; connecting the name again clears it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 00:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:  # SQLite cannot drop a column in place
        batch.drop_column("removed_at")
