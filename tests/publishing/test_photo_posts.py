"""Photo posts in the service layer, without I/O: what a request may ask, what is sent for each
creator, and which post a request means."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ledger import PublishMode
from publishing import PhotoPostRequest
from publishing.photo_posts import photo_post_info, photo_post_key, photo_set_sha256
from tiktok import CreatorInfo, PostMode, PrivacyNotAllowed

IMAGES = ["s3://media/a.jpg", "https://cdn.example.com/b.webp", "/data/c.png"]


def request(**changes: object) -> PhotoPostRequest:
    return PhotoPostRequest.model_validate({"images": IMAGES, "accounts": ["brand"], "title": "Day",
                                            "privacy_level": "SELF_ONLY", **changes})


def creator(**changes: object) -> CreatorInfo:
    return CreatorInfo.model_validate({"creator_nickname": "Brand", "creator_username": "brand",
                                       "privacy_level_options": ["MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"], **changes})


@pytest.mark.parametrize(("changes", "says"), [
    ({"images": []}, "at least 1 item"),
    ({"images": [f"/p/{i}.jpg" for i in range(36)]}, "at most 35 items"),
    ({"photo_cover_index": 3}, "photo_cover_index is 3 but there are 3 photo(s)"),
    ({"mode": "hold"}, "photo posts are direct or inbox"),
    ({"privacy_level": None}, "privacy_level is required for direct posts"),
    ({"brand_content_toggle": True}, "branded content cannot be posted as SELF_ONLY"),
    ({"title": "😀" * 46}, "title is 92 UTF-16 code units; TikTok accepts at most 90"),
    ({"description": "x" * 4001}, "description is 4001 UTF-16 code units; TikTok accepts at most 4000"),
    ({"title": "two\nlines"}, "U+000A"),
    ({"images": ["/p/a.jpg", "/p/\x00b.jpg"]}, "U+0000"),
    ({"accounts": ["brand", "brand"]}, "an account is listed twice"),
])
def test_a_request_tiktok_would_refuse_is_refused_naming_why(changes: dict, says: str) -> None:
    with pytest.raises(ValidationError, match=None) as caught:
        request(**changes)
    assert says in str(caught.value), str(caught.value)


def test_what_a_request_may_ask() -> None:
    assert request(title="😀" * 45).title == "😀" * 45  # 90 UTF-16 units: TikTok's limit, not 90 characters
    inbox = request(mode="inbox", privacy_level=None, photo_cover_index=2)
    assert inbox.post_mode is PostMode.MEDIA_UPLOAD and request().post_mode is PostMode.DIRECT_POST
    assert request(description="#a").caption == "Day\n#a" and request(title="", description="#a").caption == "#a"
    assert request(brand_organic_toggle=True).commercial_label == "Promotional content"
    assert request().sources == IMAGES


def test_the_creators_rules_decide_what_is_sent() -> None:
    post_info, notes = photo_post_info(request(auto_add_music=True, description="#x"), creator())
    assert post_info.privacy_level == "SELF_ONLY" and post_info.auto_add_music and post_info.description == "#x"
    assert notes == []
    with pytest.raises(PrivacyNotAllowed, match="choose one of MUTUAL_FOLLOW_FRIENDS, SELF_ONLY"):
        photo_post_info(request(privacy_level="PUBLIC_TO_EVERYONE"), creator())
    forced, notes = photo_post_info(request(), creator(comment_disabled=True, duet_disabled=True))
    assert forced.disable_comment and notes == ["comment is disabled in Brand's settings and stays disabled"]
    # An inbox post has no privacy yet (the creator picks it in TikTok); the comment rule still holds.
    inbox, notes = photo_post_info(request(mode="inbox", privacy_level=None), creator(comment_disabled=True))
    assert inbox.privacy_level is None and inbox.disable_comment and len(notes) == 1


def test_a_post_is_its_photos_in_order_its_account_its_text_and_its_mode() -> None:
    content = photo_set_sha256(["1" * 64, "2" * 64])
    assert photo_set_sha256(["2" * 64, "1" * 64]) != content
    key = photo_post_key(request(), "brand", content)
    assert photo_post_key(request(), "brand", content) == key
    others = {photo_post_key(request(), "other", content), photo_post_key(request(title="Night"), "brand", content),
              photo_post_key(request(mode="inbox"), "brand", content),
              photo_post_key(request(), "brand", photo_set_sha256(["2" * 64, "1" * 64]))}
    assert key not in others and len(others) == 4
    assert photo_post_key(request(idempotency_key="campaign-7"), "brand", content) == "campaign-7:brand"
    assert request().mode is PublishMode.direct
