"""The error hierarchy of the `tiktok` package and the pure functions mapping answers onto it.

Every class states its kind through the `retryable` / `needs_reauth` class attributes of
`PipelineError`: retryable (try the same step again later), needs_reauth (refresh the token or
have the user authorize again), final (neither helps). Server-side failures keep TikTok's `code`,
`message`, `log_id` and the HTTP status, so an operator can quote the log_id to TikTok support.
A subclass has its parent's kind unless the tree says otherwise.

    PipelineError (tiktok_pipeline.errors)
    └── TikTokError                                     final        code, log_id, http_status, detail
        ├── InvalidInput                                final        refused before anything is sent
        │   ├── CaptionTooLong                          final        caption/title over its UTF-16 limit
        │   ├── VideoSizeOutOfRange                     final        empty, or over 4,000,000,000 bytes
        │   ├── ChunkSizeOutOfRange                     final        TIKTOK_PIPELINE_CHUNK_SIZE out of bounds
        │   ├── UnsupportedContainer                    final        not MP4, MOV or WebM
        │   ├── PrivacyNotAllowed                       final        apply_creator_rules: privacy option
        │   └── DurationOverCreatorMax                  final        apply_creator_rules: too long
        ├── TransportError                              retryable    timeout, connection; maybe_delivered
        ├── ServerError                                 retryable    HTTP 5xx, internal_error
        ├── RateLimitExceeded                           retryable    HTTP 429; retry_after
        ├── ReauthRequired                              needs_reauth HTTP 401 without a known code
        │   ├── AccessTokenInvalid                      needs_reauth access_token_invalid
        │   └── ScopeNotAuthorized                      needs_reauth scope_not_authorized
        ├── RequestRejected                             final        HTTP 400 family
        │   ├── InvalidParams                           final        invalid_param(s)
        │   ├── InvalidFileUpload                       final        invalid_file_upload
        │   ├── ScopePermissionMissed                   final        scope_permission_missed
        │   ├── InvalidPublishId                        final        invalid_publish_id
        │   ├── TokenNotAuthorizedForPublishId          final        token_not_authorized_for_specified_...
        │   ├── PublishNotCancellable                   final        publish_not_cancellable
        │   ├── AppVersionCheckFailed                   final        app_version_check_failed
        │   └── NotFound                                final        HTTP 404 without a known code
        ├── PostingForbidden                            final        HTTP 403 family
        │   ├── CreatorCannotPost                       final        creator_info may say so with HTTP 200
        │   │   ├── SpamRiskTooManyPosts                final        daily post cap
        │   │   ├── SpamRiskUserBannedFromPosting       final
        │   │   ├── SpamRiskTooManyPendingShare         final        5 pending inbox shares per 24 h
        │   │   └── ReachedActiveUserCap                final        the app's daily creator cap
        │   ├── UnauditedClientCanOnlyPostToPrivateAccounts  final
        │   ├── UrlOwnershipUnverified                  final        PULL_FROM_URL domain not verified
        │   └── PrivacyLevelOptionMismatch              final
        ├── UnexpectedResponse                          final        answer breaks the documented format
        ├── InitOutcomeUnknown                          final        init answer lost (see the class)
        ├── UploadError                                 final        chunk PUTs to upload_url
        │   ├── UploadUrlExpired                        final        403: re-initialize the post
        │   ├── UploadNotFound                          final        404: re-initialize the post
        │   ├── UploadRejected                          final        400: headers, length or range
        │   └── UploadProtocolError                     final        answer the contract does not allow
        ├── PublishFailed                               final        status FAILED; fail_reason, status
        │   ├── PublishFailedInternal                   retryable    internal
        │   ├── PublishAuthRemoved                      needs_reauth auth_removed
        │   ├── PublishMediaRejected                    final        *_check_failed
        │   ├── PublishMediaPullFailed                  final        video_pull_failed, photo_pull_failed
        │   ├── PublishCancelled                        final        publish_cancelled
        │   └── PublishSpamRisk                         final        spam_risk*
        ├── PublishStillProcessing                      retryable    wait_for_publish gave up; status
        ├── OAuthError                                  final        flat `error` + `error_description`
        │   ├── AccessDenied                            final        the user declined
        │   ├── InvalidClient                           final        client_key / client_secret wrong
        │   ├── InvalidGrant                            needs_reauth code or refresh token expired/revoked
        │   ├── OAuthTemporarilyUnavailable             retryable    server_error, temporarily_unavailable
        │   └── StateMismatch                           final        callback state is not ours (CSRF)
        └── WebhookRejected                             final        inbound webhook refused (answer 4xx)
            ├── WebhookSignatureMissing                 final        no TikTok-Signature header
            ├── WebhookSignatureInvalid                 final        malformed header or HMAC mismatch
            ├── WebhookStale                            final        t outside the tolerance (replay)
            └── WebhookPayloadInvalid                   final        body breaks the documented format

`tests/tiktok/test_errors.py` holds this drawing to the classes (parents and kinds).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

from tiktok_pipeline.errors import PipelineError


class TikTokError(PipelineError):
    """Root of every error raised by the `tiktok` package."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        log_id: str | None = None,
        http_status: int | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(message, detail=detail)
        #: TikTok's error code (`error.code` of the envelope, or `error` of an OAuth answer).
        self.code = code
        self.log_id = log_id
        self.http_status = http_status


