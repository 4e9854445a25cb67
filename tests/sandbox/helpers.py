"""Raw-HTTP helpers for the sandbox tests (the real client lives in tiktok/ and is not used here)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from sandbox._oauth import hex_challenge

MIB = 1024 * 1024
CREATOR_INFO = "/v2/post/publish/creator_info/query/"
VIDEO_INIT = "/v2/post/publish/video/init/"
INBOX_INIT = "/v2/post/publish/inbox/video/init/"
CONTENT_INIT = "/v2/post/publish/content/init/"
STATUS = "/v2/post/publish/status/fetch/"
CANCEL = "/v2/post/publish/cancel/"
USER_INFO = "/v2/user/info/"
TOKEN = "/v2/oauth/token/"
REVOKE = "/v2/oauth/revoke/"
AUTHORIZE = "/v2/auth/authorize/"


def call(base_url: str, path: str, token: str, body: Any = None) -> httpx.Response:
    return httpx.post(f"{base_url}{path}", headers={"Authorization": f"Bearer {token}"}, json=body, timeout=30)


def code_of(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def plan(size: int, chunk_size: int = 5 * MIB) -> dict[str, Any]:
    """FILE_UPLOAD source_info per the shared contract (whole file under 5 MiB, floor count above)."""
    if size < 5 * MIB:
        chunk_size = size
    return {"source": "FILE_UPLOAD", "video_size": size, "chunk_size": chunk_size,
            "total_chunk_count": max(1, size // chunk_size)}


def video_init_body(size: int, privacy: str = "PUBLIC_TO_EVERYONE", **post_info: Any) -> dict[str, Any]:
    return {"post_info": {"title": "sandbox test #fyp", "privacy_level": privacy, **post_info},
            "source_info": plan(size)}


def chunk_ranges(size: int, chunk_size: int) -> list[tuple[int, int]]:
    if size < 5 * MIB:
        return [(0, size - 1)]
    count = size // chunk_size
    return [(i * chunk_size, size - 1 if i == count - 1 else (i + 1) * chunk_size - 1) for i in range(count)]


def put_chunk(upload_url: str, data: bytes, first: int, last: int, content_type: str = "video/mp4") -> httpx.Response:
    return httpx.put(
        upload_url,
        content=data[first : last + 1],
        headers={"Content-Type": content_type, "Content-Range": f"bytes {first}-{last}/{len(data)}"},
        timeout=60,
    )


def upload(upload_url: str, data: bytes, chunk_size: int = 5 * MIB) -> list[httpx.Response]:
    return [put_chunk(upload_url, data, first, last) for first, last in chunk_ranges(len(data), chunk_size)]


def post_video(base_url: str, token: str, data: bytes, privacy: str = "PUBLIC_TO_EVERYONE", *, inbox: bool = False) -> str:
    """init + full upload; the publish_id."""
    if inbox:
        answer = call(base_url, INBOX_INIT, token, {"source_info": plan(len(data))})
    else:
        answer = call(base_url, VIDEO_INIT, token, video_init_body(len(data), privacy))
    assert answer.status_code == 200, answer.text
    responses = upload(answer.json()["data"]["upload_url"], data)
    assert responses[-1].status_code == 201, responses[-1].text
    return str(answer.json()["data"]["publish_id"])


def status(base_url: str, token: str, publish_id: str) -> dict[str, Any]:
    answer = call(base_url, STATUS, token, {"publish_id": publish_id})
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["data"])


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)[:64]
    return verifier, hex_challenge(verifier)
