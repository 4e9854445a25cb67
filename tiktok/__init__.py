"""TikTok Content Posting API v2 and Login Kit OAuth v2 client (httpx, synchronous, no Prefect),
and TikTok's own documented limits.

    check_chunk_size(settings.chunk_size)      # once at startup: ChunkSizeOutOfRange names the setting
    with TikTokClient(token, settings, account_key=open_id) as tiktok:
        creator = tiktok.creator_info()
        checked = apply_creator_rules(PostInfo(title=..., privacy_level=...), creator, duration)
        plan = plan_chunks(size, settings.chunk_size)
        init = tiktok.init_video(checked.post_info, SourceInfo.file_upload(plan))
        tiktok.upload_video(path, init.upload_url, plan)
        status = tiktok.wait_for_publish(init.publish_id)

Public surface, by group (the order of `__all__`):
- client: `TikTokClient` (user_info, creator_info, init_video / init_inbox_video / init_photo_post,
  upload_video, fetch_status, wait_for_publish, cancel, send), `apply_creator_rules` (TikTok's content-sharing guidelines
  against a fresh creator_info), `PollPolicy`, `UploadRetryPolicy`, and `ApiCall` / `video_init_call`
  to send a hand-made request.
- OAuth: `OAuthClient` (authorize request, code exchange, refresh, revoke), `parse_callback`,
  `new_code_verifier`, the `AuthorizationRequest` it starts with and the `TokenSet` it ends with.
- models: what is sent (`PostInfo`, `SourceInfo`, `PhotoPostInfo`, `PhotoSourceInfo`, `PostMode` =
  TikTok's DIRECT_POST / MEDIA_UPLOAD, `PrivacyLevel`) and answered (`CreatorInfo`, `InitResult`,
  `PublishStatus`, `PublishStatusValue`); `utf16_length` counts text the way TikTok's limits do.
- TikTok's limits: `MAX_CAPTION_UTF16`, `MAX_PHOTO_TITLE_UTF16`, `MAX_PHOTO_DESCRIPTION_UTF16`,
  `MIN_CHUNK_SIZE`, `MAX_CHUNK_SIZE`, `MAX_FINAL_CHUNK_SIZE`, `MAX_CHUNK_COUNT`, `MAX_VIDEO_SIZE`
  (4 GB read as 4,000,000,000 bytes: where the docs do not say MB or MiB, the stricter reading),
  `MAX_VIDEO_DURATION` (600 s, assumed when a creator's own maximum is unknown),
  `MAX_CREATOR_VIDEO_DURATION` (3600 s, the most a creator's `max_video_post_duration_sec` says).
- chunking: `plan_chunks` -> `ChunkPlan`, `check_chunk_size`.
- rate limits: `Endpoint`, `TIKTOK_RATE_LIMITS`, `SlidingWindowRateLimiter`, `RateLimitHook` (the
  protocol a caller's own limiter implements).
- webhooks (inbound, from TikTok): `verify_webhook` checks the `TikTok-Signature` header over the raw
  body (HMAC-SHA256, constant time, stale timestamps refused), then `parse_webhook` reads the body
  (at most `MAX_WEBHOOK_BODY_SIZE` bytes) into a `WebhookEvent` (`kind`: a `WebhookEventType`, None
  for events TikTok adds later; `key` dedupes at-least-once deliveries); `sign_webhook` builds the
  header for tests and tools. Refusals are `WebhookRejected` (see the errors).
- errors: one tree rooted at `TikTokError` (a `PipelineError`), drawn with every class's parent and
  kind in `tiktok/_errors.py`; read `retryable` / `needs_reauth` / `final`, plus `code`, `log_id`,
  `http_status`, `detail`. `publish_failed` turns a FAILED `PublishStatus` into its error.
"""

