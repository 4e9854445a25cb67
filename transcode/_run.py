"""Running ffmpeg: progress from `-progress pipe:1`, stderr drained by a thread, timeout, cancel, and a
lower CPU priority (`nice`) so that transcodes do not starve the uploads running beside them.

On any failure, timeout or cancel the process is killed and the partial output removed.
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO

from transcode._errors import FFmpegError, ToolNotFoundError, TranscodeCancelledError, TranscodeTimeoutError

#: Called with the fraction done (0..1) of the current command, in the caller's thread.
ProgressCallback = Callable[[float], None]
#: A threading.Event or any callable: once it returns True, the command is killed.
Cancel = threading.Event | Callable[[], bool]

#: Niceness of an ffmpeg run unless the caller asks for one: none. The pipeline's transcode task passes
#: TIKTOK_PIPELINE_TRANSCODE_NICENESS (10), so its transcodes yield the CPU to uploads, status polls
#: and the worker itself (bench/contention.py measures the effect).
DEFAULT_NICENESS = 0
NICE = "nice"
STDERR_TAIL_LINES = 200
_POLL_SECONDS = 0.1
_TERMINATE_GRACE = 5.0


def run_ffmpeg(
    argv: list[str],
    *,
    expected_duration: float,
    output: Path | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: Cancel | None = None,
    timeout: float | None = None,
    niceness: int = DEFAULT_NICENESS,
) -> str:
    """Run one ffmpeg command to completion and return the tail of its stderr.

    `niceness` (0..19) is added to this process's own for the command (`nice -n`; 0: run it as is).
    Raises `TranscodeCancelledError`, `TranscodeTimeoutError` or `FFmpegError`; in every one of
    those cases `output` (when given) no longer exists afterwards.
    """
    started = time.monotonic()
    command = niced(argv, niceness)
    for tool in dict.fromkeys((command[0], argv[0])):
        if shutil.which(tool) is None:
            raise ToolNotFoundError(f"{tool} is not installed" + (" (install ffmpeg)" if tool == argv[0] else ""),
                                    detail={"argv": command})
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, errors="replace")
    except FileNotFoundError as exc:
        raise ToolNotFoundError(f"{command[0]} is not installed (install ffmpeg)", detail=str(exc)) from exc
    stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    progress: queue.Queue[float] = queue.Queue()
    readers = [
        threading.Thread(target=_drain_stderr, args=(process.stderr, stderr_tail), daemon=True),
        threading.Thread(target=_read_progress, args=(process.stdout, expected_duration, progress), daemon=True),
    ]
    for reader in readers:
        reader.start()

    failure: Exception | None = None
    try:
        while True:
            try:
                returncode = process.wait(timeout=_POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                pass
            finally:
                _deliver(progress, on_progress)
            if _cancelled(cancel):
                failure = TranscodeCancelledError("cancelled: ffmpeg stopped, partial output removed",
                                                  path=output, detail={"argv": argv})
                break
            if timeout is not None and time.monotonic() - started > timeout:
                failure = TranscodeTimeoutError(f"ffmpeg took longer than {timeout:g} s and was stopped",
                                                path=output, detail={"argv": argv, "timeout": timeout})
                break
    except BaseException:
        _stop(process)
        _remove(output)
        raise
    if failure is not None:
        _stop(process)
    for reader in readers:
        reader.join()
    _deliver(progress, on_progress)
    stderr = "".join(stderr_tail)
    if failure is None and returncode != 0:
        failure = FFmpegError(
            f"ffmpeg failed (exit {returncode}): {_last_line(stderr)}",
            path=output, detail={"argv": argv, "returncode": returncode, "stderr": stderr})
    if failure is not None:
        _remove(output)
        raise failure
    return stderr


def niced(argv: list[str], niceness: int) -> list[str]:
    """The command that runs `argv` `niceness` steps nicer than this process (pure; 0 leaves it as is)."""
    if not 0 <= niceness <= 19:
        raise ValueError(f"niceness must be 0..19, not {niceness}")
    return [NICE, "-n", str(niceness), *argv] if niceness else list(argv)


def _drain_stderr(pipe: IO[str], tail: deque[str]) -> None:
    # Keeps the pipe empty so a chatty ffmpeg never blocks on a full stderr buffer.
    for line in pipe:
        tail.append(line)


def _read_progress(pipe: IO[str], expected_duration: float, progress: queue.Queue[float]) -> None:
    for line in pipe:
        key, _, value = line.strip().partition("=")
        if key == "out_time_us" and value.lstrip("-").isdigit() and expected_duration > 0:
            progress.put(min(max(int(value) / 1e6 / expected_duration, 0.0), 1.0))
        elif key == "progress" and value == "end":
            progress.put(1.0)


def _deliver(progress: queue.Queue[float], on_progress: ProgressCallback | None) -> None:
    latest = None
    while not progress.empty():
        latest = progress.get_nowait()
    if latest is not None and on_progress is not None:
        on_progress(latest)


def _cancelled(cancel: Cancel | None) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def _stop(process: subprocess.Popen[str]) -> None:
    """Ask ffmpeg to quit, then kill it if it does not within the grace period."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=_TERMINATE_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _remove(output: Path | None) -> None:
    if output is not None:
        output.unlink(missing_ok=True)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"
