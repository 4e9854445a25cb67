"""Fixtures: lavfi-generated media, cached per session, and an independent ffprobe check.

`media.path(name)` generates a recipe the first time it is asked for and reuses it afterwards.
Sources are tiny (320x180..640x360, about 3.2 s) so a 1080x1920 encode of each stays quick.
`assert_tiktok_ready` checks an output with its own ffprobe call, not with the code under test.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

SECONDS = 3.2
_FFMPEG = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y"]
_X264 = ["-c:v", "libx264", "-preset", "ultrafast"]
_AAC = ["-c:a", "aac", "-b:a", "96k"]


def _testsrc(size: str, rate: int = 30, seconds: float = SECONDS) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=s={size}:r={rate}:d={seconds}"]


def _sine(seconds: float = SECONDS, layout: str = "stereo") -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}:sample_rate=48000,aformat=channel_layouts={layout}"]


def _halves(seconds: float = SECONDS) -> list[str]:
    """320x180, left half red, right half blue: shows which way a picture was turned."""
    graph = (f"color=red:s=160x180:r=30:d={seconds}[l];color=blue:s=160x180:r=30:d={seconds}[r];"
             "[l][r]hstack")
    return ["-f", "lavfi", "-i", graph]


def _ten_bit(tags: list[str]) -> list[str]:
    return [*_testsrc("320x180"), *_sine(), "-pix_fmt", "yuv420p10le", *_X264, *tags, *_AAC]


# name -> (ffmpeg arguments between the common prefix and the output file, output suffix);
# a recipe may read other recipes' files through the library it is given.
Recipe = Callable[["MediaLibrary"], list[str]]
RECIPES: dict[str, tuple[Recipe, str]] = {
    "landscape": (lambda m: [*_testsrc("640x360"), *_sine(), *_X264, *_AAC], ".mp4"),
    "square": (lambda m: [*_testsrc("360x360"), *_sine(), *_X264, *_AAC], ".mp4"),
    "compliant": (lambda m: [*_testsrc("1080x1920"), *_sine(), *_X264, "-x264-params", "cabac=1",
                             "-profile:v", "high", "-pix_fmt", "yuv420p", *_AAC], ".mp4"),
    # Stream copies of `compliant` into Matroska: the remux path, whose MP4 comes out ~2 KB larger.
    "compliant_mkv": (lambda m: ["-i", str(m.path("compliant")), "-c", "copy"], ".mkv"),
    "portrait_51": (lambda m: ["-i", str(m.path("compliant")), *_sine(layout="5.1"), "-map", "0:v", "-map", "1:a",
                               "-c:v", "copy", *_AAC], ".mp4"),
    "halves": (lambda m: [*_halves(), *_sine(), *_X264, *_AAC], ".mp4"),
    # The mp4 muxer of ffmpeg 5.1 turns the legacy tag into a display matrix (ffprobe: rotation -90
    # for tag 270, 90 for tag 90); players turn the first 90 degrees clockwise, the second 270.
    "rotated_cw90": (lambda m: ["-i", str(m.path("halves")), "-c", "copy", "-metadata:s:v:0", "rotate=270"], ".mp4"),
    "rotated_cw270": (lambda m: ["-i", str(m.path("halves")), "-c", "copy", "-metadata:s:v:0", "rotate=90"], ".mp4"),
    "odd": (lambda m: [*_testsrc("321x181"), *_sine(), *_X264, "-pix_fmt", "yuv444p", *_AAC], ".mp4"),
    "anamorphic": (lambda m: ["-f", "lavfi", "-i", f"color=white:s=480x360:r=25:d={SECONDS},setsar=4/3", *_sine(),
                              *_X264, *_AAC], ".mp4"),
    "hlg": (lambda m: _ten_bit(["-color_primaries", "bt2020", "-color_trc", "arib-std-b67",
                                "-colorspace", "bt2020nc"]), ".mp4"),
    "hlg_untagged": (lambda m: _ten_bit(["-color_primaries", "bt2020", "-colorspace", "bt2020nc"]), ".mp4"),
    "pq": (lambda m: _ten_bit(["-color_primaries", "bt2020", "-color_trc", "smpte2084",
                               "-colorspace", "bt2020nc"]), ".mp4"),
    "vfr": (lambda m: [*_testsrc("320x180", rate=60), *_sine(), "-vf", r"select='lt(mod(n\,7)\,3)+not(mod(n\,11))'",
                       "-fps_mode", "vfr", *_X264, *_AAC], ".mp4"),
    "fps120": (lambda m: [*_testsrc("320x180", rate=120), *_sine(), *_X264, *_AAC], ".mp4"),
    "fps15": (lambda m: [*_testsrc("320x180", rate=15), *_sine(), *_X264, *_AAC], ".mp4"),
    "no_audio": (lambda m: [*_testsrc("640x360"), *_X264], ".mp4"),
    "long": (lambda m: [*_testsrc("320x180", seconds=5.0), *_sine(5.0), *_X264, *_AAC], ".mp4"),
    "short": (lambda m: [*_testsrc("320x180", seconds=2.0), *_sine(2.0), *_X264, *_AAC], ".mp4"),
    "noise": (lambda m: ["-f", "lavfi", "-i", f"nullsrc=s=640x360:r=30:d={SECONDS},geq=lum='random(1)*255':cb=128:cr=128",
                         *_sine(), *_X264, "-crf", "10", *_AAC], ".mp4"),
    "faststart": (lambda m: [*_testsrc("320x180"), *_sine(), *_X264, *_AAC, "-movflags", "+faststart"], ".mp4"),
    "mono_mkv": (lambda m: [*_testsrc("640x360"), *_sine(layout="mono"), *_X264, "-c:a", "libopus"], ".mkv"),
    "image": (lambda m: [*_testsrc("320x180", seconds=1), "-frames:v", "1"], ".png"),
    "cover_art_mp3": (lambda m: [*_sine(), "-i", str(m.path("image")), "-map", "0", "-map", "1", "-c:a", "libmp3lame",
                                 "-c:v", "png", "-disposition:v", "attached_pic"], ".mp3"),
}


class MediaLibrary:
    """Generated test media, made on first use and kept for the session."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        if name in _SPECIAL:
            target = self.root / _SPECIAL[name][1]
            if not target.exists():
                _SPECIAL[name][0](self, target)
            return target
        recipe, suffix = RECIPES[name]
        target = self.root / f"{name}{suffix}"
        if not target.exists():
            partial = target.with_name(f"partial-{target.name}")
            subprocess.run([*_FFMPEG, *recipe(self), str(partial)], check=True, capture_output=True)
            partial.rename(target)
        return target


