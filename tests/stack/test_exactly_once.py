"""Exactly once, as users run it: real `tiktok-pipeline publish` processes against the `make up` stack
(Prefect server, SQLite ledger, sandbox TikTok over loopback), run together and killed with SIGKILL.

What is asserted comes from the sandbox's own inspection endpoint: how many posts TikTok was asked
for, and which received bytes. The invariant: exactly one publish_id per request ever receives bytes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.plugins.prefect_server import BIN, ROOT, Stack

SAMPLE = "s3://media/samples/sample.mp4"
CHUNK = 5 * 1024 * 1024


def _posts_titled(stack: Stack, caption: str) -> list[dict[str, Any]]:
    return [p for p in stack.sandbox_posts() if (p.get("post_info") or {}).get("title") == caption]


def _publish_argv(source: str, caption: str) -> list[str]:
    return [str(BIN / "tiktok-pipeline"), "publish", source, "--account", "main", "--caption", caption,
            "--privacy", "SELF_ONLY"]


def _start(stack: Stack, argv: list[str], **env: str) -> subprocess.Popen[str]:
    # Its own process group: SIGKILL takes the CLI and its ffmpeg children, as a killed worker would.
    return subprocess.Popen(argv, cwd=ROOT, env={**stack.env, **env}, stdin=subprocess.DEVNULL, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _ledger_posts(stack: Stack, caption: str) -> list[dict[str, Any]]:
    listed = json.loads(stack.cli("posts", "list", "--json").stdout)
    return [p for p in listed if p["caption"] == caption]


def test_the_same_request_from_three_processes_at_once_posts_once(prefect_stack: Stack) -> None:
    caption = f"three at once {uuid.uuid4().hex[:8]}"
    runs = [_start(prefect_stack, _publish_argv(SAMPLE, caption)) for _ in range(3)]
    outputs = [run.communicate(timeout=600)[0] for run in runs]

    # Every process said what happened, and each ended well: one posted, the others reported its outcome.
    assert [run.returncode for run in runs] == [0, 0, 0], "\n\n".join(outputs)
    assert all("published" in output for output in outputs), "\n\n".join(outputs)
    posts = _posts_titled(prefect_stack, caption)
    assert len(posts) == 1, posts  # one init: the other two runners waited for the lease holder
    assert posts[0]["received_bytes"] == posts[0]["video_size"]
    (post,) = _ledger_posts(prefect_stack, caption)
    assert post["state"] == "published" and post["publish_id"] == posts[0]["publish_id"]


def test_killed_mid_upload_the_rerun_resumes_the_same_publish_id(prefect_stack: Stack, big_compliant_clip: Path) -> None:
    caption = f"killed mid-upload {uuid.uuid4().hex[:8]}"
    sandbox = prefect_stack.sandbox_url
    # The chunks after the first wait 4 s at the upload host: the run is killed while one is on its way.
    httpx.post(f"{sandbox}/_sandbox/faults", json={"endpoint": "upload", "kind": "latency", "latency_ms": 4000,
                                                   "times": 2}, timeout=10).raise_for_status()
    argv = _publish_argv(str(big_compliant_clip), caption)  # two or more 5 MiB chunks
    # A 15 s claim instead of the default 2 min: the re-run takes over from the dead run sooner.
    first = _start(prefect_stack, argv, TIKTOK_PIPELINE_CHUNK_SIZE=str(CHUNK), TIKTOK_PIPELINE_CLAIM_LEASE="15")
    deadline = time.monotonic() + 300
    try:
        while not ((posts := _posts_titled(prefect_stack, caption)) and posts[0]["received_bytes"] >= CHUNK):
            assert first.poll() is None, first.communicate()[0]
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.2)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    (killed,) = _posts_titled(prefect_stack, caption)
    assert 0 < killed["received_bytes"] < killed["video_size"]
    httpx.delete(f"{sandbox}/_sandbox/faults", timeout=10).raise_for_status()

    # The same request again: it waits for the dead run's lease to lapse, then resumes its publish_id.
    again = prefect_stack.run(*argv, timeout=600, TIKTOK_PIPELINE_CHUNK_SIZE=str(CHUNK), TIKTOK_PIPELINE_CLAIM_LEASE="15")
    assert "published" in again.stdout, again.stdout + again.stderr
    posts = _posts_titled(prefect_stack, caption)
    assert [p["publish_id"] for p in posts] == [killed["publish_id"]]  # no second init
    assert posts[0]["received_bytes"] == posts[0]["video_size"] and posts[0]["status"] == "PUBLISH_COMPLETE"
    (post,) = _ledger_posts(prefect_stack, caption)
    assert post["state"] == "published" and post["publish_id"] == killed["publish_id"]
