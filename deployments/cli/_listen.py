"""`tiktok-pipeline listen`: turn S3 upload notifications (via SQS) into publish runs."""

from __future__ import annotations

import logging
from typing import Optional

import typer


def listen(
    queue_url: Optional[str] = typer.Option(
        None, "--queue-url", help="SQS queue of the bucket's notifications (default: TIKTOK_PIPELINE_S3_QUEUE_URL)"
    ),
    events_only: bool = typer.Option(
        False, "--events-only",
        help="Only emit s3.object.created Prefect events; a deployment trigger starts the runs",
    ),
    wire_bucket: Optional[str] = typer.Option(
        None, "--wire-bucket",
        help="First create the queue, its dead-letter queue and BUCKET's notification to it (idempotent)",
    ),
) -> None:
    """Long-poll the queue and start publish-s3-object for each new video; SIGTERM/SIGINT stop it
    after the message in hand (see docs/s3-events.md)."""
    import threading

    from prefect.settings import PREFECT_API_URL

    from deployments import listener
    from deployments.cli._common import EXIT_INTERRUPTED, EXIT_USAGE, fail, pipeline_errors
    from tiktok_pipeline.settings import load_settings

    if not PREFECT_API_URL.value():  # Prefect would start a throwaway server that no worker sees
        fail("PREFECT_API_URL is not set: the listener starts runs on your Prefect server")
    # Prefect's root handler shows warnings only; the listener reports each decision at INFO.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    listener.logger.addHandler(handler)
    listener.logger.setLevel(logging.INFO)
    listener.logger.propagate = False
    stop = threading.Event()
    with pipeline_errors(exit_code=EXIT_USAGE):
        settings = load_settings(**({"s3_start_runs": False} if events_only else {}))
        if wire_bucket:
            wiring = listener.wire_bucket(
                wire_bucket, endpoint_url=settings.s3_endpoint_url, region=settings.aws_region,
                max_receives=settings.s3_max_receives, visibility_timeout=settings.s3_visibility_timeout,
            )
            typer.echo(f"s3://{wire_bucket} notifies {wiring.queue_url} (dead letters: {wiring.dead_letter_queue_url})")
            queue_url = queue_url or wiring.queue_url
        if queue_url:
            settings = settings.model_copy(update={"s3_queue_url": queue_url})
        worker = listener.Listener(settings, stop=stop)
    try:
        with listener.stop_on_signals(stop):
            worker.run()
    except KeyboardInterrupt:  # a second signal: SQS delivers the message in hand again
        fail("stopped at once; the message in hand will be delivered again", EXIT_INTERRUPTED)


def register(app: typer.Typer) -> None:
    app.command("listen")(listen)
