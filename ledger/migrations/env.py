"""Alembic environment of the ledger. Runs only through `ledger._migrate`, which hands over a connection
(inside the transaction that holds the migration lock).

New revision after changing ledger/_models.py (from the project root; review the generated file):
    python -c "import sqlalchemy as sa; from alembic import command; from ledger._migrate import alembic_config
    with sa.create_engine('sqlite:////tmp/ledger-dev.sqlite3').begin() as c:
        command.upgrade(alembic_config(c), 'head'); command.revision(alembic_config(c), 'what changed', autogenerate=True)"
"""

from __future__ import annotations

from alembic import context

from ledger._models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things in place
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
