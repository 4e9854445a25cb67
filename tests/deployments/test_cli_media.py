"""`tiktok-pipeline probe` and `tiktok-pipeline transcode`, run as a user would (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.media import assert_tiktok_ready


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deployments.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_probe_prints_media_info_json(media) -> None:
    done = cli("probe", media.path("rotated_cw90"))
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["video"]["rotation"] == 90 and info["video"]["display_height"] == 320
    assert info["audio"]["codec"] == "aac"


@pytest.mark.parametrize(("name", "options", "taken", "duration"), [
    ("compliant", [], "remux", 3.2),
    ("portrait_51", [], "audio-only", 3.2),
    ("long", ["--fit", "pad", "--max-duration", "4", "--on-too-long", "trim"], "transcode", 4.0),
])
def test_transcode_prints_path_taken(media, tmp_path: Path, name: str, options: list[str], taken: str,
                                     duration: float) -> None:
    out = tmp_path / "out.mp4"
    done = cli("transcode", media.path(name), out, *options)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{taken}: {out}")
    assert_tiktok_ready(out, duration=duration)


def test_transcode_respects_max_bytes(media, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    done = cli("transcode", media.path("noise"), out, "--max-bytes", "700000")
    assert done.returncode == 0, done.stderr
    assert_tiktok_ready(out, duration=3.2, max_bytes=700_000)


@pytest.mark.parametrize(("name", "options", "words"), [
    ("empty", [], "empty"),
    ("text", [], "not a video or audio file"),
    ("truncated", [], "truncated"),
    ("cover_art_mp3", [], "audio with cover art"),
    ("image", [], "still image"),
    ("short", [], "shorter than the minimum"),
    ("long", ["--max-duration", "4", "--on-too-long", "reject"], "longer than the maximum 4 s"),
    ("landscape", ["--max-bytes", "20000"], "too small"),
    ("landscape", ["--fit", "stretch"], "invalid option"),
])
def test_bad_input_exits_2_with_one_line(media, tmp_path: Path, name: str, options: list[str], words: str) -> None:
    out = tmp_path / "out.mp4"
    done = cli("transcode", media.path(name), out, *options)
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
    assert done.stderr.startswith("error: ")
    assert list(tmp_path.iterdir()) == []
