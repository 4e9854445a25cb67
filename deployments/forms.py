"""Keep the publish-video form current: the connected accounts as its choices, on the Prefect server.

`prefect deploy` writes each deployment's parameter schema from the flow's signature, which cannot
know the ledger's accounts; this writes them onto every deployment of the publish-video flow
(`publishing.with_account_choices` on the schema the server has, PATCHed back). Run by `tiktok-pipeline
accounts connect` / `remove`, `tiktok-pipeline setup` and `make up` after it deploys.

It never fails the command it runs in: without a reachable server (or when the server refuses the
update) the result says the form was not updated and how to update it later.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from publishing import with_account_choices
from tiktok_pipeline.errors import PipelineError

if TYPE_CHECKING:
    from tiktok_pipeline.settings import Settings

#: The flow whose deployments carry the form (prefect.yaml's publish-video, the examples' publish-rendered-video).
PUBLISH_FLOW = "publish-video"
#: Every flow whose `request.accounts` offers the connected accounts: the videos' and the photos'.
FORM_FLOWS = (PUBLISH_FLOW, "publish-photos")
HOW_TO_UPDATE = "run `tiktok-pipeline setup` against your Prefect server to update it"


@dataclass(frozen=True)
class FormUpdate:
    """What `update_publish_forms` did."""

    accounts: list[str]
    updated: list[str] = field(default_factory=list)  # flow/deployment names whose form changed
    unchanged: list[str] = field(default_factory=list)  # already offered exactly these accounts
    problems: list[str] = field(default_factory=list)  # why a form was not updated, one per line

    @property
    def complete(self) -> bool:
        return not self.problems and bool(self.updated or self.unchanged)

    def lines(self) -> list[str]:
        """For people: what the forms offer now, or why they were not updated."""
        offered = ", ".join(self.accounts) if self.accounts else "no account (names are typed in)"
        lines = []
        for flow in FORM_FLOWS:  # a line per flow: its deployments share its form
            updated = [label for label in self.updated if label.startswith(f"{flow}/")]
            unchanged = [label for label in self.unchanged if label.startswith(f"{flow}/")]
            if updated:
                lines.append(f"publish form updated ({', '.join(updated)}): accounts offered: {offered}")
            if unchanged:
                lines.append(f"publish form already current ({', '.join(unchanged)}): accounts offered: {offered}")
        if not (self.updated or self.unchanged or self.problems):
            lines.append(f"publish form: no {PUBLISH_FLOW} deployment on the Prefect server yet; after `prefect "
                         f"deploy`, {HOW_TO_UPDATE} with the connected accounts")
        return lines + self.problems


@contextmanager
def _api(api_url: str | None) -> Iterator[None]:
    """The Prefect settings in force, or `api_url` instead of PREFECT_API_URL."""
    if api_url is None:
        yield
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield


def update_publish_forms(accounts: Sequence[str], *, api_url: str | None = None) -> FormUpdate:
    """Offer exactly `accounts` in the form of every publish-video and publish-photos deployment on the server.

    The server is PREFECT_API_URL (or the active profile's), or `api_url`. Never raises for an
    unconfigured, unreachable or refusing server: see `FormUpdate.problems`.
    """
    from deployments.bootstrap import prefect_api_url  # imports Prefect: only when a form is updated

    names = sorted(set(accounts))
    with _api(api_url):
        try:
            prefect_api_url()  # refuses an unset URL: Prefect would start a throwaway server instead
        except PipelineError as exc:
            return FormUpdate(names, problems=[f"publish form not updated: {exc}; then {HOW_TO_UPDATE}"])
        return _write_choices(names)


def _write_choices(names: list[str]) -> FormUpdate:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.exceptions import PrefectHTTPStatusError

    result = FormUpdate(names)
    with get_client(sync_client=True) as client:
        found = [(flow, deployment) for flow in FORM_FLOWS for deployment in sorted(
            client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow]))), key=lambda d: d.name)]
        for flow, deployment in found:
            label = f"{flow}/{deployment.name}"
            schema = deployment.parameter_openapi_schema or {}
            try:
                wanted = with_account_choices(schema, names)
            except ValueError as exc:
                result.problems.append(f"publish form of {label} not updated: {exc} (deployed from an older version?)")
                continue
            if wanted == schema:
                result.unchanged.append(label)
                continue
            try:
                client.update_deployment(deployment.id, DeploymentUpdate(parameter_openapi_schema=wanted))
            except PrefectHTTPStatusError as exc:
                result.problems.append(f"publish form of {label} not updated: the server answered "
                                       f"{exc.response.status_code} {_detail(exc)}")
                continue
            result.updated.append(label)
    return result


def _detail(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    try:
        return str(response.json().get("detail")) if response is not None else str(exc)
    except ValueError:
        return response.text[:300]


def connected_account_names(settings: Settings | None = None) -> list[str]:
    """The ledger's connected accounts (not removed), by name."""
    from ledger import Ledger
    from tiktok_pipeline.settings import load_settings

    with Ledger.from_settings(settings or load_settings()) as book:
        return [account.name for account in book.list_accounts()]


def sync_publish_forms(settings: Settings | None = None, *, api_url: str | None = None) -> FormUpdate:
    """`update_publish_forms` with the ledger's connected accounts (what setup and `make up` run)."""
    return update_publish_forms(connected_account_names(settings), api_url=api_url)
