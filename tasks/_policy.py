"""How Prefect retries and rate-limits the core: decided by the error hierarchy, nothing else."""

from __future__ import annotations

import math
from typing import Any

from prefect.tasks import exponential_backoff

from tiktok_pipeline.errors import is_retryable
from tiktok_pipeline.settings import load_settings

# Read once, when the worker imports the tasks: Prefect fixes retry options at decoration time.
_SETTINGS = load_settings()
#: Exponential backoff with jitter for retryable steps: by default 10 s, 20 s, 40 s, 80 s (±50 %).
RETRY_DELAYS = exponential_backoff(backoff_factor=_SETTINGS.task_retry_backoff)
RETRY_JITTER = 0.5
RETRIES = _SETTINGS.task_retries


def retry_if_retryable(task: Any, task_run: Any, state: Any) -> bool:
    """`retry_condition_fn` for every task: retry only errors that declare themselves retryable.

    Final and re-auth errors fail the task at once (re-auth is handled by refreshing the token
    inside the step, not by a blind retry).
    """
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and is_retryable(exc)


def retry_options(retries: int = RETRIES) -> dict[str, Any]:
    """Keyword arguments for `@task(...)` of a step that is safe to repeat."""
    return {
        "retries": retries,
        "retry_delay_seconds": RETRY_DELAYS,
        "retry_jitter_factor": RETRY_JITTER,
        "retry_condition_fn": retry_if_retryable,
    }


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
