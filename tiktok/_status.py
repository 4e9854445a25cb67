"""Polling status/fetch until a post reaches a terminal status."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pydantic import Field, model_validator

from tiktok._errors import PublishStillProcessing, publish_failed
from tiktok._models import PublishStatus, PublishStatusValue, StrictModel
from tiktok_pipeline.errors import is_retryable

#: status/fetch allows 30 requests per minute per token: never poll more often than every 2 s.
MIN_POLL_INTERVAL = 2.0

StatusCallback = Callable[[PublishStatus], None]


class PollPolicy(StrictModel):
    """Backoff between status fetches: initial_interval × factor^n, capped at max_interval.

    `timeout` bounds the whole wait; TikTok's processing usually takes about a minute but moderation
    can take hours, so callers waiting on publicaly_available_post_id need their own longer schedule.
    """

    initial_interval: float = Field(5.0, ge=MIN_POLL_INTERVAL)
    max_interval: float = Field(30.0, ge=MIN_POLL_INTERVAL)
    factor: float = Field(1.5, ge=1.0)
    timeout: float = Field(900.0, gt=0)

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> PollPolicy:
        if self.max_interval < self.initial_interval:
            raise ValueError("max_interval must be >= initial_interval")
        return self

    def intervals(self) -> Iterator[float]:
        interval = self.initial_interval
        while True:
            yield interval
            interval = min(self.max_interval, interval * self.factor)


def wait_for_publish(
    fetch_status: Callable[[str], PublishStatus],
    publish_id: str,
    *,
    policy: PollPolicy,
    on_status: StatusCallback | None,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> PublishStatus:
    """Fetch right away, then after each interval, until PUBLISH_COMPLETE, SEND_TO_USER_INBOX or FAILED.

    Returns the terminal status for PUBLISH_COMPLETE / SEND_TO_USER_INBOX; raises the `PublishFailed`
    subclass mapped from `fail_reason` for FAILED; raises `PublishStillProcessing` (retryable) when
    the next fetch would fall after `policy.timeout`. A retryable error of status/fetch (a 5xx, an
    answer lost on the way, a rate limit) is asked again at the next interval, as long as that falls
    within `policy.timeout`: the call only reads, so asking again is always safe. Other API errors
    (and the last retryable one) propagate untouched.
    """
    deadline = clock() + policy.timeout
    intervals = policy.intervals()
    while True:
        try:
            status = fetch_status(publish_id)
        except Exception as exc:
            if not is_retryable(exc):
                raise
            interval = next(intervals)
            if clock() + interval > deadline:
                raise
            sleep(interval)
            continue
        if on_status is not None:
            on_status(status)
        if status.status == PublishStatusValue.FAILED:
            raise publish_failed(status)
        if status.is_terminal:
            return status
        interval = next(intervals)
        if clock() + interval > deadline:
            raise PublishStillProcessing(
                f"publish {publish_id} still {status.status} after {policy.timeout:g} s; polling again later is safe",
                status=status,
                detail={"publish_id": publish_id, "status": status.model_dump(mode="json")},
            )
        sleep(interval)
