"""`tiktok-pipeline publish` and `accounts list` as a user runs them (Typer's CliRunner, in-process)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from deployments.cli import build_app

app = build_app()
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
    assert result.exit_code == 2, result.output  # a privacy level the creator does not offer: refused input
    assert "failed" in result.output and "published" in result.output
    assert "error: 1 of 2 accounts not posted — private: privacy PUBLIC_TO_EVERYONE" in result.output
    # The refused post is in the history, with the reason.
    history = runner.invoke(app, ["posts", "list", "--status", "failed"])
    assert history.exit_code == 0, history.output
    assert "private" in history.output and "PrivacyNotAllowed" in history.output and "main" not in history.output


def test_publish_of_a_missing_source_is_refused_before_any_run_in_one_line(pipeline) -> None:
    missing = f"s3://{pipeline.bucket}/not-there.mp4"
    result = runner.invoke(app, ["publish", missing, "-a", "main", "-a", "nobody", "--privacy", "SELF_ONLY"])
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "S3 object not found" in line and "tiktok-pipeline accounts connect nobody" in line
    history = runner.invoke(app, ["posts", "list", "--status", "failed", "--json"])
    assert json.loads(history.output) == []  # refused before the run: no post, nothing sent


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
    assert refused.exit_code == 2 and "published" in refused.output  # refused: it is posted


def test_accounts_connect_runs_the_oauth_dance_from_the_command_line(pipeline, monkeypatch) -> None:
    import webbrowser

    import httpx

    opened: list[str] = []

    def browser(url: str) -> bool:  # the user's browser: the sandbox approves and redirects to our port
        opened.append(url)
        httpx.get(url + "&sandbox_user=private_creator", follow_redirects=True, timeout=30)
        return True

    monkeypatch.setattr(webbrowser, "open", browser)
    before = pipeline.ledger().get_account("private").access_expires_at
    result = runner.invoke(app, ["accounts", "connect", "private"])  # reconnecting: new tokens stored
    assert result.exit_code == 0, result.output
    assert "connected private: Private Creator (@private_creator)" in result.output
    assert "code_challenge_method=S256" in opened[0]  # desktop app: PKCE
    assert pipeline.ledger().get_account("private").access_expires_at > before

    # Caps are per creator: the same TikTok user under a second name is refused, clearly.
    refused = runner.invoke(app, ["accounts", "connect", "second"])
    assert refused.exit_code == 1 and "already connected as account 'private'" in refused.output
