"""The publish-video form's account choices, written onto the deployments of a real `prefect server start`,
and `accounts remove` / `connect` keeping them current (or saying why they could not)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.utilities.callables import parameter_schema
from typer.testing import CliRunner

from deployments.forms import PUBLISH_FLOW, FormUpdate, update_publish_forms
from sandbox import free_port
from flows.publish import publish_video
from ledger import AccountStatus, generate_key
from publishing import NO_ACCOUNT_DESCRIPTION, account_choices, request_schema
from tests.ledger.helpers import new_post
from tests.plugins.prefect_server import PrefectServer
from deployments.cli import build_app

DIRECT = {"source": "s3://media/clip.mp4", "accounts": ["main"], "privacy_level": "SELF_ONLY"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with PrefectServer.running(tmp_path_factory.mktemp("forms") / "prefect-home") as running:
        yield running


class Api:
    def __init__(self, url: str) -> None:
        # A busy SQLite server answers 503 now and then; Prefect's own client retries those, and so does this.
        transport = httpx.HTTPTransport(retries=2)
        self.http = httpx.Client(base_url=url, timeout=30.0, transport=_RetryOn503(transport))

    def deploy(self, flow: str, name: str, schema: dict[str, Any], parameters: dict[str, Any] | None = None) -> str:
        """A deployment as `prefect deploy` leaves it: the flow signature's schema, enforced."""
        flow_id = self.http.post("/flows/", json={"name": flow}).json()["id"]
        response = self.http.post("/deployments/", json={
            "name": name, "flow_id": flow_id, "parameter_openapi_schema": schema, "enforce_parameter_schema": True,
            "parameters": parameters or {},
        })
        response.raise_for_status()
        return response.json()["id"]

    def schema(self, deployment_id: str) -> dict[str, Any]:
        return self.http.get(f"/deployments/{deployment_id}").json()["parameter_openapi_schema"]

    def create_run(self, deployment_id: str, request: dict[str, Any]) -> httpx.Response:
        response = self.http.post(f"/deployments/{deployment_id}/create_flow_run", json={"parameters": {"request": request}})
        if response.status_code == 201:  # nothing picks it up here: do not leave it scheduled
            self.http.delete(f"/flow_runs/{response.json()['id']}")
        return response

    def delete(self, deployment_id: str) -> None:
        self.http.delete(f"/deployments/{deployment_id}")


class _RetryOn503(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, attempts: int = 5) -> None:
        self.inner, self.attempts = inner, attempts

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(self.attempts - 1):
            response = self.inner.handle_request(request)
            if response.status_code != 503:
                return response
            response.close()
            time.sleep(0.5)
        return self.inner.handle_request(request)


@pytest.fixture
def api(server: PrefectServer) -> Iterator[Api]:
    client = Api(server.api_url)
    yield client
    for deployment in client.http.post("/deployments/filter", json={}).json():
        client.delete(deployment["id"])
    client.http.close()


@pytest.fixture(scope="module")
def publish_schema() -> dict[str, Any]:
    return parameter_schema(publish_video).model_dump()


def test_every_publish_deployment_offers_the_connected_accounts(server: PrefectServer, api: Api,
                                                                publish_schema: dict[str, Any]) -> None:
    product = api.deploy(PUBLISH_FLOW, "publish-video", publish_schema)
    example = api.deploy(PUBLISH_FLOW, "publish-rendered-video", publish_schema)
    other_schema = {"title": "Parameters", "type": "object", "properties": {"margin_hours": {"type": "number"}}}
    other = api.deploy("refresh-tokens", "refresh-tokens", other_schema)
    assert api.create_run(product, {**DIRECT, "accounts": ["nobody"]}).status_code == 201  # as deployed: typed in

    update = update_publish_forms(["private", "main"], api_url=server.api_url)

    assert update == FormUpdate(["main", "private"], updated=["publish-video/publish-rendered-video",
                                                              "publish-video/publish-video"])
    assert update.lines() == ["publish form updated (publish-video/publish-rendered-video, publish-video/publish-video): "
                              "accounts offered: main, private"]
    for deployment in (product, example):
        assert account_choices(api.schema(deployment)) == ["main", "private"]
    assert api.schema(other) == other_schema
    refused = api.create_run(product, {**DIRECT, "accounts": ["nobody"]})
    assert refused.status_code == 409
    assert refused.json()["detail"] == ("Error creating flow run: Validation failed for field 'request.accounts[0]'. "
                                        "Failure reason: 'nobody' is not one of ['main', 'private']")
    assert api.create_run(example, {**DIRECT, "accounts": ["private", "main"]}).status_code == 201

    again = update_publish_forms(["main", "private"], api_url=server.api_url)
    assert again.updated == [] and len(again.unchanged) == 2 and "already current" in again.lines()[0]

    none = update_publish_forms([], api_url=server.api_url)
    accounts = request_schema(api.schema(product))["properties"]["accounts"]
    assert none.lines()[0].endswith("accounts offered: no account (names are typed in)")
    assert "enum" not in accounts["items"] and accounts["description"] == NO_ACCOUNT_DESCRIPTION
    assert api.create_run(product, {**DIRECT, "accounts": ["anyone"]}).status_code == 201
    assert "privacy_level" in api.create_run(product, {**DIRECT, "privacy_level": None}).json()["detail"]


