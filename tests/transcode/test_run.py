"""run_ffmpeg(): progress, concurrent stderr draining, timeout, cancel, clean-up, niceness."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psutil
import pytest

from transcode import (
    FFmpegError,
    ToolNotFoundError,
    TranscodeCancelledError,
    TranscodeTimeoutError,
    make_tiktok_ready,
    run_ffmpeg,
)
from transcode._run import DEFAULT_NICENESS, niced

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


def _own_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


def _children_niceness(seen: list[int]) -> None:
    """Append the nice value of every live child process (read from /proc) to `seen`."""
    for child in psutil.Process().children():
        try:
            stat = Path(f"/proc/{child.pid}/stat").read_text()
        except FileNotFoundError:  # already reaped
            continue
        if child.name() == "ffmpeg":
            seen.append(int(stat.rsplit(")", 1)[1].split()[16]))  # field 19 of proc(5): nice


def test_niced_is_a_pure_prefix() -> None:
    argv = ["ffmpeg", "-i", "in.mp4", "out.mp4"]
    assert niced(argv, 10) == ["nice", "-n", "10", *argv]
    assert niced(argv, 0) == argv and niced(argv, 0) is not argv
    for wrong in (-1, 20):
        with pytest.raises(ValueError, match="0..19"):
            niced(argv, wrong)


@pytest.mark.parametrize("niceness", [None, 0, 7])
def test_ffmpeg_runs_at_the_given_niceness(tmp_path: Path, niceness: int | None) -> None:
    added = DEFAULT_NICENESS if niceness is None else niceness
    if _own_niceness() + max(added, 1) > 19:
        pytest.skip("this process is already too nice to tell")
    seen: list[int] = []
    output = tmp_path / "n.mp4"
    options = {} if niceness is None else {"niceness": niceness}
    run_ffmpeg(_encode(1.5, output, "-re"), expected_duration=1.5, output=output,
               on_progress=lambda fraction: _children_niceness(seen), **options)
    assert seen and set(seen) == {_own_niceness() + added}


def test_make_tiktok_ready_passes_niceness_on(media, tmp_path: Path) -> None:
    if _own_niceness() + 5 > 19:
        pytest.skip("this process is already too nice to tell")
    seen: list[int] = []
    make_tiktok_ready(media.path("landscape"), tmp_path / "out.mp4", niceness=5,
                      on_progress=lambda fraction: _children_niceness(seen))
    assert seen and set(seen) == {_own_niceness() + 5}


def test_missing_ffmpeg_is_tool_not_found(tmp_path: Path) -> None:
    with pytest.raises(ToolNotFoundError, match="no-such-ffmpeg is not installed"):
        run_ffmpeg(["no-such-ffmpeg", "-version"], expected_duration=1)
