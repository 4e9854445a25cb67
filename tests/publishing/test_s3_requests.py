"""What an S3 object asks to publish: prefix defaults < metadata < sidecar, validated by PublishRequest."""

from __future__ import annotations

import json

import boto3
import pytest

from publishing import PublishRequest
from publishing.s3_events import (
    MAX_SIDECAR_BYTES,
    ObjectSnapshot,
    S3RequestInvalid,
    check_prefix_defaults,
    read_object,
    request_for_object,
    sidecar_location,
)
from ledger import PublishMode
from publishing.sources import S3Location, SourceNotFound, parse_s3_uri
from tiktok import PrivacyLevel

KEY = S3Location("media", "brand-a/launch/clip.mp4")
SIDECAR_URI = "s3://media/brand-a/launch/clip.mp4.json"


def _snapshot(
    metadata: dict[str, str] | None = None, sidecar: dict | bytes | None = None, key: S3Location = KEY
) -> ObjectSnapshot:
    raw = json.dumps(sidecar).encode() if isinstance(sidecar, dict) else sidecar
    return ObjectSnapshot(location=key, etag="e1", size=10, metadata=metadata or {}, sidecar=raw,
                          sidecar_size=len(raw) if raw is not None else 0)


def _request(snapshot: ObjectSnapshot, prefix_defaults: dict | None = None, require_sidecar: bool = False) -> PublishRequest:
    return request_for_object(snapshot, prefix_defaults=prefix_defaults or {}, require_sidecar=require_sidecar)


def _problem(snapshot: ObjectSnapshot, prefix_defaults: dict | None = None, require_sidecar: bool = False) -> S3RequestInvalid:
    with pytest.raises(S3RequestInvalid) as caught:
        _request(snapshot, prefix_defaults, require_sidecar)
    assert caught.value.final and caught.value.detail["source"] == "s3://media/brand-a/launch/clip.mp4"
    return caught.value


def test_sidecar_alone() -> None:
    sidecar = {"accounts": ["main", "private"], "caption": "Launch #new", "privacy_level": "SELF_ONLY", "disable_duet": True}
    request = _request(_snapshot(sidecar=sidecar))
    assert request.source == "s3://media/brand-a/launch/clip.mp4"
    assert request.accounts == ["main", "private"] and request.caption == "Launch #new"
    assert request.privacy_level is PrivacyLevel.SELF_ONLY and request.disable_duet and not request.disable_comment


def test_metadata_alone_with_short_names_lists_and_toggles() -> None:
    request = _request(_snapshot(metadata={
        "tiktok-accounts": "main, private", "tiktok-privacy": "MUTUAL_FOLLOW_FRIENDS", "tiktok-mode": "direct",
        "tiktok-aigc": "true", "tiktok-disable-comment": "yes", "tiktok-cover-ms": "1500", "tiktok-brand-organic": "1",
        "owner": "someone else's metadata is ignored",
    }))
    assert request.accounts == ["main", "private"] and request.privacy_level is PrivacyLevel.MUTUAL_FOLLOW_FRIENDS
    assert request.is_aigc and request.disable_comment and request.brand_organic_toggle
    assert request.cover_timestamp_ms == 1500 and request.mode is PublishMode.direct


def test_non_ascii_metadata_arrives_rfc2047_encoded() -> None:
    # S3 returns non-ASCII metadata values as RFC 2047 encoded words.
    caption = "été 🎬 #launch"
    encoded = "=?UTF-8?B?" + __import__("base64").b64encode(caption.encode()).decode() + "?="
    request = _request(_snapshot(metadata={"tiktok-caption": encoded, "tiktok-accounts": "main", "tiktok-mode": "inbox"}))
    assert request.caption == caption and request.mode is PublishMode.inbox


def test_prefix_defaults_then_metadata_then_sidecar() -> None:
    defaults = {
        "brand-a/": {"accounts": ["main"], "privacy_level": "SELF_ONLY", "caption": "brand", "disable_stitch": True},
        "brand-a/launch/": {"caption": "launch default", "is_aigc": True},  # longer prefix wins
        "brand-b/": {"accounts": ["private"]},  # does not apply
    }
    metadata = {"tiktok-caption": "from metadata", "tiktok-privacy": "FOLLOWER_OF_CREATOR"}
    sidecar = {"caption": "from the sidecar"}
    request = _request(_snapshot(metadata=metadata, sidecar=sidecar), defaults)
    assert request.caption == "from the sidecar"
    assert request.privacy_level is PrivacyLevel.FOLLOWER_OF_CREATOR  # metadata over defaults
    assert request.accounts == ["main"] and request.disable_stitch and request.is_aigc  # defaults kept

    without_sidecar = _request(_snapshot(metadata=metadata), defaults)
    assert without_sidecar.caption == "from metadata"
    only_defaults = _request(_snapshot(), defaults)
    assert only_defaults.caption == "launch default" and only_defaults.privacy_level is PrivacyLevel.SELF_ONLY


def test_a_missing_privacy_names_the_sidecar() -> None:
    problem = _problem(_snapshot(sidecar={"accounts": ["main"], "mode": "direct"}))
    assert str(problem) == (
        f"sidecar {SIDECAR_URI}: privacy_level is required for direct and held posts (TikTok forbids a default)")


def test_each_problem_names_where_the_bad_value_came_from() -> None:
    problem = _problem(
        _snapshot(metadata={"tiktok-privacy": "EVERYONE"}, sidecar={"accounts": ["main", "main"]}),
        {"brand-a/": {"caption": "x" * 2300}},
    )
    lines = problem.detail["problems"]
    assert f"sidecar {SIDECAR_URI}: accounts: an account is listed twice: ['main', 'main']" in lines
    assert "metadata of s3://media/brand-a/launch/clip.mp4: privacy_level: Input should be" in "\n".join(lines)
    assert "defaults for prefix 'brand-a/': caption: caption is 2300 UTF-16 code units" in "\n".join(lines)
    assert str(problem) == "; ".join(lines)


