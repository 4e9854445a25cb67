"""docs/automations.md, run as written against the `make up` stack: the automations `setup` and
`prefect deploy` create are listed, and the example notification a user adds (the doc's Python file
and the commands that install and remove it) fires when a publish run fails. A local HTTP receiver on
a free port stands in for the webhook; the placeholder URL of the doc is the only thing replaced."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

from deployments.automations import CRASH_AUTOMATION_NAME
from tests.plugins.webhook_receiver import receiver
from tests.plugins.prefect_server import BIN, ROOT, Stack
from tests.stack.docs import Block, blocks
from tests.stack.groups import STACK_GROUP

pytestmark = STACK_GROUP

DOC = ROOT / "docs" / "automations.md"
PLACEHOLDER_URL = "https://hooks.slack.com/services/YOUR/WEBHOOK/URL"
SCRIPT = "notify_failed_publish.py"  # the name the doc tells the user to save the Python block as
EXAMPLE_NAME = "notify on a failed publish"
#: The doc's shell blocks, in order, as they must read (tests/stack/test_docs.py checks that this file
#: runs every command the doc says it runs).
LISTING = "prefect automation ls"
INSTALL = "export NOTIFY_URL=https://hooks.slack.com/services/YOUR/WEBHOOK/URL\npython notify_failed_publish.py"
REMOVE = "python notify_failed_publish.py --remove"


def doc_blocks() -> tuple[list[Block], Block]:
    """(the shell blocks this test runs, the Python file of the example)."""
    found = blocks(DOC)
    shell = [b for b in found if b.is_shell]
    assert all(b.mode == "by" and b.options["targets"] == "tests/stack/test_automations.py" for b in shell), shell
    (script,) = [b for b in found if b.language == "python"]
    return shell, script


def run_shell(stack: Stack, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A doc's shell block in bash, with the stack's environment and the project's venv first on PATH
    (as after `. .venv/bin/activate`)."""
    env = {**stack.env, "PATH": f"{BIN}{os.pathsep}{stack.env.get('PATH', os.defpath)}"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{code}\nexited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def automation_names(stack: Stack) -> list[str]:
    return [a["name"] for a in stack.api.http.post("/automations/filter", json={}).json()]


def test_the_docs_automations_run_and_a_failed_publish_notifies(prefect_stack: Stack, tmp_path: Path) -> None:
    shell, script = doc_blocks()
    assert [b.code for b in shell] == [LISTING, INSTALL, REMOVE]
    listing, install, remove = shell

    # What setup and prefect deploy created.
    listed = run_shell(prefect_stack, listing.code, tmp_path).stdout
    assert "crash runs whose" in listed and "cleanup when a" in listed, listed  # the table wraps long names
    assert {CRASH_AUTOMATION_NAME, "cleanup when a publish run crashed"} <= set(automation_names(prefect_stack))

    (tmp_path / SCRIPT).write_text(script.code + "\n", encoding="utf-8")
    assert install.code.count(PLACEHOLDER_URL) == 1
    with receiver(path="/tiktok-failures") as hook:
        try:
            for _ in range(2):  # run twice, as after an edit: still one automation
                out = run_shell(prefect_stack, install.code.replace(PLACEHOLDER_URL, hook.url), tmp_path).stdout
                assert f"automation {EXAMPLE_NAME!r} created" in out, out
            assert automation_names(prefect_stack).count(EXAMPLE_NAME) == 1

            missing = f"s3://media/missing-{uuid.uuid4().hex[:8]}.mp4"
            run = prefect_stack.create_run("publish-video/publish-video", {"request": {
                "source": missing, "accounts": ["main"], "privacy_level": "SELF_ONLY"}})
            failed = prefect_stack.wait_for_run(run["id"], timeout=240)
            assert failed["state"]["type"] == "FAILED", failed["state"]

            deadline = time.monotonic() + 90
            while not any(missing in d.body.decode() for d in hook.deliveries) and time.monotonic() < deadline:
                time.sleep(0.5)
            (delivery,) = [d for d in hook.deliveries if missing in d.body.decode()]
            text = delivery.event["text"]
            assert text.startswith(f"TikTok publish failed: {failed['name']}\n"), text
            assert failed["state"]["message"] in text, text
            assert f"/runs/flow-run/{run['id']}" in text, text
        finally:
            run_shell(prefect_stack, remove.code, tmp_path)
    assert EXAMPLE_NAME not in automation_names(prefect_stack)
    blocks_left = prefect_stack.api.http.post("/block_documents/filter", json={}).json()
    assert "tiktok-failed-publish" not in {b["name"] for b in blocks_left}
