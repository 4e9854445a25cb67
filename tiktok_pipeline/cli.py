"""The `tiktok-pipeline` command line (Typer + Rich).

Each area registers its commands from its own module so they stay small: media commands in
`tiktok_pipeline._cli_media`, the sandbox in `tiktok_pipeline._cli_sandbox`, the ledger in
`tiktok_pipeline._cli_db`, the demo in `tiktok_pipeline._cli_demo`.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="tiktok-pipeline",
    help="Validate, transcode and publish videos to TikTok through the Content Posting API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Validate, transcode and publish videos to TikTok through the Content Posting API."""


@app.command()
def version() -> None:
    """Print the installed version."""
    from tiktok_pipeline import __version__

    typer.echo(__version__)


def _register() -> None:
    # Imported here so `tiktok-pipeline --help` stays fast and one broken area cannot hide the rest.
    from tiktok_pipeline import (
        _cli_accounts,
        _cli_db,
        _cli_demo,
        _cli_listen,
        _cli_media,
        _cli_posts,
        _cli_publish,
        _cli_sandbox,
        _cli_setup,
    )

    for module in (_cli_media, _cli_publish, _cli_accounts, _cli_posts, _cli_listen, _cli_sandbox, _cli_db, _cli_setup, _cli_demo):
        module.register(app)


def main() -> None:
    _register()
    app()


if __name__ == "__main__":
    main()
