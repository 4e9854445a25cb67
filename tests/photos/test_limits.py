"""A photo post's image list: 1 to 35 images, a cover index naming one of them."""

from __future__ import annotations

import pytest

from photos import (
    MAX_PHOTOS,
    MIN_PHOTOS,
    PhotoCountOutOfRange,
    PhotoCoverIndexOutOfRange,
    check_photo_count,
    check_photo_cover_index,
)


def test_tiktoks_numbers() -> None:
    assert (MIN_PHOTOS, MAX_PHOTOS) == (1, 35)


@pytest.mark.parametrize("count", [1, 2, 34, 35])
def test_counts_from_1_to_35_pass(count: int) -> None:
    assert check_photo_count(count) == count


@pytest.mark.parametrize("count", [-1, 0, 36, 1000])
def test_counts_outside_1_to_35_are_refused(count: int) -> None:
    with pytest.raises(PhotoCountOutOfRange, match=rf"1 to 35 images, not {count}$") as caught:
        check_photo_count(count)
    assert caught.value.detail["count"] == count


@pytest.mark.parametrize("value", [True, 3.0, "3", None])
def test_a_count_that_is_no_int_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError):
        check_photo_count(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(("index", "count"), [(0, 1), (0, 35), (34, 35), (3, 4)])
def test_a_cover_index_naming_an_image_passes(index: int, count: int) -> None:
    assert check_photo_cover_index(index, count) == index


@pytest.mark.parametrize(("index", "count"), [(-1, 3), (3, 3), (35, 35), (1, 1)])
def test_a_cover_index_naming_no_image_is_refused(index: int, count: int) -> None:
    with pytest.raises(PhotoCoverIndexOutOfRange, match=rf"photo_cover_index {index} names no image of {count} "):
        check_photo_cover_index(index, count)


def test_the_cover_check_refuses_a_bad_count_first() -> None:
    with pytest.raises(PhotoCountOutOfRange):
        check_photo_cover_index(0, 36)
