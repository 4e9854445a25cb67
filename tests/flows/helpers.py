"""What a flow test reads back after a run, the way the Prefect UI shows it: the run's state and
result, its name, its artifacts and its task runs (read from the test server with Prefect's client)."""

from __future__ import annotations

from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import Artifact, FlowRun, State, TaskRun

from publishing import PublishRequest, PublishResult
from flows.publish import publish_video


def run_publish(request: PublishRequest) -> tuple[State, list[PublishResult]]:
    """publish-video's final state and the results it carries (readable whatever the verdict)."""
    state = publish_video(request, return_state=True)
    return state, state.result(raise_on_failure=False)


def results(state: State) -> Any:
    return state.result(raise_on_failure=False)


def flow_run_of(state: State) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id)


def artifacts_of(state: State) -> list[Artifact]:
    """The artifacts of the state's flow run (tasks' artifacts included), oldest first."""
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])),
                                      limit=200)
    return sorted(found, key=lambda a: a.created)


def artifact(state: State, key: str) -> Artifact:
    (found,) = [a for a in artifacts_of(state) if a.key == key]
    return found


def task_runs_of(state: State) -> list[TaskRun]:
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
