"""probe(): ffprobe JSON plus a walk of the MP4 top-level boxes, turned into a `MediaInfo`.

`parse_probe` is pure (ffprobe JSON in, `MediaInfo` out) so every rule is testable on its own;
`probe` is the edge that runs ffprobe and reads the file.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

from transcode._errors import (
    CorruptMediaError,
    EmptyFileError,
    FFmpegError,
    MediaNotFoundError,
    NotMediaError,
    ToolNotFoundError,
)
from transcode._models import (
    AudioStreamInfo,
    HdrFormat,
    MediaInfo,
    VideoStreamInfo,
    parse_rate,
    parse_ratio,
)

FFPROBE = "ffprobe"
PROBE_TIMEOUT = 60.0

# Top-level ISO BMFF (MP4/MOV) box types; a file whose first box is one of these is an MP4/MOV.
_ISO_BOX_TYPES = {b"ftyp", b"styp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"moof"}
_IMAGE_FORMATS = {"image2", "gif_pipe"}  # gif_pipe is still an image demuxer; animated GIFs use "gif"
_UNTAGGED = {None, "", "unknown", "unspecified", "reserved"}
_PIX_FMT_DEPTH = re.compile(r"p(\d+)(le|be)$")


class BoxLayout(NamedTuple):
    """Top-level boxes of an MP4/MOV, in file order, and whether one runs past the end."""

    types: tuple[str, ...]
    truncated: bool

    @property
    def faststart(self) -> bool:
        """moov comes before mdat (players and TikTok can start without seeking to the end)."""
        if "moov" not in self.types or "mdat" not in self.types:
            return False
        return self.types.index("moov") < self.types.index("mdat")


def read_box_layout(path: Path, size: int) -> BoxLayout | None:
    """Walk the top-level boxes of an MP4/MOV; None when the file is not one."""
    types: list[str] = []
    offset = 0
    with path.open("rb") as handle:
        while offset < size:
            handle.seek(offset)
            header = handle.read(16)
            if len(header) < 8:
                return BoxLayout(tuple(types), truncated=True) if types else None
            box_size, box_type = struct.unpack(">I4s", header[:8])
            if not types and box_type not in _ISO_BOX_TYPES:
                return None
            if box_size == 1:  # 64-bit "largesize" follows the type
                if len(header) < 16:
                    return BoxLayout(tuple(types), truncated=True)
                box_size = struct.unpack(">Q", header[8:16])[0]
            elif box_size == 0:  # box runs to the end of the file
                box_size = size - offset
            types.append(box_type.decode("latin-1"))
            if box_size < 8:
                return BoxLayout(tuple(types), truncated=True)
            offset += box_size
    return BoxLayout(tuple(types), truncated=offset > size)


def probe(path: Path | str) -> MediaInfo:
    """Describe a media file; raises a typed `InvalidMediaError` when it is not readable media."""
    path = Path(path)
    if not path.is_file():
        raise MediaNotFoundError(f"{path}: no such file", path=path)
    size = path.stat().st_size
    if size == 0:
        raise EmptyFileError(f"{path.name}: the file is empty (0 bytes)", path=path)
    layout = read_box_layout(path, size)
    argv = [FFPROBE, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False)
    except FileNotFoundError as exc:
        raise ToolNotFoundError("ffprobe is not installed (install ffmpeg)", detail=str(exc)) from exc
    except subprocess.TimeoutExpired as exc:
        raise FFmpegError(f"{path.name}: ffprobe took longer than {PROBE_TIMEOUT:.0f} s", path=path,
                          detail={"argv": argv}) from exc
    detail = {"argv": argv, "returncode": done.returncode, "stderr": done.stderr.strip()}
    data: dict[str, Any] = {}
    if done.returncode == 0:
        data = json.loads(done.stdout or "{}")
    if not data.get("format"):
        if layout is not None:
            raise CorruptMediaError(
                f"{path.name}: MP4/MOV container that cannot be read (truncated or damaged): "
                f"{_first_line(done.stderr)}", path=path, detail=detail)
        raise NotMediaError(f"{path.name}: not a video or audio file ({_first_line(done.stderr)})",
                            path=path, detail=detail)
    return parse_probe(data, path=path, size=size, layout=layout)


def parse_probe(data: dict[str, Any], *, path: Path, size: int, layout: BoxLayout | None = None) -> MediaInfo:
    """ffprobe `-show_format -show_streams` JSON -> MediaInfo (pure)."""
    fmt = data.get("format", {})
    streams: list[dict[str, Any]] = data.get("streams", [])
    container = fmt.get("format_name", "")
    still_format = container in _IMAGE_FORMATS or container.endswith("_pipe")
    pictures = [s for s in streams if s.get("codec_type") == "video"]
    cover_art = [s for s in pictures if s.get("disposition", {}).get("attached_pic") == 1]
    moving = [s for s in pictures if s not in cover_art and not still_format]
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    durations = [d for d in (_float(s.get("duration")) for s in streams) if d]
    duration = _float(fmt.get("duration")) or (max(durations) if durations else None)
    video = _video_stream(moving[0], duration) if moving else None
    return MediaInfo(
        path=path,
        container=container,
        duration=duration,
        size=size,
        bit_rate=_int(fmt.get("bit_rate")),
        video=video,
        audio=_audio_stream(audio) if audio else None,
        cover_art_streams=len(cover_art),
        still_image=video is None and bool(pictures) and still_format,
        faststart=layout.faststart if layout else None,
        truncated=layout.truncated if layout else False,
    )


def clockwise_rotation(stream: dict[str, Any]) -> int:
    """Clockwise degrees a player turns the picture.

    The display matrix (what ffmpeg's autorotate follows) is reported counter-clockwise by ffprobe
    (an iPhone portrait clip says -90); the legacy `rotate` tag is clockwise (the same clip says 90).
    """
    for side_data in stream.get("side_data_list") or []:
        if side_data.get("side_data_type") == "Display Matrix" and "rotation" in side_data:
            return round(-float(side_data["rotation"]) / 90) * 90 % 360
    tag = (stream.get("tags") or {}).get("rotate")
    if tag not in (None, ""):
        return round(float(tag) / 90) * 90 % 360
    return 0


def hdr_format(stream: dict[str, Any], bit_depth: int) -> tuple[HdrFormat | None, bool]:
    """(HDR format, inferred?) from the transfer tag, else from the untagged-HDR heuristic.

    Untagged transfer (editors and some phone exports drop it) counts as HDR only for >= 10-bit
    pictures with another HDR hint: HDR10 mastering/light-level metadata means PQ; BT.2020
    primaries or matrix alone means HLG (what phones record, and the safer guess: HLG tone-maps
    acceptably even when wrong). A 10-bit picture with no BT.2020 hint is treated as SDR.
    """
    transfer = stream.get("color_transfer")
    if transfer == "smpte2084":
        return HdrFormat.pq, False
    if transfer == "arib-std-b67":
        return HdrFormat.hlg, False
    if transfer not in _UNTAGGED or bit_depth < 10:
        return None, False
    side_types = {sd.get("side_data_type") for sd in stream.get("side_data_list") or []}
    if side_types & {"Mastering display metadata", "Content light level metadata"}:
        return HdrFormat.pq, True
    if stream.get("color_primaries") == "bt2020" or stream.get("color_space") in {"bt2020nc", "bt2020c"}:
        return HdrFormat.hlg, True
    return None, False


def _video_stream(stream: dict[str, Any], container_duration: float | None) -> VideoStreamInfo:
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    rotation = clockwise_rotation(stream)
    sar = parse_ratio(stream.get("sample_aspect_ratio"))
    display_width, display_height = round(width * sar), height
    if rotation in (90, 270):
        display_width, display_height = display_height, display_width
    pix_fmt = stream.get("pix_fmt")
    bit_depth = _bit_depth(stream.get("bits_per_raw_sample"), pix_fmt)
    hdr, assumed = hdr_format(stream, bit_depth)
    r_rate, avg_rate = stream.get("r_frame_rate"), stream.get("avg_frame_rate")
    level = _int(stream.get("level"))
    return VideoStreamInfo(
        index=int(stream["index"]),
        codec=stream.get("codec_name", "unknown"),
        profile=stream.get("profile"),
        level=level if level and level > 0 else None,
        pix_fmt=pix_fmt,
        bit_depth=bit_depth,
        width=width,
        height=height,
        rotation=rotation,
        sar=f"{sar.numerator}:{sar.denominator}",
        display_width=display_width,
        display_height=display_height,
        field_order=stream.get("field_order"),
        r_frame_rate=r_rate,
        avg_frame_rate=avg_rate,
        vfr=_is_vfr(r_rate, avg_rate),
        color_primaries=_tag(stream.get("color_primaries")),
        color_transfer=_tag(stream.get("color_transfer")),
        color_space=_tag(stream.get("color_space")),
        color_range=_tag(stream.get("color_range")),
        hdr=hdr,
        hdr_assumed=assumed,
        duration=_float(stream.get("duration")) or container_duration,
        bit_rate=_int(stream.get("bit_rate")),
    )


def _audio_stream(stream: dict[str, Any]) -> AudioStreamInfo:
    return AudioStreamInfo(
        index=int(stream["index"]),
        codec=stream.get("codec_name", "unknown"),
        profile=stream.get("profile"),
        channels=int(stream.get("channels") or 0),
        channel_layout=stream.get("channel_layout"),
        sample_rate=_int(stream.get("sample_rate")),
        bit_rate=_int(stream.get("bit_rate")),
    )


def _is_vfr(r_rate: str | None, avg_rate: str | None) -> bool:
    """ffprobe's real base rate and the measured average differ by more than 1 %: frames are irregular."""
    real, average = parse_rate(r_rate), parse_rate(avg_rate)
    if real is None or average is None:
        return False
    return abs(real - average) / real > 0.01


def _bit_depth(raw: object, pix_fmt: str | None) -> int:
    depth = _int(raw)
    if depth and depth > 0:
        return depth
    match = _PIX_FMT_DEPTH.search(pix_fmt or "")
    return int(match.group(1)) if match else 8


def _tag(value: object) -> str | None:
    return None if value in _UNTAGGED else str(value)


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _float(value: object) -> float | None:
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if number == number else None  # NaN -> None


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no detail from ffprobe"
