"""Over random sizes and limits: the long side within the limit, never enlarged, the shape kept within 1 px."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from photos import prepare_photo
from photos._pixels import fitted_size

sides = st.integers(min_value=1, max_value=2400)
limits = st.integers(min_value=1, max_value=1080)


def _assert_fitted(source: tuple[int, int], out: tuple[int, int], limit: int) -> None:
    (w, h), (ow, oh) = source, out
    assert max(ow, oh) <= limit and ow <= w and oh <= h
    if max(w, h) <= limit:
        assert (ow, oh) == (w, h)  # never scaled when it already fits
    else:
        assert max(ow, oh) == limit  # scaled exactly to the limit, not below
    # The shape: both sides are the source's times one scale (the long side's), each within 1 px.
    scale = max(ow, oh) / max(w, h)
    assert abs(ow - w * scale) <= 1 and abs(oh - h * scale) <= 1, (source, out)


@settings(max_examples=500, deadline=None)
@given(width=st.integers(1, 100_000), height=st.integers(1, 100_000), limit=limits)
def test_fitted_size(width: int, height: int, limit: int) -> None:
    _assert_fitted((width, height), fitted_size(width, height, limit), limit)


@settings(max_examples=30, deadline=None)
@given(width=sides, height=sides, limit=limits)
def test_prepared_photos_fit_and_keep_their_shape(width: int, height: int, limit: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "in.jpg"
        Image.new("RGB", (width, height), (30, 120, 200)).save(source, "JPEG")
        photo = prepare_photo(source, Path(work) / "out", max_long_side=limit)
        with Image.open(photo.path) as out:
            assert out.size == (photo.width, photo.height)
        _assert_fitted((width, height), (photo.width, photo.height), limit)
        assert photo.resized == ((photo.width, photo.height) != (width, height))
