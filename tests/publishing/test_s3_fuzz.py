"""Property tests: random and hostile input to the notification parser and the sidecar/metadata parser.

Every input ends in a typed refusal (UnreadableMessage, a refused record, S3RequestInvalid) or in a
valid result whose fields hold what S3 allows; never in another exception. The generators start
from real shapes (S3's notification, a valid sidecar) and break them at random places, so the
checks deep inside are reached, not only the first `isinstance`.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote, quote_plus

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from publishing import PublishRequest
from publishing.s3_events import (
    MAX_KEY_BYTES,
    MAX_SIDECAR_BYTES,
    Notification,
    ObjectSnapshot,
    S3RequestInvalid,
    UnreadableMessage,
    check_prefix_defaults,
    metadata_fields,
    metadata_names,
    parse_notification,
    request_for_object,
    sidecar_fields,
)
from publishing.sources import S3Location
from tiktok_pipeline.settings import bucket_name_problem

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- JSON of any shape, with the values that break naive parsers -------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["", " ", "%", "%G1", "%FF", "+", "\ud800", "\x00", "\u202e", "ObjectCreated:Put", "s3:TestEvent",
                     "Notification", "1e999", "-1", "12x", "a" * 1100]),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)


def real_record(key: str = "in/clip.mp4", bucket: str = "media") -> dict[str, Any]:
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-22T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
               "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key, safe="/"), "size": 1234, "eTag": "0123abcd",
                          "sequencer": "0055AED6DCD90281E5"}},
    }


PATHS = [
    (), ("eventName",), ("eventTime",), ("s3",), ("s3", "bucket"), ("s3", "bucket", "name"), ("s3", "object"),
    ("s3", "object", "key"), ("s3", "object", "size"), ("s3", "object", "eTag"), ("s3", "object", "sequencer"),
]


@st.composite
def broken_records(draw: st.DrawFn) -> Any:
    """S3's record with some fields replaced by random JSON, or deleted."""
    record: Any = real_record()
    for path in draw(st.lists(st.sampled_from(PATHS), max_size=3)):
        replacement = draw(st.one_of(json_values, st.just(...)))
        if not path:
            record = {} if replacement is ... else replacement
            continue
        where = record
        for part in path[:-1]:
            if not isinstance(where, dict) or not isinstance(where.get(part), dict):
                break
            where = where[part]
        else:
            if isinstance(where, dict):
                if replacement is ...:
                    where.pop(path[-1], None)
                else:
                    where[path[-1]] = replacement
    return record


def check_outcome(body: str | bytes) -> Notification | UnreadableMessage:
    """The property itself: a Notification whose records hold what S3 allows, or a final refusal."""
    try:
        notification = parse_notification(body)
    except UnreadableMessage as exc:
        assert exc.final and str(exc)
        assert len(str(exc)) < 3000
        return exc
    assert isinstance(notification, Notification)
    for record in notification.created:
        assert bucket_name_problem(record.bucket) is None
        assert isinstance(record.key, str) and 0 < len(record.key.encode("utf-8")) <= MAX_KEY_BYTES
        assert isinstance(record.etag, str) and record.etag and '"' not in record.etag
        assert record.size is None or (type(record.size) is int and record.size >= 0)
        assert record.event_time is None or isinstance(record.event_time, str)
        assert record.sequencer is None or isinstance(record.sequencer, str)
        assert record.event_name.removeprefix("s3:").startswith("ObjectCreated:")
    assert all(isinstance(reason, str) and reason for reason in notification.refused)
    return notification


@FAST
@given(json_values)
@example({"Records": [None]})
@example({"Type": "Notification", "Message": json.dumps({"Type": "Notification", "Message": "{}"})})
def test_any_json_is_a_notification_or_refused(value: Any) -> None:
    check_outcome(json.dumps(value))


@FAST
@given(st.lists(broken_records(), min_size=1, max_size=4), st.booleans())
def test_broken_s3_records_are_each_read_or_refused(records: list[Any], in_sns: bool) -> None:
    body = json.dumps({"Records": records})
    if in_sns:
        body = json.dumps({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": body})
    outcome = check_outcome(body)
    if isinstance(outcome, Notification):  # every record is accounted for, once
        assert len(outcome.created) + len(outcome.ignored) + len(outcome.refused) == len(records)


@FAST
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
@example("{" * 5000)
@example(b'{"Records": [' + b"[" * 30_000 + b"]" * 30_000 + b"]}")
@example('{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"size": 1' + "0" * 5000 + "}}}]}")
def test_any_text_or_bytes_is_a_notification_or_refused(body: str | bytes) -> None:
    check_outcome(body)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=30_000), st.sampled_from(["[]", "{}"]))
def test_nesting_of_any_depth_is_refused_not_a_crash(depth: int, brackets: str) -> None:
    opening, closing = brackets
    inner = (opening + ('"a":' if opening == "{" else "")) * (depth - 1) + opening + closing + closing * (depth - 1)
    check_outcome('{"Records": [{"eventName": "ObjectCreated:Put", "s3": ' + inner + "}]}")


