"""S3 uploads → SQS → listener → publish-s3-object runs → TikTok sandbox, under the Prefect test server.

The deployment is created from the prefect.yaml snippet in docs/s3-events.md (trigger included) and
served by a `prefect.runner.Runner` in a background thread. The runner executes each flow run the
way a process worker does: `python -m prefect.engine` in a subprocess that imports the entrypoint
and inherits this process's environment (the `pipeline` fixture's sandbox, moto, ledger settings).
moto delivers the bucket notifications to SQS itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import boto3
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.events.filters import EventFilter, EventIDFilter
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.runner import Runner
from prefect.utilities.templating import apply_values

from deployments.listener import REASON_ATTRIBUTE, Action, Listener, Outcome, QueueWiring, stop_on_signals, wire_bucket
from publishing.s3_events import ObjectCreated, event_id, parse_notification
from flows.s3_events import publish_s3_object
from publishing.sources import S3Location, parse_s3_uri
from tiktok_pipeline.settings import load_settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "s3-events.md"
MAX_RECEIVES = 3


def documented_deployment() -> dict[str, Any]:
    """The publish-s3-object entry of prefect.yaml as docs/s3-events.md gives it, after the
    templating `prefect deploy` applies to the file."""
    (block,) = re.findall(r"```yaml\n(  - name: publish-s3-object\n.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    (entry,) = yaml.safe_load(block)
    return apply_values(entry, {})


@pytest.fixture(scope="module")
def s3_deployment() -> Iterator[UUID]:
    entry = documented_deployment()
    assert entry["entrypoint"] == "flows/s3_events.py:publish_s3_object"
    assert entry["triggers"][0]["parameters"] == {  # `prefect deploy` left the event templates alone
        "bucket": "{{ event.resource['s3.bucket'] }}", "key": "{{ event.resource['s3.key'] }}",
        "etag": "{{ event.payload['etag'] }}"}
    deployment = publish_s3_object.to_deployment(
        name=entry["name"], triggers=[DeploymentEventTrigger(**t) for t in entry["triggers"]],
        enforce_parameter_schema=entry["enforce_parameter_schema"], tags=entry["tags"],
    )
    runner = Runner(name=f"s3-events-{uuid.uuid4().hex[:6]}", query_seconds=1, pause_on_shutdown=False)
    deployment_id = runner.add_deployment(deployment)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(runner.start(),), name="runner", daemon=True)
    thread.start()
    yield deployment_id
    asyncio.run_coroutine_threadsafe(runner.astop(), loop).result(60)
    thread.join(60)


@pytest.fixture
def wiring(pipeline, moto_server, s3_deployment, monkeypatch: pytest.MonkeyPatch) -> QueueWiring:
    """A queue (N = 3) notified by the test's bucket; short waits so retries come back at once."""
    wired = wire_bucket(pipeline.bucket, endpoint_url=moto_server.endpoint_url, queue_name=f"q-{uuid.uuid4().hex[:10]}",
                        max_receives=MAX_RECEIVES, visibility_timeout=2)
    for name, value in {**wired.env(), "TIKTOK_PIPELINE_S3_WAIT_SECONDS": "1", "TIKTOK_PIPELINE_S3_VISIBILITY_TIMEOUT": "2",
                        "TIKTOK_PIPELINE_S3_RETRY_DELAY": "0"}.items():
        monkeypatch.setenv(name, value)  # the flow run subprocesses inherit these too
    return wired


def _drain(listener: Listener, rounds: int = 1) -> list[Outcome]:
    """Handle what the queue holds; stops after `rounds` empty polls in a row."""
    outcomes: list[Outcome] = []
    empty = 0
    while empty < rounds:
        messages = listener.receive()
        empty = 0 if messages else empty + 1
        outcomes += listener.handle_batch(messages)
    return outcomes


def _runs(deployment_id: UUID, bucket: str) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
    return [r for r in runs if r.parameters.get("bucket") == bucket]


def _finished(run_id: str | UUID, timeout: float = 240) -> FlowRun:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(UUID(str(run_id)))
            if run.state and run.state.is_final():
                return run
            assert time.monotonic() < deadline, f"run {run.name} still {run.state} after {timeout} s"
            time.sleep(0.5)


