"""The README and docs/ are true: every shell command in them is run, as written, by a test.

Each ```bash block says how in a comment before it (tests/stack/docs.py); blocks run in the order
of their file, against this session's `make up` stack, with the docs' default addresses replaced by
the stack's (`substitutions`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import free_port
from tests.plugins.prefect_server import BIN, ROOT, Stack
from tests.stack.docs import Block, blocks, substitute
from tests.stack.groups import STACK_GROUP

pytestmark = STACK_GROUP

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ALL_BLOCKS = [block for path in DOCUMENTS for block in blocks(path)]
RUNNABLE = [b for b in ALL_BLOCKS if b.mode in ("run", "fails", "background", "python")]


_free_port = free_port()


def substitutions(stack: Stack) -> dict[str, str]:
    """The docs show `make up`'s default ports and paths; the test session's stack has its own."""
    ports = stack.ports
    return {
        "https://prefect.example.com/api": stack.api_url,
        "127.0.0.1:4200": f"127.0.0.1:{ports.prefect}",
        "127.0.0.1:9400": f"127.0.0.1:{ports.sandbox}",
        "127.0.0.1:9401": f"127.0.0.1:{ports.moto}",
        "127.0.0.1:9403": f"127.0.0.1:{ports.webhooks}",
        # A receiver of its own beside the stack's, on a port nothing else uses.
        "--port 8787": f"--port {_free_port}",
        ".data/up/": f"{stack.state_dir}/",
    }


def test_every_shell_block_says_how_a_test_runs_it() -> None:
    untested = [b.where for b in ALL_BLOCKS if b.is_shell and b.mode is None]
    assert not untested, f"shell blocks without a <!-- test: ... --> directive: {untested}"
    misplaced = [b.where for b in ALL_BLOCKS if b.mode is not None and not b.is_shell
                 and not (b.mode == "python" and b.language == "python")]
    assert not misplaced, f"test directives on blocks that are neither shell nor python: {misplaced}"


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.mode == "by"], ids=lambda b: b.where)
def test_blocks_run_by_other_tests_are_in_those_tests(block: Block) -> None:
    targets = block.options["targets"].split()
    sources = [(ROOT / target).read_text(encoding="utf-8") for target in targets]
    for line in commands(block.code):
        as_argv = ", ".join(f'"{word}"' for word in line.split())  # ["make", "demo"] in a Python test
        assert any(line in source or as_argv in source for source in sources), (
            f"{block.where}: `{line}` is said to be run by {', '.join(targets)}, which do not run it"
        )


def commands(code: str) -> list[str]:
    """The command lines of a block: comments and continuation backslashes folded away."""
    joined = code.replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in joined.splitlines()
            if line.strip() and not line.strip().startswith("#")]


@pytest.fixture(scope="module")
def stack_without_examples_afterwards(prefect_stack: Stack) -> Iterator[Stack]:
    """docs/deploy.md deploys the examples on purpose; they leave the shared stack again afterwards."""
    yield prefect_stack
    flows = {f["id"]: f["name"] for f in prefect_stack.api.http.post("/flows/filter", json={}).json()}
    for deployment in prefect_stack.api.http.post("/deployments/filter", json={}).json():
        if "example" in deployment["tags"]:
            prefect_stack.api.http.delete(f"/deployments/{deployment['id']}").raise_for_status()
            print(f"removed example deployment {flows.get(deployment['flow_id'])}/{deployment['name']}")


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.where)
def test_the_block_runs_as_documented(block: Block, stack_without_examples_afterwards: Stack, tmp_path: Path) -> None:
    prefect_stack = stack_without_examples_afterwards
    code = substitute(block.code, substitutions(prefect_stack))
    expect = block.options.get("expect")
    within = float(block.options.get("within", "0"))
    if block.mode == "background":
        run_in_background(code, prefect_stack, block.options["until"], tmp_path)
        return
    argv = [str(BIN / "python"), "-c", code] if block.mode == "python" else ["bash", "-euo", "pipefail", "-c", code]
    deadline = time.monotonic() + within
    while True:
        done = subprocess.run(argv, cwd=ROOT, env=shell_env(prefect_stack), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=600)
        output = done.stdout + done.stderr
        exit_ok = (done.returncode != 0) if block.mode == "fails" else (done.returncode == 0)
        if exit_ok and (expect is None or expect in output):
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"{block.where} ({block.mode}) exited {done.returncode}"
                                 + (f", without {expect!r} in its output" if expect else "") + f":\n{code}\n---\n{output[-6000:]}"
                                 + _stack_state(prefect_stack))
        time.sleep(3.0)


def _stack_state(stack: Stack) -> str:
    """What the stack holds when a block failed: every post in the ledger and the last lines of the
    worker's and the listener's logs (a failure seen only in full runs is read from these)."""
    posts = stack.run(str(BIN / "tiktok-pipeline"), "posts", "list", "--limit", "50", check=False)
    logs = [f"--- {path.name} (last 40 lines)\n" + "\n".join(path.read_text(errors="replace").splitlines()[-40:])
            for path in (stack.state_dir / "worker.log", stack.state_dir / "listener.log") if path.is_file()]
    return "\n--- the ledger's posts\n" + (posts.stdout + posts.stderr)[-4000:] + "\n" + "\n".join(logs)


def shell_env(stack: Stack) -> dict[str, str]:
    """The stack's environment in a shell whose virtual environment is active (as the docs assume)."""
    return {**stack.env, "VIRTUAL_ENV": str(BIN.parent), "PATH": f"{BIN}{os.pathsep}{stack.env.get('PATH', os.defpath)}"}


def run_in_background(code: str, stack: Stack, until: str, tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    with log.open("wb") as out:
        process = subprocess.Popen(["bash", "-euo", "pipefail", "-c", code], cwd=ROOT, env=shell_env(stack),
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while until not in log.read_text(errors="replace"):
            assert process.poll() is None, f"exited {process.returncode} before {until!r}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no {until!r} within 120 s:\n{log.read_text()}"
            time.sleep(0.5)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
