"""prepare_photo on ordinary stills: upright, scaled down, no EXIF, deterministic, fitted under max_bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageCms

from photos import MAX_LONG_SIDE, MAX_PHOTO_BYTES, PhotoCannotFit, PreparedPhoto, prepare_photo
from photos._prepare import MIN_FIT_LONG_SIDE, QUALITIES
from tests.photos.helpers import BLUE, GREEN, RED, exif_with, marked, near, noise, save


def _opened(photo: PreparedPhoto) -> Image.Image:
    im = Image.open(photo.path)
    im.load()
    return im


def test_tiktoks_numbers() -> None:
    assert (MAX_LONG_SIDE, MAX_PHOTO_BYTES) == (1080, 20_000_000)


def test_a_rotated_camera_jpeg_comes_out_upright_and_1080_long(tmp_path: Path) -> None:
    # Stored 4000x3000 with orientation 6: a viewer turns it 90 degrees clockwise, so the stored
    # top-left corner (red) shows top-right and the stored bottom-left (blue) shows top-left.
    source = save(marked((4000, 3000), 400), tmp_path / "camera.jpg", "JPEG", quality=92, exif=exif_with(6))
    photo = prepare_photo(source, tmp_path / "out")

    assert (photo.width, photo.height, photo.format) == (810, 1080, "JPEG")
    assert photo.orientation_applied and photo.resized
    im = _opened(photo)
    assert im.size == (810, 1080) and im.format == "JPEG" and im.mode == "RGB"
    assert near(im.getpixel((810 - 54, 54)), RED), im.getpixel((810 - 54, 54))
    assert near(im.getpixel((54, 54)), BLUE), im.getpixel((54, 54))
    assert near(im.getpixel((54, 1080 - 54)), GREEN) and near(im.getpixel((810 - 54, 1080 - 54)), GREEN)


@pytest.mark.parametrize("orientation", [1, None])
def test_an_upright_source_is_not_turned(tmp_path: Path, orientation: int | None) -> None:
    source = save(marked((1600, 1200), 200), tmp_path / "flat.jpg", "JPEG", exif=exif_with(orientation))
    photo = prepare_photo(source, tmp_path / "out")
    assert (photo.width, photo.height, photo.orientation_applied, photo.resized) == (1080, 810, False, True)
    im = _opened(photo)
    assert near(im.getpixel((40, 40)), RED) and near(im.getpixel((40, 810 - 40)), BLUE)


def test_the_output_carries_no_exif_gps_xmp_or_comment(tmp_path: Path) -> None:
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description tiff:Orientation="6" secret-xmp="1"/></rdf:RDF></x:xmpmeta>'
    source = save(marked((1200, 900), 100), tmp_path / "meta.jpg", "JPEG", exif=exif_with(6), comment=b"secret-comment", xmp=xmp)
    before = Image.open(source)
    assert before.getexif().get(ExifTags.Base.Orientation) == 6 and "comment" in before.info and "xmp" in before.info

    photo = prepare_photo(source, tmp_path / "out")
    data = photo.path.read_bytes()
    im = _opened(photo)
    assert dict(im.getexif()) == {} and not im.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert not {"exif", "xmp", "comment"} & im.info.keys(), im.info.keys()
    for leak in (b"Exif\x00\x00", b"PhotoTestCam", b"secret-comment", b"secret-xmp", b"http://ns.adobe.com/xap"):
        assert leak not in data, leak


def test_a_small_image_is_not_enlarged(tmp_path: Path) -> None:
    source = save(marked((300, 200), 20), tmp_path / "small.png", "PNG")
    photo = prepare_photo(source, tmp_path / "out")
    assert (photo.width, photo.height, photo.resized, photo.source_format, photo.format) == (300, 200, False, "PNG", "JPEG")
    assert _opened(photo).size == (300, 200)


def test_a_lower_max_long_side_is_followed(tmp_path: Path) -> None:
    source = save(marked((1000, 500), 50), tmp_path / "wide.png", "PNG")
    photo = prepare_photo(source, tmp_path / "out", max_long_side=640)
    assert (photo.width, photo.height, photo.resized) == (640, 320, True)


def test_the_model_describes_the_written_file(tmp_path: Path) -> None:
    source = save(marked((1200, 900), 100), tmp_path / "a.jpg", "JPEG")
    photo = prepare_photo(source, tmp_path / "out")
    data = photo.path.read_bytes()
    assert photo.path.parent == tmp_path / "out" and photo.path.suffix == ".jpg"
    assert photo.size_bytes == len(data) and photo.sha256 == hashlib.sha256(data).hexdigest()
    assert photo.source_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert photo.quality == QUALITIES[0] == 90
    assert oct(photo.path.stat().st_mode & 0o777) == oct(0o644)


def test_the_name_is_deterministic_and_a_second_call_writes_the_same_bytes(tmp_path: Path) -> None:
    source = save(noise((1300, 700)), tmp_path / "n.png", "PNG")
    first = prepare_photo(source, tmp_path / "out")
    first_bytes = first.path.read_bytes()
    again = prepare_photo(source, tmp_path / "out")
    elsewhere = prepare_photo(source, tmp_path / "other")
    copy = tmp_path / "copy-with-another-name.png"
    copy.write_bytes(source.read_bytes())
    from_copy = prepare_photo(copy, tmp_path / "third")

    assert again == first
    assert again.path.read_bytes() == first_bytes
    assert elsewhere.path.name == first.path.name == from_copy.path.name
    assert elsewhere.path.read_bytes() == first_bytes == from_copy.path.read_bytes()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [first.path.name]  # no temporary file left


def test_other_limits_or_another_source_give_another_name(tmp_path: Path) -> None:
    source = save(marked((1200, 900), 100), tmp_path / "a.jpg", "JPEG")
    other = save(marked((1200, 900), 101), tmp_path / "b.jpg", "JPEG")
    names = {
        prepare_photo(source, tmp_path / "out").path.name,
        prepare_photo(source, tmp_path / "out", max_long_side=720).path.name,
        prepare_photo(source, tmp_path / "out", max_bytes=5_000_000).path.name,
        prepare_photo(other, tmp_path / "out").path.name,
    }
    assert len(names) == 4


def test_over_max_bytes_the_quality_steps_down_first(tmp_path: Path) -> None:
    source = save(noise((1080, 1080)), tmp_path / "noise.png", "PNG")
    photo = prepare_photo(source, tmp_path / "out", max_bytes=600_000)
    assert photo.size_bytes <= 600_000 and photo.path.stat().st_size == photo.size_bytes
    assert QUALITIES[-1] <= photo.quality < QUALITIES[0]
    assert (photo.width, photo.height, photo.resized) == (1080, 1080, False)


def test_when_no_quality_fits_the_size_goes_down(tmp_path: Path) -> None:
    source = save(noise((1080, 1080)), tmp_path / "noise.png", "PNG")
    photo = prepare_photo(source, tmp_path / "out", max_bytes=250_000)
    assert photo.size_bytes <= 250_000 and photo.resized
    assert MIN_FIT_LONG_SIDE <= photo.width == photo.height < 1080
    assert _opened(photo).size == (photo.width, photo.height)


def test_what_cannot_fit_raises_and_writes_nothing(tmp_path: Path) -> None:
    source = save(noise((1080, 1080)), tmp_path / "noise.png", "PNG")
    with pytest.raises(PhotoCannotFit) as caught:
        prepare_photo(source, tmp_path / "out", max_bytes=1000)
    message = str(caught.value)
    assert message.startswith(f"{source}: ") and "max_bytes 1,000" in message and "\n" not in message
    assert caught.value.path == source and caught.value.final
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_an_rgb_colour_profile_is_kept(tmp_path: Path) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = save(marked((400, 300), 40), tmp_path / "srgb.jpg", "JPEG", icc_profile=srgb)
    assert _opened(prepare_photo(source, tmp_path / "out")).info.get("icc_profile") == srgb


@pytest.mark.parametrize("max_long_side", [0, -5, 1081, 4000])
def test_a_max_long_side_tiktok_would_refuse_is_a_value_error(tmp_path: Path, max_long_side: int) -> None:
    source = save(marked((40, 30), 4), tmp_path / "a.png", "PNG")
    with pytest.raises(ValueError, match="max_long_side"):
        prepare_photo(source, tmp_path / "out", max_long_side=max_long_side)


@pytest.mark.parametrize("max_bytes", [0, 20_000_001])
def test_a_max_bytes_tiktok_would_refuse_is_a_value_error(tmp_path: Path, max_bytes: int) -> None:
    source = save(marked((40, 30), 4), tmp_path / "a.png", "PNG")
    with pytest.raises(ValueError, match="max_bytes"):
        prepare_photo(source, tmp_path / "out", max_bytes=max_bytes)


def test_a_rotated_photo_within_the_limit_is_turned_but_not_resized(tmp_path: Path) -> None:
    source = save(marked((300, 200), 30), tmp_path / "small-rotated.jpg", "JPEG", quality=95, exif=exif_with(6))
    photo = prepare_photo(source, tmp_path / "out")
    assert (photo.width, photo.height, photo.orientation_applied, photo.resized) == (200, 300, True, False)
    im = _opened(photo)
    assert near(im.getpixel((200 - 15, 15)), RED) and near(im.getpixel((15, 15)), BLUE)


def test_a_huge_jpeg_decoded_at_a_fraction_still_comes_out_right(tmp_path: Path) -> None:
    # 4800x4400 is over twice 2 x 1080 on both sides: decoded at 1/2, then scaled; orientation 8 turns
    # it a quarter counter-clockwise, so the stored top-left (red) shows bottom-left, bottom-left (blue) bottom-right.
    source = save(marked((4800, 4400), 480), tmp_path / "huge.jpg", "JPEG", quality=85, exif=exif_with(8))
    with Image.open(source) as im:
        im.draft(None, (2160, 2160))
        assert im.size == (2400, 2200)  # the fraction prepare_photo asks for
    photo = prepare_photo(source, tmp_path / "out")
    assert (photo.width, photo.height, photo.resized, photo.orientation_applied) == (990, 1080, True, True)
    im = _opened(photo)
    assert near(im.getpixel((50, 1080 - 50)), RED) and near(im.getpixel((990 - 50, 1080 - 50)), BLUE)
    assert near(im.getpixel((50, 50)), GREEN)


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = save(marked((120, 80), 10), tmp_path / "a.png", "PNG")

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("photos._prepare.os.replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        prepare_photo(source, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
