"""Warm starts for flow runs: the pool's flow-run command forks them from a preloaded process.

`tiktok-pipeline worker ARGS...` runs `prefect worker start ARGS...` beside a preloaded process
(`_server`), and `tiktok-pipeline setup` makes the work pool's flow-run command the launcher
(`_launch.py`), which hands each flow run to that process or, without one, starts it the usual way.
"""

from __future__ import annotations

import copy
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deployments.warmstart._launch import SOCKET_VARIABLE
from deployments.warmstart._worker import run_worker

LAUNCHER = Path(__file__).resolve().parent / "_launch.py"


def launch_command(python: str | None = None) -> str:
    """The work pool's flow-run command: the launcher, run by this Python without `site` (fast)."""
    return shlex.join([python or sys.executable, "-S", str(LAUNCHER)])


def with_launch_command(base_job_template: Mapping[str, Any], command: str | None = None) -> dict[str, Any]:
    """The process pool's base job template with the launcher as the default flow-run command.

    A command someone set by hand is kept; an empty one (Prefect's default: `python -m prefect.engine`)
    or an earlier launcher's (another checkout or Python) becomes this one.
    """
    template = copy.deepcopy(dict(base_job_template))
    variable = template.setdefault("variables", {}).setdefault("properties", {}).setdefault(
        "command", {"title": "Command", "anyOf": [{"type": "string"}, {"type": "null"}]})
    current = variable.get("default")
    if current is None or str(current).endswith(LAUNCHER.name):
        variable["default"] = command or launch_command()
    return template


__all__ = ["LAUNCHER", "SOCKET_VARIABLE", "launch_command", "run_worker", "with_launch_command"]
