"""Photo posts through the publish-photos flow, against the sandbox (which pulls every photo from
the verified prefix and checks it as TikTok does) and a moto S3 server behind that prefix: each photo
prepared and staged once, one content/init per account, the post settled by status polling. Without
a verified prefix the request is refused before anything is fetched, and an init whose answer was
lost is never asked again."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from PIL import Image

from flows.photo_posts import publish_photos
from ledger import PostState
from publishing import PhotoPostRequest
from publishing.posting import PULL_INIT_LOST
from tests.photos.helpers import exif_with, marked, save


def _staged(pipeline) -> list[dict]:
    return pipeline.s3.list_objects_v2(Bucket=pipeline.bucket, Prefix="tiktok-pull/").get("Contents", [])


@pytest.fixture
def carousel(pipeline, tmp_path: Path) -> list[str]:
    """Three photos as users have them: a camera JPEG lying on its side (EXIF orientation 6) in S3, a
    transparent PNG on the worker's disk and a WebP behind S3."""
    camera = save(marked((3000, 2000), 200), tmp_path / "camera.jpg", "JPEG", exif=exif_with(orientation=6), quality=92)
    drawing = Image.new("RGBA", (1600, 1600), (255, 0, 0, 128))
    png = save(drawing, tmp_path / "drawing.png", "PNG")
    webp = save(marked((1200, 800), 80), tmp_path / "banner.webp", "WEBP")
    return [pipeline.upload(camera, "in/camera.jpg"), str(png), pipeline.upload(webp, "in/banner.webp")]


def test_a_carousel_is_staged_once_and_posted_to_every_account(pipeline, verified_prefix, carousel) -> None:
    request = PhotoPostRequest(images=carousel, accounts=["main", "private"], title="Three", description="#photos of a day",
                               privacy_level="SELF_ONLY", photo_cover_index=1, auto_add_music=True)
    state = publish_photos(request, return_state=True)
    assert state.is_completed(), state.message
    results = state.result()
    assert [r.state for r in results] == [PostState.published, PostState.published]
    staged = _staged(pipeline)
    assert len(staged) == 3  # once, for both accounts
    posts = pipeline.sandbox.posts()
    assert [p["media_type"] for p in posts] == ["PHOTO", "PHOTO"] and [p["mode"] for p in posts] == ["direct", "direct"]
    (urls,) = {tuple(p["media_urls"]) for p in posts}
    assert sorted(urls) == sorted(verified_prefix + o["Key"].removeprefix("tiktok-pull/") for o in staged)
    assert all(p["photo_cover_index"] == 1 and p["post_info"]["title"] == "Three"
               and p["post_info"]["description"] == "#photos of a day" and p["post_info"]["auto_add_music"] is True
               for p in posts)
    assert all(p["check"]["fail_reason"] is None for p in posts)  # each photo passed TikTok's checks
    # The camera JPEG arrived upright, within 1080 px, without its EXIF.
    first = pipeline.s3.get_object(Bucket=pipeline.bucket, Key=staged_key(pipeline, urls[0], verified_prefix))["Body"]
    with Image.open(first) as im:
        assert im.size == (720, 1080) and im.format == "JPEG" and not im.getexif()
    trail = [e.message for e in pipeline.ledger().post_events(results[0].post_id)]
    assert any((m or "").startswith("TikTok pulls the 3 photo(s) from ") for m in trail), trail
    # The same request again: the posts are found by their keys, nothing is sent or staged again.
    again = publish_photos(request, return_state=True)
    assert again.is_completed() and all(r.reused for r in again.result())
    assert len(pipeline.sandbox.posts()) == 2 and len(_staged(pipeline)) == 3


def staged_key(pipeline, url: str, prefix: str) -> str:
    return "tiktok-pull/" + url.removeprefix(prefix)


def test_an_inbox_photo_post_lands_in_the_creators_inbox(pipeline, verified_prefix, carousel) -> None:
    state = publish_photos(PhotoPostRequest(images=carousel[:1], accounts=["main"], title="draft", mode="inbox"),
                           return_state=True)
    assert state.is_completed(), state.message
    (result,) = state.result()
    assert result.state is PostState.sent_to_inbox
    (post,) = pipeline.sandbox.posts()
    assert post["mode"] == "inbox" and post["media_type"] == "PHOTO" and post["privacy_level"] is None


def test_without_a_verified_prefix_a_photo_post_is_refused_in_one_line(pipeline, carousel) -> None:
    state = publish_photos(PhotoPostRequest(images=carousel, accounts=["main"], privacy_level="SELF_ONLY"),
                           return_state=True)
    assert state.is_failed()
    (result,) = state.result(raise_on_failure=False)
    assert result.error_code == "PullPrefixMissing" and "TIKTOK_PIPELINE_PULL_URL_PREFIXES" in result.error_message
    assert "\n" not in result.error_message
    assert pipeline.sandbox.posts() == [] and pipeline.ledger().list_posts() == []


