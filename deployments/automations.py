"""Crash detection: flow runs of the pipeline whose process died end Crashed within minutes.

A worker that is killed (OOM, a rebooted machine, `kill -9`) takes its flow-run processes with it,
and nothing tells the Prefect server: the runs would show Running forever and nobody would retry
them. Prefect's answer ("detect zombie flows") is the pair set up here:

- every flow run of the work pool emits a `prefect.flow-run.heartbeat` event every
  `HEARTBEAT_SECONDS` (PREFECT_FLOWS_HEARTBEAT_FREQUENCY in the pool's base job template, so it
  holds whatever the worker's own environment says), and
- an automation marks a run Crashed when, after a heartbeat, neither another heartbeat nor a final
  state arrived within `CRASH_AFTER` (three heartbeats: one late heartbeat is not a crash).

The automation only watches runs tagged `RUN_TAG` (every deployment of prefect.yaml carries it): on
a shared server, runs of other teams' flows, which heartbeat at Prefect's default 180 s, must not be
crashed after 90 s. The cleanup flow then retries crashed publish runs (flows/maintenance.py).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

from prefect.automations import Automation, AutomationCore
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

#: Seconds between two heartbeats of a flow run (Prefect's minimum is 30).
HEARTBEAT_SECONDS = 30
#: Silence after a heartbeat that makes a run Crashed.
CRASH_AFTER = timedelta(seconds=3 * HEARTBEAT_SECONDS)
HEARTBEAT_VARIABLE = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"
#: The tag every deployment of prefect.yaml gives its runs; only those runs are watched.
RUN_TAG = "tiktok"
CRASH_AUTOMATION_NAME = "tiktok-pipeline: crash runs whose heartbeats stopped"
CRASH_MESSAGE = (
    f"No heartbeat for {int(CRASH_AFTER.total_seconds())} s: the process running this flow run died "
    "(worker killed, machine lost). Marked Crashed by the tiktok-pipeline crash detection; "
    "crashed publish runs are retried by the cleanup flow."
)
#: A run leaves the watch when its state is one of these.
FINAL_EVENTS = frozenset(f"prefect.flow-run.{name}" for name in ("Completed", "Failed", "Cancelled", "Crashed"))
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"

Change = Literal["created", "updated", "unchanged"]


def crash_detection() -> Automation:
    """Prefect's zombie-flow recipe, limited to the pipeline's runs."""
    return Automation(
        name=CRASH_AUTOMATION_NAME,
        description=(
            f"Flow runs tagged {RUN_TAG!r} send a heartbeat every {HEARTBEAT_SECONDS} s (work pool setting "
            f"{HEARTBEAT_VARIABLE}); a run silent for {int(CRASH_AFTER.total_seconds())} s is marked Crashed. "
            "Created by `tiktok-pipeline setup`."
        ),
        trigger=EventTrigger(
            after={HEARTBEAT_EVENT},
            expect={HEARTBEAT_EVENT, *FINAL_EVENTS},
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            match_related=ResourceSpecification({"prefect.resource.role": "tag",
                                                 "prefect.resource.id": f"prefect.tag.{RUN_TAG}"}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=CRASH_AFTER,
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, name="Crashed", message=CRASH_MESSAGE)],
    )


def _sets_sorted(value: Any) -> Any:
    """`value` with every list of strings sorted: the trigger's `after`, `expect` and `for_each` are
    sets, serialized in an order that differs from process to process (string hashing)."""
    if isinstance(value, dict):
        return {key: _sets_sorted(item) for key, item in value.items()}
    if isinstance(value, list):
        items = [_sets_sorted(item) for item in value]
        return sorted(items) if all(isinstance(item, str) for item in items) else items
    return value


def _definition(automation: AutomationCore) -> dict[str, Any]:
    """What makes two automations the same, whatever their ids and server-side fields. An automation
    is only updated when this differs: updating one resets its trigger, which then forgets the
    heartbeats it saw, so a run killed just before a `setup` would never be marked Crashed."""
    core = AutomationCore.model_validate(automation.model_dump(exclude={"id", "owner_resource"}))
    return _sets_sorted(core.model_dump(mode="json"))


def ensure_automation(wanted: Automation) -> Change:
    """Create the automation named like `wanted`, or update the existing one in place (one per name)."""
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(wanted.name)
        core = AutomationCore.model_validate(wanted.model_dump(exclude={"id", "owner_resource"}))
        if not existing:
            client.create_automation(core)
            return "created"
        first, *duplicates = sorted(existing, key=lambda a: str(a.id))
        for duplicate in duplicates:  # left by an older setup or a hand-made copy: one name, one automation
            client.delete_automation(duplicate.id)
        if _definition(first) == _definition(core) and not duplicates:
            return "unchanged"
        client.update_automation(first.id, core)
        return "updated"


def with_heartbeat(base_job_template: Mapping[str, Any], seconds: int = HEARTBEAT_SECONDS) -> dict[str, Any]:
    """The process pool's base job template with the heartbeat variable in the default `env`.

    Prefect merges a deployment's own `env` job variable over this default, so it holds for every
    deployment of the pool unless one sets the variable itself. Other customizations are kept.
    """
    template = copy.deepcopy(dict(base_job_template))
    properties = template.setdefault("variables", {}).setdefault("properties", {})
    env = properties.setdefault("env", {"title": "Environment Variables", "type": "object",
                                        "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "null"}]}})
    env["default"] = {**(env.get("default") or {}), HEARTBEAT_VARIABLE: str(seconds)}
    return template
