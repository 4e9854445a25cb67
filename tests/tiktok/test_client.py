"""TikTokClient against MockTransport: requests as TikTok documents them, answers mapped to types/errors."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

import tiktok
from tiktok import Endpoint, PhotoPostInfo, PhotoSourceInfo, PostInfo, PostMode, SourceInfo, TikTokClient, plan_chunks

from .conftest import RateLimitRecorder, envelope, ok

MakeClient = Callable[..., TikTokClient]


class Recorder:
    def __init__(self, response: httpx.Response | Callable[[httpx.Request], httpx.Response]) -> None:
        self.response = response
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.response(request) if callable(self.response) else self.response

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    @property
    def last_json(self) -> object:
        return json.loads(self.last.content)


def assert_api_request(request: httpx.Request, method: str, path: str) -> None:
    assert request.method == method
    assert request.url.path == path and request.url.host == "api.tiktok.test"
    assert request.headers["Authorization"] == "Bearer act.token"
    if method == "POST":
        assert request.headers["Content-Type"] == "application/json; charset=UTF-8"


def test_user_info(make_client: MakeClient) -> None:
    server = Recorder(ok({"user": {"open_id": "o-1", "display_name": "Alice", "avatar_url": "https://a"}}))
    user = make_client(server).user_info()
    assert_api_request(server.last, "GET", "/v2/user/info/")
    assert server.last.url.params["fields"] == "open_id,union_id,avatar_url,display_name"
    assert (user.open_id, user.display_name) == ("o-1", "Alice")


def test_creator_info(make_client: MakeClient) -> None:
    data = {
        "creator_avatar_url": "https://a",
        "creator_username": "alice",
        "creator_nickname": "Alice",
        "privacy_level_options": ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"],
        "comment_disabled": False,
        "duet_disabled": True,
        "stitch_disabled": True,
        "max_video_post_duration_sec": 180,
    }
    server = Recorder(ok(data))
    creator = make_client(server).creator_info()
    assert_api_request(server.last, "POST", "/v2/post/publish/creator_info/query/")
    assert server.last.content == b""
    assert creator.creator_nickname == "Alice" and creator.duet_disabled and creator.max_video_post_duration_sec == 180


@pytest.mark.parametrize("code", ["spam_risk_too_many_posts", "spam_risk_user_banned_from_posting", "reached_active_user_cap"])
def test_creator_info_http_200_with_error_code_raises(make_client: MakeClient, code: str) -> None:
    server = Recorder(httpx.Response(200, content=envelope(code=code, message="cannot post", log_id="L1")))
    with pytest.raises(tiktok.CreatorCannotPost) as caught:
        make_client(server).creator_info()
    assert (caught.value.code, caught.value.http_status, caught.value.log_id) == (code, 200, "L1")
    assert caught.value.final


def test_video_init_file_upload(make_client: MakeClient) -> None:
    server = Recorder(ok({"publish_id": "v_pub_1", "upload_url": "https://upload.test/u?sig=abc"}))
    plan = plan_chunks(50_000_123, 10_000_000)
    result = make_client(server).init_video(
        PostInfo(title="Hello 😀", privacy_level="SELF_ONLY"), SourceInfo.file_upload(plan)
    )
    assert_api_request(server.last, "POST", "/v2/post/publish/video/init/")
    assert server.last_json == {
        "post_info": {
            "title": "Hello 😀",
            "privacy_level": "SELF_ONLY",
            "disable_duet": False,
            "disable_stitch": False,
            "disable_comment": False,
            "brand_content_toggle": False,
            "brand_organic_toggle": False,
            "is_aigc": False,
        },
        "source_info": {"source": "FILE_UPLOAD", "video_size": 50_000_123, "chunk_size": 10_000_000, "total_chunk_count": 5},
    }
    assert result == tiktok.InitResult(publish_id="v_pub_1", upload_url="https://upload.test/u?sig=abc")


def test_video_init_pull_from_url(make_client: MakeClient) -> None:
    server = Recorder(ok({"publish_id": "v_pub_2"}))
    result = make_client(server).init_video(
        PostInfo(privacy_level="PUBLIC_TO_EVERYONE"), SourceInfo.pull_from_url("https://cdn.example.com/a.mp4")
    )
    assert server.last_json["source_info"] == {"source": "PULL_FROM_URL", "video_url": "https://cdn.example.com/a.mp4"}  # type: ignore[index]
    assert result.upload_url is None


def test_inbox_video_init(make_client: MakeClient) -> None:
    server = Recorder(ok({"publish_id": "v_inbox_1", "upload_url": "https://upload.test/i"}))
    make_client(server).init_inbox_video(SourceInfo.file_upload(plan_chunks(1000, 5 * 1024 * 1024)))
    assert_api_request(server.last, "POST", "/v2/post/publish/inbox/video/init/")
    assert server.last_json == {
        "source_info": {"source": "FILE_UPLOAD", "video_size": 1000, "chunk_size": 1000, "total_chunk_count": 1}
    }


@pytest.mark.parametrize("mode", [PostMode.DIRECT_POST, PostMode.MEDIA_UPLOAD])
def test_photo_content_init(make_client: MakeClient, mode: PostMode) -> None:
    server = Recorder(ok({"publish_id": "p_1"}))
    images = ["https://img.example.com/1.jpg", "https://img.example.com/2.jpg"]
    make_client(server).init_photo_post(
        mode,
        PhotoPostInfo(title="Trip", description="Day one", privacy_level="SELF_ONLY", auto_add_music=True),
        PhotoSourceInfo(photo_images=images, photo_cover_index=1),
    )
    assert_api_request(server.last, "POST", "/v2/post/publish/content/init/")
    assert server.last_json == {
        "media_type": "PHOTO",
        "post_mode": mode.value,
        "post_info": {
            "title": "Trip",
            "description": "Day one",
            "privacy_level": "SELF_ONLY",
            "disable_comment": False,
            "auto_add_music": True,
            "brand_content_toggle": False,
            "brand_organic_toggle": False,
        },
        "source_info": {"source": "PULL_FROM_URL", "photo_images": images, "photo_cover_index": 1},
    }


def test_direct_photo_post_needs_privacy(make_client: MakeClient) -> None:
    server = Recorder(ok({"publish_id": "p_1"}))
    with pytest.raises(tiktok.InvalidInput, match="privacy_level"):
        make_client(server).init_photo_post(
            PostMode.DIRECT_POST, PhotoPostInfo(title="x"), PhotoSourceInfo(photo_images=["https://i.test/1.jpg"])
        )
    assert server.requests == []


def test_status_fetch_and_cancel(make_client: MakeClient) -> None:
    server = Recorder(ok({"status": "PROCESSING_UPLOAD", "uploaded_bytes": 10}))
    client = make_client(server)
    status = client.fetch_status("v_pub_1")
    assert_api_request(server.last, "POST", "/v2/post/publish/status/fetch/")
    assert server.last_json == {"publish_id": "v_pub_1"}
    assert status.uploaded_bytes == 10 and status.publicaly_available_post_id == []
    server.response = ok()
    client.cancel("v_pub_1")
    assert_api_request(server.last, "POST", "/v2/post/publish/cancel/")
    assert server.last_json == {"publish_id": "v_pub_1"}


def test_rate_limit_hook_sees_every_call_before_it_is_sent(make_client: MakeClient) -> None:
    hook = RateLimitRecorder()
    sent_after_hook: list[bool] = []

    def respond(request: httpx.Request) -> httpx.Response:
        sent_after_hook.append(len(hook.calls) == len(sent_after_hook) + 1)
        path = request.url.path
        if path.endswith("/user/info/"):
            return ok({"user": {}})
        if path.endswith("/status/fetch/"):
            return ok({"status": "PROCESSING_UPLOAD"})
        return ok({"publish_id": "x"})

    client = make_client(Recorder(respond), account_key="open-9", rate_limit=hook)
    client.user_info()
    client.creator_info()
    client.init_video(PostInfo(privacy_level="SELF_ONLY"), SourceInfo.pull_from_url("https://c.test/a.mp4"))
    client.init_inbox_video(SourceInfo.pull_from_url("https://c.test/a.mp4"))
    client.init_photo_post(PostMode.MEDIA_UPLOAD, PhotoPostInfo(), PhotoSourceInfo(photo_images=["https://i.test/1.jpg"]))
    client.fetch_status("x")
    client.cancel("x")
    assert hook.calls == [
        ("open-9", e)
        for e in ("user_info", "creator_info", "video_init", "inbox_video_init", "content_init", "status_fetch", "cancel")
    ]
    assert all(sent_after_hook)
    assert {e.value for e in Endpoint} == {name for _, name in hook.calls}


def test_rate_limit_hook_can_refuse(make_client: MakeClient) -> None:
    def refuse(account_key: str, endpoint: str) -> None:
        raise tiktok.RateLimitExceeded(f"{account_key} over budget for {endpoint}", retry_after=12)

    server = Recorder(ok())
    with pytest.raises(tiktok.RateLimitExceeded):
        make_client(server, rate_limit=refuse).creator_info()
    assert server.requests == []


def test_429_raises_with_retry_after_and_is_not_retried(make_client: MakeClient) -> None:
    server = Recorder(httpx.Response(429, content=envelope(code="rate_limit_exceeded"), headers={"Retry-After": "42"}))
    with pytest.raises(tiktok.RateLimitExceeded) as caught:
        make_client(server).fetch_status("x")
    assert caught.value.retry_after == 42.0 and caught.value.retryable
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("response", "cls"),
    [
        (httpx.Response(500, content=envelope(code="internal_error")), tiktok.ServerError),
        (httpx.Response(502, text="<html>Bad gateway</html>"), tiktok.ServerError),
        (httpx.Response(503, json={"error": {"message": "no code"}}), tiktok.ServerError),
        (httpx.Response(401, content=envelope(code="access_token_invalid")), tiktok.AccessTokenInvalid),
        (httpx.Response(401, content=envelope(code="scope_not_authorized")), tiktok.ScopeNotAuthorized),
        (httpx.Response(403, content=envelope(code="privacy_level_option_mismatch")), tiktok.PrivacyLevelOptionMismatch),
        (httpx.Response(400, content=envelope(code="invalid_param")), tiktok.InvalidParams),
        (httpx.Response(400, content=envelope(code="ok")), tiktok.RequestRejected),
        (httpx.Response(200, text="<html>captive portal</html>"), tiktok.UnexpectedResponse),
        (httpx.Response(200, json={"data": {"status": "X"}}), tiktok.UnexpectedResponse),
        (httpx.Response(200, content=envelope({"no_status": 1})), tiktok.UnexpectedResponse),
    ],
)
def test_error_answers(make_client: MakeClient, response: httpx.Response, cls: type) -> None:
    with pytest.raises(cls):
        make_client(Recorder(response)).fetch_status("x")


def raiser(exc_type: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("simulated", request=request)

    return handler


@pytest.mark.parametrize(
    ("exc_type", "maybe_delivered"),
    [
        (httpx.ConnectError, False),
        (httpx.ConnectTimeout, False),
        (httpx.ReadTimeout, True),
        (httpx.RemoteProtocolError, True),
        (httpx.ReadError, True),
    ],
)
def test_transport_failures_are_retryable_transport_errors(
    make_client: MakeClient, exc_type: type[httpx.TransportError], maybe_delivered: bool
) -> None:
    with pytest.raises(tiktok.TransportError) as caught:
        make_client(raiser(exc_type)).fetch_status("x")
    assert caught.value.retryable and caught.value.maybe_delivered is maybe_delivered
    assert isinstance(caught.value.__cause__, exc_type)


def test_lost_init_answer_is_not_retryable(make_client: MakeClient) -> None:
    client = make_client(raiser(httpx.ReadTimeout))
    with pytest.raises(tiktok.InitOutcomeUnknown) as caught:
        client.init_video(PostInfo(privacy_level="SELF_ONLY"), SourceInfo.pull_from_url("https://c.test/a.mp4"))
    assert caught.value.final
    # Nothing was delivered: an init that never left is safe to retry.
    with pytest.raises(tiktok.TransportError):
        make_client(raiser(httpx.ConnectError)).init_inbox_video(SourceInfo.pull_from_url("https://c.test/a.mp4"))


def test_timeouts_come_from_settings(make_client: MakeClient, settings) -> None:  # type: ignore[no-untyped-def]
    server = Recorder(ok({"status": "PROCESSING_UPLOAD"}))
    make_client(server).fetch_status("x")
    timeout = server.last.extensions["timeout"]
    assert timeout["connect"] == settings.http_connect_timeout
    assert timeout["read"] == settings.http_read_timeout


def test_context_manager_closes(settings) -> None:  # type: ignore[no-untyped-def]
    with TikTokClient("t", settings, transport=httpx.MockTransport(Recorder(ok())), rate_limit=RateLimitRecorder()) as client:
        client.cancel("x")
    with pytest.raises(RuntimeError):
        client.cancel("x")
