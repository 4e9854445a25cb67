"""The Prefect shell of webhooks, without a server: what the tasks are and what they are handed."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

from ledger import PostState, PublishMode
from publishing import PublishResult
from tasks.maintenance import redeliver_pending_webhooks
from tasks.notify import deliver_webhook, outcome_events
from tasks.policy import retry_if_retryable_own_count


def test_a_delivery_task_is_handed_a_stored_delivery_not_an_event() -> None:
    """Every try sends what the outbox stored (same id, same bytes): the task gets the row's id."""
    assert list(inspect.signature(deliver_webhook.fn).parameters) == ["url", "delivery_id", "event_type"]
    assert deliver_webhook.name == "deliver-webhook" and deliver_webhook.task_run_name == "deliver-webhook-{event_type}"
    assert deliver_webhook.retry_condition_fn is retry_if_retryable_own_count  # only timeouts, 429, 5xx
    assert redeliver_pending_webhooks.name == "redeliver-webhooks" and redeliver_pending_webhooks.retries == 0


def test_outcome_events_carry_the_result_and_mode_with_stable_ids() -> None:
    at = datetime(2026, 12, 2, tzinfo=UTC)
    result = PublishResult(account="main", state=PostState.published, post_id=3, idempotency_key="k3")
    [event] = outcome_events([result], PublishMode.direct, occurred_at=at)
    [again] = outcome_events([result], PublishMode.direct, occurred_at=datetime.now(UTC))
    assert event.type == "tiktok.post.published" and event.data == {**result.model_dump(mode="json"), "mode": "direct"}
    assert again.id == event.id  # the same outcome of the same post, reported again: receivers dedupe
