"""Parsing S3 notifications and choosing which keys to publish (pure, no servers)."""

from __future__ import annotations

import json

import pytest

from publishing.s3_events import (
    DISPATCH_LABEL,
    EVENT_NAME,
    KeyFilter,
    ObjectCreated,
    UnreadableMessage,
    event_id,
    parse_notification,
    prefect_event,
)


def _body(*records: dict) -> str:
    return json.dumps({"Records": list(records)})


def _record(key: str, etag: str = "0123abcd", name: str = "ObjectCreated:Put", bucket: str = "media") -> dict:
    # The shape S3 sends (notification-content-structure), keys URL-encoded with + for spaces.
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-22T00:00:00.000Z", "eventName": name,
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
               "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": key, "size": 1234, "eTag": etag, "sequencer": "0055AED6DCD90281E5"}},
    }


def test_the_test_event_holds_nothing_to_publish() -> None:
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-22T00:00:00.000Z", "Bucket": "media"})
    notification = parse_notification(body)
    assert notification.test_event and notification.created == () and notification.ignored == ()


@pytest.mark.parametrize(("encoded", "key"), [
    ("in/my+holiday+clip.mp4", "in/my holiday clip.mp4"),  # + is a space
    ("in/a%2Bb.mp4", "in/a+b.mp4"),  # a real + arrives as %2B
    ("in%2Fcaf%C3%A9+%F0%9F%8E%AC.mp4", "in/café 🎬.mp4"),  # UTF-8 bytes, and moto's encoded slash
    ("in/100%25+real.mov", "in/100% real.mov"),
])
def test_keys_are_url_decoded_with_plus_as_space(encoded: str, key: str) -> None:
    (record,) = parse_notification(_body(_record(encoded))).created
    assert record.key == key
    assert record.uri == f"s3://media/{key}"


@pytest.mark.parametrize("etag", ['"0123abcd"', "0123abcd", ' "0123abcd" '])
def test_etags_lose_their_quotes(etag: str) -> None:
    (record,) = parse_notification(_body(_record("a.mp4", etag=etag))).created
    assert record.etag == "0123abcd"
    assert record.run_key == "media/a.mp4@0123abcd"


def test_only_object_creations_are_kept() -> None:
    body = _body(
        _record("a.mp4", name="ObjectCreated:Put"),
        _record("b.mp4", name="ObjectCreated:CompleteMultipartUpload"),
        _record("c.mp4", name="ObjectRemoved:Delete"),
        _record("d.mp4", name="s3:ObjectCreated:Copy"),
        _record("e.mp4", name="ObjectTagging:Put"),
    )
    notification = parse_notification(body)
    assert [r.key for r in notification.created] == ["a.mp4", "b.mp4", "d.mp4"]
    assert notification.ignored == ("ObjectRemoved:Delete", "ObjectTagging:Put")
    assert notification.created[1].event_name == "ObjectCreated:CompleteMultipartUpload"
    assert notification.created[0].size == 1234 and notification.created[0].sequencer == "0055AED6DCD90281E5"


def test_an_sns_envelope_is_unwrapped() -> None:
    envelope = json.dumps({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:1:t",
                           "Message": _body(_record("in/x+y.mp4"))})
    (record,) = parse_notification(envelope).created
    assert record.key == "in/x y.mp4"


@pytest.mark.parametrize(("body", "problem"), [
    ("not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"hello": "world"}', "no S3 `Records` list"),
    (_body({"eventName": "ObjectCreated:Put"}), "no `s3` section"),
    (_body({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "k.mp4"}}}), "eTag"),
    (json.dumps({"Records": ["x"]}), "not a JSON object"),
])
def test_bodies_that_are_not_s3_notifications_are_unreadable(body: str, problem: str) -> None:
    with pytest.raises(UnreadableMessage, match=problem) as caught:
        parse_notification(body)
    assert caught.value.final


VIDEOS = KeyFilter.of("", ".mp4,.mov,.m4v,.webm,.mkv")


@pytest.mark.parametrize(("key", "reason"), [
    ("clip.mp4", None),
    ("deep/path/clip.MOV", None),  # suffixes match whatever the case
    ("clip.mkv", None),
    ("clip.mp4.json", "a sidecar, never published itself"),
    ("clip.JSON", "a sidecar, never published itself"),
    ("notes.txt", "not a .mp4, .mov, .m4v, .webm, .mkv file"),
    ("clip.mp4.part", "not a .mp4, .mov, .m4v, .webm, .mkv file"),
])
def test_suffix_filter_and_sidecars(key: str, reason: str | None) -> None:
    assert VIDEOS.skip_reason(key) == reason


def test_prefix_filter() -> None:
    only = KeyFilter.of(["brand-a/", "brand-b/"], [".mp4"])
    assert only.skip_reason("brand-a/x.mp4") is None
    assert only.skip_reason("brand-b/sub/x.mp4") is None
    assert only.skip_reason("published/brand-a/x.mp4") == "not under brand-a/, brand-b/"
    assert KeyFilter.of([], []).skip_reason("anything/at-all") is None
    assert KeyFilter.of([], []).skip_reason("anything/at-all.json") is not None  # sidecars never


def test_the_prefect_event_names_the_object_version() -> None:
    record = ObjectCreated(bucket="media", key="in/café 🎬.mp4", etag="abc-2", size=99, event_name="ObjectCreated:Put")
    fields = prefect_event(record, dispatch="listener", flow_run_id="1234")
    assert fields["event"] == EVENT_NAME == "s3.object.created"
    assert fields["resource"]["prefect.resource.id"] == "s3.media.in/café 🎬.mp4"
    assert fields["resource"]["s3.bucket"] == "media" and fields["resource"]["s3.key"] == "in/café 🎬.mp4"
    assert fields["resource"][DISPATCH_LABEL] == "listener"
    assert fields["payload"]["etag"] == "abc-2" and fields["payload"]["size"] == 99
    assert fields["related"] == [{"prefect.resource.id": "prefect.flow-run.1234", "prefect.resource.role": "flow-run"}]
    # Same version, same id (Prefect drops the repeat); another version, another id.
    assert fields["id"] == event_id(record) == prefect_event(record, dispatch="trigger")["id"]
    assert event_id(record) != event_id(ObjectCreated("media", "in/café 🎬.mp4", "abc-3", 99, "ObjectCreated:Put"))
