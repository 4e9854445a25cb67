"""How many of each Prefect process `make up` runs, and what they share: one server with its
services on SQLite by default, or Prefect's own scale-out setup (docs/deploy.md, *Scaling out*).

The scale-out shape is Prefect's documented multi-server one, nothing of ours: API servers started
with `--no-services` behind one PostgreSQL database, Prefect's background services (scheduler,
triggers, event persister, ...) as a process of their own, Redis (prefect-redis) carrying events,
the cache, causal ordering, concurrency leases and Docket's task queue between them, and the
migrations run once before any server starts. Workers are spread over the API servers and each
takes at most `worker_limit` flow runs at once, so a burst queues on the server instead of
starting a process per run on one machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from deployments.up.layout import PREFECT_DATABASE_VARIABLE, UpError

#: The Prefect settings of its documented multi-server setup, each pointing at prefect-redis.
REDIS_MODULES = {
    "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
    "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
    "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
}
MAX_WORKERS = 16
WORKER_QUERY_SECONDS = 2.0


def default_worker_limit(cores: int | None = None) -> int:
    """Flow runs one worker runs at once: two per core. A run spends most of its time waiting on
    TikTok (rate limits, uploads, status polls); its transcode is one ffmpeg that uses every core,
    so more runs than this only make transcodes share the cores and add ~250 MB each
    (bench/throughput.py: 0.9-1.15 GiB for a worker running 4)."""
    return 2 * max(1, cores or os.cpu_count() or 1)


def _count(environ: Mapping[str, str], variable: str, default: int, maximum: int) -> int:
    raw = environ.get(variable, "").strip() or str(default)
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise UpError(f"{variable}={raw!r} is not a whole number from 1 to {maximum}")
    return int(raw)


def _ports(environ: Mapping[str, str], variable: str) -> tuple[int, ...]:
    raw = [part.strip() for part in environ.get(variable, "").split(",") if part.strip()]
    if any(not part.isdigit() or not 0 < int(part) < 65536 for part in raw):
        raise UpError(f"{variable}={environ[variable]!r} is not a comma-separated list of TCP ports")
    return tuple(int(part) for part in raw)


@dataclass(frozen=True)
class Topology:
    #: API servers beyond the first (which listens on UP_PREFECT_PORT).
    extra_api_ports: tuple[int, ...] = ()
    #: Redis for Prefect's messaging; None: Prefect's in-memory default (one server process only).
    redis_url: str | None = None
    workers: int = 1
    worker_limit: int = field(default_factory=default_worker_limit)
    #: How often a worker asks for runs (Prefect's default is 10 s): a run queued behind the limit
    #: starts up to this long after a slot frees, so a burst drains in waves this much apart.
    worker_query_seconds: float = WORKER_QUERY_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Topology:
        topology = cls(
            extra_api_ports=_ports(environ, "UP_EXTRA_API_PORTS"),
            redis_url=environ.get("UP_REDIS_URL", "").strip() or None,
            workers=_count(environ, "UP_WORKERS", 1, MAX_WORKERS),
            worker_limit=_count(environ, "UP_WORKER_LIMIT", default_worker_limit(), 1000),
        )
        if topology.extra_api_ports and not topology.redis_url:
            raise UpError("UP_EXTRA_API_PORTS needs UP_REDIS_URL: several API servers share events through Redis")
        database = environ.get(PREFECT_DATABASE_VARIABLE, "")
        if topology.redis_url and not database.startswith("postgresql"):
            raise UpError(f"UP_REDIS_URL needs the Prefect server on PostgreSQL ({PREFECT_DATABASE_VARIABLE}="
                          "postgresql+asyncpg://...): SQLite cannot be shared by several server processes")
        if topology.redis_url and not topology.redis_url.startswith(("redis://", "rediss://")):
            raise UpError(f"UP_REDIS_URL={topology.redis_url!r} is not a redis:// or rediss:// URL")
        return topology

    @property
    def scaled_out(self) -> bool:
        """API servers without services, the services on their own, Redis between them."""
        return self.redis_url is not None

    def prefect_env(self) -> dict[str, str]:
        """What every process of the stack gets on top of the single-server defaults."""
        if not self.scaled_out:
            return {}
        assert self.redis_url is not None
        return {
            **REDIS_MODULES,
            "PREFECT_REDIS_MESSAGING_URL": self.redis_url,
            "PREFECT_SERVER_DOCKET_URL": self.redis_url,
            # Several servers must not race to migrate one database: `up` migrates once, first.
            "PREFECT_API_DATABASE_MIGRATE_ON_START": "false",
        }

    def worker_names(self, first: str) -> list[str]:
        return [first if i == 1 else f"{first}-{i}" for i in range(1, self.workers + 1)]
