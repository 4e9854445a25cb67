"""Names the entry points share, in a module that imports nothing (so `make up` can use them
without loading Prefect)."""

from __future__ import annotations

#: The process work pool every deployment of prefect.yaml targets (`work_pool.name` there).
WORK_POOL_NAME = "tiktok-pipeline"
