"""Per-run working directories, the media kept for posts TikTok was told about, and the sweepers
that remove what is no longer needed.

A run's working directory goes when the run ends (or, after a crash, as soon as `cleanup` learns
from Prefect that the run is over; an age sweep catches anything else). The prepared media of a post must outlive it: once init has announced its size to TikTok,
only those very bytes may complete the upload, and the transcode is not byte-for-byte repeatable.
So before init the file is kept, content-addressed, in `<data_dir>/media/<sha256>.mp4` (a hard
link to the run's file; a copy across filesystems); every post announcing the same bytes shares
it, and a re-run of the request resumes from it on any worker that shares the data dir.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path

from tiktok_pipeline.errors import PipelineError
from tiktok_pipeline.settings import Settings

_MARKER = ".tiktok-pipeline-workdir"
_SHA256 = re.compile(r"[0-9a-f]{64}")
KEPT_SUFFIX = ".mp4"


def work_root(settings: Settings) -> Path:
    return (settings.data_dir / "work").resolve()


def make_work_dir(settings: Settings, run_id: str) -> Path:
    """Create (or reuse) the working directory of one flow run."""
    safe = "".join(c for c in run_id if c.isalnum() or c in "-_") or "run"
    path = work_root(settings) / safe
    path.mkdir(parents=True, exist_ok=True)
    (path / _MARKER).touch()
    return path


def remove_work_dir(path: Path) -> bool:
    """Remove a working directory made by `make_work_dir`; refuse anything else."""
    if not path.exists():
        return False
    if not (path / _MARKER).exists():
        raise ValueError(f"{path} is not a tiktok-pipeline working directory; refusing to delete it")
    shutil.rmtree(path, ignore_errors=True)
    return not path.exists()


def sweep_work_dirs(settings: Settings, *, older_than_s: float, keep: set[str] = frozenset(), now: float | None = None) -> list[Path]:
    """Remove working directories untouched for `older_than_s` seconds, except the names in `keep`."""
    root = work_root(settings)
    if not root.is_dir():
        return []
    now = time.time() if now is None else now
    removed: list[Path] = []
    for path in sorted(root.iterdir()):
        if not path.is_dir() or path.name in keep or not (path / _MARKER).exists():
            continue
        newest = max((p.stat().st_mtime for p in path.rglob("*")), default=path.stat().st_mtime)
        if now - newest >= older_than_s and remove_work_dir(path):
            removed.append(path)
    return removed


def sweep_ended_runs(settings: Settings, has_ended: Callable[[str], bool]) -> list[Path]:
    """Remove the working directories of runs that have ended (`has_ended(run_id)`: the orchestrator
    says Completed, Failed, Crashed or Cancelled, or knows no such run), whatever their age.

    A run removes its own directory when it ends; this is for the ones that could not (a worker
    killed mid-run): their source and transcoded media go as soon as the run is known to be over,
    not at the next age sweep. A run still going keeps its directory.
    """
    root = work_root(settings)
    if not root.is_dir():
        return []
    removed: list[Path] = []
    for path in sorted(root.iterdir()):
        if path.is_dir() and (path / _MARKER).exists() and has_ended(path.name) and remove_work_dir(path):
            removed.append(path)
    return removed


# --- kept media ------------------------------------------------------------------------------------


class KeptMediaError(PipelineError):
    """The media kept for a post TikTok was told about is missing, damaged or cannot be written."""


class KeptMediaMissing(KeptMediaError):
    """No file with the bytes a post's init announced is on this worker; final (the message names
    the cause and the fix: share TIKTOK_PIPELINE_DATA_DIR between workers)."""


class KeptMediaDamaged(KeptMediaError):
    """The kept file's bytes no longer hash to what init announced; final."""


class KeptMediaUnwritable(KeptMediaError):
    """The prepared media could not be kept under the data dir (disk full, permissions); nothing
    was sent to TikTok, so the same request can run again once it is fixed."""


def media_root(settings: Settings) -> Path:
    return (settings.data_dir / "media").resolve()


def kept_media_path(settings: Settings, sha256: str) -> Path:
    """Where the media with this content hash is kept (whether or not it is there)."""
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return media_root(settings) / f"{sha256}{KEPT_SUFFIX}"


def keep_media(settings: Settings, path: Path, sha256: str) -> Path:
    """Keep the file at `path` (whose content hash is `sha256`) for as long as a post needs it; its path.

    Idempotent and safe for concurrent callers: the file appears whole or not at all. Its mtime is
    set to now, so the sweeper leaves it alone for a while even before a post refers to it.
    """
    target = kept_media_path(settings, sha256)
    size = path.stat().st_size
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not (target.is_file() and target.stat().st_size == size):
            partial = target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.partial")
            partial.unlink(missing_ok=True)
            try:
                os.link(path, partial)
            except OSError:  # another filesystem, or no hard links there: a copy
                shutil.copyfile(path, partial)
            os.utime(partial)  # a link shares the run file's (old) mtime: not idle, whatever a sweeper thinks
            os.replace(partial, target)
        os.utime(target)
    except OSError as exc:
        raise KeptMediaUnwritable(
            f"cannot keep the prepared media in {target.parent} ({exc.strerror or exc}): a post's media must be kept "
            "there before TikTok is told about it; free space or fix the permissions of TIKTOK_PIPELINE_DATA_DIR",
            detail={"path": str(target), "error": str(exc)},
        ) from exc
    return target


def sweep_kept_media(settings: Settings, needed: Collection[str], *, idle_s: float, now: float | None = None) -> list[Path]:
    """Remove kept media whose content hash is not in `needed` and that nobody touched for `idle_s`
    seconds (the grace covers a file kept just before its post records that it needs it), and
    partial copies left by a crash."""
    root = media_root(settings)
    if not root.is_dir():
        return []
    now = time.time() if now is None else now
    removed: list[Path] = []
    for path in sorted(root.iterdir()):
        if not path.is_file():
            continue
        sha = path.name.removesuffix(KEPT_SUFFIX)
        partial = path.name.startswith(".") and path.name.endswith(".partial")
        if not partial and (not path.name.endswith(KEPT_SUFFIX) or not _SHA256.fullmatch(sha) or sha in needed):
            continue
        try:
            if now - path.stat().st_mtime >= idle_s:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # another sweeper was quicker
            continue
    return removed
