"""`tiktok-pipeline demo`: the whole pipeline against the local sandbox and S3 (what `make demo` runs)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import typer


def demo() -> None:
    """Publish a generated clip to two sandbox accounts end to end, offline, then clean up."""
    # A Prefect home of its own, removed at exit (after Prefect's temporary server has stopped: atexit
    # runs last what is registered first), so the demo's runs, results and rate limits never show up
    # in `make up`'s .prefect/ or anyone's profile. Set before Prefect is imported: it reads it then.
    home = tempfile.mkdtemp(prefix="tiktok-pipeline-demo-prefect-")
    atexit.register(shutil.rmtree, home, True)
    os.environ["PREFECT_HOME"] = home
    from tiktok_pipeline._cli_common import console
    from tiktok_pipeline._demo import run_demo

    if not run_demo(console):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(demo)