def _empty(media: MediaLibrary, target: Path) -> None:
    target.write_bytes(b"")


def _text(media: MediaLibrary, target: Path) -> None:
    target.write_text("This is a shopping list, not a video.\n" * 50)


def _truncated(media: MediaLibrary, target: Path) -> None:
    """A faststart MP4 cut at 60 %: the index (moov) is intact, the data (mdat) is not."""
    data = media.path("faststart").read_bytes()
    target.write_bytes(data[: len(data) * 6 // 10])


def _truncated_patched(media: MediaLibrary, target: Path) -> None:
    """Cut like `truncated`, with the mdat box size patched to the new end: the box layout looks
    whole and only reading the packets shows the damage."""
    whole = media.path("faststart").read_bytes()
    data = bytearray(whole[: len(whole) * 6 // 10])
    offset = 0
    while offset < len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        if data[offset + 4:offset + 8] == b"mdat":
            data[offset:offset + 4] = (len(data) - offset).to_bytes(4, "big")
            break
        offset += size
    target.write_bytes(bytes(data))


_SPECIAL: dict[str, tuple[Callable[[MediaLibrary, Path], None], str]] = {
    "empty": (_empty, "empty.mp4"),
    "text": (_text, "text.mp4"),
    "truncated": (_truncated, "truncated.mp4"),
    "truncated_patched": (_truncated_patched, "truncated_patched.mp4"),
}


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaLibrary:
    return MediaLibrary(tmp_path_factory.mktemp("media"))


# --- independent checks ---------------------------------------------------------------------------


def ffprobe_json(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def assert_tiktok_ready(
    path: Path,
    *,
    duration: float,
    fps: Fraction | None = None,
    max_bytes: int = 4_000_000_000,
) -> dict[str, Any]:
    """Check the published-file contract with plain ffprobe and byte reads; returns ffprobe's JSON."""
    data = ffprobe_json(path)
    streams = data["streams"]
    video = [s for s in streams if s["codec_type"] == "video"]
    audio = [s for s in streams if s["codec_type"] == "audio"]
    assert len(video) == 1 and len(audio) == 1, streams
    v, a = video[0], audio[0]
    assert "mp4" in data["format"]["format_name"]
    assert (v["codec_name"], v["pix_fmt"], v["width"], v["height"]) == ("h264", "yuv420p", 1080, 1920)
    assert v["profile"] in ("High", "Main")
    assert v.get("sample_aspect_ratio", "1:1") in ("1:1", "0:1")
    assert not any(sd.get("rotation") for sd in v.get("side_data_list", []))
    assert v.get("color_transfer") in (None, "bt709")
    rate = Fraction(v["avg_frame_rate"])
    assert Fraction(v["r_frame_rate"]) == rate
    assert 23 <= rate <= 60
    if fps is not None:
        assert rate == fps
    assert (a["codec_name"], a["profile"], a["channels"], a["sample_rate"]) == ("aac", "LC", 2, "48000")
    assert abs(float(data["format"]["duration"]) - duration) < 0.25, data["format"]["duration"]
    raw = path.read_bytes()
    assert path.stat().st_size <= max_bytes
    assert 0 < raw.find(b"moov") < raw.find(b"mdat"), "moov must come before mdat (faststart)"
    return data


@pytest.fixture(scope="session")
def big_compliant_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TikTok-compliant 1080x1920 clip over 10 MiB (noise), so a 5 MiB chunk size makes 2+ chunks."""
    path = tmp_path_factory.mktemp("big") / "big.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y",
         "-f", "lavfi", "-i", "nullsrc=s=270x480:r=30:d=3.2,geq=lum='random(1)*255':cb=128:cr=128,scale=1080:1920:flags=neighbor",
         "-f", "lavfi", "-i", "sine=f=440:d=3.2:sample_rate=48000,aformat=channel_layouts=stereo",
         "-c:v", "libx264", "-preset", "ultrafast", "-x264-params", "cabac=1", "-profile:v", "high", "-pix_fmt", "yuv420p", "-qp", "30",
         "-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart", str(path)],
        check=True,
    )
    assert path.stat().st_size > 10 * 1024 * 1024, path.stat().st_size
    return path
