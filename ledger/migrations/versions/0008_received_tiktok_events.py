"""received TikTok webhooks: table received_tiktok_events

TikTok delivers its webhooks at least once and redelivers for 72 h, with no delivery id: the receiver
stores each one under a dedupe key of its own (SHA-256 hex) before answering 200, then records what
applying it did. Applied events are pruned after the redelivery window, pending ones are kept.
Existing ledgers start with no received events; no other table changes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 10:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "received_tiktok_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("user_openid", sa.String(length=128), nullable=False),
        sa.Column("publish_id", sa.String(length=128), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("received_at", _utc(), nullable=False),
        sa.Column("applied_at", _utc(), nullable=True),
        sa.Column("outcome", sa.String(length=1024), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_received_tiktok_events")),
        sa.UniqueConstraint("key", name=op.f("uq_received_tiktok_events_key")),
    )
    op.create_index(op.f("ix_received_tiktok_events_publish_id"), "received_tiktok_events", ["publish_id"])
    # Pending ones (applied_at IS NULL) for a restarted receiver, applied ones by age for pruning.
    op.create_index(op.f("ix_received_tiktok_events_applied_at_received_at"), "received_tiktok_events",
                    ["applied_at", "received_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_received_tiktok_events_applied_at_received_at"), table_name="received_tiktok_events")
    op.drop_index(op.f("ix_received_tiktok_events_publish_id"), table_name="received_tiktok_events")
    op.drop_table("received_tiktok_events")
