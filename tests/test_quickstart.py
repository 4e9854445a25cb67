"""The README's quick start, run as written: `make demo` exits 0 on embedded defaults, offline.

(`make test`, the other quick-start command, is what CI runs around this very test.)
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.plugins.prefect_server import ROOT, clean_environment


def test_make_demo_publishes_to_both_sandbox_accounts_and_leaves_no_prefect_state(tmp_path: Path) -> None:
    home = tmp_path / "make-up-prefect-home"  # where `make up`'s Prefect keeps its database
    home.mkdir()
    done = subprocess.run(["make", "demo"], cwd=ROOT, env=clean_environment({"PREFECT_HOME": str(home)}),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    rows = re.findall(r"^│ (studio|newsroom) +│ [^│]+│ (\w+) +│", done.stdout, re.MULTILINE)
    assert sorted(rows) == [("newsroom", "published"), ("studio", "published")], done.stdout
    assert "the sandbox received 2 post(s)" in done.stdout
    assert list(home.iterdir()) == []  # the demo's runs and rate limits went to a Prefect home of its own
