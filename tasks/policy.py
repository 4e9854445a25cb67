"""How Prefect retries the core's steps: decided by the error hierarchy and the run's settings.

Prefect fixes retry options when a task is decorated, and importing this module reads no settings:
the tasks are decorated with the settings' defaults (`Settings` field defaults, never the
environment), and a flow applies the settings of its run when it composes the steps:

    preflight_ = with_retries(preflight, settings)     # task_retries / task_retry_backoff of this run
    preflight_(request, return_state=True)

A step with a retry count of its own (`retry_options(retries=1)`) keeps that count and takes the
run's backoff.
"""

from __future__ import annotations

from typing import Any, TypeVar

from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from tiktok_pipeline.errors import is_retryable
from tiktok_pipeline.settings import Settings

#: Retries and first delay (s) of a retryable step until a run applies its settings: the documented defaults.
DEFAULT_RETRIES: int = Settings.model_fields["task_retries"].default
DEFAULT_BACKOFF: float = Settings.model_fields["task_retry_backoff"].default
RETRY_JITTER = 0.5

T = TypeVar("T")

#: Every task of the pipeline: no Prefect result cache and no result files. What a run repeats is the
#: ledger's decision (claims and write-ahead attempts: exactly once), never a cached task result; and
#: a flow with persist_result=True would otherwise hash every task's inputs and source code and
#: write a result file per task, CPU spent in every run for nothing.
STEP_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


def retry_if_retryable(task: Any, task_run: Any, state: Any) -> bool:
    """`retry_condition_fn` for every task: retry only errors that declare themselves retryable.

    Final and re-auth errors fail the task at once (re-auth is handled by refreshing the token
    inside the step, not by a blind retry). A task with this condition retries the run's
    `task_retries` times once a flow applies `with_retries`.
    """
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and is_retryable(exc)


def retry_if_retryable_own_count(task: Any, task_run: Any, state: Any) -> bool:
    """The same condition for a step with a retry count of its own (`with_retries` leaves the count alone).

    A function of its own because Prefect runs only plain functions as retry conditions.
    """
    return retry_if_retryable(task, task_run, state)


def retry_delays(backoff: float) -> Any:
    """Exponential backoff with jitter: by default 10 s, 20 s, 40 s, 80 s (±50 %)."""
    return exponential_backoff(backoff_factor=backoff)


def retry_options(retries: int | None = None) -> dict[str, Any]:
    """Keyword arguments for `@task(...)` of a step that is safe to repeat.

    Without `retries` the step takes the run's `task_retries` once a flow applies `with_retries`
    (until then the setting's default); with it, the step keeps that count.
    """
    return {
        **STEP_OPTIONS,
        "retries": DEFAULT_RETRIES if retries is None else retries,
        "retry_delay_seconds": retry_delays(DEFAULT_BACKOFF),
        "retry_jitter_factor": RETRY_JITTER,
        "retry_condition_fn": retry_if_retryable if retries is None else retry_if_retryable_own_count,
    }


def with_retries(task: T, settings: Settings) -> T:
    """`task` with this run's retry settings (task_retries, task_retry_backoff); a task not decorated
    with `retry_options` is returned as it is."""
    condition = getattr(task, "retry_condition_fn", None)
    if condition is retry_if_retryable:
        retries = settings.task_retries
    elif condition is retry_if_retryable_own_count:
        retries = task.retries  # type: ignore[attr-defined]
    else:
        return task
    return task.with_options(retries=retries, retry_delay_seconds=retry_delays(settings.task_retry_backoff))  # type: ignore[attr-defined]
