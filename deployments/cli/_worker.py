"""`tiktok-pipeline worker ARGS...`: `prefect worker start ARGS...` with warm flow-run starts."""

from __future__ import annotations

import typer


def worker(ctx: typer.Context) -> None:
    """Run Prefect's worker (every argument is passed to `prefect worker start`) beside a process that
    has Prefect and the pipeline loaded, so each flow run starts as a fork of it instead of a fresh
    Python (see docs/deploy.md, *Warm starts*). E.g. `tiktok-pipeline worker --pool tiktok-pipeline --limit 4`;
    Prefect's options are listed by `prefect worker start --help`."""
    from deployments.cli._common import fail
    from deployments.warmstart import run_worker

    code = run_worker(list(ctx.args))
    if code != 0:
        fail(f"the Prefect worker exited with {code}", code if code > 0 else 1)


def register(app: typer.Typer) -> None:
    app.command("worker", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(worker)
