"""Telling the world how each post ended: one Prefect event per outcome (automations and other
pipelines react to them) and, when `webhook_urls` are set, a signed POST to every URL.

Notifications never change an outcome: the posts are settled in the ledger before `notify_outcomes`
runs, and nothing it does can raise into the flow. Deliveries run as `deliver-webhook` task runs
(visible in the UI, retried by Prefect on timeouts, connection errors, 429 and 5xx); the flow waits
for them, which is bounded by tries x webhook_timeout plus the backoff, so nothing is lost when the
flow's process exits, and a receiver that is down costs that bounded wait, never the post.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.futures import PrefectFuture
from prefect.tasks import exponential_backoff

from publishing import PublishResult
from ledger import PublishMode
from tasks import runtime
from tasks.policy import RETRY_JITTER, retry_if_retryable_own_count
from publishing.webhooks import WebhookEvent, outcome_event, redacted, send, webhook_request
from tiktok_pipeline.errors import is_retryable


def outcome_events(results: list[PublishResult], mode: PublishMode, *, occurred_at: datetime) -> list[WebhookEvent]:
    """One event per result; its data is the result as JSON plus the post's mode (no tokens: a
    PublishResult holds none)."""
    return [outcome_event({**r.model_dump(mode="json"), "mode": str(mode)}, occurred_at=occurred_at) for r in results]


def prefect_resource(event: WebhookEvent) -> dict[str, str]:
    """The post as a Prefect resource: `tiktok.post.<ledger id>`, labelled with account, state, mode
    and publish_id. A post that failed before the ledger recorded it is `tiktok.post.unrecorded.<account>`."""
    data = event.data
    post = str(data["post_id"]) if data.get("post_id") is not None else f"unrecorded.{data['account']}"
    resource = {
        "prefect.resource.id": f"tiktok.post.{post}",
        "prefect.resource.name": f"{data['account']} post {post}",
        "tiktok.account": data["account"],
        "tiktok.state": data["state"],
        "tiktok.mode": data["mode"],
    }
    if data.get("publish_id"):
        resource["tiktok.publish_id"] = data["publish_id"]
    return resource


def prefect_related(event: WebhookEvent) -> list[dict[str, str]]:
    account = event.data["account"]
    return [{
        "prefect.resource.id": f"tiktok.account.{account}",
        "prefect.resource.role": "tiktok-account",
        "prefect.resource.name": event.data.get("nickname") or account,
    }]


@task(name="deliver-webhook", task_run_name="deliver-webhook-{event.type}", cache_policy=NO_CACHE,
      retry_condition_fn=retry_if_retryable_own_count)
def deliver_webhook(url: str, event: WebhookEvent) -> int:
    """POST one signed event to one URL; each try is signed afresh, so its timestamp is current."""
    current = runtime.settings()
    request = webhook_request(url, event, current.webhook_secret.get_secret_value(), now=time.time())
    with httpx.Client(timeout=current.webhook_timeout) as client:
        status = send(client, request)
    get_run_logger().info("%s %s delivered to %s (%d)", event.type, event.id, redacted(url), status)
    return status


def notify_outcomes(mode: PublishMode, results: list[PublishResult]) -> None:
    """Emit a `tiktok.post.*` event per result and deliver it to every webhook URL; never raises.

    Call it from inside a flow run (deliveries are submitted as tasks) once the results are final.
    """
    logger = get_run_logger()
    try:
        current = runtime.settings()
        events = outcome_events(results, mode, occurred_at=datetime.now(UTC))
        for event in events:
            emit_event(event.type, resource=prefect_resource(event), related=prefect_related(event),
                       payload=event.data, id=event.id, occurred=event.occurred_at)
        if not current.webhook_urls:
            return
        deliver = deliver_webhook.with_options(
            retries=current.webhook_retries,
            retry_delay_seconds=exponential_backoff(current.webhook_retry_backoff),
            retry_jitter_factor=RETRY_JITTER,
        )
        deliveries: list[tuple[str, WebhookEvent, PrefectFuture[int]]] = [
            (url, event, deliver.submit(url, event)) for event in events for url in current.webhook_urls
        ]
        for url, event, future in deliveries:
            outcome = future.result(raise_on_failure=False)
            if isinstance(outcome, BaseException):
                why = "gave up after its retries" if is_retryable(outcome) else "not retried"
                logger.error("webhook %s did not take %s %s (%s): %s", redacted(url), event.type, event.id, why, outcome)
    except Exception:  # a notification problem must never turn a settled post into a failed run
        logger.exception("notifying the post outcomes failed; the outcomes themselves are unchanged")
