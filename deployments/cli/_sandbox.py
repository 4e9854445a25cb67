"""`tiktok-pipeline sandbox`: run the local TikTok emulator in the foreground.

Without --config it runs `sandbox.SandboxConfig()`: client key `sbx_client_key`, secret
`sbx_client_secret`, a desktop app (PKCE, localhost redirects) and two test creators, the public
`studio_main` (10 min videos) and the private `private_creator` (3 min, duet/stitch disabled).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def sandbox(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on"),
    port: int = typer.Option(8000, help="Port to listen on (0: any free port)"),
    config: Optional[Path] = typer.Option(
        None, "--config", exists=True, dir_okay=False, help="JSON or YAML file with SandboxConfig fields"
    ),
    unaudited: bool = typer.Option(False, "--unaudited", help="Emulate an app that has not passed TikTok's audit"),
    processing_delay: Optional[float] = typer.Option(None, help="Seconds from last byte to final status"),
    moderation_delay: Optional[float] = typer.Option(None, help="Seconds until a public post gets its post id"),
    verified_url_prefix: list[str] = typer.Option(
        [], "--verified-url-prefix", help="URL prefix accepted for PULL_FROM_URL (repeatable)"
    ),
    webhook_url: Optional[str] = typer.Option(
        None, "--webhook-url", help="Send TikTok's webhooks here (https, or http on loopback), as the portal's callback URL"
    ),
    log_level: str = typer.Option("info", help="uvicorn log level"),
) -> None:
    """Run the TikTok sandbox (API, OAuth, authorize page, upload host) until Ctrl-C."""
    from sandbox import SandboxConfig, SandboxError, create_app, load_config, pipeline_env
    from sandbox import base_url_of, bind_socket, uvicorn_server

    from deployments.cli._common import fail

    overrides: dict[str, object] = {}
    if unaudited:
        overrides["unaudited"] = True
    if processing_delay is not None:
        overrides["processing_delay"] = processing_delay
    if moderation_delay is not None:
        overrides["moderation_delay"] = moderation_delay
    if verified_url_prefix:
        overrides["verified_url_prefixes"] = verified_url_prefix
    if webhook_url is not None:  # part of the startup config: a reset keeps it
        overrides["webhook_url"] = webhook_url
    try:
        sandbox_config = load_config(config, **overrides) if config else SandboxConfig(**overrides)
        sock = bind_socket(host, port)
    except (SandboxError, ValueError) as exc:
        fail(str(exc))
    base_url = base_url_of(sock)
    typer.echo(f"TikTok sandbox listening on {base_url}")
    typer.echo("Point the pipeline at it with:")
    for name, value in pipeline_env(base_url, sandbox_config).items():
        typer.echo(f"{name}={value}")
    users = ", ".join(f"{c.username} ({c.open_id})" for c in sandbox_config.creators)
    typer.echo(f"Test users (pick one with sandbox_user=... on the authorize URL): {users}")
    uvicorn_server(create_app(sandbox_config), log_level=log_level).run(sockets=[sock])


def register(app: typer.Typer) -> None:
    app.command("sandbox")(sandbox)
