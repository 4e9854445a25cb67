"""The chunk PUTs over a real socket on 127.0.0.1: sized bodies (no chunked encoding), resume on 416."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tiktok import MIN_CHUNK_SIZE, TikTokClient, plan_chunks
from tiktok_pipeline.settings import Settings

from .conftest import RateLimitRecorder

VIDEO_SIZE = 2 * MIN_CHUNK_SIZE + 777


class ContractHandler(BaseHTTPRequestHandler):
    """Minimal upload server: accepts the next chunk, answers 416 with what it holds otherwise."""

    server: "UploadHTTPServer"

    def do_PUT(self) -> None:  # noqa: N802 - http.server naming
        state = self.server
        state.headers_seen.append(dict(self.headers))
        state.paths_seen.append(self.path)
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        first, last, total = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", self.headers["Content-Range"]).groups())  # type: ignore[union-attr]
        if first != state.held:
            self.reply(416, total)
            return
        assert last - first + 1 == length == len(body)
        state.digest.update(body)
        state.held = last + 1
        self.reply(201 if state.held == total else 206, total)

    def reply(self, status: int, total: int) -> None:
        held = self.server.held
        self.send_response(status)
        self.send_header("Content-Range", f"bytes 0-{held - 1}/{total}" if held else f"bytes */{total}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


class UploadHTTPServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ContractHandler)
        self.held = 0
        self.digest = hashlib.sha256()
        self.headers_seen: list[dict[str, str]] = []
        self.paths_seen: list[str] = []


@pytest.fixture
def upload_server() -> Iterator[UploadHTTPServer]:
    server = UploadHTTPServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_upload_over_loopback(upload_server: UploadHTTPServer, settings: Settings, tmp_path: Path) -> None:
    data = os.urandom(VIDEO_SIZE)
    video = tmp_path / "clip.mov"
    video.write_bytes(data)
    plan = plan_chunks(VIDEO_SIZE, MIN_CHUNK_SIZE)
    url = f"http://127.0.0.1:{upload_server.server_address[1]}/upload/?upload_id=1&sig=x%2By"
    with TikTokClient("act.token", settings, rate_limit=RateLimitRecorder()) as client:
        first = client.upload_video(video, url, plan)
        # The same URL again: the server holds everything, answers 416 "0-(TOTAL-1)", which means done.
        again = client.upload_video(video, url, plan)
    assert (first.chunks_sent, first.resyncs) == (2, 0)
    assert (again.chunks_sent, again.resyncs) == (0, 1)
    assert upload_server.digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert upload_server.paths_seen == ["/upload/?upload_id=1&sig=x%2By"] * 3  # the URL is used verbatim
    for headers in upload_server.headers_seen:
        assert "Transfer-Encoding" not in headers
        assert headers["Content-Type"] == "video/quicktime"
        assert "Authorization" not in headers
