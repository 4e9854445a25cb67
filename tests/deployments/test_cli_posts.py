"""`tiktok-pipeline posts list/show/discard/resolve` and `accounts export` against a real SQLite ledger
(no Prefect): rows are made through `Ledger`, the commands run through Typer's CliRunner."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from ledger import IllegalTransition, Ledger, PostState, PublishMode, TokenGrant, generate_key
from deployments.cli import build_app
from deployments.cli.filters import InvalidFilter, parse_since, parse_states

MARKUP_CAPTION = "[bold]50% off[/bold] today only [/x] #sale"


@dataclass
class History:
    url: str
    ids: dict[str, int]
    tokens: list[str]

    def ledger(self) -> Ledger:
        return Ledger(self.url)


def _run(*args: str) -> Result:
    app = build_app()
    return CliRunner().invoke(app, list(args))


def _json(result: Result) -> object:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _fails_with_one_line(result: Result, text: str, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.stderr
    assert result.stdout == ""


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> History:
    """Two accounts and five posts made at known times: published 10 days ago, a hold draft 2 days
    ago, a failure 1 hour ago, an inbox share 30 minutes ago (other account), one queued now."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    monkeypatch.setenv("TIKTOK_PIPELINE_DATABASE_URL", url)
    monkeypatch.delenv("TIKTOK_PIPELINE_ENCRYPTION_KEY", raising=False)
    clock = [datetime.now(UTC) - timedelta(days=10)]
    tokens = []
    with Ledger(url, generate_key(), clock=lambda: clock[0]) as book:
        for name in ("brand", "other"):
            grant = TokenGrant(access_token=f"act.SECRET-access-{name}-9f8e7d", expires_in=86_400,
                               refresh_token=f"rft.SECRET-refresh-{name}-1a2b3c", refresh_expires_in=31_536_000,
                               open_id=f"open-{name}", scope="user.info.basic,video.publish,video.upload")
            book.upsert_account(name, grant, username=f"{name}_tt", nickname=name.title())
            tokens += [grant.access_token, grant.refresh_token]

        def post(key: str, account: str, mode: PublishMode, caption: str, at: datetime, *steps: tuple[PostState, dict]) -> int:
            clock[0] = at
            created, _ = book.create_or_get_post(key, account_name=account, source_uri=f"s3://in/{key}.mp4",
                                                 content_sha256=key.ljust(64, "0"), caption=caption, mode=mode)
            for state, fields in steps:
                book.transition(created, state, **fields)
            return created.id

        now = datetime.now(UTC)
        ids = {
            "published": post("published", "brand", PublishMode.direct, "launch day #brand", now - timedelta(days=10),
                              (PostState.media_ready, {"message": "media ready (copy)"}),
                              (PostState.initialized, {"publish_id": "v_pub_1", "message": "initialized as v_pub_1"}),
                              (PostState.uploaded, {"message": "uploaded 1000 bytes in 1 chunks"}),
                              (PostState.processing, {}),
                              (PostState.published, {"post_ids": ["7311"], "share_url": "https://www.tiktok.com/@brand_tt/video/7311"})),
            "held": post("held", "brand", PublishMode.hold, MARKUP_CAPTION, now - timedelta(days=2),
                         (PostState.media_ready, {"message": "media ready (transcode)"})),
            "failed": post("failed", "brand", PublishMode.direct, "too many", now - timedelta(hours=1),
                           (PostState.media_ready, {}),
                           (PostState.failed, {"error_code": "DailyCapReached", "error_message": "cap used up"})),
            "inbox": post("inbox", "other", PublishMode.inbox, "draft for you", now - timedelta(minutes=30),
                          (PostState.media_ready, {}),
                          (PostState.initialized, {"publish_id": "v_inbox_4"}),
                          (PostState.uploaded, {}),
                          (PostState.sent_to_inbox, {})),
            "queued": post("queued", "brand", PublishMode.direct, "just in", now),
        }
    return History(url=url, ids=ids, tokens=tokens)


# --- posts list -------------------------------------------------------------------------------------


def test_list_all_newest_first_as_json(history: History) -> None:
    posts = _json(_run("posts", "list", "--json"))
    assert [p["id"] for p in posts] == [history.ids[k] for k in ("queued", "inbox", "failed", "held", "published")]
    published = posts[-1]
    assert published["state"] == "published" and published["publish_id"] == "v_pub_1"
    assert published["share_url"] == "https://www.tiktok.com/@brand_tt/video/7311" and published["account_name"] == "brand"


