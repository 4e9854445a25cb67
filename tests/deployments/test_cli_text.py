"""`tiktok-pipeline publish` with text TikTok or the ledger must not get: exit 2 and one `error:` line naming the
field, the character (U+XXXX) and its position, before anything is fetched, recorded or run.

In-process with Typer's CliRunner (a NUL can be passed there, not in a real argv), and once as a real
process with the real argv a shell builds from `--caption $'\\x1b[31mred'`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployments.cli import build_app
from tests.deployments.helpers import one_error_line

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A source that exists, and a data dir of the test's own that nothing may create."""
    monkeypatch.setenv("TIKTOK_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\0" * 1024)
    return path


def publish(source: Path | str, *options: str):
    return runner.invoke(build_app(), ["publish", str(source), "-a", "main", "--privacy", "SELF_ONLY", *options])


REFUSED = {
    "ESC colour sequence": (["--caption", "\x1b[31mred"],
                            "caption: U+001B (ESCAPE) at character 1: control characters other than newline and tab "
                            "are not allowed"),
    "right-to-left override": (["--caption", "Sale ends \u202e5pm"],
                               "caption: U+202E (RIGHT-TO-LEFT OVERRIDE) at character 11: bidirectional embeddings, "
                               "overrides and isolates (U+202A-U+202E, U+2066-U+2069) are not allowed"),
    "NUL": (["--caption", "before\x00after"], "caption: U+0000 (NULL) at character 7"),
    "carriage return": (["--caption", "line one\r\nline two"], "caption: U+000D (CARRIAGE RETURN) at character 9"),
    "C1 control": (["--caption", "\x9b31m"], "caption: U+009B (C1 CONTROL) at character 1"),
    "several": (["--caption", "\x1b[1m\x1b[0m"], "caption: U+001B (ESCAPE) at character 1: control characters other "
                                                 "than newline and tab are not allowed (1 more refused character follows)"),
    "isolate in an account name": (["-a", "\u2067brand"], "accounts.1: account name: U+2067 (RIGHT-TO-LEFT ISOLATE) at "
                                                          "character 1"),
    "account name with a path": (["-a", "../evil"], "accounts.1: account name '../evil' is not valid: use 1-64 letters"),
    "tab in the idempotency key": (["--idempotency-key", "launch\t1"],
                                   "idempotency_key: U+0009 (CHARACTER TABULATION) at character 7: control characters "
                                   "(newline and tab included) are not allowed"),
}


@pytest.mark.parametrize("options, reason", REFUSED.values(), ids=REFUSED.keys())
def test_refused_text_exits_2_with_one_line_naming_it(options: list[str], reason: str, clip: Path) -> None:
    result = publish(clip, *options)
    line = one_error_line(result, 2)
    assert line.startswith(f"error: invalid request: {reason}"), line
    assert "\x1b" not in result.output and "\u202e" not in result.output  # never echoed back to the terminal
    assert not (clip.parent / "data").exists()  # nothing recorded, fetched or run


def test_a_nul_in_the_source_is_refused_before_it_reaches_the_file_system(clip: Path) -> None:
    line = one_error_line(publish(f"{clip}\x00.mp4"), 2)
    assert line.startswith(f"error: invalid request: source: U+0000 (NULL) at character {len(str(clip)) + 1}: "
                           "a NUL character cannot be part of a path, a URL or an S3 key"), line


def test_the_real_command_line_refuses_an_escape_sequence(clip: Path) -> None:
    """What `tiktok-pipeline publish clip.mp4 -a main --caption $'\\x1b[31mred'` does in a shell."""
    environment = {**os.environ, "TIKTOK_PIPELINE_DATA_DIR": str(clip.parent / "data")}
    argv = [sys.executable, "-m", "deployments.cli", "publish", str(clip), "-a", "main", "--privacy", "SELF_ONLY"]
    for caption, reason in [("\x1b[31mred", "caption: U+001B (ESCAPE) at character 1"),
                            ("\u202etxt.exe", "caption: U+202E (RIGHT-TO-LEFT OVERRIDE) at character 1")]:
        done = subprocess.run([*argv, "--caption", caption], capture_output=True, text=True, cwd=ROOT, env=environment,
                              timeout=120)
        assert done.returncode == 2, (done.stdout, done.stderr)
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"error: invalid request: {reason}: "), line
        assert "Traceback" not in done.stdout + done.stderr and "\x1b" not in done.stdout + done.stderr
