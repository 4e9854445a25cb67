"""The scheduled flows: refresh-tokens (with the account-health table) and cleanup (retry of crashed
publish runs, sweeper, reconciliation with status/fetch, redelivery of the webhook outbox)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
from prefect.client.schemas.objects import FlowRun, State
from prefect.events.worker import EventsWorker
from prefect.states import Completed, Crashed
from prefect.testing.fixtures import asserting_and_emitting_events_worker  # noqa: F401 (fixture)

from flows.maintenance import cleanup, refresh_tokens
from publishing import PublishRequest
from flows.publish import publish_video
from ledger import AccountStatus, DeliveryStatus, PostState
from publishing import webhooks
from sandbox import free_port
from tasks import maintenance as maintenance_tasks
from publishing.workdirs import make_work_dir
from tasks.maintenance import (
    ACCOUNT_HEALTH_KEY,
    GIVEN_UP_TAG,
    RETRY_TAG,
    AccountHealth,
    RunRecord,
    health_problem,
    health_rows,
    plan_crash_retries,
    retry_crashed_runs,
    retry_idempotency_key,
)
from tests.flows.helpers import artifact
from tests.plugins.webhook_receiver import receiver


def _request(source: str, **overrides) -> PublishRequest:
    fields = {"accounts": ["main"], "caption": "maintenance test", "privacy_level": "SELF_ONLY"} | overrides
    return PublishRequest(source=source, **fields)


def test_refresh_tokens_refreshes_within_margin_and_flags_revoked_grants(pipeline) -> None:
    book = pipeline.ledger()
    before = {a.name: a.access_expires_at for a in book.list_accounts()}
    assert refresh_tokens(margin_hours=0.5) == {"main": "fresh", "private": "fresh"}
    state = refresh_tokens(margin_hours=48, return_state=True)
    assert state.is_completed() and state.result() == {"main": "refreshed", "private": "refreshed"}
    after = {a.name: a.access_expires_at for a in book.list_accounts()}
    assert all(after[name] > before[name] for name in before)
    table = json.loads(artifact(state, ACCOUNT_HEALTH_KEY).data)
    assert [(row["account"], row["nickname"], row["status"], row["this run"]) for row in table] == [
        ("main", "Studio Main", "active", "refreshed"), ("private", "Private Creator", "active", "refreshed")]
    assert table[0]["direct posts left today"] == "15/15" and table[0]["inbox shares left today"] == "5/5"
    assert table[0]["access token expires"].endswith(" h)") and table[0]["refresh token expires"].endswith(" d)")

    pipeline.sandbox.reset()  # TikTok forgets every grant: the refresh tokens are now invalid
    state = refresh_tokens(margin_hours=48, return_state=True)
    assert state.is_failed()
    assert "2 account(s) need attention" in state.message
    for name in ("main", "private"):
        assert f"{name} needs a reconnect" in state.message
        assert f"`tiktok-pipeline accounts connect {name}`" in state.message
    assert {a.status for a in book.list_accounts()} == {AccountStatus.needs_reconnect}
    # The table is there all the same, saying why.
    table = json.loads(artifact(state, ACCOUNT_HEALTH_KEY).data)
    assert [row["this run"] for row in table] == ["needs_reconnect", "needs_reconnect"]
    assert all(row["status"].startswith("needs_reconnect (TikTok refused the refresh token") for row in table)

    # The next run has nothing to refresh, and still fails until someone reconnects them.
    state = refresh_tokens(return_state=True)
    assert state.is_failed() and "main needs a reconnect" in state.message
    assert [row["this run"] for row in json.loads(artifact(state, ACCOUNT_HEALTH_KEY).data)] == \
        ["not refreshed (needs reconnect)"] * 2


def test_account_health_table_and_verdict() -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    fine = AccountHealth(name="main", nickname="Studio Main", status=AccountStatus.active, status_reason=None,
                         access_expires_at=now + timedelta(hours=23.5), refresh_expires_at=now + timedelta(days=300),
                         direct_left=14, direct_limit=15, inbox_left=5, inbox_limit=5, outcome="refreshed")
    assert health_rows([fine], now) == [{
        "account": "main", "nickname": "Studio Main", "status": "active",
        "access token expires": "2026-05-02 11:30 UTC (in 23.5 h)",
        "refresh token expires": "2027-02-25 12:00 UTC (in 300.0 d)",
        "direct posts left today": "14/15", "inbox shares left today": "5/5", "this run": "refreshed",
    }]
    assert health_problem([fine]) is None
    stale = replace(fine, name="brand", access_expires_at=now - timedelta(hours=1), outcome="error: TikTok answered 503")
    assert health_rows([stale], now)[0]["access token expires"] == "expired 2026-05-01 11:00 UTC"
    problem = health_problem([fine, stale])
    assert problem is not None and str(problem) == (
        "1 account(s) need attention: brand: the token refresh failed (TikTok answered 503); the next run tries again")


def test_cleanup_reconciles_a_post_still_processing_when_polling_gave_up(
    pipeline, media, monkeypatch, asserting_and_emitting_events_worker: EventsWorker  # noqa: F811
) -> None:
    started = datetime.now(UTC)
    pipeline.reset_sandbox({"processing_delay": 600})
    monkeypatch.setenv("TIKTOK_PIPELINE_STATUS_POLL_TIMEOUT", "2")
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    state = publish_video(_request(source), return_state=True)  # Failed: the post is not published (yet)
    result = state.result(raise_on_failure=False)[0]
    assert result.state is PostState.processing and not result.ok and state.is_failed()

    assert cleanup()["posts_checked"] == 1  # TikTok still processing: nothing changes
    assert pipeline.ledger().get_post(result.post_id).state is PostState.processing
    pipeline.sandbox.advance_clock(601)
    outcome = cleanup()
    assert outcome["now_published"] == 1
    assert pipeline.ledger().get_post(result.post_id).state is PostState.published
    assert len(pipeline.sandbox.posts()) == 1
    # What TikTok settled later is announced like an outcome of the publish run.
    asserting_and_emitting_events_worker.wait_until_empty()
    # Every test's ledger numbers its posts from 1: an event an earlier test emitted late (seen on a
    # loaded machine) would carry the same resource id, so only this test's events count.
    announced = [(e.event, e.resource.id) for e in asserting_and_emitting_events_worker._client.events
                 if e.event.startswith("tiktok.post.") and e.occurred >= started]
    assert announced == [("tiktok.post.processing", f"tiktok.post.{result.post_id}"),
                         ("tiktok.post.published", f"tiktok.post.{result.post_id}")]


def test_cleanup_sees_an_inbox_draft_posted_by_the_creator(pipeline, media) -> None:
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    result = publish_video(_request(source, mode="inbox", privacy_level=None))[0]
    assert result.state is PostState.sent_to_inbox
    cleanup()
    assert pipeline.ledger().get_post(result.post_id).state is PostState.sent_to_inbox
    pipeline.sandbox.publish_from_inbox(result.publish_id)
    cleanup()
    assert pipeline.ledger().get_post(result.post_id).state is PostState.published


def test_cleanup_sweeps_working_directories_left_by_crashed_runs(pipeline) -> None:
    from tasks import runtime

    settings = runtime.settings()
    stale = make_work_dir(settings, "crashed-run")
    (stale / "source.mp4").write_bytes(b"x" * 1000)
    old = time.time() - 7 * 3600
    for path in (stale / "source.mp4", stale / ".tiktok-pipeline-workdir", stale):
        os.utime(path, (old, old))
    fresh = make_work_dir(settings, "running-run")
    (fresh / "source.mp4").write_bytes(b"y")

    assert cleanup(stale_work_dir_hours=6)["work_dirs_removed"] == 1
    assert not stale.exists() and fresh.exists()
    (fresh / "source.mp4").unlink()
    (fresh / ".tiktok-pipeline-workdir").unlink()
    fresh.rmdir()


def test_cleanup_removes_the_working_directory_of_a_run_that_ended_without_removing_it(pipeline) -> None:
    """A killed worker leaves its run's directory: it goes as soon as Prefect says the run is over."""
    from prefect import flow

    from tasks import runtime

    @flow(name="a-run-whose-worker-died")
    def noop() -> None:
        return None

    settings = runtime.settings()
    with get_client(sync_client=True) as client:
        crashed = client.create_flow_run(noop, state=Crashed(message="worker killed"))
        running = client.create_flow_run(noop, state=State(type="RUNNING"))
    dirs = {name: make_work_dir(settings, str(run_id)) for name, run_id in
            [("crashed", crashed.id), ("running", running.id), ("unknown", uuid4())]}
    for path in dirs.values():
        (path / "source.mp4").write_bytes(b"x" * 1000)  # fresh: the age sweep would keep every one

    assert cleanup(stale_work_dir_hours=6)["work_dirs_removed"] == 2
    assert not dirs["crashed"].exists() and not dirs["unknown"].exists() and dirs["running"].exists()
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(running.id, Completed(), force=True)
    assert cleanup(stale_work_dir_hours=6)["work_dirs_removed"] == 1 and not dirs["running"].exists()


