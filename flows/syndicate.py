"""Entry points for other pipelines that syndicate their videos to TikTok.

Inside your own flow, call `publish_to_tiktok(...)`: it runs publish-video as a subflow, so its
tasks, artifacts and retries show under your flow run in the UI. From another process or work
pool, call `publish_via_deployment(...)`: it runs the publish-video deployment and waits for its
typed results.

    from flows.syndicate import publish_to_tiktok

    @flow
    def weekly_show():
        uri = render_episode()
        results = publish_to_tiktok(uri, ["main"], caption="New episode #show", privacy_level="PUBLIC_TO_EVERYONE")
        assert all(r.ok for r in results)
"""

from __future__ import annotations

from typing import Any

from prefect.deployments import run_deployment

from flows.models import PublishRequest, PublishResult
from flows.publish import publish_video
from flows.scheduling import PUBLISH_DEPLOYMENT


def publish_to_tiktok(source: str, accounts: list[str], *, caption: str = "", privacy_level: str | None = None,
                      **options: Any) -> list[PublishResult]:
    """Publish `source` to `accounts` as a subflow of the calling flow; one PublishResult per account.

    `options` are the other PublishRequest fields (mode, disable_comment, fit, idempotency_key, ...).
    Invalid combinations raise pydantic's ValidationError before anything runs.
    """
    request = PublishRequest(source=source, accounts=accounts, caption=caption, privacy_level=privacy_level, **options)
    return publish_video(request)


def publish_via_deployment(request: PublishRequest, *, timeout: float | None = None,
                           deployment: str = PUBLISH_DEPLOYMENT) -> list[PublishResult]:
    """Run the publish-video deployment on its work pool and wait (up to `timeout` s) for the results.

    The results travel through Prefect's result storage (publish-video persists them), so the
    caller and the worker must share it (the default local storage on one machine, or a
    configured remote result storage).
    """
    run = run_deployment(deployment, parameters={"request": request.model_dump(mode="json")}, timeout=timeout)
    if not run.state or not run.state.is_final():
        raise TimeoutError(f"flow run {run.id} is still {run.state.name if run.state else 'pending'} after {timeout} s")
    return [PublishResult.model_validate(r) for r in run.state.result()]