def test_list_filters_by_account_and_states(history: History) -> None:
    ids = history.ids
    by_account = _json(_run("posts", "list", "--account", "other", "--json"))
    assert [p["id"] for p in by_account] == [ids["inbox"]]
    comma = _json(_run("posts", "list", "-a", "brand", "--status", "published,failed", "--json"))
    assert [p["id"] for p in comma] == [ids["failed"], ids["published"]]
    repeated = _json(_run("posts", "list", "--status", "media_ready", "--status", "sent_to_inbox", "--json"))
    assert [p["id"] for p in repeated] == [ids["inbox"], ids["held"]]


@pytest.mark.parametrize(
    ("since", "expected"),
    [("24h", ["queued", "inbox", "failed"]), ("45m", ["queued", "inbox"]), ("3d", ["queued", "inbox", "failed", "held"]),
     ("2w", ["queued", "inbox", "failed", "held", "published"])],
)
def test_list_since_a_span(history: History, since: str, expected: list[str]) -> None:
    posts = _json(_run("posts", "list", "--since", since, "--json"))
    assert [p["id"] for p in posts] == [history.ids[k] for k in expected]


def test_list_since_a_date_and_with_a_limit(history: History) -> None:
    day = (datetime.now(UTC) - timedelta(days=5)).date().isoformat()
    posts = _json(_run("posts", "list", "--since", day, "--json"))
    assert history.ids["published"] not in [p["id"] for p in posts] and len(posts) == 4
    limited = _json(_run("posts", "list", "--limit", "2", "--json"))
    assert [p["id"] for p in limited] == [history.ids["queued"], history.ids["inbox"]]


def test_list_table_shows_captions_as_written(history: History) -> None:
    result = _run("posts", "list", "--account", "brand")
    assert result.exit_code == 0, result.output
    assert "[bold]50% off[/bold]" in result.stdout and "DailyCapReached: cap used up" in result.stdout
    assert "v_pub_1" in result.stdout and "other" not in result.stdout.replace("Posts", "")


def test_list_with_no_match_says_so(history: History) -> None:
    result = _run("posts", "list", "--status", "unconfirmed")
    assert result.exit_code == 0 and "no posts match" in result.stdout
    assert _json(_run("posts", "list", "--status", "unconfirmed", "--json")) == []


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--since", "yesterday"], "--since 'yesterday' is not a date"),
        (["--status", "live"], "unknown --status live; states are queued, media_ready"),
        (["--account", "nobody"], "no account named 'nobody'"),
        (["--limit", "0"], "--limit must be 1 or more"),
    ],
)
def test_list_bad_filters_fail_with_one_line(history: History, args: list[str], text: str) -> None:
    _fails_with_one_line(_run("posts", "list", *args), text)


def test_parse_since_forms() -> None:
    now = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
    assert parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2026-11-01T08:30", now) == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    assert parse_since("2026-11-01T08:30+02:00", now) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    assert parse_since("90m", now) == datetime(2026, 11, 3, 10, 30, tzinfo=UTC)
    assert parse_since("7d", now) == datetime(2026, 10, 27, 12, 0, tzinfo=UTC)
    assert parse_since("2w", now) == datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
    with pytest.raises(InvalidFilter):
        parse_since("7 days", now)
    assert parse_states([]) is None
    assert parse_states(["failed, unconfirmed", "failed"]) == [PostState.failed, PostState.unconfirmed]


# --- posts show --------------------------------------------------------------------------------------


def test_show_lists_every_init_attempt_the_lost_ones_too(history: History) -> None:
    post_id = history.ids["queued"]
    with Ledger(history.url, generate_key()) as book:
        post = book.reserve_slot(book.transition(post_id, PostState.media_ready))
        book.mark_attempt_lost(book.record_init_attempt(post), "no answer (HTTP 503)")
        book.record_publish_id(book.record_init_attempt(post), "v_pub_9")
    record = _json(_run("posts", "show", str(post_id), "--json"))
    assert [(a["number"], a["outcome"], a["publish_id"]) for a in record["init_attempts"]] == [
        (1, "lost", None), (2, "answered", "v_pub_9")]
    table = _run("posts", "show", str(post_id))
    assert table.exit_code == 0 and "Init attempts" in table.stdout and "lost" in table.stdout, table.output


