"""Telling the world how each post ended: one Prefect event per outcome (automations and other
pipelines react to them) and, when `webhook_urls` are set, a signed POST to every URL.

Notifications never change an outcome: the posts are settled in the ledger before `notify_outcomes`
runs, and nothing it does can raise into the flow. Every delivery (event, URL) is stored in the
ledger's outbox before it is tried, then tried as a `deliver-webhook` task run (visible in the UI,
retried by Prefect on timeouts, connection errors, 429 and 5xx); the flow waits for them, which is
bounded by tries x webhook_timeout plus the backoff, and a receiver that is down costs that bounded
wait, never the post. What is still not taken then stays in the outbox: the `cleanup` flow
redelivers it, same body and event id, for 24 h (`publishing.maintenance.redeliver_webhooks`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import get_run_logger, task
from prefect.events import emit_event
from prefect.futures import PrefectFuture
from prefect.tasks import exponential_backoff

from publishing import PublishResult
from ledger import DeliveryStatus, PublishMode
from tasks import runtime
from tasks.policy import RETRY_JITTER, STEP_OPTIONS, retry_if_retryable_own_count
from publishing.webhooks import WebhookEvent, deliver_stored, outcome_event, redacted, store_deliveries
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


@task(name="deliver-webhook", task_run_name="deliver-webhook-{event_type}", **STEP_OPTIONS,
      retry_condition_fn=retry_if_retryable_own_count)
def deliver_webhook(url: str, delivery_id: int, event_type: str) -> int | None:
    """POST one stored delivery of the outbox to its URL: its stored body, so every try carries the same
    event id and bytes, signed afresh (its timestamp is current). None: nothing to send (taken already,
    or another run is sending it)."""
    current = runtime.settings()
    status = deliver_stored(runtime.ledger(), delivery_id, url, current.webhook_secret.get_secret_value(),
                            timeout=current.webhook_timeout)
    logger = get_run_logger()
    if status is None:
        logger.info("%s delivery %d to %s: delivered already or being sent by another run", event_type, delivery_id,
                    redacted(url))
    else:
        logger.info("%s delivery %d delivered to %s (%d)", event_type, delivery_id, redacted(url), status)
    return status


def notify_outcomes(mode: PublishMode, results: list[PublishResult]) -> None:
    """Emit a `tiktok.post.*` event per result and deliver it to every webhook URL; never raises.

    Each delivery is stored in the ledger's outbox first; one its receiver did not take stays there
    for `cleanup` to redeliver. Call it from inside a flow run (deliveries are submitted as tasks)
    once the results are final.
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
        # Stored before anything is sent: a crash from here on loses nothing (cleanup redelivers).
        stored = store_deliveries(runtime.ledger(), events, current.webhook_urls)
        deliveries: list[tuple[str, str, str, PrefectFuture[int | None]]] = [
            (url, d.event_type, d.event_id, deliver.submit(url, d.id, d.event_type))
            for url, d in stored if d.status is DeliveryStatus.pending
        ]
        for url, event_type, event_id, future in deliveries:
            outcome = future.result(raise_on_failure=False)
            if isinstance(outcome, BaseException):
                why = "gave up after its retries" if is_retryable(outcome) else "not retried"
                logger.error("webhook %s did not take %s %s (%s; kept in the outbox for cleanup to redeliver): %s",
                             redacted(url), event_type, event_id, why, outcome)
    except Exception:  # a notification problem must never turn a settled post into a failed run
        logger.exception("notifying the post outcomes failed; the outcomes themselves are unchanged")
