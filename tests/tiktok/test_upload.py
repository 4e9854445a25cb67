"""Chunked upload against an emulated upload server: retries, lost answers, resume, expiry, memory."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from pathlib import Path

import pytest

import tiktok
from tiktok import MIN_CHUNK_SIZE, TikTokClient, UploadRetryPolicy, plan_chunks
from tiktok._chunks import Chunk
from tiktok._errors import InvalidInput
from tiktok._upload import READ_BLOCK, UploadResult, _chunk_body, content_type_for
from tiktok_pipeline.settings import Settings

from .conftest import RateLimitRecorder
from .upload_server import UploadServer

VIDEO_SIZE = 3 * MIN_CHUNK_SIZE + 12_345  # three chunks of 5 MiB, the last one absorbing 12,345 bytes


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("upload") / "clip.mp4"
    path.write_bytes(os.urandom(VIDEO_SIZE))
    return path


@pytest.fixture(scope="module")
def video_sha256(video: Path) -> str:
    return hashlib.sha256(video.read_bytes()).hexdigest()


class Harness:
    """A client whose transport is the emulated upload server, with recorded sleeps and progress."""

    def __init__(self, settings: Settings, video: Path, faults: dict[int, str] | None = None) -> None:
        self.plan = plan_chunks(video.stat().st_size, MIN_CHUNK_SIZE)
        self.video = video
        self.server = UploadServer(
            self.plan.video_size, self.plan.chunk_size, self.plan.total_chunk_count, faults=faults or {}
        )
        self.sleeps: list[float] = []
        self.progress: list[tuple[int, int]] = []
        self.client = TikTokClient(
            "act.secret",
            settings,
            transport=self.server,
            rate_limit=RateLimitRecorder(),
            sleep=self.sleeps.append,
            random=lambda: 0.5,
        )

    def upload(self, **kwargs: object) -> UploadResult:
        kwargs.setdefault("on_progress", lambda sent, total: self.progress.append((sent, total)))
        return self.client.upload_video(self.video, self.server.upload_url, self.plan, **kwargs)  # type: ignore[arg-type]

    @property
    def ranges(self) -> list[object]:
        return [r["content_range"] for r in self.server.requests]


@pytest.fixture
def harness(settings: Settings, video: Path):  # type: ignore[no-untyped-def]
    made: list[Harness] = []

    def make(faults: dict[int, str] | None = None) -> Harness:
        made.append(Harness(settings, video, faults))
        return made[-1]

    yield make
    for h in made:
        h.client.close()


R0 = f"bytes 0-{MIN_CHUNK_SIZE - 1}/{VIDEO_SIZE}"
R1 = f"bytes {MIN_CHUNK_SIZE}-{2 * MIN_CHUNK_SIZE - 1}/{VIDEO_SIZE}"
R2 = f"bytes {2 * MIN_CHUNK_SIZE}-{VIDEO_SIZE - 1}/{VIDEO_SIZE}"


def test_clean_upload(harness, video_sha256: str) -> None:  # type: ignore[no-untyped-def]
    h = harness()
    result = h.upload()
    assert result == UploadResult(total_bytes=VIDEO_SIZE, chunks_sent=3, retries=0, resyncs=0)
    assert h.ranges == [R0, R1, R2]
    assert h.server.digest.hexdigest() == video_sha256
    assert h.progress == [(MIN_CHUNK_SIZE, VIDEO_SIZE), (2 * MIN_CHUNK_SIZE, VIDEO_SIZE), (VIDEO_SIZE, VIDEO_SIZE)]
    for sent, expected_length in zip(h.server.requests, [MIN_CHUNK_SIZE, MIN_CHUNK_SIZE, MIN_CHUNK_SIZE + 12_345]):
        assert sent["content_type"] == "video/mp4"
        assert sent["content_length"] == str(expected_length) and sent["received"] == expected_length
        assert sent["authorization"] is None  # the pre-signed URL needs no token; never leak it to another host
        assert sent["transfer_encoding"] is None
    assert h.sleeps == []


def test_memory_is_bounded_by_one_read_block(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness()
    tracemalloc.start()
    try:
        h.upload(on_progress=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    largest_chunk = max(c.length for c in h.plan.chunks)
    assert h.server.largest_body <= largest_chunk
    assert h.server.largest_piece <= READ_BLOCK
    # The whole file is 15 MiB and a chunk 5 MiB: the client holds about one 1 MiB block at a time.
    assert peak < 4 * READ_BLOCK < MIN_CHUNK_SIZE


def test_small_file_is_one_put(settings: Settings, tmp_path: Path) -> None:
    small = tmp_path / "tiny.webm"
    small.write_bytes(b"\x1a\x45\xdf\xa3" + b"x" * 996)
    plan = plan_chunks(1000, MIN_CHUNK_SIZE)
    server = UploadServer(1000, plan.chunk_size, 1)
    with TikTokClient("t", settings, transport=server, rate_limit=RateLimitRecorder()) as client:
        result = client.upload_video(small, server.upload_url, plan)
    assert result.chunks_sent == 1 and server.held == 1000
    assert server.requests[0]["content_range"] == "bytes 0-999/1000"
    assert server.requests[0]["content_type"] == "video/webm"


def test_server_errors_are_retried_with_backoff(harness, video_sha256: str) -> None:  # type: ignore[no-untyped-def]
    h = harness({1: "500", 2: "500", 3: "500"})
    result = h.upload()
    assert result.retries == 3 and result.chunks_sent == 3
    assert h.ranges == [R0, R1, R1, R1, R1, R2]
    # initial 1 s doubling, equal jitter with random() = 0.5 → 3/4 of the ceiling.
    assert h.sleeps == [0.75, 1.5, 3.0]
    assert h.server.digest.hexdigest() == video_sha256


def test_backoff_is_capped_and_jittered() -> None:
    policy = UploadRetryPolicy(initial_backoff=2, max_backoff=10)
    assert [policy.backoff(n, 0.0) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert [policy.backoff(n, 1.0) for n in range(1, 6)] == [2.0, 4.0, 8.0, 10.0, 10.0]


def test_retries_exhausted_raise_the_retryable_error(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({i: "500" for i in range(1, 10)})
    with pytest.raises(tiktok.ServerError) as caught:
        h.upload(retry=UploadRetryPolicy(max_retries_per_chunk=2))
    assert caught.value.retryable and caught.value.http_status == 500
    assert len(h.server.requests) == 4 and len(h.sleeps) == 2
    assert h.progress == [(MIN_CHUNK_SIZE, VIDEO_SIZE)]


def test_dropped_connection_before_send_is_retried(harness, video_sha256: str) -> None:  # type: ignore[no-untyped-def]
    h = harness({0: "drop", 2: "drop"})
    result = h.upload()
    assert result.retries == 2 and result.resyncs == 0
    assert h.ranges == [R0, R0, R1, R1, R2]
    assert h.server.digest.hexdigest() == video_sha256


@pytest.mark.parametrize("fault", ["lose_answer", "reset"])
def test_lost_answer_resends_then_resumes_from_the_416(harness, video_sha256: str, fault: str) -> None:  # type: ignore[no-untyped-def]
    h = harness({1: fault})
    result = h.upload()
    # Chunk 1 was stored but its answer lost: re-sent, 416 says "I hold up to chunk 1", go on with chunk 2.
    assert h.ranges == [R0, R1, R1, R2]
    # Chunk 1 was confirmed by the 416, not by a 2xx answer.
    assert result == UploadResult(total_bytes=VIDEO_SIZE, chunks_sent=2, retries=1, resyncs=1)
    assert h.server.digest.hexdigest() == video_sha256
    assert h.progress[-1] == (VIDEO_SIZE, VIDEO_SIZE)


def test_lost_answer_on_the_last_chunk_means_complete(harness, video_sha256: str) -> None:  # type: ignore[no-untyped-def]
    h = harness({2: "lose_answer"})
    result = h.upload()
    assert h.ranges == [R0, R1, R2, R2]
    assert result.resyncs == 1 and result.chunks_sent == 2
    assert h.server.digest.hexdigest() == video_sha256
    assert h.progress[-1] == (VIDEO_SIZE, VIDEO_SIZE)


def test_server_that_lost_everything_gets_the_file_again(harness, video_sha256: str) -> None:  # type: ignore[no-untyped-def]
    h = harness({1: "forget"})
    result = h.upload()
    # 416 with "bytes */TOTAL": the server holds nothing, start over from byte 0.
    assert h.ranges == [R0, R1, R0, R1, R2]
    assert result.resyncs == 1
    assert (0, VIDEO_SIZE) in h.progress
    assert h.server.digest.hexdigest() == video_sha256


def test_a_second_call_resumes_where_the_server_is(harness, video_sha256: str) -> None:  # type: ignore[no-untyped-def]
    h = harness({1: "500", 2: "500"})
    with pytest.raises(tiktok.ServerError):
        h.upload(retry=UploadRetryPolicy(max_retries_per_chunk=1))
    h.server.faults.clear()
    h.progress.clear()
    result = h.upload()
    assert h.ranges[3:] == [R0, R1, R2]
    assert result.resyncs == 1 and result.chunks_sent == 2
    assert h.progress[0] == (MIN_CHUNK_SIZE, VIDEO_SIZE)
    assert h.server.digest.hexdigest() == video_sha256


@pytest.mark.parametrize(("fault", "cls"), [("403", tiktok.UploadUrlExpired), ("404", tiktok.UploadNotFound)])
def test_expired_or_unknown_upload_is_final_and_not_retried(harness, fault: str, cls: type) -> None:  # type: ignore[no-untyped-def]
    h = harness({1: fault})
    with pytest.raises(cls) as caught:
        h.upload()
    assert caught.value.final and caught.value.http_status == int(fault)
    assert "initialize" in str(caught.value)
    assert len(h.server.requests) == 2 and h.sleeps == []


def test_bad_headers_are_rejected_not_retried(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness()
    with pytest.raises(tiktok.UploadRejected):
        h.upload(content_type="video/x-flv")
    assert len(h.server.requests) == 1


def test_file_that_does_not_match_the_plan_is_refused(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"x" * 10)
    server = UploadServer(11, 11, 1)
    with TikTokClient("t", settings, transport=server, rate_limit=RateLimitRecorder()) as client:
        with pytest.raises(tiktok.InvalidInput, match="10 bytes"):
            client.upload_video(path, server.upload_url, plan_chunks(11, MIN_CHUNK_SIZE))
    assert server.requests == []


def test_416_that_contradicts_itself_is_a_protocol_error(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness()
    h.server.held = 3  # holds 3 bytes: not a chunk boundary
    with pytest.raises(tiktok.UploadProtocolError):
        h.upload()


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("a.mp4", b"", "video/mp4"),
        ("a.MOV", b"", "video/quicktime"),
        ("a.webm", b"", "video/webm"),
        ("noext", b"\x00\x00\x00\x14ftypqt  \x00\x00", "video/quicktime"),
        ("noext", b"\x00\x00\x00\x18ftypisom\x00\x00", "video/mp4"),
        ("noext", b"\x1a\x45\xdf\xa3\x01\x00\x00\x00", "video/webm"),
    ],
)
def test_content_type_from_extension_or_magic(tmp_path: Path, name: str, head: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(head + b"\x00" * 16)
    assert content_type_for(path) == expected


def test_unknown_container_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    path.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST")
    with pytest.raises(tiktok.UnsupportedContainer):
        content_type_for(path)


class ShortReads(io.RawIOBase):
    """A raw file that returns at most `most` bytes per read, as an unbuffered read may (and that may end early)."""

    def __init__(self, data: bytes, most: int) -> None:
        self._data, self._most, self._pos = data, most, 0

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = offset
        return offset

    def read(self, size: int = -1) -> bytes:
        piece = self._data[self._pos : self._pos + min(size, self._most)]
        self._pos += len(piece)
        return piece


def test_chunk_body_goes_on_after_short_reads_and_never_exceeds_a_block() -> None:
    data = os.urandom(3 * READ_BLOCK)
    chunk = Chunk(1, READ_BLOCK // 2, 3 * READ_BLOCK - 2)  # starts and ends mid-block
    blocks = list(_chunk_body(ShortReads(data, READ_BLOCK - 7), chunk))  # type: ignore[arg-type]
    assert b"".join(blocks) == data[chunk.first : chunk.last + 1]
    # Each short read was continued, not taken as the end of the chunk.
    assert [len(b) for b in blocks] == [READ_BLOCK - 7, READ_BLOCK - 7, chunk.length - 2 * (READ_BLOCK - 7)]
    whole = list(_chunk_body(ShortReads(data, 10 * READ_BLOCK), Chunk(0, 0, len(data) - 1)))  # type: ignore[arg-type]
    assert [len(b) for b in whole] == [READ_BLOCK] * 3


def test_file_that_shrinks_while_uploading_is_refused() -> None:
    data = os.urandom(READ_BLOCK + 100)
    chunk = Chunk(0, 0, READ_BLOCK + 199)  # 100 bytes more than the file holds now
    with pytest.raises(InvalidInput, match=f"file shrank while uploading: no bytes at offset {READ_BLOCK + 100}"):
        list(_chunk_body(ShortReads(data, READ_BLOCK), chunk))  # type: ignore[arg-type]
