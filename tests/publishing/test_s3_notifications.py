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
    (_body({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "media"}, "object": {"key": "k.mp4"}}}), "eTag"),
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


# --- hostile notifications: each one is refused with its reason on first reading ------------------


def _with(path: str, value: object, *, key: str = "in/clip.mp4") -> str:
    """A real record with the field at dotted `path` set to `value` (`...` deletes it)."""
    record = _record(key)
    *parents, last = path.split(".")
    where = record
    for part in parents:
        where = where[part]
    if value is ...:
        del where[last]
    else:
        where[last] = value
    return _body(record)


DEEP = "[" * 20_000 + "]" * 20_000  # under the size limit, far over the recursion limit


@pytest.mark.parametrize(("body", "problem"), [
    (_with("s3.object.size", "12x"), "invalid `s3.object.size` '12x': a size is a whole number of bytes"),
    (_with("s3.object.size", -1), "invalid `s3.object.size` '-1'"),
    (_with("s3.object.size", 12.5), "invalid `s3.object.size` '12.5'"),
    (_with("s3.object.size", True), "invalid `s3.object.size` 'True'"),
    (_with("s3.object.size", [1]), "invalid `s3.object.size`"),
    ('{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"size": 1' + "0" * 5000 + "}}}]}",
     "not JSON Python can read: Exceeds the limit"),
    (DEEP, "message body is JSON nested too deeply"),
    ('{"Records": [{"eventName": "ObjectCreated:Put", "s3": ' + DEEP + "}]}", "message body is JSON nested too deeply"),
    (_with("s3", [[[["deep"]]]]), "has a `s3` that is a list, not an object"),
    (_with("s3.bucket", "media"), "has a `s3.bucket` that is a string, not an object"),
    (_with("s3.bucket.name", 7), "has a `s3.bucket.name` that is a number, not a string"),
    (_with("s3.bucket.name", "no such/bucket"), "invalid `s3.bucket.name`: 'no such/bucket' is not an S3 bucket name"),
    (_with("s3.bucket.name", ""), "has an empty `s3.bucket.name`"),
    (_with("s3.object", None), "has no `s3.object` section"),
    (_with("s3.object.key", ["a.mp4"]), "has a `s3.object.key` that is a list, not a string"),
    (_with("s3.object.key", ...), "lacks `s3.object.key`"),
    (_with("s3.object.key", ""), "has an empty `s3.object.key`"),
    (_with("s3.object.eTag", 1234), "has a `s3.object.eTag` that is a number, not a string"),
    (_with("s3.object.eTag", '"with space"'), "invalid `s3.object.eTag` '\"with space\"'"),
    (_with("s3.object.sequencer", {"a": 1}), "has a `s3.object.sequencer` that is an object, not a string"),
    (_with("eventTime", 1700000000), "has a `eventTime` that is a number, not a string"),
    (_with("eventName", 5), "has a `eventName` that is a number, not a string"),
    (_with("s3.object.key", "in/50%.mp4"), "a % at position 5 is not followed by two hex digits"),
    (_with("s3.object.key", "in/%G1.mp4"), "a % at position 3 is not followed by two hex digits"),
    (_with("s3.object.key", "in/%FF%FE.mp4"), "its percent-escapes are not UTF-8"),
    (_with("s3.object.key", "a" * 1025), "it is 1025 bytes; S3 keys are at most 1024"),
    (_with("s3.object.key", "%C3%A9" * 513), "it is 1026 bytes; S3 keys are at most 1024"),
    (_body(_record("in/clip.mp4")).replace("in/clip.mp4", "in/\\ud800.mp4"), "not valid Unicode"),
    (json.dumps({"Records": {"0": _record("a.mp4")}}), "no S3 `Records` list"),
    (json.dumps({"Records": []}), "an empty `Records` list"),
    (json.dumps({"Records": [_record(f"{n}.mp4") for n in range(101)]}), "holds 101 records"),
    (json.dumps({"Type": "Notification", "Message": {"Records": []}}), "the SNS envelope's Message must be a string"),
    (json.dumps({"Type": "Notification", "Message": "{oops"}), "the SNS envelope's Message is not JSON"),
    (json.dumps({"Records": [_record("a.mp4")], "padding": "x" * 70_000}), "bytes; an S3 notification is a few KB"),
    (b"\xff\xfe{}", "not UTF-8 text (invalid start byte at byte 0)"),
    ("\ud800", "not valid Unicode text"),
    ("", "not JSON: Expecting value at position 0"),
])
def test_hostile_bodies_are_refused_with_their_reason(body: str | bytes, problem: str) -> None:
    with pytest.raises(UnreadableMessage) as caught:
        parse_notification(body)
    assert problem in str(caught.value) and caught.value.final
    assert len(str(caught.value)) < 2000  # a reason, not a copy of the body


def test_a_bad_record_beside_good_ones_is_refused_alone() -> None:
    bad = _record("in/b.mp4")
    bad["s3"]["object"]["size"] = "lots"
    notification = parse_notification(_body(_record("in/a.mp4"), bad, _record("c.mp4", name="ObjectRemoved:Delete")))
    assert [r.key for r in notification.created] == ["in/a.mp4"] and notification.ignored == ("ObjectRemoved:Delete",)
    (refusal,) = notification.refused
    assert refusal.startswith("S3 event record 2 of 3 has an invalid `s3.object.size` 'lots'")


def test_a_record_without_size_or_times_is_read() -> None:
    record = {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "media"}, "object": {"key": "a.mp4", "eTag": "e"}}}
    (created,) = parse_notification(_body(record)).created
    assert (created.size, created.event_time, created.sequencer) == (None, None, None)


def test_a_test_event_from_any_bucket_holds_nothing() -> None:
    for bucket in ("media", "someone-elses", 7):
        notification = parse_notification(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket}))
        assert notification == parse_notification(json.dumps({"Event": "s3:TestEvent"}))
        assert notification.test_event and notification.created == () and notification.refused == ()


def test_bucket_qualified_prefixes_hold_for_their_bucket_only() -> None:
    only = KeyFilter.of("s3://media/incoming/, shared/", ".mp4")
    assert only.skip_reason("incoming/a.mp4", "media") is None
    assert only.skip_reason("shared/a.mp4", "other-bucket") is None  # a plain prefix holds everywhere
    assert only.skip_reason("incoming/a.mp4", "other-bucket") == "not under shared/, s3://media/incoming/"
    whole = KeyFilter.of(["s3://media"], [])
    assert whole.skip_reason("any/key.mp4", "media") is None
    assert whole.skip_reason("any/key.mp4", "other-bucket") == "not under s3://media/"