from tiktok._chunks import (
    MAX_CHUNK_COUNT,
    MAX_CHUNK_SIZE,
    MAX_FINAL_CHUNK_SIZE,
    MAX_VIDEO_SIZE,
    MIN_CHUNK_SIZE,
    ChunkPlan,
    check_chunk_size,
    plan_chunks,
)
from tiktok._client import ApiCall, TikTokClient, video_init_call
from tiktok._errors import (
    AccessDenied,
    AccessTokenInvalid,
    AppVersionCheckFailed,
    CaptionTooLong,
    ChunkSizeOutOfRange,
    CreatorCannotPost,
    DurationOverCreatorMax,
    InitOutcomeUnknown,
    InvalidClient,
    InvalidFileUpload,
    InvalidGrant,
    InvalidInput,
    InvalidParams,
    InvalidPublishId,
    NotFound,
    OAuthError,
    OAuthTemporarilyUnavailable,
    PostingForbidden,
    PrivacyLevelOptionMismatch,
    PrivacyNotAllowed,
    PublishAuthRemoved,
    PublishCancelled,
    PublishFailed,
    PublishFailedInternal,
    PublishMediaPullFailed,
    PublishMediaRejected,
    PublishNotCancellable,
    PublishSpamRisk,
    PublishStillProcessing,
    RateLimitExceeded,
    ReachedActiveUserCap,
    ReauthRequired,
    RequestRejected,
    ScopeNotAuthorized,
    ScopePermissionMissed,
    ServerError,
    SpamRiskTooManyPendingShare,
    SpamRiskTooManyPosts,
    SpamRiskUserBannedFromPosting,
    StateMismatch,
    TikTokError,
    TokenNotAuthorizedForPublishId,
    TransportError,
    UnauditedClientCanOnlyPostToPrivateAccounts,
    UnexpectedResponse,
    UnsupportedContainer,
    UploadError,
    UploadNotFound,
    UploadProtocolError,
    UploadRejected,
    UploadUrlExpired,
    UrlOwnershipUnverified,
    VideoSizeOutOfRange,
    WebhookPayloadInvalid,
    WebhookRejected,
    WebhookSignatureInvalid,
    WebhookSignatureMissing,
    WebhookStale,
    publish_failed,
)
from tiktok._guidelines import apply_creator_rules
from tiktok._models import (
    MAX_CAPTION_UTF16,
    MAX_PHOTO_DESCRIPTION_UTF16,
    MAX_PHOTO_TITLE_UTF16,
    MAX_CREATOR_VIDEO_DURATION,
    MAX_VIDEO_DURATION,
    AuthorizationRequest,
    CreatorInfo,
    InitResult,
    PhotoPostInfo,
    PhotoSourceInfo,
    PostInfo,
    PostMode,
    PrivacyLevel,
    PublishStatus,
    PublishStatusValue,
    SourceInfo,
    TokenSet,
    utf16_length,
)
from tiktok._oauth import OAuthClient, new_code_verifier, parse_callback
from tiktok._ratelimit import TIKTOK_RATE_LIMITS, Endpoint, RateLimitHook, SlidingWindowRateLimiter
from tiktok._status import PollPolicy
from tiktok._upload import UploadRetryPolicy
from tiktok._webhooks import (
    MAX_WEBHOOK_BODY_SIZE,
    WebhookEvent,
    WebhookEventType,
    parse_webhook,
    sign_webhook,
    verify_webhook,
)

__all__ = [
    # client
    "TikTokClient",
    "apply_creator_rules",
    "PollPolicy",
    "UploadRetryPolicy",
    "ApiCall",
    "video_init_call",
    # OAuth
    "OAuthClient",
    "parse_callback",
    "new_code_verifier",
    "AuthorizationRequest",
    "TokenSet",
    # models
    "PostInfo",
    "SourceInfo",
    "PhotoPostInfo",
    "PhotoSourceInfo",
    "PostMode",
    "PrivacyLevel",
    "CreatorInfo",
    "InitResult",
    "PublishStatus",
    "PublishStatusValue",
    "utf16_length",
    # TikTok's limits
    "MAX_CAPTION_UTF16",
    "MAX_PHOTO_TITLE_UTF16",
    "MAX_PHOTO_DESCRIPTION_UTF16",
    "MIN_CHUNK_SIZE",
    "MAX_CHUNK_SIZE",
    "MAX_FINAL_CHUNK_SIZE",
    "MAX_CHUNK_COUNT",
    "MAX_VIDEO_SIZE",
    "MAX_VIDEO_DURATION",
    "MAX_CREATOR_VIDEO_DURATION",
    # chunking
    "ChunkPlan",
    "check_chunk_size",
    "plan_chunks",
    # rate limits
    "Endpoint",
    "TIKTOK_RATE_LIMITS",
    "SlidingWindowRateLimiter",
    "RateLimitHook",
    # webhooks
    "verify_webhook",
    "parse_webhook",
    "sign_webhook",
    "WebhookEvent",
    "WebhookEventType",
    "MAX_WEBHOOK_BODY_SIZE",
    # errors (the tree in tiktok/_errors.py)
    "publish_failed",
    "AccessDenied",
    "AccessTokenInvalid",
    "AppVersionCheckFailed",
    "CaptionTooLong",
    "ChunkSizeOutOfRange",
    "CreatorCannotPost",
    "DurationOverCreatorMax",
    "InitOutcomeUnknown",
    "InvalidClient",
    "InvalidFileUpload",
    "InvalidGrant",
    "InvalidInput",
    "InvalidParams",
    "InvalidPublishId",
    "NotFound",
    "OAuthError",
    "OAuthTemporarilyUnavailable",
    "PostingForbidden",
    "PrivacyLevelOptionMismatch",
    "PrivacyNotAllowed",
    "PublishAuthRemoved",
    "PublishCancelled",
    "PublishFailed",
    "PublishFailedInternal",
    "PublishMediaPullFailed",
    "PublishMediaRejected",
    "PublishNotCancellable",
    "PublishSpamRisk",
    "PublishStillProcessing",
    "RateLimitExceeded",
    "ReachedActiveUserCap",
    "ReauthRequired",
    "RequestRejected",
    "ScopeNotAuthorized",
    "ScopePermissionMissed",
    "ServerError",
    "SpamRiskTooManyPendingShare",
    "SpamRiskTooManyPosts",
    "SpamRiskUserBannedFromPosting",
    "StateMismatch",
    "TikTokError",
    "TokenNotAuthorizedForPublishId",
    "TransportError",
    "UnauditedClientCanOnlyPostToPrivateAccounts",
    "UnexpectedResponse",
    "UnsupportedContainer",
    "UploadError",
    "UploadNotFound",
    "UploadProtocolError",
    "UploadRejected",
    "UploadUrlExpired",
    "UrlOwnershipUnverified",
    "VideoSizeOutOfRange",
    "WebhookPayloadInvalid",
    "WebhookRejected",
    "WebhookSignatureInvalid",
    "WebhookSignatureMissing",
    "WebhookStale",
]
