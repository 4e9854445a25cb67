"""FILE_UPLOAD: chunk plans at init, the sequential Content-Range contract, and processing to a final status."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from sandbox import SandboxHandle
from sandbox._media import check_photo
from tests.sandbox.helpers import (
    INBOX_INIT,
    MIB,
    STATUS,
    VIDEO_INIT,
    call,
    code_of,
    plan,
    post_video,
    put_chunk,
    status,
    upload,
    video_init_body,
)

TokenFactory = Callable[..., str]


def init_upload(sandbox: SandboxHandle, token: str, size: int, chunk_size: int = 5 * MIB) -> str:
    body = {"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": plan(size, chunk_size)}
    answer = call(sandbox.base_url, VIDEO_INIT, token, body)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["data"]["upload_url"])


@pytest.mark.parametrize(
    ("size", "chunk_size", "count"),
    [
        (1000, 1000, 1),
        (5 * MIB - 1, 5 * MIB - 1, 1),
        (5 * MIB, 5 * MIB, 1),
        (50_000_123, 10_000_000, 5),  # TikTok's own example: the last chunk carries 10,000,123 bytes
        (64_000_000 * 2 + 5, 64_000_000, 2),
        (4_000_000_000, 64_000_000, 62),  # 4 GB, the largest file; the last chunk holds 96,000,000 bytes
    ],
)
def test_valid_chunk_plans_are_accepted(
    sandbox: SandboxHandle, sandbox_token: TokenFactory, size: int, chunk_size: int, count: int
) -> None:
    body = {"post_info": {"privacy_level": "SELF_ONLY"},
            "source_info": {"source": "FILE_UPLOAD", "video_size": size, "chunk_size": chunk_size,
                            "total_chunk_count": count}}
    answer = call(sandbox.base_url, VIDEO_INIT, sandbox_token(), body)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["publish_id"] and len(data["publish_id"]) <= 64
    assert data["upload_url"].startswith(f"{sandbox.base_url}/upload/")


@pytest.mark.parametrize(
    ("size", "chunk_size", "count"),
    [
        (1000, 500, 2),  # under 5 MiB must be one chunk
        (1000, 1000, 2),
        (20 * MIB, 5 * MIB - 1, 4),  # chunk below 5 MiB
        (200_000_000, 64_000_001, 3),  # chunk above 64,000,000
        (50_000_123, 10_000_000, 6),  # ceil instead of floor
        (6 * MIB, 10 * MIB, 1),  # chunk larger than the file
        (5 * MIB * 1001, 5 * MIB, 1001),  # more than 1000 chunks (and over 4 GB: within 4 GB it cannot happen)
        (4_000_000_001, 64_000_000, 62),  # over 4 GB
        (4 * 1024**3, 64_000_000, 67),  # 4 GiB is over 4 GB: the stricter reading wins
        (0, 0, 1),
    ],
)
def test_invalid_chunk_plans_are_invalid_param(
    sandbox: SandboxHandle, sandbox_token: TokenFactory, size: int, chunk_size: int, count: int
) -> None:
    body = {"source_info": {"source": "FILE_UPLOAD", "video_size": size, "chunk_size": chunk_size,
                            "total_chunk_count": count}}
    answer = call(sandbox.base_url, INBOX_INIT, sandbox_token(), body)
    assert answer.status_code == 400 and code_of(answer) == "invalid_param"
    assert sandbox.posts() == []


@pytest.mark.parametrize(
    "body",
    [
        {"post_info": {"title": "x" * 2201, "privacy_level": "SELF_ONLY"}, "source_info": plan(1000)},
        # 1100 emoji outside the BMP are 2200 UTF-16 code units; one more character is too many.
        {"post_info": {"title": "\U0001F600" * 1100 + "!", "privacy_level": "SELF_ONLY"}, "source_info": plan(1000)},
        {"post_info": {"title": "ok", "privacy_level": "PUBLIC"}, "source_info": plan(1000)},
        {"post_info": {"title": "ok"}, "source_info": plan(1000)},
        {"post_info": {"privacy_level": "SELF_ONLY", "disable_duet": "true"}, "source_info": plan(1000)},
        {"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": {"source": "DROPBOX"}},
        {"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": {"source": "FILE_UPLOAD", "video_size": 10}},
        {"post_info": {"privacy_level": "SELF_ONLY"}},
        "not an object",
    ],
)
def test_bad_init_bodies_are_invalid_param(sandbox: SandboxHandle, sandbox_token: TokenFactory, body: object) -> None:
    answer = call(sandbox.base_url, VIDEO_INIT, sandbox_token(), body)
    assert answer.status_code == 400 and code_of(answer) == "invalid_param", answer.text


def test_title_of_2200_utf16_units_is_accepted(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    body = {"post_info": {"title": "\U0001F600" * 1100, "privacy_level": "SELF_ONLY"}, "source_info": plan(1000)}
    assert call(sandbox.base_url, VIDEO_INIT, sandbox_token(), body).status_code == 200


def test_sequential_upload_206_then_201(sandbox: SandboxHandle, sandbox_token: TokenFactory, media: dict[str, Path]) -> None:
    data = media["big"].read_bytes()
    assert len(data) >= 15 * MIB  # three chunks
    token = sandbox_token()
    answer = call(sandbox.base_url, VIDEO_INIT, token, video_init_body(len(data)))
    upload_url = answer.json()["data"]["upload_url"]
    responses = upload(upload_url, data)
    assert [r.status_code for r in responses] == [206, 206, 201]
    assert [r.headers["Content-Range"] for r in responses] == [
        f"bytes 0-{5 * MIB - 1}/{len(data)}",
        f"bytes 0-{10 * MIB - 1}/{len(data)}",
        f"bytes 0-{len(data) - 1}/{len(data)}",
    ]
    assert status(sandbox.base_url, token, answer.json()["data"]["publish_id"])["status"] == "PUBLISH_COMPLETE"


def test_out_of_order_chunks_get_416_with_progress(
    sandbox: SandboxHandle, sandbox_token: TokenFactory, media: dict[str, Path]
) -> None:
    data = media["noise"].read_bytes()  # 11 MiB + 123: two chunks, the last 6 MiB + 123
    total = len(data)
    upload_url = init_upload(sandbox, sandbox_token(), total)
    early = put_chunk(upload_url, data, 5 * MIB, total - 1)
    assert early.status_code == 416 and early.headers["Content-Range"] == f"bytes */{total}"
    assert put_chunk(upload_url, data, 0, 5 * MIB - 1).status_code == 206
    resent = put_chunk(upload_url, data, 0, 5 * MIB - 1)
    assert resent.status_code == 416 and resent.headers["Content-Range"] == f"bytes 0-{5 * MIB - 1}/{total}"
    assert put_chunk(upload_url, data, 5 * MIB, total - 1).status_code == 201
    after = put_chunk(upload_url, data, 5 * MIB, total - 1)
    assert after.status_code == 416 and after.headers["Content-Range"] == f"bytes 0-{total - 1}/{total}"


def test_bad_chunk_requests_are_400(sandbox: SandboxHandle, sandbox_token: TokenFactory, media: dict[str, Path]) -> None:
    data = media["noise"].read_bytes()
    total = len(data)
    upload_url = init_upload(sandbox, sandbox_token(), total)
    not_on_boundary = put_chunk(upload_url, data, 0, 4 * MIB - 1)
    wrong_type = put_chunk(upload_url, data, 0, 5 * MIB - 1, content_type="application/octet-stream")
    wrong_total = httpx.put(upload_url, content=data[: 5 * MIB],
                            headers={"Content-Type": "video/mp4", "Content-Range": f"bytes 0-{5 * MIB - 1}/{total + 1}"})
    short_body = httpx.put(upload_url, content=data[:100],
                           headers={"Content-Type": "video/mp4", "Content-Range": f"bytes 0-{5 * MIB - 1}/{total}"})
    no_range = httpx.put(upload_url, content=data[: 5 * MIB], headers={"Content-Type": "video/mp4"})
    for answer in (not_on_boundary, wrong_type, wrong_total, short_body, no_range):
        assert answer.status_code == 400, answer.text
    # None of them moved the upload forward.
    assert put_chunk(upload_url, data, 0, 5 * MIB - 1).status_code == 206


def test_unknown_upload_or_token_is_404(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    data = b"\0" * 1000
    upload_url = init_upload(sandbox, sandbox_token(), len(data))
    assert put_chunk(f"{sandbox.base_url}/upload/doesnotexist?upload_token=x", data, 0, 999).status_code == 404
    assert put_chunk(upload_url.replace("upload_token=", "upload_token=x"), data, 0, 999).status_code == 404


def test_expired_upload_url_is_403(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    data = b"\0" * 1000
    upload_url = init_upload(sandbox, sandbox_token(), len(data))
    sandbox.advance_clock(3600)
    assert put_chunk(upload_url, data, 0, 999).status_code == 403


def test_publish_complete_then_public_post_id_after_moderation(
    sandbox: SandboxHandle, sandbox_token: TokenFactory, media: dict[str, Path]
) -> None:
    data = media["good"].read_bytes()
    token = sandbox_token()
    public_id = post_video(sandbox.base_url, token, data, "PUBLIC_TO_EVERYONE")
    private_id = post_video(sandbox.base_url, token, data, "SELF_ONLY")
    first = status(sandbox.base_url, token, public_id)
    assert first["status"] == "PUBLISH_COMPLETE" and first["publicaly_available_post_id"] == []
    assert first["uploaded_bytes"] == len(data)
    sandbox.advance_clock(60)
    moderated = status(sandbox.base_url, token, public_id)["publicaly_available_post_id"]
    assert len(moderated) == 1 and isinstance(moderated[0], int)
    assert status(sandbox.base_url, token, private_id) == {
        "status": "PUBLISH_COMPLETE", "publicaly_available_post_id": [], "uploaded_bytes": len(data)
    }


def test_processing_delay_keeps_processing_upload(
    sandbox: SandboxHandle, sandbox_token: TokenFactory, media: dict[str, Path]
) -> None:
    sandbox.reset(sandbox.config.model_copy(update=dict(processing_delay=30)))
    data = media["good"].read_bytes()
    token = sandbox_token()
    answer = call(sandbox.base_url, VIDEO_INIT, token, video_init_body(len(data)))
    publish_id = answer.json()["data"]["publish_id"]
    assert status(sandbox.base_url, token, publish_id) == {
        "status": "PROCESSING_UPLOAD", "publicaly_available_post_id": [], "uploaded_bytes": 0
    }
    upload(answer.json()["data"]["upload_url"], data)
    assert status(sandbox.base_url, token, publish_id)["status"] == "PROCESSING_UPLOAD"
    sandbox.advance_clock(30)
    assert status(sandbox.base_url, token, publish_id)["status"] == "PUBLISH_COMPLETE"


def test_inbox_upload_waits_for_the_user(sandbox: SandboxHandle, sandbox_token: TokenFactory, media: dict[str, Path]) -> None:
    token = sandbox_token()
    publish_id = post_video(sandbox.base_url, token, media["good"].read_bytes(), inbox=True)
    assert status(sandbox.base_url, token, publish_id)["status"] == "SEND_TO_USER_INBOX"
    sandbox.publish_from_inbox(publish_id, "PUBLIC_TO_EVERYONE")
    assert status(sandbox.base_url, token, publish_id)["status"] == "PUBLISH_COMPLETE"
    sandbox.advance_clock(60)
    assert len(status(sandbox.base_url, token, publish_id)["publicaly_available_post_id"]) == 1
    again = httpx.post(f"{sandbox.base_url}/_sandbox/inbox/{publish_id}/publish")
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("name", "fail_reason"),
    [
        ("fps15", "frame_rate_check_failed"),
        ("tiny", "picture_size_check_failed"),
        ("noise", "file_format_check_failed"),
        ("mkv_h264", "file_format_check_failed"),
    ],
)
def test_media_rules_fail_the_post(
    sandbox: SandboxHandle, sandbox_token: TokenFactory, media: dict[str, Path], name: str, fail_reason: str
) -> None:
    token = sandbox_token()
    publish_id = post_video(sandbox.base_url, token, media[name].read_bytes())
    answer = status(sandbox.base_url, token, publish_id)
    assert answer["status"] == "FAILED" and answer["fail_reason"] == fail_reason


def test_webm_vp9_is_accepted(sandbox: SandboxHandle, sandbox_token: TokenFactory, media: dict[str, Path]) -> None:
    data = media["webm_vp9"].read_bytes()
    token = sandbox_token()
    answer = call(sandbox.base_url, VIDEO_INIT, token, video_init_body(len(data)))
    upload_url = answer.json()["data"]["upload_url"]
    assert put_chunk(upload_url, data, 0, len(data) - 1, content_type="video/webm").status_code == 201
    assert status(sandbox.base_url, token, answer.json()["data"]["publish_id"])["status"] == "PUBLISH_COMPLETE"


def test_duration_over_the_creator_maximum(sandbox: SandboxHandle, sandbox_token: TokenFactory, media: dict[str, Path]) -> None:
    config = sandbox.config.model_copy(deep=True)
    config.creators[0].max_video_post_duration_sec = 1
    sandbox.reset(config)
    token = sandbox_token()
    clip = media["webm_vp9"].read_bytes()  # 0.5 s: within the limit
    long_clip = media["big"].read_bytes()  # 1.5 s: over it
    assert status(sandbox.base_url, token, post_video(sandbox.base_url, token, clip))["status"] == "PUBLISH_COMPLETE"
    failed = status(sandbox.base_url, token, post_video(sandbox.base_url, token, long_clip))
    assert failed["status"] == "FAILED" and failed["fail_reason"] == "duration_check_failed"


def test_status_of_foreign_or_unknown_publish_id(sandbox: SandboxHandle, sandbox_token: TokenFactory) -> None:
    owner = sandbox_token("studio_main")
    publish_id = call(sandbox.base_url, VIDEO_INIT, owner, video_init_body(1000)).json()["data"]["publish_id"]
    foreign = call(sandbox.base_url, STATUS, sandbox_token("private_creator"), {"publish_id": publish_id})
    assert foreign.status_code == 400 and code_of(foreign) == "token_not_authorized_for_specified_publish_id"
    unknown = call(sandbox.base_url, STATUS, owner, {"publish_id": "v_pub_file~v2-1.1"})
    assert unknown.status_code == 400 and code_of(unknown) == "invalid_publish_id"


def test_posts_inspection_lists_every_post(sandbox: SandboxHandle, sandbox_token: TokenFactory, media: dict[str, Path]) -> None:
    data = media["good"].read_bytes()
    token = sandbox_token()
    publish_id = post_video(sandbox.base_url, token, data, "PUBLIC_TO_EVERYONE")
    posts = sandbox.posts()
    assert len(posts) == 1
    post = posts[0]
    assert post["publish_id"] == publish_id and post["username"] == "studio_main"
    assert post["post_info"]["title"] == "sandbox test #fyp" and post["privacy_level"] == "PUBLIC_TO_EVERYONE"
    assert post["video_size"] == len(data) and post["received_bytes"] == len(data)
    assert post["status"] == "PUBLISH_COMPLETE" and post["check"]["codec"] == "h264"
    assert post["created_at"] <= post["transferred_at"]
    state = httpx.get(f"{sandbox.base_url}/_sandbox/state").json()
    assert state["posts"] == 1 and state["active_access_tokens"] == 1


@pytest.mark.parametrize(("size_bytes", "too_large"), [(20_000_000, False), (20_000_001, True), (20 * MIB, True)])
def test_photos_over_20_mb_fail_the_format_check(size_bytes: int, too_large: bool) -> None:
    # "≤20 MB each" without saying MB or MiB: 20,000,000 bytes is the most the sandbox lets through.
    jpeg = {"streams": [{"codec_name": "mjpeg", "width": 1080, "height": 1080}]}
    check = check_photo(jpeg, size_bytes)
    assert (check.fail_reason == "file_format_check_failed") is too_large
    assert too_large or check.fail_reason is None