def test_an_update_the_server_refuses_is_reported_and_the_others_still_made(server: PrefectServer, api: Api,
                                                                            publish_schema: dict[str, Any]) -> None:
    # Default parameters naming an account that is not connected: the server checks them against the new form.
    stale = api.deploy(PUBLISH_FLOW, "stale-defaults", publish_schema, parameters={"request": {**DIRECT, "accounts": ["gone"]}})
    fine = api.deploy(PUBLISH_FLOW, "publish-video", publish_schema)

    update = update_publish_forms(["main"], api_url=server.api_url)

    assert update.updated == ["publish-video/publish-video"] and not update.complete
    (problem,) = update.problems
    assert problem.startswith("publish form of publish-video/stale-defaults not updated: the server answered 409")
    assert "'gone' is not one of ['main']" in problem
    assert account_choices(api.schema(stale)) is None and account_choices(api.schema(fine)) == ["main"]


def test_without_a_server_the_form_is_not_updated_and_the_way_to_update_it_is_said() -> None:
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        unset = update_publish_forms(["main"])
    (line,) = unset.lines()
    assert line.startswith("publish form not updated: PREFECT_API_URL is not set")
    assert line.endswith("then run `tiktok-pipeline setup` against your Prefect server to update it")
    url = f"http://127.0.0.1:{free_port()}/api"
    (line,) = update_publish_forms(["main"], api_url=url).lines()
    assert f"publish form not updated: the Prefect API at {url} does not answer" in line
    assert "tiktok-pipeline setup" in line


def test_a_server_without_the_deployment_yet_says_what_to_run_after_deploying(server: PrefectServer, api: Api) -> None:
    update = update_publish_forms(["main"], api_url=server.api_url)
    assert update == FormUpdate(["main"]) and not update.complete
    assert update.lines() == ["publish form: no publish-video deployment on the Prefect server yet; after `prefect deploy`, "
                              "run `tiktok-pipeline setup` against your Prefect server to update it with the connected accounts"]


# --- the CLI -----------------------------------------------------------------------------------------------

