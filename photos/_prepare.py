"""`prepare_photo`: one image in, one upright JPEG or WebP within TikTok's photo limits out."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
from pathlib import Path
from typing import Literal, NamedTuple

from PIL import ExifTags, Image, ImageOps

from photos._errors import PhotoAnimated, PhotoCannotFit, PhotoError, PhotoTooLarge, PhotoUnreadable
from photos._limits import MAX_LONG_SIDE, MAX_PHOTO_BYTES, MAX_PIXELS
from photos._models import PreparedPhoto
from photos._pixels import fitted_size, scaled, to_rgb

OutputFormat = Literal["JPEG", "WEBP"]

#: What Pillow may open the source as (whichever of them this Pillow has): camera, phone and web
#: stills. Nothing that hands the file to another program (EPS runs Ghostscript) or that no phone makes.
ACCEPTED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "TIFF", "BMP", "AVIF")
#: Encoder qualities tried in turn until the file fits under max_bytes.
QUALITIES = (90, 85, 80, 75, 70, 60, 50, 40)
#: When no quality fits, the long side is cut by this factor and the qualities tried again...
SHRINK = 0.75
#: ... as long as it stays at least this long; below, PhotoCannotFit.
MIN_FIT_LONG_SIDE = 256
#: Part of every output name: a change to what the same inputs produce must change it.
RECIPE = "photos-1"

_EXTENSIONS: dict[OutputFormat, str] = {"JPEG": ".jpg", "WEBP": ".webp"}
_ORIENTATION = ExifTags.Base.Orientation
#: Orientations 5 to 8 turn the picture a quarter: width and height swap.
_QUARTER_TURNS = {5, 6, 7, 8}
#: What Pillow raises on a file it cannot decode, besides its decompression-bomb guard.
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)
#: Pixel modes whose colours an RGB ICC profile describes (kept in the output; others are dropped).
_RGB_MODES = {"RGB", "RGBA", "RGBa", "RGBX", "P", "PA"}


class _Upright(NamedTuple):
    picture: Image.Image  # 8-bit RGB, upright, no metadata
    source_format: str
    size: tuple[int, int]  # the upright source's full size (before any draft decode)
    orientation_applied: bool
    icc_profile: bytes | None


def prepare_photo(
    source: Path,
    dest_dir: Path,
    *,
    max_long_side: int = MAX_LONG_SIDE,
    max_bytes: int = MAX_PHOTO_BYTES,
    max_pixels: int = MAX_PIXELS,
) -> PreparedPhoto:
    """Write `source` as an upright JPEG (WebP stays WebP) into `dest_dir` and describe the result.

    EXIF orientation is applied to the pixels and no EXIF, XMP or comment is written; the long side
    is scaled down (LANCZOS, never up) to `max_long_side`; transparency is flattened on white; the
    quality steps down from 90, then the size, until the file is at most `max_bytes`. The name is
    derived from the source's SHA-256 and the limits, so the same call writes the same bytes to the
    same path (atomically: a temporary file in `dest_dir`, then a rename).

    Raises PhotoUnreadable, PhotoAnimated, PhotoTooLarge (more than `max_pixels` claimed) or
    PhotoCannotFit; ValueError for limits TikTok would not accept.
    """
    source, dest_dir = Path(source), Path(dest_dir)
    _check_limits(max_long_side, max_bytes, max_pixels)
    source_sha256 = _source_sha256(source)
    upright = _read_upright(source, max_long_side, max_pixels)
    output_format: OutputFormat = "WEBP" if upright.source_format == "WEBP" else "JPEG"
    picture = scaled(upright.picture, fitted_size(*upright.picture.size, max_long_side))
    data, quality, picture = _encode_to_fit(source, picture, output_format, max_bytes, upright.icc_profile)
    path = dest_dir / output_name(source_sha256, output_format, max_long_side=max_long_side, max_bytes=max_bytes)
    _write_atomically(path, data)
    return PreparedPhoto(
        path=path,
        format=output_format,
        width=picture.width,
        height=picture.height,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        source_format=upright.source_format,
        source_sha256=source_sha256,
        quality=quality,
        orientation_applied=upright.orientation_applied,
        resized=picture.size != upright.size,
    )


def output_name(source_sha256: str, output_format: OutputFormat, *, max_long_side: int, max_bytes: int) -> str:
    """The file name `prepare_photo` writes: the same source and limits, the same name."""
    recipe = f"{RECIPE}\0{source_sha256}\0{max_long_side}\0{max_bytes}".encode()
    return hashlib.sha256(recipe).hexdigest()[:32] + _EXTENSIONS[output_format]


def _check_limits(max_long_side: int, max_bytes: int, max_pixels: int) -> None:
    if not 1 <= max_long_side <= MAX_LONG_SIDE:
        raise ValueError(f"max_long_side must be 1 to {MAX_LONG_SIDE} (TikTok's 1080p), not {max_long_side}")
    if not 1 <= max_bytes <= MAX_PHOTO_BYTES:
        raise ValueError(f"max_bytes must be 1 to {MAX_PHOTO_BYTES:,} (TikTok's 20 MB), not {max_bytes}")
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, not {max_pixels}")


def _source_sha256(source: Path) -> str:
    if not source.is_file():
        raise PhotoUnreadable(f"{source}: no such file", path=source)
    digest = hashlib.sha256()
    try:
        with source.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
            empty = f.tell() == 0
    except OSError as exc:
        raise PhotoUnreadable(f"{source}: cannot be read ({_one_line(exc)})", path=source, detail=str(exc)) from exc
    if empty:
        raise PhotoUnreadable(f"{source}: empty file", path=source)
    return digest.hexdigest()


def _read_upright(source: Path, max_long_side: int, max_pixels: int) -> _Upright:
    """Open, refuse what is no still or too many pixels, decode, turn upright, convert to RGB."""
    formats = _formats()
    try:
        with Image.open(source, formats=formats) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise PhotoTooLarge(
                    f"{source}: {width}x{height} is {width * height:,} pixels, over the limit of {max_pixels:,}",
                    path=source,
                    detail={"width": width, "height": height, "max_pixels": max_pixels},
                )
            # MPO is a camera JPEG with extra pictures (previews, depth maps): its first frame is the photo.
            if im.format != "MPO" and getattr(im, "is_animated", False):
                frames = getattr(im, "n_frames", 2)
                raise PhotoAnimated(
                    f"{source}: {im.format} with {frames} frames; a TikTok photo post takes still images only",
                    path=source,
                    detail={"format": im.format, "frames": frames},
                )
            orientation = im.getexif().get(_ORIENTATION, 1)
            if im.format in ("JPEG", "MPO"):
                # Decode a large JPEG at 1/2, 1/4 or 1/8 while both sides stay at least twice the target.
                im.draft(None, (2 * max_long_side, 2 * max_long_side))
            source_format, source_mode = im.format, im.mode
            icc = im.info.get("icc_profile")
            picture = to_rgb(ImageOps.exif_transpose(im))
    except PhotoError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard: its error past 2 x Image.MAX_IMAGE_PIXELS, its warning when a filter raises it.
        raise PhotoTooLarge(f"{source}: {_one_line(exc)}", path=source, detail=str(exc)) from exc
    except _READ_ERRORS as exc:
        raise PhotoUnreadable(
            f"{source}: not a readable {'/'.join(formats)} image ({_one_line(exc)})", path=source, detail=repr(exc)
        ) from exc
    picture.info = {}  # nothing of the source's metadata travels with the pixels
    applied = orientation in range(2, 9)
    keep_icc = icc if icc and icc[16:20] == b"RGB " and source_mode in _RGB_MODES else None
    size = (height, width) if applied and orientation in _QUARTER_TURNS else (width, height)
    return _Upright(picture, source_format or "unknown", size, applied, keep_icc)


def _formats() -> list[str]:
    Image.init()  # loads every plugin once; Image.OPEN then lists what this Pillow can read
    return [name for name in ACCEPTED_FORMATS if name in Image.OPEN]


def _encode_to_fit(
    source: Path, picture: Image.Image, output_format: OutputFormat, max_bytes: int, icc: bytes | None
) -> tuple[bytes, int, Image.Image]:
    """(data, quality, the picture encoded): the best quality under max_bytes, then smaller sizes."""
    current = picture
    smallest = 0
    while True:
        for quality in QUALITIES:
            data = _encode(current, output_format, quality, icc)
            if len(data) <= max_bytes:
                return data, quality, current
            smallest = len(data)
        long_side = int(max(current.size) * SHRINK)
        if long_side < MIN_FIT_LONG_SIDE:
            raise PhotoCannotFit(
                f"{source}: {smallest:,} bytes at {current.width}x{current.height} quality {QUALITIES[-1]}, "
                f"still over max_bytes {max_bytes:,}",
                path=source,
                detail={"max_bytes": max_bytes, "smallest": smallest, "width": current.width, "height": current.height},
            )
        current = scaled(picture, fitted_size(*picture.size, long_side))


def _encode(picture: Image.Image, output_format: OutputFormat, quality: int, icc: bytes | None) -> bytes:
    buffer = io.BytesIO()
    if output_format == "JPEG":
        picture.save(buffer, "JPEG", quality=quality, optimize=True, progressive=False, exif=b"", icc_profile=icc)
    else:
        picture.save(buffer, "WEBP", quality=quality, method=4, exif=b"", xmp=b"", icc_profile=icc or b"")
    return buffer.getvalue()


def _write_atomically(path: Path, data: bytes) -> None:
    """`data` at `path` whole or not at all: a temporary file beside it, synced, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a web server serving PULL_FROM_URL must read it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
