"""PULL_FROM_URL videos and photo posts: verified prefixes, the download, media checks, cancel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox import SandboxHandle
from tests.sandbox.helpers import CANCEL, CONTENT_INIT, INBOX_INIT, VIDEO_INIT, call, code_of, status, video_init_body

TokenFactory = Callable[..., str]


@pytest.fixture
def pulling(sandbox: SandboxHandle, file_host: str) -> SandboxHandle:
    """The sandbox with the loopback file host verified for the app."""
    sandbox.reset(sandbox.config.model_copy(update={"verified_url_prefixes": [f"{file_host}/"]}))
    return sandbox


def pull_body(url: str, privacy: str = "PUBLIC_TO_EVERYONE") -> dict[str, object]:
    return {"post_info": {"title": "pulled", "privacy_level": privacy},
            "source_info": {"source": "PULL_FROM_URL", "video_url": url}}


def photo_body(urls: list[str], mode: str = "DIRECT_POST", **post_info: object) -> dict[str, object]:
    return {"media_type": "PHOTO", "post_mode": mode,
            "post_info": {"title": "photos", "description": "a carousel", "privacy_level": "PUBLIC_TO_EVERYONE", **post_info},
            "source_info": {"source": "PULL_FROM_URL", "photo_images": urls, "photo_cover_index": 0}}


def test_pull_from_verified_url(pulling: SandboxHandle, sandbox_token: TokenFactory, file_host: str, media: dict[str, Path]) -> None:
    pulling.reset(pulling.config.model_copy(update={"processing_delay": 10}))
    token = sandbox_token()
    answer = call(pulling.base_url, VIDEO_INIT, token, pull_body(f"{file_host}/good.mp4"))
    assert answer.status_code == 200 and "upload_url" not in answer.json()["data"]
    publish_id = answer.json()["data"]["publish_id"]
    first = status(pulling.base_url, token, publish_id)
    assert first["status"] == "PROCESSING_DOWNLOAD" and first["downloaded_bytes"] == media["good"].stat().st_size
    pulling.advance_clock(10)
    assert status(pulling.base_url, token, publish_id)["status"] == "PUBLISH_COMPLETE"


def test_unverified_urls_are_refused(pulling: SandboxHandle, sandbox_token: TokenFactory, file_host: str) -> None:
    token = sandbox_token()
    for url in ("https://cdn.example.com/v.mp4", f"{file_host.replace('127.0.0.1', 'localhost')}/good.mp4"):
        refused = call(pulling.base_url, VIDEO_INIT, token, pull_body(url))
        assert refused.status_code == 403 and code_of(refused) == "url_ownership_unverified"
    inbox = call(pulling.base_url, INBOX_INIT, token, {"source_info": {"source": "PULL_FROM_URL",
                                                                     "video_url": "https://cdn.example.com/v.mp4"}})
    assert code_of(inbox) == "url_ownership_unverified"
    assert pulling.posts() == []


def test_prefix_matches_on_a_path_boundary(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    sandbox.reset(sandbox.config.model_copy(update={"verified_url_prefixes": ["https://media.example.com"]}))
    token = sandbox_token()
    assert call(sandbox.base_url, VIDEO_INIT, token, pull_body("https://media.example.com/a.mp4")).status_code == 200
    spoof = call(sandbox.base_url, VIDEO_INIT, token, pull_body("https://media.example.com.evil.net/a.mp4"))
    assert code_of(spoof) == "url_ownership_unverified"


def test_failed_pull_and_bad_media(pulling: SandboxHandle, sandbox_token: TokenFactory, file_host: str) -> None:
    token = sandbox_token()
    missing = call(pulling.base_url, VIDEO_INIT, token, pull_body(f"{file_host}/missing.mp4")).json()["data"]["publish_id"]
    assert status(pulling.base_url, token, missing) | {"downloaded_bytes": 0} == {
        "status": "FAILED", "fail_reason": "video_pull_failed", "publicaly_available_post_id": [], "downloaded_bytes": 0
    }
    slow = call(pulling.base_url, VIDEO_INIT, token, pull_body(f"{file_host}/fps15.mp4")).json()["data"]["publish_id"]
    assert status(pulling.base_url, token, slow)["fail_reason"] == "frame_rate_check_failed"


def test_cancel_a_pull_but_not_an_upload(pulling: SandboxHandle, sandbox_token: TokenFactory, file_host: str) -> None:
    token = sandbox_token()
    pull_id = call(pulling.base_url, VIDEO_INIT, token, pull_body(f"{file_host}/good.mp4")).json()["data"]["publish_id"]
    assert call(pulling.base_url, CANCEL, token, {"publish_id": pull_id}).status_code == 200
    assert status(pulling.base_url, token, pull_id)["fail_reason"] == "publish_cancelled"
    upload_id = call(pulling.base_url, VIDEO_INIT, token, video_init_body(1000)).json()["data"]["publish_id"]
    refused = call(pulling.base_url, CANCEL, token, {"publish_id": upload_id})
    assert refused.status_code == 400 and code_of(refused) == "publish_not_cancellable"


def test_photo_direct_post_and_inbox(pulling: SandboxHandle, sandbox_token: TokenFactory, file_host: str) -> None:
    token = sandbox_token()
    urls = [f"{file_host}/photo.jpg", f"{file_host}/photo.jpg"]
    direct = call(pulling.base_url, CONTENT_INIT, token, photo_body(urls))
    assert direct.status_code == 200, direct.text
    assert status(pulling.base_url, token, direct.json()["data"]["publish_id"])["status"] == "PUBLISH_COMPLETE"
    draft = call(pulling.base_url, CONTENT_INIT, token, photo_body(urls, "MEDIA_UPLOAD"))
    assert status(pulling.base_url, token, draft.json()["data"]["publish_id"])["status"] == "SEND_TO_USER_INBOX"
    kinds = {(p["media_type"], p["mode"]) for p in pulling.posts()}
    assert kinds == {("PHOTO", "direct"), ("PHOTO", "inbox")}


@pytest.mark.parametrize(
    ("name", "fail_reason"),
    [("photo_huge.jpg", "picture_size_check_failed"), ("photo.png", "file_format_check_failed"),
     ("nothing.jpg", "photo_pull_failed")],
)
def test_photo_rules(pulling: SandboxHandle, sandbox_token: TokenFactory, file_host: str, name: str, fail_reason: str) -> None:
    token = sandbox_token()
    file_name = {"photo_huge.jpg": "huge.jpg"}.get(name, name)
    urls = [f"{file_host}/photo.jpg", f"{file_host}/{file_name}"]
    publish_id = call(pulling.base_url, CONTENT_INIT, token, photo_body(urls)).json()["data"]["publish_id"]
    answer = status(pulling.base_url, token, publish_id)
    assert answer["status"] == "FAILED" and answer["fail_reason"] == fail_reason


def test_photo_requests_are_validated(pulling: SandboxHandle, sandbox_token: TokenFactory, file_host: str) -> None:
    token = sandbox_token()
    photo = f"{file_host}/photo.jpg"
    bad_bodies = [
        photo_body([photo], title="x" * 91),
        photo_body([photo], description="x" * 4001),
        photo_body([photo] * 36),
        photo_body([]),
        photo_body([photo], privacy_level=None),
        {**photo_body([photo]), "media_type": "VIDEO"},
        {**photo_body([photo]), "source_info": {"source": "PULL_FROM_URL", "photo_images": [photo], "photo_cover_index": 1}},
    ]
    for body in bad_bodies:
        pulling.advance_clock(60)  # content/init allows 6 per minute
        answer = call(pulling.base_url, CONTENT_INIT, token, body)
        assert answer.status_code == 400 and code_of(answer) == "invalid_param", body
    unverified = call(pulling.base_url, CONTENT_INIT, token, photo_body(["https://cdn.example.com/p.jpg"]))
    assert code_of(unverified) == "url_ownership_unverified"
    upload_only = sandbox_token(scopes=["video.upload"])
    refused = call(pulling.base_url, CONTENT_INIT, upload_only, photo_body([photo]))
    assert refused.status_code == 401 and code_of(refused) == "scope_not_authorized"
    assert call(pulling.base_url, CONTENT_INIT, upload_only, photo_body([photo], "MEDIA_UPLOAD")).status_code == 200