# --- Bad input (raised before anything is sent) -------------------------------------------------
class InvalidInput(TikTokError):
    """A value given to this package breaks one of TikTok's documented rules."""


class CaptionTooLong(InvalidInput):
    """A caption, photo title or description is longer than TikTok accepts (UTF-16 code units)."""


class VideoSizeOutOfRange(InvalidInput):
    """The file is empty or larger than the 4 GB (4,000,000,000 bytes) TikTok accepts."""


class ChunkSizeOutOfRange(InvalidInput):
    """The requested chunk size is outside 5,242,880..64,000,000 bytes (TIKTOK_PIPELINE_CHUNK_SIZE)."""


class UnsupportedContainer(InvalidInput):
    """The file is neither MP4, MOV nor WebM, so no upload Content-Type can be chosen."""


class PrivacyNotAllowed(InvalidInput):
    """The chosen privacy level is not among the creator's privacy_level_options."""


class DurationOverCreatorMax(InvalidInput):
    """The video is longer than the creator may post (max_video_post_duration_sec)."""


# --- Retryable -----------------------------------------------------------------------------------
class TransportError(TikTokError):
    """Timeout or connection failure talking to TikTok; nothing useful came back."""

    retryable = True

    def __init__(self, message: str, *, maybe_delivered: bool, detail: Any = None) -> None:
        super().__init__(message, detail=detail)
        #: True when the request may have reached the server (read timeout, dropped answer).
        self.maybe_delivered = maybe_delivered


class ServerError(TikTokError):
    """HTTP 5xx or `internal_error` (sometimes without a code)."""

    retryable = True


class RateLimitExceeded(TikTokError):
    """HTTP 429 `rate_limit_exceeded`. Not retried in place: the caller schedules the retry."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: Seconds the server asked us to wait (Retry-After), or None when it did not say.
        self.retry_after = retry_after


# --- Needs re-authorization ---------------------------------------------------------------------
class ReauthRequired(TikTokError):
    """The account's token is unusable: refresh it or have the user authorize again."""

    needs_reauth = True


class AccessTokenInvalid(ReauthRequired):
    """401 `access_token_invalid`: expired or revoked access token."""


class ScopeNotAuthorized(ReauthRequired):
    """401 `scope_not_authorized`: the user did not grant the scope this endpoint needs."""


# --- Final: the request itself is wrong (HTTP 400 family) ------------------------------------------
class RequestRejected(TikTokError):
    """TikTok refused the request as malformed or not applicable; sending it again will not help."""


