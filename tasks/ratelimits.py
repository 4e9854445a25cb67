"""Prefect global concurrency rate limits mirroring TikTok's per-token limits.

One decaying limit per (account open_id, endpoint), so every worker that posts for an account
shares one budget and the pipeline stays under TikTok's figures instead of discovering them as 429s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from prefect.client.orchestration import get_client

from tiktok import TIKTOK_RATE_LIMITS


def rate_limit_name(account_key: str, endpoint: str) -> str:
    """Name of the Prefect global concurrency limit guarding one TikTok endpoint for one account."""
    return f"tiktok:{account_key}:{endpoint}"


def rate_limit_shape(per_minute: int) -> tuple[int, float]:
    """(limit, slot_decay_per_second) that keeps any 60 s window at or under `per_minute`.

    A decaying limit admits a burst of `limit` and then `decay * 60` more per minute, so the worst
    window holds limit + 60 * decay requests: half the budget each way stays under TikTok's figure.
    """
    limit = max(1, math.floor(per_minute / 2))
    return limit, (per_minute - limit) / 60.0


def ensure_rate_limits(account_keys: Iterable[str]) -> list[str]:
    """Create or update the limits of these accounts on the Prefect server; returns their names."""
    names: list[str] = []
    with get_client(sync_client=True) as client:
        for account_key in account_keys:
            for endpoint, per_minute in TIKTOK_RATE_LIMITS.items():
                limit, decay = rate_limit_shape(per_minute)
                name = rate_limit_name(account_key, str(endpoint))
                client.upsert_global_concurrency_limit_by_name(name, limit, slot_decay_per_second=decay)
                names.append(name)
    return names


def delete_rate_limits(account_keys: Iterable[str]) -> None:
    """Drop these accounts' limits (used slots included); they are recreated empty on next use."""
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        for account_key in account_keys:
            for endpoint in TIKTOK_RATE_LIMITS:
                try:
                    client.delete_global_concurrency_limit_by_name(rate_limit_name(account_key, str(endpoint)))
                except ObjectNotFound:
                    pass
