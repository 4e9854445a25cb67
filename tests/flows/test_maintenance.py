"""The scheduled flows: refresh-tokens and cleanup (sweeper + reconciliation with status/fetch)."""

from __future__ import annotations

import os
import time

from prefect.events.worker import EventsWorker
from prefect.testing.fixtures import asserting_and_emitting_events_worker  # noqa: F401 (fixture)

from flows.maintenance import cleanup, refresh_tokens
from flows.models import PublishRequest
from flows.publish import publish_video
from ledger import AccountStatus, PostState
from tasks._workdirs import make_work_dir


def _request(source: str, **overrides) -> PublishRequest:
    fields = {"accounts": ["main"], "caption": "maintenance test", "privacy_level": "SELF_ONLY"} | overrides
    return PublishRequest(source=source, **fields)


def test_refresh_tokens_refreshes_within_margin_and_flags_revoked_grants(pipeline) -> None:
    book = pipeline.ledger()
    before = {a.name: a.access_expires_at for a in book.list_accounts()}
    assert refresh_tokens(margin_hours=0.5) == {"main": "fresh", "private": "fresh"}
    assert refresh_tokens(margin_hours=48) == {"main": "refreshed", "private": "refreshed"}
    after = {a.name: a.access_expires_at for a in book.list_accounts()}
    assert all(after[name] > before[name] for name in before)

    pipeline.sandbox.reset()  # TikTok forgets every grant: the refresh tokens are now invalid
    assert refresh_tokens(margin_hours=48) == {"main": "needs_reconnect", "private": "needs_reconnect"}
    assert {a.status for a in book.list_accounts()} == {AccountStatus.needs_reconnect}


def test_cleanup_reconciles_a_post_still_processing_when_polling_gave_up(
    pipeline, media, monkeypatch, asserting_and_emitting_events_worker: EventsWorker  # noqa: F811
) -> None:
    pipeline.reset_sandbox({"processing_delay": 600})
    monkeypatch.setenv("TIKTOK_PIPELINE_STATUS_POLL_TIMEOUT", "2")
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    result = publish_video(_request(source))[0]
    assert result.state is PostState.processing and not result.ok

    assert cleanup()["posts_checked"] == 1  # TikTok still processing: nothing changes
    assert pipeline.ledger().get_post(result.post_id).state is PostState.processing
    pipeline.sandbox.advance_clock(601)
    outcome = cleanup()
    assert outcome["now_published"] == 1
    assert pipeline.ledger().get_post(result.post_id).state is PostState.published
    assert len(pipeline.sandbox.posts()) == 1
    # What TikTok settled later is announced like an outcome of the publish run.
    asserting_and_emitting_events_worker.wait_until_empty()
    announced = [(e.event, e.resource.id) for e in asserting_and_emitting_events_worker._client.events
                 if e.event.startswith("tiktok.post.")]
    assert announced == [("tiktok.post.processing", f"tiktok.post.{result.post_id}"),
                         ("tiktok.post.published", f"tiktok.post.{result.post_id}")]


def test_cleanup_sees_an_inbox_draft_posted_by_the_creator(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    result = publish_video(_request(source, mode="inbox", privacy_level=None))[0]
    assert result.state is PostState.sent_to_inbox
    cleanup()
    assert pipeline.ledger().get_post(result.post_id).state is PostState.sent_to_inbox
    pipeline.sandbox.publish_from_inbox(result.publish_id)
    cleanup()
    assert pipeline.ledger().get_post(result.post_id).state is PostState.published


def test_cleanup_sweeps_working_directories_left_by_crashed_runs(pipeline) -> None:
    from tasks import _context

    settings = _context.settings()
    stale = make_work_dir(settings, "crashed-run")
    (stale / "source.mp4").write_bytes(b"x" * 1000)
    old = time.time() - 7 * 3600
    for path in (stale / "source.mp4", stale / ".tiktok-pipeline-workdir", stale):
        os.utime(path, (old, old))
    fresh = make_work_dir(settings, "running-run")
    (fresh / "source.mp4").write_bytes(b"y")

    assert cleanup(stale_work_dir_hours=6)["work_dirs_removed"] == 1
    assert not stale.exists() and fresh.exists()
    (fresh / "source.mp4").unlink()
    (fresh / ".tiktok-pipeline-workdir").unlink()
    fresh.rmdir()
