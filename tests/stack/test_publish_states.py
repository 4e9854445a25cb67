"""Run states that tell the truth, on the `make up` stack: deployment runs picked up by a real process
worker, read back through the REST API the UI uses. A post the creator refuses makes the run FAILED
with the reason in its state message (its result still readable by another process); a good post
makes it COMPLETED with its run table and its post artifact; publish-s3-object concludes the same way.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

import boto3

from deployments import up
from tests.plugins.prefect_server import Stack
from tests.stack.groups import STACK_GROUP

pytestmark = STACK_GROUP

SAMPLE = "s3://media/samples/sample.mp4"
#: Reads a flow run's result the way another pipeline's process does (Prefect client, shared result storage).
READ_RESULT = """
import json, sys
from uuid import UUID
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as client:
    state = client.read_flow_run(UUID(sys.argv[1])).state
print(json.dumps([r.model_dump(mode="json") for r in state.result(raise_on_failure=False)]))
"""


def _publish(stack: Stack, **request: Any) -> dict[str, Any]:
    run = stack.create_run("publish-video/publish-video", {"request": {"source": SAMPLE, **request}})
    return stack.wait_for_run(run["id"])


def _results(stack: Stack, flow_run_id: str) -> list[dict[str, Any]]:
    done = stack.run(sys.executable, "-c", READ_RESULT, flow_run_id)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_post_the_creator_refuses_ends_failed_with_the_reason_and_a_readable_result(prefect_stack: Stack) -> None:
    caption = f"refused {uuid.uuid4().hex[:8]}"
    run = _publish(prefect_stack, accounts=["private"], privacy_level="PUBLIC_TO_EVERYONE", caption=caption)
    state = run["state"]
    assert state["type"] == "FAILED", state
    assert state["message"].startswith("1 of 1 account not posted — private: privacy PUBLIC_TO_EVERYONE is not available"), state
    assert "SELF_ONLY" in state["message"]  # the options the creator does offer
    assert run["name"] == "sample.mp4 → private"
    (result,) = _results(prefect_stack, run["id"])
    assert result["account"] == "private" and result["state"] == "failed" and result["error_code"] == "PrivacyNotAllowed"
    # The history has it too, as `posts list --status failed` shows it.
    listed = json.loads(prefect_stack.cli("posts", "list", "--status", "failed", "--json").stdout)
    assert [p["id"] for p in listed if p["caption"] == caption] == [result["post_id"]]


def test_a_good_post_ends_completed_with_its_table_and_post_artifact(prefect_stack: Stack) -> None:
    caption = f"stack ok {uuid.uuid4().hex[:8]}"
    run = _publish(prefect_stack, accounts=["main"], privacy_level="SELF_ONLY", caption=caption)
    assert run["state"]["type"] == "COMPLETED", run["state"]
    assert run["state"]["message"] == "1 account done — main: published"
    assert run["name"] == "sample.mp4 → main"
    artifacts = {a["key"]: a for a in prefect_stack.api.artifacts(run["id"]) if a["key"]}
    (row,) = json.loads(artifacts["publish-results"]["data"])
    assert row["account"] == "main" and row["nickname"] == "Studio Main" and row["state"] == "published"
    assert row["privacy"] == "SELF_ONLY" and row["publish_id"].startswith("v_pub_")
    assert all(isinstance(row[f"{step} s"], float) for step in ("ingest", "transcode", "init", "upload", "poll"))
    post = artifacts["post-main"]
    assert row["publish_id"] in post["data"] and "SELF_ONLY" in post["data"] and "**published**" in post["data"]
    assert [p["post_info"]["title"] for p in prefect_stack.sandbox_posts()].count(caption) == 1
    # The worker `make up` starts is `tiktok-pipeline worker`: the run was forked from its preloaded process.
    worker_log = prefect_stack.log_dir / "worker.log"
    assert f"warm start: flow run {run['id']} started in pid" in worker_log.read_text(encoding="utf-8")
    deadline = time.monotonic() + 60  # the process ends (and is reaped) a moment after its run does
    while f"warm start: flow run {run['id']} (pid" not in worker_log.read_text(encoding="utf-8"):
        assert time.monotonic() < deadline, "the forked flow-run process did not end"
        time.sleep(0.5)


def test_a_publish_s3_object_run_a_creator_refuses_ends_failed(prefect_stack: Stack) -> None:
    s3 = boto3.client("s3", endpoint_url=f"http://{up.HOST}:{prefect_stack.ports.moto}", region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    key = f"refused/{uuid.uuid4().hex[:8]}.mp4"  # outside incoming/: the listener leaves it to this test
    s3.copy_object(Bucket="media", Key=key, CopySource={"Bucket": "media", "Key": "samples/sample.mp4"},
                   MetadataDirective="REPLACE",
                   Metadata={"tiktok-accounts": "private", "tiktok-privacy": "PUBLIC_TO_EVERYONE", "tiktok-caption": key})
    etag = s3.head_object(Bucket="media", Key=key)["ETag"].strip('"')
    created = prefect_stack.create_run("publish-s3-object/publish-s3-object", {"bucket": "media", "key": key, "etag": etag})
    run = prefect_stack.wait_for_run(created["id"])
    assert run["state"]["type"] == "FAILED", run["state"]
    assert run["state"]["message"].startswith("1 of 1 account not posted — private: privacy PUBLIC_TO_EVERYONE")
    assert run["name"] == f"{key.rpartition('/')[2]} from s3://media/refused/"
    (result,) = _results(prefect_stack, run["id"])
    assert result["state"] == "failed" and result["account"] == "private"
