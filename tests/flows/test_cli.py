"""`tiktok-pipeline publish` and `accounts list` as a user runs them (Typer's CliRunner, in-process)."""

from __future__ import annotations

from typer.testing import CliRunner

from tiktok_pipeline.cli import _register, app

_register()
runner = CliRunner()


def test_publish_prints_one_row_per_account_and_exits_zero(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/cli.mp4")
    result = runner.invoke(app, ["publish", source, "--account", "main", "--account", "private",
                                 "--caption", "from the CLI", "--privacy", "SELF_ONLY", "--disable-comment"])
    assert result.exit_code == 0, result.output
    assert "Music Usage Confirmation" in result.output
    assert result.output.count("published") >= 2 and "Studio Main" in result.output and "Private Creator" in result.output
    assert all(p["post_info"]["disable_comment"] for p in pipeline.sandbox.posts())


def test_publish_exits_non_zero_when_an_account_fails(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/cli.mp4")
    result = runner.invoke(app, ["publish", source, "-a", "main", "-a", "private", "--privacy", "PUBLIC_TO_EVERYONE"])
    assert result.exit_code == 1, result.output
    assert "failed" in result.output and "published" in result.output


def test_publish_refuses_a_request_without_privacy(pipeline) -> None:
    result = runner.invoke(app, ["publish", "s3://b/k.mp4", "-a", "main"])
    assert result.exit_code == 2
    assert "privacy_level is required" in result.output
    assert pipeline.sandbox.posts() == []


def test_accounts_list_shows_token_health_and_caps(pipeline) -> None:
    result = runner.invoke(app, ["accounts", "list"])
    assert result.exit_code == 0, result.output
    assert "Studio Main" in result.output and "Private Creator" in result.output
    assert "15/15" in result.output and "5/5" in result.output


def test_posts_release_sends_a_held_draft_and_discard_refuses_it_afterwards(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/held.mp4")
    held = runner.invoke(app, ["publish", source, "-a", "main", "--privacy", "SELF_ONLY", "--mode", "hold"])
    assert held.exit_code == 0, held.output
    (post,) = pipeline.ledger().list_posts()
    assert pipeline.sandbox.posts() == []

    assert runner.invoke(app, ["posts", "release", str(post.id), "--mode", "sideways"]).exit_code == 2
    released = runner.invoke(app, ["posts", "release", str(post.id)])
    assert released.exit_code == 0, released.output
    assert "published" in released.output and len(pipeline.sandbox.posts()) == 1
    refused = runner.invoke(app, ["posts", "discard", str(post.id)])
    assert refused.exit_code == 1 and "published" in refused.output
