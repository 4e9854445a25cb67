"""The listener against moto's S3 and SQS in server mode, for everything that starts no run.

moto delivers real bucket notifications to SQS in server mode (s3:TestEvent when the notification
is configured, then one message per ObjectCreated), so these tests upload objects and let S3 speak.
Runs, dead-lettering after N receives and shutdown with a message in hand are in
tests/flows/test_s3_events.py, under the Prefect test server.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest

from deployments.listener import (
    NOTIFICATION_ID,
    QUEUE_NAME,
    REASON_ATTRIBUTE,
    RECEIVES_ATTRIBUTE,
    Action,
    Listener,
    ListenerError,
    QueueWiring,
    Readiness,
    VisibilityKeeper,
    bucket_allow_list,
    dead_letter_policy,
    policy_buckets,
    wire_bucket,
)
from deployments.listener.daemon import _MAX_REASON
from publishing.s3_events import ObjectCreated, parse_notification
from tiktok_pipeline.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def wiring(s3_bucket: str, moto_server) -> QueueWiring:
    return wire_bucket(s3_bucket, endpoint_url=moto_server.endpoint_url, queue_name=f"q-{uuid.uuid4().hex[:10]}",
                       max_receives=3, visibility_timeout=2)


@pytest.fixture
def s3(moto_server):
    return boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")


@pytest.fixture
def sqs(moto_server):
    return boto3.client("sqs", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")


def _settings(wiring: QueueWiring, **overrides: object) -> Settings:
    values: dict[str, object] = {"s3_queue_url": wiring.queue_url, "s3_wait_seconds": 1, "s3_visibility_timeout": 2,
                                 "s3_retry_delay": 0} | overrides
    return load_settings(**values)


def _drain(listener: Listener, rounds: int = 1) -> list:
    """Handle what the queue holds: stops after `rounds` empty polls in a row."""
    outcomes, empty = [], 0
    while empty < rounds:
        messages = listener.receive()
        empty = 0 if messages else empty + 1
        outcomes += listener.handle_batch(messages)
    return outcomes


def _all_messages(sqs, url: str) -> list[dict]:
    answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                 MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"])
    return answer.get("Messages", [])


def test_wire_bucket_is_idempotent_and_keeps_other_notifications(s3_bucket: str, moto_server, s3, sqs) -> None:
    other = sqs.create_queue(QueueName=f"other-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    other_arn = sqs.get_queue_attributes(QueueUrl=other, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=s3_bucket, NotificationConfiguration={"QueueConfigurations": [
        {"Id": "someone-else", "QueueArn": other_arn, "Events": ["s3:ObjectRemoved:*"]}]})
    name = f"q-{uuid.uuid4().hex[:10]}"
    first = wire_bucket(s3_bucket, endpoint_url=moto_server.endpoint_url, queue_name=name, max_receives=4, prefix="incoming/")
    again = wire_bucket(s3_bucket, endpoint_url=moto_server.endpoint_url, queue_name=name, max_receives=4, prefix="incoming/")
    assert again == first and first.env() == {"TIKTOK_PIPELINE_S3_QUEUE_URL": first.queue_url}

    configs = s3.get_bucket_notification_configuration(Bucket=s3_bucket)["QueueConfigurations"]
    assert sorted(c["Id"] for c in configs) == sorted(["someone-else", NOTIFICATION_ID])
    ours = next(c for c in configs if c["Id"] == NOTIFICATION_ID)
    assert ours["QueueArn"] == first.queue_arn and ours["Events"] == ["s3:ObjectCreated:*"]
    assert ours["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "incoming/"}]
    redrive = json.loads(sqs.get_queue_attributes(QueueUrl=first.queue_url, AttributeNames=["RedrivePolicy"])
                         ["Attributes"]["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == first.dead_letter_queue_arn and int(redrive["maxReceiveCount"]) == 4

    # The prefix filter is S3's: only incoming/ objects are notified.
    s3.put_object(Bucket=s3_bucket, Key="incoming/a.mp4", Body=b"a")
    s3.put_object(Bucket=s3_bucket, Key="elsewhere/b.mp4", Body=b"b")
    bodies = [json.loads(m["Body"]) for m in _all_messages(sqs, first.queue_url)]
    keys = [r["s3"]["object"]["key"] for b in bodies for r in b.get("Records", [])]
    assert keys == ["incoming%2Fa.mp4"]  # moto encodes the slash too; S3 may not: unquote_plus reads both


def test_dead_letter_policy_comes_from_the_queue_or_the_settings(wiring: QueueWiring, sqs) -> None:
    policy = dead_letter_policy(sqs, wiring.queue_url, _settings(wiring))
    assert policy.max_receives == 3 and policy.queue_url == wiring.dead_letter_queue_url

    bare = sqs.create_queue(QueueName=f"bare-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    with pytest.raises(ListenerError, match="has no dead-letter queue: give it a RedrivePolicy or set "
                                            "TIKTOK_PIPELINE_S3_DEAD_LETTER_QUEUE_URL"):
        dead_letter_policy(sqs, bare, _settings(wiring, s3_queue_url=bare))
    explicit = dead_letter_policy(sqs, bare, _settings(
        wiring, s3_queue_url=bare, s3_dead_letter_queue_url=wiring.dead_letter_queue_url, s3_max_receives=7))
    assert explicit.max_receives == 7 and explicit.queue_url == wiring.dead_letter_queue_url


def test_listener_refuses_to_start_misconfigured(wiring: QueueWiring) -> None:
    with pytest.raises(ListenerError, match="TIKTOK_PIPELINE_S3_QUEUE_URL"):
        Listener(_settings(wiring, s3_queue_url=None))
    with pytest.raises(ListenerError, match="unknown field"):
        Listener(_settings(wiring, s3_prefix_defaults={"a/": {"privacy": "SELF_ONLY"}}))
    # `listen --queue-url` puts the URL in without the settings' own check.
    with pytest.raises(ListenerError, match=r"TIKTOK_PIPELINE_S3_QUEUE_URL or --queue-url\): 'my-queue' is not an http"):
        Listener(_settings(wiring).model_copy(update={"s3_queue_url": "my-queue"}))


def test_test_event_sidecars_and_other_files_are_deleted_without_a_run(wiring: QueueWiring, s3_bucket: str, s3, sqs) -> None:
    s3.put_object(Bucket=s3_bucket, Key="in/clip.mp4.json", Body=b"{}")
    s3.put_object(Bucket=s3_bucket, Key="in/notes.txt", Body=b"x")
    s3.put_object(Bucket=s3_bucket, Key="other/clip.mp4", Body=b"x")
    listener = Listener(_settings(wiring, s3_prefixes="in/"))
    outcomes = _drain(listener)
    assert len(outcomes) == 4  # the test event and three objects
    assert {o.action for o in outcomes} == {Action.deleted} and all(o.dispatched == () for o in outcomes)
    assert _all_messages(sqs, wiring.queue_url) == [] and _all_messages(sqs, wiring.dead_letter_queue_url) == []


def test_an_unreadable_message_is_dead_lettered_at_once_with_its_reason(wiring: QueueWiring, sqs) -> None:
    listener = Listener(_settings(wiring))
    _drain(listener)  # the test event
    sqs.send_message(QueueUrl=wiring.queue_url, MessageBody="hello, not an S3 event")
    (outcome,) = _drain(listener)
    assert outcome.action is Action.dead_lettered and outcome.receive_count == 1
    (dead,) = _all_messages(sqs, wiring.dead_letter_queue_url)
    assert dead["Body"] == "hello, not an S3 event"
    assert "message body is not JSON" in dead["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
    assert dead["MessageAttributes"][RECEIVES_ATTRIBUTE]["StringValue"] == "1"
    assert _all_messages(sqs, wiring.queue_url) == []


def test_deleted_and_replaced_objects_need_no_run(wiring: QueueWiring, s3_bucket: str, s3, sqs) -> None:
    listener = Listener(_settings(wiring))
    _drain(listener)
    s3.put_object(Bucket=s3_bucket, Key="gone.mp4", Body=b"first")
    s3.delete_object(Bucket=s3_bucket, Key="gone.mp4")
    v1 = s3.put_object(Bucket=s3_bucket, Key="again.mp4", Body=b"version 1")["ETag"].strip('"')
    v2 = s3.put_object(Bucket=s3_bucket, Key="again.mp4", Body=b"version 2")["ETag"].strip('"')
    messages = sorted(listener.receive() + listener.receive(), key=lambda m: m["Body"])
    by_version = {parse_notification(m["Body"]).created[0].etag: m for m in messages}
    assert set(by_version) >= {v1, v2} and len(messages) == 3

    gone = next(m for m in messages if parse_notification(m["Body"]).created[0].key == "gone.mp4")
    assert listener.check(parse_notification(gone["Body"]).created[0]) == (
        Readiness.skip, "the object was deleted since the event")
    assert listener.check(parse_notification(by_version[v1]["Body"]).created[0]) == (
        Readiness.skip, f"replaced by a newer version (ETag {v2}), which has its own event")
    outcomes = listener.handle_batch([gone, by_version[v1]])
    assert [o.action for o in outcomes] == [Action.deleted, Action.deleted] and all(o.dispatched == () for o in outcomes)
    # v2 has no request yet (no sidecar, no metadata): it waits for one.
    readiness, reason = listener.check(parse_notification(by_version[v2]["Body"]).created[0])
    assert readiness is Readiness.wait and "accounts: Field required" in reason


def test_a_missing_sidecar_leaves_the_message_for_later(wiring: QueueWiring, s3_bucket: str, s3, sqs) -> None:
    listener = Listener(_settings(wiring, s3_require_sidecar=True, s3_retry_delay=30))
    _drain(listener)
    s3.put_object(Bucket=s3_bucket, Key="in/clip.mp4", Body=b"video",
                  Metadata={"tiktok-accounts": "main", "tiktok-privacy": "SELF_ONLY"})
    (message,) = listener.receive()
    (outcome,) = listener.handle_batch([message])
    assert outcome.action is Action.retry and outcome.receive_count == 1 and outcome.dispatched == ()
    (problem,) = outcome.problems
    assert problem == f"sidecar s3://{s3_bucket}/in/clip.mp4.json is missing (TIKTOK_PIPELINE_S3_REQUIRE_SIDECAR is on)"
    assert listener.receive(wait_seconds=1) == []  # hidden for s3_retry_delay, not deleted
    sqs.change_message_visibility(QueueUrl=wiring.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    (again,) = listener.receive()
    assert again["MessageId"] == message["MessageId"] and again["Attributes"]["ApproximateReceiveCount"] == "2"


def test_messages_in_hand_stay_hidden_while_they_are_handled(wiring: QueueWiring, sqs) -> None:
    sqs.purge_queue(QueueUrl=wiring.queue_url)
    sqs.send_message(QueueUrl=wiring.queue_url, MessageBody="{}")
    (message,) = sqs.receive_message(QueueUrl=wiring.queue_url, VisibilityTimeout=2).get("Messages", [])
    with VisibilityKeeper(sqs, wiring.queue_url, 2, [message]) as keeper:
        time.sleep(4.5)  # more than twice the visibility timeout
        assert sqs.receive_message(QueueUrl=wiring.queue_url, WaitTimeSeconds=0).get("Messages", []) == []
        keeper.done(message)
    (back,) = sqs.receive_message(QueueUrl=wiring.queue_url, WaitTimeSeconds=5).get("Messages", [])
    assert back["MessageId"] == message["MessageId"]


def test_listen_wires_the_bucket_and_stops_cleanly_on_sigterm(s3_bucket: str, moto_server, sqs, tmp_path: Path) -> None:
    # An empty queue needs no Prefect server: the API URL is only required to be set.
    env = {**os.environ, **moto_server.env(), "TIKTOK_PIPELINE_S3_WAIT_SECONDS": "1", "TIKTOK_PIPELINE_DATA_DIR": str(tmp_path),
           "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    env.pop("TIKTOK_PIPELINE_S3_QUEUE_URL", None)
    # The command as `register` adds it to the `tiktok-pipeline` app.
    app = ("import typer; from deployments.cli._listen import register; "
           "app = typer.Typer(); app.callback()(lambda: None); register(app); app()")
    process = subprocess.Popen([sys.executable, "-c", app, "listen", "--wire-bucket", s3_bucket], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)
    reader.start()
    try:
        seen = ""
        while "listening to" not in seen:
            seen += lines.get(timeout=60)  # startup imports Prefect: generous on a busy machine
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        process.kill()
    reader.join(10)  # the pipe is at its end
    output = seen + "".join(lines.get() for _ in range(lines.qsize()))
    queue_url = sqs.get_queue_url(QueueName=QUEUE_NAME)["QueueUrl"]
    assert process.returncode == 0, output
    assert f"s3://{s3_bucket} notifies {queue_url} (dead letters: {queue_url}-dead-letter)" in output
    assert f"listening to {queue_url} (dead letters after 5 receives to {queue_url}-dead-letter)" in output
    assert "SIGTERM: stopping after the message in hand" in output and f"stopped listening to {queue_url}" in output



# --- malformed notifications and the bucket allow-list --------------------------------------------


def _s3_record(bucket: str, key: str = "in/clip.mp4", **object_fields: object) -> dict:
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "eventTime": "2026-11-22T00:00:00.000Z",
            "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 5, "eTag": "0123abcd", **object_fields}}}


def _hostile(bucket: str) -> dict[str, tuple[str, str]]:
    """Bodies that are, or claim to be, notifications of `bucket`, and the reason each must give."""
    def one(**fields: object) -> str:
        return json.dumps({"Records": [_s3_record(bucket, **fields)]})

    return {
        "non-numeric size": (one(size="12x"), "invalid `s3.object.size` '12x'"),
        "negative size": (one(size=-5), "invalid `s3.object.size` '-5'"),
        "deeply nested": ('{"Records": [' + "[" * 20_000 + "]" * 20_000 + "]}", "nested too deeply"),
        "key of the wrong type": (one(key={"k": 1}), "has a `s3.object.key` that is an object, not a string"),
        "no eTag": (json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
            "bucket": {"name": bucket}, "object": {"key": "in/x.mp4"}}}]}), "lacks `s3.object.eTag`"),
        "bad percent-encoding": (one(key="in/50%+off.mp4"), "a % at position 5 is not followed by two hex digits"),
        "escapes that are not UTF-8": (one(key="in/%C3%28.mp4"), "its percent-escapes are not UTF-8"),
        "a lone surrogate": (one(key="in/clip.mp4").replace("in/clip.mp4", "in/\\udc80.mp4"), "not valid Unicode"),
        "huge": (json.dumps({"Records": [_s3_record(bucket)], "pad": "x" * 100_000}), "bytes; an S3 notification is"),
        "not an S3 event": ('{"hello": "world"}', "no S3 `Records` list"),
        "an ESC in the key": (one(key="in/%1B%5B31m.mp4", size="big"), "invalid `s3.object.size` 'big'"),
    }


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert all(r.exc_info is None for r in shown), [r.getMessage() for r in shown if r.exc_info]
    assert all("\n" not in r.getMessage() and "\x1b" not in r.getMessage() for r in shown)


def test_malformed_notifications_are_dead_lettered_on_their_first_receive(
    wiring: QueueWiring, s3_bucket: str, sqs, caplog: pytest.LogCaptureFixture
) -> None:
    listener = Listener(_settings(wiring))
    _drain(listener)  # the test event
    hostile = _hostile(s3_bucket)
    for body, _ in hostile.values():
        sqs.send_message(QueueUrl=wiring.queue_url, MessageBody=body)
    with caplog.at_level(logging.DEBUG, logger="tiktok_pipeline.listener"):
        outcomes = _drain(listener)
    assert len(outcomes) == len(hostile)
    assert [(o.action, o.receive_count, o.dispatched) for o in outcomes] == [(Action.dead_lettered, 1, ())] * len(hostile)
    assert all(o.problems == o.refused and o.refused for o in outcomes)
    dead = {m["Body"]: m for m in _all_messages(sqs, wiring.dead_letter_queue_url) + _all_messages(
        sqs, wiring.dead_letter_queue_url)}
    for name, (body, reason) in hostile.items():
        attributes = dead[body]["MessageAttributes"]  # the body as it came, for a replay
        assert reason in attributes[REASON_ATTRIBUTE]["StringValue"], name
        assert attributes[RECEIVES_ATTRIBUTE]["StringValue"] == "1"
    assert _all_messages(sqs, wiring.queue_url) == []
    _no_tracebacks(caplog)


def _other_bucket(moto_server, s3, wiring: QueueWiring) -> str:
    """Another bucket whose notifications reach the same queue (the wiring's policy names only its own)."""
    other = f"other-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=other)
    s3.put_bucket_notification_configuration(Bucket=other, NotificationConfiguration={"QueueConfigurations": [
        {"Id": "elsewhere", "QueueArn": wiring.queue_arn, "Events": ["s3:ObjectCreated:*"]}]})
    return other


PUBLISHABLE = {"tiktok-accounts": "main", "tiktok-privacy": "SELF_ONLY", "tiktok-caption": "not ours"}


def test_a_notification_from_another_bucket_is_dead_lettered_never_published(
    wiring: QueueWiring, s3_bucket: str, moto_server, s3, sqs, caplog: pytest.LogCaptureFixture
) -> None:
    other = _other_bucket(moto_server, s3, wiring)
    listener = Listener(_settings(wiring))
    assert listener.buckets.buckets == (s3_bucket,) and listener.buckets.source == "the queue policy"
    _drain(listener)  # the test events
    s3.put_object(Bucket=other, Key="in/clip.mp4", Body=b"video", Metadata=PUBLISHABLE)  # a valid request
    dispatched: list[ObjectCreated] = []
    listener.dispatch = lambda record: dispatched.append(record) or "run"  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="tiktok_pipeline.listener"):
        (outcome,) = _drain(listener)
    assert outcome.action is Action.dead_lettered and outcome.receive_count == 1 and dispatched == []
    (reason,) = outcome.refused
    assert reason == (f"s3://{other}/in/clip.mp4: the bucket '{other}' is not one this listener publishes "
                      f"({s3_bucket}, from the queue policy)")
    (dead,) = _all_messages(sqs, wiring.dead_letter_queue_url)
    assert parse_notification(dead["Body"]).created[0].bucket == other
    assert dead["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"] == reason
    assert any(reason in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)

    # The same upload to the listener's own bucket is checked and dispatched.
    s3.put_object(Bucket=s3_bucket, Key="in/clip.mp4", Body=b"video", Metadata=PUBLISHABLE)
    (outcome,) = _drain(listener)
    assert outcome.action is Action.deleted and [r.bucket for r in dispatched] == [s3_bucket]


