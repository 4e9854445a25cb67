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
    # Prefect's temporary server gets 20 s to start by default; on a busy 2-core machine it was seen to
    # need more, and the demo then failed before doing anything (a user can still set it lower).
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    from deployments.cli._common import EXIT_FAILED, console, fail, pipeline_errors, typed_errors_without_traceback
    from deployments.demo import run_demo

    with pipeline_errors(), typed_errors_without_traceback():
        published = run_demo(console)
    if not published:
        fail("the demo did not publish to both sandbox accounts (see the results above)", EXIT_FAILED)


def register(app: typer.Typer) -> None:
    app.command()(demo)