def _sqs():
    return boto3.client("sqs", endpoint_url=os.environ["TIKTOK_PIPELINE_S3_ENDPOINT_URL"], region_name="us-east-1")


def _queue_messages(url: str) -> list[dict]:
    return _sqs().receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                  MessageAttributeNames=["All"]).get("Messages", [])


def _dispatched(outcomes: list[Outcome]) -> list[str]:
    return [run for o in outcomes for run in o.dispatched]


def test_an_upload_with_a_sidecar_becomes_exactly_one_post(pipeline, media, wiring, s3_deployment) -> None:
    key = "in/my clip – été 🎬 #1.mp4"  # spaces, a real `#`, accents and an emoji
    pipeline.upload(media.path("compliant"), key)
    sidecar = {"accounts": ["main"], "caption": "Été 🎬 from S3 #sidecar", "privacy_level": "SELF_ONLY", "disable_comment": True}
    pipeline.s3.put_object(Bucket=pipeline.bucket, Key=key + ".json", Body=json.dumps(sidecar).encode())

    outcomes = _drain(Listener(load_settings()))
    assert [o.action for o in outcomes] == [Action.deleted] * 3  # test event, video, sidecar
    (run_id,) = _dispatched(outcomes)
    run = _finished(run_id)
    assert run.state.is_completed(), run.state
    etag = pipeline.s3.head_object(Bucket=pipeline.bucket, Key=key)["ETag"].strip('"')
    assert run.parameters == {"bucket": pipeline.bucket, "key": key, "etag": etag}
    assert run.idempotency_key == f"{pipeline.bucket}/{key}@{etag}"

    (post,) = pipeline.sandbox.posts()
    assert post["post_info"]["title"] == sidecar["caption"] and post["post_info"]["privacy_level"] == "SELF_ONLY"
    assert post["post_info"]["disable_comment"] is True
    (row,) = pipeline.ledger().list_posts()
    assert parse_s3_uri(row.source_uri) == S3Location(pipeline.bucket, key) and row.state.value == "published"
    assert [r.id for r in _runs(s3_deployment, pipeline.bucket)] == [run.id]  # the trigger ignored the listener's event
    assert _queue_messages(wiring.queue_url) == [] == _queue_messages(wiring.dead_letter_queue_url)

    # The Prefect event for the alternative wiring, tied to the run.
    record = ObjectCreated(bucket=pipeline.bucket, key=key, etag=etag, size=None, event_name="")
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while not (events := client.read_events(EventFilter(id=EventIDFilter(id=[event_id(record)])), limit=10).events):
            assert time.monotonic() < deadline, "the s3.object.created event never reached the server"
            time.sleep(0.5)
    (event,) = events
    assert event.event == "s3.object.created" and event.resource.id == f"s3.{pipeline.bucket}.{key}"
    assert event.payload["etag"] == etag and event.payload["size"] == media.path("compliant").stat().st_size
    assert event.resource["tiktok-pipeline.dispatch"] == "listener"
    assert [r.id for r in event.related] == [f"prefect.flow-run.{run.id}"]