keys = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=300).filter(
    lambda k: len(k.encode("utf-8")) <= MAX_KEY_BYTES)


@FAST
@given(keys, st.sampled_from(["s3", "moto"]))
@example("in/my clip – été 🎬 #1?.mp4", "s3")
@example("100% + real.mov", "moto")
def test_every_valid_key_comes_back_exactly(key: str, encoder: str) -> None:
    # S3 encodes keys with + for spaces and keeps slashes; moto encodes the slash too.
    encoded = quote_plus(key, safe="/") if encoder == "s3" else quote(key, safe="").replace("%20", "+")
    record = real_record()
    record["s3"]["object"]["key"] = encoded
    (created,) = parse_notification(json.dumps({"Records": [record]})).created
    assert created.key == key and created.uri == f"s3://media/{key}"


# --- the sidecar and metadata parser ---------------------------------------------------------------

FIELDS = sorted(set(PublishRequest.model_fields) - {"source"})
LOCATION = S3Location("media", "brand-a/clip.mp4")
VALID_SIDECAR = {"accounts": ["main"], "caption": "hello #x", "privacy_level": "SELF_ONLY"}


@st.composite
def sidecars(draw: st.DrawFn) -> bytes:
    """Raw bytes, random JSON, or a valid sidecar with some fields replaced by random values."""
    kind = draw(st.sampled_from(["bytes", "json", "fields"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    fields: dict[str, Any] = dict(VALID_SIDECAR)
    for name in draw(st.lists(st.sampled_from([*FIELDS, "source", "unknown_field"]), max_size=4)):
        fields[name] = draw(json_values)
    return json.dumps(fields, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


names = st.one_of(
    st.sampled_from(sorted(f"tiktok-{name}" for name in metadata_names())),
    st.text(max_size=20).map(lambda s: "tiktok-" + s),
    st.text(max_size=20),
)
encoded_words = st.one_of(
    st.text(max_size=60),
    st.binary(max_size=40).map(lambda b: "=?UTF-8?B?" + base64.b64encode(b).decode() + "?="),
    st.text(max_size=20).map(lambda t: f"=?{t}?Q?{t}?="),
    st.sampled_from(["=?UTF-8?B?abc?=", "=?nope?B?aGk=?=", "=?UTF-8?Q?=FF=FE?=", "main, , private", "true", "1e9"]),
)
prefix_defaults = st.dictionaries(
    st.sampled_from(["", "brand-a/", "brand-a/clip", "other/"]),
    st.dictionaries(st.sampled_from([*FIELDS, "typo"]), json_values, max_size=3),
    max_size=3,
)


def check_request(snapshot: ObjectSnapshot, defaults: dict[str, dict[str, Any]], require_sidecar: bool) -> None:
    try:
        check_prefix_defaults(defaults)  # the listener refuses unknown fields at start
    except S3RequestInvalid:
        return
    try:
        request = request_for_object(snapshot, prefix_defaults=defaults, require_sidecar=require_sidecar)
    except S3RequestInvalid as exc:
        assert exc.final and exc.detail["source"] == LOCATION.uri and exc.detail["problems"]
        assert str(exc) == "; ".join(exc.detail["problems"])
        return
    assert isinstance(request, PublishRequest) and request.source == LOCATION.uri
    assert PublishRequest.model_validate_json(request.model_dump_json()) == request


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(names, encoded_words, max_size=5), st.one_of(st.none(), sidecars()), prefix_defaults,
       st.booleans())
@example({}, b"[" * 50_000 + b"]" * 50_000, {}, False)
@example({}, b'{"accounts": ["main"], "cover_timestamp_ms": 1' + b"0" * 5000 + b"}", {}, False)
@example({"tiktok-caption": "=?UTF-8?B?abc?="}, None, {}, True)
def test_any_metadata_sidecar_and_defaults_make_a_request_or_a_refusal(
    metadata: dict[str, str], sidecar: bytes | None, defaults: dict[str, dict[str, Any]], require_sidecar: bool
) -> None:
    snapshot = ObjectSnapshot(location=LOCATION, etag="e", size=10, metadata=metadata, sidecar=sidecar,
                              sidecar_size=len(sidecar) if sidecar is not None else 0)
    check_request(snapshot, defaults, require_sidecar)


@FAST
@given(st.one_of(st.binary(max_size=400), sidecars()), st.integers(min_value=0, max_value=2 * MAX_SIDECAR_BYTES))
def test_sidecar_bytes_are_fields_or_problems(raw: bytes, size: int) -> None:
    fields, problems = sidecar_fields(raw, size)
    assert isinstance(fields, dict) and all(isinstance(problem, str) and problem for problem in problems)
    if problems:
        assert fields == {}
    else:  # a JSON object under the size limit, not naming the source
        assert size <= MAX_SIDECAR_BYTES and json.loads(raw) == fields and "source" not in fields


@FAST
@given(st.dictionaries(names, encoded_words, max_size=8))
def test_metadata_is_fields_or_problems(metadata: dict[str, str]) -> None:
    fields, problems = metadata_fields(metadata)
    assert set(fields) <= set(FIELDS)
    assert all(isinstance(problem, str) for problem in problems)
