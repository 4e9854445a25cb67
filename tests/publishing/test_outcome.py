"""The run's verdict, its message and the run table, as pure functions (no Prefect, no servers)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ledger import PostState, PublishMode
from publishing import (
    PublishResult,
    StepTiming,
    done_label,
    failure_reason,
    is_done,
    link_or_error,
    post_description,
    post_markdown,
    summary_rows,
    verdict,
)

LATER = datetime(2026, 11, 4, 9, 30, tzinfo=UTC)
REFUSED = ("privacy PUBLIC_TO_EVERYONE is not available to Private Creator; "
           "choose one of FOLLOWER_OF_CREATOR, SELF_ONLY")


def result(account: str = "main", state: PostState = PostState.published, **fields) -> PublishResult:
    return PublishResult(account=account, state=state, **({"mode": PublishMode.direct, "post_id": 7} | fields))


@pytest.mark.parametrize(
    ("fields", "done"),
    [
        ({"state": PostState.published}, True),
        ({"state": PostState.sent_to_inbox, "mode": PublishMode.inbox}, True),
        ({"state": PostState.media_ready, "mode": PublishMode.hold}, True),  # held: nothing sent, by design
        ({"state": PostState.queued, "scheduled_for": LATER, "post_id": None}, True),  # schedule_at in the future
        ({"state": PostState.media_ready, "scheduled_for": LATER, "error_code": "DailyCapReached",
          "error_message": "cap"}, True),  # deferred
        ({"state": PostState.media_ready}, False),  # a direct post that stopped before init
        ({"state": PostState.failed, "error_message": "boom"}, False),
        ({"state": PostState.processing}, False),
        ({"state": PostState.unconfirmed}, False),
        ({"state": PostState.initialized, "publish_id": "v_pub_1"}, False),
        ({"state": PostState.failed, "scheduled_for": LATER}, False),  # a failure is not made pending by a date
    ],
)
def test_which_results_count_as_done(fields: dict, done: bool) -> None:
    assert is_done(result(**fields)) is done


def test_one_account_refused_fails_the_run_naming_it_and_its_reason() -> None:
    outcome = verdict([result("main"), result("private", PostState.failed, error_code="PrivacyNotAllowed",
                                              error_message=REFUSED, post_id=8)])
    assert not outcome.ok and outcome.not_posted == ("private",)
    assert outcome.message == f"1 of 2 accounts not posted — private: {REFUSED}"


def test_accounts_with_the_same_reason_are_named_together() -> None:
    missing = "no AWS credentials to read s3://media/a.mp4: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    outcome = verdict([result("main", PostState.failed, error_message=missing),
                       result("private", PostState.failed, error_message=missing),
                       result("brand", PostState.processing)])
    assert outcome.message == (f"3 of 3 accounts not posted — main, private: {missing}; "
                               "brand: TikTok is still processing it; the cleanup flow records how it ends")


def test_reasons_say_what_a_state_means_and_whether_an_earlier_run_left_it() -> None:
    assert failure_reason(result(state=PostState.unconfirmed, error_message="init answer lost")) == \
        "unconfirmed: init answer lost"
    assert failure_reason(result(state=PostState.failed, error_message="spam risk", reused=True)) == \
        "earlier run: spam risk"
    long = "x" * 1000
    assert len(failure_reason(result(state=PostState.failed, error_message=long))) == 400


def test_all_done_completes_with_what_happened_to_each_account() -> None:
    outcome = verdict([result("main"),
                       result("drafts", PostState.media_ready, mode=PublishMode.hold, post_id=12),
                       result("brand", PostState.media_ready, scheduled_for=LATER, error_code="DailyCapReached"),
                       result("later", PostState.queued, scheduled_for=LATER, post_id=None)])
    assert outcome.ok and outcome.not_posted == ()
    assert outcome.message == ("4 accounts done — main: published; drafts: held as post 12; "
                               "brand: deferred to 2026-11-04 09:30 UTC (daily cap); later: scheduled for 2026-11-04 09:30 UTC")


def test_no_result_is_not_a_success() -> None:
    assert not verdict([]).ok


def test_messages_stay_bounded_for_many_accounts() -> None:
    many = [result(f"account-{i}", PostState.failed, error_message=f"reason {i} " + "y" * 300) for i in range(20)]
    message = verdict(many).message
    assert message.startswith("20 of 20 accounts not posted — account-0: reason 0") and len(message) <= 2000


def test_run_table_rows_hold_who_how_and_seconds_per_step() -> None:
    rows = summary_rows([
        result("main", nickname="Studio Main", privacy_level="SELF_ONLY", publish_id="v_pub_1",
               timings=[StepTiming(step="ingest", seconds=0.123), StepTiming(step="poll", seconds=2.5)]),
        result("private", PostState.failed, error_code="PrivacyNotAllowed", error_message=REFUSED, post_id=None),
    ])
    assert list(rows[0]) == ["account", "nickname", "state", "done", "link or error", "privacy", "publish_id", "post_id",
                             "ingest s", "transcode s", "init s", "upload s", "poll s"]
    assert rows[0]["nickname"] == "Studio Main" and rows[0]["publish_id"] == "v_pub_1" and rows[0]["done"] == "yes"
    assert rows[0]["ingest s"] == 0.12 and rows[0]["poll s"] == 2.5 and rows[0]["init s"] == ""
    assert "SELF_ONLY" in rows[0]["link or error"] and "no public link" in rows[0]["link or error"]
    assert rows[1]["done"] == "NO" and rows[1]["link or error"] == REFUSED and rows[1]["post_id"] == ""


def test_link_or_error_prefers_the_share_url() -> None:
    url = "https://www.tiktok.com/@studio_main/video/1"
    assert link_or_error(result(share_url=url, privacy_level="PUBLIC_TO_EVERYONE")) == url
    assert "not assigned a public link yet" in link_or_error(result(privacy_level="PUBLIC_TO_EVERYONE"))


def test_every_post_gets_its_artifact_text_self_only_included() -> None:
    text = post_markdown(result(nickname="Studio Main", privacy_level="SELF_ONLY", publish_id="v_pub_9", post_id=3))
    assert "# TikTok post by Studio Main" in text and "`v_pub_9`" in text and "**published**" in text
    assert "SELF_ONLY" in text and "tiktok-pipeline posts show 3" in text
    failed = post_markdown(result("private", PostState.failed, error_code="PrivacyNotAllowed", error_message=REFUSED))
    assert "publish_id: none" in failed and f"`PrivacyNotAllowed` {REFUSED}" in failed
    assert post_description(result(nickname="Studio Main", publish_id="v_pub_9")) == "Studio Main: published · v_pub_9"
    assert post_description(result("private", PostState.failed)) == "private: NOT posted (failed)"


def test_done_labels() -> None:
    assert done_label(result(state=PostState.sent_to_inbox)) == "sent to the inbox"
    assert done_label(result(state=PostState.media_ready, mode=PublishMode.hold, post_id=None)) == "held"