@pytest.fixture
def connected(sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """`main` and `private` connected through the sandbox's OAuth flow; their access tokens by name."""
    from tasks import runtime
    from publishing.connect import connect_account

    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TIKTOK_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TIKTOK_PIPELINE_REDIRECT_URI", f"http://localhost:{free_port()}/callback/")
    monkeypatch.setenv("TIKTOK_PIPELINE_ENCRYPTION_KEY", generate_key())
    settings = runtime.settings()
    book = runtime.ledger(settings)
    tokens = {}
    for name, user in (("main", "studio_main"), ("private", "private_creator")):
        connect_account(settings, book, name, lambda url: httpx.get(url, follow_redirects=True, timeout=30),
                        extra_params={"sandbox_user": user})
        tokens[name] = book.ensure_fresh_token(name, lambda _: None)[0]  # type: ignore[arg-type, return-value]
    return tokens


def accounts_cli(*args: str) -> tuple[int, str]:
    app = build_app()
    result = CliRunner().invoke(app, ["accounts", *args])
    return result.exit_code, result.output


def tiktok_accepts(sandbox, token: str) -> bool:
    response = httpx.get(f"{sandbox.base_url}/v2/user/info/", params={"fields": "open_id"},
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return response.status_code == 200


def test_remove_revokes_the_token_keeps_the_history_and_says_the_form_was_not_updated(
    connected: dict[str, str], sandbox
) -> None:
    from tasks import runtime

    assert tiktok_accepts(sandbox, connected["private"])
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        code, output = accounts_cli("remove", "private", "--yes")

    assert code == 0, output
    assert "removed private (Private Creator): its access at TikTok revoked" in output
    assert "publish form not updated: PREFECT_API_URL is not set" in output and "tiktok-pipeline setup" in output
    assert not tiktok_accepts(sandbox, connected["private"]) and tiktok_accepts(sandbox, connected["main"])
    book = runtime.ledger()
    assert [a.name for a in book.list_accounts()] == ["main"]
    assert book.get_account("private").status is AccountStatus.needs_reconnect
    code, listed = accounts_cli("list")
    assert code == 0 and "main" in listed and "private" not in listed

    code, output = accounts_cli("remove", "private", "--yes")
    assert code == 0 and "account private was already removed" in output
    code, output = accounts_cli("remove", "ghost", "--yes")
    assert code == 1 and "no account named 'ghost'" in output


def test_connect_without_a_server_connects_and_says_the_form_was_not_updated(
    connected: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import webbrowser

    def browser(url: str) -> bool:  # the user approves on the sandbox's authorize page
        httpx.get(f"{url}&sandbox_user=private_creator", follow_redirects=True, timeout=30).raise_for_status()
        return True

    monkeypatch.setattr(webbrowser, "open", browser)
    url = f"http://127.0.0.1:{free_port()}/api"
    with temporary_settings(updates={PREFECT_API_URL: url}):
        code, output = accounts_cli("connect", "private")
    assert code == 0, output
    assert "connected private: Private Creator (@private_creator)" in output
    assert f"publish form not updated: the Prefect API at {url} does not answer" in output
    assert "run `tiktok-pipeline setup` against your Prefect server to update it" in output


def test_remove_asks_first_and_refuses_without_a_terminal(connected: dict[str, str]) -> None:
    from tasks import runtime

    code, output = accounts_cli("remove", "main")
    assert code == 2 and "needs confirmation: run it in a terminal or pass --yes" in output
    assert [a.name for a in runtime.ledger().list_accounts()] == ["main", "private"]


def test_remove_against_a_server_takes_the_account_out_of_the_form(connected: dict[str, str], server: PrefectServer,
                                                                  api: Api, publish_schema: dict[str, Any]) -> None:
    product = api.deploy(PUBLISH_FLOW, "publish-video", publish_schema)
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        code, output = accounts_cli("remove", "private", "--yes")
    assert code == 0, output
    assert "publish form updated (publish-video/publish-video): accounts offered: main" in output
    assert account_choices(api.schema(product)) == ["main"]
    assert "'private' is not one of ['main']" in api.create_run(product, {**DIRECT, "accounts": ["private"]}).json()["detail"]


def test_setup_offers_the_connected_accounts_in_the_form(connected: dict[str, str], server: PrefectServer, api: Api,
                                                         publish_schema: dict[str, Any]) -> None:
    from deployments.cli import build_app

    product = api.deploy(PUBLISH_FLOW, "publish-video", publish_schema)  # as `prefect deploy` left it: typed in
    app = build_app()
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        result = CliRunner().invoke(app, ["setup"])
    assert result.exit_code == 0, result.output
    assert "publish form updated (publish-video/publish-video): accounts offered: main, private" in result.output
    assert account_choices(api.schema(product)) == ["main", "private"]


def test_remove_still_removes_when_tiktok_cannot_be_reached_or_already_refused(
    connected: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks import runtime

    runtime.ledger().mark_needs_reconnect("main", "auth_removed")
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        code, output = accounts_cli("remove", "main", "--yes")
    assert code == 0, output
    assert "removed main (Studio Main): not revoked: TikTok already refused its token (auth_removed)" in output

    new_post(runtime.ledger(), "queued-for-private", account="private")
    monkeypatch.setenv("TIKTOK_PIPELINE_API_BASE_URL", f"http://127.0.0.1:{free_port()}")  # TikTok unreachable
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        code, output = accounts_cli("remove", "private", "--yes")
    assert code == 0, output
    assert "removed private (Private Creator): TikTok did not confirm the revocation (TransportError" in output
    assert "remove the app from the creator's TikTok settings" in output
    assert "1 post(s) of private had not finished (held, queued or in flight)" in output
    assert runtime.ledger().list_accounts() == []
