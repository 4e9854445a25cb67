"""FILE_UPLOAD media transfer: sequential chunk PUTs with retry and resume (see the upload contract).

Memory stays bounded by a few read blocks (`READ_BLOCK` bytes): each chunk body is streamed from disk,
and re-read from disk when it must be sent again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import httpx
from pydantic import BaseModel, ConfigDict, Field

from tiktok._chunks import Chunk, ChunkPlan
from tiktok._errors import (
    InvalidInput,
    ServerError,
    TikTokError,
    TransportError,
    UnsupportedContainer,
    UploadNotFound,
    UploadProtocolError,
    UploadRejected,
    UploadUrlExpired,
)
from tiktok._http import send
from tiktok._models import StrictModel

# 256 KiB, measured (docs/benchmarks.md, Upload): 1 MiB blocks cost a fresh allocation per block that
# page-faults about 100 times per MiB (glibc hands blocks that large back to the kernel), and the two
# copies per byte (page cache -> block, block -> socket) run out of cache; 256 KiB blocks are reused
# from the heap (about 1 fault per MiB) while keeping the per-block work of httpx/h11 small.
READ_BLOCK = 256 * 1024

#: on_progress(bytes_confirmed_by_server, total_bytes)
ProgressCallback = Callable[[int, int], None]

_CONTENT_TYPES_BY_SUFFIX = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm"}
_HELD_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+)\s*$")
# A server contradicting itself this many times in a row (416 after 416) breaks the contract.
_MAX_CONSECUTIVE_RESYNCS = 3


class UploadRetryPolicy(StrictModel):
    """Per-chunk retries on 5xx, timeouts and dropped connections: exponential backoff with jitter."""

    max_retries_per_chunk: int = Field(5, ge=0)
    initial_backoff: float = Field(1.0, gt=0)
    max_backoff: float = Field(30.0, gt=0)

    def backoff(self, failures: int, random_fraction: float) -> float:
        """Delay before retry number `failures` (1-based): half fixed, half random ("equal jitter")."""
        ceiling = min(self.max_backoff, self.initial_backoff * 2 ** (failures - 1))
        return ceiling / 2 + ceiling / 2 * random_fraction


class UploadResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    total_bytes: int
    #: Chunk PUTs the server accepted (206/201).
    chunks_sent: int
    #: Chunk PUTs sent again after a 5xx, a timeout or a dropped connection.
    retries: int
    #: Times the server's progress (a 416, or a 2xx reporting other bytes than the chunk's) moved the upload.
    resyncs: int


def content_type_for(path: Path) -> str:
    """Upload Content-Type from the extension, else from the container's magic bytes."""
    by_suffix = _CONTENT_TYPES_BY_SUFFIX.get(path.suffix.lower())
    if by_suffix:
        return by_suffix
    with path.open("rb") as f:
        head = f.read(12)
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "video/webm"
    if head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"
    raise UnsupportedContainer(
        f"{path.name}: cannot tell MP4, MOV or WebM from its name or its first bytes",
        detail={"path": str(path), "head": head.hex()},
    )


def parse_held_range(value: str | None, total: int) -> int | None:
    """Offset of the next byte the server expects, from `Content-Range: bytes 0-N/TOTAL` or `bytes */TOTAL`.

    None when the header is absent; UploadProtocolError when it is malformed or about another file.
    """
    if value is None:
        return None
    match = _HELD_RANGE.match(value)
    if not match or int(match.group(3)) != total or (match.group(1) not in (None, "0")):
        raise UploadProtocolError(
            f"upload server sent Content-Range {value!r}; expected 'bytes 0-N/{total}' or 'bytes */{total}'",
            detail={"content_range": value, "total": total},
        )
    return 0 if match.group(2) is None else int(match.group(2)) + 1


def _chunk_body(file: BinaryIO, chunk: Chunk) -> Iterator[bytes]:
    file.seek(chunk.first)
    remaining = chunk.length
    while remaining:
        # An unbuffered read may return fewer bytes than asked (the loop goes on); none means end of file.
        block = file.read(min(READ_BLOCK, remaining))
        if not block:
            raise InvalidInput(f"file shrank while uploading: no bytes at offset {chunk.last - remaining + 1}")
        remaining -= len(block)
        yield block


def build_chunk_request(
    http: httpx.Client,
    upload_url: str,
    chunk: Chunk,
    total: int,
    content_type: str,
    body: Iterator[bytes],
    timeout: httpx.Timeout,
) -> httpx.Request:
    # Content-Length is set explicitly so httpx sends a sized body, not chunked transfer-encoding.
    return http.build_request(
        "PUT",
        upload_url,
        content=body,
        headers={
            "Content-Type": content_type,
            "Content-Length": str(chunk.length),
            "Content-Range": chunk.content_range(total),
        },
        timeout=timeout,
    )