def test_show_prints_the_post_and_its_whole_audit_trail(history: History) -> None:
    post_id = history.ids["published"]
    record = _json(_run("posts", "show", str(post_id), "--json"))
    with history.ledger() as book:
        events = book.post_events(post_id)
    assert record["post"]["id"] == post_id and record["post"]["state"] == "published"
    assert [e["to_state"] for e in record["events"]] == [e.to_state.value for e in events] == [
        "queued", "media_ready", "initialized", "uploaded", "processing", "published"]
    assert record["events"][2]["data"] == {"publish_id": "v_pub_1"} and record["events"][2]["from_state"] == "media_ready"

    table = _run("posts", "show", str(post_id))
    assert table.exit_code == 0, table.output
    for text in ("initialized as v_pub_1", "media_ready → initialized", "uploaded 1000 bytes", "v_pub_1", "launch day #brand"):
        assert text in table.stdout, text


def test_show_unknown_post_fails_with_one_line(history: History) -> None:
    _fails_with_one_line(_run("posts", "show", "999"), "no post with id 999")


# --- posts discard -----------------------------------------------------------------------------------


def test_discard_a_hold_draft(history: History) -> None:
    post_id = history.ids["held"]
    result = _run("posts", "discard", str(post_id), "--reason", "wrong cut")
    assert result.exit_code == 0, result.output
    assert f"post {post_id} (hold, brand) discarded; it was media_ready" in result.stdout
    with history.ledger() as book:
        assert book.get_post(post_id).state is PostState.discarded
        last = book.post_events(post_id)[-1]
    assert (last.from_state, last.to_state, last.message) == (PostState.media_ready, PostState.discarded, "wrong cut")


def test_discard_a_queued_post(history: History) -> None:
    assert _run("posts", "discard", str(history.ids["queued"])).exit_code == 0
    with history.ledger() as book:
        assert book.get_post(history.ids["queued"]).state is PostState.discarded


@pytest.mark.parametrize(
    ("key", "text"),
    [("published", "is published (TikTok has it as v_pub_1): only hold drafts"),
     ("inbox", "is sent_to_inbox (TikTok has it as v_inbox_4)"),
     ("failed", "is failed: only hold drafts and posts that have not reached TikTok")],
)
def test_discard_refuses_posts_that_reached_tiktok_or_ended(history: History, key: str, text: str) -> None:
    post_id = history.ids[key]
    with history.ledger() as book:
        before = book.post_events(post_id)
    _fails_with_one_line(_run("posts", "discard", str(post_id)), text)
    with history.ledger() as book:
        assert book.post_events(post_id) == before


def test_discard_twice_and_unknown_post(history: History) -> None:
    post_id = history.ids["held"]
    assert _run("posts", "discard", str(post_id)).exit_code == 0
    _fails_with_one_line(_run("posts", "discard", str(post_id)), f"post {post_id} is discarded")
    _fails_with_one_line(_run("posts", "discard", "999"), "no post with id 999")


# --- posts resolve -----------------------------------------------------------------------------------

PERSON = "alice-ops"


@pytest.fixture
def person(monkeypatch: pytest.MonkeyPatch) -> str:
    """The operating-system user running the command (getpass reads LOGNAME first)."""
    monkeypatch.setenv("LOGNAME", PERSON)
    return PERSON


def _unconfirmed(history: History, key: str, publish_id: str | None = None) -> int:
    """An unconfirmed post of `brand`: without publish_id, after an init whose answer was lost (what
    earlier versions left); with one, after polling gave up on TikTok's processing."""
    with Ledger(history.url) as book:
        created, _ = book.create_or_get_post(key, account_name="brand", source_uri=f"s3://in/{key}.mp4",
                                             content_sha256=key.ljust(64, "0"), caption=f"caption {key}",
                                             mode=PublishMode.direct)
        post = book.reserve_slot(book.transition(created, PostState.media_ready))
        attempt = book.record_init_attempt(post)
        if publish_id is None:
            book.mark_attempt_lost(attempt, "no answer (read timeout)")
            post = book.transition(post, PostState.unconfirmed, message="init answer lost",
                                   error_code="InitAnswerLost", error_message="no answer (read timeout)")
        else:
            post = book.record_publish_id(attempt, publish_id)
            for state in (PostState.uploaded, PostState.processing, PostState.unconfirmed):
                post = book.transition(post, state)
        assert post.state is PostState.unconfirmed and post.publish_id == publish_id
        return post.id


