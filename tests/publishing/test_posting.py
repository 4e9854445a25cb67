"""The steps of a post as plain functions: the real sandbox, a SQLite ledger, no Prefect."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from ledger import ClaimLost, PostState
from publishing import CapPolicy, PublishRequest, is_done
from publishing.maintenance import posts_to_reconcile, reconcile_post
from publishing.posting import (
    CreatorCheck,
    PreflightFailed,
    ScheduledRun,
    StepFailure,
    check_creator,
    creator_markdown,
    init_post,
    init_record,
    kept_media_in_use,
    open_post,
    plan_media,
    poll_status,
    preflight,
    record_failures,
    upload,
)
from publishing.services import Services
from tiktok import PrivacyNotAllowed


def _request(**overrides) -> PublishRequest:
    fields = {"source": "/videos/clip.mp4", "accounts": ["main"], "caption": "service layer #test",
              "privacy_level": "SELF_ONLY"} | overrides
    return PublishRequest(**fields)


def test_preflight_names_accounts_that_are_not_connected_and_refuses_a_missing_key(services: Services) -> None:
    unknown = preflight(services, _request(accounts=["main", "nobody"]))
    assert list(unknown) == ["nobody"] and "tiktok-pipeline accounts connect nobody" in unknown["nobody"].message
    keyless = Services(services.settings.model_copy(update={"encryption_key": None}), ledger=services.ledger)
    with pytest.raises(PreflightFailed, match="TIKTOK_PIPELINE_ENCRYPTION_KEY"):
        preflight(keyless, _request())


def test_creator_check_refuses_a_privacy_level_the_creator_does_not_offer(services: Services) -> None:
    with pytest.raises(PrivacyNotAllowed):
        check_creator(services, "private", _request(accounts=["private"], privacy_level="PUBLIC_TO_EVERYONE"))
    check = check_creator(services, "private", _request(accounts=["private"], privacy_level="SELF_ONLY"))
    assert check.nickname == "Private Creator" and check.max_duration_s == 180
    assert check.post_info["privacy_level"] == "SELF_ONLY"
    assert "# Posting as Private Creator" in creator_markdown(check, _request())


def test_open_post_claims_one_row_per_request_and_account(services: Services, clip) -> None:
    source, _ = clip
    request = _request()
    post, created = open_post(services, request, "main", source, None)
    again, created_again = open_post(services, request, "main", source, None)
    assert created and not created_again and again.id == post.id and post.state is PostState.queued
    other, created_other = open_post(services, request, "private", source, None)
    assert created_other and other.id != post.id


def _unthrottled(services: Services) -> Services:
    """The same Services without the client's own per-process init limiter (6/min): these tests send
    bursts of inits that the sandbox faults, and would otherwise wait out the minute."""
    return Services(services.settings, ledger=services.ledger, rate_limit=lambda account_key, endpoint: None)


@pytest.mark.parametrize("fault", ["error_503", "lost_answer", "drop"])
def test_an_init_without_a_usable_answer_is_asked_again_and_only_the_answered_one_gets_bytes(
    services: Services, clip, sandbox, fault: str
) -> None:
    services = _unthrottled(services)
    source, prepared = clip
    request = _request()
    check = check_creator(services, "main", request)
    sandbox.add_fault("video_init", fault, times=2)
    pauses: list[float] = []
    started = init_post(services, request, check, source, prepared, sleep=pauses.append)
    assert started.state is PostState.initialized and pauses == [2.0, 4.0]
    lost = [e for e in services.ledger.post_events(started.post_id) if e.kind == "init_attempt_lost"]
    assert [e.data["attempt"] for e in lost] == [1, 2]
    done = poll_status(services, upload(services, started, prepared), check.username)
    assert done.state is PostState.published
    # lost_answer: TikTok created a post whose answer never arrived; it holds no bytes and never publishes.
    received = [p for p in sandbox.posts() if p.get("received_bytes")]
    assert [p["publish_id"] for p in received] == [done.publish_id]
    assert len(sandbox.posts()) == (3 if fault == "lost_answer" else 1)


def test_inits_that_never_get_an_answer_fail_the_post_and_a_rerun_goes_on(services: Services, clip, sandbox) -> None:
    services = _unthrottled(services)
    source, prepared = clip
    request = _request()
    check = check_creator(services, "main", request)
    sandbox.add_fault("video_init", "error_500", times=5)
    failed = init_post(services, request, check, source, prepared, sleep=lambda s: None)
    assert failed.state is PostState.failed and "no usable answer 5 times" in (failed.error_message or "")
    again = init_post(services, request, check, source, prepared, sleep=lambda s: None)
    assert again.post_id == failed.post_id and again.state is PostState.initialized


def test_init_upload_poll_publish_a_post_once(services: Services, clip, sandbox) -> None:
    source, prepared = clip
    request = _request()
    check = check_creator(services, "main", request)
    started = init_post(services, request, check, source, prepared, flow_run_id="run-1")
    assert started.state is PostState.initialized and started.publish_id
    record = init_record(services, started.post_id)
    assert record.flow_run_id == "run-1" and record.sha256 == prepared.sha256
    assert record.sha256 in kept_media_in_use(services)

    class Recorded:
        def __init__(self) -> None:
            self.seen: list[tuple[str, float]] = []

        def start(self, description: str) -> None:
            self.seen.append((description, 0.0))

        def update(self, percent: float, description: str | None = None) -> None:
            self.seen.append((description or "", percent))

    progress = Recorded()
    uploaded = upload(services, started, prepared, progress=progress)
    assert uploaded.state is PostState.uploaded and progress.seen[-1][1] == 100.0
    done = poll_status(services, uploaded, check.username)
    assert done.state is PostState.published and done.ok
    assert [p["publish_id"] for p in sandbox.posts()] == [done.publish_id]
    # The same request again sends nothing: the ledger row says it is posted.
    repeat = init_post(services, request, check, source, prepared)
    assert repeat.reused and repeat.publish_id == done.publish_id and len(sandbox.posts()) == 1
    assert not kept_media_in_use(services)  # a published post needs its media no more
    assert plan_media(services, request, ["main"], source).needed == []


def test_a_second_runner_of_a_claimed_post_sends_nothing_and_returns_the_owners_outcome(
    services: Services, clip, sandbox
) -> None:
    source, prepared = clip
    request = _request()
    check = check_creator(services, "main", request)
    first = init_post(services, request, check, source, prepared, owner="run-A")
    assert first.state is PostState.initialized
    waited: list[float] = []

    def owner_finishes_while_we_wait(seconds: float) -> None:
        waited.append(seconds)
        if len(waited) == 1:  # run A uploads and polls while run B waits
            poll_status(services, upload(services, first, prepared, owner="run-A"), check.username, owner="run-A")

    second = init_post(services, request, check, source, prepared, owner="run-B", sleep=owner_finishes_while_we_wait)
    assert second.state is PostState.published and second.ok and second.reused
    assert second.publish_id == first.publish_id and waited == [2.0]
    assert [p["publish_id"] for p in sandbox.posts()] == [first.publish_id]
    kinds = [e.kind for e in services.ledger.post_events(first.post_id)]
    assert kinds.count("init_attempt") == 1 and "claimed" in kinds and "claim_released" in kinds


def test_the_runner_that_created_a_post_but_lost_its_lease_reports_the_other_runners_outcome(
    services: Services, clip, sandbox, monkeypatch
) -> None:
    """Run B records the post, run A claims it first (both started at once) and publishes it while B
    waits: B then holds a post it created but that went further, and reports it (it used to reserve a
    slot for it and fail it: `cannot go from published to failed`)."""
    from publishing import posting

    source, prepared = clip
    request = _request()
    check = check_creator(services, "main", request)
    opened = posting.open_post

    def a_claims_first(*args, **kwargs):
        post, created = opened(*args, **kwargs)
        services.ledger.claim_post(post, "run-A", posting.claim_lease(services))
        return post, created

    monkeypatch.setattr(posting, "open_post", a_claims_first)

    def a_publishes_while_b_waits(seconds: float) -> None:
        monkeypatch.setattr(posting, "open_post", opened)
        first = init_post(services, request, check, source, prepared, owner="run-A")
        poll_status(services, upload(services, first, prepared, owner="run-A"), check.username, owner="run-A")

    second = init_post(services, request, check, source, prepared, owner="run-B", sleep=a_publishes_while_b_waits)
    assert second.state is PostState.published and second.reused
    assert len(sandbox.posts()) == 1


def test_a_runner_that_died_after_init_is_taken_over_once_its_lease_lapses(
    services: Services, clip, sandbox, clock
) -> None:
    source, prepared = clip
    request = _request()
    check = check_creator(services, "main", request)
    first = init_post(services, request, check, source, prepared, owner="run-A")  # then run A is killed
    clock.advance(timedelta(seconds=services.settings.claim_lease + 1))
    second = init_post(services, request, check, source, prepared, owner="run-B",
                       sleep=lambda s: pytest.fail("a lapsed lease is taken over at once"))
    assert second.state is PostState.initialized and second.publish_id == first.publish_id
    done = poll_status(services, upload(services, second, prepared, owner="run-B"), check.username, owner="run-B")
    assert done.state is PostState.published
    assert [p["publish_id"] for p in sandbox.posts()] == [first.publish_id]
    taken = [e for e in services.ledger.post_events(first.post_id) if e.kind == "claim_taken_over"]
    assert [e.data["taken_over_from"] for e in taken] == ["run-A"]


def test_a_runner_whose_run_has_ended_is_taken_over_at_once(services: Services, clip, sandbox) -> None:
    source, prepared = clip
    request = _request()
    check = check_creator(services, "main", request)
    first = init_post(services, request, check, source, prepared, owner="run-A")  # run A failed after init
    asked: list[str] = []
    second = init_post(services, request, check, source, prepared, owner="run-B",
                       owner_has_ended=lambda owner: asked.append(owner) or owner == "run-A",
                       sleep=lambda s: pytest.fail("an ended run's lease is taken over without waiting"))
    assert asked == ["run-A"] and second.publish_id == first.publish_id and second.state is PostState.initialized

    def waits(seconds: float) -> None:
        raise TimeoutError("run C waits for run B, which is alive")

    with pytest.raises(TimeoutError):
        init_post(services, request, check, source, prepared, owner="run-C", owner_has_ended=lambda owner: False,
                  sleep=waits)


def test_a_runner_whose_lease_was_taken_over_stops_before_sending_a_byte(services: Services, clip, sandbox, clock) -> None:
    source, prepared = clip
    request = _request()
    check = check_creator(services, "main", request)
    first = init_post(services, request, check, source, prepared, owner="run-A")
    clock.advance(timedelta(seconds=services.settings.claim_lease + 1))  # run A stalls; run B takes over
    init_post(services, request, check, source, prepared, owner="run-B")
    with pytest.raises(ClaimLost):
        upload(services, first, prepared, owner="run-A")
    assert all(not p.get("received_bytes") for p in sandbox.posts())


def test_a_runner_whose_init_answer_comes_after_a_takeover_reports_the_takeovers_outcome(
    services: Services, clip, sandbox, clock, monkeypatch
) -> None:
    """Run A's init answer is so slow that its lease lapses and run B takes the post over and publishes
    it: A's late publish_id stays on its attempt and receives nothing, and A reports B's outcome."""
    source, prepared = clip
    request = _request()
    check = check_creator(services, "main", request)
    real = services.with_client
    late: list[object] = []

    def slow_answer_for_run_a(account: str, call, **kwargs):
        answer = real(account, call, **kwargs)
        if kwargs.get("prepaid") and not late:  # run A's init: TikTok answered, the answer is on its way
            late.append(answer)
            clock.advance(timedelta(seconds=services.settings.claim_lease + 1))
            taken = init_post(services, request, check, source, prepared, owner="run-B")
            poll_status(services, upload(services, taken, prepared, owner="run-B"), check.username, owner="run-B")
        return answer

    monkeypatch.setattr(services, "with_client", slow_answer_for_run_a)
    first = init_post(services, request, check, source, prepared, owner="run-A")
    assert first.state is PostState.published and first.ok, first
    (orphan,) = late
    received = {p["publish_id"]: p["received_bytes"] for p in sandbox.posts()}
    assert first.publish_id != orphan.publish_id and received == {orphan.publish_id: 0, first.publish_id: prepared.size}
    attempts = services.ledger.init_attempts(first.post_id)
    assert [(a.number, a.publish_id) for a in attempts] == [(1, orphan.publish_id), (2, first.publish_id)]
    assert "init_answer_late" in [e.kind for e in services.ledger.post_events(first.post_id)]


def test_an_owner_keeps_its_lease_while_it_polls(services: Services, clip, sandbox, monkeypatch) -> None:
    """A lapsed lease must mean a dead owner: one waiting on TikTok's processing renews it."""
    source, prepared = clip
    request = _request()
    check = check_creator(services, "main", request)
    uploaded = upload(services, init_post(services, request, check, source, prepared, owner="run-A"), prepared,
                      owner="run-A")
    # The first status answer arrives after a quarter of the lease: past the point a renewal is due.
    sandbox.add_fault("status_fetch", "latency", latency_ms=int(services.settings.claim_lease * 250) + 500, times=1)
    renewals: list[str] = []
    renew = services.ledger.renew_claim
    monkeypatch.setattr(services.ledger, "renew_claim",
                        lambda post, owner, lease: renewals.append(owner) or renew(post, owner, lease))
    done = poll_status(services, uploaded, check.username, owner="run-A")
    assert done.state is PostState.published and renewals and set(renewals) == {"run-A"}
    assert services.ledger.get_claim(done.post_id) is None  # released once settled