def test_a_lost_photo_init_answer_is_never_asked_again(pipeline, verified_prefix, carousel) -> None:
    pipeline.sandbox.add_fault("content_init", "lost_answer", times=1)
    request = PhotoPostRequest(images=carousel[:2], accounts=["main"], title="lost", privacy_level="SELF_ONLY")
    state = publish_photos(request, return_state=True)
    assert state.is_failed()
    (result,) = state.result(raise_on_failure=False)
    assert result.state is PostState.unconfirmed and f"posts resolve {result.post_id}" in result.error_message
    # TikTok's webhook for the publish_id nobody heard of is adopted by this post (as for a pulled video).
    assert result.error_message.startswith(PULL_INIT_LOST)
    assert len(pipeline.sandbox.posts()) == 1  # TikTok has it: one init, never a second
    (attempt,) = pipeline.ledger().init_attempts(result.post_id)
    assert attempt.outcome.value == "lost"
    (same,) = publish_photos(request, return_state=True).result(raise_on_failure=False)
    assert same.post_id == result.post_id and same.state is PostState.unconfirmed
    assert len(pipeline.sandbox.posts()) == 1


def test_a_photo_that_is_no_image_fails_the_post_naming_it(pipeline, verified_prefix, carousel, tmp_path) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a picture")
    state = publish_photos(PhotoPostRequest(images=[carousel[0], str(notes)], accounts=["main"],
                                            privacy_level="SELF_ONLY"), return_state=True)
    assert state.is_failed()
    (result,) = state.result(raise_on_failure=False)
    assert result.error_code == "PhotoUnreadable" and result.error_message.startswith(f"photo 2 of 2 ({notes}): ")
    post = pipeline.ledger().get_post(result.post_id)  # in the history, with the reason
    assert post.state is PostState.failed and pipeline.sandbox.posts() == [] and _staged(pipeline) == []


def test_a_creator_without_the_privacy_chosen_is_refused_and_the_other_posts(pipeline, verified_prefix, carousel) -> None:
    state = publish_photos(PhotoPostRequest(images=carousel[:1], accounts=["main", "private"],
                                            privacy_level="PUBLIC_TO_EVERYONE"), return_state=True)
    assert state.is_failed()
    main, private = state.result(raise_on_failure=False)
    assert main.state is PostState.published
    assert private.state is PostState.failed and private.error_code == "PrivacyNotAllowed" and private.post_id
    assert len(pipeline.sandbox.posts()) == 1


# --- the command line (Typer's CliRunner, in-process) ---------------------------------------------

#: README "Photo posts" shows this command as it is run here, in a directory holding the photos.
README_COMMAND = "tiktok-pipeline photos post day-1.jpg day-2.png day-3.webp --account main --title Saturday --description '#weekend' --privacy SELF_ONLY --cover-index 2"  # noqa: E501


@pytest.fixture
def photo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "shoot"
    where.mkdir()
    save(marked((4032, 3024), 300), where / "day-1.jpg", "JPEG", exif=exif_with(orientation=8))
    save(Image.new("RGBA", (800, 1200), (0, 0, 255, 90)), where / "day-2.png", "PNG")
    save(marked((1080, 1080), 50), where / "day-3.webp", "WEBP")
    monkeypatch.chdir(where)
    return where


def _cli(args: list[str]):
    from typer.testing import CliRunner

    from deployments.cli import build_app

    return CliRunner().invoke(build_app(), args)


def test_the_readme_command_posts_the_photos(pipeline, verified_prefix, photo_dir) -> None:
    result = _cli(shlex.split(README_COMMAND)[1:])
    assert result.exit_code == 0, result.output
    assert "Music Usage Confirmation" in result.output and "published" in result.output
    (post,) = pipeline.sandbox.posts()
    assert post["media_type"] == "PHOTO" and len(post["media_urls"]) == 3 and post["photo_cover_index"] == 2
    assert post["post_info"]["title"] == "Saturday" and post["post_info"]["description"] == "#weekend"
    (recorded,) = pipeline.ledger().list_posts()
    shown = _cli(["posts", "show", str(recorded.id)])
    assert shown.exit_code == 0, shown.output
    assert "day-1.jpg (+2 more)" in shown.output and "TikTok pulls the 3 photo(s)" in shown.output


def test_the_command_refuses_photos_without_a_verified_prefix_in_one_line(pipeline, photo_dir) -> None:
    result = _cli(shlex.split(README_COMMAND)[1:])
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "a photo post needs a URL prefix verified for the app" in line and "TIKTOK_PIPELINE_PULL_URL_PREFIXES" in line
    assert pipeline.ledger().list_posts() == [] and pipeline.sandbox.posts() == []


def test_the_command_names_a_photo_that_is_not_there(pipeline, verified_prefix, photo_dir) -> None:
    result = _cli(["photos", "post", "day-1.jpg", "missing.jpg", "-a", "main", "-a", "nobody", "--privacy", "SELF_ONLY"])
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "photo 2 of 2" in line and "missing.jpg" in line and "tiktok-pipeline accounts connect nobody" in line
    assert pipeline.ledger().list_posts() == [] and pipeline.sandbox.posts() == []
