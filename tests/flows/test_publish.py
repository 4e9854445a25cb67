"""The publish-video flow end to end: moto S3 → ffmpeg → sandbox TikTok, under a Prefect test server."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

import boto3
from prefect.events.worker import EventsWorker
from prefect.testing.fixtures import asserting_and_emitting_events_worker  # noqa: F401 (fixture)

from publishing import PublishRequest
from publishing.sources import safe_local_name
from flows.publish import publish_video
from ledger import PostState
from tests.flows.helpers import artifact, artifacts_of, flow_run_of, run_publish, task_runs_of


def _request(source: str, **overrides) -> PublishRequest:
    fields = {"accounts": ["main"], "caption": "flow test #ci", "privacy_level": "SELF_ONLY"} | overrides
    return PublishRequest(source=source, **fields)


def _probe_duration(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return float(out)


def test_happy_path_two_accounts_transcodes_once_and_posts_each(pipeline, media, prefect_logs) -> None:
    source = pipeline.upload(media.path("landscape"), "in/landscape clip.mp4")
    state, results = run_publish(_request(source, accounts=["main", "private"], privacy_level="MUTUAL_FOLLOW_FRIENDS"))
    assert state.is_completed() and state.message == "2 accounts done — main, private: published"
    assert flow_run_of(state).name == "landscape clip.mp4 → main, private"

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
        events = book.post_events(post.id)
        states = [e.to_state for e in events]
        assert states[-1] is PostState.published and PostState.initialized in states
        # The attempt is on record before init is sent, the publish_id in the very next event.
        kinds = [e.kind for e in events]
        attempt = kinds.index("init_attempt")
        assert kinds[attempt - 1] == "slot_reserved" and events[attempt + 1].to_state is PostState.initialized
        assert events[attempt + 1].data["publish_id"] == result.publish_id
    # The creator disabled duet and stitch: they stay disabled whatever the request said.
    private = next(p for p in posts if p["open_id"] == "sbx-open-id-private-creator")
    assert private["post_info"]["disable_duet"] is True and private["post_info"]["disable_stitch"] is True
    assert pipeline.work_files() == []
    # What the Prefect UI shows: who is posting (TikTok's UX rule), what progressed, the run's table
    # and one artifact per post.
    creator = artifact(state, "creator-private")
    assert "Posting as Private Creator" in creator.data
    assert "duet is disabled" in creator.data and "Music Usage Confirmation" in creator.data
    progress = {a.description: a.data for a in artifacts_of(state) if a.type == "progress"}
    uploads = [d for d in progress if d.startswith("Uploaded ") and "to Studio Main in 1 chunk(s)" in d]
    assert len(uploads) == 1 and results[0].publish_id in uploads[0] and progress[uploads[0]] == 100.0, progress
    local = safe_local_name("in/landscape clip.mp4")  # the working copy: readable, with a hash of the key
    assert local.startswith("landscape clip-") and local.endswith(".mp4")
    assert any(d.startswith(f"{local}: transcode") and progress[d] == 100.0 for d in progress), progress
    table = json.loads(artifact(state, "publish-results").data)
    assert [(row["account"], row["nickname"], row["state"], row["privacy"], row["publish_id"]) for row in table] == [
        (r.account, r.nickname, "published", "MUTUAL_FOLLOW_FRIENDS", r.publish_id) for r in results]
    assert all(isinstance(row[f"{step} s"], float) for row in table for step in ("ingest", "transcode", "init", "upload", "poll"))
    post = artifact(state, "post-main")
    assert post.type == "markdown" and results[0].publish_id in post.data and "**published**" in post.data
    assert post.description == f"Studio Main: published · {results[0].publish_id}"
    # The tasks say what they did.
    logged = "\n".join(r.getMessage() for r in prefect_logs.records)
    assert f"publish_id {results[0].publish_id} recorded" in logged
    assert "chunk 1 of 1 confirmed" in logged and f"status poll 1 of {results[0].publish_id}: PUBLISH_COMPLETE" in logged


def test_source_is_moved_after_success_when_asked(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "drop/clip.mp4")
    result = publish_video(_request(source, source_action="move", move_prefix="posted/"))[0]
    assert result.state is PostState.published
    keys = [o["Key"] for o in pipeline.s3.list_objects_v2(Bucket=pipeline.bucket)["Contents"]]
    assert keys == ["posted/drop/clip.mp4"]


def test_same_request_twice_posts_once(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    first = publish_video(_request(source))
    state, second = run_publish(_request(source))
    assert first[0].state is PostState.published and not first[0].reused
    assert second[0].reused and second[0].post_id == first[0].post_id and second[0].state is PostState.published
    assert state.is_completed()
    assert len(pipeline.sandbox.posts()) == 1
    assert pipeline.work_files() == []
    # A SELF_ONLY post has no public link, and still its artifact says what happened.
    post = artifact(state, "post-main")
    assert first[0].publish_id in post.data and "SELF_ONLY" in post.data and "earlier run" in post.data


def test_privacy_not_in_creator_options_fails_the_run_and_is_recorded(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    state, results = run_publish(_request(source, accounts=["private", "main"], privacy_level="PUBLIC_TO_EVERYONE"))
    by_account = {r.account: r for r in results}
    assert by_account["main"].state is PostState.published
    refused = by_account["private"]
    assert refused.state is PostState.failed and "PUBLIC_TO_EVERYONE" in refused.error_message
    assert len(pipeline.sandbox.posts()) == 1
    # The run is red, naming the account and the reason; its results stay readable.
    assert state.is_failed()
    assert state.message == f"1 of 2 accounts not posted — private: {refused.error_message}"
    assert "FOLLOWER_OF_CREATOR" in state.message
    table = json.loads(artifact(state, "publish-results").data)
    assert [(row["account"], row["done"]) for row in table] == [("private", "NO"), ("main", "yes")]
    assert "PUBLIC_TO_EVERYONE" in table[0]["link or error"]
    # History: the refused post is in the ledger, failed before TikTok was asked.
    book = pipeline.ledger()
    (post,) = book.list_posts(states=[PostState.failed])
    assert post.id == refused.post_id and post.account_name == "private" and post.publish_id is None
    assert "check-creator failed" in book.post_events(post.id)[-1].message

    # Fixed (a privacy the creator offers), the same request carries on with the same post.
    fixed_state, fixed = run_publish(_request(source, accounts=["private"], privacy_level="FOLLOWER_OF_CREATOR"))
    assert fixed_state.is_completed() and fixed[0].post_id == post.id and fixed[0].state is PostState.published
    kinds = [e.kind for e in book.post_events(post.id)]
    assert kinds.count("retry") == 1 and "request" in kinds  # the new request is on record
    assert book.get_post(post.id).privacy_level == "FOLLOWER_OF_CREATOR"


def test_unknown_account_fails_the_run_naming_the_fix(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    state, results = run_publish(_request(source, accounts=["main", "nobody"]))
    assert state.is_failed() and [r.state for r in results] == [PostState.published, PostState.failed]
    assert "1 of 2 accounts not posted — nobody: no account named 'nobody'" in state.message
    assert "`tiktok-pipeline accounts connect nobody`" in state.message
    assert results[1].post_id is None and [p.account_name for p in pipeline.ledger().list_posts()] == ["main"]


def test_inbox_mode_ends_in_the_creators_inbox(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    state, results = run_publish(_request(source, mode="inbox", privacy_level=None))
    assert results[0].state is PostState.sent_to_inbox and results[0].ok and state.is_completed()
    posts = pipeline.sandbox.posts()
    assert len(posts) == 1 and posts[0]["status"] == "SEND_TO_USER_INBOX"


def test_hold_mode_records_a_draft_and_sends_nothing(pipeline, media, prefect_logs) -> None:
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    pipeline.sandbox.add_fault("creator_info", "error_503", times=1)  # retried by Prefect, and the retry says so
    state, results = run_publish(_request(source, mode="hold"))
    assert any("creator check of main: attempt 2 of 3 (retry 1)" in r.getMessage() for r in prefect_logs.records)
    assert results[0].state is PostState.media_ready and results[0].publish_id is None and results[0].held
    assert state.is_completed() and state.message == f"1 account done — main: held as post {results[0].post_id}"
    assert flow_run_of(state).name == "compliant.mp4 → main (hold)"
    assert pipeline.sandbox.posts() == []
    assert pipeline.ledger().get_post(results[0].post_id).mode.value == "hold"
    assert "publish_id: none" in artifact(state, "post-main").data


def test_over_the_creators_max_duration_is_rejected_or_trimmed(pipeline, media) -> None:
    pipeline.reset_sandbox(max_video_post_duration_sec=4)
    source = pipeline.upload(media.path("long"), "in/long.mp4")  # 5 s

    state, rejected = run_publish(_request(source, on_too_long="reject"))
    assert state.is_failed() and "main: " in state.message and "4" in state.message
    assert rejected[0].error_code == "TooLongError" and rejected[0].state is PostState.failed
    assert pipeline.sandbox.posts() == [] and pipeline.work_files() == []
    post = pipeline.ledger().get_post(rejected[0].post_id)  # recorded, with the video's hash
    assert post.state is PostState.failed and post.content_sha256 and "transcode failed" in post.error_message + \
        pipeline.ledger().post_events(post.id)[-1].message

    trimmed = publish_video(_request(source, caption="trimmed"))
    assert trimmed[0].state is PostState.published
    posts = pipeline.sandbox.posts()
    assert len(posts) == 1 and posts[0]["check"]["duration_sec"] <= 4.05


def test_a_creator_allowed_an_hour_is_posted_to_without_a_ten_minute_cap(pipeline, media, prefect_logs) -> None:
    """creator_info may answer up to 3600 s: the transcode takes that limit as it is."""
    pipeline.reset_sandbox(max_video_post_duration_sec=3600)
    source = pipeline.upload(media.path("compliant"), "in/hour.mp4")
    (result,) = publish_video(_request(source, caption="an hour allowed"))
    assert result.state is PostState.published, result.error_message
    logged = "\n".join(r.getMessage() for r in prefect_logs.records)
    assert "longest video 3600 s" in logged


def test_ledger_daily_cap_stops_the_post_before_tiktok(pipeline, media) -> None:
    pipeline.ledger().set_daily_caps("main", direct=1)
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    assert publish_video(_request(source, caption="first"))[0].state is PostState.published
    state, (second,) = run_publish(_request(source, caption="second", cap_policy="fail"))
    assert second.state is PostState.failed and second.error_code == "DailyCapReached" and state.is_failed()
    assert "1 of its 1 direct posts in the last 24 h" in second.error_message
    assert len(pipeline.sandbox.posts()) == 1


def test_creator_cap_reached_on_tiktok_side_fails_clearly(pipeline, media) -> None:
    pipeline.reset_sandbox(daily_post_cap=0)
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    state, (result,) = run_publish(_request(source))
    assert result.state is PostState.failed and state.is_failed()
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


def test_chunk_faults_are_absorbed_and_every_byte_arrives_once(pipeline, big_compliant_clip, monkeypatch, prefect_logs) -> None:
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
    chunks = posts[0]["total_chunk_count"]
    logged = [r.getMessage() for r in prefect_logs.records]
    assert any(f"chunk {chunks} of {chunks} confirmed" in m for m in logged)
    assert any(f"uploaded {big_compliant_clip.stat().st_size} bytes in {chunks} chunk(s)" in m for m in logged)


def test_crash_between_init_and_upload_never_posts_twice_and_resumes(pipeline, media, monkeypatch, prefect_logs) -> None:
    from tiktok import TikTokClient

    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    real_upload = TikTokClient.upload_video

    def worker_died(self, *args, **kwargs):
        raise RuntimeError("worker killed during upload")

    monkeypatch.setattr(TikTokClient, "upload_video", worker_died)
    state, (first,) = run_publish(_request(source))
    assert first.state is PostState.initialized and first.publish_id
    assert "run the same request again" in first.error_message
    assert state.is_failed() and "main: initialized: upload interrupted" in state.message
    assert len(pipeline.sandbox.posts()) == 1

    monkeypatch.setattr(TikTokClient, "upload_video", real_upload)
    second = publish_video(_request(source))[0]
    assert second.state is PostState.published and second.publish_id == first.publish_id
    assert len(pipeline.sandbox.posts()) == 1


def test_missing_s3_object_fails_the_run_is_recorded_and_runs_again_once_uploaded(
    pipeline, media, asserting_and_emitting_events_worker: EventsWorker  # noqa: F811
) -> None:
    source = f"s3://{pipeline.bucket}/later.mp4"
    state, results = run_publish(_request(source, accounts=["main", "private"]))
    assert state.is_failed() and state.message.startswith("2 of 2 accounts not posted — main, private: S3 object not found")
    assert [r.state for r in results] == [PostState.failed, PostState.failed]
    assert pipeline.work_files() == []
    # Recorded although nothing was fetched: under the request's own key (no content hash yet).
    book = pipeline.ledger()
    failed = book.list_posts(states=[PostState.failed])
    assert sorted(p.account_name for p in failed) == ["main", "private"]
    assert all(p.idempotency_key.startswith("unfetched:") and p.content_sha256 == "" for p in failed)
    assert {r.post_id for r in results} == {p.id for p in failed}
    asserting_and_emitting_events_worker.wait_until_empty()
    events = [e for e in asserting_and_emitting_events_worker._client.events if e.event == "tiktok.post.failed"]
    assert sorted(e.resource.id for e in events) == sorted(f"tiktok.post.{r.post_id}" for r in results)
    assert all("not found" in e.payload["error_message"] for e in events)

    # The same request again, still missing: the same records, tried again.
    again_state, again = run_publish(_request(source, accounts=["main", "private"]))
    assert again_state.is_failed() and [r.post_id for r in again] == [r.post_id for r in results]
    assert [e.kind for e in book.post_events(again[0].post_id)].count("retry") == 1

    # Once the object is there, the same request posts, and the failed records are closed.
    pipeline.upload(media.path("compliant"), "later.mp4")
    done_state, done = run_publish(_request(source, accounts=["main", "private"]))
    assert done_state.is_completed() and [r.state for r in done] == [PostState.published, PostState.published]
    assert book.list_posts(states=[PostState.failed]) == []
    for earlier, later in zip(results, done, strict=True):
        closed = book.get_post(earlier.post_id)
        assert closed.state is PostState.discarded and book.post_events(closed.id)[-1].message == f"superseded by post {later.post_id}"


def test_s3_access_denied_fails_clearly(pipeline, media, monkeypatch) -> None:
    import moto.settings

    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    state, (result,) = run_publish(_request(source))
    assert state.is_failed() and result.error_code == "SourceAccessDenied" and "access denied" in state.message
    assert pipeline.work_files() == []
    assert pipeline.sandbox.posts() == []


def _no_aws_credentials(monkeypatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role on this machine either
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # as in a fresh worker: nothing resolved earlier is cached


def test_missing_aws_credentials_fail_the_run_at_once_naming_what_to_set(pipeline, media, monkeypatch, tmp_path) -> None:
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    _no_aws_credentials(monkeypatch, tmp_path)
    state, results = run_publish(_request(source, accounts=["main", "private"]))
    assert state.is_failed()
    assert state.message.startswith(f"2 of 2 accounts not posted — main, private: no AWS credentials to read {source}")
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in state.message and "instance role" in state.message
    # Final: the preflight ran once, not retried, and nothing was fetched.
    runs = {t.name.rsplit("-", 1)[0]: t for t in task_runs_of(state)}
    assert runs["preflight"].state.is_failed() and runs["preflight"].run_count == 1 and "ingest" not in runs
    assert sorted(p.account_name for p in pipeline.ledger().list_posts(states=[PostState.failed])) == ["main", "private"]


def test_no_credentials_while_fetching_is_final(pipeline, media, monkeypatch, tmp_path) -> None:
    """Credentials that vanish after the preflight (expired, rotated away) fail the ingest at once too."""
    from publishing import posting

    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    _no_aws_credentials(monkeypatch, tmp_path)
    monkeypatch.setattr(posting, "has_aws_credentials", lambda settings: True)  # the preflight saw some
    state, (result,) = run_publish(_request(source))
    assert state.is_failed() and result.error_code == "SourceCredentialsMissing"
    runs = {t.name.rsplit("-", 1)[0]: t for t in task_runs_of(state)}
    assert runs["ingest"].state.is_failed() and runs["ingest"].run_count == 1


def test_missing_encryption_key_fails_the_run_at_once_and_still_records_the_posts(pipeline, media, monkeypatch) -> None:
    from prefect.blocks.system import Secret

    from tasks import runtime

    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    monkeypatch.delenv("TIKTOK_PIPELINE_ENCRYPTION_KEY")
    monkeypatch.setattr(runtime, "_block_key", [])
    with contextlib.suppress(ValueError):  # an earlier test may have stored the key as a Secret block
        Secret.delete(runtime.ENCRYPTION_KEY_BLOCK)
    state, results = run_publish(_request(source))
    assert state.is_failed() and "TIKTOK_PIPELINE_ENCRYPTION_KEY" in state.message
    assert "Secret block tiktok-pipeline-encryption-key" in state.message
    runs = {t.name.rsplit("-", 1)[0]: t for t in task_runs_of(state)}
    assert runs["preflight"].run_count == 1 and "check-creator" not in runs
    assert results[0].post_id is not None and pipeline.ledger().get_post(results[0].post_id).state is PostState.failed


def test_an_unreachable_ledger_is_retried_then_fails_the_run_naming_it(pipeline, media, monkeypatch) -> None:
    from sandbox import free_port

    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    monkeypatch.setenv("TIKTOK_PIPELINE_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/ledger")
    state, (result,) = run_publish(_request(source))
    assert state.is_failed() and "main: ledger database postgresql+psycopg://postgres@127.0.0.1:" in state.message
    assert "is unavailable" in state.message and result.post_id is None
    runs = {t.name.rsplit("-", 1)[0]: t for t in task_runs_of(state)}
    assert runs["preflight"].run_count == 3  # retryable (the database may come back): tried 1 + TASK_RETRIES times
    assert "record-failures" not in runs and "ingest" not in runs
