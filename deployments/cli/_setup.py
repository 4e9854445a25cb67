"""`tiktok-pipeline setup`: prepare a Prefect server for the deployments of prefect.yaml.

Idempotent: the process work pool (created when missing; its flow runs send heartbeats), the
automation that marks runs whose heartbeats stopped Crashed (created or updated in place), one set of
rate limits per account in the ledger (created or updated), and with --store-encryption-key the
Fernet key as a Secret block. See docs/automations.md.
"""

from __future__ import annotations

from typing import Optional

import typer


def setup(
    work_pool: Optional[str] = typer.Option(
        None, "--work-pool", help="Process work pool the deployments use (default: tiktok-pipeline, as in prefect.yaml)"
    ),
    store_encryption_key: bool = typer.Option(
        False,
        "--store-encryption-key",
        help="Also save TIKTOK_PIPELINE_ENCRYPTION_KEY as the Prefect Secret block tiktok-pipeline-encryption-key, "
        "so workers without the variable can decrypt tokens",
    ),
) -> None:
    """Create the work pool, the crash detection and the per-account rate limits on the Prefect server
    of PREFECT_API_URL."""
    # Imported here so `tiktok-pipeline --help` does not load Prefect.
    from deployments.bootstrap import bootstrap
    from deployments.cli._common import pipeline_errors
    from deployments.names import WORK_POOL_NAME
    from tiktok_pipeline.settings import load_settings

    with pipeline_errors():
        report = bootstrap(load_settings(), work_pool=work_pool or WORK_POOL_NAME, store_key=store_encryption_key)
    for line in report.lines():
        typer.echo(line)
    from deployments.forms import sync_publish_forms  # the connected accounts as the publish form's choices

    for line in sync_publish_forms().lines():
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.command("setup")(setup)
