"""Review mode through the publish-video flow (Prefect's test server, in process): the run pauses
after ingest, creator checks and transcode, nothing reaches TikTok until the form is submitted, and the
choices made there are what is posted; an answer that cannot be posted is asked again, a declined or
expired review leaves the post held. The same through the real UI: tests/stack/test_review_ui.py."""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.flow_runs import resume_flow_run

from flows.publish import publish_video
from ledger import PostState, PublishMode
from publishing import PublishRequest
from publishing.review import KEPT_HELD_EVENT, REVIEWED_EVENT


def _request(source: str, **fields: Any) -> PublishRequest:
    return PublishRequest(**{"source": source, "accounts": ["main"], "caption": "for review", "review": True, **fields})


class PausedRun:
    """publish-video in a thread; the test answers its review through the Prefect API, as the UI does."""

    def __init__(self, request: PublishRequest) -> None:
        self.state: Any = None
        self.thread = threading.Thread(target=self._run, args=(request,), daemon=True)
        self.thread.start()

    def _run(self, request: PublishRequest) -> None:
        self.state = publish_video(request, return_state=True)

    def wait_paused(self, pause: int = 1, timeout: float = 180) -> UUID:
        """The run's id once it waits on review number `pause` (its form saved)."""
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
        from prefect.client.schemas.objects import StateType
        from prefect.client.schemas.sorting import FlowRunSort

        paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
        deadline = time.monotonic() + timeout
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                assert self.thread.is_alive() or self.state is not None
                # The test server is shared by the tests of this process: the newest paused run is this one.
                for run in client.read_flow_runs(flow_run_filter=paused, sort=FlowRunSort.START_TIME_DESC, limit=5):
                    if run.state and run.state.is_paused() and run.state.state_details.pause_key == f"review-{pause}":
                        keyset = run.state.state_details.run_input_keyset
                        try:
                            client.read_flow_run_input(key=keyset["schema"], flow_run_id=run.id)
                        except Exception:  # the form is saved right after the state
                            continue
                        return run.id
                time.sleep(0.5)
        raise AssertionError(f"the run did not pause for review {pause} within {timeout:.0f} s")

    def result(self, timeout: float = 180) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the run did not finish"
        return self.state


def _answer(**fields: Any) -> dict[str, Any]:
    return {"caption": "chosen in review #composer", "privacy_level": "MUTUAL_FOLLOW_FRIENDS", "allow_comment": True,
            "allow_duet": False, "allow_stitch": False, "disclose_commercial_content": True, "your_brand": True,
            "branded_content": False, "consent": True, **fields}


def test_nothing_is_sent_before_consent_and_the_choices_are_what_is_posted(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/review.mp4")
    run = PausedRun(_request(source))
    run_id = run.wait_paused()
    assert pipeline.sandbox.posts() == []  # paused: nothing sent to TikTok
    (waiting,) = pipeline.ledger().list_posts()
    assert (waiting.mode, waiting.state) == (PublishMode.hold, PostState.media_ready)
    with get_client(sync_client=True) as client:
        schema = json.loads(client.read_flow_run_input(key="paused-review-1-schema", flow_run_id=run_id))
        description = json.loads(client.read_flow_run_input(key="paused-review-1-description", flow_run_id=run_id))
    assert "Posting as **Studio Main** (@studio_main)" in description
    assert "data:image/jpeg;base64," in description  # the preview stills
    assert schema["properties"]["main"]["properties"]["privacy_level"]["enum"] == [
        "PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]

    resume_flow_run(run_id, run_input={"main": _answer()})
    state = run.result()
    assert state.is_completed(), state
    (result,) = state.result()
    assert result.state is PostState.published and result.privacy_level == "MUTUAL_FOLLOW_FRIENDS"
    (posted,) = pipeline.sandbox.posts()
    info = posted["post_info"]
    assert info["title"] == "chosen in review #composer" and info["privacy_level"] == "MUTUAL_FOLLOW_FRIENDS"
    assert (info["disable_comment"], info["disable_duet"], info["disable_stitch"]) == (False, True, True)
    assert (info["brand_organic_toggle"], info["brand_content_toggle"]) == (True, False)
    post = pipeline.ledger().get_post(result.post_id)
    assert (post.mode, post.caption) == (PublishMode.direct, "chosen in review #composer")
    (reviewed,) = [e for e in pipeline.ledger().post_events(post.id) if e.kind == REVIEWED_EVENT]
    assert reviewed.data["answer"]["your_brand"] is True and reviewed.data["flow_run_id"] == str(run_id)
    assert 'labeled "Promotional content"' in reviewed.message
    # The same request again: the reviewed post is found, nothing is asked or sent again.
    again = publish_video(_request(source), return_state=True)
    (same,) = again.result()
    assert same.post_id == post.id and same.reused and len(pipeline.sandbox.posts()) == 1


def test_an_answer_that_cannot_be_posted_is_asked_again_saying_why(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/review-again.mp4")
    run = PausedRun(_request(source))
    first = run.wait_paused(1)
    resume_flow_run(first, run_input={"main": _answer(branded_content=True, your_brand=False, privacy_level="SELF_ONLY")})
    second = run.wait_paused(2)
    assert second == first
    with get_client(sync_client=True) as client:
        description = json.loads(client.read_flow_run_input(key="paused-review-2-description", flow_run_id=second))
    assert description.startswith("**The last answer could not be posted: Studio Main (@studio_main): branded content "
                                  "cannot be private")
    assert pipeline.sandbox.posts() == []
    resume_flow_run(second, run_input={"main": _answer(branded_content=True, your_brand=False,
                                                       privacy_level="PUBLIC_TO_EVERYONE")})
    (result,) = run.result().result()
    assert result.state is PostState.published
    assert pipeline.sandbox.posts()[0]["post_info"]["brand_content_toggle"] is True


def test_a_declined_review_leaves_the_post_held_and_its_release_asks_again(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/review-declined.mp4")
    run = PausedRun(_request(source))
    resume_flow_run(run.wait_paused(), run_input={"main": _answer(consent=False)})
    state = run.result()
    assert state.is_completed(), state  # held is done, and says why
    (result,) = state.result()
    assert result.held and "the review kept it held (no consent)" in result.error_message
    assert f"posts release {result.post_id}" in state.message
    assert pipeline.sandbox.posts() == []
    kinds = [e.kind for e in pipeline.ledger().post_events(result.post_id)]
    assert kinds[-1] == KEPT_HELD_EVENT


@pytest.mark.timeout(300)
def test_an_expired_review_leaves_the_post_held(pipeline, media, monkeypatch) -> None:
    monkeypatch.setenv("TIKTOK_PIPELINE_REVIEW_TIMEOUT", "30")
    source = pipeline.upload(media.path("compliant"), "in/review-expired.mp4")
    state = publish_video(_request(source), return_state=True)
    assert state.is_completed(), state
    (result,) = state.result()
    assert result.held and "no review within 30 s" in result.error_message
    assert pipeline.sandbox.posts() == []