# --- crashed publish runs ------------------------------------------------------------------------


def _publishing_deployment() -> UUID:
    """A deployment of the publish-s3-object flow of its own (no worker: its runs stay scheduled)."""
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("publish-s3-object")
        return client.create_deployment(flow_id=flow_id, name=f"crash-test-{uuid4().hex[:8]}")


def _run(deployment_id: UUID, parameters: dict, state: State) -> FlowRun:
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
        client.set_flow_run_state(run.id, state, force=True)
        return client.read_flow_run(run.id)


def _crash(run: FlowRun) -> None:
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Crashed(message="no heartbeat"), force=True)


def _runs_of(deployment_id: UUID) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id])))
    return sorted(runs, key=lambda r: r.created)


def _parameters() -> dict[str, str]:
    return {"bucket": "media", "key": f"incoming/{uuid4().hex[:8]}.mp4", "etag": "0123abcd"}


def test_cleanup_retries_a_crashed_publish_run_and_gives_up_loudly_after_three_crashes(pipeline) -> None:
    deployment, parameters = _publishing_deployment(), _parameters()
    first = _run(deployment, parameters, Crashed(message="no heartbeat"))
    other = _run(deployment, _parameters(), Completed())  # another request of the same deployment: left alone

    assert cleanup()["crashed_runs_retried"] >= 1
    runs = _runs_of(deployment)
    (retry,) = [r for r in runs if r.id not in (first.id, other.id)]
    assert retry.parameters == parameters and retry.state.is_scheduled()
    assert retry.idempotency_key == retry_idempotency_key(str(first.id)) and RETRY_TAG in retry.tags
    cleanup()  # the retry has not run yet: no second one
    assert len(_runs_of(deployment)) == 3

    _crash(retry)  # crash 2 of 3: retried again
    cleanup()
    (third,) = [r for r in _runs_of(deployment) if r.id not in (first.id, other.id, retry.id)]
    assert third.idempotency_key == retry_idempotency_key(str(retry.id))
    _crash(third)  # crash 3: no more retries, and the cleanup run says so
    state = cleanup(return_state=True)
    assert state.is_failed()
    assert f"publish-s3-object run {third.name} ({third.id})" in state.message
    assert "crashed 3 times with the same parameters" in state.message
    assert len(_runs_of(deployment)) == 4
    with get_client(sync_client=True) as client:
        assert GIVEN_UP_TAG in client.read_flow_run(third.id).tags
    assert cleanup(return_state=True).is_completed()  # said once; the next cleanups stay green
    assert len(_runs_of(deployment)) == 4