def test_an_owner_keeps_its_lease_while_tiktok_is_slow_to_answer_its_init(
    services: Services, clip, sandbox, monkeypatch
) -> None:
    """An init answered after more than a quarter lease: the lease is renewed meanwhile, so no other
    runner may take the post over and call init too."""
    source, prepared = clip
    request = _request()
    check = check_creator(services, "main", request)
    sandbox.add_fault("video_init", "latency", latency_ms=int(services.settings.claim_lease * 250) + 1000, times=1)
    renewals: list[str] = []
    renew = services.ledger.renew_claim
    monkeypatch.setattr(services.ledger, "renew_claim",
                        lambda post, owner, lease: renewals.append(owner) or renew(post, owner, lease))
    first = init_post(services, request, check, source, prepared, owner="run-A")
    assert first.state is PostState.initialized
    # One renewal after the rate-limit wait, at least one while the init was under way.
    assert len(renewals) >= 2 and set(renewals) == {"run-A"}, renewals
    assert [a.number for a in services.ledger.init_attempts(first.post_id)] == [1]


def test_two_runners_polling_one_post_both_report_it_published(services: Services, clip, sandbox, monkeypatch) -> None:
    """Run B of the same request finds the post processing and polls it too; whoever records the
    outcome second reports it as it is, not as an illegal transition."""
    source, prepared = clip
    request = _request()
    check = check_creator(services, "main", request)
    uploaded = upload(services, init_post(services, request, check, source, prepared, owner="run-A"), prepared,
                      owner="run-A")
    real = services.with_client

    def run_b_records_it_first(account, call):
        monkeypatch.setattr(services, "with_client", real)
        assert poll_status(services, uploaded, check.username).state is PostState.published
        return real(account, call)

    monkeypatch.setattr(services, "with_client", run_b_records_it_first)
    done = poll_status(services, uploaded, check.username, owner="run-A")
    assert done.state is PostState.published and done.ok and not done.error_message, done
    moves = [(e.from_state, e.to_state) for e in services.ledger.post_events(done.post_id) if e.from_state != e.to_state]
    assert moves.count((PostState.processing, PostState.published)) == 1, moves


