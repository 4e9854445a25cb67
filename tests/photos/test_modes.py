"""Every pixel mode becomes 8-bit RGB: transparency on white, 16-bit scaled, CMYK converted; WebP stays WebP."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from PIL import Image

from photos import prepare_photo
from tests.photos.helpers import BLUE, RED, WHITE, marked, near, save


def _open(path: Path) -> Image.Image:
    im = Image.open(path)
    im.load()
    return im


def _half_transparent(mode: str = "RGBA") -> Image.Image:
    """Left half fully transparent black, right half opaque blue."""
    im = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    im.paste((*BLUE, 255), (100, 0, 200, 100))
    return im if mode == "RGBA" else im.convert(mode)


def test_a_png_with_alpha_becomes_a_jpeg_flattened_on_white(tmp_path: Path) -> None:
    photo = prepare_photo(save(_half_transparent(), tmp_path / "alpha.png", "PNG"), tmp_path / "out")
    im = _open(photo.path)
    assert (photo.format, photo.source_format, im.format, im.mode) == ("JPEG", "PNG", "JPEG", "RGB")
    assert near(im.getpixel((50, 50)), WHITE), im.getpixel((50, 50))  # not black: the transparent half
    assert near(im.getpixel((150, 50)), BLUE), im.getpixel((150, 50))


def test_a_grey_png_with_alpha_is_flattened_too(tmp_path: Path) -> None:
    im = Image.new("LA", (100, 50), (0, 0))
    im.paste((0, 255), (50, 0, 100, 50))  # right half opaque black
    out = _open(prepare_photo(save(im, tmp_path / "la.png", "PNG"), tmp_path / "out").path)
    assert near(out.getpixel((25, 25)), WHITE) and near(out.getpixel((75, 25)), (0, 0, 0))


def test_a_palette_gif_with_a_transparent_colour_is_flattened(tmp_path: Path) -> None:
    im = Image.new("P", (100, 50), 0)
    im.putpalette([0, 0, 0, *RED] + [0] * (256 - 2) * 3)
    im.paste(1, (50, 0, 100, 50))
    source = save(im, tmp_path / "still.gif", "GIF", transparency=0)
    assert "transparency" in Image.open(source).info
    photo = prepare_photo(source, tmp_path / "out")
    out = _open(photo.path)
    assert (photo.source_format, photo.format) == ("GIF", "JPEG")
    assert near(out.getpixel((25, 25)), WHITE) and near(out.getpixel((75, 25)), RED)


def test_a_16_bit_grey_png_is_scaled_not_clipped_to_white(tmp_path: Path) -> None:
    # Top left 65535, top right 32768, bottom 4096 (paste() cannot fill I;16 with such values: raw bytes).
    values = [65535 if y < 32 and x < 64 else 32768 if y < 32 else 4096 for y in range(64) for x in range(128)]
    im = Image.frombytes("I;16", (128, 64), struct.pack(f"<{len(values)}H", *values))
    source = save(im, tmp_path / "deep.png", "PNG")
    deep = Image.open(source)
    assert deep.mode.startswith("I") and [deep.getpixel(xy) for xy in ((20, 10), (100, 10), (20, 50))] == [65535, 32768, 4096]
    out = _open(prepare_photo(source, tmp_path / "out").path)
    assert out.mode == "RGB"
    assert near(out.getpixel((20, 10)), (255, 255, 255), 8)
    assert near(out.getpixel((100, 10)), (128, 128, 128), 8), out.getpixel((100, 10))
    assert near(out.getpixel((20, 50)), (16, 16, 16), 8), out.getpixel((20, 50))


def test_a_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    im = Image.new("CMYK", (100, 100), (0, 255, 255, 0))  # red
    im.paste((255, 255, 0, 0), (50, 0, 100, 100))  # blue
    source = save(im, tmp_path / "print.jpg", "JPEG", quality=95)
    assert Image.open(source).mode == "CMYK"
    photo = prepare_photo(source, tmp_path / "out")
    out = _open(photo.path)
    assert (photo.source_format, out.mode) == ("JPEG", "RGB")
    assert near(out.getpixel((20, 50)), RED), out.getpixel((20, 50))
    assert near(out.getpixel((80, 50)), BLUE), out.getpixel((80, 50))


def test_a_colour_profile_that_is_not_rgb_is_dropped(tmp_path: Path) -> None:
    # A CMYK profile no longer describes the pixels once they are RGB (header bytes 16-19: colour space).
    fake_cmyk_profile = bytes(16) + b"CMYK" + bytes(108)
    source = save(Image.new("CMYK", (64, 64), (0, 255, 255, 0)), tmp_path / "p.jpg", "JPEG", icc_profile=fake_cmyk_profile)
    assert Image.open(source).info.get("icc_profile") == fake_cmyk_profile
    assert "icc_profile" not in _open(prepare_photo(source, tmp_path / "out").path).info


def test_a_webp_stays_webp(tmp_path: Path) -> None:
    source = save(marked((1600, 1200), 200), tmp_path / "web.webp", "WEBP", quality=95)
    photo = prepare_photo(source, tmp_path / "out")
    data = photo.path.read_bytes()
    out = _open(photo.path)
    assert (photo.format, photo.source_format, photo.path.suffix) == ("WEBP", "WEBP", ".webp")
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP" and out.format == "WEBP"
    assert (out.size, photo.width, photo.height) == ((1080, 810), 1080, 810)
    assert near(out.getpixel((40, 40)), RED) and near(out.getpixel((40, 770)), BLUE)


def test_a_webp_with_alpha_stays_webp_flattened_on_white(tmp_path: Path) -> None:
    source = save(_half_transparent(), tmp_path / "alpha.webp", "WEBP", lossless=True)
    out = _open(prepare_photo(source, tmp_path / "out").path)
    assert (out.format, out.mode) == ("WEBP", "RGB")
    assert near(out.getpixel((50, 50)), WHITE) and near(out.getpixel((150, 50)), BLUE)


@pytest.mark.parametrize(("mode", "format", "suffix"), [("1", "PNG", "png"), ("L", "TIFF", "tif"), ("RGB", "BMP", "bmp")])
def test_other_stills_become_rgb_jpegs(tmp_path: Path, mode: str, format: str, suffix: str) -> None:
    source = save(marked((120, 80), 20).convert(mode), tmp_path / f"x.{suffix}", format)
    photo = prepare_photo(source, tmp_path / "out")
    out = _open(photo.path)
    assert (photo.source_format, photo.format, out.mode, out.size) == (format, "JPEG", "RGB", (120, 80))


def test_a_camera_mpo_gives_its_first_picture(tmp_path: Path) -> None:
    # Phones and cameras write MPO: a JPEG with more pictures behind it (previews, depth). Not an animation.
    first, second = marked((300, 200), 40), Image.new("RGB", (300, 200), BLUE)
    source = save(first, tmp_path / "camera.mpo", "MPO", save_all=True, append_images=[second])
    assert Image.open(source).format == "MPO" and Image.open(source).n_frames == 2
    photo = prepare_photo(source, tmp_path / "out")
    out = _open(photo.path)
    assert (photo.source_format, photo.format) == ("MPO", "JPEG")
    assert near(out.getpixel((20, 20)), RED) and not near(out.getpixel((150, 100)), BLUE)
