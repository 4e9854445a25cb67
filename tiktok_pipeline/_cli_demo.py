"""`tiktok-pipeline demo`: the whole pipeline against the local sandbox and S3 (what `make demo` runs)."""

from __future__ import annotations

import typer


def demo() -> None:
    """Publish a generated clip to two sandbox accounts end to end, offline, then clean up."""
    from tiktok_pipeline._cli_common import console
    from tiktok_pipeline._demo import run_demo

    if not run_demo(console):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(demo)
