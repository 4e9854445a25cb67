"""Ingest from S3 (real moto server over HTTP), local paths and http URLs."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from pathlib import Path, PurePosixPath

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publishing.sources import (
    LOCAL_NAME_HASH_DIGITS,
    MAX_LOCAL_NAME_BYTES,
    S3Location,
    InvalidSource,
    SourceAccessDenied,
    SourceCredentialsMissing,
    SourceNotFound,
    SourceTooLarge,
    SourceUnavailable,
    SourceUnreachable,
    apply_source_action,
    check_source,
    fetch_source,
    has_aws_credentials,
    parse_s3_uri,
    safe_local_name,
)
from publishing.sources import _target_in
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


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:LOCAL_NAME_HASH_DIGITS]


@pytest.mark.parametrize(
    "key,readable",
    [
        ("../../etc/passwd", "passwd-{}"),
        ("/abs/clip.mp4", "clip-{}.mp4"),
        ("dir\\..\\..\\evil.mp4", "evil-{}.mp4"),
        ("..", "source-{}"),
        ("videos/My Clip é.mp4", "My Clip é-{}.mp4"),
        ("in/take #1?.MOV", "take _1_-{}.MOV"),
        ("in/.hidden", "hidden-{}"),
        ("in/archive.tar.gz", "archive.tar-{}.gz"),
        ("in/clip.not an extension", "clip.not an extension-{}"),
    ],
)
def test_safe_local_name_never_escapes_and_stays_readable(key: str, readable: str) -> None:
    assert safe_local_name(key) == readable.format(_digest(key))


def test_a_1000_character_key_gets_a_name_the_file_system_takes(tmp_path: Path) -> None:
    key = "renders/" + "é" * 1000 + ".mp4"  # 2000 bytes of UTF-8 in one path part: ENAMETOOLONG as it is
    name = safe_local_name(key)
    assert len(name.encode()) <= MAX_LOCAL_NAME_BYTES and name.endswith(f"-{_digest(key)}.mp4")
    assert name.startswith("é" * 10)
    (tmp_path / (name + ".1a2b3c4d")).write_bytes(b"x")  # boto3 downloads next to it, under a longer name


#: Keys as S3 allows them (any unicode, up to 1024 bytes), and what a URL path or a file name may hold.
KEYS = st.text(st.characters(codec="utf-8"), max_size=1100) | st.lists(
    st.sampled_from(["..", ".", "", "/", "\\", "a", "é", "🎬", " ", "%2F", "clip.mp4", "\x00", "-rf", "ǅ"]),
    max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(key=KEYS)
def test_every_key_becomes_one_bounded_stable_path_component(key: str) -> None:
    name = safe_local_name(key)
    assert name and "/" not in name and "\x00" not in name and name not in (".", "..")
    assert len(name.encode("utf-8")) <= MAX_LOCAL_NAME_BYTES <= 255
    assert PurePosixPath(name).name == name and not name.startswith(".")
    assert safe_local_name(key) == name  # stable: the same key always names the same file
    assert f"-{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()[:LOCAL_NAME_HASH_DIGITS]}" in name


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(KEYS, min_size=2, max_size=6, unique=True))
def test_distinct_keys_never_share_a_file_in_one_work_dir(keys: list[str], tmp_path_factory) -> None:
    work = tmp_path_factory.mktemp("work")
    targets = [_target_in(work, key) for key in keys]
    assert len(set(targets)) == len(keys)
    for target in targets:
        assert target.parent == work.resolve()
        target.write_bytes(b"x")  # the file system takes every one of them


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


# --- keys and URLs that publish ------------------------------------------------------------------


def test_a_1000_character_s3_key_is_fetched(s3_bucket: str, tmp_path: Path) -> None:
    key = "renders/" + "k" * 1000 + ".mp4"
    _put(s3_bucket, key, b"video bytes")
    uri = S3Location(s3_bucket, key).uri
    assert check_source(uri, _settings(tmp_path), max_bytes=100).size == len(b"video bytes")
    fetched = fetch_source(uri, tmp_path / "work", _settings(tmp_path), max_bytes=100)
    assert fetched.path.read_bytes() == b"video bytes" and fetched.path.parent == (tmp_path / "work").resolve()
    assert len(fetched.path.name.encode()) <= MAX_LOCAL_NAME_BYTES


def test_keys_and_bucket_names_s3_cannot_have_are_final_invalid_sources(s3_bucket: str, tmp_path: Path) -> None:
    too_long = f"s3://{s3_bucket}/" + "é" * 600  # 1200 bytes: over S3's 1024
    for uri in (too_long, "s3://Bad_Bucket!/clip.mp4", "s3://", "s3:///clip.mp4", f"s3://{s3_bucket}/"):
        for attempt in (check_source, fetch_source):
            with pytest.raises(InvalidSource) as info:
                kwargs = {"work_dir": tmp_path / "w"} if attempt is fetch_source else {}
                attempt(uri, settings=_settings(tmp_path), max_bytes=100, **kwargs)
            assert info.value.final and len(str(info.value)) < 400, str(info.value)


def test_check_of_an_s3_object_reads_its_head_only(s3_bucket: str, tmp_path: Path) -> None:
    _put(s3_bucket, "in/empty.mp4", b"")
    _put(s3_bucket, "in/big.mp4", b"x" * 2000)
    with pytest.raises(SourceNotFound):
        check_source(f"s3://{s3_bucket}/in/none.mp4", _settings(tmp_path), max_bytes=100)
    with pytest.raises(InvalidSource, match="is empty"):
        check_source(f"s3://{s3_bucket}/in/empty.mp4", _settings(tmp_path), max_bytes=100)
    with pytest.raises(SourceTooLarge):
        check_source(f"s3://{s3_bucket}/in/big.mp4", _settings(tmp_path), max_bytes=100)


def test_an_unreachable_s3_endpoint_is_retryable_not_a_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox import free_port

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = Settings(data_dir=tmp_path, s3_endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SourceUnavailable) as info:
        check_source("s3://bucket/clip.mp4", settings, max_bytes=100)
    assert is_retryable(info.value)


# --- local paths --------------------------------------------------------------------------------


def test_local_sources_must_be_readable_regular_files(tmp_path: Path) -> None:
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    fifo = tmp_path / "fifo.mp4"
    os.mkfifo(fifo)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    refused = {
        str(tmp_path / "missing.mp4"): (SourceNotFound, "no such file"),
        str(folder): (InvalidSource, "is a directory, not a video file"),
        str(fifo): (InvalidSource, "is a FIFO, not a video file"),  # never opened: it would block
        "/dev/zero": (InvalidSource, "is a device, not a video file"),  # never read: it never ends
        f"file://{fifo}": (InvalidSource, "is a FIFO"),
        str(tmp_path / ("n" * 300 + ".mp4")): (InvalidSource, "not a usable path"),
        f"{tmp_path}/a\x00b.mp4": (InvalidSource, "NUL"),
    }
    for source, (error, words) in refused.items():
        for attempt in ("check", "fetch"):
            with pytest.raises(error, match=words) as info:
                if attempt == "check":
                    check_source(source, _settings(tmp_path), max_bytes=100)
                else:
                    fetch_source(source, tmp_path / "work", _settings(tmp_path), max_bytes=100)
            assert info.value.final
    with pytest.raises(InvalidSource, match="is empty"):  # the run's transcode would say so too, later
        check_source(str(empty), _settings(tmp_path), max_bytes=100)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"v" * 50)
    found = check_source(str(clip), _settings(tmp_path), max_bytes=100)
    assert found.path == clip and found.size == 50
    assert list((tmp_path / "work").iterdir()) == []


# --- http(s) ------------------------------------------------------------------------------------


class Odd(http.server.BaseHTTPRequestHandler):
    """Answers a video source should never give."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        return None

    def do_HEAD(self) -> None:
        self.answer(body=False)

    def do_GET(self) -> None:
        self.answer(body=True)

    def answer(self, *, body: bool) -> None:
        path = self.path
        if path.startswith("/loop"):
            return self.reply(302, {"Location": "/loop"})
        if path.startswith("/page"):
            return self.reply(200, {"Content-Type": "text/html; charset=utf-8"}, b"<!DOCTYPE html><p>hi", body)
        if path.startswith("/huge"):
            return self.reply(200, {"Content-Type": "video/mp4", "Content-Length": "9" * 19})
        if path.startswith("/absurd"):
            return self.reply(200, {"Content-Type": "video/mp4", "Content-Length": "9" * 30})
        if path.startswith("/garbage"):
            return self.reply(200, {"Content-Type": "video/mp4", "Content-Length": "lots"})
        if path.startswith("/get-only"):  # an S3 presigned URL: signed for GET, a HEAD is refused
            if self.command == "HEAD":
                return self.reply(403, {})
            return self.reply(200, {"Content-Type": "video/mp4"}, b"v" * 64, body)
        if path.startswith("/busy"):
            return self.reply(503, {})
        return self.reply(404, {})

    def reply(self, status: int, headers: dict[str, str], content: bytes = b"", body: bool = True) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if body and content:
            self.wfile.write(content)


