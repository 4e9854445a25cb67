"""`publish_via_deployment`: another process runs publish-video on its deployment and gets typed results.

The deployment is served by a `prefect.runner.Runner` on a background thread, which runs each flow
run the way a process worker does (`python -m prefect.engine` in a subprocess inheriting the test's
environment); the results come back through Prefect's result storage.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prefect.runner import Runner

from publishing import PublishRequest, PublishResult
from flows.publish import publish_video
from flows.syndicate import publish_via_deployment
from ledger import PostState


@pytest.fixture(scope="module")
def served_publish_video() -> Iterator[str]:
    name = f"syndication-{uuid.uuid4().hex[:6]}"
    runner = Runner(name=name, query_seconds=1, pause_on_shutdown=False)
    runner.add_deployment(publish_video.to_deployment(name=name))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(runner.start(),), daemon=True)
    thread.start()
    yield f"publish-video/{name}"
    asyncio.run_coroutine_threadsafe(runner.astop(), loop).result(60)
    thread.join(60)


def test_results_come_back_typed_from_a_deployment_run(pipeline, media, served_publish_video: str) -> None:
    source = pipeline.upload(media.path("compliant"), "renders/deployed.mp4")
    request = PublishRequest(source=source, accounts=["main"], caption="via deployment", privacy_level="SELF_ONLY")
    results = publish_via_deployment(request, timeout=240, deployment=served_publish_video)
    assert len(results) == 1 and isinstance(results[0], PublishResult)
    assert results[0].state is PostState.published and results[0].publish_id
    assert [p["post_info"]["title"] for p in pipeline.sandbox.posts()] == ["via deployment"]


def test_a_failed_deployment_run_still_returns_its_results(pipeline, media, served_publish_video: str) -> None:
    source = pipeline.upload(media.path("compliant"), "renders/refused.mp4")
    request = PublishRequest(source=source, accounts=["main", "private"], caption="refused via deployment",
                             privacy_level="PUBLIC_TO_EVERYONE")
    main, private = publish_via_deployment(request, timeout=240, deployment=served_publish_video)
    assert main.state is PostState.published and private.state is PostState.failed
    assert "PUBLIC_TO_EVERYONE" in private.error_message and private.post_id is not None


def test_a_run_without_results_raises_a_clear_error(pipeline, served_publish_video: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Cancelled

    from flows.syndicate import PublishRunError, results_of

    request = PublishRequest(source="s3://nowhere/x.mp4", accounts=["main"], privacy_level="SELF_ONLY")
    run = run_deployment(served_publish_video, parameters={"request": request.model_dump(mode="json")}, timeout=0,
                         scheduled_time=datetime.now(UTC) + timedelta(hours=1))
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Cancelled(message="cancelled by the test"), force=True)
        cancelled = client.read_flow_run(run.id)
    with pytest.raises(PublishRunError, match=f"flow run {cancelled.name} .* ended Cancelled without results"):
        results_of(cancelled.state, f"flow run {cancelled.name} ({cancelled.id})")
