"""TikTok's webhooks on the `make up` stack: the sandbox sends them, signed, to the receiver `make up`
starts (`tiktok-pipeline webhooks serve`, its own process), which settles the post in the ledger; the
publish run's poll task, a slow safety net with webhooks on, ends on that instead of on its next
status/fetch, and the receiver emits a Prefect event per webhook it applied.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from deployments import up
from ledger import Ledger
from tests.plugins.prefect_server import Stack
from tests.stack.groups import STACK_GROUP

pytestmark = STACK_GROUP

SAMPLE = "s3://media/samples/sample.mp4"


def _eventually(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.5)
    return found


def test_a_posts_final_state_arrives_by_tiktoks_webhook(prefect_stack: Stack) -> None:
    stack = prefect_stack
    assert f"TikTok webhooks {up.webhooks_url(stack.ports)}" in stack.output
    assert stack.env["TIKTOK_PIPELINE_TIKTOK_WEBHOOKS"] == "true"
    assert httpx.get(f"{stack.sandbox_url}/_sandbox/webhook", timeout=10).json()["url"] == up.webhooks_url(stack.ports)

    caption = f"settled by webhook {uuid.uuid4().hex[:8]}"
    created = stack.create_run("publish-video/publish-video", {"request": {
        "source": SAMPLE, "accounts": ["main"], "privacy_level": "SELF_ONLY", "caption": caption}})
    run = stack.wait_for_run(created["id"])
    assert run["state"]["type"] == "COMPLETED", run["state"]
    assert run["state"]["message"] == "1 account done — main: published"

    # The run's poll task ended on the webhook (the safety-net fetch is TIKTOK_WEBHOOKS_POLL_INTERVAL away).
    # (Logs reach the server in batches, after the run's final state.)
    told = _eventually("the poll task's log", lambda: [line for line in stack.api.logs(run["id"])
                                                        if "told by TikTok's webhook" in line])
    assert len(told) == 1, stack.api.logs(run["id"])
    (post,) = [p for p in stack.sandbox_posts() if p["post_info"]["title"] == caption]
    publish_id = post["publish_id"]
    # The sandbox delivered it to the receiver, which answered 200.
    sent = [w for w in httpx.get(f"{stack.sandbox_url}/_sandbox/webhooks", timeout=10).json()
            if w["publish_id"] == publish_id and w["event"] == "post.publish.complete"]
    assert [(w["state"], [a["status_code"] for a in w["attempts"]]) for w in sent] == [("delivered", [200])]

    # The receiver stored and applied it in the workers' ledger, and the post's audit trail says so.
    book = Ledger(stack.env["TIKTOK_PIPELINE_DATABASE_URL"], stack.env["TIKTOK_PIPELINE_ENCRYPTION_KEY"])
    try:
        ledger_post = book.get_post_by_publish_id(publish_id)
        (received,) = book.received_events(publish_id=publish_id)
        assert received.event == "post.publish.complete" and received.applied_at is not None
        assert received.outcome == f"post {ledger_post.id}: processing -> published"
        assert ledger_post.state.value == "published"
    finally:
        book.engine.dispose()

    # One Prefect event for it, about the post.
    def events() -> list[dict[str, Any]]:
        response = stack.api.http.post("/events/filter", json={"filter": {
            "event": {"name": ["tiktok.webhook.post.publish.complete"]},
            "resource": {"id": [f"tiktok.post.{ledger_post.id}"]}}, "limit": 10})
        response.raise_for_status()
        return response.json()["events"]

    (event,) = _eventually("the receiver's Prefect event", events)
    assert event["resource"]["tiktok.publish_id"] == publish_id and event["resource"]["tiktok.changed"] == "true"
    assert event["payload"]["outcome"] == received.outcome
    log = (stack.log_dir / "webhooks.log").read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log
