"""Images made on the spot: solid, marked, noisy, with EXIF, and PNG headers that only claim a size."""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

from PIL import ExifTags, Image

RED = (255, 0, 0)
BLUE = (0, 0, 255)
GREEN = (0, 200, 0)
WHITE = (255, 255, 255)


def noise(size: tuple[int, int], seed: int = 1) -> Image.Image:
    """Random RGB pixels: the worst case for a compressor."""
    width, height = size
    return Image.frombytes("RGB", size, random.Random(seed).randbytes(width * height * 3))


def marked(size: tuple[int, int], marker: int) -> Image.Image:
    """Green, with a red square in the top-left corner and a blue one in the bottom-left corner."""
    width, height = size
    im = Image.new("RGB", size, GREEN)
    im.paste(RED, (0, 0, marker, marker))
    im.paste(BLUE, (0, height - marker, marker, height))
    return im


def exif_with(orientation: int | None = None) -> Image.Exif:
    """EXIF carrying a camera, a GPS position and, when given, an orientation."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhotoTestCam"
    exif[ExifTags.Base.Model] = "Model 7"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (13.0, 24.0, 36.0)
    return exif


def save(im: Image.Image, path: Path, format: str, **params: object) -> Path:
    im.save(path, format, **params)
    return path


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG claiming width x height grayscale pixels with one tiny IDAT: opening it reads only the header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))
    return path
