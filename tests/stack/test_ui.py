"""What a user sees in the Prefect UI after `make up`, in a real browser (Debian's chromium).

The scenario of issue 8's "done when": upcoming runs of the scheduled deployments are listed; a
publish from the UI form to an account that cannot take the post (the private creator does not offer
PUBLIC_TO_EVERYONE) is red with the reason; one to a good account is green with its results table;
and the server has logged no traceback meanwhile.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from deployments import up
from tests.plugins.prefect_server import Stack
from tests.stack.browser import browser_page, choose, form_field, needs_chromium
from tests.stack.groups import STACK_GROUP

pytestmark = STACK_GROUP

DEPLOYMENT = "publish-video/publish-video"


def submit_from_the_form(page, stack: Stack, account: str, privacy: str, caption: str) -> dict[str, Any]:
    """Fill in and submit Deployments → publish-video → Run → Custom run; the flow run it created."""
    deployment_id = stack.api.deployment(DEPLOYMENT)["id"]
    page.goto(f"{stack.ui_url}/deployments/deployment/{deployment_id}/run", wait_until="networkidle")
    page.get_by_text("Source", exact=True).wait_for()
    form_field(page, "Source").locator("textarea").fill(up.SAMPLE_URI)
    assert choose(page, form_field(page, "Accounts"), account) == ["main", "private"]  # the connected accounts
    page.get_by_text("Parameters", exact=True).click()  # closes the menu
    form_field(page, "Caption").locator("textarea").fill(caption)
    privacy_field = form_field(page, "Privacy Level")
    privacy_field.get_by_role("button", name="PrivacyLevel").click()  # no default: the user picks one
    choose(page, privacy_field, privacy)
    page.get_by_text("Parameters", exact=True).click()
    page.get_by_role("button", name="Submit").click()
    deadline = time.monotonic() + 30
    while True:  # the UI goes to the deployment's page; the run is the one with this caption
        runs = stack.api.flow_runs(deployment_id={"any_": [deployment_id]})
        mine = [r for r in runs if r["parameters"].get("request", {}).get("caption") == caption]
        if mine:
            return mine[0]
        assert time.monotonic() < deadline, "the form created no run"
        time.sleep(0.5)


def show_run(page, stack: Stack, flow_run_id: str, tab: str) -> None:
    page.goto(f"{stack.ui_url}/runs/flow-run/{flow_run_id}", wait_until="networkidle")
    page.get_by_text(tab, exact=True).click()


@needs_chromium
@pytest.mark.timeout(900)  # two publishes and a browser, after `make up` when this test starts the stack
def test_a_user_sees_schedules_a_red_failure_with_its_reason_and_a_green_publish_with_its_table(
        prefect_stack: Stack, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    tag = uuid.uuid4().hex[:8]
    with browser_page() as page:
        # Upcoming runs, created by the server's own scheduler.
        for name in up.SCHEDULED_DEPLOYMENTS:
            page.goto(f"{prefect_stack.ui_url}/deployments/deployment/{prefect_stack.api.deployment(name)['id']}",
                      wait_until="networkidle")
            expect(page.get_by_text("Next Run", exact=True)).to_be_visible()
            expect(page.get_by_text("Scheduled", exact=True).first).to_be_visible()
        page.screenshot(path=str(tmp_path / "upcoming.png"))

        wrong = submit_from_the_form(page, prefect_stack, "private", "PUBLIC_TO_EVERYONE", f"UI wrong account {tag}")
        good = submit_from_the_form(page, prefect_stack, "main", "SELF_ONLY", f"UI good account {tag}")

        failed = prefect_stack.wait_for_run(wrong["id"], timeout=300)
        assert failed["state"]["type"] == "FAILED", failed["state"]
        assert failed["name"] == "sample.mp4 → private"  # named from the request once it starts
        reason = "privacy PUBLIC_TO_EVERYONE is not available to Private Creator"
        assert reason in failed["state"]["message"]
        show_run(page, prefect_stack, wrong["id"], "Details")
        expect(page.get_by_text("Failed", exact=True).first).to_be_visible()  # the state badge
        page.get_by_text("See More", exact=True).click()  # the Details tab shortens a long state message
        expect(page.get_by_text(f"1 of 1 account not posted — private: {reason}", exact=False)).to_be_visible()
        page.screenshot(path=str(tmp_path / "failed-run.png"), full_page=True)

        completed = prefect_stack.wait_for_run(good["id"], timeout=300)
        assert completed["state"]["type"] == "COMPLETED", completed["state"]
        assert completed["name"] == "sample.mp4 → main"
        show_run(page, prefect_stack, good["id"], "Artifacts")
        expect(page.get_by_text("Completed", exact=True).first).to_be_visible()
        page.get_by_text("publish-results", exact=True).click()
        table = page.locator("table")
        expect(table).to_contain_text("Studio Main")
        row = table.locator("tr").filter(has_text="main")
        expect(row).to_contain_text("published")
        expect(row).to_contain_text("SELF_ONLY")
        expect(row).to_contain_text("v_pub_")  # the publish_id TikTok gave
        page.screenshot(path=str(tmp_path / "results-table.png"), full_page=True)

    assert up.server_log_tracebacks(prefect_stack.state_dir / "prefect.log") == []
