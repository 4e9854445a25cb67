"""run_ffmpeg(): progress, concurrent stderr draining, timeout, cancel, clean-up."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from transcode import FFmpegError, TranscodeCancelledError, TranscodeTimeoutError, run_ffmpeg

FFMPEG = ["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-progress", "pipe:1", "-y"]


def _encode(seconds: float, output: Path, *extra: str) -> list[str]:
    return [*FFMPEG, *extra, "-f", "lavfi", "-i", f"testsrc2=s=320x180:r=30:d={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-f", "mp4", str(output)]


def test_progress_is_monotonic_and_completes(tmp_path: Path) -> None:
    seen: list[float] = []
    output = tmp_path / "a.mp4"
    run_ffmpeg(_encode(4, output), expected_duration=4, output=output, on_progress=seen.append)
    assert output.stat().st_size > 0
    assert seen and seen[-1] == 1.0 and seen == sorted(seen) and all(0 <= f <= 1 for f in seen)


@pytest.mark.timeout(120)
def test_chatty_stderr_does_not_deadlock(tmp_path: Path) -> None:
    # -v debug writes far more than a pipe buffer (64 KiB) to stderr.
    output = tmp_path / "b.mp4"
    stderr_tail = run_ffmpeg(_encode(2, output, "-v", "debug"), expected_duration=2, output=output)
    assert output.exists() and stderr_tail.count("\n") == 200


def test_cancel_kills_and_removes_partial_output(tmp_path: Path) -> None:
    output = tmp_path / "c.mp4"
    stop = threading.Event()

    def cancel_once_started(fraction: float) -> None:
        if output.exists():
            stop.set()

    with pytest.raises(TranscodeCancelledError):
        run_ffmpeg(_encode(3600, output, "-re"), expected_duration=3600, output=output,
                   on_progress=cancel_once_started, cancel=stop)
    assert stop.is_set() and not output.exists()


def test_cancel_accepts_a_callable(tmp_path: Path) -> None:
    output = tmp_path / "d.mp4"
    with pytest.raises(TranscodeCancelledError):
        run_ffmpeg(_encode(3600, output, "-re"), expected_duration=3600, output=output, cancel=lambda: True)
    assert not output.exists()


def test_timeout_kills_and_removes_partial_output(tmp_path: Path) -> None:
    output = tmp_path / "e.mp4"
    with pytest.raises(TranscodeTimeoutError) as caught:
        run_ffmpeg(_encode(3600, output, "-re"), expected_duration=3600, output=output, timeout=1.0)
    assert caught.value.retryable and not output.exists()


def test_failure_carries_detail_and_removes_output(tmp_path: Path) -> None:
    output = tmp_path / "f.mp4"
    output.write_bytes(b"stale")
    argv = [*FFMPEG, "-i", str(tmp_path / "missing.mp4"), str(output)]
    with pytest.raises(FFmpegError, match="No such file") as caught:
        run_ffmpeg(argv, expected_duration=1, output=output)
    assert caught.value.detail["returncode"] != 0 and caught.value.detail["argv"] == argv
    assert caught.value.final and not output.exists()
