"""`tiktok-pipeline setup` without a Prefect server: the refusals, what it reports, and the
automation and work-pool template it writes (checked as data; tests/stack runs them for real)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.flows import load_flow_from_entrypoint
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.workers.process import ProcessWorker
from typer.testing import CliRunner

from deployments.automations import (
    CRASH_AFTER,
    HEARTBEAT_SECONDS,
    HEARTBEAT_VARIABLE,
    RUN_TAG,
    crash_detection,
    with_heartbeat,
)
from deployments.bootstrap import EncryptionKeyNotSet, SetupReport, store_encryption_key
from sandbox import free_port
from tasks.maintenance import PUBLISHING_FLOWS
from deployments.cli import build_app
from tiktok_pipeline.settings import load_settings


def run_setup(*args: str) -> tuple[int, str]:
    app = build_app()
    result = CliRunner().invoke(app, ["setup", *args])
    return result.exit_code, result.output


closed_port = free_port  # nothing listens there: a refused connection


def test_setup_refuses_without_a_configured_server() -> None:
    # Unset, Prefect would start a throwaway in-process server and the setup would vanish with it.
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        code, output = run_setup()
    assert code == 1
    assert "PREFECT_API_URL is not set" in output


def test_setup_names_the_server_that_does_not_answer() -> None:
    url = f"http://127.0.0.1:{closed_port()}/api"
    with temporary_settings(updates={PREFECT_API_URL: url}):
        code, output = run_setup("--store-encryption-key")
    assert code == 1
    assert f"the Prefect API at {url} does not answer" in output


def test_storing_the_key_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIKTOK_PIPELINE_ENCRYPTION_KEY", raising=False)
    with pytest.raises(EncryptionKeyNotSet, match="tiktok-pipeline db generate-key"):
        store_encryption_key(load_settings(_env_file=None))


def test_report_says_what_was_done() -> None:
    report = SetupReport(api_url="http://127.0.0.1:4200/api", work_pool="tiktok-pipeline", work_pool_created=True,
                         heartbeat="created", crash_detection="created", accounts=["main"],
                         obsolete_limits=7, key_block="tiktok-pipeline-encryption-key")
    assert report.lines() == [
        "Prefect API: http://127.0.0.1:4200/api",
        "work pool 'tiktok-pipeline' (process): created; its flow runs send a heartbeat every 30 s "
        "(PREFECT_FLOWS_HEARTBEAT_FREQUENCY: set) and start through the warm-start launcher (forked from a "
        "preloaded process under `tiktok-pipeline worker`)",
        "crash detection: automation 'tiktok-pipeline: crash runs whose heartbeats stopped' created "
        "(a run without heartbeat for 90 s is marked Crashed)",
        "rate limits: TikTok's per-token limits, kept in the ledger and shared by every worker on it "
        "(1 account(s): main); removed 7 Prefect rate limit(s) of an earlier version",
        "encryption key stored in the Prefect Secret block 'tiktok-pipeline-encryption-key'",
    ]
    again = SetupReport("u", "p", False).lines()
    assert "already exists" in again[1] and "already set" in again[1] and "unchanged" in again[2]
    assert again[3].endswith("(no account yet)")


def test_crash_detection_is_prefects_zombie_recipe_for_the_pipelines_runs() -> None:
    automation = crash_detection()
    trigger = automation.trigger
    assert trigger.posture == "Proactive" and trigger.threshold == 1 and trigger.within == CRASH_AFTER
    assert trigger.after == {"prefect.flow-run.heartbeat"}
    assert trigger.expect == {"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                              "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"}
    assert trigger.for_each == {"prefect.resource.id"}
    assert trigger.match.model_dump() == {"prefect.resource.id": "prefect.flow-run.*"}
    # Only runs tagged like the pipeline's deployments: other flows on a shared server heartbeat at
    # Prefect's default 180 s and would be crashed after 90 s.
    assert trigger.match_related.model_dump() == {"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.tiktok"}
    # Three heartbeats missed, not one late.
    assert CRASH_AFTER.total_seconds() == 3 * HEARTBEAT_SECONDS and HEARTBEAT_SECONDS >= 30
    (action,) = automation.actions
    assert isinstance(action, ChangeFlowRunState) and action.state is StateType.CRASHED
    # Never forced: a run that ended while its last events were in flight stays Completed (the server
    # refuses to move a final state), so a late heartbeat cannot turn a finished run red.
    assert action.force is False
    assert "No heartbeat for 90 s" in action.message


def test_the_heartbeat_goes_into_the_pool_template_and_keeps_what_is_there() -> None:
    default = ProcessWorker.get_default_base_job_template()
    template = with_heartbeat(default)
    assert template["variables"]["properties"]["env"]["default"] == {HEARTBEAT_VARIABLE: "30"}
    assert "default" not in default["variables"]["properties"]["env"]  # the input is left alone
    assert with_heartbeat(template) == template  # idempotent: setup run twice writes nothing new
    customized = with_heartbeat(default)
    customized["variables"]["properties"]["env"]["default"] = {"MY_VAR": "x", HEARTBEAT_VARIABLE: "180"}
    customized["job_configuration"]["stream_output"] = False
    fixed = with_heartbeat(customized)
    assert fixed["variables"]["properties"]["env"]["default"] == {"MY_VAR": "x", HEARTBEAT_VARIABLE: "30"}
    assert fixed["job_configuration"]["stream_output"] is False


def _prefect_yaml() -> dict:
    return yaml.safe_load((Path(__file__).resolve().parents[2] / "prefect.yaml").read_text(encoding="utf-8"))


def test_every_deployment_is_watched_and_every_publishing_one_is_retried_at_once() -> None:
    deployments = {d["name"]: d for d in _prefect_yaml()["deployments"]}
    # The crash detection watches runs by this tag: a deployment without it would stay Running forever.
    assert all(RUN_TAG in d["tags"] for d in deployments.values()), {n: d["tags"] for n, d in deployments.items()}
    (trigger,) = deployments["cleanup"]["triggers"]
    assert trigger["expect"] == ["prefect.flow-run.Crashed"] and trigger["enabled"] is True
    flows, deployment_runs = trigger["match_related"]
    assert flows["prefect.resource.role"] == "flow" and deployment_runs == {"prefect.resource.role": "deployment"}
    assert sorted(flows["prefect.resource.name"]) == sorted(PUBLISHING_FLOWS)
    # Every deployment publishes (retried after a crash) or is scheduled (its next run comes anyway).
    for name, deployment in deployments.items():
        flow_name = load_flow_from_entrypoint(deployment["entrypoint"]).name
        assert flow_name in PUBLISHING_FLOWS or deployment["schedules"], f"{name}: crashed runs would never run again"




def test_the_crash_detection_reads_the_same_in_every_process() -> None:
    """Its trigger's `expect` and `after` are sets, serialized in an order that follows the process's
    string hashing. Compared as serialized, setup found the automation changed and updated it (which
    resets its trigger: a run killed just before a `make up` was never marked Crashed)."""
    import os
    import subprocess
    import sys

    code = ("import json; from deployments.automations import crash_detection, _definition; "
            "print(json.dumps(_definition(crash_detection()), sort_keys=True))")
    seen = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": str(seed)},
                           capture_output=True, text=True, check=True).stdout for seed in range(6)}
    assert len(seen) == 1
