"""initial schema: accounts, posts, post_events

Revision ID: 0001
Revises:
Create Date: 2026-11-22 00:11:47

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POST_STATES = (
    "queued", "media_ready", "initialized", "uploaded", "processing", "published", "sent_to_inbox", "failed",
    "unconfirmed", "discarded",
)


def _enum(table: str, name: str, *values: str) -> sa.Enum:
    # VARCHAR + CHECK, named like the models' naming convention (ck_<table>_<enum name>).
    return sa.Enum(*values, name=op.f(f"ck_{table}_{name}"), native_enum=False, create_constraint=True, length=32)


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("open_id", sa.String(length=128), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=True),
        sa.Column("nickname", sa.String(length=256), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("access_token_ciphertext", sa.Text(), nullable=False),
        sa.Column("refresh_token_ciphertext", sa.Text(), nullable=False),
        sa.Column("access_expires_at", _utc(), nullable=False),
        sa.Column("refresh_expires_at", _utc(), nullable=False),
        sa.Column("status", _enum("accounts", "account_status", "active", "needs_reconnect"), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("direct_daily_cap", sa.Integer(), nullable=False),
        sa.Column("inbox_daily_cap", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_accounts_name")),
        sa.UniqueConstraint("open_id", name=op.f("uq_accounts_open_id")),
    )
    op.create_table(
        "posts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("source_uri", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("caption", sa.Text(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("mode", _enum("posts", "post_mode", "direct", "inbox", "hold"), nullable=False),
        sa.Column("state", _enum("posts", "post_state", *POST_STATES), nullable=False),
        sa.Column("slot_reserved_at", _utc(), nullable=True),
        sa.Column("publish_id", sa.String(length=128), nullable=True),
        sa.Column("post_ids", sa.JSON(), nullable=False),
        sa.Column("share_url", sa.Text(), nullable=True),
        sa.Column("privacy_level", sa.String(length=64), nullable=True),
        sa.Column("error_code", sa.String(length=128), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("published_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_posts_account_id_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posts")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_posts_idempotency_key")),
        sa.UniqueConstraint("publish_id", name=op.f("uq_posts_publish_id")),
    )
    op.create_index(op.f("ix_posts_account_id_slot_reserved_at"), "posts", ["account_id", "slot_reserved_at"])
    op.create_index(op.f("ix_posts_state"), "posts", ["state"])
    op.create_table(
        "post_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("from_state", _enum("post_events", "post_event_from_state", *POST_STATES), nullable=True),
        sa.Column("to_state", _enum("post_events", "post_event_to_state", *POST_STATES), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], name=op.f("fk_post_events_post_id_posts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_post_events")),
    )
    op.create_index(op.f("ix_post_events_post_id"), "post_events", ["post_id"])


def downgrade() -> None:
    op.drop_table("post_events")
    op.drop_table("posts")
    op.drop_table("accounts")