def test_nothing_at_all_says_what_is_missing() -> None:
    problem = _problem(_snapshot())
    assert str(problem) == f"s3://media/brand-a/launch/clip.mp4 (no sidecar {SIDECAR_URI}): accounts: Field required"


def test_a_required_sidecar_must_exist_even_when_metadata_suffices() -> None:
    metadata = {"tiktok-accounts": "main", "tiktok-privacy": "SELF_ONLY"}
    assert _request(_snapshot(metadata=metadata)).accounts == ["main"]
    problem = _problem(_snapshot(metadata=metadata), require_sidecar=True)
    assert str(problem) == f"sidecar {SIDECAR_URI} is missing (TIKTOK_PIPELINE_S3_REQUIRE_SIDECAR is on)"
    assert _request(_snapshot(metadata=metadata, sidecar={}), require_sidecar=True).accounts == ["main"]


@pytest.mark.parametrize(("sidecar", "problem"), [
    (b'{"accounts": ["main"],', "is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 23"),
    (b"\xff\xfe{}", "is not UTF-8 text"),
    (b'["main"]', "must be a JSON object of PublishRequest fields, not list"),
    (b'{"source": "s3://other/video.mp4", "accounts": ["main"]}', "must not set source"),
    (b'{"accounts": ["main"], "privacy_level": "SELF_ONLY", "privacy": "x"}', "privacy: Extra inputs are not permitted"),
])
def test_bad_sidecars(sidecar: bytes, problem: str) -> None:
    (line,) = _problem(_snapshot(sidecar=sidecar)).detail["problems"]  # only the sidecar's own problem
    assert line.startswith(f"sidecar {SIDECAR_URI}") and problem in line


def test_an_oversized_sidecar_is_refused_without_reading_it() -> None:
    snapshot = ObjectSnapshot(location=KEY, etag="e", size=1, sidecar=b"", sidecar_size=MAX_SIDECAR_BYTES + 1)
    assert f"is {MAX_SIDECAR_BYTES + 1} bytes; a sidecar holds at most {MAX_SIDECAR_BYTES}" in str(_problem(snapshot))


@pytest.mark.parametrize(("metadata", "problem"), [
    ({"tiktok-privacy-levle": "SELF_ONLY"}, "unknown metadata x-amz-meta-tiktok-privacy-levle (known: "),
    ({"tiktok-privacy": "SELF_ONLY", "tiktok-privacy-level": "SELF_ONLY"},
     "x-amz-meta-tiktok-privacy and x-amz-meta-tiktok-privacy-level both set privacy_level"),
    ({"tiktok-source": "s3://elsewhere/x.mp4"}, "unknown metadata x-amz-meta-tiktok-source"),
])
def test_bad_metadata(metadata: dict[str, str], problem: str) -> None:
    full = {"tiktok-accounts": "main", **metadata}
    assert problem in str(_problem(_snapshot(metadata=full)))


def test_prefix_defaults_with_unknown_fields_are_refused() -> None:
    check_prefix_defaults({"brand-a/": {"accounts": ["main"], "privacy_level": "SELF_ONLY"}})
    with pytest.raises(S3RequestInvalid, match=r"TIKTOK_PIPELINE_S3_PREFIX_DEFAULTS\['brand-a/'\]: unknown field\(s\) acounts"):
        check_prefix_defaults({"brand-a/": {"acounts": ["main"]}})
    with pytest.raises(S3RequestInvalid, match="unknown field"):
        check_prefix_defaults({"x/": {"source": "s3://a/b"}})


def test_read_object_from_s3(s3_bucket: str, moto_server) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    where = S3Location(s3_bucket, "in/my clip é.mp4")
    metadata = {"tiktok-caption": "hi", "tiktok-accounts": "main"}
    put = s3.put_object(Bucket=s3_bucket, Key=where.key, Body=b"video", Metadata=metadata)
    snapshot = read_object(s3, where)
    assert snapshot.etag == put["ETag"].strip('"') and snapshot.size == 5 and snapshot.sidecar is None
    assert snapshot.metadata == metadata

    s3.put_object(Bucket=s3_bucket, Key=sidecar_location(where).key, Body=b'{"privacy_level": "SELF_ONLY"}')
    assert json.loads(read_object(s3, where).sidecar) == {"privacy_level": "SELF_ONLY"}

    s3.put_object(Bucket=s3_bucket, Key=sidecar_location(where).key, Body=b" " * (MAX_SIDECAR_BYTES + 1))
    big = read_object(s3, where)
    assert big.sidecar == b"" and big.sidecar_size == MAX_SIDECAR_BYTES + 1

    with pytest.raises(SourceNotFound):
        read_object(s3, S3Location(s3_bucket, "in/never uploaded.mp4"))


@pytest.mark.parametrize("key", [
    "in/my clip – été 🎬 #1.mp4", "in/what?.mp4", "in/100% real.mov", "in/a%41b.mp4", "in/a+b c.mp4", "in/ends#",
])
def test_the_source_names_exactly_the_object(key: str) -> None:
    location = S3Location("media", key)
    assert parse_s3_uri(location.uri) == location
    request = _request(_snapshot(metadata={"tiktok-accounts": "main", "tiktok-mode": "inbox"}, key=location))
    assert parse_s3_uri(request.source) == location
