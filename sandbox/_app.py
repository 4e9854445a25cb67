"""The FastAPI app: TikTok's API, OAuth, authorize page and upload host on one port, plus /_sandbox/*.

Handlers stay thin: parse, ask `SandboxState`, render. The only slow work (writing chunk bodies,
pulling URLs, ffprobe) happens here, outside the state lock, with ffprobe in the thread pool.
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, TypeVar

import httpx
from fastapi import Body, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from sandbox._config import SandboxConfig, https_or_loopback
from sandbox._endpoints import path_of
from sandbox._errors import ApiRefusal, OAuthRefusal
from sandbox._faults import ConnectionRegistry, FaultBook, FaultInjectionMiddleware, FaultRule
from sandbox._media import MediaCheck, check_photo_file, check_video_file
from sandbox._oauth import avatar_svg
from sandbox._posts import (
    MAX_VIDEO_SIZE,
    InboxInitRequest,
    PhotoInitRequest,
    PrivacyLevel,
    PublishIdRequest,
    VideoInitRequest,
)
from sandbox._state import MediaJob, SandboxState
from sandbox._webhooks import REASON_USER_DISCONNECTED, WebhookSender

PUBLISH = ("video.publish",)
UPLOAD = ("video.upload",)
PUBLISH_OR_UPLOAD = ("video.publish", "video.upload")
PULL_TIMEOUT = httpx.Timeout(30.0)

RequestModel = TypeVar("RequestModel", bound=BaseModel)


def envelope(data: dict[str, Any], code: str = "ok", message: str = "") -> dict[str, Any]:
    return {"data": data, "error": {"code": code, "message": message, "log_id": secrets.token_hex(16)}}


def parse(model: type[RequestModel], raw: bytes) -> RequestModel:
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise ApiRefusal(400, "invalid_param", problems) from exc


class _PullFailed(Exception):
    pass


async def _download(url: str, target: Path) -> int:
    """Fetch `url` to `target` (no redirects, like TikTok); the byte count."""
    received = 0
    try:
        async with httpx.AsyncClient(follow_redirects=False, timeout=PULL_TIMEOUT) as client:
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise _PullFailed(f"GET {url} answered HTTP {response.status_code}")
                with target.open("wb") as file:
                    async for piece in response.aiter_bytes():
                        received += len(piece)
                        if received > MAX_VIDEO_SIZE:
                            raise _PullFailed(f"{url} is larger than {MAX_VIDEO_SIZE} bytes")
                        file.write(piece)
    except httpx.HTTPError as exc:
        raise _PullFailed(f"GET {url} failed: {exc!r}") from exc
    return received


async def _run_media_job(job: MediaJob) -> tuple[MediaCheck, int | None]:
    """The check outcome and, for pulls, the bytes downloaded."""
    if job.kind == "check_upload":
        return await run_in_threadpool(check_video_file, job.path, job.max_duration_sec), None
    job.path.mkdir(parents=True, exist_ok=True)
    pulled = 0
    check = MediaCheck()
    for index, url in enumerate(job.urls):
        target = job.path / str(index)
        try:
            pulled += await _download(url, target)
        except _PullFailed as exc:
            reason = "video_pull_failed" if job.kind == "pull_video" else "photo_pull_failed"
            return MediaCheck(fail_reason=reason, detail=str(exc)), pulled
        if job.kind == "pull_video":
            check = await run_in_threadpool(check_video_file, target, job.max_duration_sec)
        else:
            check = await run_in_threadpool(check_photo_file, target)
        if check.fail_reason:
            return check, pulled
    return check, pulled


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Run with this config from now on; None restores the startup config.
    config: SandboxConfig | None = None


class ClockRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    advance_seconds: float = Field(ge=0)


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: open_id or username; None = the first configured creator.
    user: str | None = None
    #: None = every scope the app is approved for.
    scopes: list[str] | None = None


class InboxPublishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    privacy_level: PrivacyLevel = "PUBLIC_TO_EVERYONE"


class WebhookUrlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: The app's callback URL: https, or http on loopback (tests).
    url: str

    @field_validator("url")
    @classmethod
    def _https_or_loopback(cls, value: str) -> str:
        if not https_or_loopback(value):
            raise ValueError(f"callback URL {value!r} must be https (http only on loopback)")
        return value


class DeauthorizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: authorization.removed reason: 0 unknown, 1 user disconnected in the app (default), 2 account
    #: deleted, 3 age changed, 4 account banned, 5 developer revoked (what /v2/oauth/revoke/ sends).
    reason: int = Field(REASON_USER_DISCONNECTED, ge=0, le=5)


def create_app(config: SandboxConfig) -> FastAPI:
    state = SandboxState(config)
    faults = FaultBook()
    connections = ConnectionRegistry()
    settle_locks: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await webhooks.start()
        try:
            yield
        finally:
            await webhooks.stop()
            state.close()

    app = FastAPI(
        title="TikTok sandbox", docs_url="/_sandbox/docs", openapi_url="/_sandbox/openapi.json", lifespan=lifespan
    )
    app.state.sandbox = state
    app.state.faults = faults
    app.state.connections = connections
    app.add_middleware(FaultInjectionMiddleware, faults=faults, connections=connections)

    @app.exception_handler(ApiRefusal)
    async def _api_refusal(_: Request, exc: ApiRefusal) -> JSONResponse:
        return JSONResponse(envelope({}, exc.code, exc.message), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(OAuthRefusal)
    async def _oauth_refusal(_: Request, exc: OAuthRefusal) -> JSONResponse:
        body = {"error": exc.error, "error_description": exc.description, "log_id": secrets.token_hex(16)}
        return JSONResponse(body, status_code=exc.status_code)

    async def settle(publish_id: str) -> None:
        """Run the post's pending media work once, so its status can be evaluated."""
        if state.media_job(publish_id) is None:
            return
        async with settle_locks.setdefault(publish_id, asyncio.Lock()):
            job = state.media_job(publish_id)
            if job is not None:
                check, pulled = await _run_media_job(job)
                state.record_check(publish_id, check, pulled)

    webhooks = WebhookSender(state, faults, settle)
    app.state.webhooks = webhooks

    # --- OAuth -------------------------------------------------------------------------------------
    @app.get(path_of("authorize"))
    async def authorize(request: Request) -> RedirectResponse:
        return RedirectResponse(state.authorize(dict(request.query_params)), status_code=302)

    @app.post(path_of("oauth_token"))
    async def oauth_token(request: Request) -> JSONResponse:
        form = await request.form()
        return JSONResponse(state.token({k: str(v) for k, v in form.items()}))

    @app.post(path_of("oauth_revoke"))
    async def oauth_revoke(request: Request) -> JSONResponse:
        form = await request.form()
        notice = state.revoke({k: str(v) for k, v in form.items()})
        if notice is not None:
            webhooks.emit([notice])
        return JSONResponse({})

    # --- API ---------------------------------------------------------------------------------------
    @app.get(path_of("user_info"))
    async def user_info(request: Request, fields: str = "") -> dict[str, Any]:
        token = state.authenticate(request.headers.get("authorization"), "user_info", ("user.info.basic",))
        names = [f.strip() for f in fields.split(",") if f.strip()]
        if not names:
            raise ApiRefusal(400, "invalid_param", "fields is required")
        return envelope(state.user_info(token, names, str(request.base_url)))

    @app.post(path_of("creator_info"))
    async def creator_info(request: Request) -> dict[str, Any]:
        token = state.authenticate(request.headers.get("authorization"), "creator_info", PUBLISH)
        data, refusal = state.creator_info(token, str(request.base_url))
        if refusal is not None:  # TikTok answers "cannot post now" with HTTP 200 and the code
            return envelope(data, refusal.code, refusal.message)
        return envelope(data)

    @app.post(path_of("video_init"))
    async def video_init(request: Request) -> dict[str, Any]:
        token = state.authenticate(request.headers.get("authorization"), "video_init", PUBLISH)
        body = parse(VideoInitRequest, await request.body())
        return envelope(state.init_video(token, body, str(request.base_url)))

    @app.post(path_of("inbox_init"))
    async def inbox_init(request: Request) -> dict[str, Any]:
        token = state.authenticate(request.headers.get("authorization"), "inbox_init", UPLOAD)
        body = parse(InboxInitRequest, await request.body())
        return envelope(state.init_inbox(token, body, str(request.base_url)))

    @app.post(path_of("content_init"))
    async def content_init(request: Request) -> dict[str, Any]:
        token = state.authenticate(request.headers.get("authorization"), "content_init", PUBLISH_OR_UPLOAD)
        body = parse(PhotoInitRequest, await request.body())
        needed = "video.publish" if body.post_mode == "DIRECT_POST" else "video.upload"
        if needed not in token.scopes:
            raise ApiRefusal(401, "scope_not_authorized", f"{body.post_mode} needs the scope {needed}.")
        return envelope(state.init_photos(token, body))

    @app.post(path_of("status_fetch"))
    async def status_fetch(request: Request) -> dict[str, Any]:
        token = state.authenticate(request.headers.get("authorization"), "status_fetch", PUBLISH_OR_UPLOAD)
        body = parse(PublishIdRequest, await request.body())
        state.check_owner(token, body.publish_id)
        await settle(body.publish_id)
        return envelope(state.status(token, body.publish_id))

    @app.post(path_of("cancel"))
    async def cancel(request: Request) -> dict[str, Any]:
        token = state.authenticate(request.headers.get("authorization"), "cancel", PUBLISH_OR_UPLOAD)
        body = parse(PublishIdRequest, await request.body())
        state.cancel(token, body.publish_id)
        return envelope({})

    # --- upload host -------------------------------------------------------------------------------
    @app.put(path_of("upload"))
    async def upload_chunk(upload_id: str, request: Request, upload_token: str = "") -> Response:
        headers = request.headers
        path, first, last = state.begin_chunk(
            upload_id,
            upload_token,
            headers.get("content-range"),
            headers.get("content-length"),
            headers.get("content-type"),
        )
        expected = last - first + 1
        if state.holds(upload_id, upload_token, first):
            # resent_chunks="accept": the bytes must be the ones it holds; nothing is written.
            body = b"".join([piece async for piece in request.stream()])
            with path.open("rb") as file:
                file.seek(first)
                if len(body) != expected or file.read(expected) != body:
                    raise ApiRefusal(400, "invalid_param", f"the re-sent chunk at byte {first} differs from the one received")
            answer = state.resent_chunk(upload_id, upload_token)
            return Response(status_code=answer.status_code, headers={"Content-Range": answer.content_range})
        written = 0
        path.touch(exist_ok=True)
        try:
            with path.open("r+b") as file:
                file.seek(first)
                async for piece in request.stream():
                    written += len(piece)
                    if written > expected:
                        break
                    file.write(piece)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening; the chunk is not committed
        if written != expected:
            raise ApiRefusal(400, "invalid_param", f"body has {written} bytes, Content-Range announced {expected}")
        answer = state.commit_chunk(upload_id, upload_token, first, last)
        return Response(status_code=answer.status_code, headers={"Content-Range": answer.content_range})

    # --- inspection and control (not part of TikTok) ------------------------------------------------
    @app.get("/_sandbox/posts")
    async def list_posts() -> list[dict[str, Any]]:
        for publish_id in list(state.posts):
            await settle(publish_id)
        return state.describe_posts()

    @app.get("/_sandbox/state")
    async def describe_state() -> dict[str, Any]:
        return {**state.describe(), "faults": faults.describe()}

    @app.get("/_sandbox/secrets")
    async def issued_secrets() -> dict[str, list[str]]:
        return state.issued_secrets()

    @app.post("/_sandbox/reset")
    async def reset(request: ResetRequest | None = Body(None)) -> dict[str, Any]:
        faults.clear()
        settle_locks.clear()
        webhooks.reset()
        new_config = state.reset(request.config if request else None)
        return {"config": new_config.model_dump()}

    @app.get("/_sandbox/avatars/{username}.svg")
    async def avatar(username: str) -> Response:
        return Response(avatar_svg(username), media_type="image/svg+xml")

    @app.get("/_sandbox/clock")
    async def read_clock() -> dict[str, float]:
        return {"now": state.now(), "offset": state.clock_offset}

    @app.post("/_sandbox/clock")
    async def advance_clock(request: ClockRequest) -> dict[str, float]:
        now = state.advance_clock(request.advance_seconds)
        return {"now": now, "offset": state.clock_offset}

    @app.post("/_sandbox/faults", status_code=201)
    async def add_fault(rule: FaultRule) -> dict[str, str]:
        return {"id": faults.add(rule)}

    @app.get("/_sandbox/faults")
    async def list_faults() -> list[dict[str, Any]]:
        return faults.describe()

    @app.delete("/_sandbox/faults")
    async def clear_faults() -> dict[str, Any]:
        faults.clear()
        return {"faults": []}

    @app.post("/_sandbox/tokens")
    async def issue_token(request: TokenRequest) -> dict[str, object]:
        return state.issue_test_token(request.user, request.scopes)

    @app.post("/_sandbox/inbox/{publish_id}/publish")
    async def publish_from_inbox(
        publish_id: str, request: InboxPublishRequest | None = Body(None)
    ) -> dict[str, object]:
        await settle(publish_id)
        privacy = request.privacy_level if request else "PUBLIC_TO_EVERYONE"
        return state.publish_from_inbox(publish_id, privacy)

    @app.post("/_sandbox/posts/{publish_id}/take_down")
    async def take_down(publish_id: str) -> dict[str, object]:
        return state.take_down(publish_id)

    @app.post("/_sandbox/users/{user}/deauthorize")
    async def deauthorize(user: str, request: DeauthorizeRequest | None = Body(None)) -> dict[str, object]:
        notice = state.deauthorize(user, request.reason if request else REASON_USER_DISCONNECTED)
        if notice is not None:
            webhooks.emit([notice])
        return {"revoked": notice is not None}

    # --- webhooks (the app's callback URL, and every event sent to it) -------------------------------
    @app.get("/_sandbox/webhook")
    async def read_webhook() -> dict[str, str | None]:
        return {"url": state.config.webhook_url}

    @app.put("/_sandbox/webhook")
    async def set_webhook(request: WebhookUrlRequest) -> dict[str, str | None]:
        return {"url": state.set_webhook_url(request.url).webhook_url}

    @app.delete("/_sandbox/webhook")
    async def remove_webhook() -> dict[str, str | None]:
        return {"url": state.set_webhook_url(None).webhook_url}

    @app.get("/_sandbox/webhooks")
    async def list_webhooks() -> list[dict[str, Any]]:
        return webhooks.describe()

    return app
