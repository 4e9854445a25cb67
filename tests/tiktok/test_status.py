"""wait_for_publish: backoff schedule, ≤ 30 requests/min, terminal statuses, FAILED, timeout."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

import tiktok
from tiktok import PollPolicy, PublishStatus, TikTokClient

from .conftest import envelope, ok


class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class StatusServer:
    """Answers status/fetch with a scripted list of statuses (the last one repeats)."""

    def __init__(self, time: FakeTime, statuses: list[dict[str, object]]) -> None:
        self.time = time
        self.statuses = statuses
        self.fetch_times: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v2/post/publish/status/fetch/"
        self.fetch_times.append(self.time.now)
        index = min(len(self.fetch_times) - 1, len(self.statuses) - 1)
        return ok(self.statuses[index])


def polling_client(
    make_client: Callable[..., TikTokClient], statuses: list[dict[str, object]]
) -> tuple[TikTokClient, StatusServer, FakeTime]:
    time = FakeTime()
    server = StatusServer(time, statuses)
    return make_client(server, sleep=time.sleep, clock=time.clock), server, time


def assert_at_most_30_per_minute(times: list[float]) -> None:
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t < start + 60) <= 30


def test_backoff_schedule_until_publish_complete(make_client) -> None:  # type: ignore[no-untyped-def]
    processing = {"status": "PROCESSING_UPLOAD", "uploaded_bytes": 100}
    client, server, time = polling_client(make_client, [processing] * 8 + [{"status": "PUBLISH_COMPLETE"}])
    seen: list[str] = []
    status = client.wait_for_publish("v_pub_1", on_status=lambda s: seen.append(s.status))
    assert status.status == "PUBLISH_COMPLETE"
    assert status.publicaly_available_post_id == []  # not there yet, and that is fine
    assert time.sleeps == [5.0, 7.5, 11.25, 16.875, 25.3125, 30.0, 30.0, 30.0]
    assert seen == ["PROCESSING_UPLOAD"] * 8 + ["PUBLISH_COMPLETE"]
    assert len(server.fetch_times) == 9


def test_inbox_upload_stops_at_send_to_user_inbox(make_client) -> None:  # type: ignore[no-untyped-def]
    client, server, _ = polling_client(make_client, [{"status": "PROCESSING_UPLOAD"}, {"status": "SEND_TO_USER_INBOX"}])
    assert client.wait_for_publish("v_inbox").status == "SEND_TO_USER_INBOX"
    assert len(server.fetch_times) == 2


def test_public_post_id_is_returned_when_present(make_client) -> None:  # type: ignore[no-untyped-def]
    done = {"status": "PUBLISH_COMPLETE", "publicaly_available_post_id": [7300000000000000001]}
    client, _, time = polling_client(make_client, [done])
    assert client.wait_for_publish("v").publicaly_available_post_id == [7300000000000000001]
    assert time.sleeps == []


@pytest.mark.parametrize(
    ("reason", "cls", "kind"),
    [
        ("internal", tiktok.PublishFailedInternal, "retryable"),
        ("duration_check_failed", tiktok.PublishMediaRejected, "final"),
        ("auth_removed", tiktok.PublishAuthRemoved, "needs_reauth"),
    ],
)
def test_failed_raises_the_mapped_error_with_the_status(make_client, reason: str, cls: type, kind: str) -> None:  # type: ignore[no-untyped-def]
    failed = {"status": "FAILED", "fail_reason": reason}
    client, _, _ = polling_client(make_client, [{"status": "PROCESSING_UPLOAD"}, failed])
    seen: list[PublishStatus] = []
    with pytest.raises(cls) as caught:
        client.wait_for_publish("v", on_status=seen.append)
    assert caught.value.kind == kind
    assert caught.value.status == PublishStatus(status="FAILED", fail_reason=reason)
    assert seen[-1].status == "FAILED"


def test_timeout_raises_still_processing_without_fetching_past_the_deadline(make_client) -> None:  # type: ignore[no-untyped-def]
    client, server, time = polling_client(make_client, [{"status": "PROCESSING_DOWNLOAD", "downloaded_bytes": 5}])
    with pytest.raises(tiktok.PublishStillProcessing) as caught:
        client.wait_for_publish("v", poll=PollPolicy(timeout=120))
    assert caught.value.retryable
    assert caught.value.status.downloaded_bytes == 5
    assert all(t <= 1000.0 + 120 for t in server.fetch_times)
    assert time.sleeps == [5.0, 7.5, 11.25, 16.875, 25.3125, 30.0]  # next 30 s would end at 126 s


def test_fastest_allowed_policy_stays_within_30_requests_per_minute(make_client) -> None:  # type: ignore[no-untyped-def]
    client, server, _ = polling_client(make_client, [{"status": "PROCESSING_UPLOAD"}])
    with pytest.raises(tiktok.PublishStillProcessing):
        client.wait_for_publish("v", poll=PollPolicy(initial_interval=2, max_interval=2, factor=1, timeout=300))
    assert len(server.fetch_times) == 151  # t = 0, 2, ..., 300 s
    assert_at_most_30_per_minute(server.fetch_times)


@pytest.mark.parametrize(
    "kwargs",
    [{"initial_interval": 1.9}, {"max_interval": 1}, {"factor": 0.5}, {"timeout": 0}, {"initial_interval": 40}],
)
def test_policies_that_could_break_the_rate_limit_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(tiktok.InvalidInput):
        PollPolicy(**kwargs)


def test_api_errors_while_polling_propagate(make_client) -> None:  # type: ignore[no-untyped-def]
    time = FakeTime()
    answers = iter([ok({"status": "PROCESSING_UPLOAD"}), httpx.Response(401, content=envelope(code="access_token_invalid"))])
    client = make_client(lambda request: next(answers), sleep=time.sleep, clock=time.clock)
    with pytest.raises(tiktok.AccessTokenInvalid):
        client.wait_for_publish("v")
    assert time.sleeps == [5.0]


def test_failed_or_lost_status_answers_are_asked_again_at_the_next_interval(make_client) -> None:  # type: ignore[no-untyped-def]
    time = FakeTime()

    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)

    answers = iter([ok({"status": "PROCESSING_UPLOAD"}), httpx.Response(503, content=envelope(code="internal_error")),
                    lost, ok({"status": "PUBLISH_COMPLETE"})])

    def server(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        return answer(request) if callable(answer) else answer

    client = make_client(server, sleep=time.sleep, clock=time.clock)
    assert client.wait_for_publish("v").status == "PUBLISH_COMPLETE"
    assert time.sleeps == [5.0, 7.5, 11.25]  # the schedule goes on as if each had answered PROCESSING


def test_a_status_error_that_outlasts_the_timeout_propagates(make_client) -> None:  # type: ignore[no-untyped-def]
    time = FakeTime()
    client = make_client(lambda request: httpx.Response(503, content=envelope(code="internal_error")),
                         sleep=time.sleep, clock=time.clock)
    with pytest.raises(tiktok.ServerError):
        client.wait_for_publish("v", poll=PollPolicy(initial_interval=5, timeout=20))
    assert sum(time.sleeps) <= 20
