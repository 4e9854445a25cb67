"""The `tiktok-pipeline` command line (Typer + Rich).

Each area registers its commands from its own module so they stay small: media commands in
`deployments.cli._media`, the sandbox in `deployments.cli._sandbox`, the ledger in
`deployments.cli._db`, the demo in `deployments.cli._demo`. Every command reports an error the same
way, through `deployments.cli._common.fail`: `error: <message>` as one line on stderr, exit 2 for input
it refuses, 1 for work that failed, 130 when stopped at once (README "Exit codes"); Typer's own usage
errors are one such line too (`_common.OneLineErrors`). `publish` checks what it can before a Prefect
run starts (`deployments.cli._checks`). `deployments.cli.filters` parses what `posts list` filters on.
"""

from __future__ import annotations

import typer

def _root() -> None:
    """Validate, transcode and publish videos to TikTok through the Content Posting API."""


def version() -> None:
    """Print the installed version."""
    from tiktok_pipeline import __version__

    typer.echo(__version__)


def build_app() -> typer.Typer:
    """The whole command line, every area registered (what `tiktok-pipeline` runs, and what tests invoke)."""
    # Imported here so `tiktok-pipeline --help` stays fast and one broken area cannot hide the rest.
    from deployments.cli import (
        _accounts, _db, _demo, _listen, _media, _photos, _posts, _publish, _sandbox, _setup, _webhooks, _worker,
    )
    from deployments.cli._common import OneLineErrors

    app = typer.Typer(
        cls=OneLineErrors,
        name="tiktok-pipeline",
        help="Validate, transcode and publish videos to TikTok through the Content Posting API.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_root)
    app.command()(version)
    for module in (_media, _publish, _photos, _accounts, _posts, _listen, _webhooks, _worker, _sandbox, _db, _setup, _demo):
        module.register(app)
    return app


def main() -> None:
    """The `tiktok-pipeline` console script (and `python -m deployments.cli`)."""
    build_app()()