def test_a_used_up_cap_defers_the_post_to_the_next_slot_or_fails_it(services: Services, clip, sandbox) -> None:
    source, prepared = clip
    services.ledger.set_daily_caps("main", direct=1)
    first = _request(caption="first")
    check = check_creator(services, "main", first)
    assert init_post(services, first, check, source, prepared).state is PostState.initialized
    scheduled: list[tuple[int, object]] = []

    def schedule(post_id: int, when) -> ScheduledRun:
        scheduled.append((post_id, when))
        return ScheduledRun(id="deferred-run", name="deferred-1")

    second = _request(caption="second", cap_policy=CapPolicy.defer)
    deferred = init_post(services, second, check, source, prepared, schedule=schedule)
    assert deferred.error_code == "DailyCapReached" and deferred.flow_run_id == "deferred-run"
    assert scheduled == [(deferred.post_id, deferred.scheduled_for)] and deferred.scheduled_for is not None
    assert deferred.state is PostState.media_ready and is_done(deferred)  # waiting for its slot, nothing sent
    # fail policy (or nothing able to schedule it): the post fails, naming the cap.
    third = init_post(services, _request(caption="third", cap_policy=CapPolicy.fail), check, source, prepared,
                      schedule=schedule)
    assert third.state is PostState.failed and third.error_code == "DailyCapReached" and len(scheduled) == 1
    assert len(sandbox.posts()) == 1


