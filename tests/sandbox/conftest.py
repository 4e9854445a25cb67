"""Media and a loopback file host for the sandbox tests (generated once per session with ffmpeg lavfi)."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

FFMPEG = "/usr/bin/ffmpeg"


def _ffmpeg(target: Path, *args: str) -> Path:
    subprocess.run([FFMPEG, "-v", "error", "-y", *args, str(target)], check=True, timeout=120)
    return target


def _clip(target: Path, size: str = "360x640", rate: int = 30, seconds: float = 1, codec: str = "libx264") -> Path:
    return _ffmpeg(
        target, "-f", "lavfi", "-i", f"testsrc2=s={size}:r={rate}", "-t", str(seconds),
        "-c:v", codec, "-pix_fmt", "yuv420p", *(["-preset", "ultrafast"] if codec == "libx264" else []),
    )


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> file: valid clips, clips breaking one TikTok rule each, photos, and non-media bytes."""
    root = tmp_path_factory.mktemp("sandbox-media")
    files = {
        "good": _clip(root / "good.mp4"),
        "fps15": _clip(root / "fps15.mp4", rate=15),
        "tiny": _clip(root / "tiny.mp4", size="200x200"),
        "mkv_h264": _clip(root / "h264.mkv"),
        "webm_vp9": _clip(root / "vp9.webm", size="360x360", seconds=0.5, codec="libvpx-vp9"),
        # Lossless noise does not compress: ~16 MB, three 5 MiB chunks, still a valid H.264 video.
        "big": _ffmpeg(
            root / "big.mp4", "-f", "lavfi", "-i", "nullsrc=s=640x360:r=30,geq=random(1)*255:128:128",
            "-t", "1.5", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p",
        ),
        "photo": _ffmpeg(root / "photo.jpg", "-f", "lavfi", "-i", "testsrc2=s=1080x1350", "-frames:v", "1"),
        "photo_huge": _ffmpeg(root / "huge.jpg", "-f", "lavfi", "-i", "testsrc2=s=2160x2700", "-frames:v", "1"),
        "photo_png": _ffmpeg(root / "photo.png", "-f", "lavfi", "-i", "testsrc2=s=640x640", "-frames:v", "1"),
    }
    noise = root / "noise.bin"
    noise.write_bytes(os.urandom(11 * 1024 * 1024 + 123))
    files["noise"] = noise
    return files


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture(scope="session")
def file_host(media: dict[str, Path]) -> Iterator[str]:
    """Base URL of a loopback HTTP server serving the media directory (for PULL_FROM_URL)."""
    handler = functools.partial(_QuietHandler, directory=str(media["good"].parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
