"""Request models refuse what TikTok would refuse, with typed errors; response models tolerate growth."""

from __future__ import annotations

import pytest

import tiktok
from tiktok import (
    CreatorInfo,
    PhotoPostInfo,
    PhotoSourceInfo,
    PostInfo,
    PrivacyLevel,
    PublishStatus,
    SourceInfo,
    utf16_length,
)


@pytest.mark.parametrize(
    ("text", "units"),
    [("", 0), ("abc", 3), ("é", 1), ("中文", 2), ("😀", 2), ("👍🏽", 4), ("#fyp 🎬", 7)],
)
def test_utf16_length(text: str, units: int) -> None:
    assert utf16_length(text) == units


def test_caption_limit_counts_utf16_units() -> None:
    PostInfo(title="😀" * 1100, privacy_level=PrivacyLevel.SELF_ONLY)  # 2200 units: accepted
    PostInfo(title="a" * 2200, privacy_level=PrivacyLevel.SELF_ONLY)
    # 1101 emoji are only 1101 characters but 2202 code units.
    with pytest.raises(tiktok.CaptionTooLong) as caught:
        PostInfo(title="😀" * 1101, privacy_level=PrivacyLevel.SELF_ONLY)
    assert caught.value.detail == {"field": "title", "utf16_length": 2202, "limit": 2200}
    assert isinstance(caught.value, tiktok.InvalidInput) and caught.value.final


def test_privacy_level_is_required_and_one_of_four() -> None:
    assert {p.value for p in PrivacyLevel} == {
        "PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY",
    }
    with pytest.raises(tiktok.InvalidInput, match="privacy_level"):
        PostInfo(title="x")  # type: ignore[call-arg]
    with pytest.raises(tiktok.InvalidInput, match="privacy_level"):
        PostInfo(title="x", privacy_level="EVERYONE")  # type: ignore[arg-type]


def test_post_info_body_uses_tiktok_names_and_drops_unset_optionals() -> None:
    body = PostInfo(title="hi #tag", privacy_level="PUBLIC_TO_EVERYONE", disable_comment=True).body()
    assert body == {
        "title": "hi #tag",
        "privacy_level": "PUBLIC_TO_EVERYONE",
        "disable_duet": False,
        "disable_stitch": False,
        "disable_comment": True,
        "brand_content_toggle": False,
        "brand_organic_toggle": False,
        "is_aigc": False,
    }
    assert PostInfo(privacy_level="SELF_ONLY", video_cover_timestamp_ms=1500).body()["video_cover_timestamp_ms"] == 1500


def test_unknown_field_and_branded_private_post_are_refused() -> None:
    with pytest.raises(tiktok.InvalidInput, match="titel"):
        PostInfo(titel="x", privacy_level="SELF_ONLY")  # type: ignore[call-arg]
    with pytest.raises(tiktok.InvalidInput, match="SELF_ONLY"):
        PostInfo(privacy_level="SELF_ONLY", brand_content_toggle=True)


def test_source_info_shapes() -> None:
    assert SourceInfo.pull_from_url("https://cdn.example.com/v.mp4").body() == {
        "source": "PULL_FROM_URL",
        "video_url": "https://cdn.example.com/v.mp4",
    }
    with pytest.raises(tiktok.InvalidInput, match="https"):
        SourceInfo.pull_from_url("http://cdn.example.com/v.mp4")
    with pytest.raises(tiktok.InvalidInput):
        SourceInfo(source="FILE_UPLOAD", video_size=10)
    with pytest.raises(tiktok.InvalidInput):
        SourceInfo(source="PULL_FROM_URL", video_url="https://x.test/v.mp4", video_size=1)


def test_photo_limits() -> None:
    PhotoPostInfo(title="t" * 90, description="d" * 4000, privacy_level="SELF_ONLY")
    with pytest.raises(tiktok.CaptionTooLong, match="photo title"):
        PhotoPostInfo(title="😀" * 46)  # 92 units
    with pytest.raises(tiktok.CaptionTooLong, match="photo description"):
        PhotoPostInfo(description="d" * 4001)
    urls = [f"https://img.example.com/{i}.jpg" for i in range(35)]
    assert PhotoSourceInfo(photo_images=urls, photo_cover_index=34).body()["photo_cover_index"] == 34
    with pytest.raises(tiktok.InvalidInput):
        PhotoSourceInfo(photo_images=[*urls, "https://img.example.com/36.jpg"])
    with pytest.raises(tiktok.InvalidInput):
        PhotoSourceInfo(photo_images=[])
    with pytest.raises(tiktok.InvalidInput, match="photo_cover_index"):
        PhotoSourceInfo(photo_images=urls[:2], photo_cover_index=2)


def test_responses_tolerate_new_fields_and_missing_post_ids() -> None:
    status = PublishStatus.model_validate({"status": "PUBLISH_COMPLETE", "brand_new_field": 1})
    assert status.publicaly_available_post_id == [] and status.is_terminal
    assert not PublishStatus(status="PROCESSING_UPLOAD").is_terminal
    creator = CreatorInfo.model_validate(
        {"privacy_level_options": ["SELF_ONLY", "SOMETHING_NEW"], "max_video_post_duration_sec": 600}
    )
    assert PrivacyLevel.SELF_ONLY in creator.privacy_level_options
    assert PrivacyLevel.PUBLIC_TO_EVERYONE not in creator.privacy_level_options
