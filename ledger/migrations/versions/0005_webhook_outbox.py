"""webhook outbox: table webhook_deliveries

Every webhook delivery (one event for one receiver) is stored before it is first tried and kept until
its receiver answered 2xx: `cleanup` redelivers the stored body, with the same event id, for 24 h.
The receiver's URL is not stored, only its SHA-256 and its scheme and host. Existing ledgers start
with an empty outbox; no other table changes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 15:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DELIVERY_STATUSES = ("pending", "delivered", "given_up")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=True),
        sa.Column("receiver", sa.String(length=64), nullable=False),
        sa.Column("receiver_label", sa.String(length=256), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "status",
            # VARCHAR + CHECK, named like the models' naming convention (ck_<table>_<enum name>).
            sa.Enum(*DELIVERY_STATUSES, name=op.f("ck_webhook_deliveries_webhook_delivery_status"),
                    native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("next_attempt_at", _utc(), nullable=False),
        sa.Column("leased_until", _utc(), nullable=True),
        sa.Column("last_attempt_at", _utc(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", _utc(), nullable=True),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], name=op.f("fk_webhook_deliveries_post_id_posts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("event_id", "receiver", name=op.f("uq_webhook_deliveries_event_id_receiver")),
    )
    op.create_index(op.f("ix_webhook_deliveries_post_id"), "webhook_deliveries", ["post_id"])
    op.create_index(op.f("ix_webhook_deliveries_status_next_attempt_at"), "webhook_deliveries",
                    ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_deliveries_status_next_attempt_at"), table_name="webhook_deliveries")
    op.drop_index(op.f("ix_webhook_deliveries_post_id"), table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
