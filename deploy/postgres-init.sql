-- Run by the postgres image on its first start (deploy/compose.yaml mounts it into
-- /docker-entrypoint-initdb.d/), as POSTGRES_USER: POSTGRES_DB creates Prefect's database, this
-- the ledger's, owned by the same user. The ledger creates its tables itself (Alembic, on first use).
CREATE DATABASE ledger;
