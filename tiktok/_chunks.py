"""Chunk planning for FILE_UPLOAD, exactly per TikTok's media-transfer rules (pure)."""

from __future__ import annotations

from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from tiktok._errors import ChunkSizeOutOfRange, UploadProtocolError, VideoSizeOutOfRange

# TikTok's media-transfer limits, named after the request fields they bound (bytes). The docs say
# "5 MB", "64 MB", "128 MB" and "4 GB" but never MB or MiB: every bound is the stricter reading.
#: Smallest `chunk_size` (5 MiB; 5 MB would be smaller). Files under it are sent whole.
MIN_CHUNK_SIZE = 5 * 1024 * 1024
#: Largest `chunk_size` (64 MB; 64 MiB would be larger).
MAX_CHUNK_SIZE = 64_000_000
#: The final chunk absorbs the remainder and may exceed chunk_size, up to this many bytes.
MAX_FINAL_CHUNK_SIZE = 128_000_000
#: Largest `video_size`: "max 4 GB", read as 4,000,000,000 (4 GiB would be larger).
MAX_VIDEO_SIZE = 4_000_000_000
#: Largest `total_chunk_count`.
MAX_CHUNK_COUNT = 1000
#: The setting that chooses the chunk size (named in the error a bad value raises).
CHUNK_SIZE_SETTING = "TIKTOK_PIPELINE_CHUNK_SIZE"


class Chunk(NamedTuple):
    index: int
    first: int  # first byte offset, inclusive
    last: int  # last byte offset, inclusive

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def content_range(self, total: int) -> str:
        return f"bytes {self.first}-{self.last}/{total}"


class ChunkPlan(BaseModel):
    """What init declares (`video_size`, `chunk_size`, `total_chunk_count`) and the byte ranges."""

    model_config = ConfigDict(frozen=True)

    video_size: int
    chunk_size: int
    total_chunk_count: int

    def chunk(self, index: int) -> Chunk:
        if not 0 <= index < self.total_chunk_count:
            raise IndexError(f"chunk {index} outside 0..{self.total_chunk_count - 1}")
        first = index * self.chunk_size
        last = self.video_size - 1 if index == self.total_chunk_count - 1 else first + self.chunk_size - 1
        return Chunk(index, first, last)

    @property
    def chunks(self) -> list[Chunk]:
        return [self.chunk(i) for i in range(self.total_chunk_count)]

    def chunk_starting_at(self, offset: int) -> Chunk:
        """The chunk whose first byte is `offset` (where a resumed upload continues)."""
        index, misaligned = divmod(offset, self.chunk_size)
        if misaligned or not 0 <= index < self.total_chunk_count:
            raise UploadProtocolError(
                f"upload server resumes at byte {offset}, which is not a chunk boundary of {self}",
                detail={"offset": offset, "plan": self.model_dump()},
            )
        return self.chunk(index)


def check_chunk_size(chunk_size: int) -> int:
    """`chunk_size` if TikTok accepts it, else `ChunkSizeOutOfRange` naming the setting to fix.

    `plan_chunks` checks every plan; call this once at startup to refuse a bad setting early.
    """
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ChunkSizeOutOfRange(
            f"chunk size must be {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE} bytes (TikTok's media-transfer rule), "
            f"got {chunk_size}: set {CHUNK_SIZE_SETTING} within those bounds",
            detail={"chunk_size": chunk_size, "min": MIN_CHUNK_SIZE, "max": MAX_CHUNK_SIZE},
        )
    return chunk_size


def plan_chunks(video_size: int, chunk_size: int) -> ChunkPlan:
    """Plan the upload of `video_size` bytes in chunks of the requested `chunk_size`.

    - Files under 5 MiB, and files no larger than the requested chunk, go whole: one chunk with
      chunk_size = video_size (always within 5,242,880..64,000,000 for the latter).
    - Otherwise count = floor(size / chunk_size) and the last chunk absorbs the remainder, so it is
      shorter than 2 × chunk_size ≤ 128,000,000 bytes: the 128 MB rule holds by construction.
    - "Files over 64 MB must be chunked": floor() alone would send 64,000,001..127,999,999 bytes as
      one oversized chunk when chunk_size is 64,000,000, so such files get two halves instead.
    - At most 1000 chunks also holds by construction: 1000 × 5,242,880 bytes exceeds 4 GB.
    """
    if not 0 < video_size <= MAX_VIDEO_SIZE:
        raise VideoSizeOutOfRange(
            f"video size must be 1..{MAX_VIDEO_SIZE} bytes (TikTok's 4 GB), got {video_size}",
            detail={"video_size": video_size, "max": MAX_VIDEO_SIZE},
        )
    check_chunk_size(chunk_size)
    if video_size < MIN_CHUNK_SIZE or video_size <= chunk_size:
        return ChunkPlan(video_size=video_size, chunk_size=video_size, total_chunk_count=1)
    if video_size > MAX_CHUNK_SIZE and video_size // chunk_size < 2:
        chunk_size = video_size // 2  # ≥ 32,000,000: inside the bounds, and floor gives exactly 2
    return ChunkPlan(video_size=video_size, chunk_size=chunk_size, total_chunk_count=video_size // chunk_size)
