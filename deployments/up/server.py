"""Preparing the Prefect server for `make up`: what `tiktok-pipeline setup` does, `prefect deploy --all`, the form."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

from deployments.names import WORK_POOL_NAME
from deployments.up.layout import Layout, Ports, UpError, api_url
from deployments.up.processes import log_tail


def prepare_prefect(ports: Ports) -> list[str]:
    """What `tiktok-pipeline setup` does: work pool and rate limits (in this process, same code)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.bootstrap import bootstrap
    from tiktok_pipeline.settings import load_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url(ports)}):
        return bootstrap(load_settings(), work_pool=WORK_POOL_NAME).lines()


def migrate(env: Mapping[str, str], layout: Layout) -> None:
    """`prefect server database upgrade -y`, once, before the servers (which do not migrate on start)."""
    log_file = layout.log_file("migrate")
    with log_file.open("wb") as log:
        result = subprocess.run([sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
                                cwd=layout.root, env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise UpError(f"`prefect server database upgrade` failed; end of {log_file}:\n{log_tail(log_file, 40)}")


def deploy(env: Mapping[str, str], layout: Layout) -> None:
    log_file = layout.log_file("deploy")
    with log_file.open("wb") as log:
        result = subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=layout.root, env=dict(env),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
    if result.returncode != 0:
        raise UpError(f"`prefect deploy --all` failed; end of {log_file}:\n{log_tail(log_file, 40)}")


def sync_forms(ports: Ports) -> list[str]:
    """`prefect deploy` rewrote the publish form: offer the connected accounts in it again."""
    from deployments.forms import sync_publish_forms

    return sync_publish_forms(api_url=api_url(ports)).lines()
