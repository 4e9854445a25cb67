"""PULL_FROM_URL through the publish-video flow: with a verified URL prefix served from S3 (moto over
real HTTP), the prepared video is written there once and every account's post is pulled by TikTok
(the sandbox fetches the URL): a fan-out sends the bytes once. An init whose answer is lost is never
asked again: it may already be a post."""

from __future__ import annotations



from flows.publish import publish_video
from ledger import PostState
from publishing import PublishRequest


def _staged_objects(pipeline) -> list[dict]:
    return pipeline.s3.list_objects_v2(Bucket=pipeline.bucket, Prefix="tiktok-pull/").get("Contents", [])


def test_a_fan_out_sends_the_video_once_and_every_account_pulls_it(pipeline, media, verified_prefix) -> None:
    source = pipeline.upload(media.path("compliant"), "in/fan-out.mp4")
    request = PublishRequest(source=source, accounts=["main", "private"], caption="pulled", privacy_level="SELF_ONLY")
    state = publish_video(request, return_state=True)
    assert state.is_completed(), state.message
    results = state.result()
    assert [r.state for r in results] == [PostState.published, PostState.published]
    (staged,) = _staged_objects(pipeline)
    posts = pipeline.sandbox.posts()
    assert [p["source"] for p in posts] == ["PULL_FROM_URL", "PULL_FROM_URL"]
    (url,) = {p["media_urls"][0] for p in posts}
    assert url == verified_prefix + staged["Key"].removeprefix("tiktok-pull/")
    assert all(p["received_bytes"] in (0, None) and p["downloaded_bytes"] == staged["Size"] for p in posts)
    trail = [e.message for e in pipeline.ledger().post_events(results[0].post_id)]
    assert f"TikTok pulls the video from {url}" in trail
    # The same bytes again (another request with another caption): found at their URL, not sent again.
    again = publish_video(request.model_copy(update={"caption": "pulled again", "accounts": ["main"]}),
                          return_state=True)
    assert again.is_completed() and len(_staged_objects(pipeline)) == 1
    assert pipeline.sandbox.posts()[-1]["media_urls"] == [url]


def test_a_lost_pull_init_answer_is_never_asked_again(pipeline, media, verified_prefix) -> None:
    pipeline.sandbox.add_fault("video_init", "lost_answer", times=1)
    source = pipeline.upload(media.path("compliant"), "in/lost-pull.mp4")
    state = publish_video(PublishRequest(source=source, accounts=["main"], caption="lost pull", privacy_level="SELF_ONLY"),
                          return_state=True)
    assert state.is_failed()  # not posted as far as we know: the run says so, naming what to do
    (result,) = state.result(raise_on_failure=False)
    assert result.state is PostState.unconfirmed and f"posts resolve {result.post_id}" in result.error_message
    assert len(pipeline.sandbox.posts()) == 1  # TikTok has it (and pulls it): one init, never a second
    attempts = pipeline.ledger().init_attempts(result.post_id)
    assert len(attempts) == 1 and attempts[0].outcome.value == "lost"
    # Running the request again sends nothing either.
    rerun = publish_video(PublishRequest(source=source, accounts=["main"], caption="lost pull", privacy_level="SELF_ONLY"),
                          return_state=True)
    (same,) = rerun.result(raise_on_failure=False)
    assert same.post_id == result.post_id and len(pipeline.sandbox.posts()) == 1


def test_tiktoks_webhook_settles_a_pull_post_whose_init_answer_was_lost(pipeline, media, verified_prefix) -> None:
    """The webhook names a publish_id the ledger never heard of: the creator's one unconfirmed post
    whose PULL_FROM_URL init went unanswered adopts it, and is published by the event."""
    from tasks import runtime
    from tests.publishing.test_tiktok_events import running_receiver, wait_for

    with running_receiver(runtime.services()) as url:
        pipeline.sandbox.set_webhook_url(url)
        try:
            pipeline.sandbox.add_fault("video_init", "lost_answer", times=1)
            source = pipeline.upload(media.path("compliant"), "in/adopted.mp4")
            state = publish_video(PublishRequest(source=source, accounts=["main"], caption="adopted",
                                                 privacy_level="SELF_ONLY"), return_state=True)
            (result,) = state.result(raise_on_failure=False)
            assert result.state is PostState.unconfirmed
            (posted,) = pipeline.sandbox.posts()
            book = pipeline.ledger()
            post = wait_for("published by the webhook", lambda: (p := book.get_post(result.post_id)).state
                            is PostState.published and p)
        finally:
            pipeline.sandbox.set_webhook_url(None)
    assert post.publish_id == posted["publish_id"]
    kinds = [e.kind for e in book.post_events(post.id)]
    assert "publish_id_adopted" in kinds
    (attempt,) = book.init_attempts(post.id)
    assert (attempt.outcome.value, attempt.publish_id) == ("answered", posted["publish_id"])


def test_with_pull_videos_off_a_video_is_uploaded_though_a_prefix_is_verified(pipeline, media, verified_prefix,
                                                                              monkeypatch) -> None:
    """TIKTOK_PIPELINE_PULL_VIDEOS=false: the prefix serves photo posts only (what `make up` configures)."""
    monkeypatch.setenv("TIKTOK_PIPELINE_PULL_VIDEOS", "false")
    source = pipeline.upload(media.path("compliant"), "in/uploaded.mp4")
    state = publish_video(PublishRequest(source=source, accounts=["main"], caption="uploaded", privacy_level="SELF_ONLY"),
                          return_state=True)
    assert state.is_completed(), state.message
    (post,) = pipeline.sandbox.posts()
    assert post["source"] == "FILE_UPLOAD" and post["received_bytes"] > 0 and _staged_objects(pipeline) == []


def test_a_fan_out_to_ten_accounts_sends_the_video_once(pipeline, media, verified_prefix) -> None:
    """Issue 13's measure of PULL_FROM_URL, proven here as bench/fanout.py measures it: ten accounts, the
    video written once under the prefix, nothing uploaded to TikTok, each account's post pulled."""
    import httpx

    from publishing.connect import connect_account
    from sandbox import SandboxCreator
    from tasks import runtime

    users = [f"fan{n}" for n in range(10)]
    creators = [*pipeline.sandbox.config.creators,
                *(SandboxCreator(open_id=f"sbx-open-id-{u}", username=u, nickname=u.capitalize()) for u in users)]
    pipeline.reset_sandbox({"verified_url_prefixes": [verified_prefix], "creators": creators})
    settings = runtime.settings()
    for user in users:
        connect_account(settings, runtime.ledger(settings), user,
                        lambda url: httpx.get(url, follow_redirects=True, timeout=30), extra_params={"sandbox_user": user})
    source = pipeline.upload(media.path("compliant"), "in/fan-out-10.mp4")
    state = publish_video(PublishRequest(source=source, accounts=users, caption="to ten", privacy_level="SELF_ONLY"),
                          return_state=True)
    assert state.is_completed(), state.message
    assert [r.state for r in state.result()] == [PostState.published] * 10
    (staged,) = _staged_objects(pipeline)  # the bytes, sent once by the worker
    posts = pipeline.sandbox.posts()
    assert len(posts) == 10 and {p["username"] for p in posts} == set(users)
    assert all(p["source"] == "PULL_FROM_URL" and not p["received_bytes"] and p["downloaded_bytes"] == staged["Size"]
               for p in posts)