def test_failures_before_tiktok_are_recorded_and_a_rerun_tries_again(services: Services) -> None:
    request = _request(accounts=["main", "nobody"])
    failure = StepFailure(step="ingest", code="SourceNotFound", message="no such file")
    results = record_failures(services, request, {"main": failure, "nobody": StepFailure(
        step="preflight", code="AccountNotFound", message="not connected")})
    assert results["main"].state is PostState.failed and results["main"].post_id is not None
    assert results["nobody"].post_id is None  # no account row to record it under
    again = record_failures(services, request, {"main": failure})
    assert again["main"].post_id == results["main"].post_id
    events = services.ledger.post_events(again["main"].post_id)
    assert [e.to_state for e in events if e.to_state is not None].count(PostState.failed) == 2  # tried again, failed again


def test_reconcile_fails_an_upload_abandoned_past_its_url_lifetime(services: Services, clip, clock) -> None:
    source, prepared = clip
    request = _request()
    check = check_creator(services, "main", request)
    started = init_post(services, request, check, source, prepared)
    assert started.state is PostState.initialized
    assert [p.id for p in posts_to_reconcile(services)] == []  # fresh: its run may still upload it
    clock.advance(timedelta(hours=1, minutes=5))
    assert [p.id for p in posts_to_reconcile(services)] == [started.post_id]
    post = reconcile_post(services, started.post_id)
    assert post.state is PostState.failed and post.error_code == "upload_incomplete"


def test_a_creator_check_model_round_trips() -> None:
    check = CreatorCheck(account="a", open_id="o", nickname=None, username=None, max_duration_s=None, post_info=None)
    assert CreatorCheck.model_validate(check.model_dump()) == check


def test_an_initialized_post_resumes_with_the_media_kept_at_init(services: Services, clip, sandbox) -> None:
    source, prepared = clip
    request = _request()
    check = check_creator(services, "main", request)
    started = init_post(services, request, check, source, prepared)
    Path(prepared.path).unlink()  # the run's working files are gone (a crash): the kept copy is what init announced
    plan = plan_media(services, request, ["main"], source)
    assert plan.needed == [] and plan.kept["main"].sha256 == prepared.sha256 and plan.kept["main"].path_taken == "kept"
    resumed = init_post(services, request, check, source, plan.kept["main"],
                        still_running=lambda record: pytest.fail("the kept media is here: nobody needs asking"))
    assert resumed.post_id == started.post_id and resumed.publish_id == started.publish_id
    uploaded = upload(services, resumed, plan.kept["main"])
    assert uploaded.state is PostState.uploaded
    assert [p["publish_id"] for p in sandbox.posts()] == [started.publish_id]
