"""The publish-video form on the `make up` stack: bad runs are refused when they are created, from the
REST API the UI posts to, the Prefect CLI, `run_deployment` and the UI itself, and the accounts it offers
follow `accounts remove` / `accounts connect`."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.deployments import run_deployment
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments import up
from publishing import account_choices
from tests.plugins.prefect_server import BIN, ROOT, Stack
from tests.stack.browser import browser_page, choose, form_field, needs_chromium
from tests.stack.groups import STACK_GROUP

pytestmark = STACK_GROUP

DEPLOYMENT = "publish-video/publish-video"
DIRECT = {"source": up.SAMPLE_URI, "accounts": ["main"], "privacy_level": "SELF_ONLY", "caption": "form test"}
NO_PRIVACY = {key: value for key, value in DIRECT.items() if key != "privacy_level"}
#: A run accepted here is scheduled far ahead and deleted, so the worker never spends time on it.
LATER = {"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": "2099-01-01T00:00:00Z"}}}


def runs_of(stack: Stack) -> int:
    deployment_id = stack.api.deployment(DEPLOYMENT)["id"]
    return len(stack.api.flow_runs(deployment_id={"any_": [deployment_id]}))


def choices(stack: Stack) -> list[str] | None:
    return account_choices(stack.api.deployment(DEPLOYMENT)["parameter_openapi_schema"])


def test_make_up_offers_the_connected_accounts(prefect_stack: Stack) -> None:
    assert "publish form updated (publish-video/publish-video): accounts offered: main, private" in prefect_stack.output \
        or "publish form already current (publish-video/publish-video)" in prefect_stack.output, prefect_stack.output
    assert choices(prefect_stack) == ["main", "private"]


REFUSED = {
    "direct post without privacy": (NO_PRIVACY, "Validation failed for field 'request'. Failure reason: "
                                                "'privacy_level' is a required property"),
    "no account": ({**DIRECT, "accounts": []}, "Validation failed for field 'request.accounts'. Failure reason: [] should be non-empty"),
    "unknown account": ({**DIRECT, "accounts": ["main", "nobody"]},
                        "Validation failed for field 'request.accounts[1]'. Failure reason: 'nobody' is not one of "
                        "['main', 'private']"),
    "branded content, SELF_ONLY": ({**DIRECT, "brand_content_toggle": True},
                                   "Validation failed for field 'request.privacy_level'. Failure reason: "
                                   "'PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS or FOLLOWER_OF_CREATOR: branded content "
                                   "cannot be SELF_ONLY' was expected"),
}


def test_create_flow_run_refuses_what_the_flow_would_refuse(prefect_stack: Stack) -> None:
    before = runs_of(prefect_stack)
    for name, (request, reason) in REFUSED.items():
        response = prefect_stack.api.create_run(DEPLOYMENT, {"request": request})
        assert response.status_code == 409, (name, response.text)
        assert response.json()["detail"] == f"Error creating flow run: {reason}", name
    assert runs_of(prefect_stack) == before  # nothing for a worker to pick up, nothing to fail 24 s later

    # An inbox draft needs no privacy level: accepted.
    inbox = prefect_stack.api.create_run(DEPLOYMENT, {"request": {**NO_PRIVACY, "mode": "inbox"}}, **LATER)
    assert inbox.status_code == 201, inbox.text
    prefect_stack.api.http.delete(f"/flow_runs/{inbox.json()['id']}").raise_for_status()


def test_prefect_deployment_run_exits_non_zero_with_the_reason(prefect_stack: Stack) -> None:
    done = prefect_stack.prefect("deployment", "run", DEPLOYMENT, "--params", json.dumps({"request": NO_PRIVACY}),
                                 check=False)
    assert done.returncode != 0
    output = " ".join((done.stdout + done.stderr).split())
    assert "Error creating flow run: Validation failed for field 'request'. Failure reason: 'privacy_level' is a " \
           "required property" in output, output


def test_run_deployment_raises(prefect_stack: Stack) -> None:
    with temporary_settings(updates={PREFECT_API_URL: prefect_stack.api_url}):
        with pytest.raises(PrefectHTTPStatusError, match="'nobody' is not one of") as raised:
            run_deployment(DEPLOYMENT, parameters={"request": {**DIRECT, "accounts": ["nobody"]}}, timeout=0)
    assert raised.value.response.status_code == 409


def connect_through_the_sandbox(stack: Stack, name: str, user: str) -> str:
    """`tiktok-pipeline accounts connect NAME` as a user runs it; the 'browser' approves on the sandbox page."""
    process = subprocess.Popen([str(BIN / "tiktok-pipeline"), "accounts", "connect", name, "--no-open", "--timeout", "60"],
                               cwd=ROOT, env={**stack.env, "PYTHONUNBUFFERED": "1"}, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if match := re.search(r"(https?://\S+/v2/auth/authorize/\S+)", line):
                httpx.get(f"{match[1]}&sandbox_user={user}", follow_redirects=True, timeout=30).raise_for_status()
                break
        output = "".join(lines) + process.stdout.read()
        assert process.wait(timeout=120) == 0, output
        return output
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()


def test_remove_and_connect_keep_the_choices_current(prefect_stack: Stack) -> None:
    # The sandbox has two creators, both connected by `make up`: remove one, then connect it again.
    try:
        removed = prefect_stack.cli("accounts", "remove", "private", "--yes").stdout
        assert "removed private (Private Creator): its access at TikTok revoked" in removed, removed
        assert "publish form updated (publish-video/publish-video): accounts offered: main" in removed, removed
        assert choices(prefect_stack) == ["main"]
        assert "private" not in prefect_stack.cli("accounts", "list").stdout
        refused = prefect_stack.api.create_run(DEPLOYMENT, {"request": {**DIRECT, "accounts": ["private"]}})
        assert refused.status_code == 409 and "'private' is not one of ['main']" in refused.json()["detail"]
    finally:
        connected = connect_through_the_sandbox(prefect_stack, "private", "private_creator")
    assert "connected private: Private Creator (@private_creator)" in connected, connected
    assert "publish form updated (publish-video/publish-video): accounts offered: main, private" in connected, connected
    assert choices(prefect_stack) == ["main", "private"]
    assert "private" in prefect_stack.cli("accounts", "list").stdout


@needs_chromium
def test_the_ui_form_offers_the_accounts_and_refuses_a_direct_post_without_privacy(prefect_stack: Stack,
                                                                                 tmp_path: Path) -> None:
    from playwright.sync_api import expect

    deployment_id = prefect_stack.api.deployment(DEPLOYMENT)["id"]
    before = runs_of(prefect_stack)
    validated: list[dict[str, Any]] = []
    with browser_page(height=3000) as page:  # the whole form, for the screenshots
        page.on("response", lambda r: validated.append(r.json()) if r.url.endswith("/ui/schemas/validate") else None)
        page.goto(f"{prefect_stack.ui_url}/deployments/deployment/{deployment_id}/run", wait_until="networkidle")
        page.get_by_text("Source", exact=True).wait_for()
        form_field(page, "Source").locator("textarea").fill(up.SAMPLE_URI)
        assert choose(page, form_field(page, "Accounts"), "main") == ["main", "private"]
        page.get_by_text("Parameters", exact=True).click()  # close the dropdown
        page.screenshot(path=str(tmp_path / "run-form.png"), full_page=True)

        page.get_by_role("button", name="Submit").click()

        message = page.get_by_text("a direct or held post needs a privacy level")
        expect(message).to_be_visible()
        expect(form_field(page, "Privacy Level")).to_contain_text(
            "a direct or held post needs a privacy level (TikTok has no default)")
        page.screenshot(path=str(tmp_path / "refused.png"), full_page=True)
        assert page.url.endswith(f"/deployments/deployment/{deployment_id}/run")  # still on the form
    # The only problem with this request is the missing privacy level, and that is what the UI was told.
    assert validated and validated[-1] == {"valid": False, "errors": [{"property": "request", "errors": [{
        "property": "privacy_level", "errors": ["'one of PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, FOLLOWER_OF_CREATOR "
                                                "or SELF_ONLY: a direct or held post needs a privacy level (TikTok has "
                                                "no default)' was expected"]}]}]}, validated
    assert runs_of(prefect_stack) == before

