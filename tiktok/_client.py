"""Content Posting API client: pure request builders (`ApiCall`) and the client that sends them."""

from __future__ import annotations

import json
import random as random_module
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr, ValidationError

from tiktok._chunks import ChunkPlan
from tiktok._errors import InitOutcomeUnknown, InvalidInput, TransportError, UnexpectedResponse, api_error
from tiktok._http import HttpResource, json_body, new_http_client, send, unexpected, upload_timeout
from tiktok._models import (
    CreatorInfo,
    InitResult,
    PhotoPostInfo,
    PhotoSourceInfo,
    PostInfo,
    PostMode,
    PublishStatus,
    ResponseModel,
    SourceInfo,
    UserInfo,
)
from tiktok._ratelimit import Endpoint, RateLimitHook, default_rate_limiter
from tiktok._status import PollPolicy, StatusCallback, wait_for_publish
from tiktok._upload import ProgressCallback, UploadResult, UploadRetryPolicy, content_type_for, upload_chunks
from tiktok_pipeline.settings import TikTokAppSettings

M = TypeVar("M", bound=ResponseModel)

JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
DEFAULT_USER_FIELDS = ("open_id", "union_id", "avatar_url", "display_name")

# Init requests create a post: when the answer is lost they must not be blindly sent again.
_INIT_ENDPOINTS = frozenset({Endpoint.VIDEO_INIT, Endpoint.INBOX_VIDEO_INIT, Endpoint.CONTENT_INIT})


@dataclass(frozen=True)
class ApiCall:
    """One Content Posting API request, before authentication and sending."""

    endpoint: Endpoint
    method: str
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)


def user_info_call(fields: Sequence[str] = DEFAULT_USER_FIELDS) -> ApiCall:
    return ApiCall(Endpoint.USER_INFO, "GET", "/v2/user/info/", params={"fields": ",".join(fields)})


def creator_info_call() -> ApiCall:
    return ApiCall(Endpoint.CREATOR_INFO, "POST", "/v2/post/publish/creator_info/query/")


def video_init_call(post_info: PostInfo, source_info: SourceInfo) -> ApiCall:
    body = {"post_info": post_info.body(), "source_info": source_info.body()}
    return ApiCall(Endpoint.VIDEO_INIT, "POST", "/v2/post/publish/video/init/", json=body)


def inbox_video_init_call(source_info: SourceInfo) -> ApiCall:
    body = {"source_info": source_info.body()}
    return ApiCall(Endpoint.INBOX_VIDEO_INIT, "POST", "/v2/post/publish/inbox/video/init/", json=body)


def content_init_call(post_mode: PostMode, post_info: PhotoPostInfo, source_info: PhotoSourceInfo) -> ApiCall:
    if post_mode is PostMode.DIRECT_POST and post_info.privacy_level is None:
        raise InvalidInput("a DIRECT_POST photo post needs privacy_level chosen by the user")
    body = {
        "media_type": "PHOTO",
        "post_mode": post_mode.value,
        "post_info": post_info.body(),
        "source_info": source_info.body(),
    }
    return ApiCall(Endpoint.CONTENT_INIT, "POST", "/v2/post/publish/content/init/", json=body)


def status_fetch_call(publish_id: str) -> ApiCall:
    return ApiCall(Endpoint.STATUS_FETCH, "POST", "/v2/post/publish/status/fetch/", json={"publish_id": publish_id})


def cancel_call(publish_id: str) -> ApiCall:
    return ApiCall(Endpoint.CANCEL, "POST", "/v2/post/publish/cancel/", json={"publish_id": publish_id})


def envelope_data(response: httpx.Response) -> dict[str, Any]:
    """`data` of a successful `{data, error}` answer, or the typed error the answer carries.

    The envelope's code decides: creator_info answers HTTP 200 with spam_risk_* codes.
    """
    body = json_body(response)
    error = body.get("error") if body else None
    code = error.get("code") if isinstance(error, dict) else None
    if response.is_success and code == "ok":
        data = body.get("data") if body else None
        return data if isinstance(data, dict) else {}
    if response.is_success and code is None:
        raise unexpected(response, "no error.code in the answer envelope")
    return_code = None if code == "ok" else code
    error_fields = error if isinstance(error, dict) else {}
    raise api_error(
        response.status_code,
        return_code,
        error_fields.get("message"),
        error_fields.get("log_id"),
        headers=response.headers,
        detail={"path": response.request.url.path, "body": body if body is not None else response.text[:500]},
    )