def test_cleanup_leaves_a_crashed_run_that_a_later_run_settled(pipeline) -> None:
    deployment, parameters = _publishing_deployment(), _parameters()
    _run(deployment, parameters, Crashed(message="no heartbeat"))
    _run(deployment, parameters, Completed())  # someone ran the same request again by hand
    cleanup()
    assert len(_runs_of(deployment)) == 2


def test_two_cleanups_at_once_start_one_retry(pipeline, monkeypatch) -> None:
    deployment, parameters = _publishing_deployment(), _parameters()
    crashed = _run(deployment, parameters, Crashed(message="no heartbeat"))
    both_decided, plan = threading.Barrier(2, timeout=60), maintenance_tasks.plan_crash_retries

    def plan_then_wait(*args, **kwargs):  # neither creates its retry before both saw none
        plans = plan(*args, **kwargs)
        both_decided.wait()
        return plans

    monkeypatch.setattr(maintenance_tasks, "plan_crash_retries", plan_then_wait)
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: retry_crashed_runs(24.0), range(2)))
    assert all(any(crashed.name in line for line in o.retried) for o in outcomes)  # both retried it...
    assert len(_runs_of(deployment)) == 2  # ... and the idempotency key made it one run


def test_crash_retry_plan() -> None:
    at = datetime(2026, 5, 1, tzinfo=UTC)

    def run(n: int, state: str, parameters: dict | None = None, tags: frozenset[str] = frozenset()) -> RunRecord:
        return RunRecord(id=f"r{n}", name=f"run-{n}", flow="publish-video", deployment_id="d", parameters=parameters or {"a": 1},
                         state=state, state_name=state.title(), created=at + timedelta(minutes=n), tags=tags)

    def actions(*runs: RunRecord) -> list[tuple[str, str, int]]:
        return [(p.action, p.run.id, p.crashes) for p in plan_crash_retries(runs)]

    assert actions(run(1, "COMPLETED")) == []
    assert actions(run(1, "CRASHED")) == [("retry", "r1", 1)]
    assert actions(run(1, "CRASHED"), run(2, "CRASHED")) == [("retry", "r2", 2)]
    assert actions(run(1, "CRASHED"), run(2, "CRASHED"), run(3, "CRASHED")) == [("give_up", "r3", 3)]
    assert actions(run(1, "CRASHED"), run(2, "CRASHED"), run(3, "CRASHED", tags=frozenset({GIVEN_UP_TAG}))) == \
        [("skip", "r3", 3)]
    assert actions(run(1, "CRASHED"), run(2, "SCHEDULED")) == [("skip", "r1", 1)]  # its retry is on it
    assert actions(run(1, "CRASHED"), run(2, "FAILED")) == [("skip", "r1", 1)]  # settled, red: not crashed
    assert actions(run(2, "CRASHED"), run(1, "COMPLETED")) == [("retry", "r2", 1)]  # an earlier success counts not
    # Parameters tell requests apart, whatever their key order.
    assert actions(run(1, "CRASHED", {"a": 1, "b": 2}), run(2, "COMPLETED", {"b": 2, "a": 1})) == [("skip", "r1", 1)]
    assert sorted(actions(run(1, "CRASHED", {"a": 1}), run(2, "CRASHED", {"a": 2}))) == \
        [("retry", "r1", 1), ("retry", "r2", 1)]