class InvalidParams(RequestRejected):
    """400 `invalid_param` / `invalid_params`."""


class InvalidFileUpload(RequestRejected):
    """400 `invalid_file_upload`: video_size / chunk_size / total_chunk_count break the rules."""


class ScopePermissionMissed(RequestRejected):
    """400 `scope_permission_missed`: the app itself lacks the scope (app configuration)."""


class InvalidPublishId(RequestRejected):
    """400 `invalid_publish_id`."""


class TokenNotAuthorizedForPublishId(RequestRejected):
    """400 `token_not_authorized_for_specified_publish_id`."""


class PublishNotCancellable(RequestRejected):
    """400 `publish_not_cancellable`."""


class AppVersionCheckFailed(RequestRejected):
    """400 `app_version_check_failed`."""


class NotFound(RequestRejected):
    """HTTP 404 without a known code."""


# --- Final: TikTok will not let this creator/app post this (HTTP 403 family) ---------------------
class PostingForbidden(TikTokError):
    """TikTok refuses to publish for policy reasons (caps, spam risk, audit state, ownership)."""


class CreatorCannotPost(PostingForbidden):
    """The creator cannot post right now (creator_info may say so with HTTP 200)."""


class SpamRiskTooManyPosts(CreatorCannotPost):
    """403 `spam_risk_too_many_posts`: the creator's daily post cap is reached."""


class SpamRiskUserBannedFromPosting(CreatorCannotPost):
    """403 `spam_risk_user_banned_from_posting`."""


class SpamRiskTooManyPendingShare(CreatorCannotPost):
    """403 `spam_risk_too_many_pending_share`: 5 pending inbox shares per 24 h."""


class ReachedActiveUserCap(CreatorCannotPost):
    """403 `reached_active_user_cap`: the app's daily active-creator cap is reached."""


class UnauditedClientCanOnlyPostToPrivateAccounts(PostingForbidden):
    """403 `unaudited_client_can_only_post_to_private_accounts`."""


class UrlOwnershipUnverified(PostingForbidden):
    """403 `url_ownership_unverified`: PULL_FROM_URL from a domain not verified for the app."""


class PrivacyLevelOptionMismatch(PostingForbidden):
    """403 `privacy_level_option_mismatch`: privacy_level not in creator_info's options."""


# --- Final: answers this client cannot interpret -------------------------------------------------
class UnexpectedResponse(TikTokError):
    """An answer that breaks the documented format (not JSON, missing fields, unknown shape)."""


class InitOutcomeUnknown(TikTokError):
    """An init request may have reached TikTok but its answer was lost.

    Final on purpose: initializing again could publish the same video twice (PULL_FROM_URL and
    photo posts are fetched by TikTok as soon as init succeeds). The caller decides, e.g. re-init
    FILE_UPLOAD (harmless: an init without upload never posts) but not PULL_FROM_URL.
    """


# --- Upload (PUT upload_url) --------------------------------------------------------------------
class UploadError(TikTokError):
    """Base of failures of the chunked media transfer."""


class UploadUrlExpired(UploadError):
    """403 on a chunk PUT: the upload_url (valid 1 hour) expired; re-initialize the post."""


class UploadNotFound(UploadError):
    """404 on a chunk PUT: the server knows no such upload; re-initialize the post."""


class UploadRejected(UploadError):
    """400 on a chunk PUT: headers, length or range refused."""


class UploadProtocolError(UploadError):
    """The upload server answered something the media-transfer contract does not allow."""


# --- Publish status FAILED ----------------------------------------------------------------------
class PublishFailed(TikTokError):
    """status/fetch reported FAILED; `fail_reason` says why and `status` holds the full answer."""

    def __init__(self, message: str, *, fail_reason: str | None, status: Any, **kwargs: Any) -> None:
        super().__init__(message, code=fail_reason, **kwargs)
        self.fail_reason = fail_reason
        #: The `PublishStatus` that reported the failure.
        self.status = status


