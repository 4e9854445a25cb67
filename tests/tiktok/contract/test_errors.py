"""Every refusal the sandbox can give, as the client's typed error with the right kind."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sandbox import SandboxHandle, default_creators
from tiktok import (
    ApiCall,
    Endpoint,
    InitOutcomeUnknown,
    InvalidParams,
    InvalidPublishId,
    PhotoPostInfo,
    PhotoSourceInfo,
    PostInfo,
    PostMode,
    PrivacyLevel,
    PrivacyLevelOptionMismatch,
    PublishNotCancellable,
    RateLimitExceeded,
    ReachedActiveUserCap,
    ScopeNotAuthorized,
    ServerError,
    SourceInfo,
    SpamRiskTooManyPendingShare,
    SpamRiskTooManyPosts,
    SpamRiskUserBannedFromPosting,
    TikTokClient,
    TokenNotAuthorizedForPublishId,
    TransportError,
    UnauditedClientCanOnlyPostToPrivateAccounts,
    UrlOwnershipUnverified,
    plan_chunks,
    video_init_call,
)

from .helpers import MIB, assert_kind, config, only_post

Connect = Callable[..., TikTokClient]
SMALL_PLAN = plan_chunks(2 * MIB, 16 * MIB)


def self_only() -> PostInfo:
    return PostInfo(title="contract test", privacy_level=PrivacyLevel.SELF_ONLY)


def no_limit(account_key: str, endpoint: str) -> None:
    """A rate-limit hook that lets everything through, so the sandbox's own limit is what answers."""


def test_missing_scope_is_scope_not_authorized(sandbox: SandboxHandle, connect: Connect) -> None:
    tiktok = connect(scopes=["user.info.basic", "video.upload"])
    with pytest.raises(ScopeNotAuthorized) as creator:
        tiktok.creator_info()
    assert_kind(creator.value, "needs_reauth", code="scope_not_authorized", http_status=401)
    with pytest.raises(ScopeNotAuthorized):
        tiktok.init_video(self_only(), SourceInfo.file_upload(SMALL_PLAN))
    assert tiktok.init_inbox_video(SourceInfo.file_upload(SMALL_PLAN)).upload_url  # video.upload was granted
    assert only_post(sandbox)["mode"] == "inbox"


def test_privacy_not_offered_to_the_creator_is_refused(sandbox: SandboxHandle, connect: Connect) -> None:
    tiktok = connect("private_creator")
    assert PrivacyLevel.PUBLIC_TO_EVERYONE not in tiktok.creator_info().privacy_level_options
    with pytest.raises(PrivacyLevelOptionMismatch) as refused:
        tiktok.init_video(PostInfo(privacy_level=PrivacyLevel.PUBLIC_TO_EVERYONE), SourceInfo.file_upload(SMALL_PLAN))
    assert_kind(refused.value, "final", code="privacy_level_option_mismatch", http_status=403)
    assert refused.value.log_id
    assert sandbox.posts() == []


def test_daily_post_cap_shows_in_creator_info_and_init(sandbox: SandboxHandle, connect: Connect) -> None:
    creators = [creator.model_copy(update={"daily_post_cap": 1}) for creator in default_creators()]
    sandbox.reset(config(creators=creators))
    tiktok = connect()
    tiktok.init_video(self_only(), SourceInfo.file_upload(SMALL_PLAN))
    # creator_info says "cannot post now" with HTTP 200 and the code in the envelope.
    with pytest.raises(SpamRiskTooManyPosts) as in_creator_info:
        tiktok.creator_info()
    assert_kind(in_creator_info.value, "final", code="spam_risk_too_many_posts", http_status=200)
    with pytest.raises(SpamRiskTooManyPosts) as at_init:
        tiktok.init_video(self_only(), SourceInfo.file_upload(SMALL_PLAN))
    assert_kind(at_init.value, "final", code="spam_risk_too_many_posts", http_status=403)
    only_post(sandbox)