def _refused(result: Result, text: str) -> None:
    _fails_with_one_line(result, text, code=2)


def test_resolve_published_records_who_why_and_the_url(history: History, person: str) -> None:
    post_id = _unconfirmed(history, "lost-init")
    url = "https://www.tiktok.com/@brand_tt/video/7399000000000000001"
    result = _run("posts", "resolve", str(post_id), "--published", "--post-url", url, "--reason", "on the profile at 09:12")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"post {post_id} (direct, brand) recorded as published by {person} at {url}; it was unconfirmed"]
    with history.ledger() as book:
        post = book.get_post(post_id)
        last = book.post_events(post_id)[-1]
    assert post.state is PostState.published and post.share_url == url and post.published_at is not None
    assert (last.from_state, last.to_state, last.kind) == (PostState.unconfirmed, PostState.published, "transition")
    assert last.message == "resolved by a person: on the profile at 09:12"
    assert last.data == {"share_url": url, "resolved_by": person, "verdict": "published"}
    listed = _json(_run("posts", "list", "--status", "published", "--json"))
    assert post_id in [p["id"] for p in listed]


def test_resolve_published_without_a_url(history: History, person: str) -> None:
    post_id = _unconfirmed(history, "lost-init")
    result = _run("posts", "resolve", str(post_id), "--published")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"post {post_id} (direct, brand) recorded as published by {person}; it was unconfirmed\n"
    with history.ledger() as book:
        post = book.get_post(post_id)
        last = book.post_events(post_id)[-1]
    assert post.state is PostState.published and post.share_url is None
    assert last.message == "resolved by a person: seen in the creator's TikTok app"
    assert last.data == {"resolved_by": person, "verdict": "published"}


def test_resolve_not_posted_fails_the_post_so_its_request_can_run_again(history: History, person: str) -> None:
    post_id = _unconfirmed(history, "lost-init")
    result = _run("posts", "resolve", str(post_id), "--not-posted", "--reason", "not on the profile, not in drafts")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"post {post_id} (direct, brand) recorded as not posted (failed, resolved_not_posted) by {person}; "
        "running the same request again posts it anew"]
    with history.ledger() as book:
        post = book.get_post(post_id)
        events = book.post_events(post_id)
        assert post.state is PostState.failed and post.publish_id is None
        assert (post.error_code, post.error_message) == ("resolved_not_posted", "not on the profile, not in drafts")
        last = events[-1]
        assert (last.from_state, last.to_state) == (PostState.unconfirmed, PostState.failed)
        assert last.message == "resolved by a person: not on the profile, not in drafts"
        assert last.data == {"error_code": "resolved_not_posted", "error_message": "not on the profile, not in drafts",
                             "resolved_by": person, "verdict": "not_posted"}
    shown = _json(_run("posts", "show", str(post_id), "--json"))
    assert shown["events"][-1]["data"]["verdict"] == "not_posted"
    with history.ledger() as book:  # what the output promises: the same request can take the post up again
        assert book.retry_before_init(post_id, "tried again").state is PostState.queued


def test_resolve_not_posted_default_reason(history: History, person: str) -> None:
    post_id = _unconfirmed(history, "lost-init")
    assert _run("posts", "resolve", str(post_id), "--not-posted").exit_code == 0
    with history.ledger() as book:
        post = book.get_post(post_id)
        last = book.post_events(post_id)[-1]
    assert post.error_message == "not in the creator's TikTok app"
    assert last.message == "resolved by a person: not in the creator's TikTok app"


def test_resolve_refuses_a_post_with_a_publish_id_unless_forced(history: History, person: str) -> None:
    post_id = _unconfirmed(history, "polled-out", publish_id="v_unc_1")
    with history.ledger() as book:
        before = book.post_events(post_id)
    _refused(_run("posts", "resolve", str(post_id), "--not-posted"),
             f"post {post_id} is unconfirmed with publish_id v_unc_1: the cleanup flow reconciles it through "
             "TikTok's status/fetch, which is authoritative; wait for it, or pass --force")
    with history.ledger() as book:
        assert book.post_events(post_id) == before and book.get_post(post_id).state is PostState.unconfirmed

    result = _run("posts", "resolve", str(post_id), "--not-posted", "--force", "--reason", "deleted by the creator")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"post {post_id} (direct, brand) recorded as not posted (failed, resolved_not_posted) by {person}; it reached "
        "TikTok as v_unc_1, so running its request again sends nothing"]
    with history.ledger() as book:
        post = book.get_post(post_id)
        assert post.state is PostState.failed and post.publish_id == "v_unc_1"
        assert book.post_events(post_id)[-1].data == {
            "error_code": "resolved_not_posted", "error_message": "deleted by the creator", "resolved_by": person,
            "verdict": "not_posted", "forced": True}
        with pytest.raises(IllegalTransition, match="at TikTok"):  # what the output promises
            book.retry_before_init(post, "tried again")


