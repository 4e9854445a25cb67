"""Alembic scripts of the ledger (env.py, versions/); applied by `ledger._migrate`."""