def test_banned_creator_is_refused(sandbox: SandboxHandle, connect: Connect) -> None:
    creators = [creator.model_copy(update={"banned_from_posting": True}) for creator in default_creators()]
    sandbox.reset(config(creators=creators))
    tiktok = connect()
    with pytest.raises(SpamRiskUserBannedFromPosting) as banned:
        tiktok.creator_info()
    assert_kind(banned.value, "final", code="spam_risk_user_banned_from_posting", http_status=200)
    with pytest.raises(SpamRiskUserBannedFromPosting):
        tiktok.init_video(self_only(), SourceInfo.file_upload(SMALL_PLAN))
    assert sandbox.posts() == []


def test_pending_inbox_shares_cap(sandbox: SandboxHandle, connect: Connect) -> None:
    sandbox.reset(config(inbox_pending_cap=1))
    tiktok = connect()
    tiktok.init_inbox_video(SourceInfo.file_upload(SMALL_PLAN))
    with pytest.raises(SpamRiskTooManyPendingShare) as refused:
        tiktok.init_inbox_video(SourceInfo.file_upload(SMALL_PLAN))
    assert_kind(refused.value, "final", code="spam_risk_too_many_pending_share", http_status=403)
    only_post(sandbox)


def test_active_user_cap_of_the_app(sandbox: SandboxHandle, connect: Connect) -> None:
    sandbox.reset(config(active_user_cap=1))
    connect("studio_main").init_video(self_only(), SourceInfo.file_upload(SMALL_PLAN))
    second = connect("private_creator")
    with pytest.raises(ReachedActiveUserCap) as in_creator_info:
        second.creator_info()
    assert_kind(in_creator_info.value, "final", code="reached_active_user_cap", http_status=200)
    with pytest.raises(ReachedActiveUserCap) as at_init:
        second.init_video(self_only(), SourceInfo.file_upload(SMALL_PLAN))
    assert_kind(at_init.value, "final", code="reached_active_user_cap", http_status=403)
    assert only_post(sandbox)["username"] == "studio_main"


def test_unaudited_app_posts_only_to_private_accounts_as_self_only(sandbox: SandboxHandle, connect: Connect) -> None:
    sandbox.reset(config(unaudited=True))
    with pytest.raises(UnauditedClientCanOnlyPostToPrivateAccounts) as public:
        connect("studio_main").init_video(self_only(), SourceInfo.file_upload(SMALL_PLAN))
    assert_kind(public.value, "final", code="unaudited_client_can_only_post_to_private_accounts", http_status=403)
    private = connect("private_creator")
    private.init_video(PostInfo(privacy_level=PrivacyLevel.FOLLOWER_OF_CREATOR), SourceInfo.file_upload(SMALL_PLAN))
    post = only_post(sandbox)
    assert (post["username"], post["privacy_level"]) == ("private_creator", "SELF_ONLY")


def test_unverified_urls_are_refused(sandbox: SandboxHandle, connect: Connect) -> None:
    tiktok = connect()
    with pytest.raises(UrlOwnershipUnverified) as video:
        tiktok.init_video(self_only(), SourceInfo.pull_from_url("https://videos.example.com/clip.mp4"))
    assert_kind(video.value, "final", code="url_ownership_unverified", http_status=403)
    photos = PhotoSourceInfo(photo_images=["https://photos.example.com/1.jpg"])
    with pytest.raises(UrlOwnershipUnverified):
        tiktok.init_photo_post(PostMode.MEDIA_UPLOAD, PhotoPostInfo(title="t"), photos)
    assert sandbox.posts() == []