def test_resolve_published_forced(history: History, person: str) -> None:
    post_id = _unconfirmed(history, "polled-out", publish_id="v_unc_2")
    url = "https://tiktok.com/@brand_tt/video/7399000000000000002"
    result = _run("posts", "resolve", str(post_id), "--published", "--force", "--post-url", url)
    assert result.exit_code == 0, result.output
    with history.ledger() as book:
        post = book.get_post(post_id)
        assert (post.state, post.share_url, post.publish_id) == (PostState.published, url, "v_unc_2")
        assert book.post_events(post_id)[-1].data == {"share_url": url, "resolved_by": person, "verdict": "published",
                                                      "forced": True}


def _processing(history: History) -> int:
    with Ledger(history.url) as book:
        created, _ = book.create_or_get_post("slow", account_name="brand", source_uri="s3://in/slow.mp4",
                                             content_sha256="slow".ljust(64, "0"), caption="slow", mode=PublishMode.direct)
        post = book.transition(book.reserve_slot(book.transition(created, PostState.media_ready)), PostState.initialized,
                               publish_id="v_slow_1")
        return book.transition(book.transition(post, PostState.uploaded), PostState.processing).id


@pytest.mark.parametrize(
    ("key", "text"),
    [("published", "post {id} is published: nothing to resolve"),
     ("failed", "post {id} is failed: nothing to resolve"),
     ("processing", "post {id} is processing: TikTok is processing it and the cleanup flow reconciles it through "
                    "status/fetch; only unconfirmed posts are resolved by hand"),
     ("inbox", "post {id} is sent_to_inbox: it is a draft in the creator's TikTok inbox"),
     ("held", "post {id} is media_ready: it is a hold draft: release it (`tiktok-pipeline posts release {id}`)"),
     ("queued", "post {id} is queued: it has not reached TikTok; a run sends it, or `tiktok-pipeline posts discard {id}`")],
)
def test_resolve_refuses_posts_that_are_not_unconfirmed(history: History, person: str, key: str, text: str) -> None:
    post_id = _processing(history) if key == "processing" else history.ids[key]
    with history.ledger() as book:
        before = book.get_post(post_id), book.post_events(post_id)
    for verdict in ("--published", "--not-posted"):
        _refused(_run("posts", "resolve", str(post_id), verdict, "--force"), text.format(id=post_id))
    with history.ledger() as book:
        assert (book.get_post(post_id), book.post_events(post_id)) == before


@pytest.mark.parametrize(
    ("args", "text"),
    [([], "give exactly one of --published or --not-posted"),
     (["--published", "--not-posted"], "give exactly one of --published or --not-posted"),
     (["--not-posted", "--post-url", "https://www.tiktok.com/@brand_tt/video/1"], "--post-url goes with --published"),
     (["--not-posted", "--reason", "  "], "--reason must not be empty"),
     (["--published", "--post-url", "http://www.tiktok.com/@brand_tt/video/1"], "--post-url must be an https URL on tiktok.com"),
     (["--published", "--post-url", "https://tiktok.com.evil.example/@brand_tt/video/1"], "got 'https://tiktok.com.evil.example"),
     (["--published", "--post-url", "https://www.tiktok.com@evil.example/video/1"], "--post-url must be an https URL"),
     (["--published", "--post-url", "https://nottiktok.com/video/1"], "--post-url must be an https URL"),
     (["--published", "--post-url", "https://[www.tiktok.com/video/1"], "--post-url must be an https URL"),
     (["--published", "--post-url", "www.tiktok.com/@brand_tt/video/1"], "--post-url must be an https URL")],
)
def test_resolve_refuses_an_unclear_verdict(history: History, person: str, args: list[str], text: str) -> None:
    post_id = _unconfirmed(history, "lost-init")
    with history.ledger() as book:
        before = book.post_events(post_id)
    _refused(_run("posts", "resolve", str(post_id), *args), text)
    with history.ledger() as book:
        assert book.get_post(post_id).state is PostState.unconfirmed and book.post_events(post_id) == before


