"""prefect.yaml, checked the way `prefect deploy --all` reads it, without a Prefect server."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import json
import shlex
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from cronsim import CronSim
from prefect import Flow
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.steps import run_shell_script
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools.validation import ValidationError, is_valid_schema, validate
from prefect.utilities.templating import apply_values

from deployments import up
from deployments.bootstrap import bootstrap
from deployments.names import WORK_POOL_NAME
from flows.maintenance import refresh_tokens
from publishing import PublishRequest
from flows.publish import publish_video
from publishing import account_choices

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "publish-video": "flows/publish.py:publish_video",
    "publish-photos": "flows/photo_posts.py:publish_photos",
    "refresh-tokens": "flows/maintenance.py:refresh_tokens",
    "cleanup": "flows/maintenance.py:cleanup",
    "release-held-post": "flows/drafts.py:release_held_post",
    "publish-deferred-post": "flows/drafts.py:publish_deferred_post",
    "publish-s3-object": "flows/s3_events.py:publish_s3_object",
}
EXAMPLES = {
    "publish-rendered-video": "flows/publish.py:publish_video",
    "render-video": "flows/examples/render_and_publish.py:render_video",
}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def deployments(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in config["deployments"]}


@pytest.fixture(scope="module")
def examples() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((ROOT / "flows" / "examples" / "prefect.yaml").read_text(encoding="utf-8"))
    PrefectYamlModel.model_validate(config)
    return {d["name"]: d for d in config["deployments"]}


def step(steps: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (inputs,) = [s[name] for s in steps if name in s]
    return inputs


def test_prefect_deploy_accepts_the_file(config: dict[str, Any]) -> None:
    model = PrefectYamlModel.model_validate(config)
    assert [d.name for d in model.deployments] == list(EXPECTED)


def test_each_deployment_runs_its_flow(deployments: dict[str, dict[str, Any]], examples: dict[str, dict[str, Any]],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # entrypoints are relative to the project root, where `prefect deploy` runs
    assert {name: d["entrypoint"] for name, d in deployments.items()} == EXPECTED
    assert {name: d["entrypoint"] for name, d in examples.items()} == EXAMPLES
    for name, deployment in {**deployments, **examples}.items():
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        assert isinstance(flow, Flow)
        # `prefect deployment run FLOW/DEPLOYMENT` names in the docs and `make up`
        assert flow.name == ("publish-video" if name == "publish-rendered-video" else name)


def test_each_entrypoint_loads_in_a_fresh_process_as_a_worker_loads_it(
        deployments: dict[str, dict[str, Any]], examples: dict[str, dict[str, Any]]) -> None:
    """A worker loads an entrypoint as a script, with the script's folder first on sys.path: a module
    there named like a package of the project (flows/photos.py and `photos`) would shadow it and break
    every flow of the folder. Nothing may be imported before, so each loads in its own process."""
    folders = {(ROOT / d["entrypoint"].split(":")[0]).parent for d in {**deployments, **examples}.values()}
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    shadowing = sorted(str(m.relative_to(ROOT)) for folder in folders for m in folder.glob("*.py") if m.stem in packages)
    assert not shadowing, f"modules beside an entrypoint named like a package of the project: {shadowing}"
    loads = {name: subprocess.Popen(
        [sys.executable, "-c", "import sys; from prefect.flows import load_flow_from_entrypoint; "
                               "print(load_flow_from_entrypoint(sys.argv[1]).name)", d["entrypoint"]],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name, d in deployments.items()}
    for name, process in loads.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"{name}: {err[-2000:]}"
        assert out.strip() == name


def test_every_deployment_targets_the_pool_setup_creates(deployments: dict[str, dict[str, Any]],
                                                         examples: dict[str, dict[str, Any]]) -> None:
    assert {d["work_pool"]["name"] for d in {**deployments, **examples}.values()} == {WORK_POOL_NAME}
    # ... and the pool `make up`'s worker polls and `tiktok-pipeline setup` creates by default.
    assert up.services(up.Ports())["worker"].argv[-4:] == ("--pool", WORK_POOL_NAME, "--name", up.WORKER_NAME)
    assert inspect.signature(bootstrap).parameters["work_pool"].default == WORK_POOL_NAME


def only(items: list[dict[str, Any]]) -> dict[str, Any]:
    (item,) = items
    return item


def _period(schedule: dict[str, Any]) -> timedelta:
    """The gap between firings of a cron schedule, which must be regular."""
    CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])  # what the server will validate
    fires = CronSim(schedule["cron"], datetime(2026, 1, 1, tzinfo=timezone.utc))
    times = [next(fires) for _ in range(13)]
    gaps = {later - earlier for earlier, later in zip(times, times[1:])}
    assert len(gaps) == 1, f"{schedule['cron']} fires irregularly: {sorted(gaps)}"
    return gaps.pop()


def test_schedules(deployments: dict[str, dict[str, Any]]) -> None:
    assert deployments["publish-video"]["schedules"] == []
    assert _period(only(deployments["cleanup"]["schedules"])) == timedelta(minutes=30)
    refresh_every = _period(only(deployments["refresh-tokens"]["schedules"]))
    # A token close to expiry at one run must be refreshed by that run, not the next one.
    margin = inspect.signature(refresh_tokens.fn).parameters["margin_hours"].default
    assert refresh_every < timedelta(hours=margin)


def test_pull_step_takes_the_worker_to_the_directory_deployed_from(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    build = step(config["build"], "prefect.deployments.steps.run_shell_script")
    inputs = {key: value for key, value in build.items() if key != "id"}
    outputs = asyncio.run(run_shell_script(**inputs))
    pull = apply_values(config["pull"], {build["id"]: outputs})
    assert step(pull, "prefect.deployments.steps.set_working_directory")["directory"] == str(ROOT)


def test_publish_form_is_the_request_model() -> None:
    schema = parameter_schema(publish_video).model_dump()
    assert schema["required"] == ["request"]
    assert schema["properties"]["request"]["$ref"] == "#/definitions/PublishRequest"
    form = schema["definitions"]["PublishRequest"]
    assert set(form["properties"]) == set(PublishRequest.model_fields)
    assert set(form["required"]) == {"source", "accounts"}
    assert form["additionalProperties"] is False
    assert "SELF_ONLY" in schema["definitions"]["PrivacyLevel"]["enum"]
    # What `prefect deploy` writes carries the model's rules (tests/publishing/test_form.py) and is a
    # valid Draft 2020-12 schema; the accounts are typed in until `deployments.forms` offers the connected ones.
    is_valid_schema(schema)
    assert form["allOf"] and account_choices(schema) is None
    with pytest.raises(ValidationError, match="'privacy_level' is a required property"):
        validate({"request": {"source": "s3://media/clip.mp4", "accounts": ["main"]}}, schema, raise_on_error=True)


def test_parameters_printed_by_make_up_pass_the_enforced_schema(deployments: dict[str, dict[str, Any]]) -> None:
    assert deployments["publish-video"]["enforce_parameter_schema"] is True
    schema = parameter_schema(publish_video).model_dump()
    text = up.summary(up.Ports(), up.Layout(ROOT), ["main (Studio Main)"], 1.0)
    command = shlex.split(next(line for line in text.splitlines() if "deployment run" in line))
    parameters = json.loads(command[command.index("--params") + 1])
    validate(parameters, schema, raise_on_error=True, preprocess=True)
    PublishRequest.model_validate(parameters["request"])
    with pytest.raises(ValidationError, match="privacy_level"):
        validate({"request": {**parameters["request"], "privacy_level": "EVERYONE"}}, schema, raise_on_error=True,
                 preprocess=True)


def test_render_trigger_builds_a_valid_publish_request(examples: dict[str, dict[str, Any]]) -> None:
    (trigger,) = examples["publish-rendered-video"]["triggers"]
    assert trigger["expect"] == ["render.video.completed"]
    request = dict(trigger["parameters"]["request"])
    assert request.pop("source") == "{{ event.payload.uri }}"
    parsed = PublishRequest(source="s3://renders/ep.mp4", **request)  # what the server renders must validate
    # An example must not post to a real account by accident: off until enabled, and then drafts only.
    assert trigger["enabled"] is False
    assert parsed.mode.value == "hold"


def test_the_product_file_has_no_example(deployments: dict[str, dict[str, Any]]) -> None:
    assert not [name for name, d in deployments.items() if "example" in d.get("tags", [])]