def test_bad_chunk_plan_sent_raw_is_invalid_param(sandbox: SandboxHandle, connect: Connect) -> None:
    tiktok = connect()
    # 50,000,123 bytes in chunks of 10,000,000 is floor() = 5 chunks; ceil() = 6 is the classic mistake.
    ceil_plan = SourceInfo(source="FILE_UPLOAD", video_size=50_000_123, chunk_size=10_000_000, total_chunk_count=6)
    with pytest.raises(InvalidParams) as refused:
        tiktok.send(video_init_call(self_only(), ceil_plan))
    assert_kind(refused.value, "final", code="invalid_param", http_status=400)
    assert "floor" in str(refused.value)
    body_without_post_info = {"source_info": SourceInfo.file_upload(SMALL_PLAN).body()}
    with pytest.raises(InvalidParams):
        tiktok.send(ApiCall(Endpoint.VIDEO_INIT, "POST", "/v2/post/publish/video/init/", json=body_without_post_info))
    assert sandbox.posts() == []


def test_sandbox_rate_limit_is_rate_limit_exceeded_with_retry_after(connect: Connect) -> None:
    tiktok = connect(rate_limit=no_limit)
    for _ in range(20):  # creator_info allows 20 per minute per token
        tiktok.creator_info()
    with pytest.raises(RateLimitExceeded) as limited:
        tiktok.creator_info()
    assert_kind(limited.value, "retryable", code="rate_limit_exceeded", http_status=429)
    assert limited.value.retry_after is not None and 1 <= limited.value.retry_after <= 60


def test_injected_5xx_is_a_retryable_server_error(sandbox: SandboxHandle, connect: Connect) -> None:
    tiktok = connect()
    sandbox.add_fault("creator_info", "error_502")
    with pytest.raises(ServerError) as failed:
        tiktok.creator_info()
    assert_kind(failed.value, "retryable", code="internal_error", http_status=502)
    assert tiktok.creator_info().creator_username == "studio_main"


def test_dropped_connection_is_a_retryable_transport_error(sandbox: SandboxHandle, connect: Connect) -> None:
    tiktok = connect()
    sandbox.add_fault("creator_info", "drop")
    with pytest.raises(TransportError) as dropped:
        tiktok.creator_info()
    assert_kind(dropped.value, "retryable")
    assert dropped.value.maybe_delivered
    assert tiktok.creator_info().creator_username == "studio_main"


def test_lost_init_answer_is_never_sent_again(sandbox: SandboxHandle, connect: Connect) -> None:
    tiktok = connect()
    sandbox.add_fault("video_init", "lost_answer")
    with pytest.raises(InitOutcomeUnknown) as unknown:
        tiktok.init_video(self_only(), SourceInfo.file_upload(SMALL_PLAN))
    assert_kind(unknown.value, "final")
    # TikTok applied the init: exactly one post exists, and the client did not create a second one.
    assert only_post(sandbox)["total_chunk_count"] == 1


def test_status_of_unknown_or_foreign_publish_id(sandbox: SandboxHandle, connect: Connect) -> None:
    owner, other = connect("studio_main"), connect("private_creator")
    publish_id = owner.init_video(self_only(), SourceInfo.file_upload(SMALL_PLAN)).publish_id
    with pytest.raises(InvalidPublishId) as unknown:
        owner.fetch_status(publish_id + "0")
    assert_kind(unknown.value, "final", code="invalid_publish_id", http_status=400)
    with pytest.raises(TokenNotAuthorizedForPublishId) as foreign:
        other.fetch_status(publish_id)
    assert_kind(foreign.value, "final", code="token_not_authorized_for_specified_publish_id", http_status=400)
    assert owner.fetch_status(publish_id).status == "PROCESSING_UPLOAD"


def test_file_upload_post_is_not_cancellable(sandbox: SandboxHandle, connect: Connect) -> None:
    tiktok = connect()
    publish_id = tiktok.init_video(self_only(), SourceInfo.file_upload(SMALL_PLAN)).publish_id
    with pytest.raises(PublishNotCancellable) as refused:
        tiktok.cancel(publish_id)
    assert_kind(refused.value, "final", code="publish_not_cancellable", http_status=400)
    assert only_post(sandbox)["cancelled_at"] is None
