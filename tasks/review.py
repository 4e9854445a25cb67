"""Review mode in Prefect: the posts wait as hold drafts, the preview becomes image artifacts, and the
flow run pauses with TikTok's composer as the form of Prefect's Resume button
(`pause_flow_run(wait_for_input=...)`). The form, the rules of an answer and what is recorded are
the service layer's: publishing/review.py.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_image_artifact
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.logging import get_run_logger
from prefect.states import Running
from pydantic import ValidationError, create_model

from ledger import Post
from publishing import PublishRequest, review
from publishing.posting import CreatorCheck, PreparedMedia
from publishing.review import ReviewTicket
from publishing.sources import FetchedSource
from tasks import runtime
from tasks.policy import STEP_OPTIONS, retry_options
from transcode import make_preview

#: How often the paused run asks the server whether the form was submitted.
PAUSE_POLL_SECONDS = 5
#: Answers refused (ReviewInvalid) before the posts stay held.
MAX_ANSWERS = 5


@task(name="open-for-review", task_run_name="open-for-review-{check.account}", **retry_options())
def open_for_review(request: PublishRequest, check: CreatorCheck, source: FetchedSource,
                    post_key: str | None = None) -> ReviewTicket:
    """Record the account's post as a hold draft waiting for its review (or find the review it had)."""
    return review.open_for_review(runtime.services(), request, check, source, post_key)


def _data_url(path: Path) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


@task(name="preview-media", **STEP_OPTIONS)
def preview_media(media: PreparedMedia, work_dir: str, cover_timestamp_ms: int | None = None) -> dict[str, str]:
    """The poster frame and the contact sheet of the prepared video, as image artifacts; their URLs
    (data: URLs: the browser shows them without access to the worker's files)."""
    preview = make_preview(Path(media.path), media.duration, Path(work_dir) / "preview",
                           cover_timestamp_ms=cover_timestamp_ms)
    images = {"poster": _data_url(preview.poster), "contact_sheet": _data_url(preview.contact_sheet)}
    create_image_artifact(images["poster"], key="review-poster-frame",
                          description=f"Poster frame at {preview.poster_at:.1f} s of the video to post")
    create_image_artifact(images["contact_sheet"], key="review-contact-sheet",
                          description="Contact sheet: " + ", ".join(f"{t:.1f} s" for t in preview.sheet_at))
    return images


def review_input(checks: Sequence[CreatorCheck], request: PublishRequest, description: str) -> type[RunInput]:
    """The RunInput of the pause: one form per account, inlined so Prefect's UI titles each."""
    model = create_model("TikTokReview", __base__=RunInput, **review.review_fields(checks, request))
    return model.with_initial_data(description=description)


def _running_again() -> None:
    """After a pause that timed out the run is still Paused on the server: Running again, so its
    remaining tasks (recording the held posts, the report) can run."""
    context = FlowRunContext.get()
    if context is None:
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(context.flow_run.id, Running(message="review expired: the posts stay held"),
                                  force=True)


def ask_for_review(checks: Sequence[CreatorCheck], request: PublishRequest, media: PreparedMedia | None,
                   images: Mapping[str, str], timeout: int) -> dict[str, tuple[PublishRequest | None, dict[str, Any]]] | None:
    """Pause the flow run until a person submits the form; per account (the reviewed request, or None
    to keep it held; the answer as given). None when nobody answered within `timeout` seconds. An
    answer that cannot be posted is refused and the form asked again, saying why."""
    logger = get_run_logger()
    problem: str | None = None
    for attempt in range(1, MAX_ANSWERS + 1):
        form = review_input(checks, request, review.review_description(checks, request, media, images, problem))
        logger.info("waiting for a review of %s in the Prefect UI (Resume), at most %d s",
                    ", ".join(c.account for c in checks), timeout)
        try:
            answer = pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=PAUSE_POLL_SECONDS,
                                    key=f"review-{attempt}")
        except FlowPauseTimeout:
            _running_again()
            return None
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            logger.warning("the review's answer was refused, asking again: %s", problem)
            continue
        answers = {check.account: getattr(answer, check.account).model_dump(mode="json") for check in checks}
        try:
            return {check.account: (review.reviewed_request(request, check, answers[check.account]),
                                    answers[check.account]) for check in checks}
        except review.ReviewInvalid as exc:
            problem = str(exc)
            logger.warning("the review's answer cannot be posted, asking again: %s", problem)
    logger.error("%d answers could not be posted: the posts stay held", MAX_ANSWERS)
    return None


@task(name="record-review", task_run_name="record-review-{ticket.account}", **retry_options())
def record_review(ticket: ReviewTicket, request: PublishRequest | None, answer: dict[str, Any]) -> Post:
    """The reviewer's choices in the post's audit trail; released for posting, or kept held."""
    context = FlowRunContext.get()
    run_id = str(context.flow_run.id) if context is not None else None
    return review.record_review(runtime.services(), ticket, request, answer, flow_run_id=run_id)


@task(name="keep-held", task_run_name="keep-held-{ticket.account}", **retry_options())
def keep_held(ticket: ReviewTicket, why: str) -> Post:
    return review.kept_held(runtime.services(), ticket, why)
