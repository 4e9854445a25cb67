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

import pytest
from prefect.runner import Runner

from flows.models import PublishRequest, PublishResult
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
