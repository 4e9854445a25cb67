"""An upload server emulating the shared media-transfer contract, as an httpx transport.

It re-derives chunk boundaries from the declared (video_size, chunk_size, total_chunk_count) on its
own, keeps only a running SHA-256 of what it accepted (so memory measurements see the client only),
and lets a test script faults per request number.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

# A fault is applied to the request with that number (0-based) instead of the normal answer.
#   "500"          answer 500 without storing
#   "drop"         raise ConnectError before reading the body (nothing delivered)
#   "lose_answer"  store the chunk, then raise ReadTimeout (the answer is lost)
#   "reset"        raise RemoteProtocolError after storing (connection dropped after send)
#   "403" / "404"  answer that status
#   "forget"       forget everything held, then process normally (server-side data loss)
Fault = str
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


@dataclass
class UploadServer(httpx.BaseTransport):
    video_size: int
    chunk_size: int
    total_chunk_count: int
    upload_url: str = "https://upload.tiktok.test/upload/?upload_id=42&sig=a%2Bb"
    faults: dict[int, Fault] = field(default_factory=dict)
    held: int = 0
    digest: "hashlib._Hash" = field(default_factory=hashlib.sha256)
    requests: list[dict[str, object]] = field(default_factory=list)
    largest_body: int = 0
    largest_piece: int = 0
    on_request: Callable[[httpx.Request], None] | None = None

    def boundaries(self, index: int) -> tuple[int, int]:
        first = index * self.chunk_size
        last = self.video_size - 1 if index == self.total_chunk_count - 1 else first + self.chunk_size - 1
        return first, last

    def held_header(self) -> str:
        return f"bytes 0-{self.held - 1}/{self.video_size}" if self.held else f"bytes */{self.video_size}"

    def answer(self, status: int) -> httpx.Response:
        return httpx.Response(status, headers={"Content-Range": self.held_header()})

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        number = len(self.requests)
        fault = self.faults.get(number)
        self.requests.append(
            {
                "url": str(request.url),
                "content_range": request.headers.get("Content-Range"),
                "content_length": request.headers.get("Content-Length"),
                "content_type": request.headers.get("Content-Type"),
                "authorization": request.headers.get("Authorization"),
                "transfer_encoding": request.headers.get("Transfer-Encoding"),
                "fault": fault,
            }
        )
        if self.on_request:
            self.on_request(request)
        assert request.method == "PUT" and str(request.url) == self.upload_url
        if fault == "drop":
            raise httpx.ConnectError("connection refused", request=request)
        if fault == "forget":
            self.held, self.digest = 0, hashlib.sha256()
        if fault in ("500", "403", "404"):
            self.drain(request)
            return httpx.Response(int(fault), text="injected")
        match = _RANGE.match(request.headers.get("Content-Range", ""))
        if not match or int(match.group(3)) != self.video_size or request.headers.get("Content-Type") not in (
            "video/mp4", "video/quicktime", "video/webm"
        ):
            self.drain(request)
            return httpx.Response(400, text="bad headers")
        first, last = int(match.group(1)), int(match.group(2))
        if first != self.held:
            self.drain(request)
            return self.answer(416)
        index = first // self.chunk_size
        if first % self.chunk_size or index >= self.total_chunk_count or (first, last) != self.boundaries(index):
            self.drain(request)
            return httpx.Response(400, text="range not on a chunk boundary")
        # Hash into a copy: the chunk is only kept if its length turns out right.
        digest = self.digest.copy()
        received = self.drain(request, digest)
        if int(request.headers["Content-Length"]) != last - first + 1 or received != last - first + 1:
            return httpx.Response(400, text="length mismatch")
        self.digest = digest
        self.held = last + 1
        if fault == "lose_answer":
            raise httpx.ReadTimeout("answer lost", request=request)
        if fault == "reset":
            raise httpx.RemoteProtocolError("peer closed connection", request=request)
        return self.answer(201 if self.held == self.video_size else 206)

    def drain(self, request: httpx.Request, digest: "hashlib._Hash | None" = None) -> int:
        """Consume the streamed body piece by piece, never holding more than one piece."""
        received = 0
        for piece in request.stream:  # type: ignore[union-attr]
            self.largest_piece = max(self.largest_piece, len(piece))
            received += len(piece)
            if digest is not None:
                digest.update(piece)
        self.largest_body = max(self.largest_body, received)
        self.requests[-1]["received"] = received
        return received
