"""Entry points for other pipelines that syndicate their videos to TikTok.

Inside your own flow, call `publish_to_tiktok(...)`: it runs publish-video as a subflow, so its
tasks, artifacts and retries show under your flow run in the UI. From another process or work
pool, call `publish_via_deployment(...)`: it runs the publish-video deployment and waits for its
typed results.

Both return one PublishResult per account whatever the run's verdict: a publish-video run that did
not post every account is Failed (red in the UI, automations on failure fire), and your flow
decides what that means for it, e.g.

    from flows.syndicate import publish_to_tiktok
    from publishing import verdict

    @flow
    def weekly_show():
        uri = render_episode()
        results = publish_to_tiktok(uri, ["main"], caption="New episode #show", privacy_level="PUBLIC_TO_EVERYONE")
        if not verdict(results).ok:
            raise RuntimeError(verdict(results).message)
"""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import State
from prefect.deployments import run_deployment

from publishing import PublishRequest, PublishResult
from flows.publish import publish_video
from tasks.scheduling import PUBLISH_DEPLOYMENT
from tiktok_pipeline.errors import PipelineError


class PublishRunError(PipelineError):
    """A publish-video run ended without results (crashed, cancelled, or failed before it could
    produce any): the message names the run and its state."""


class PublishRunTimeout(PublishRunError, TimeoutError):
    """The publish-video run did not finish within the caller's timeout; it may still finish later."""


def results_of(state: State, run: str = "the publish-video run") -> list[PublishResult]:
    """The PublishResults a finished publish-video run left in its state, Completed or Failed."""
    try:
        data = state.result(raise_on_failure=False)
    except Exception as exc:  # nothing persisted, storage unreadable, ...
        data = exc
    if isinstance(data, list):
        return [r if isinstance(r, PublishResult) else PublishResult.model_validate(r) for r in data]
    why = f": {data}" if isinstance(data, BaseException) and str(data) != (state.message or "") else ""
    raise PublishRunError(f"{run} ended {state.name} without results ({state.message or 'no message'}){why}",
                          detail={"state": state.name, "message": state.message})


def publish_to_tiktok(source: str, accounts: list[str], *, caption: str = "", privacy_level: str | None = None,
                      **options: Any) -> list[PublishResult]:
    """Publish `source` to `accounts` as a subflow of the calling flow; one PublishResult per account.

    `options` are the other PublishRequest fields (mode, disable_comment, fit, idempotency_key, ...).
    Invalid combinations raise pydantic's ValidationError before anything runs. The results come
    back whatever the verdict (see `publishing.verdict`); only a subflow that produced none raises
    PublishRunError.
    """
    request = PublishRequest(source=source, accounts=accounts, caption=caption, privacy_level=privacy_level, **options)
    return results_of(publish_video(request, return_state=True), "the publish-video subflow")


def publish_via_deployment(request: PublishRequest, *, timeout: float | None = None,
                           deployment: str = PUBLISH_DEPLOYMENT) -> list[PublishResult]:
    """Run the publish-video deployment on its work pool and wait (up to `timeout` s) for the results.

    The results of a Failed run come back too (the run failed because an account was not posted;
    each result says why). PublishRunError only when the run left none (crashed, cancelled),
    PublishRunTimeout when it is not finished after `timeout` s.

    The results travel through Prefect's result storage (publish-video persists them), so the
    caller and the worker must share it (the default local storage on one machine, or a
    configured remote result storage).
    """
    run = run_deployment(deployment, parameters={"request": request.model_dump(mode="json")}, timeout=timeout)
    if not run.state or not run.state.is_final():
        raise PublishRunTimeout(
            f"flow run {run.name} ({run.id}) is still {run.state.name if run.state else 'pending'} after {timeout} s",
            detail={"flow_run_id": str(run.id)},
        )
    return results_of(run.state, f"flow run {run.name} ({run.id})")
