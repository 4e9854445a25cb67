"""Review mode as a media team uses it, on the `make up` stack: a video uploaded under the review prefix
(`incoming/review/`, S3 → SQS → the listener) starts a run that pauses with TikTok's composer; a
person opens it in the Prefect UI (Debian's chromium driven by Playwright), fills the form and
resumes; the post is published with exactly the options chosen, and its final state arrives by
TikTok's webhook.

With UI_SCREENSHOTS_DIR set, the screenshots are also written there (docs/ui.md shows them).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import httpx

from deployments import up
from deployments.automations import CRASH_AFTER
from ledger import Ledger, PostState
from tests.plugins.prefect_server import Stack
from tests.stack.browser import browser_page, choose, form_field, needs_chromium
from tests.stack.groups import STACK_GROUP

pytestmark = [STACK_GROUP, needs_chromium]


def _poll(what: str, check, timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(1.0)
    return found


def _keep(path: Path) -> None:
    if target := os.environ.get("UI_SCREENSHOTS_DIR"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / path.name)


def _switch(page, label: str, on: bool = True) -> None:
    from playwright.sync_api import expect

    control = form_field(page, label).locator("[role=switch]")
    if (control.get_attribute("aria-checked") == "true") != on:
        control.click()
    expect(control).to_have_attribute("aria-checked", str(on).lower())


def test_an_s3_upload_under_the_review_prefix_is_posted_as_chosen_in_the_prefect_ui(
        prefect_stack: Stack, tmp_path: Path) -> None:
    stack = prefect_stack
    tag = uuid.uuid4().hex[:8]
    key = f"{up.REVIEW_PREFIX}clip-{tag}.mp4"
    env = stack.env
    s3 = boto3.client("s3", endpoint_url=env["TIKTOK_PIPELINE_S3_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    # No privacy level in the upload: under the review prefix, the reviewer chooses it.
    s3.upload_file(str(stack.state_dir / "sample.mp4"), up.SAMPLE_BUCKET, key,
                   ExtraArgs={"Metadata": {"tiktok-accounts": "main", "tiktok-caption": f"from the bucket {tag}"}})
    deployment_id = stack.api.deployment("publish-s3-object/publish-s3-object")["id"]
    (run,) = _poll("the listener's publish-s3-object run", lambda: [
        r for r in stack.api.flow_runs(deployment_id={"any_": [deployment_id]}) if r["parameters"].get("key") == key])
    (paused,) = _poll("its publish-video subflow paused for review", lambda: [
        r for r in stack.api.flow_runs(parent_flow_run_id={"any_": [run["id"]]})
        if r["state"] and r["state"]["type"] == "PAUSED"], timeout=300)
    assert not [p for p in stack.sandbox_posts() if tag in (p.get("post_info") or {}).get("title", "")]
    # A review takes longer than the crash detection's silence: the paused run's process keeps sending
    # heartbeats, so the run is still Paused (not Crashed) after CRASH_AFTER and a margin.
    time.sleep(CRASH_AFTER.total_seconds() + 15)
    assert stack.api.flow_run(paused["id"])["state"]["type"] == "PAUSED"

    caption = f"Reviewed in the Prefect UI {tag} #composer"
    with browser_page(height=2600) as page:
        page.goto(f"{stack.ui_url}/runs/flow-run/{paused['id']}")
        page.get_by_role("button", name=re.compile("^Resume")).first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Review before posting to TikTok").wait_for()
        assert dialog.get_by_text("Posting as Studio Main (@studio_main)").count() >= 1
        assert dialog.locator("img[alt='poster frame']").count() == 1
        assert dialog.locator("img[alt='contact sheet']").count() == 1
        assert dialog.get_by_text("few minutes to process").count() == 1
        caption_box = form_field(page, "Caption").locator("textarea, input").first
        assert caption_box.input_value() == f"from the bucket {tag}"
        caption_box.fill(caption)
        # The creator's own privacy options, none chosen beforehand.
        offered = choose(page, form_field(page, "Who can view this video"), "MUTUAL_FOLLOW_FRIENDS")
        assert offered == ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
        for label in ("Allow comments", "Allow Duet", "Allow Stitch", "Disclose video content", "Your brand",
                      "Branded content", "Post to TikTok now"):
            assert form_field(page, label).locator("[role=switch]").get_attribute("aria-checked") == "false", label
        _switch(page, "Allow comments")
        _switch(page, "Allow Stitch")
        _switch(page, "Disclose video content")
        _switch(page, "Your brand")
        _switch(page, "Post to TikTok now")
        page.screenshot(path=str(tmp_path / "review-form.png"), full_page=True)
        print("form screenshot:", tmp_path / "review-form.png")
        _keep(tmp_path / "review-form.png")
        dialog.get_by_role("button", name="Submit").click()

        done = stack.wait_for_run(run["id"], timeout=300)
        assert done["state"]["type"] == "COMPLETED", (done["state"], stack.api.logs(paused["id"]))
        page.goto(f"{stack.ui_url}/runs/flow-run/{paused['id']}")
        page.get_by_text("1 account done").first.wait_for(timeout=60_000)
        page.screenshot(path=str(tmp_path / "review-finished-run.png"), full_page=True)
        _keep(tmp_path / "review-finished-run.png")

    (posted,) = [p for p in stack.sandbox_posts() if (p.get("post_info") or {}).get("title") == caption]
    info = posted["post_info"]
    assert info["privacy_level"] == "MUTUAL_FOLLOW_FRIENDS"
    assert (info["disable_comment"], info["disable_duet"], info["disable_stitch"]) == (False, True, False)
    assert (info["brand_organic_toggle"], info["brand_content_toggle"]) == (True, False)
    assert posted["status"] == "PUBLISH_COMPLETE"

    book = Ledger(env["TIKTOK_PIPELINE_DATABASE_URL"], env["TIKTOK_PIPELINE_ENCRYPTION_KEY"])
    try:
        post = book.get_post_by_publish_id(posted["publish_id"])
        assert (post.state, post.caption, post.privacy_level) == (PostState.published, caption, "MUTUAL_FOLLOW_FRIENDS")
        (reviewed,) = [e for e in book.post_events(post.id) if e.kind == "reviewed"]
        assert reviewed.data["answer"]["allow_stitch"] is True and reviewed.data["flow_run_id"] == paused["id"]
        # The final state arrived by TikTok's webhook, applied by the stack's receiver.
        (received,) = [e for e in book.received_events(publish_id=post.publish_id) if e.event == "post.publish.complete"]
        assert received.outcome == f"post {post.id}: processing -> published"
    finally:
        book.engine.dispose()
    _poll("the poll task's log saying the webhook told it", lambda: any(
        "told by TikTok's webhook" in line for line in stack.api.logs(paused["id"])), timeout=60)
    assert httpx.get(f"{stack.sandbox_url}/_sandbox/webhook", timeout=10).json()["url"] == up.webhooks_url(stack.ports)
