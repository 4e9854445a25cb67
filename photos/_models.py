"""What `prepare_photo` made (`PreparedPhoto`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PreparedPhoto(BaseModel):
    """One image ready for a TikTok photo post: upright, within the limits, no EXIF."""

    model_config = ConfigDict(frozen=True)

    path: Path = Field(description="The written file, inside dest_dir; its name derives from the source and the limits")
    format: Literal["JPEG", "WEBP"]
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    size_bytes: int = Field(gt=0, description="Size of the written file")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Of the written file")
    source_format: str = Field(description="What Pillow read the source as: JPEG, MPO, PNG, WEBP, GIF, TIFF, ...")
    source_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    quality: int = Field(ge=1, le=100, description="The encoder quality that fitted under max_bytes")
    orientation_applied: bool = Field(description="The source had an EXIF orientation other than 1, now in the pixels")
    resized: bool = Field(description="Smaller than the upright source (over max_long_side, or shrunk to fit max_bytes)")