def test_the_allow_list_comes_from_the_settings_first(wiring: QueueWiring, s3_bucket: str, moto_server, s3, sqs) -> None:
    other = _other_bucket(moto_server, s3, wiring)
    only_other = Listener(_settings(wiring, s3_buckets=other))
    assert only_other.buckets.buckets == (other,) and only_other.buckets.source == "TIKTOK_PIPELINE_S3_BUCKETS"
    by_prefix = Listener(_settings(wiring, s3_prefixes=f"s3://{other}/in/, s3://{s3_bucket}/in/, shared/"))
    assert by_prefix.buckets.buckets == (other, s3_bucket)
    assert by_prefix.buckets.source == "the buckets TIKTOK_PIPELINE_S3_PREFIXES names"
    _drain(only_other)
    s3.put_object(Bucket=s3_bucket, Key="in/clip.mp4", Body=b"video", Metadata=PUBLISHABLE)
    (outcome,) = _drain(only_other)
    assert outcome.action is Action.dead_lettered and outcome.refused == (
        f"s3://{s3_bucket}/in/clip.mp4: the bucket '{s3_bucket}' is not one this listener publishes "
        f"({other}, from TIKTOK_PIPELINE_S3_BUCKETS)",)


def test_a_listener_that_cannot_tell_its_buckets_refuses_to_start(wiring: QueueWiring, sqs) -> None:
    bare = sqs.create_queue(QueueName=f"bare-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    settings = _settings(wiring, s3_queue_url=bare, s3_dead_letter_queue_url=wiring.dead_letter_queue_url)
    with pytest.raises(ListenerError, match="cannot tell which buckets' notifications to publish: set "
                                            "TIKTOK_PIPELINE_S3_BUCKETS"):
        Listener(settings)
    assert bucket_allow_list(sqs, bare, settings.model_copy(update={"s3_buckets": ["media"]})).buckets == ("media",)


@pytest.mark.parametrize(("policy", "buckets"), [
    ({"Statement": [{"Effect": "Allow", "Condition": {"ArnEquals": {"aws:SourceArn": "arn:aws:s3:::media"}}}]},
     ("media",)),
    ({"Statement": {"Effect": "Allow", "Condition": {"ArnLike": {"aws:SourceArn": ["arn:aws:s3:::a-1",
                                                                                   "arn:aws:s3:::b-*"]}}}},
     ("a-1",)),  # a wildcard names no bucket
    ({"Statement": [{"Effect": "Deny", "Condition": {"ArnEquals": {"aws:SourceArn": "arn:aws:s3:::media"}}}]}, ()),
    ({"Statement": [{"Effect": "Allow", "Condition": {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:1:t"}}}]},
     ()),
    ({"Statement": [{"Effect": "Allow"}]}, ()),
    ("not json", ()),
    ([1, 2], ()),
])
def test_the_buckets_a_queue_policy_names(policy: object, buckets: tuple[str, ...]) -> None:
    assert policy_buckets(policy if isinstance(policy, str) else json.dumps(policy)) == buckets


class _Buggy(Listener):
    def check(self, record: ObjectCreated):  # type: ignore[no-untyped-def]
        raise KeyError("a bug nobody classified")


def test_an_unexpected_error_is_one_line_then_dead_lettered_with_its_reason(
    wiring: QueueWiring, s3_bucket: str, s3, sqs, caplog: pytest.LogCaptureFixture
) -> None:
    listener = _Buggy(_settings(wiring))
    _drain(listener)
    s3.put_object(Bucket=s3_bucket, Key="in/clip.mp4", Body=b"video", Metadata=PUBLISHABLE)
    with caplog.at_level(logging.INFO, logger="tiktok_pipeline.listener"):
        outcomes = _drain(listener)  # retry delay 0: every receive at once
    assert [(o.action, o.receive_count) for o in outcomes] == [(Action.retry, 1), (Action.retry, 2),
                                                               (Action.dead_lettered, 3)]
    problem = "unexpected error while handling it: KeyError: 'a bug nobody classified'"
    assert all(o.problems == (problem,) and o.refused == () for o in outcomes)
    (dead,) = _all_messages(sqs, wiring.dead_letter_queue_url)
    assert dead["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"] == problem
    _no_tracebacks(caplog)


def test_the_reason_gives_way_to_the_body_in_a_full_dead_letter_queue(wiring: QueueWiring, sqs) -> None:
    limit = 70_000
    sqs.set_queue_attributes(QueueUrl=wiring.dead_letter_queue_url, Attributes={"MaximumMessageSize": str(limit)})
    listener = Listener(_settings(wiring))
    assert listener.policy.max_message_bytes == limit
    _drain(listener)
    body = "x" * (limit - 120)  # too big to be a notification, and leaving 120 bytes for the attributes
    sqs.send_message(QueueUrl=wiring.queue_url, MessageBody=body)
    (outcome,) = _drain(listener)
    assert outcome.action is Action.dead_lettered
    (dead,) = _all_messages(sqs, wiring.dead_letter_queue_url)
    attributes = dead["MessageAttributes"]
    size = len(dead["Body"].encode()) + sum(len(name) + len(a["DataType"]) + len(a["StringValue"].encode())
                                            for name, a in attributes.items())
    assert dead["Body"] == body and size <= limit  # what SQS counts against MaximumMessageSize
    reason = attributes[REASON_ATTRIBUTE]["StringValue"]  # cut to what is left: 120 minus the names and types
    assert reason == f"message body is {limit - 120} bytes; an S3 notification is a few KB"[:53] + "..."
    assert _MAX_REASON > len(outcome.problems[0]) > len(reason)


def test_wiring_a_second_bucket_keeps_the_first_ones_permission(s3_bucket: str, moto_server, s3, sqs) -> None:
    name = f"q-{uuid.uuid4().hex[:10]}"
    second = f"second-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=second)
    first = wire_bucket(s3_bucket, endpoint_url=moto_server.endpoint_url, queue_name=name)
    wire_bucket(second, endpoint_url=moto_server.endpoint_url, queue_name=name)
    again = wire_bucket(s3_bucket, endpoint_url=moto_server.endpoint_url, queue_name=name)  # idempotent
    policy = sqs.get_queue_attributes(QueueUrl=first.queue_url, AttributeNames=["Policy"])["Attributes"]["Policy"]
    assert policy_buckets(policy) == (s3_bucket, second) and again == first
    (statement,) = json.loads(policy)["Statement"]
    assert statement["Resource"] == first.queue_arn and statement["Principal"] == {"Service": "s3.amazonaws.com"}
    listener = Listener(load_settings(s3_queue_url=first.queue_url, s3_wait_seconds=1))
    assert listener.buckets.buckets == (s3_bucket, second) and listener.buckets.source == "the queue policy"
