"""Every documented code, HTTP status, fail_reason and OAuth error lands on the right class and kind."""

from __future__ import annotations

import pytest

import tiktok
import tiktok._errors
from tests.plugins.error_tree import assert_drawing_matches, declared_tree
from tiktok import PublishStatus, publish_failed
# The mapping from answers to classes is the client's own business: its tests read it privately.
from tiktok._errors import API_ERROR_CODES, FAIL_REASONS, OAUTH_ERROR_CODES, api_error, oauth_error, parse_retry_after
from tiktok_pipeline.errors import PipelineError, is_retryable, needs_reauth

# (code, HTTP status TikTok documents for it, expected class name, expected kind)
DOCUMENTED_CODES = [
    ("invalid_param", 400, "InvalidParams", "final"),
    ("invalid_params", 400, "InvalidParams", "final"),
    ("invalid_file_upload", 400, "InvalidFileUpload", "final"),
    ("scope_permission_missed", 400, "ScopePermissionMissed", "final"),
    ("invalid_publish_id", 400, "InvalidPublishId", "final"),
    ("token_not_authorized_for_specified_publish_id", 400, "TokenNotAuthorizedForPublishId", "final"),
    ("publish_not_cancellable", 400, "PublishNotCancellable", "final"),
    ("app_version_check_failed", 400, "AppVersionCheckFailed", "final"),
    ("access_token_invalid", 401, "AccessTokenInvalid", "needs_reauth"),
    ("scope_not_authorized", 401, "ScopeNotAuthorized", "needs_reauth"),
    ("spam_risk_too_many_posts", 403, "SpamRiskTooManyPosts", "final"),
    ("spam_risk_user_banned_from_posting", 403, "SpamRiskUserBannedFromPosting", "final"),
    ("spam_risk_too_many_pending_share", 403, "SpamRiskTooManyPendingShare", "final"),
    ("reached_active_user_cap", 403, "ReachedActiveUserCap", "final"),
    ("unaudited_client_can_only_post_to_private_accounts", 403, "UnauditedClientCanOnlyPostToPrivateAccounts", "final"),
    ("url_ownership_unverified", 403, "UrlOwnershipUnverified", "final"),
    ("privacy_level_option_mismatch", 403, "PrivacyLevelOptionMismatch", "final"),
    ("rate_limit_exceeded", 429, "RateLimitExceeded", "retryable"),
    ("internal_error", 500, "ServerError", "retryable"),
]


@pytest.mark.parametrize(("code", "http_status", "class_name", "kind"), DOCUMENTED_CODES)
def test_documented_code_maps_to_its_class(code: str, http_status: int, class_name: str, kind: str) -> None:
    error = api_error(http_status, code, "msg", "log-42")
    assert type(error).__name__ == class_name
    assert isinstance(error, tiktok.TikTokError) and isinstance(error, PipelineError)
    assert error.kind == kind
    assert (error.code, error.log_id, error.http_status) == (code, "log-42", http_status)
    assert "log-42" in str(error) and code in str(error)


def test_table_covers_every_documented_code_and_nothing_else() -> None:
    assert set(API_ERROR_CODES) == {code for code, *_ in DOCUMENTED_CODES}


@pytest.mark.parametrize(("code", "class_name"), [(c, n) for c, _, n, _ in DOCUMENTED_CODES])
def test_code_wins_over_http_status(code: str, class_name: str) -> None:
    # creator_info answers HTTP 200 with spam_risk_* codes: the code alone decides.
    assert type(api_error(200, code, None, None)).__name__ == class_name


@pytest.mark.parametrize(
    ("http_status", "class_name", "kind"),
    [
        (400, "RequestRejected", "final"),
        (401, "ReauthRequired", "needs_reauth"),
        (403, "PostingForbidden", "final"),
        (404, "NotFound", "final"),
        (409, "RequestRejected", "final"),
        (429, "RateLimitExceeded", "retryable"),
        (500, "ServerError", "retryable"),
        (502, "ServerError", "retryable"),
        (503, "ServerError", "retryable"),
        (200, "UnexpectedResponse", "final"),
    ],
)
@pytest.mark.parametrize("code", [None, "some_code_tiktok_adds_later"])
def test_unknown_or_missing_code_maps_by_http_status(
    code: str | None, http_status: int, class_name: str, kind: str
) -> None:
    error = api_error(http_status, code, None, None)
    assert type(error).__name__ == class_name
    assert error.kind == kind
    assert is_retryable(error) == (kind == "retryable")
    assert needs_reauth(error) == (kind == "needs_reauth")


