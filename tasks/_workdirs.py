"""Per-run working directories and the sweeper that removes what a crashed run left behind."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from tiktok_pipeline.settings import Settings

_MARKER = ".tiktok-pipeline-workdir"


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