class PublishFailedInternal(PublishFailed):
    """fail_reason `internal`: TikTok-side failure; a new attempt may succeed."""

    retryable = True


class PublishAuthRemoved(PublishFailed):
    """fail_reason `auth_removed`: the user revoked the app during publishing."""

    needs_reauth = True


class PublishMediaRejected(PublishFailed):
    """The video failed TikTok's format, duration, frame-rate or picture-size checks."""


class PublishMediaPullFailed(PublishFailed):
    """TikTok could not download the video or photos (PULL_FROM_URL)."""


class PublishCancelled(PublishFailed):
    """fail_reason `publish_cancelled`."""


class PublishSpamRisk(PublishFailed):
    """TikTok's spam checks refused the post (caps, banned user, text)."""


class PublishStillProcessing(TikTokError):
    """wait_for_publish gave up before a terminal status. Polling again later is safe."""

    retryable = True

    def __init__(self, message: str, *, status: Any, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: The last `PublishStatus` seen (None if none was fetched).
        self.status = status


# --- OAuth (flat error format) --------------------------------------------------------------------
class OAuthError(TikTokError):
    """An OAuth answer or callback carrying `error` (+ `error_description`)."""


class AccessDenied(OAuthError):
    """`access_denied`: the user declined on the authorize page."""


class InvalidClient(OAuthError):
    """`invalid_client`: client_key / client_secret wrong (configuration)."""


class InvalidGrant(OAuthError):
    """`invalid_grant`: code or refresh token expired/revoked; the user must authorize again."""

    needs_reauth = True


class OAuthTemporarilyUnavailable(OAuthError):
    """`server_error` / `temporarily_unavailable`."""

    retryable = True


class StateMismatch(OAuthError):
    """The callback's `state` is not the one we sent (CSRF or a stale browser tab)."""


# --- Inbound webhooks (TikTok-Signature) ------------------------------------------------------------
class WebhookRejected(TikTokError):
    """An inbound webhook delivery refused: answer 4xx and do not act on it.

    Final: checking the same delivery again gives the same answer. TikTok redelivers an event it
    really sent (signed afresh) for up to 72 h, so one refused for a fixable cause (a wrong secret,
    a clock off) arrives again once that is fixed, within that window.
    """


class WebhookSignatureMissing(WebhookRejected):
    """No `TikTok-Signature` header, or a blank one."""


class WebhookSignatureInvalid(WebhookRejected):
    """The header is malformed (t or s missing, t not whole seconds, s not hex, a key twice) or the
    HMAC does not match the body (wrong client_secret, altered body)."""


class WebhookStale(WebhookRejected):
    """The signature is genuine but `t` is further from now than the tolerance: a replayed delivery
    (or a clock off by more than the tolerance)."""


class WebhookPayloadInvalid(WebhookRejected):
    """The body breaks the documented format (not JSON, a field missing or of the wrong type,
    content not a JSON object string, too large); `detail["field"]` names the field when there is one."""


#: Every documented envelope code → class. HTTP status does not matter once the code is known.
API_ERROR_CODES: Mapping[str, type[TikTokError]] = {
    "invalid_param": InvalidParams,
    "invalid_params": InvalidParams,
    "invalid_file_upload": InvalidFileUpload,
    "scope_permission_missed": ScopePermissionMissed,
    "invalid_publish_id": InvalidPublishId,
    "token_not_authorized_for_specified_publish_id": TokenNotAuthorizedForPublishId,
    "publish_not_cancellable": PublishNotCancellable,
    "app_version_check_failed": AppVersionCheckFailed,
    "access_token_invalid": AccessTokenInvalid,
    "scope_not_authorized": ScopeNotAuthorized,
    "spam_risk_too_many_posts": SpamRiskTooManyPosts,
    "spam_risk_user_banned_from_posting": SpamRiskUserBannedFromPosting,
    "spam_risk_too_many_pending_share": SpamRiskTooManyPendingShare,
    "reached_active_user_cap": ReachedActiveUserCap,
    "unaudited_client_can_only_post_to_private_accounts": UnauditedClientCanOnlyPostToPrivateAccounts,
    "url_ownership_unverified": UrlOwnershipUnverified,
    "privacy_level_option_mismatch": PrivacyLevelOptionMismatch,
    "rate_limit_exceeded": RateLimitExceeded,
    "internal_error": ServerError,
}

OAUTH_ERROR_CODES: Mapping[str, type[OAuthError]] = {
    "access_denied": AccessDenied,
    "invalid_client": InvalidClient,
    "invalid_grant": InvalidGrant,
    "server_error": OAuthTemporarilyUnavailable,
    "temporarily_unavailable": OAuthTemporarilyUnavailable,
}

FAIL_REASONS: Mapping[str, type[PublishFailed]] = {
    "internal": PublishFailedInternal,
    "auth_removed": PublishAuthRemoved,
    "file_format_check_failed": PublishMediaRejected,
    "duration_check_failed": PublishMediaRejected,
    "frame_rate_check_failed": PublishMediaRejected,
    "picture_size_check_failed": PublishMediaRejected,
    "video_pull_failed": PublishMediaPullFailed,
    "photo_pull_failed": PublishMediaPullFailed,
    "publish_cancelled": PublishCancelled,
    "spam_risk_too_many_posts": PublishSpamRisk,
    "spam_risk_user_banned_from_posting": PublishSpamRisk,
    "spam_risk_text": PublishSpamRisk,
    "spam_risk": PublishSpamRisk,
}


def _class_for_status(http_status: int) -> type[TikTokError]:
    """Unknown (or absent) codes are classified by HTTP status alone."""
    if http_status == 429:
        return RateLimitExceeded
    if http_status >= 500:
        return ServerError
    if http_status == 401:
        return ReauthRequired
    if http_status == 403:
        return PostingForbidden
    if http_status == 404:
        return NotFound
    if 400 <= http_status < 500:
        return RequestRejected
    # HTTP 2xx carrying an unknown non-"ok" code: nothing says a retry would help.
    return UnexpectedResponse


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP-date), None when absent or bad."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


