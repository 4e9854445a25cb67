"""Retry options: decorated with the settings' defaults, the run's settings applied when a flow composes."""

from __future__ import annotations

import os
import subprocess
import sys

from tiktok_pipeline.settings import Settings


def test_importing_the_tasks_reads_no_settings() -> None:
    """A fresh process with other retry settings in its environment still decorates with the defaults."""
    env = os.environ | {"TIKTOK_PIPELINE_TASK_RETRIES": "7", "TIKTOK_PIPELINE_TASK_RETRY_BACKOFF": "3"}
    code = "from tasks.publishing import preflight; print(preflight.retries, preflight.retry_delay_seconds[0])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == [str(Settings.model_fields["task_retries"].default), "10.0"]


def test_with_retries_applies_the_runs_settings_and_keeps_own_counts() -> None:
    from tasks.policy import with_retries
    from tasks.publishing import init_post, preflight, prepare_media

    settings = Settings(task_retries=6, task_retry_backoff=1.5)
    step = with_retries(preflight, settings)
    assert step.retries == 6 and step.retry_delay_seconds == [1.5, 3.0, 6.0, 12.0, 24.0, 48.0]
    assert step.name == preflight.name and step.fn is preflight.fn
    transcode = with_retries(prepare_media, settings)
    assert transcode.retries == 1 and transcode.retry_delay_seconds == [1.5]  # its own count, the run's backoff
    assert with_retries(init_post, settings) is init_post  # never retried
    assert with_retries(preflight, Settings(task_retries=0)).retries == 0


def test_no_task_caches_or_persists_its_result() -> None:
    """The ledger decides what a run repeats: no task may take a cached result instead of running, or
    spend a run's CPU hashing its inputs and writing a result file (the flows persist theirs)."""
    import importlib

    from prefect import Task
    from prefect.cache_policies import NO_CACHE

    from tasks.policy import with_retries

    found = []
    for name in ("tasks.publishing", "tasks.maintenance", "tasks.notify"):
        module = importlib.import_module(name)
        found += [value for value in vars(module).values() if isinstance(value, Task)]
    assert len(found) >= 15, [task.name for task in found]
    for task in found:
        for step in (task, with_retries(task, Settings(task_retries=3))):
            assert step.cache_policy is NO_CACHE and step.persist_result is False, task.name