@pytest.fixture
def odd_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Odd)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_urls_that_are_not_a_video_are_refused_before_and_during_the_download(odd_server: str, tmp_path: Path) -> None:
    from sandbox import free_port

    refused = {
        "/missing.mp4": (SourceNotFound, "URL not found \\(404\\)"),
        "/page.mp4": (InvalidSource, "is a web page or document \\(text/html\\), not a video"),
        "/loop.mp4": (InvalidSource, "redirects in a loop"),
        "/huge.mp4": (SourceTooLarge, "over the 1000-byte limit"),
        "/absurd.mp4": (InvalidSource, "invalid Content-Length"),
        "/garbage.mp4": (InvalidSource, "invalid Content-Length"),
    }
    for path, (error, words) in refused.items():
        url = odd_server + path
        for attempt in ("check", "fetch"):
            with pytest.raises(error, match=words) as info:
                if attempt == "check":
                    check_source(url, _settings(tmp_path), max_bytes=1000)
                else:
                    fetch_source(url, tmp_path / "work", _settings(tmp_path), max_bytes=1000)
            assert info.value.final, (path, attempt)
    assert list((tmp_path / "work").iterdir()) == []
    with pytest.raises(SourceUnreachable, match="Connection refused") as info:  # nothing listens there
        check_source(f"http://127.0.0.1:{free_port()}/clip.mp4", _settings(tmp_path), max_bytes=1000)
    assert info.value.final
    busy = odd_server + "/busy.mp4"
    with pytest.raises(SourceUnavailable) as info:  # may pass by itself: the run retries it
        check_source(busy, _settings(tmp_path), max_bytes=1000)
    assert is_retryable(info.value)
    # A URL signed for GET only is checked with a GET's headers, and fetched.
    assert check_source(odd_server + "/get-only.mp4", _settings(tmp_path), max_bytes=1000).uri.endswith("/get-only.mp4")
    fetched = fetch_source(odd_server + "/get-only%20clip.mp4?sig=1", tmp_path / "work", _settings(tmp_path), max_bytes=1000)
    assert fetched.size == 64 and fetched.path.name.startswith("get-only clip-")


def test_the_check_gives_up_within_its_timeout(tmp_path: Path) -> None:
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts, never answers
    started = time.monotonic()
    with pytest.raises(SourceUnavailable):
        check_source(f"http://127.0.0.1:{listener.getsockname()[1]}/clip.mp4",
                     Settings(data_dir=tmp_path, http_read_timeout=2.0), max_bytes=1000)
    assert time.monotonic() - started < 10  # the read timeout of the settings, not the check's 15 s
    listener.close()