def upload_chunks(
    http: httpx.Client,
    upload_url: str,
    path: Path,
    plan: ChunkPlan,
    *,
    content_type: str,
    timeout: httpx.Timeout,
    policy: UploadRetryPolicy,
    on_progress: ProgressCallback | None,
    sleep: Callable[[float], None],
    random: Callable[[], float],
) -> UploadResult:
    """Send every byte of `path` to `upload_url` per `plan`, resuming wherever the server says it is.

    Starting from byte 0 is always right: if the server already holds bytes (an earlier attempt
    with the same upload_url), it answers 416 with its progress, or accepts the re-sent chunk and
    reports all it holds, and either way we continue from the byte it holds.
    """
    size = path.stat().st_size
    if size != plan.video_size:
        raise InvalidInput(
            f"{path.name} is {size} bytes but the plan declared {plan.video_size}",
            detail={"file_size": size, "video_size": plan.video_size},
        )
    total = plan.video_size
    offset = failures = resyncs_in_a_row = 0
    chunks_sent = retries = resyncs = 0
    # Unbuffered: every read is at least a block, so a BufferedReader would only add a layer.
    with path.open("rb", buffering=0) as file:
        while offset < total:
            chunk = plan.chunk_starting_at(offset)
            request = build_chunk_request(
                http, upload_url, chunk, total, content_type, _chunk_body(file, chunk), timeout
            )
            failure: TikTokError
            try:
                response = send(http, request)
            except TransportError as exc:
                # Includes a lost answer: re-sending the same chunk is safe, a 416 tells us the truth.
                failure = exc
            else:
                status = response.status_code
                if status in (200, 201, 206):
                    held = parse_held_range(response.headers.get("Content-Range"), total)
                    failures = 0
                    if held is None or held == chunk.last + 1:
                        offset = chunk.last + 1
                        chunks_sent += 1
                        resyncs_in_a_row = 0
                    else:
                        # The server reports more (an identical re-sent chunk accepted idempotently after a
                        # lost answer, it holds later chunks too) or less than this chunk: its progress is
                        # the truth, as with a 416. A server that keeps contradicting itself breaks the contract.
                        resyncs_in_a_row += 1
                        if held == 0 or resyncs_in_a_row > _MAX_CONSECUTIVE_RESYNCS:
                            raise UploadProtocolError(
                                f"chunk {chunk.index} accepted but the server holds bytes up to {held - 1}, "
                                f"not {chunk.last}, {resyncs_in_a_row} time(s) in a row",
                                detail={"chunk": chunk._asdict(), "held": held, "http_status": status},
                            )
                        offset = held
                        resyncs += 1
                    if on_progress:
                        on_progress(offset, total)
                    continue
                if status == 416:
                    held = parse_held_range(response.headers.get("Content-Range"), total)
                    resyncs_in_a_row += 1
                    if held is None or held == chunk.first or resyncs_in_a_row > _MAX_CONSECUTIVE_RESYNCS:
                        raise UploadProtocolError(
                            f"416 on chunk {chunk.index} that does not say where to resume "
                            f"(Content-Range {response.headers.get('Content-Range')!r})",
                            http_status=416,
                            detail={"chunk": chunk._asdict(), "held": held},
                        )
                    offset = held
                    resyncs += 1
                    failures = 0  # the server holds this chunk: the next one gets its own retry budget
                    if on_progress:
                        on_progress(offset, total)
                    continue
                failure = _chunk_failure(response, chunk)
                if not failure.retryable:
                    raise failure
            failures += 1
            if failures > policy.max_retries_per_chunk:
                raise failure
            retries += 1
            sleep(policy.backoff(failures, random()))
    return UploadResult(total_bytes=total, chunks_sent=chunks_sent, retries=retries, resyncs=resyncs)


def _chunk_failure(response: httpx.Response, chunk: Chunk) -> TikTokError:
    """The error for a non-2xx, non-416 chunk answer. Only 5xx (ServerError) is retried in place."""
    status = response.status_code
    where = f"chunk {chunk.index} (bytes {chunk.first}-{chunk.last})"
    detail = {"chunk": chunk._asdict(), "body": response.text[:500]}
    if status >= 500:
        return ServerError(f"upload server error HTTP {status} on {where}", http_status=status, detail=detail)
    if status == 403:
        return UploadUrlExpired(
            f"upload_url expired (HTTP 403) at {where}: initialize the post again for a new upload_url",
            http_status=status,
            detail=detail,
        )
    if status == 404:
        return UploadNotFound(
            f"upload server knows no such upload (HTTP 404) at {where}: initialize the post again",
            http_status=status,
            detail=detail,
        )
    if status == 400:
        return UploadRejected(f"upload server rejected {where} (HTTP 400)", http_status=status, detail=detail)
    return UploadProtocolError(f"unexpected HTTP {status} on {where}", http_status=status, detail=detail)
