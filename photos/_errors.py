"""The error hierarchy of `photos`, rooted in `PhotoError`.

Every failure here is about the input itself or the caller's numbers, so every class is final: the
same image with the same limits fails the same way. `.message` names the file and the problem in one
line, `.path` is the file concerned (None for the count and cover checks), `.detail` carries what
Pillow said and the measured values.

    PipelineError (tiktok_pipeline.errors)
    └── PhotoError                          final        root; path, detail
        ├── PhotoUnreadable                 final        no such file, empty, not an image, truncated
        ├── PhotoAnimated                   final        several frames (GIF, WebP, APNG, multi-page TIFF)
        ├── PhotoTooLarge                   final        pixels over the decompression-bomb limit
        ├── PhotoCannotFit                  final        no quality or size gets under max_bytes
        └── PhotoSetInvalid                 final        a photo post's image list is refused
            ├── PhotoCountOutOfRange        final        not 1 to 35 images
            └── PhotoCoverIndexOutOfRange   final        photo_cover_index not 0 <= index < count

`tests/photos/test_errors.py` holds this drawing to the classes (parents and kinds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tiktok_pipeline.errors import PipelineError


class PhotoError(PipelineError):
    """Root of every error raised by `photos`."""

    def __init__(self, message: str, *, path: Path | str | None = None, detail: Any = None) -> None:
        super().__init__(message, detail=detail)
        #: The image file the error is about, when there is one.
        self.path = Path(path) if path is not None else None


class PhotoUnreadable(PhotoError):
    """No such file, an empty one, or one Pillow cannot read: not an image, an unsupported format, truncated."""


class PhotoAnimated(PhotoError):
    """The image has several frames; a TikTok photo post takes still images only."""


class PhotoTooLarge(PhotoError):
    """The image claims more pixels than the limit (a decompression bomb, or a picture no post needs)."""


class PhotoCannotFit(PhotoError):
    """Neither a lower quality nor smaller dimensions bring the encoded image under max_bytes."""


class PhotoSetInvalid(PhotoError):
    """The list of images for one photo post breaks TikTok's rules."""


class PhotoCountOutOfRange(PhotoSetInvalid):
    """A photo post carries 1 to 35 images."""


class PhotoCoverIndexOutOfRange(PhotoSetInvalid):
    """photo_cover_index must name one of the post's images."""
