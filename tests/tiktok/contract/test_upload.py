"""FILE_UPLOAD through `TikTokClient.upload_video` into the sandbox's upload host, byte for byte.

Random-byte files travel like videos; the sandbox's own copy of what it received is compared with the
source (sha-256), and its ffprobe check then fails them with file_format_check_failed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from sandbox import SandboxHandle
from tiktok import (
    ChunkPlan,
    InitResult,
    PostInfo,
    PrivacyLevel,
    PublishMediaRejected,
    ServerError,
    SourceInfo,
    TikTokClient,
    TikTokError,
    TransportError,
    UploadNotFound,
    UploadRejected,
    UploadRetryPolicy,
    UploadUrlExpired,
    plan_chunks,
)
from tiktok_pipeline.settings import Settings

from .conftest import FakeTime
from .helpers import MIB, assert_kind, config, only_post, pending_faults, received_file, sha256_of

Connect = Callable[..., TikTokClient]
Blob = Callable[[int], Path]

CHUNK = 5 * MIB
FIVE_CHUNKS = 5 * CHUNK + 123_457  # the last chunk absorbs the remainder


def start_upload(tiktok: TikTokClient, file: Path, chunk_size: int) -> tuple[ChunkPlan, InitResult]:
    plan = plan_chunks(file.stat().st_size, chunk_size)
    init = tiktok.init_video(PostInfo(title="contract upload", privacy_level=PrivacyLevel.SELF_ONLY),
                             SourceInfo.file_upload(plan))
    assert init.upload_url
    return plan, init


def assert_received_exactly(sandbox: SandboxHandle, init: InitResult, file: Path) -> None:
    """The sandbox holds every byte of `file`, in order, once: its size and its sha-256 match."""
    assert init.upload_url
    post = only_post(sandbox)
    assert post["received_bytes"] == post["video_size"] == file.stat().st_size
    held = received_file(sandbox, init.upload_url)
    assert held.stat().st_size == file.stat().st_size
    assert sha256_of(held) == sha256_of(file)


@pytest.mark.parametrize(
    ("size", "chunk_size", "chunk_lengths"),
    [
        pytest.param(3_000_000, 16 * MIB, [3_000_000], id="3MB-single-chunk"),
        pytest.param(5_242_880, 16 * MIB, [5_242_880], id="exactly-5MiB-one-chunk"),
        pytest.param(50_000_123, 10_000_000, [10_000_000] * 4 + [10_000_123], id="50000123-in-5-chunks"),
    ],
)
def test_upload_sizes_arrive_byte_exact(
    sandbox: SandboxHandle,
    connect: Connect,
    settings_for: Callable[..., Settings],
    blob: Blob,
    fake_time: FakeTime,
    size: int,
    chunk_size: int,
    chunk_lengths: list[int],
) -> None:
    file = blob(size)
    settings = settings_for(chunk_size=chunk_size)
    tiktok = connect(settings=settings)
    plan, init = start_upload(tiktok, file, settings.chunk_size)
    assert [chunk.length for chunk in plan.chunks] == chunk_lengths

    progress: list[int] = []
    result = tiktok.upload_video(file, init.upload_url or "", plan, on_progress=lambda done, _: progress.append(done))

    assert (result.total_bytes, result.chunks_sent, result.retries, result.resyncs) == (size, len(chunk_lengths), 0, 0)
    assert progress == [sum(chunk_lengths[: i + 1]) for i in range(len(chunk_lengths))]
    post = only_post(sandbox)
    assert (post["video_size"], post["chunk_size"], post["total_chunk_count"]) == (
        plan.video_size, plan.chunk_size, plan.total_chunk_count)
    assert_received_exactly(sandbox, init, file)
    with pytest.raises(PublishMediaRejected) as rejected:  # random bytes are no video
        tiktok.wait_for_publish(init.publish_id)
    assert rejected.value.fail_reason == "file_format_check_failed"
    assert rejected.value.status.uploaded_bytes == size
    assert fake_time.sleeps == []


def test_faults_on_every_chunk_still_deliver_each_byte_once(
    sandbox: SandboxHandle, connect: Connect, settings_for: Callable[..., Settings], blob: Blob, fake_time: FakeTime
) -> None:
    file = blob(FIVE_CHUNKS)
    tiktok = connect(settings=settings_for(chunk_size=CHUNK))
    plan, init = start_upload(tiktok, file, CHUNK)
    assert plan.total_chunk_count == 5
    # Arm the fault for the next PUT as soon as the server confirms an offset.
    next_fault = {
        1 * CHUNK: {"kind": "drop"},  # chunk 1 never reaches the handler
        2 * CHUNK: {"kind": "lost_answer"},  # chunk 2 is stored, its answer is lost -> 416 on re-send
        3 * CHUNK: {"kind": "latency", "latency_ms": 50},
        4 * CHUNK: {"kind": "lost_answer"},  # the last chunk: the re-send's 416 says "all held"
    }
    sandbox.add_fault("upload", "error_503")  # chunk 0, first attempt
    progress: list[int] = []

    def on_progress(done: int, total: int) -> None:
        progress.append(done)
        if done in next_fault:
            sandbox.add_fault("upload", **next_fault.pop(done))

    result = tiktok.upload_video(file, init.upload_url or "", plan, on_progress=on_progress)

    assert pending_faults(sandbox) == [] and next_fault == {}  # every fault fired
    assert (result.chunks_sent, result.retries, result.resyncs) == (3, 4, 2)
    assert progress == [CHUNK, 2 * CHUNK, 3 * CHUNK, 4 * CHUNK, FIVE_CHUNKS]
    policy = UploadRetryPolicy()
    assert len(fake_time.sleeps) == 4
    assert all(policy.initial_backoff / 2 <= pause <= policy.initial_backoff for pause in fake_time.sleeps)
    assert_received_exactly(sandbox, init, file)


@pytest.mark.parametrize(
    ("fault", "error", "held_chunks"),
    [
        pytest.param("lost_answer", TransportError, 3, id="lost-answer"),  # chunk 2 stored, answer lost
        pytest.param("drop", TransportError, 2, id="dropped"),  # chunk 2 never stored
        pytest.param("error_500", ServerError, 2, id="5xx"),
    ],
)
def test_second_upload_call_resumes_where_the_server_is(
    sandbox: SandboxHandle,
    connect: Connect,
    settings_for: Callable[..., Settings],
    blob: Blob,
    fault: str,
    error: type[TikTokError],
    held_chunks: int,
) -> None:
    file = blob(FIVE_CHUNKS)
    tiktok = connect(settings=settings_for(chunk_size=CHUNK))
    plan, init = start_upload(tiktok, file, CHUNK)

    def fail_third_chunk(done: int, total: int) -> None:
        if done == 2 * CHUNK:
            sandbox.add_fault("upload", fault)

    with pytest.raises(error) as interrupted:
        tiktok.upload_video(file, init.upload_url or "", plan, on_progress=fail_third_chunk,
                            retry=UploadRetryPolicy(max_retries_per_chunk=0))
    assert_kind(interrupted.value, "retryable")
    assert only_post(sandbox)["received_bytes"] == held_chunks * CHUNK

    progress: list[int] = []
    resumed = tiktok.upload_video(file, init.upload_url or "", plan, on_progress=lambda d, t: progress.append(d))

    # The second call starts at byte 0; the 416 tells it where the server is and it goes on from there.
    assert (resumed.resyncs, resumed.chunks_sent, resumed.retries) == (1, 5 - held_chunks, 0)
    assert progress[0] == held_chunks * CHUNK and progress[-1] == FIVE_CHUNKS
    assert_received_exactly(sandbox, init, file)


@pytest.mark.parametrize("resent_chunks", ["refuse", "accept"])
def test_a_rerun_after_a_lost_answer_resumes_at_the_byte_the_server_reports(
    sandbox: SandboxHandle, connect: Connect, settings_for: Callable[..., Settings], blob: Blob, resent_chunks: str
) -> None:
    """Killed mid-upload: chunks 0 and 1 confirmed, chunk 2 stored but its answer lost. The re-run starts
    at chunk 0; a host that refuses it answers 416, a host that accepts an identical resend answers 206
    with all it holds (bytes 0-15728639): either way the upload goes on from byte 15728640."""
    sandbox.reset(config(resent_chunks=resent_chunks))
    file = blob(FIVE_CHUNKS)
    tiktok = connect(settings=settings_for(chunk_size=CHUNK))
    plan, init = start_upload(tiktok, file, CHUNK)

    def lose_the_third_answer(done: int, total: int) -> None:
        if done == 2 * CHUNK:
            sandbox.add_fault("upload", "lost_answer")

    with pytest.raises(TransportError):
        tiktok.upload_video(file, init.upload_url or "", plan, on_progress=lose_the_third_answer,
                            retry=UploadRetryPolicy(max_retries_per_chunk=0))
    assert only_post(sandbox)["received_bytes"] == 3 * CHUNK

    progress: list[int] = []
    resumed = tiktok.upload_video(file, init.upload_url or "", plan, on_progress=lambda d, t: progress.append(d))

    assert progress[0] == 3 * CHUNK and progress[-1] == FIVE_CHUNKS
    assert (resumed.resyncs, resumed.chunks_sent) == (1, 2)
    assert_received_exactly(sandbox, init, file)


def test_a_host_accepting_a_resent_chunk_refuses_different_bytes(
    sandbox: SandboxHandle, connect: Connect, settings_for: Callable[..., Settings], blob: Blob, tmp_path: Path
) -> None:
    sandbox.reset(config(resent_chunks="accept"))
    file = blob(FIVE_CHUNKS)
    tiktok = connect(settings=settings_for(chunk_size=CHUNK))
    plan, init = start_upload(tiktok, file, CHUNK)
    tiktok.upload_video(file, init.upload_url or "", plan)
    other = tmp_path / "other.mp4"
    other.write_bytes(bytes(FIVE_CHUNKS))  # same size, other bytes: chunk 0 is not the one it holds
    with pytest.raises(UploadRejected, match=r"chunk 0 .*HTTP 400"):
        tiktok.upload_video(other, init.upload_url or "", plan)
    assert_received_exactly(sandbox, init, file)  # what it held is untouched


def test_upload_url_expiring_mid_upload_asks_for_a_new_init(
    sandbox: SandboxHandle, connect: Connect, settings_for: Callable[..., Settings], blob: Blob, fake_time: FakeTime
) -> None:
    file = blob(FIVE_CHUNKS)
    tiktok = connect(settings=settings_for(chunk_size=CHUNK))
    plan, init = start_upload(tiktok, file, CHUNK)

    def expire_after_first_chunk(done: int, total: int) -> None:
        if done == CHUNK:
            sandbox.advance_clock(sandbox.config.upload_url_ttl)

    with pytest.raises(UploadUrlExpired) as expired:
        tiktok.upload_video(file, init.upload_url or "", plan, on_progress=expire_after_first_chunk)
    assert_kind(expired.value, "final", http_status=403)
    assert "initialize" in str(expired.value)
    assert fake_time.sleeps == []  # not retried in place
    assert only_post(sandbox)["received_bytes"] == CHUNK

    # What the error says to do: a new init, a new upload_url, a complete upload.
    plan, again = start_upload(tiktok, file, CHUNK)
    assert tiktok.upload_video(file, again.upload_url or "", plan).chunks_sent == 5
    posts = {post["publish_id"]: post for post in sandbox.posts()}
    assert posts[init.publish_id]["status"] == "PROCESSING_UPLOAD"  # abandoned, never published
    assert posts[again.publish_id]["received_bytes"] == FIVE_CHUNKS


@pytest.mark.parametrize("part", ["upload_id", "upload_token"])
def test_unknown_upload_is_upload_not_found(sandbox: SandboxHandle, connect: Connect, blob: Blob, part: str) -> None:
    file = blob(3_000_000)
    tiktok = connect()
    plan, init = start_upload(tiktok, file, 16 * MIB)
    url = urlsplit(init.upload_url or "")
    if part == "upload_id":
        url = url._replace(path="/upload/" + "0" * 32)
    else:
        url = url._replace(query="upload_token=guessed")
    with pytest.raises(UploadNotFound) as unknown:
        tiktok.upload_video(file, urlunsplit(url), plan)
    assert_kind(unknown.value, "final", http_status=404)
    assert only_post(sandbox)["received_bytes"] == 0


def test_each_chunk_gets_its_own_retry_budget_after_a_resync(
    sandbox: SandboxHandle, connect: Connect, settings_for: Callable[..., Settings], blob: Blob, fake_time: FakeTime
) -> None:
    file = blob(FIVE_CHUNKS)
    tiktok = connect(settings=settings_for(chunk_size=CHUNK))
    plan, init = start_upload(tiktok, file, CHUNK)
    policy = UploadRetryPolicy()

    def on_progress(done: int, total: int) -> None:
        if done == 2 * CHUNK:  # chunk 2 is stored but its answer is lost: the re-send's 416 moves on to chunk 3
            sandbox.add_fault("upload", "lost_answer")
        if done == 3 * CHUNK:  # chunk 3 then fails as often as the policy allows for one chunk
            sandbox.add_fault("upload", "error_500", times=policy.max_retries_per_chunk)

    result = tiktok.upload_video(file, init.upload_url or "", plan, on_progress=on_progress, retry=policy)

    assert (result.retries, result.resyncs) == (1 + policy.max_retries_per_chunk, 1)
    # Backoff restarts with chunk 3: ceilings 1 s (chunk 2), then 1, 2, 4, 8, 16 s (chunk 3).
    ceilings = [policy.initial_backoff * 2**n for n in (0, 0, 1, 2, 3, 4)]
    assert len(fake_time.sleeps) == len(ceilings)
    assert all(c / 2 <= pause <= c for c, pause in zip(ceilings, fake_time.sleeps, strict=True)), fake_time.sleeps
    assert_received_exactly(sandbox, init, file)
