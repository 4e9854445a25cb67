"""Ingest from S3 (real moto server over HTTP), local paths and http URLs."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from pathlib import Path

import boto3
import pytest

from publishing.sources import (
    S3Location,
    InvalidSource,
    SourceAccessDenied,
    SourceCredentialsMissing,
    SourceNotFound,
    SourceTooLarge,
    apply_source_action,
    fetch_source,
    has_aws_credentials,
    parse_s3_uri,
    safe_local_name,
)
from tiktok_pipeline.errors import is_retryable
from tiktok_pipeline.settings import Settings


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def _put(bucket: str, key: str, body: bytes) -> None:
    boto3.client("s3", endpoint_url=os.environ["TIKTOK_PIPELINE_S3_ENDPOINT_URL"]).put_object(
        Bucket=bucket, Key=key, Body=body
    )


def test_parse_s3_uri_decodes_and_rejects() -> None:
    assert parse_s3_uri("s3://b/a%20dir/clip%C3%A9.mp4").key == "a dir/clipé.mp4"
    assert parse_s3_uri("s3://b/take #1?.mp4").key == "take #1?.mp4"  # not a fragment or a query
    odd = S3Location("b", "100% real #1 ?.mp4")
    assert parse_s3_uri(odd.uri) == odd
    with pytest.raises(InvalidSource):
        parse_s3_uri("s3://bucket-only")


@pytest.mark.parametrize(
    "key,expected",
    [
        ("../../etc/passwd", "passwd"),
        ("/abs/clip.mp4", "clip.mp4"),
        ("dir\\..\\..\\evil.mp4", "evil.mp4"),
        ("..", "source"),
        ("videos/My Clip é.mp4", "My Clip é.mp4"),
    ],
)
def test_safe_local_name_never_escapes(key: str, expected: str) -> None:
    assert safe_local_name(key) == expected


def test_s3_multipart_download_hashes_and_records_etag(s3_bucket: str, tmp_path: Path) -> None:
    body = os.urandom(20 * 1024 * 1024 + 123)  # over the 8 MiB multipart threshold: ranged, concurrent GETs
    _put(s3_bucket, "in/../../clip.mp4", body)
    work = tmp_path / "work"
    fetched = fetch_source(f"s3://{s3_bucket}/in/../../clip.mp4", work, _settings(tmp_path), max_bytes=10**9)
    assert fetched.path.parent == work.resolve()
    assert fetched.path.read_bytes() == body
    assert fetched.sha256 == hashlib.sha256(body).hexdigest()
    assert fetched.etag and fetched.size == len(body)


def test_s3_oversized_object_fails_before_download(s3_bucket: str, tmp_path: Path) -> None:
    _put(s3_bucket, "big.mp4", b"x" * 4096)
    work = tmp_path / "work"
    with pytest.raises(SourceTooLarge):
        fetch_source(f"s3://{s3_bucket}/big.mp4", work, _settings(tmp_path), max_bytes=1000)
    assert list(work.iterdir()) == []


def test_s3_missing_object_and_bucket(s3_bucket: str, tmp_path: Path) -> None:
    with pytest.raises(SourceNotFound):
        fetch_source(f"s3://{s3_bucket}/nope.mp4", tmp_path, _settings(tmp_path), max_bytes=10**6)
    with pytest.raises(SourceNotFound):
        fetch_source("s3://no-such-bucket-xyz/a.mp4", tmp_path, _settings(tmp_path), max_bytes=10**6)


def test_s3_access_denied(s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.settings

    _put(s3_bucket, "private.mp4", b"data")
    # Turn on moto's IAM checks: the test credentials belong to no IAM user, so S3 answers 403.
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    with pytest.raises(SourceAccessDenied) as info:
        fetch_source(f"s3://{s3_bucket}/private.mp4", tmp_path / "work", _settings(tmp_path), max_bytes=10**6)
    assert info.value.final
    assert not (tmp_path / "work" / "private.mp4").exists()


def test_missing_aws_credentials_are_final_and_say_what_to_set(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _put(s3_bucket, "clip.mp4", b"data")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a fresh process: nothing resolved earlier
    settings = _settings(tmp_path)
    assert not has_aws_credentials(settings)
    with pytest.raises(SourceCredentialsMissing) as info:
        fetch_source(f"s3://{s3_bucket}/clip.mp4", tmp_path / "work", settings, max_bytes=10**6)
    assert info.value.final and not is_retryable(info.value)  # not retried 4 times over minutes
    assert str(info.value) == (f"no AWS credentials to read s3://{s3_bucket}/clip.mp4: set AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the worker's environment, or give the worker "
                               "an instance role")
    with pytest.raises(SourceCredentialsMissing):
        apply_source_action(settings, f"s3://{s3_bucket}/clip.mp4", "delete")


def test_source_actions_move_and_delete(s3_bucket: str, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _put(s3_bucket, "odd/50% #1.mp4", b"odd")
    fetched = fetch_source(S3Location(s3_bucket, "odd/50% #1.mp4").uri, tmp_path / "w", settings, max_bytes=100)
    assert fetched.path.read_bytes() == b"odd"
    apply_source_action(settings, fetched.uri, "delete")
    _put(s3_bucket, "a/clip.mp4", b"one")
    moved = apply_source_action(settings, f"s3://{s3_bucket}/a/clip.mp4", "move", "done/")
    assert moved == f"s3://{s3_bucket}/done/a/clip.mp4"
    client = boto3.client("s3", endpoint_url=os.environ["TIKTOK_PIPELINE_S3_ENDPOINT_URL"])
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys == ["done/a/clip.mp4"]
    apply_source_action(settings, moved, "delete")
    assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0


def test_local_path_is_copied_not_moved(tmp_path: Path) -> None:
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"abc" * 100)
    fetched = fetch_source(str(src), tmp_path / "work", _settings(tmp_path), max_bytes=10**6)
    assert src.exists() and fetched.path != src and fetched.path.read_bytes() == src.read_bytes()
    with pytest.raises(SourceNotFound):
        fetch_source(str(tmp_path / "missing.mp4"), tmp_path / "work", _settings(tmp_path), max_bytes=10**6)
    with pytest.raises(InvalidSource):
        fetch_source("ftp://host/clip.mp4", tmp_path / "work", _settings(tmp_path), max_bytes=10**6)


@pytest.fixture
def http_root(tmp_path: Path):
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_http_source_streams_and_limits(http_root, tmp_path: Path) -> None:
    root, base = http_root
    (root / "clip.mp4").write_bytes(b"v" * 5000)
    fetched = fetch_source(f"{base}/clip.mp4", tmp_path / "work", _settings(tmp_path), max_bytes=10**6)
    assert fetched.size == 5000 and fetched.sha256 == hashlib.sha256(b"v" * 5000).hexdigest()
    with pytest.raises(SourceTooLarge):
        fetch_source(f"{base}/clip.mp4", tmp_path / "work2", _settings(tmp_path), max_bytes=100)
    assert not (tmp_path / "work2" / "clip.mp4").exists()
    with pytest.raises(SourceNotFound):
        fetch_source(f"{base}/missing.mp4", tmp_path / "work3", _settings(tmp_path), max_bytes=100)
