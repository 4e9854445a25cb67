"""What prepare_photo refuses, each with its typed error naming the file on one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from photos import PhotoAnimated, PhotoError, PhotoTooLarge, PhotoUnreadable, prepare_photo
from tests.photos.helpers import BLUE, RED, marked, noise, png_header_only, save


def _refused(source: Path, dest: Path, error: type[PhotoError], **limits: int) -> PhotoError:
    with pytest.raises(error) as caught:
        prepare_photo(source, dest, **limits)
    err = caught.value
    assert str(err).startswith(f"{source}: ") and "\n" not in str(err), str(err)
    assert err.path == source and err.final
    assert not dest.exists() or list(dest.iterdir()) == [], "a refused photo left a file behind"
    return err


def test_an_animated_gif_is_refused(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (64, 64), colour) for colour in (RED, BLUE, RED)]
    source = save(frames[0], tmp_path / "anim.gif", "GIF", save_all=True, append_images=frames[1:], duration=100)
    err = _refused(source, tmp_path / "out", PhotoAnimated)
    assert "GIF with 3 frames" in str(err) and "still images only" in str(err)
    assert err.detail == {"format": "GIF", "frames": 3}


def test_an_animated_webp_is_refused(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (64, 64), colour) for colour in (RED, BLUE)]
    source = save(frames[0], tmp_path / "anim.webp", "WEBP", save_all=True, append_images=frames[1:], duration=100)
    assert "WEBP with 2 frames" in str(_refused(source, tmp_path / "out", PhotoAnimated))


def test_an_animated_png_is_refused(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (64, 64), colour) for colour in (RED, BLUE)]
    source = save(frames[0], tmp_path / "anim.png", "PNG", save_all=True, append_images=frames[1:], duration=100)
    assert "PNG with 2 frames" in str(_refused(source, tmp_path / "out", PhotoAnimated))


def test_a_one_frame_gif_is_a_still(tmp_path: Path) -> None:
    source = save(Image.new("RGB", (64, 64), RED), tmp_path / "one.gif", "GIF")
    assert prepare_photo(source, tmp_path / "out").format == "JPEG"


def test_a_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    whole = save(noise((800, 600)), tmp_path / "whole.jpg", "JPEG")
    source = tmp_path / "truncated.jpg"
    source.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    err = _refused(source, tmp_path / "out", PhotoUnreadable)
    assert "truncated" in str(err), str(err)


def test_a_text_file_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "notes.jpg"
    source.write_text("not a picture at all\nsecond line\n")
    assert "cannot identify image file" in str(_refused(source, tmp_path / "out", PhotoUnreadable))


def test_a_format_not_accepted_is_refused(tmp_path: Path) -> None:
    source = save(marked((64, 64), 8), tmp_path / "icon.ico", "ICO")
    assert Image.open(source).format == "ICO"  # Pillow reads it; prepare_photo does not take it
    _refused(source, tmp_path / "out", PhotoUnreadable)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    assert str(_refused(tmp_path / "nowhere.jpg", tmp_path / "out", PhotoUnreadable)).endswith(": no such file")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.jpg").mkdir()
    _refused(tmp_path / "dir.jpg", tmp_path / "out", PhotoUnreadable)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "empty.jpg"
    source.write_bytes(b"")
    assert str(_refused(source, tmp_path / "out", PhotoUnreadable)).endswith(": empty file")


def test_a_header_claiming_far_too_many_pixels_is_refused_unread(tmp_path: Path) -> None:
    # 400 megapixels: over Pillow's own hard limit, which raises DecompressionBombError in Image.open.
    err = _refused(png_header_only(tmp_path / "bomb.png", 20_000, 20_000), tmp_path / "out", PhotoTooLarge)
    assert "400000000 pixels" in str(err) and "decompression bomb" in str(err)


def test_a_header_over_our_limit_is_refused_unread(tmp_path: Path) -> None:
    # 110 megapixels: Pillow only warns (over 89.5 MP); the 100 MP limit refuses it before decoding.
    source = png_header_only(tmp_path / "big.png", 11_000, 10_000)
    with pytest.warns(Image.DecompressionBombWarning):
        err = _refused(source, tmp_path / "out", PhotoTooLarge)
    assert "11000x10000 is 110,000,000 pixels, over the limit of 100,000,000" in str(err)
    assert err.detail == {"width": 11_000, "height": 10_000, "max_pixels": 100_000_000}


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillows_bomb_warning_raised_as_an_error_is_refused_too(tmp_path: Path) -> None:
    source = png_header_only(tmp_path / "big.png", 9_500, 9_500)  # 90.25 MP: under our limit, over Pillow's warning
    assert "decompression bomb" in str(_refused(source, tmp_path / "out", PhotoTooLarge))


def test_a_lower_pixel_limit_is_followed(tmp_path: Path) -> None:
    source = save(marked((100, 100), 10), tmp_path / "a.png", "PNG")
    _refused(source, tmp_path / "out", PhotoTooLarge, max_pixels=9_999)
    assert prepare_photo(source, tmp_path / "out", max_pixels=10_000).width == 100
