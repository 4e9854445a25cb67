"""Outcome notifications from real publish runs (moto S3 → ffmpeg → sandbox TikTok, Prefect test
server): a Prefect event per outcome, signed webhooks to real receivers on 127.0.0.1, and receivers
that fail or are down never changing a post's outcome or the flow run's state.

These live beside the other flow tests so that the session's one Prefect test server serves them.
"""

from __future__ import annotations

import logging
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventIDFilter
from prefect.events.worker import EventsWorker
from prefect.testing.fixtures import asserting_and_emitting_events_worker  # noqa: F401 (fixture)

from publishing import PublishRequest
from flows.publish import publish_video
from ledger import PostState
from tests.plugins.webhook_receiver import receiver, refused_url

SECRET = "whsec_flow_tests"


def _webhooks_to(monkeypatch: pytest.MonkeyPatch, *urls: str) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_WEBHOOK_URLS", ",".join(urls))
    monkeypatch.setenv("TIKTOK_PIPELINE_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("TIKTOK_PIPELINE_WEBHOOK_RETRIES", "2")
    monkeypatch.setenv("TIKTOK_PIPELINE_WEBHOOK_RETRY_BACKOFF", "0")
    monkeypatch.setenv("TIKTOK_PIPELINE_WEBHOOK_TIMEOUT", "5")


def _request(source: str, **overrides) -> PublishRequest:
    fields = {"accounts": ["main"], "caption": "notify test #ci", "privacy_level": "SELF_ONLY"} | overrides
    return PublishRequest(source=source, **fields)


def _stored_event(event_id) -> object:
    """The event as the Prefect server stored it (what automations see); it persists events in batches."""
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_events(filter=EventFilter(id=EventIDFilter(id=[event_id])), limit=10)
            if page.events or time.monotonic() > deadline:
                return page.events[0] if page.events else None
            time.sleep(0.5)


def test_each_outcome_is_a_prefect_event_and_a_signed_webhook(
    pipeline, media, monkeypatch, asserting_and_emitting_events_worker: EventsWorker  # noqa: F811
) -> None:
    with receiver() as hook:
        _webhooks_to(monkeypatch, hook.url)
        source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
        # `private` does not offer PUBLIC_TO_EVERYONE: its post fails before TikTok is asked (recorded all the same).
        state = publish_video(_request(source, accounts=["main", "private"], privacy_level="PUBLIC_TO_EVERYONE"),
                              return_state=True)
    published, failed = state.result(raise_on_failure=False)
    assert published.state is PostState.published and failed.state is PostState.failed and failed.post_id is not None
    assert state.is_failed()

    asserting_and_emitting_events_worker.wait_until_empty()
    recorded = [e for e in asserting_and_emitting_events_worker._client.events if e.event.startswith("tiktok.post.")]
    by_type = {e.event: e for e in recorded}
    assert sorted(by_type) == ["tiktok.post.failed", "tiktok.post.published"] and len(recorded) == 2

    event = by_type["tiktok.post.published"]
    assert event.resource.id == f"tiktok.post.{published.post_id}"
    assert event.resource["tiktok.account"] == "main" and event.resource["tiktok.state"] == "published"
    assert event.resource["tiktok.publish_id"] == published.publish_id and event.resource["tiktok.mode"] == "direct"
    account = next(r for r in event.related if r.role == "tiktok-account")
    assert account.id == "tiktok.account.main"
    # The worker adds the run context: automations can tell which flow run posted it.
    assert any(r.role == "flow-run" for r in event.related)
    assert event.payload == {**published.model_dump(mode="json"), "mode": "direct"}
    assert by_type["tiktok.post.failed"].resource.id == f"tiktok.post.{failed.post_id}"
    assert "PUBLIC_TO_EVERYONE" in by_type["tiktok.post.failed"].payload["error_message"]

    # One signed delivery per outcome, same id and data as the Prefect event.
    assert len(hook.deliveries) == 2 and all(d.verified(SECRET) for d in hook.deliveries)
    bodies = {d.event["type"]: d.event for d in hook.deliveries}
    assert bodies["tiktok.post.published"]["id"] == str(event.id)
    assert bodies["tiktok.post.published"]["data"] == event.payload

    stored = _stored_event(event.id)
    assert stored is not None and stored.event == "tiktok.post.published"
    assert stored.resource.id == f"tiktok.post.{published.post_id}"


def test_receivers_that_fail_or_are_down_never_change_the_outcome(pipeline, media, monkeypatch, prefect_logs) -> None:
    down = refused_url()
    with receiver(500, 500) as flaky, receiver(400) as rejecting:
        _webhooks_to(monkeypatch, flaky.url, rejecting.url, down)
        source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
        state = publish_video(_request(source), return_state=True)

    assert state.is_completed(), state
    [result] = state.result()
    assert result.state is PostState.published and result.error_code is None
    assert pipeline.ledger().get_post(result.post_id).state is PostState.published
    assert len(pipeline.sandbox.posts()) == 1

    # 500, 500, then 200: retried, delivered; each try signed afresh for the same event.
    assert [d.status for d in flaky.deliveries] == [500, 500, 200]
    assert all(d.verified(SECRET) for d in flaky.deliveries)
    assert len({d.event["id"] for d in flaky.deliveries}) == 1 and flaky.deliveries[0].event["type"] == "tiktok.post.published"
    # A 4xx is the receiver's final word: not retried.
    assert [d.status for d in rejecting.deliveries] == [400]
    errors = [r.getMessage() for r in prefect_logs.records if r.levelno >= logging.ERROR and "did not take" in r.getMessage()]
    assert len(errors) == 2, errors
    port = down.split(":")[2].split("/")[0]
    assert any(f"127.0.0.1:{port}/…" in e and "gave up after its retries" in e for e in errors)
    assert any("answered 400" in e and "not retried" in e for e in errors)
    assert all("/hooks/" not in e for e in errors)  # paths (often secret) stay out of the logs


def test_a_hold_draft_is_announced_as_held(pipeline, media, monkeypatch) -> None:
    with receiver() as hook:
        _webhooks_to(monkeypatch, hook.url)
        source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
        [result] = publish_video(_request(source, mode="hold"))
    assert result.state is PostState.media_ready
    [delivery] = hook.deliveries
    assert delivery.verified(SECRET)
    assert delivery.event["type"] == "tiktok.post.held" and delivery.event["data"]["post_id"] == result.post_id
    assert delivery.event["data"]["mode"] == "hold"
