"""The chunk planner against TikTok's media-transfer rules, for every size from 1 byte to 4 GB."""

from __future__ import annotations

import pydantic
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import tiktok
from tiktok import (
    MAX_CHUNK_COUNT,
    MAX_CHUNK_SIZE,
    MAX_FINAL_CHUNK_SIZE,
    MAX_VIDEO_SIZE,
    MIN_CHUNK_SIZE,
    ChunkPlan,
    check_chunk_size,
    plan_chunks,
)
from tiktok_pipeline.settings import Settings

sizes = st.integers(min_value=1, max_value=MAX_VIDEO_SIZE)
chunk_sizes = st.integers(min_value=MIN_CHUNK_SIZE, max_value=MAX_CHUNK_SIZE)


def assert_follows_the_rules(plan: ChunkPlan, video_size: int) -> None:
    chunks = plan.chunks
    assert plan.video_size == video_size
    assert len(chunks) == plan.total_chunk_count
    assert plan.total_chunk_count in range(1, MAX_CHUNK_COUNT + 1)
    # Every byte exactly once, in order.
    assert chunks[0].first == 0 and chunks[-1].last == video_size - 1
    for previous, current in zip(chunks, chunks[1:]):
        assert current.first == previous.last + 1
    assert [c.index for c in chunks] == list(range(plan.total_chunk_count))
    assert sum(c.length for c in chunks) == video_size
    # What the server checks: count = floor(size / chunk_size), chunk i starts at i * chunk_size.
    assert plan.total_chunk_count == max(1, video_size // plan.chunk_size)
    assert all(c.first == c.index * plan.chunk_size for c in chunks)
    assert all(c.length == plan.chunk_size for c in chunks[:-1])
    if video_size < MIN_CHUNK_SIZE:
        assert plan.total_chunk_count == 1 and plan.chunk_size == video_size
    else:
        assert MIN_CHUNK_SIZE <= plan.chunk_size <= MAX_CHUNK_SIZE
        assert plan.chunk_size <= chunks[-1].length <= MAX_FINAL_CHUNK_SIZE
    if video_size > MAX_CHUNK_SIZE:
        assert plan.total_chunk_count > 1  # files over 64 MB must be chunked


@given(video_size=sizes, chunk_size=chunk_sizes)
@example(video_size=MAX_VIDEO_SIZE, chunk_size=MIN_CHUNK_SIZE)
@example(video_size=MAX_VIDEO_SIZE, chunk_size=MAX_CHUNK_SIZE)
@example(video_size=2 * MAX_CHUNK_SIZE - 1, chunk_size=MAX_CHUNK_SIZE)
@example(video_size=MAX_CHUNK_SIZE + 1, chunk_size=MAX_CHUNK_SIZE)
@example(video_size=MIN_CHUNK_SIZE - 1, chunk_size=MIN_CHUNK_SIZE)
def test_every_plan_covers_every_byte_once_within_limits(video_size: int, chunk_size: int) -> None:
    plan = plan_chunks(video_size, chunk_size)
    assert_follows_the_rules(plan, video_size)
    if video_size >= 2 * chunk_size:
        assert plan.chunk_size == chunk_size  # the requested size is honoured whenever it can be


@given(video_size=sizes, chunk_size=chunk_sizes)
def test_chunk_starting_at_finds_each_boundary(video_size: int, chunk_size: int) -> None:
    plan = plan_chunks(video_size, chunk_size)
    last = plan.chunks[-1]
    assert plan.chunk_starting_at(last.first) == last
    assert plan.chunk_starting_at(0) == plan.chunk(0)
    if plan.total_chunk_count > 1:
        with pytest.raises(tiktok.UploadProtocolError):
            plan.chunk_starting_at(last.first + 1)
    with pytest.raises(tiktok.UploadProtocolError):
        plan.chunk_starting_at(video_size)


def test_official_example() -> None:
    plan = plan_chunks(50_000_123, 10_000_000)
    assert (plan.chunk_size, plan.total_chunk_count) == (10_000_000, 5)
    assert [c.length for c in plan.chunks] == [10_000_000] * 4 + [10_000_123]
    assert plan.chunks[-1].content_range(50_000_123) == "bytes 40000000-50000122/50000123"


@pytest.mark.parametrize(
    ("video_size", "chunk_size", "expected"),
    [
        (1, MIN_CHUNK_SIZE, (1, 1)),
        (MIN_CHUNK_SIZE - 1, MIN_CHUNK_SIZE, (MIN_CHUNK_SIZE - 1, 1)),
        (MIN_CHUNK_SIZE, MIN_CHUNK_SIZE, (MIN_CHUNK_SIZE, 1)),
        (MIN_CHUNK_SIZE + 1, MIN_CHUNK_SIZE, (MIN_CHUNK_SIZE, 1)),  # last chunk absorbs 1 byte
        (2 * MIN_CHUNK_SIZE - 1, MIN_CHUNK_SIZE, (MIN_CHUNK_SIZE, 1)),
        (2 * MIN_CHUNK_SIZE, MIN_CHUNK_SIZE, (MIN_CHUNK_SIZE, 2)),
        (10_000_000, 16 * 1024 * 1024, (10_000_000, 1)),  # smaller than the chunk: sent whole
        (64_000_000, 64_000_000, (64_000_000, 1)),
        # Over 64 MB (not MiB!) a file is never sent as one chunk, even when floor() would allow it.
        (64_000_001, 64_000_000, (32_000_000, 2)),
        (64 * 1024 * 1024, 64_000_000, (32 * 1024 * 1024, 2)),
        (127_999_999, 64_000_000, (63_999_999, 2)),
        (100_000_000, 40_000_000, (40_000_000, 2)),
        (128_000_000, 64_000_000, (64_000_000, 2)),
        (MAX_VIDEO_SIZE, 64_000_000, (64_000_000, 62)),  # the last chunk holds 96,000,000 bytes
        (MAX_VIDEO_SIZE, MIN_CHUNK_SIZE, (MIN_CHUNK_SIZE, 762)),  # worst case: far below 1000 chunks
    ],
)
def test_boundaries(video_size: int, chunk_size: int, expected: tuple[int, int]) -> None:
    plan = plan_chunks(video_size, chunk_size)
    assert (plan.chunk_size, plan.total_chunk_count) == expected
    assert_follows_the_rules(plan, video_size)


def test_the_1000_chunk_limit_cannot_be_reached_within_the_size_bounds() -> None:
    # The issue asks to enlarge chunks beyond 1000; with 4 GB max and 5 MiB min chunks it never happens.
    assert MAX_VIDEO_SIZE // MIN_CHUNK_SIZE < MAX_CHUNK_COUNT


def test_limits_take_the_stricter_reading_of_mb_and_gb() -> None:
    # TikTok says 5 MB..64 MB per chunk, 128 MB final chunk, max 4 GB, and never whether MB means 10^6 or 2^20.
    assert (MIN_CHUNK_SIZE, MAX_CHUNK_SIZE) == (5 * 2**20, 64 * 10**6)
    assert (MAX_FINAL_CHUNK_SIZE, MAX_VIDEO_SIZE, MAX_CHUNK_COUNT) == (128 * 10**6, 4 * 10**9, 1000)


@pytest.mark.parametrize("video_size", [0, -1, MAX_VIDEO_SIZE + 1, 4 * 1024**3])
def test_size_out_of_range(video_size: int) -> None:
    with pytest.raises(tiktok.VideoSizeOutOfRange) as caught:
        plan_chunks(video_size, MIN_CHUNK_SIZE)
    assert caught.value.final and caught.value.detail["video_size"] == video_size


@pytest.mark.parametrize("chunk_size", [MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1, 64 * 1024 * 1024])
def test_chunk_size_out_of_range(chunk_size: int) -> None:
    with pytest.raises(tiktok.ChunkSizeOutOfRange):
        plan_chunks(100_000_000, chunk_size)
    # The startup check (the composition root runs it on the setting) refuses it too, naming the setting.
    with pytest.raises(tiktok.ChunkSizeOutOfRange, match="TIKTOK_PIPELINE_CHUNK_SIZE") as caught:
        check_chunk_size(chunk_size)
    assert caught.value.final and caught.value.detail == {"chunk_size": chunk_size, "min": MIN_CHUNK_SIZE, "max": MAX_CHUNK_SIZE}
    assert isinstance(caught.value, tiktok.InvalidInput)


@pytest.mark.parametrize("chunk_size", [MIN_CHUNK_SIZE, 16 * 1024 * 1024, MAX_CHUNK_SIZE])
def test_chunk_size_in_range_passes_the_startup_check(chunk_size: int) -> None:
    assert check_chunk_size(chunk_size) == chunk_size


def test_a_chunk_size_out_of_tiktoks_bounds_is_refused_by_the_settings_and_by_tiktok() -> None:
    # Both refuse it (tests/tiktok_pipeline/test_bounds.py keeps the two bounds equal).
    with pytest.raises(pydantic.ValidationError, match="TIKTOK_PIPELINE_CHUNK_SIZE|chunk_size"):
        Settings(chunk_size=MAX_CHUNK_SIZE + 1)
    with pytest.raises(tiktok.ChunkSizeOutOfRange, match="TIKTOK_PIPELINE_CHUNK_SIZE"):
        check_chunk_size(MAX_CHUNK_SIZE + 1)


def test_plan_is_immutable_and_matches_source_info() -> None:
    plan = plan_chunks(50_000_123, 10_000_000)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        plan.chunk_size = 1  # type: ignore[misc]
    assert tiktok.SourceInfo.file_upload(plan).body() == {
        "source": "FILE_UPLOAD",
        "video_size": 50_000_123,
        "chunk_size": 10_000_000,
        "total_chunk_count": 5,
    }
