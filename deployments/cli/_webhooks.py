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
    host: str = typer.Option("127.0.0.1", help="Interface to listen on"),
    port: int = typer.Option(8787, help="Port to listen on (0: any free port)"),
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
    try:
        sock = socket.create_server((host, port))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    bound_host, bound_port = sock.getsockname()[:2]
    if applied:
        typer.echo(f"applied {len(applied)} event(s) stored before: " + "; ".join(o.summary for o in applied))
    typer.echo(f"receiving TikTok's webhooks on http://{bound_host}:{bound_port}{WEBHOOK_PATH}")
    server = uvicorn.Server(uvicorn.Config(receiver_app(services), log_level=log_level))
    server.run(sockets=[sock])


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app, name="webhooks")