class TikTokClient(HttpResource):
    """Content Posting API for one user access token.

    `account_key` names the token for the rate-limit hook (use the open_id). By default every
    client of the process shares one `SlidingWindowRateLimiter` with TikTok's per-minute figures.
    `sleep`, `clock` (monotonic seconds) and `random` drive the upload backoff and status polling.
    API calls are never retried here (429 raises `RateLimitExceeded` with `retry_after`); only
    upload chunks are retried in place.
    """

    def __init__(
        self,
        access_token: str | SecretStr,
        settings: TikTokAppSettings,
        *,
        account_key: str = "default",
        transport: httpx.BaseTransport | None = None,
        rate_limit: RateLimitHook | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = random_module.random,
    ) -> None:
        self._token = access_token if isinstance(access_token, SecretStr) else SecretStr(access_token)
        self._settings = settings
        self.account_key = account_key
        self._rate_limit = rate_limit if rate_limit is not None else default_rate_limiter()
        self._sleep = sleep
        self._clock = clock
        self._random = random
        self._http = new_http_client(settings, transport)

    # --- endpoints ------------------------------------------------------------------------------
    def user_info(self, fields: Sequence[str] = DEFAULT_USER_FIELDS) -> UserInfo:
        data = self.send(user_info_call(fields))
        return self._parse(UserInfo, data.get("user", {}))

    def creator_info(self) -> CreatorInfo:
        return self._parse(CreatorInfo, self.send(creator_info_call()))

    def init_video(self, post_info: PostInfo, source_info: SourceInfo) -> InitResult:
        """Direct post (video.publish). FILE_UPLOAD answers carry `upload_url` (valid 1 hour)."""
        return self._parse(InitResult, self.send(video_init_call(post_info, source_info)))

    def init_inbox_video(self, source_info: SourceInfo) -> InitResult:
        """Upload to the creator's inbox as a draft (video.upload)."""
        return self._parse(InitResult, self.send(inbox_video_init_call(source_info)))

    def init_photo_post(
        self, post_mode: PostMode, post_info: PhotoPostInfo, source_info: PhotoSourceInfo
    ) -> InitResult:
        return self._parse(InitResult, self.send(content_init_call(post_mode, post_info, source_info)))

    def fetch_status(self, publish_id: str) -> PublishStatus:
        return self._parse(PublishStatus, self.send(status_fetch_call(publish_id)))

    def cancel(self, publish_id: str) -> None:
        """Best effort, PULL_FROM_URL posts only (TikTok answers publish_not_cancellable otherwise)."""
        self.send(cancel_call(publish_id))

    def upload_video(
        self,
        path: Path | str,
        upload_url: str,
        plan: ChunkPlan,
        *,
        content_type: str | None = None,
        on_progress: ProgressCallback | None = None,
        retry: UploadRetryPolicy = UploadRetryPolicy(),
    ) -> UploadResult:
        """PUT the file to `upload_url` chunk by chunk. Calling it again with the same URL resumes.

        The upload URL is pre-signed: no Authorization header is sent to the upload host.
        """
        file = Path(path)
        return upload_chunks(
            self._http,
            upload_url,
            file,
            plan,
            content_type=content_type or content_type_for(file),
            timeout=upload_timeout(self._settings),
            policy=retry,
            on_progress=on_progress,
            sleep=self._sleep,
            random=self._random,
        )

    def wait_for_publish(
        self, publish_id: str, *, poll: PollPolicy = PollPolicy(), on_status: StatusCallback | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> PublishStatus:
        """Poll status/fetch until terminal; see `tiktok.wait_for_publish` semantics (FAILED raises).

        `sleep` replaces the client's wait between fetches, e.g. one that watches for the outcome
        arriving another way (a webhook) and raises to end the wait early."""
        return wait_for_publish(
            self.fetch_status, publish_id, policy=poll, on_status=on_status, sleep=sleep or self._sleep,
            clock=self._clock,
        )

    # --- plumbing -------------------------------------------------------------------------------
    def send(self, call: ApiCall) -> dict[str, Any]:
        """Rate-limit, authenticate and send one call; the answer's `data` or a typed error."""
        self._rate_limit(self.account_key, call.endpoint)
        headers = {"Authorization": f"Bearer {self._token.get_secret_value()}"}
        content = None
        if call.method == "POST":
            headers["Content-Type"] = JSON_CONTENT_TYPE
            content = json.dumps(call.json).encode() if call.json is not None else None
        request = self._http.build_request(
            call.method, call.path, params=call.params or None, content=content, headers=headers
        )
        try:
            response = send(self._http, request)
        except TransportError as exc:
            if exc.maybe_delivered and call.endpoint in _INIT_ENDPOINTS:
                raise InitOutcomeUnknown(
                    f"{call.endpoint} may have reached TikTok but its answer was lost: do not initialize "
                    "again blindly (risk of a duplicate post)",
                    detail={"endpoint": str(call.endpoint), "cause": exc.detail},
                ) from exc
            raise
        return envelope_data(response)

    @staticmethod
    def _parse(model: type[M], data: dict[str, Any]) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise UnexpectedResponse(
                f"TikTok answer does not fit {model.__name__}: {exc.errors(include_url=False)}",
                detail=data,
            ) from exc