# --- the webhook outbox ----------------------------------------------------------------------------


def test_cleanup_redelivers_the_webhook_a_receiver_that_was_down_missed(
    pipeline, media, monkeypatch, asserting_and_emitting_events_worker: EventsWorker  # noqa: F811
) -> None:
    """A publish run announces its outcome while the receiver is down (connection refused, no retries
    left): the delivery stays in the outbox, and the first cleanup after the receiver is back delivers
    it, with the id of the run's Prefect event. Redelivery delays are cut to nothing here (the ledger's
    clock is real time in flow tests); their schedule is tested in tests/publishing/test_webhooks.py."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks/tiktok"
    for name, value in {"URLS": url, "SECRET": "whsec_cleanup", "RETRIES": "0", "RETRY_BACKOFF": "0",
                        "TIMEOUT": "5"}.items():
        monkeypatch.setenv(f"TIKTOK_PIPELINE_WEBHOOK_{name}", value)
    monkeypatch.setattr(webhooks, "redelivery_delay", lambda attempts: timedelta(0))
    source = pipeline.upload(media.path("compliant"), "in/compliant.mp4")
    [result] = publish_video(_request(source))
    assert result.state is PostState.published
    [delivery] = pipeline.ledger().webhook_deliveries(post_id=result.post_id)
    assert (delivery.status, delivery.attempts, delivery.event_type) == (DeliveryStatus.pending, 1, "tiktok.post.published")

    down = cleanup()  # still down: tried again, kept
    assert (down["webhooks_redelivered"], down["webhooks_failed"], down["webhooks_pending"]) == (0, 1, 1)
    with receiver(port=port) as hook:
        back = cleanup()
    assert (back["webhooks_redelivered"], back["webhooks_pending"], back["webhooks_given_up"]) == (1, 0, 0)
    [received] = hook.deliveries
    assert received.verified("whsec_cleanup") and received.event["data"]["post_id"] == result.post_id
    asserting_and_emitting_events_worker.wait_until_empty()
    [announced] = [e for e in asserting_and_emitting_events_worker._client.events
                   if e.event == "tiktok.post.published" and e.resource.id == f"tiktok.post.{result.post_id}"]
    assert received.event["id"] == str(announced.id) == delivery.event_id  # the same event, not a new one
    kept = pipeline.ledger().get_webhook_delivery(delivery.id)
    assert (kept.status, kept.attempts) == (DeliveryStatus.delivered, 3)
    assert cleanup()["webhooks_redelivered"] == 0  # delivered: never sent again


def test_cleanup_prunes_tiktok_webhooks_kept_past_their_hours(pipeline, monkeypatch) -> None:
    """TikTok's webhooks received and applied over TIKTOK_WEBHOOKS_KEEP_HOURS ago are deleted; a recent
    one (TikTok may still redeliver it) and one not applied yet stay."""
    from ledger import Ledger

    from tasks import runtime

    monkeypatch.setenv("TIKTOK_PIPELINE_TIKTOK_WEBHOOKS_KEEP_HOURS", "100")
    settings = runtime.settings()
    key = settings.encryption_key.get_secret_value() if settings.encryption_key else None
    now = datetime.now(UTC)
    stored = {}
    for name, age in {"old": timedelta(hours=101), "old-pending": timedelta(hours=200), "recent": timedelta(hours=99)}.items():
        book = Ledger(settings.effective_database_url, key, clock=lambda age=age: now - age)
        event, fresh = book.record_received_event(hashlib.sha256(name.encode()).hexdigest(), event="post.publish.complete",
                                                  user_openid="someone", publish_id=None, body="{}")
        assert fresh
        if name != "old-pending":
            book.mark_received_event_applied(event.id, "test event")
        stored[name] = event.id
    assert cleanup()["tiktok_webhooks_pruned"] == 1
    left = {e.id for e in pipeline.ledger().received_events()}
    assert left >= {stored["old-pending"], stored["recent"]} and stored["old"] not in left
    assert cleanup()["tiktok_webhooks_pruned"] == 0
