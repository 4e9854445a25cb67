"""Scheduling, cap deferral, held drafts and the syndication entry point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

from prefect.utilities.callables import parameter_schema

from flows.drafts import publish_deferred_post, release_held_post
from publishing import PublishRequest, PublishResult
from flows.publish import publish_video
from flows.syndicate import publish_to_tiktok
from ledger import IllegalTransition, PostState, PublishMode
from tests.flows.helpers import artifact, flow_run_of, results, run_publish


@pytest.fixture
def publish_deployment(pipeline) -> str:
    """The publish-video deployment registered on the test server (no worker: runs stay scheduled)."""
    deployment_id = publish_video.to_deployment(name="publish-video").apply()
    return str(deployment_id)


@pytest.fixture
def deferred_deployment(pipeline) -> str:
    """The publish-deferred-post deployment (no worker: its runs stay scheduled)."""
    return str(publish_deferred_post.to_deployment(name="publish-deferred-post").apply())


def _flow_run(run_id: str):
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def _request(source: str, **overrides) -> PublishRequest:
    fields = {"accounts": ["main"], "caption": "scheduling test", "privacy_level": "SELF_ONLY"} | overrides
    return PublishRequest(source=source, **fields)


def test_schedule_at_creates_a_scheduled_run_and_sends_nothing_now(pipeline, media, publish_deployment) -> None:
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    when = datetime.now(UTC) + timedelta(hours=3)
    state, results = run_publish(_request(source, schedule_at=when))
    assert [r.state for r in results] == [PostState.queued] and results[0].pending
    assert state.is_completed() and state.message.startswith("1 account done — main: scheduled for ")
    run = _flow_run(results[0].flow_run_id)
    assert run.state.is_scheduled()
    assert abs((run.expected_start_time - when).total_seconds()) < 1
    assert run.parameters["request"]["source"] == source
    assert pipeline.sandbox.posts() == [] and pipeline.ledger().list_posts() == []

    # When the scheduled run comes, it posts.
    due = _request(source, schedule_at=datetime.now(UTC))
    assert publish_video(due)[0].state is PostState.published


def test_publish_video_takes_only_the_request() -> None:
    """What the Prefect UI form shows: no internal parameter next to the request."""
    assert set(parameter_schema(publish_video).model_dump()["properties"]) == {"request"}
    assert set(parameter_schema(publish_deferred_post).model_dump()["properties"]) == {"post_id"}


def test_daily_cap_defers_to_the_next_free_slot_and_the_deferred_run_posts(pipeline, media, deferred_deployment) -> None:
    book = pipeline.ledger()
    book.set_daily_caps("main", direct=1)
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    assert publish_video(_request(source, caption="first"))[0].state is PostState.published

    state, (deferred,) = run_publish(_request(source, caption="second", disable_comment=True))
    assert deferred.state is PostState.media_ready and deferred.pending and not deferred.ok
    assert state.is_completed() and "main: deferred to " in state.message and "(daily cap)" in state.message
    slot = book.caps_left("main").direct.next_slot_at
    assert deferred.scheduled_for == slot
    run = _flow_run(deferred.flow_run_id)
    assert run.state.is_scheduled() and abs((run.expected_start_time - slot).total_seconds()) < 1
    assert run.parameters == {"post_id": deferred.post_id}  # the post is all it needs: the request is stored with it
    assert [e.kind for e in book.post_events(deferred.post_id) if not e.kind.startswith("claim")][-1] == "deferred"
    assert len(pipeline.sandbox.posts()) == 1  # never sent to be refused

    # The scheduled run, when its time comes (the 24 h window has moved on: one more slot).
    book.set_daily_caps("main", direct=2)
    later_state = publish_deferred_post(run.parameters["post_id"], return_state=True)
    (later,) = [results(later_state)]
    assert later_state.is_completed() and later.state is PostState.published and later.post_id == deferred.post_id
    assert flow_run_of(later_state).name == f"deferred post {deferred.post_id}"
    assert artifact(later_state, "post-main").description.startswith("Studio Main: published")
    posts = pipeline.sandbox.posts()
    assert len(posts) == 2 and posts[1]["post_info"]["title"] == "second" and posts[1]["post_info"]["disable_comment"]


def test_cap_policy_fail_fails_at_once_and_the_same_request_can_run_again_later(pipeline, media, publish_deployment) -> None:
    book = pipeline.ledger()
    book.set_daily_caps("main", direct=0)
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    state, (result,) = run_publish(_request(source, cap_policy="fail"))
    assert result.state is PostState.failed and result.scheduled_for is None and state.is_failed()
    assert pipeline.sandbox.posts() == []

    book.set_daily_caps("main", direct=15)  # nothing reached TikTok: the same request may simply run again
    again = publish_video(_request(source, cap_policy="fail"))[0]
    assert again.state is PostState.published and again.post_id == result.post_id and not again.reused
    assert [e.kind for e in book.post_events(result.post_id)].count("retry") == 1


def test_held_draft_is_released_as_a_direct_post(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    held = publish_video(_request(source, mode="hold"))[0]
    assert held.state is PostState.media_ready and pipeline.sandbox.posts() == []

    released = release_held_post(held.post_id, PublishMode.direct)
    assert released.state is PostState.published and released.post_id == held.post_id
    assert len(pipeline.sandbox.posts()) == 1
    with pytest.raises(IllegalTransition):
        release_held_post(held.post_id, PublishMode.direct)  # already posted: never twice
    assert len(pipeline.sandbox.posts()) == 1


def test_a_release_the_creator_refuses_fails_the_run_and_can_be_released_again(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    held = publish_video(_request(source, accounts=["private"], mode="hold"))[0]

    refused_state = release_held_post(held.post_id, PublishMode.direct, "PUBLIC_TO_EVERYONE", return_state=True)
    refused = results(refused_state)
    assert refused_state.is_failed() and refused.state is PostState.failed and refused.post_id == held.post_id
    assert refused_state.message.startswith("1 of 1 account not posted — private: privacy PUBLIC_TO_EVERYONE")
    assert flow_run_of(refused_state).name == f"release post {held.post_id} → direct"
    assert pipeline.ledger().get_post(held.post_id).state is PostState.failed and pipeline.sandbox.posts() == []

    again = release_held_post(held.post_id, PublishMode.direct, "FOLLOWER_OF_CREATOR", return_state=True)
    assert again.is_completed() and results(again).state is PostState.published
    assert results(again).post_id == held.post_id and len(pipeline.sandbox.posts()) == 1


def test_subflow_entry_point_from_another_pipeline(pipeline, media) -> None:
    source = pipeline.upload(media.path("landscape"), "renders/episode-1.mp4")

    @flow(name="render-and-syndicate")
    def render_and_syndicate() -> list[PublishResult]:
        return publish_to_tiktok(source, ["main"], caption="Episode 1 #show", privacy_level="SELF_ONLY")

    published = render_and_syndicate()
    assert isinstance(published[0], PublishResult) and published[0].state is PostState.published
    assert len(pipeline.sandbox.posts()) == 1


def test_a_failed_subflow_still_hands_its_results_to_the_calling_flow(pipeline, media) -> None:
    source = pipeline.upload(media.path("landscape"), "renders/episode-2.mp4")

    @flow(name="render-and-syndicate")
    def render_and_syndicate() -> list[PublishResult]:
        return publish_to_tiktok(source, ["main", "private"], caption="Episode 2", privacy_level="PUBLIC_TO_EVERYONE")

    state = render_and_syndicate(return_state=True)
    assert state.is_completed()  # the caller decides what a partly failed publication means to it
    main, private = results(state)
    assert main.state is PostState.published and private.state is PostState.failed
    parent = FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[state.state_details.flow_run_id]))
    with get_client(sync_client=True) as client:
        (subflow,) = client.read_flow_runs(flow_run_filter=parent)
    assert subflow.name == "episode-2.mp4 → main, private"  # red in the UI, with the reason
    assert subflow.state.is_failed() and "private: privacy PUBLIC_TO_EVERYONE" in subflow.state.message


def test_render_example_chains_a_render_flow_into_publication(pipeline) -> None:
    from flows.examples.render_and_publish import render_and_publish

    results = render_and_publish(pipeline.bucket, "renders/episode 2.mp4", ["main"], caption="Episode 2")
    assert results[0].state is PostState.published
    posts = pipeline.sandbox.posts()
    assert len(posts) == 1 and posts[0]["post_info"]["title"] == "Episode 2"


def test_partner_bucket_example_keeps_the_source(pipeline, media) -> None:
    from flows.examples.publish_from_partner_bucket import publish_from_partner_bucket

    pipeline.s3.create_bucket(Bucket="partner-media")
    pipeline.s3.upload_file(str(media.path("compliant")), "partner-media", "exports/trailer.mp4")
    results = publish_from_partner_bucket("s3://partner-media/exports/trailer.mp4", ["main"])
    assert results[0].state is PostState.published and results[0].privacy_level == "PUBLIC_TO_EVERYONE"
    assert pipeline.sandbox.posts()[0]["post_info"]["brand_content_toggle"] is True
    assert pipeline.s3.list_objects_v2(Bucket="partner-media")["KeyCount"] == 1
