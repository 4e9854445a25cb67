"""Pure pixel work: any Pillow mode to 8-bit RGB, and the size a picture is scaled to."""

from __future__ import annotations

from PIL import Image

#: What a transparent pixel becomes: TikTok shows no transparency, and JPEG has none.
BACKGROUND = (255, 255, 255)

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


def has_transparency(im: Image.Image) -> bool:
    return im.mode in _ALPHA_MODES or "transparency" in im.info


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB pixels for any mode: transparency flattened on white, 16-bit and float scaled, not clipped.

    A plain `convert("RGB")` of a 16-bit picture clips everything over 255 to white, so those are
    scaled down first; CMYK, YCbCr, LAB, palette, bilevel and grayscale go through Pillow's own
    conversions.
    """
    if im.mode == "RGB":
        return im
    if has_transparency(im):
        rgba = im.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(flat, rgba).convert("RGB")
    if im.mode in _SIXTEEN_BIT_MODES:
        return _scaled_to_l(im.convert("I"), 257).convert("RGB")
    if im.mode == "I":
        # 32-bit integers: from a 16-bit source when any value is over 8 bits, else already 8-bit.
        high = im.getextrema()[1]
        return _scaled_to_l(im, 257 if high > 255 else 1).convert("RGB")
    if im.mode == "F":
        high = im.getextrema()[1]
        return _scaled_to_l(im, 1 / 255 if high <= 1.0 else 1).convert("RGB")
    return im.convert("RGB")


def _scaled_to_l(im: Image.Image, divisor: float) -> Image.Image:
    scaled = im if divisor == 1 else im.point(lambda value: value / divisor)
    return scaled.convert("L")  # clips what is still outside 0-255


def fitted_size(width: int, height: int, max_long_side: int) -> tuple[int, int]:
    """(width, height) with the longer side at most `max_long_side`, the ratio kept, never enlarged."""
    long_side = max(width, height)
    if long_side <= max_long_side:
        return width, height
    scale = max_long_side / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))


def scaled(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    return im if im.size == size else im.resize(size, Image.Resampling.LANCZOS)
