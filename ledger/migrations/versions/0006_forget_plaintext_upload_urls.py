"""forget plaintext upload URLs of posts whose upload is over

Versions before this one kept TikTok's upload URL, with its upload token (a bearer credential for the
post's bytes), in plaintext in the data of the post's `initialized` event. New ones are stored
encrypted and dropped as the post leaves `initialized`. This removes the plaintext URL from the events
of every post that is no longer `initialized` (nothing may be uploaded to those). A post still
`initialized` keeps its URL so that an upload under way can resume within TikTok's hour; it is dropped
when that post moves on. No schema change.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 15:30:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLAIN_UPLOAD_URL = "upload_url"


def upgrade() -> None:
    bind = op.get_bind()
    events = sa.table("post_events", sa.column("id", sa.Integer), sa.column("post_id", sa.Integer),
                      sa.column("to_state", sa.String), sa.column("data", sa.JSON))
    posts = sa.table("posts", sa.column("id", sa.Integer), sa.column("state", sa.String))
    done = sa.select(posts.c.id).where(posts.c.state != "initialized")
    rows = bind.execute(sa.select(events.c.id, events.c.data)
                        .where(events.c.to_state == "initialized", events.c.post_id.in_(done))).all()
    for event_id, data in rows:
        if isinstance(data, dict) and PLAIN_UPLOAD_URL in data:
            kept = {key: value for key, value in data.items() if key != PLAIN_UPLOAD_URL}
            bind.execute(sa.update(events).where(events.c.id == event_id).values(data=kept))


def downgrade() -> None:
    pass  # a forgotten credential is not brought back