def api_error(
    http_status: int,
    code: str | None,
    message: str | None,
    log_id: str | None,
    *,
    headers: Mapping[str, str] | None = None,
    detail: Any = None,
) -> TikTokError:
    """The typed error for one failed API answer: the envelope code decides, else the HTTP status."""
    cls = API_ERROR_CODES.get(code or "") or _class_for_status(http_status)
    text = f"TikTok API error {code or 'without code'} (HTTP {http_status}): {message or 'no message'}"
    if log_id:
        text += f" [log_id {log_id}]"
    common: dict[str, Any] = {"code": code, "log_id": log_id, "http_status": http_status, "detail": detail}
    if cls is RateLimitExceeded:
        return RateLimitExceeded(text, retry_after=parse_retry_after(headers or {}), **common)
    return cls(text, **common)


def oauth_error(
    error: str,
    description: str | None,
    log_id: str | None,
    *,
    http_status: int | None = None,
    detail: Any = None,
) -> OAuthError:
    """The typed error for a flat OAuth error (`error`, `error_description`, `log_id`)."""
    cls = OAUTH_ERROR_CODES.get(error, OAuthError)
    text = f"TikTok OAuth error {error}: {description or 'no description'}"
    if log_id:
        text += f" [log_id {log_id}]"
    return cls(text, code=error, log_id=log_id, http_status=http_status, detail=detail)


def publish_failed(status: Any) -> PublishFailed:
    """The typed error for a FAILED `PublishStatus` (unknown reasons are final)."""
    reason = status.fail_reason
    cls = FAIL_REASONS.get(reason or "", PublishFailed)
    return cls(
        f"TikTok reported FAILED: {reason or 'no fail_reason'}",
        fail_reason=reason,
        status=status,
        detail=status.model_dump(mode="json"),
    )
