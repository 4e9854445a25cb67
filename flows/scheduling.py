"""Scheduled and deferred posts: Prefect schedules the run, because TikTok has no scheduled publish.

A request with `schedule_at` in the future, and an account whose daily cap is used up, both become
a flow run of the publish-video deployment scheduled for the right time. The run's idempotency key
is derived from its parameters, so a retried caller never schedules the same post twice.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from flows.models import PublishRequest

#: The deployment that scheduled runs go to (prefect.yaml: flow publish-video, deployment publish-video).
PUBLISH_DEPLOYMENT = "publish-video/publish-video"
#: A run that starts up to this much before its schedule_at (clock skew, early pickup) posts at once.
EARLY_START_TOLERANCE = timedelta(seconds=30)


def is_due(request: PublishRequest, now: datetime | None = None) -> bool:
    if request.schedule_at is None:
        return True
    when = request.schedule_at if request.schedule_at.tzinfo else request.schedule_at.replace(tzinfo=UTC)
    return when <= (now or datetime.now(UTC)) + EARLY_START_TOLERANCE


def schedule_publish(request: PublishRequest, when: datetime, *, post_keys: dict[str, str] | None = None) -> FlowRun:
    """Create a publish-video run scheduled for `when` (idempotent for the same parameters)."""
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    parameters: dict[str, object] = {"request": request.model_copy(update={"schedule_at": when}).model_dump(mode="json")}
    if post_keys:
        parameters["post_keys"] = post_keys
    key = hashlib.sha256(json.dumps(parameters, sort_keys=True, default=str).encode()).hexdigest()
    return run_deployment(PUBLISH_DEPLOYMENT, parameters=parameters, scheduled_time=when, timeout=0,
                          idempotency_key=f"publish-{key}")