def test_rate_limit_carries_retry_after_seconds_or_none() -> None:
    with_header = api_error(429, "rate_limit_exceeded", None, None, headers={"retry-after": "17"})
    assert isinstance(with_header, tiktok.RateLimitExceeded) and with_header.retry_after == 17.0
    without = api_error(429, None, None, None, headers={})
    assert isinstance(without, tiktok.RateLimitExceeded) and without.retry_after is None


def test_retry_after_as_http_date() -> None:
    assert parse_retry_after({"retry-after": "Thu, 01 Jan 2026 00:01:00 GMT"}, now=1767225600.0) == 60.0
    assert parse_retry_after({"retry-after": "not a date"}) is None
    assert parse_retry_after({"retry-after": "-5"}) == 0.0


FAIL_REASON_TABLE = [
    ("internal", "PublishFailedInternal", "retryable"),
    ("auth_removed", "PublishAuthRemoved", "needs_reauth"),
    ("file_format_check_failed", "PublishMediaRejected", "final"),
    ("duration_check_failed", "PublishMediaRejected", "final"),
    ("frame_rate_check_failed", "PublishMediaRejected", "final"),
    ("picture_size_check_failed", "PublishMediaRejected", "final"),
    ("video_pull_failed", "PublishMediaPullFailed", "final"),
    ("photo_pull_failed", "PublishMediaPullFailed", "final"),
    ("publish_cancelled", "PublishCancelled", "final"),
    ("spam_risk_too_many_posts", "PublishSpamRisk", "final"),
    ("spam_risk_user_banned_from_posting", "PublishSpamRisk", "final"),
    ("spam_risk_text", "PublishSpamRisk", "final"),
    ("spam_risk", "PublishSpamRisk", "final"),
]


@pytest.mark.parametrize(("reason", "class_name", "kind"), FAIL_REASON_TABLE)
def test_fail_reason_maps_into_the_hierarchy(reason: str, class_name: str, kind: str) -> None:
    status = PublishStatus(status="FAILED", fail_reason=reason)
    error = publish_failed(status)
    assert type(error).__name__ == class_name
    assert isinstance(error, tiktok.PublishFailed)
    assert error.kind == kind
    assert error.fail_reason == reason and error.status is status


def test_fail_reason_table_is_complete_and_unknown_reason_is_final() -> None:
    assert set(FAIL_REASONS) == {reason for reason, *_ in FAIL_REASON_TABLE}
    error = publish_failed(PublishStatus(status="FAILED", fail_reason="new_reason"))
    assert type(error) is tiktok.PublishFailed and error.final
    assert type(publish_failed(PublishStatus(status="FAILED"))) is tiktok.PublishFailed


@pytest.mark.parametrize(
    ("error", "class_name", "kind"),
    [
        ("invalid_grant", "InvalidGrant", "needs_reauth"),
        ("server_error", "OAuthTemporarilyUnavailable", "retryable"),
        ("temporarily_unavailable", "OAuthTemporarilyUnavailable", "retryable"),
        ("access_denied", "AccessDenied", "final"),
        ("invalid_client", "InvalidClient", "final"),
        ("invalid_request", "OAuthError", "final"),
        ("invalid_scope", "OAuthError", "final"),
        ("unauthorized_client", "OAuthError", "final"),
        ("unsupported_grant_type", "OAuthError", "final"),
        ("unsupported_response_type", "OAuthError", "final"),
    ],
)
def test_oauth_errors(error: str, class_name: str, kind: str) -> None:
    mapped = oauth_error(error, "why", "log-9", http_status=400)
    assert type(mapped).__name__ == class_name and isinstance(mapped, tiktok.OAuthError)
    assert mapped.kind == kind
    assert (mapped.code, mapped.log_id, mapped.http_status) == (error, "log-9", 400)
    assert set(OAUTH_ERROR_CODES) <= {"access_denied", "invalid_client", "invalid_grant", "server_error", "temporarily_unavailable"}


def test_every_exported_error_is_a_tiktok_error_with_a_consistent_kind() -> None:
    classes = [getattr(tiktok, n) for n in tiktok.__all__ if isinstance(getattr(tiktok, n), type)]
    errors = [c for c in classes if issubclass(c, BaseException)]
    assert len(errors) > 40
    for cls in errors:
        assert issubclass(cls, tiktok.TikTokError), cls
        assert not (cls.retryable and cls.needs_reauth), cls


def test_the_docstring_draws_the_whole_tree_with_parents_and_kinds() -> None:
    assert_drawing_matches(tiktok._errors.__doc__, tiktok._errors)


def test_every_error_class_is_public() -> None:
    # The drawing is the contract: a caller can catch any class of it, bases included.
    assert set(declared_tree(tiktok._errors)) <= set(tiktok.__all__)