def test_resolve_unknown_post_and_twice(history: History, person: str) -> None:
    _refused(_run("posts", "resolve", "999", "--not-posted"), "no post with id 999")
    post_id = _unconfirmed(history, "lost-init")
    assert _run("posts", "resolve", str(post_id), "--not-posted").exit_code == 0
    _refused(_run("posts", "resolve", str(post_id), "--published"), f"post {post_id} is failed: nothing to resolve")


def test_resolve_refuses_a_post_that_moved_on_after_it_was_read(
    history: History, person: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cleanup flow takes the post from unconfirmed to processing between the command's read and its
    write: the ledger's check under the row lock refuses the verdict (processing -> failed alone is legal)."""
    post_id = _unconfirmed(history, "polled-out", publish_id="v_unc_3")
    read = Ledger.get_post

    def read_then_cleanup_moves_it(self: Ledger, wanted: int) -> object:
        seen = read(self, wanted)
        with Ledger(history.url) as cleanup:
            cleanup.transition(wanted, PostState.processing, message="reconciled: TikTok is processing it")
        return seen

    monkeypatch.setattr(Ledger, "get_post", read_then_cleanup_moves_it)
    _refused(_run("posts", "resolve", str(post_id), "--not-posted", "--force"),
             f"post {post_id} is processing, no longer unconfirmed: it was not moved to failed")
    monkeypatch.undo()
    with history.ledger() as book:
        assert book.get_post(post_id).state is PostState.processing
        assert [e.to_state for e in book.post_events(post_id)][-2:] == [PostState.unconfirmed, PostState.processing]


# --- accounts export ---------------------------------------------------------------------------------


def _stored_ciphertexts(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT access_token_ciphertext, refresh_token_ciphertext FROM accounts"))
            return [value for row in rows for value in row]
    finally:
        engine.dispose()


def _assert_no_tokens(text: str, history: History) -> None:
    secrets = history.tokens + _stored_ciphertexts(history.url)
    assert len(secrets) == 8 and all(secrets)
    leaked = [s for s in secrets if s in text]
    assert leaked == []
    assert "SECRET-" not in text and "ciphertext" not in text


def test_export_has_the_account_and_every_post_with_every_event_and_no_tokens(history: History) -> None:
    result = _run("accounts", "export", "brand")
    document = _json(result)
    _assert_no_tokens(result.stdout, history)
    assert document["account"]["name"] == "brand" and document["account"]["open_id"] == "open-brand"
    assert document["account"]["scopes"] == ["user.info.basic", "video.publish", "video.upload"]
    ids = history.ids
    assert [r["post"]["id"] for r in document["posts"]] == [ids["published"], ids["held"], ids["failed"], ids["queued"]]
    with history.ledger() as book:
        for record in document["posts"]:
            assert record["events"] == [e.model_dump(mode="json") for e in book.post_events(record["post"]["id"])]
    assert len(document["posts"][0]["events"]) == 6


def test_export_to_a_file(history: History, tmp_path: Path) -> None:
    target = tmp_path / "brand.json"
    result = _run("accounts", "export", "other", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and f"exported account other (1 posts) to {target}" in result.stderr
    text = target.read_text(encoding="utf-8")
    _assert_no_tokens(text, history)
    document = json.loads(text)
    assert document["account"]["name"] == "other" and [r["post"]["id"] for r in document["posts"]] == [history.ids["inbox"]]


def test_export_errors_are_one_line(history: History, tmp_path: Path) -> None:
    _fails_with_one_line(_run("accounts", "export", "nobody"), "no account named 'nobody'")
    _fails_with_one_line(_run("accounts", "export", "brand", "-o", str(tmp_path / "missing" / "x.json")), "cannot write")


def test_commands_work_without_any_encryption_key(history: History, monkeypatch: pytest.MonkeyPatch) -> None:
    # The posts commands never touch tokens: no key, no Prefect Secret lookup.
    monkeypatch.delenv("TIKTOK_PIPELINE_ENCRYPTION_KEY", raising=False)
    assert _run("posts", "list", "--json").exit_code == 0
    assert _run("accounts", "export", "brand").exit_code == 0


