"""photos: make one image ready for a TikTok photo post (Pillow; no Prefect, no settings).

    photo = prepare_photo(Path("IMG_0001.jpg"), Path("work/photos"))   # PreparedPhoto
    photo.path, photo.format, photo.width, photo.height, photo.size_bytes, photo.sha256
    check_photo_count(len(images)); check_photo_cover_index(cover, len(images))

TikTok's photo rules: JPEG or WebP, at most 20 MB and 1080p each, 1 to 35 images a post.
`prepare_photo` turns the pixels upright (EXIF orientation), writes no EXIF, scales the long side
down to 1080 (never up), flattens transparency on white, keeps WebP as WebP and makes everything
else JPEG, lowers the quality (then the size) until the file fits, refuses animations and
decompression bombs, and writes a name derived from the source's SHA-256, atomically.

Public surface, by group:
- the job: `prepare_photo` -> `PreparedPhoto`.
- TikTok's limits: `MIN_PHOTOS`, `MAX_PHOTOS`, `MAX_PHOTO_BYTES` (20 MB read as 20,000,000 bytes),
  `MAX_LONG_SIDE` (1080), and `MAX_PIXELS` (100 megapixels: the decompression-bomb guard, ours).
- a post's image list: `check_photo_count`, `check_photo_cover_index`.
- errors: one tree rooted at `PhotoError` (a `PipelineError`, every class final), drawn in
  `photos/_errors.py`.
"""

from photos._errors import (
    PhotoAnimated,
    PhotoCannotFit,
    PhotoCountOutOfRange,
    PhotoCoverIndexOutOfRange,
    PhotoError,
    PhotoSetInvalid,
    PhotoTooLarge,
    PhotoUnreadable,
)
from photos._limits import (
    MAX_LONG_SIDE,
    MAX_PHOTO_BYTES,
    MAX_PHOTOS,
    MAX_PIXELS,
    MIN_PHOTOS,
    check_photo_count,
    check_photo_cover_index,
)
from photos._models import PreparedPhoto
from photos._prepare import prepare_photo

__all__ = [
    # the job
    "prepare_photo",
    "PreparedPhoto",
    # TikTok's limits
    "MIN_PHOTOS",
    "MAX_PHOTOS",
    "MAX_PHOTO_BYTES",
    "MAX_LONG_SIDE",
    "MAX_PIXELS",
    # a post's image list
    "check_photo_count",
    "check_photo_cover_index",
    # errors (the tree in photos/_errors.py)
    "PhotoError",
    "PhotoAnimated",
    "PhotoCannotFit",
    "PhotoCountOutOfRange",
    "PhotoCoverIndexOutOfRange",
    "PhotoSetInvalid",
    "PhotoTooLarge",
    "PhotoUnreadable",
]
