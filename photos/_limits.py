"""TikTok's photo-post limits and the two checks on a post's image list (pure functions)."""

from __future__ import annotations

from photos._errors import PhotoCountOutOfRange, PhotoCoverIndexOutOfRange

#: Images in one photo post (content/init `photo_images`).
MIN_PHOTOS = 1
MAX_PHOTOS = 35
#: "At most 20 MB" each; the docs do not say MB or MiB, so the stricter reading.
MAX_PHOTO_BYTES = 20_000_000
#: "At most 1080p", read strictly: the longer side, whatever the orientation.
MAX_LONG_SIDE = 1080
#: Pixels an input may claim before it is refused unread (a decompression bomb); 100 megapixels.
MAX_PIXELS = 100_000_000


def _require_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


def check_photo_count(count: int) -> int:
    """`count` when a photo post may carry that many images, else PhotoCountOutOfRange."""
    _require_int("count", count)
    if not MIN_PHOTOS <= count <= MAX_PHOTOS:
        raise PhotoCountOutOfRange(
            f"a photo post carries {MIN_PHOTOS} to {MAX_PHOTOS} images, not {count}",
            detail={"count": count, "min": MIN_PHOTOS, "max": MAX_PHOTOS},
        )
    return count


def check_photo_cover_index(index: int, count: int) -> int:
    """`index` when it names one of `count` images (0 <= index < count), else PhotoCoverIndexOutOfRange.

    The count itself is checked first (PhotoCountOutOfRange).
    """
    check_photo_count(count)
    _require_int("index", index)
    if not 0 <= index < count:
        raise PhotoCoverIndexOutOfRange(
            f"photo_cover_index {index} names no image of {count} (0 to {count - 1})",
            detail={"index": index, "count": count},
        )
    return index