def test_repeated_and_multipart_notifications_make_one_run_and_one_post(
    pipeline, media, wiring, s3_deployment, monkeypatch
) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_S3_PREFIX_DEFAULTS", json.dumps({"batch/": {"privacy_level": "SELF_ONLY"}}))
    key = "batch/multi part.mp4"
    s3 = pipeline.s3
    upload = s3.create_multipart_upload(Bucket=pipeline.bucket, Key=key,
                                        Metadata={"tiktok-accounts": "main", "tiktok-caption": "multipart"})
    part = s3.upload_part(Bucket=pipeline.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1,
                          Body=media.path("compliant").read_bytes())
    s3.complete_multipart_upload(Bucket=pipeline.bucket, Key=key, UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    listener = Listener(load_settings())
    messages = listener.receive()
    # moto notifies a completed multipart upload twice (Put and CompleteMultipartUpload), same ETag.
    records = [r for m in messages for r in parse_notification(m["Body"]).created]
    assert sorted(r.event_name for r in records) == ["ObjectCreated:CompleteMultipartUpload", "ObjectCreated:Put"]
    assert len({r.etag for r in records}) == 1 and records[0].etag.endswith("-1")
    first = listener.handle_batch(messages)
    assert [o.action for o in first] == [Action.deleted] * 3  # with the test event
    runs = _dispatched(first)
    assert len(runs) == 2 and len(set(runs)) == 1

    # S3 delivers at least once: the same notification again, before and after the run finished.
    body = next(m["Body"] for m in messages if "CompleteMultipartUpload" in m["Body"])
    _sqs().send_message(QueueUrl=wiring.queue_url, MessageBody=body)
    assert _dispatched(_drain(listener)) == runs[:1]
    run = _finished(runs[0])
    assert run.state.is_completed(), run.state
    _sqs().send_message(QueueUrl=wiring.queue_url, MessageBody=body)
    assert _dispatched(_drain(listener)) == runs[:1]

    assert [str(r.id) for r in _runs(s3_deployment, pipeline.bucket)] == runs[:1]
    (post,) = pipeline.sandbox.posts()
    assert post["post_info"]["title"] == "multipart" and post["post_info"]["privacy_level"] == "SELF_ONLY"


def test_a_bad_sidecar_fails_clearly_and_is_dead_lettered_after_n_tries(pipeline, media, wiring, s3_deployment) -> None:
    key = "in/bad.mp4"
    pipeline.upload(media.path("compliant"), key)
    pipeline.s3.put_object(Bucket=pipeline.bucket, Key=key + ".json", Body=b'{"accounts": ["main"], "caption": "no privacy"}')
    expected = f"sidecar s3://{pipeline.bucket}/{key}.json: privacy_level is required for direct and held posts"

    outcomes = [o for o in _drain(Listener(load_settings())) if o.problems]
    # Receives 1 and 2 wait for a better sidecar without starting anything; receive N gives up.
    assert [(o.action, o.receive_count) for o in outcomes] == [
        (Action.retry, 1), (Action.retry, 2), (Action.dead_lettered, MAX_RECEIVES)]
    assert outcomes[0].dispatched == outcomes[1].dispatched == ()
    assert all(o.problems[0].startswith(expected) for o in outcomes)
    (run_id,) = outcomes[2].dispatched

    run = _finished(run_id)
    assert run.state.is_failed() and expected in run.state.message, run.state.message
    (dead,) = _queue_messages(wiring.dead_letter_queue_url)
    assert parse_notification(dead["Body"]).created[0].key == key
    assert dead["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"].startswith(expected)
    assert _queue_messages(wiring.queue_url) == []
    assert pipeline.sandbox.posts() == [] and pipeline.ledger().list_posts() == []
    assert len(_runs(s3_deployment, pipeline.bucket)) == 1


def test_a_sidecar_that_lands_after_the_video_is_waited_for(pipeline, media, wiring, monkeypatch) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_S3_REQUIRE_SIDECAR", "true")
    monkeypatch.setenv("TIKTOK_PIPELINE_S3_RETRY_DELAY", "1")
    key = "in/late.mp4"
    pipeline.s3.upload_file(str(media.path("compliant")), pipeline.bucket, key, ExtraArgs={
        "Metadata": {"tiktok-accounts": "main", "tiktok-privacy": "SELF_ONLY", "tiktok-caption": "from metadata"}})
    listener = Listener(load_settings())
    early = listener.handle_batch(listener.receive())
    waiting = [o for o in early if o.action is Action.retry]
    assert len(waiting) == 1 and "is missing (TIKTOK_PIPELINE_S3_REQUIRE_SIDECAR is on)" in waiting[0].problems[0]

    pipeline.s3.put_object(Bucket=pipeline.bucket, Key=key + ".json", Body=b'{"caption": "from the late sidecar"}')
    later = _drain(listener, rounds=3)  # the video's message is hidden for the retry delay
    (run_id,) = _dispatched(later)
    assert next(o for o in later if o.dispatched).receive_count == 2
    assert _finished(run_id).state.is_completed()
    (post,) = pipeline.sandbox.posts()
    assert post["post_info"]["title"] == "from the late sidecar"  # the sidecar wins over metadata


def test_a_listener_killed_between_receive_and_run_creation_loses_nothing(pipeline, media, wiring, s3_deployment) -> None:
    pipeline.s3.upload_file(str(media.path("compliant")), pipeline.bucket, "in/crash.mp4",
                            ExtraArgs={"Metadata": {"tiktok-accounts": "main", "tiktok-privacy": "SELF_ONLY"}})
    crashed = Listener(load_settings())
    received = crashed.receive()
    assert len(received) == 2  # the test event and the video, now hidden for 2 s
    del crashed  # dies here: no run created, nothing deleted, no visibility extended

    assert _runs(s3_deployment, pipeline.bucket) == []
    survivor = Listener(load_settings())
    outcomes = _drain(survivor, rounds=4)  # empty until the visibility timeout lapses
    assert {o.message_id for o in outcomes} == {m["MessageId"] for m in received}
    assert {o.receive_count for o in outcomes} == {2}
    (run_id,) = _dispatched(outcomes)
    assert _finished(run_id).state.is_completed()
    assert len(pipeline.sandbox.posts()) == 1


class _SignalledWhileHandling(Listener):
    """A listener that gets SIGTERM from outside while it starts its first run."""

    def dispatch(self, record: ObjectCreated) -> str:
        if not self.stop.is_set():
            os.kill(os.getpid(), signal.SIGTERM)
        return super().dispatch(record)


def test_sigterm_finishes_the_message_in_hand_and_releases_the_rest(pipeline, media, wiring, s3_deployment) -> None:
    for name in ("in/first.mp4", "in/second.mp4"):
        pipeline.s3.upload_file(str(media.path("compliant")), pipeline.bucket, name, ExtraArgs={
            "Metadata": {"tiktok-accounts": "main", "tiktok-privacy": "SELF_ONLY", "tiktok-caption": name}})
    stop = threading.Event()
    listener = _SignalledWhileHandling(load_settings(), stop=stop)
    previous = signal.getsignal(signal.SIGTERM)
    with stop_on_signals(stop):
        listener.run()  # returns once the signal is handled: no timeout of its own
    assert stop.is_set() and signal.getsignal(signal.SIGTERM) is previous

    (run,) = _runs(s3_deployment, pipeline.bucket)  # the message in hand got its run
    # The rest of the batch is visible again at once, undeleted.
    (left,) = _queue_messages(wiring.queue_url)
    assert parse_notification(left["Body"]).created[0].key == "in/second.mp4"
    assert _finished(run.id).state.is_completed()
    assert [p["post_info"]["title"] for p in pipeline.sandbox.posts()] == ["in/first.mp4"]


def test_events_only_listener_and_the_documented_trigger_start_the_run(
    pipeline, media, wiring, s3_deployment, monkeypatch
) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_S3_START_RUNS", "false")
    key = "in/by trigger.mp4"
    pipeline.upload(media.path("compliant"), key)
    pipeline.s3.put_object(Bucket=pipeline.bucket, Key=key + ".json",
                           Body=b'{"accounts": ["main"], "privacy_level": "SELF_ONLY", "caption": "via the trigger"}')
    listener = Listener(load_settings())
    (emitted,) = _dispatched(_drain(listener))
    etag = pipeline.s3.head_object(Bucket=pipeline.bucket, Key=key)["ETag"].strip('"')
    assert emitted == str(event_id(ObjectCreated(pipeline.bucket, key, etag, None, "")))

    deadline = time.monotonic() + 120
    while not (runs := _runs(s3_deployment, pipeline.bucket)):
        assert time.monotonic() < deadline, "the trigger started no run"
        time.sleep(0.5)
    (run,) = runs
    assert run.parameters == {"bucket": pipeline.bucket, "key": key, "etag": etag}
    # The same notification again: same event id, which the server drops.
    body = json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": pipeline.bucket}, "object": {"key": "in/by+trigger.mp4", "eTag": etag}}}]})
    _sqs().send_message(QueueUrl=wiring.queue_url, MessageBody=body)
    assert _dispatched(_drain(listener)) == [emitted]
    assert _finished(run.id).state.is_completed()
    assert [r.id for r in _runs(s3_deployment, pipeline.bucket)] == [run.id]
    (post,) = pipeline.sandbox.posts()
    assert post["post_info"]["title"] == "via the trigger"


def test_a_run_that_cannot_be_created_is_retried_then_dead_lettered(
    pipeline, media, wiring, s3_deployment, monkeypatch
) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_S3_DEPLOYMENT", "publish-s3-object/no-such-deployment")
    pipeline.s3.upload_file(str(media.path("compliant")), pipeline.bucket, "in/orphan.mp4",
                            ExtraArgs={"Metadata": {"tiktok-accounts": "main", "tiktok-privacy": "SELF_ONLY"}})
    outcomes = [o for o in _drain(Listener(load_settings())) if o.problems]
    assert [(o.action, o.receive_count) for o in outcomes] == [
        (Action.retry, 1), (Action.retry, 2), (Action.dead_lettered, MAX_RECEIVES)]
    assert all(o.dispatched == () for o in outcomes)
    (dead,) = _queue_messages(wiring.dead_letter_queue_url)
    reason = dead["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
    assert reason.startswith(f"s3://{pipeline.bucket}/in/orphan.mp4: could not start its run: ObjectNotFound")
    assert _runs(s3_deployment, pipeline.bucket) == [] and pipeline.sandbox.posts() == []


def test_an_object_whose_request_a_creator_refuses_ends_failed_with_the_reason(pipeline, media) -> None:
    """In process (no listener): publish-s3-object concludes as its publish-video subflow did."""
    from tests.flows.helpers import flow_run_of

    key = "incoming/refused.mp4"
    pipeline.upload(media.path("compliant"), key)
    sidecar = {"accounts": ["main", "private"], "caption": "refused #s3", "privacy_level": "PUBLIC_TO_EVERYONE"}
    pipeline.s3.put_object(Bucket=pipeline.bucket, Key=key + ".json", Body=json.dumps(sidecar).encode())
    etag = pipeline.s3.head_object(Bucket=pipeline.bucket, Key=key)["ETag"]

    state = publish_s3_object(pipeline.bucket, key, etag, return_state=True)
    assert state.is_failed()
    assert state.message.startswith("1 of 2 accounts not posted — private: privacy PUBLIC_TO_EVERYONE")
    main, private = state.result(raise_on_failure=False)
    assert main.state.value == "published" and private.state.value == "failed" and private.post_id is not None
    assert flow_run_of(state).name == f"refused.mp4 from s3://{pipeline.bucket}/incoming/"

    # An invalid sidecar still fails the run with the problem, before anything is posted.
    pipeline.s3.put_object(Bucket=pipeline.bucket, Key=key + ".json", Body=b'{"accounts": ["main"], "privacy_level": 7}')
    invalid = publish_s3_object(pipeline.bucket, key, etag, return_state=True)
    assert invalid.is_failed() and "privacy_level" in invalid.message and "sidecar" in invalid.message
    assert len(pipeline.sandbox.posts()) == 1


def test_an_object_of_a_bucket_the_settings_do_not_allow_is_not_published(pipeline, media, monkeypatch) -> None:
    """A publish-s3-object run started by hand (or by another trigger) for another bucket fails, naming it."""
    key = "incoming/other-bucket.mp4"
    pipeline.upload(media.path("compliant"), key)
    sidecar = {"accounts": ["main"], "caption": "not ours #s3", "privacy_level": "SELF_ONLY"}
    pipeline.s3.put_object(Bucket=pipeline.bucket, Key=key + ".json", Body=json.dumps(sidecar).encode())
    etag = pipeline.s3.head_object(Bucket=pipeline.bucket, Key=key)["ETag"]
    before = len(pipeline.sandbox.posts())
    monkeypatch.setenv("TIKTOK_PIPELINE_S3_BUCKETS", "only-this-bucket")
    state = publish_s3_object(pipeline.bucket, key, etag, return_state=True)
    assert state.is_failed() and f"bucket {pipeline.bucket!r} is not one" in state.message, state.message
    assert len(pipeline.sandbox.posts()) == before
