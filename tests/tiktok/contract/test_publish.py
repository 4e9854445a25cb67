"""From init to a final status through the client's poller: direct posts, inbox drafts, URL pulls, photos."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox import SandboxHandle
from tiktok import (
    PhotoPostInfo,
    PhotoSourceInfo,
    PollPolicy,
    PostInfo,
    PostMode,
    PrivacyLevel,
    PublishCancelled,
    PublishMediaPullFailed,
    PublishMediaRejected,
    PublishStatus,
    PublishStatusValue,
    PublishStillProcessing,
    ServerError,
    SourceInfo,
    TikTokClient,
    UploadRetryPolicy,
    plan_chunks,
)
from tiktok_pipeline.settings import Settings

from .conftest import FakeTime, HttpsHost
from .helpers import assert_kind, config, only_post

Connect = Callable[..., TikTokClient]


def post_file(tiktok: TikTokClient, file: Path, privacy: PrivacyLevel = PrivacyLevel.PUBLIC_TO_EVERYONE) -> str:
    """Direct post: init + upload; the publish_id."""
    plan = plan_chunks(file.stat().st_size, 16 * 1024 * 1024)
    init = tiktok.init_video(PostInfo(title="contract #test", privacy_level=privacy), SourceInfo.file_upload(plan))
    tiktok.upload_video(file, init.upload_url or "", plan)
    return init.publish_id


def test_valid_clip_reaches_publish_complete_before_its_public_id(
    sandbox: SandboxHandle, connect: Connect, clips: dict[str, Path]
) -> None:
    tiktok = connect()
    publish_id = post_file(tiktok, clips["valid"])
    status = tiktok.wait_for_publish(publish_id)
    assert status.status == PublishStatusValue.PUBLISH_COMPLETE
    assert status.publicaly_available_post_id == []  # moderation is still running: complete all the same
    assert status.uploaded_bytes == clips["valid"].stat().st_size

    sandbox.advance_clock(sandbox.config.moderation_delay)
    moderated = tiktok.fetch_status(publish_id)
    assert moderated.status == PublishStatusValue.PUBLISH_COMPLETE
    assert len(moderated.publicaly_available_post_id) == 1 and moderated.publicaly_available_post_id[0] > 0
    post = only_post(sandbox)
    assert post["publicaly_available_post_id"] == moderated.publicaly_available_post_id
    assert (post["check"]["codec"], post["check"]["width"], post["check"]["height"]) == ("h264", 640, 360)


def test_poller_waits_out_processing_on_the_sandbox_clock(
    sandbox: SandboxHandle, connect: Connect, clips: dict[str, Path], fake_time: FakeTime
) -> None:
    sandbox.reset(config(processing_delay=20))
    tiktok = connect()
    publish_id = post_file(tiktok, clips["valid"], PrivacyLevel.SELF_ONLY)
    seen: list[PublishStatus] = []
    final = tiktok.wait_for_publish(publish_id, on_status=seen.append)

    assert final.status == PublishStatusValue.PUBLISH_COMPLETE
    assert final.publicaly_available_post_id == []  # SELF_ONLY posts never get one
    assert [s.status for s in seen[:-1]] == [PublishStatusValue.PROCESSING_UPLOAD] * (len(seen) - 1)
    assert len(seen) >= 2 and seen[0].uploaded_bytes == clips["valid"].stat().st_size
    assert len(fake_time.sleeps) == len(seen) - 1 and sum(fake_time.sleeps) >= 20
    only_post(sandbox)


def test_poller_gives_up_on_an_unfinished_upload_with_a_retryable_error(
    sandbox: SandboxHandle, connect: Connect, settings_for: Callable[..., Settings], blob: Callable[[int], Path],
    fake_time: FakeTime,
) -> None:
    chunk = 5 * 1024 * 1024
    file = blob(3 * chunk)
    tiktok = connect(settings=settings_for(chunk_size=chunk))
    plan = plan_chunks(file.stat().st_size, chunk)
    init = tiktok.init_video(PostInfo(privacy_level=PrivacyLevel.SELF_ONLY), SourceInfo.file_upload(plan))

    def stop_after_first_chunk(done: int, total: int) -> None:
        if done == chunk:
            sandbox.add_fault("upload", "error_500")

    with pytest.raises(ServerError):
        tiktok.upload_video(file, init.upload_url or "", plan, on_progress=stop_after_first_chunk,
                            retry=UploadRetryPolicy(max_retries_per_chunk=0))
    with pytest.raises(PublishStillProcessing) as waiting:
        tiktok.wait_for_publish(init.publish_id, poll=PollPolicy(timeout=60))
    assert_kind(waiting.value, "retryable")
    assert waiting.value.status.status == PublishStatusValue.PROCESSING_UPLOAD
    assert waiting.value.status.uploaded_bytes == chunk
    assert sum(fake_time.sleeps) <= 60
    assert only_post(sandbox)["received_bytes"] == chunk


def test_15_fps_clip_fails_with_its_reason(sandbox: SandboxHandle, connect: Connect, clips: dict[str, Path]) -> None:
    tiktok = connect()
    publish_id = post_file(tiktok, clips["fps15"])
    with pytest.raises(PublishMediaRejected) as failed:
        tiktok.wait_for_publish(publish_id)
    assert_kind(failed.value, "final", code="frame_rate_check_failed")
    assert failed.value.fail_reason == "frame_rate_check_failed"
    assert failed.value.status.status == PublishStatusValue.FAILED
    post = only_post(sandbox)
    assert (post["status"], post["check"]["fps"]) == ("FAILED", 15.0)


def test_inbox_draft_waits_for_the_user_then_publishes(
    sandbox: SandboxHandle, connect: Connect, clips: dict[str, Path]
) -> None:
    tiktok = connect()
    file = clips["valid"]
    plan = plan_chunks(file.stat().st_size, 16 * 1024 * 1024)
    init = tiktok.init_inbox_video(SourceInfo.file_upload(plan))
    tiktok.upload_video(file, init.upload_url or "", plan)

    assert tiktok.wait_for_publish(init.publish_id).status == PublishStatusValue.SEND_TO_USER_INBOX
    sandbox.publish_from_inbox(init.publish_id, "MUTUAL_FOLLOW_FRIENDS")
    assert tiktok.fetch_status(init.publish_id).status == PublishStatusValue.PUBLISH_COMPLETE
    post = only_post(sandbox)
    assert (post["mode"], post["privacy_level"]) == ("inbox", "MUTUAL_FOLLOW_FRIENDS")
    assert post["user_published_at"] is not None


@pytest.mark.parametrize(
    ("mode", "privacy", "final_status"),
    [
        (PostMode.DIRECT_POST, PrivacyLevel.PUBLIC_TO_EVERYONE, PublishStatusValue.PUBLISH_COMPLETE),
        (PostMode.MEDIA_UPLOAD, None, PublishStatusValue.SEND_TO_USER_INBOX),
    ],
)
def test_photo_post_pulled_from_a_verified_prefix(
    sandbox: SandboxHandle,
    connect: Connect,
    clips: dict[str, Path],
    trusted_https_host: HttpsHost,
    mode: PostMode,
    privacy: PrivacyLevel | None,
    final_status: PublishStatusValue,
) -> None:
    sandbox.reset(config(verified_url_prefixes=[trusted_https_host.base_url + "/"]))
    tiktok = connect()
    photos = [clips["photo_portrait"], clips["photo_square"]]
    init = tiktok.init_photo_post(
        mode,
        PhotoPostInfo(title="contract photos", description="two test cards", privacy_level=privacy),
        PhotoSourceInfo(photo_images=[trusted_https_host.url(photo) for photo in photos], photo_cover_index=1),
    )
    assert init.upload_url is None

    status = tiktok.wait_for_publish(init.publish_id)
    assert status.status == final_status
    assert status.downloaded_bytes == sum(photo.stat().st_size for photo in photos)
    post = only_post(sandbox)
    assert (post["media_type"], post["mode"]) == ("PHOTO", "direct" if mode is PostMode.DIRECT_POST else "inbox")
    assert post["media_urls"] == [trusted_https_host.url(photo) for photo in photos]


def test_video_pulled_from_a_verified_prefix(
    sandbox: SandboxHandle, connect: Connect, clips: dict[str, Path], trusted_https_host: HttpsHost
) -> None:
    sandbox.reset(config(verified_url_prefixes=[trusted_https_host.base_url]))
    tiktok = connect()
    init = tiktok.init_video(
        PostInfo(privacy_level=PrivacyLevel.SELF_ONLY), SourceInfo.pull_from_url(trusted_https_host.url(clips["valid"]))
    )
    status = tiktok.wait_for_publish(init.publish_id)
    assert status.status == PublishStatusValue.PUBLISH_COMPLETE
    assert status.downloaded_bytes == clips["valid"].stat().st_size
    assert only_post(sandbox)["source"] == "PULL_FROM_URL"


def test_video_pull_of_a_missing_file_fails(
    sandbox: SandboxHandle, connect: Connect, trusted_https_host: HttpsHost
) -> None:
    sandbox.reset(config(verified_url_prefixes=[trusted_https_host.base_url]))
    tiktok = connect()
    init = tiktok.init_video(
        PostInfo(privacy_level=PrivacyLevel.SELF_ONLY),
        SourceInfo.pull_from_url(f"{trusted_https_host.base_url}/no-such-clip.mp4"),
    )
    with pytest.raises(PublishMediaPullFailed) as failed:
        tiktok.wait_for_publish(init.publish_id)
    assert_kind(failed.value, "final", code="video_pull_failed")
    only_post(sandbox)


def test_cancelled_pull_ends_failed_publish_cancelled(
    sandbox: SandboxHandle, connect: Connect, clips: dict[str, Path], trusted_https_host: HttpsHost
) -> None:
    sandbox.reset(config(verified_url_prefixes=[trusted_https_host.base_url]))
    tiktok = connect()
    init = tiktok.init_video(
        PostInfo(privacy_level=PrivacyLevel.SELF_ONLY), SourceInfo.pull_from_url(trusted_https_host.url(clips["valid"]))
    )
    tiktok.cancel(init.publish_id)
    with pytest.raises(PublishCancelled) as cancelled:
        tiktok.wait_for_publish(init.publish_id)
    assert_kind(cancelled.value, "final", code="publish_cancelled")
    assert only_post(sandbox)["cancelled_at"] is not None
