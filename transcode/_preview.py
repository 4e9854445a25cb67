"""Still images of a prepared video for a person reviewing it: a poster frame and a contact sheet.

Building each command is a pure function (assert on its argv); `make_preview` runs them. Both seek
to their frames (`-ss` before each input), so a preview costs a few decoded frames, not a decode of
the whole video, however long it is.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from transcode._run import run_ffmpeg

#: The poster frame's width and the contact sheet's tiles (9:16 each, so 1080x1920 video fits exactly).
POSTER_WIDTH = 270
TILE_WIDTH = 144
SHEET_COLUMNS = 4
SHEET_ROWS = 2


class Preview(BaseModel):
    """The preview stills of one video (JPEG files)."""

    poster: Path
    contact_sheet: Path
    #: Where in the video (s) the poster frame and each tile of the sheet were taken, in order.
    poster_at: float
    sheet_at: list[float]


def _height(width: int) -> int:
    return width * 16 // 9


def _fitted(width: int) -> str:
    """Scale into a 9:16 box of `width`, padded (a video that is not 9:16 keeps its shape)."""
    height = _height(width)
    return (f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1")


def poster_time(duration: float, cover_timestamp_ms: int | None = None) -> float:
    """The cover frame the post asks for (within the video), else one second in (or the middle of a shorter video)."""
    if cover_timestamp_ms is not None:
        return max(0.0, min(cover_timestamp_ms / 1000.0, max(duration - 0.05, 0.0)))
    return min(1.0, duration / 2)


def sheet_times(duration: float, tiles: int = SHEET_COLUMNS * SHEET_ROWS) -> list[float]:
    """Evenly spread moments, each in the middle of its share of the video."""
    return [round(duration * (index + 0.5) / tiles, 3) for index in range(tiles)]


def poster_command(video: Path, at: float, output: Path) -> list[str]:
    return ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-ss", f"{at:.3f}", "-i", str(video),
            "-frames:v", "1", "-vf", _fitted(POSTER_WIDTH), "-q:v", "4", str(output)]


def contact_sheet_command(video: Path, times: list[float], output: Path, columns: int = SHEET_COLUMNS) -> list[str]:
    """One input per tile, each seeked to its moment, scaled and laid out `columns` wide by xstack."""
    if not times or len(times) % columns:
        raise ValueError(f"{len(times)} tiles do not fill rows of {columns}")
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    for at in times:
        argv += ["-ss", f"{at:.3f}", "-i", str(video)]
    width, height = TILE_WIDTH, _height(TILE_WIDTH)
    scaled = ";".join(f"[{index}:v:0]trim=end_frame=1,{_fitted(width)}[t{index}]" for index in range(len(times)))
    layout = "|".join(f"{(index % columns) * width}_{(index // columns) * height}" for index in range(len(times)))
    stack = "".join(f"[t{index}]" for index in range(len(times)))
    graph = f"{scaled};{stack}xstack=inputs={len(times)}:layout={layout}[sheet]"
    return argv + ["-filter_complex", graph, "-map", "[sheet]", "-frames:v", "1", "-q:v", "4", str(output)]


def make_preview(video: Path, duration: float, out_dir: Path, *, cover_timestamp_ms: int | None = None) -> Preview:
    """Write `poster.jpg` and `contact-sheet.jpg` of `video` into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    poster, sheet = out_dir / "poster.jpg", out_dir / "contact-sheet.jpg"
    at, times = poster_time(duration, cover_timestamp_ms), sheet_times(duration)
    run_ffmpeg(poster_command(video, at, poster), expected_duration=0.0, output=poster, timeout=120, niceness=0)
    run_ffmpeg(contact_sheet_command(video, times, sheet), expected_duration=0.0, output=sheet, timeout=120,
               niceness=0)
    return Preview(poster=poster, contact_sheet=sheet, poster_at=at, sheet_at=times)
