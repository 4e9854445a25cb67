"""The publish-video flow end to end: moto S3 → ffmpeg → sandbox TikTok, under a Prefect test server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from prefect.events.worker import EventsWorker
from prefect.testing.fixtures import asserting_and_emitting_events_worker  # noqa: F401 (fixture)

from flows.models import PublishRequest
from flows.publish import publish_video
from ledger import PostState
from tasks._sources import SourceAccessDenied, SourceNotFound
from transcode import TooLongError


def _request(source: str, **overrides) -> PublishRequest:
    fields = {"accounts": ["main"], "caption": "flow test #ci", "privacy_level": "SELF_ONLY"} | overrides
    return PublishRequest(source=source, **fields)


def _probe_duration(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return float(out)


def test_happy_path_two_accounts_transcodes_once_and_posts_each(pipeline, media) -> None:
    source = pipeline.upload(media.path("landscape"), "in/landscape clip.mp4")
    results = publish_video(_request(source, accounts=["main", "private"], privacy_level="MUTUAL_FOLLOW_FRIENDS"))

    assert [r.account for r in results] == ["main", "private"]
    assert all(r.state is PostState.published for r in results), results
    assert {r.nickname for r in results} == {"Studio Main", "Private Creator"}
    steps = [t.step for t in results[0].timings]
    assert steps == ["ingest", "transcode", "init", "upload", "poll"]
    posts = pipeline.sandbox.posts()
    assert len(posts) == 2 and {p["status"] for p in posts} == {"PUBLISH_COMPLETE"}
    book = pipeline.ledger()
    for result in results:
        post = book.get_post(result.post_id)
        assert post.publish_id == result.publish_id and post.privacy_level == "MUTUAL_FOLLOW_FRIENDS"
        states = [e.to_state for e in book.post_events(post.id)]
        assert states[-1] is PostState.published and PostState.initialized in states
    # The creator disabled duet and stitch: they stay disabled whatever the request said.
    private = next(p for p in posts if p["open_id"] == "sbx-open-id-private-creator")
    assert private["post_info"]["disable_duet"] is True and private["post_info"]["disable_stitch"] is True
    assert pipeline.work_files() == []
    # What the Prefect UI shows: who is posting (TikTok's UX rule), transfer progress.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        creator = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["creator-private"])))
        progress = [a for a in client.read_artifacts(limit=200) if a.type == "progress"]
    assert creator and "Posting as Private Creator" in creator[0].data
    assert "duet is disabled" in creator[0].data and "Music Usage Confirmation" in creator[0].data
    assert any(a.data == 100.0 and "Uploading to Studio Main" in (a.description or "") for a in progress)


def test_source_is_moved_after_success_when_asked(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "drop/clip.mp4")
    result = publish_video(_request(source, source_action="move", move_prefix="posted/"))[0]
    assert result.state is PostState.published
    keys = [o["Key"] for o in pipeline.s3.list_objects_v2(Bucket=pipeline.bucket)["Contents"]]
    assert keys == ["posted/drop/clip.mp4"]


def test_same_request_twice_posts_once(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    first = publish_video(_request(source))
    second = publish_video(_request(source))
    assert first[0].state is PostState.published and not first[0].reused
    assert second[0].reused and second[0].post_id == first[0].post_id and second[0].state is PostState.published
    assert len(pipeline.sandbox.posts()) == 1
    assert pipeline.work_files() == []


def test_privacy_not_in_creator_options_fails_before_anything_is_sent(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    results = publish_video(_request(source, accounts=["private", "main"], privacy_level="PUBLIC_TO_EVERYONE"))
    by_account = {r.account: r for r in results}
    assert by_account["private"].state is PostState.failed
    assert "PUBLIC_TO_EVERYONE" in by_account["private"].error_message
    assert by_account["main"].state is PostState.published
    assert len(pipeline.sandbox.posts()) == 1


def test_inbox_mode_ends_in_the_creators_inbox(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    results = publish_video(_request(source, mode="inbox", privacy_level=None))
    assert results[0].state is PostState.sent_to_inbox and results[0].ok
    posts = pipeline.sandbox.posts()
    assert len(posts) == 1 and posts[0]["status"] == "SEND_TO_USER_INBOX"


def test_hold_mode_records_a_draft_and_sends_nothing(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    results = publish_video(_request(source, mode="hold"))
    assert results[0].state is PostState.media_ready and results[0].publish_id is None
    assert pipeline.sandbox.posts() == []
    assert pipeline.ledger().get_post(results[0].post_id).mode.value == "hold"


def test_over_the_creators_max_duration_is_rejected_or_trimmed(pipeline, media) -> None:
    pipeline.reset_sandbox(max_video_post_duration_sec=4)
    source = pipeline.upload(media.path("long"), "in/long.mp4")  # 5 s

    with pytest.raises(TooLongError, match="4"):
        publish_video(_request(source, on_too_long="reject"))
    assert pipeline.sandbox.posts() == [] and pipeline.work_files() == []

    trimmed = publish_video(_request(source, caption="trimmed"))
    assert trimmed[0].state is PostState.published
    posts = pipeline.sandbox.posts()
    assert len(posts) == 1 and posts[0]["check"]["duration_sec"] <= 4.05


def test_ledger_daily_cap_stops_the_post_before_tiktok(pipeline, media) -> None:
    pipeline.ledger().set_daily_caps("main", direct=1)
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    assert publish_video(_request(source, caption="first"))[0].state is PostState.published
    second = publish_video(_request(source, caption="second"))[0]
    assert second.state is PostState.failed and second.error_code == "DailyCapReached"
    assert "1 of its 1 direct posts in the last 24 h" in second.error_message
    assert len(pipeline.sandbox.posts()) == 1


def test_creator_cap_reached_on_tiktok_side_fails_clearly(pipeline, media) -> None:
    pipeline.reset_sandbox(daily_post_cap=0)
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    result = publish_video(_request(source))[0]
    assert result.state is PostState.failed
    assert "spam_risk_too_many_posts" in f"{result.error_code} {result.error_message}"
    assert pipeline.sandbox.posts() == []


def test_expired_access_token_is_refreshed_and_the_post_goes_through(pipeline, media) -> None:
    book = pipeline.ledger()
    before = book.get_account("main").access_expires_at
    pipeline.sandbox.advance_clock(pipeline.sandbox.config.access_token_ttl + 60)  # TikTok now rejects the token
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    result = publish_video(_request(source))[0]
    assert result.state is PostState.published
    assert book.get_account("main").access_expires_at > before  # refreshed and stored


def test_chunk_faults_are_absorbed_and_every_byte_arrives_once(pipeline, big_compliant_clip, monkeypatch) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_CHUNK_SIZE", str(5 * 1024 * 1024))
    sandbox = pipeline.sandbox
    sandbox.add_fault("upload", "error_503", times=2)
    sandbox.add_fault("upload", "lost_answer", times=1)
    sandbox.add_fault("upload", "drop", times=1)
    source = pipeline.upload(big_compliant_clip, "in/big.mp4")
    result = publish_video(_request(source))[0]
    assert result.state is PostState.published, result
    posts = sandbox.posts()
    assert len(posts) == 1
    assert posts[0]["video_size"] == big_compliant_clip.stat().st_size
    assert posts[0]["total_chunk_count"] >= 2


def test_crash_between_init_and_upload_never_posts_twice_and_resumes(pipeline, media, monkeypatch) -> None:
    from tiktok import TikTokClient

    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    real_upload = TikTokClient.upload_video

    def worker_died(self, *args, **kwargs):
        raise RuntimeError("worker killed during upload")

    monkeypatch.setattr(TikTokClient, "upload_video", worker_died)
    first = publish_video(_request(source))[0]
    assert first.state is PostState.initialized and first.publish_id
    assert "run the same request again" in first.error_message
    assert len(pipeline.sandbox.posts()) == 1

    monkeypatch.setattr(TikTokClient, "upload_video", real_upload)
    second = publish_video(_request(source))[0]
    assert second.state is PostState.published and second.publish_id == first.publish_id
    assert len(pipeline.sandbox.posts()) == 1


def test_missing_s3_object_fails_clearly_and_leaves_no_files(
    pipeline, asserting_and_emitting_events_worker: EventsWorker  # noqa: F811
) -> None:
    with pytest.raises(SourceNotFound, match="not found"):
        publish_video(_request(f"s3://{pipeline.bucket}/nope.mp4", accounts=["main", "private"]))
    assert pipeline.work_files() == []
    assert pipeline.ledger().list_posts() == []
    asserting_and_emitting_events_worker.wait_until_empty()
    failed = [e for e in asserting_and_emitting_events_worker._client.events if e.event == "tiktok.post.failed"]
    assert sorted(e.resource.id for e in failed) == ["tiktok.post.unrecorded.main", "tiktok.post.unrecorded.private"]
    assert all("not found" in e.payload["error_message"] for e in failed)


def test_s3_access_denied_fails_clearly(pipeline, media, monkeypatch) -> None:
    import moto.settings

    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    with pytest.raises(SourceAccessDenied):
        publish_video(_request(source))
    assert pipeline.work_files() == []
    assert pipeline.sandbox.posts() == []
