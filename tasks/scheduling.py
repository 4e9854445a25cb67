"""Scheduled and deferred posts: Prefect schedules the run, because TikTok has no scheduled publish.

A request with `schedule_at` in the future becomes a run of the publish-video deployment scheduled
for that time (its only parameter is the request). An account whose daily cap is used up becomes a
run of the publish-deferred-post deployment at its next free slot, whose only parameter is the
ledger post: the run reads the request stored with the post. Each run's idempotency key is derived
from its parameters and time, so a retried caller never schedules the same post twice.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from publishing import PublishRequest

#: The deployment that scheduled runs go to (prefect.yaml: flow publish-video, deployment publish-video).
PUBLISH_DEPLOYMENT = "publish-video/publish-video"
#: The deployment that sends a post a daily cap held back (prefect.yaml: publish-deferred-post).
DEFERRED_DEPLOYMENT = "publish-deferred-post/publish-deferred-post"
#: A run that starts up to this much before its schedule_at (clock skew, early pickup) posts at once.
EARLY_START_TOLERANCE = timedelta(seconds=30)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def is_due(request: PublishRequest, now: datetime | None = None) -> bool:
    if request.schedule_at is None:
        return True
    return _aware(request.schedule_at) <= (now or datetime.now(UTC)) + EARLY_START_TOLERANCE


def _key(prefix: str, parameters: dict[str, object]) -> str:
    canonical = json.dumps(parameters, sort_keys=True, default=str)
    return f"{prefix}-{hashlib.sha256(canonical.encode()).hexdigest()}"


def schedule_publish(request: PublishRequest, when: datetime) -> FlowRun:
    """Create a publish-video run scheduled for `when` (idempotent for the same request)."""
    when = _aware(when)
    parameters: dict[str, object] = {"request": request.model_copy(update={"schedule_at": when}).model_dump(mode="json")}
    return run_deployment(PUBLISH_DEPLOYMENT, parameters=parameters, scheduled_time=when, timeout=0,
                          idempotency_key=_key("publish", parameters))


def schedule_deferred(post_id: int, when: datetime) -> FlowRun:
    """Create a publish-deferred-post run for ledger post `post_id` at `when` (idempotent per post and time)."""
    when = _aware(when)
    parameters: dict[str, object] = {"post_id": post_id}
    return run_deployment(DEFERRED_DEPLOYMENT, parameters=parameters, scheduled_time=when, timeout=0,
                          idempotency_key=_key("deferred", {**parameters, "at": when.isoformat()}))
