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


def run_in_process(*args: str | Path):
    """The same command in this process (Typer's CliRunner): for the many refusals that need no ffmpeg."""
    from typer.testing import CliRunner

    from deployments.cli import build_app

    return CliRunner().invoke(build_app(), [str(a) for a in args])


def test_outputs_that_cannot_be_written_exit_2_before_ffmpeg_runs(media, tmp_path: Path) -> None:
    source = tmp_path / "in.mp4"
    source.write_bytes(media.path("compliant").read_bytes())
    (tmp_path / "folder").mkdir()
    (tmp_path / "a-file").write_bytes(b"")
    link = tmp_path / "link.mp4"
    link.hardlink_to(source)
    cases = {
        source: "is INPUT: write the TikTok-ready file elsewhere",
        tmp_path / "." / "in.mp4": "is INPUT",
        link: "is INPUT",  # the same file under another name
        tmp_path / "missing" / "out.mp4": f"the folder of OUTPUT, {tmp_path / 'missing'}, does not exist: create it first",
        tmp_path / "a-file" / "out.mp4": "is a file, not a folder",
        tmp_path / "folder": "is a folder: give the path of the file to write",
    }
    for output, words in cases.items():
        done = run_in_process("transcode", source, output)
        assert done.exit_code == 2, done.output
        assert done.stdout == "" and len(done.stderr.splitlines()) == 1 and words in done.stderr, done.stderr
    done = cli("transcode", source, source)  # as a shell runs it: no ValueError traceback
    assert done.returncode == 2 and done.stderr.splitlines() == [
        f"error: OUTPUT {source} is INPUT: write the TikTok-ready file elsewhere (the input is never overwritten)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "folder", "in.mp4", "link.mp4"]
    assert source.read_bytes() == media.path("compliant").read_bytes()


def test_inputs_that_are_not_regular_files_exit_2_unopened(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "fifo.mp4"
    os.mkfifo(fifo)  # opening it would block: it must not be opened
    (tmp_path / "folder.mp4").mkdir()
    cases = {fifo: f"error: {fifo} is a FIFO, not a video file", "/dev/zero": "error: /dev/zero is a device, not a video file",
             tmp_path / "folder.mp4": f"error: {tmp_path / 'folder.mp4'} is a directory, not a video file",
             tmp_path / "missing.mp4": f"error: no such file: {tmp_path / 'missing.mp4'}"}
    for command in ("probe", "transcode"):
        for source, line in cases.items():
            argv = [command, source] + ([tmp_path / "out.mp4"] if command == "transcode" else [])
            done = run_in_process(*argv)
            assert done.exit_code == 2 and done.stderr.splitlines() == [line], done.stderr
    assert not (tmp_path / "out.mp4").exists()
