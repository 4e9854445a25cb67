"""`tiktok-pipeline webhooks serve`: receive TikTok's webhooks in the foreground.

TikTok POSTs its Content Posting and authorization events to the callback URL registered for the
app; this serves `deployments.tiktok_webhooks.receiver_app` there (behind the HTTPS endpoint TikTok
calls), over the ledger the workers use. Events stored by an earlier run but not applied (it
stopped between its answer and the ledger) are applied before it starts listening.
"""

from __future__ import annotations

import socket

import typer

webhooks_app = typer.Typer(help="Receive TikTok's webhooks (Content Posting and authorization events).",
                           no_args_is_help=True)


@webhooks_app.command("serve")
def serve(
    host: str = typer.Option(None, help="Interface to listen on [default: TIKTOK_PIPELINE_TIKTOK_WEBHOOKS_HOST]",
                             show_default=False),
    port: int = typer.Option(None, help="Port to listen on, 0: any free port [default: "
                             "TIKTOK_PIPELINE_TIKTOK_WEBHOOKS_PORT]", show_default=False),
    log_level: str = typer.Option("warning", help="uvicorn log level"),
) -> None:
    """Receive TikTok's webhooks on POST /tiktok/webhooks until Ctrl-C."""
    import uvicorn

    from deployments.cli._common import fail, pipeline_errors
    from deployments.tiktok_webhooks import WEBHOOK_PATH, receiver_app
    from publishing.services import Services
    from publishing.tiktok_events import apply_pending
    from tiktok_pipeline.settings import load_settings

    with pipeline_errors():
        settings = load_settings()
        if not settings.client_secret.get_secret_value():
            fail("TIKTOK_PIPELINE_CLIENT_SECRET is not set: TikTok's signatures cannot be checked without it")
        services = Services(settings)
        applied = apply_pending(services)
    host = host if host is not None else settings.tiktok_webhooks_host
    port = port if port is not None else settings.tiktok_webhooks_port
    try:
        sock = socket.create_server((host, port))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    bound_host, bound_port = sock.getsockname()[:2]
    if applied:
        typer.echo(f"applied {len(applied)} event(s) stored before: " + "; ".join(o.summary for o in applied))
    on_applied, events = _prefect_events()
    typer.echo(f"receiving TikTok's webhooks on http://{bound_host}:{bound_port}{WEBHOOK_PATH}")
    typer.echo(events)
    server = uvicorn.Server(uvicorn.Config(receiver_app(services, on_applied=on_applied), log_level=log_level))
    try:
        server.run(sockets=[sock])
    finally:
        if on_applied is not None:
            from prefect.events.worker import EventsWorker

            EventsWorker.drain_all(timeout=10)  # what was applied last reaches Prefect


def _prefect_events():  # -> (OnApplied | None, what it does)
    """A hook emitting one Prefect event per applied webhook, when a Prefect API is configured."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return None, "Prefect events: none (PREFECT_API_URL is not set)"
    from prefect.events import emit_event

    from publishing.tiktok_events import prefect_event

    def emit(stored, outcome) -> None:
        try:
            emit_event(**prefect_event(stored, outcome))
        except Exception as exc:  # the ledger is right already; the event is a notice
            typer.echo(f"could not emit the Prefect event of TikTok {stored.event} ({stored.id}): {exc}", err=True)

    return emit, f"Prefect events: one per webhook applied, to {PREFECT_API_URL.value()}"


@webhooks_app.command("list")
def list_received(
    publish_id: str = typer.Option(None, "--publish-id", help="Only the webhooks about this publish_id"),
    pending: bool = typer.Option(False, "--pending", help="Only those stored but not applied yet"),
    limit: int = typer.Option(20, "--limit", "-n", help="At most this many"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with each raw body) instead of a table"),
) -> None:
    """The webhooks TikTok sent that the receiver stored, newest first, with what applying each did."""
    from rich.table import Table
    from rich.text import Text

    from deployments.cli._common import EXIT_USAGE, console, pipeline_errors, print_json, when
    from deployments.cli._posts import open_ledger
    from deployments.cli.filters import InvalidFilter

    with pipeline_errors(exit_code=EXIT_USAGE):
        if limit < 1:
            raise InvalidFilter(f"--limit must be 1 or more, got {limit}", detail={"limit": limit})
        with open_ledger() as book:
            received = book.received_events(publish_id=publish_id, pending_only=pending, limit=limit, newest_first=True)
    if as_json:
        print_json([event.model_dump(mode="json") for event in received])
        return
    if not received:
        console.print("no TikTok webhooks match")
        return
    table = Table(title="TikTok webhooks received (UTC, newest first)")
    for column in ("id", "received", "event", "publish_id", "applied", "outcome"):
        table.add_column(column, no_wrap=column != "outcome")
    for event in received:
        table.add_row(str(event.id), when(event.received_at), event.event, event.publish_id or "",
                      when(event.applied_at) or "pending", Text(event.outcome or ""))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app, name="webhooks")
