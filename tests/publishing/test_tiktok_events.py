"""Contract tests of TikTok's webhooks: the sandbox sends them over real HTTP, signed with the app's
client secret by its own code, to the receiver app over a SQLite ledger; faults lose, duplicate,
reorder, delay and forge them. Whatever arrives, the ledger ends right: each post settled once,
by the webhook or by polling (the safety net), a forged or stale delivery refused and not stored.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn

from deployments.tiktok_webhooks import WEBHOOK_PATH, receiver_app
from ledger import AccountStatus, PostState
from publishing import PublishRequest
from publishing.posting import check_creator, init_post, poll_status, upload
from publishing.services import Services
from publishing.tiktok_events import accept_delivery, apply_pending
from sandbox import free_port


@contextmanager
def running_receiver(services: Services, **options: Any) -> Iterator[str]:
    """The receiver app (with `options`) under uvicorn on a free loopback port, in a thread; its webhook URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(receiver_app(services, **options), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the receiver did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def receiver(services: Services, sandbox) -> Iterator[str]:
    with running_receiver(services) as url:
        sandbox.set_webhook_url(url)
        yield url
    sandbox.set_webhook_url(None)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.1)
    return found


def uploaded_post(services: Services, clip, privacy: str = "SELF_ONLY", caption: str = "webhook contract"):
    """A post initialized and fully uploaded through the service layer; nobody polls it."""
    source, prepared = clip
    request = PublishRequest(source="/videos/clip.mp4", accounts=["main"], caption=caption, privacy_level=privacy)
    check = check_creator(services, "main", request)
    started = init_post(services, request, check, source, prepared)
    done = upload(services, started, prepared)
    return done, check


def deliveries(sandbox, event: str) -> list[dict[str, Any]]:
    return [w for w in sandbox.webhooks() if w["event"] == event]


def state_of(services: Services, post_id: int) -> PostState:
    return services.ledger.get_post(post_id).state


def queued_without_receiver(services: Services, sandbox, clip) -> tuple[Any, dict[str, Any]]:
    """A post uploaded while the callback URL answers nobody: its complete event, as the sandbox keeps it."""
    sandbox.set_webhook_url(f"http://127.0.0.1:{free_port()}{WEBHOOK_PATH}")
    try:
        result, _ = uploaded_post(services, clip)
        (sent,) = wait_for("the event queued", lambda: deliveries(sandbox, "post.publish.complete"))
    finally:
        sandbox.set_webhook_url(None)
    return result, sent


def stored_but_not_applied(services: Services, sandbox, clip):
    """(the post, its complete event stored by `accept_delivery`, as a receiver does before its 200)."""
    result, sent = queued_without_receiver(services, sandbox, clip)
    stored, _, _ = accept_delivery(services, sent["raw_body"].encode(), sent["signature"])
    return result, stored


def test_a_post_is_settled_by_its_webhook_without_polling(services, sandbox, receiver, clip) -> None:
    result, _ = uploaded_post(services, clip)
    wait_for("the post published by webhook", lambda: state_of(services, result.post_id) is PostState.published)
    (sent,) = wait_for("the delivery answered", lambda: [w for w in deliveries(sandbox, "post.publish.complete")
                                                          if w["state"] == "delivered"])
    assert sent["publish_id"] == result.publish_id and [a["status_code"] for a in sent["attempts"]] == [200]
    (stored,) = wait_for("applied", lambda: [e for e in services.ledger.received_events(publish_id=result.publish_id)
                                             if e.applied_at is not None])
    assert stored.outcome == f"post {result.post_id}: uploaded -> published"
    events = [e.message for e in services.ledger.post_events(result.post_id)]
    assert "published (public post id not assigned yet)" in events


def test_a_post_settled_by_its_webhook_before_its_first_poll_is_reported_as_settled(
        services, sandbox, receiver, clip, monkeypatch) -> None:
    """TikTok may settle a small upload before the poll task even starts: bench/throughput.py saw 1
    run in 60 end Failed ("uploaded, but its status was never read") with its post published. The
    poll reports what the webhook recorded, and asks TikTok nothing."""
    result, check = uploaded_post(services, clip)
    wait_for("the post published by webhook", lambda: state_of(services, result.post_id) is PostState.published)
    monkeypatch.setattr(services, "with_client", lambda *_: pytest.fail("TikTok asked about a settled post"))
    done = poll_status(services, result, check.username)
    assert result.state is PostState.uploaded
    assert done.state is PostState.published and done.ok and done.publish_id == result.publish_id, done
    assert done.timings[-1].step == "poll"


def test_a_duplicated_delivery_is_stored_and_applied_once(services, sandbox, receiver, clip) -> None:
    sandbox.add_fault("webhook", "duplicate", times=1)
    result, _ = uploaded_post(services, clip)
    wait_for("both deliveries answered", lambda: len([w for w in deliveries(sandbox, "post.publish.complete")
                                                      if w["state"] == "delivered"]) == 2)
    # Applied after the answer: wait for it.
    (stored,) = wait_for("applied", lambda: [e for e in services.ledger.received_events(publish_id=result.publish_id)
                                             if e.applied_at is not None])
    assert state_of(services, result.post_id) is PostState.published
    moves = [(e.from_state, e.to_state) for e in services.ledger.post_events(result.post_id) if e.from_state != e.to_state]
    assert [to for _, to in moves].count(PostState.published) == 1
    assert stored.outcome == f"post {result.post_id}: uploaded -> published"


def test_publicly_available_before_complete_publishes_with_the_post_id(services, sandbox, receiver, clip) -> None:
    sandbox.add_fault("webhook", "out_of_order", times=1, event="post.publish.complete")
    result, check = uploaded_post(services, clip, privacy="PUBLIC_TO_EVERYONE")
    wait_for("complete held back", lambda: any(w["state"] == "held" for w in deliveries(sandbox, "post.publish.complete")))
    sandbox.advance_clock(61)  # moderation: the post becomes publicly available, then complete follows it
    post = wait_for("published with its post id", lambda: (p := services.ledger.get_post(result.post_id)).post_ids and p)
    assert post.state is PostState.published
    assert post.share_url == f"https://www.tiktok.com/@{check.username}/video/{post.post_ids[0]}"
    wait_for("complete delivered after it", lambda: any(w["state"] == "delivered"
                                                       for w in deliveries(sandbox, "post.publish.complete")))
    def applied() -> list[str | None]:
        stored = services.ledger.received_events(publish_id=result.publish_id)
        return [e.outcome for e in stored] if len(stored) == 2 and all(e.applied_at for e in stored) else []

    assert wait_for("both applied", applied) == [f"post {result.post_id}: uploaded -> published",
                                                 f"post {result.post_id} is published already"]


def test_a_lost_webhook_leaves_the_post_to_polling(services, sandbox, receiver, clip) -> None:
    sandbox.add_fault("webhook", "lost", times=1)
    result, check = uploaded_post(services, clip)
    wait_for("the event lost", lambda: any(w["state"] == "lost" for w in deliveries(sandbox, "post.publish.complete")))
    assert state_of(services, result.post_id) is PostState.uploaded
    assert services.ledger.received_events(publish_id=result.publish_id) == []
    assert poll_status(services, result, check.username).state is PostState.published  # the safety net


class Lines:
    """A logger that keeps what the step said."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: object) -> None:
        self.lines.append(message % args)

    warning = error = info


def with_webhooks(services: Services, poll_interval: float) -> Services:
    """The same ledger and app with TikTok's webhooks on: polling is the safety net every `poll_interval`."""
    settings = services.settings.model_copy(update={"tiktok_webhooks": True, "status_poll_timeout": 300,
                                                    "tiktok_webhooks_poll_interval": poll_interval})
    return Services(settings, ledger=services.ledger)


def test_with_webhooks_on_the_poll_ends_when_the_webhook_settles_the_post(services, sandbox, receiver, clip) -> None:
    """The only status/fetch fails (a 500), so the next one is a minute away: the webhook settles the
    post meanwhile, and the poll task ends on it instead of waiting for that fetch."""
    sandbox.add_fault("status_fetch", "error_500", times=1)
    result, check = uploaded_post(services, clip)
    log = Lines()
    polled = poll_status(with_webhooks(services, poll_interval=60), result, check.username, log)
    assert polled.state is PostState.published
    assert f"post {result.post_id} ({result.publish_id}): published, told by TikTok's webhook, after 0 status " \
           "poll(s)" in log.lines, log.lines
    (stored,) = [e for e in services.ledger.received_events(publish_id=result.publish_id) if e.applied_at]
    assert stored.event == "post.publish.complete" and stored.outcome.endswith("-> published")


def test_with_webhooks_on_a_lost_webhook_is_settled_by_the_safety_net(services, sandbox, receiver, clip) -> None:
    sandbox.add_fault("webhook", "lost", times=1)
    result, check = uploaded_post(services, clip)
    log = Lines()
    polled = poll_status(with_webhooks(services, poll_interval=2), result, check.username, log)
    assert polled.state is PostState.published
    assert not any("told by TikTok's webhook" in line for line in log.lines), log.lines
    assert any(line.startswith(f"post {result.post_id} ({result.publish_id}): published after ") for line in log.lines)
    assert services.ledger.received_events(publish_id=result.publish_id) == []


@pytest.mark.parametrize("fault", ["bad_signature", "stale_signature"])
def test_a_forged_or_replayed_delivery_is_refused_and_not_stored(services, sandbox, receiver, clip,
                                                                fault) -> None:
    sandbox.add_fault("webhook", fault, times=1)
    result, _ = uploaded_post(services, clip)
    (sent,) = wait_for("every attempt refused", lambda: [w for w in deliveries(sandbox, "post.publish.complete")
                                                         if w["state"] == "failed"], timeout=60)
    assert {a["status_code"] for a in sent["attempts"]} == {401}
    assert services.ledger.received_events(publish_id=result.publish_id) == []
    assert state_of(services, result.post_id) is PostState.uploaded


def test_a_late_webhook_after_polling_changes_nothing(services, sandbox, receiver, clip) -> None:
    sandbox.add_fault("webhook", "late", times=1, latency_ms=1500)
    result, check = uploaded_post(services, clip)
    assert poll_status(services, result, check.username).state is PostState.published
    (stored,) = wait_for("the late event applied", lambda: [e for e in services.ledger.received_events(
        publish_id=result.publish_id) if e.applied_at is not None])
    assert stored.outcome == f"post {result.post_id} is published already"


def test_authorization_removed_marks_the_account_at_once(services, sandbox, receiver) -> None:
    assert sandbox.deauthorize("studio_main", reason=1)
    account = wait_for("needs reconnect", lambda: (a := services.ledger.get_account("main")).status
                       is AccountStatus.needs_reconnect and a)
    assert account.status_reason == "TikTok removed the app's authorization: the user disconnected the app in TikTok"
    assert services.ledger.get_account("private").status is AccountStatus.active


def test_an_event_stored_but_not_applied_is_applied_after_a_restart(services, sandbox, clip) -> None:
    """A receiver that stored a delivery (and answered 200) but stopped before applying it: the next
    start's `apply_pending` applies it. The delivery is the sandbox's own, signed body; no receiver
    listens at the URL, so the sandbox keeps it."""
    result, sent = queued_without_receiver(services, sandbox, clip)
    stored, event, fresh = accept_delivery(services, sent["raw_body"].encode(), sent["signature"])
    assert fresh and stored.applied_at is None and event.publish_id == result.publish_id
    assert state_of(services, result.post_id) is PostState.uploaded
    (outcome,) = apply_pending(services)
    assert outcome.changed and state_of(services, result.post_id) is PostState.published
    assert apply_pending(services) == []
    again, _, fresh = accept_delivery(services, sent["raw_body"].encode(), sent["signature"])
    assert not fresh and again.id == stored.id and again.applied_at is not None


def test_each_applied_webhook_is_one_prefect_event_about_its_post(services, sandbox, clip) -> None:
    from publishing.tiktok_events import apply_stored, prefect_event

    result, sent = queued_without_receiver(services, sandbox, clip)
    stored, _, _ = accept_delivery(services, sent["raw_body"].encode(), sent["signature"])
    fields = prefect_event(stored, apply_stored(services, stored))
    assert fields["event"] == "tiktok.webhook.post.publish.complete"
    assert fields["resource"] == {"prefect.resource.id": f"tiktok.post.{result.post_id}",
                                  "prefect.resource.name": f"main post {result.post_id}", "tiktok.changed": "true",
                                  "tiktok.publish_id": result.publish_id}
    assert fields["related"][0]["prefect.resource.id"] == "tiktok.account.main"
    assert fields["payload"]["outcome"] == f"post {result.post_id}: uploaded -> published"
    again, _, fresh = accept_delivery(services, sent["raw_body"].encode(), sent["signature"])
    assert not fresh and prefect_event(again, apply_stored(services, again))["id"] == fields["id"]  # one event


def test_apply_pending_applies_every_stored_event_however_many(services, monkeypatch) -> None:
    import json

    from publishing import tiktok_events
    from tiktok import sign_webhook

    monkeypatch.setattr(tiktok_events, "PENDING_BATCH", 2)
    secret, now = services.settings.client_secret.get_secret_value(), int(time.time())
    for n in range(5):
        body = json.dumps({"client_key": services.settings.client_key, "event": "post.publish.complete",
                           "create_time": now, "user_openid": "act.someone",
                           "content": json.dumps({"publish_id": f"v_pub_unknown_{n}", "publish_type": "DIRECT_PUBLISH"})})
        accept_delivery(services, body.encode(), sign_webhook(body.encode(), secret, now))
    outcomes = apply_pending(services)
    assert [o.summary for o in outcomes] == [f"ignored: no post has publish_id v_pub_unknown_{n}" for n in range(5)]
    assert services.ledger.received_events(pending_only=True) == []


def _command_env(services: Services, sandbox, **extra: str) -> dict[str, str]:
    settings = services.settings
    return {**os.environ, **sandbox.env(),
            "TIKTOK_PIPELINE_DATA_DIR": str(settings.data_dir),
            "TIKTOK_PIPELINE_DATABASE_URL": settings.effective_database_url,
            "TIKTOK_PIPELINE_ENCRYPTION_KEY": settings.encryption_key.get_secret_value(), **extra}


def test_the_serve_command_applies_what_was_stored_then_receives(services, sandbox, clip, tmp_path) -> None:
    """`tiktok-pipeline webhooks serve` as a user runs it, over the ledger of the test's services."""
    sandbox.set_webhook_url(f"http://127.0.0.1:{free_port()}{WEBHOOK_PATH}")  # nobody there yet
    first, check = uploaded_post(services, clip, caption="stored before the receiver started")
    (sent,) = wait_for("the event queued", lambda: deliveries(sandbox, "post.publish.complete"))
    accept_delivery(services, sent["raw_body"].encode(), sent["signature"])  # stored, then the receiver stopped
    command = subprocess.Popen([sys.executable, "-m", "deployments.cli", "webhooks", "serve", "--port", "0"],
                               env=_command_env(services, sandbox), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        assert command.stdout is not None
        applied = command.stdout.readline()
        assert applied.startswith(f"applied 1 event(s) stored before: post {first.post_id}: uploaded -> published"), applied
        listening = command.stdout.readline()
        url = re.search(r"on (http://127\.0\.0\.1:\d+/tiktok/webhooks)$", listening.strip())
        assert url, listening
        sandbox.set_webhook_url(url.group(1))
        second, _ = uploaded_post(services, clip, caption="received by the command")
        wait_for("published by the command's receiver", lambda: state_of(services, second.post_id) is PostState.published)
    finally:
        sandbox.set_webhook_url(None)
        command.send_signal(signal.SIGINT)
        output, _ = command.communicate(timeout=30)
    # Ctrl-C stops it at once, the way the other commands end on it (README "Exit codes": 130), quietly.
    assert command.returncode == 130 and "Traceback" not in output, output
    assert state_of(services, first.post_id) is PostState.published


def test_the_serve_command_refuses_to_start_without_the_client_secret(services, sandbox) -> None:
    done = subprocess.run([sys.executable, "-m", "deployments.cli", "webhooks", "serve", "--port", "0"],
                          env=_command_env(services, sandbox, TIKTOK_PIPELINE_CLIENT_SECRET=""),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: TIKTOK_PIPELINE_CLIENT_SECRET is not set: TikTok's signatures cannot be "
                                   "checked without it")


def test_the_list_command_shows_what_was_received_newest_first(services, sandbox, clip) -> None:
    import json

    result, stored = stored_but_not_applied(services, sandbox, clip)

    def listed(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "deployments.cli", "webhooks", "list", *args],
                              env=_command_env(services, sandbox), capture_output=True, text=True, timeout=60)

    pending = listed("--pending")
    assert pending.returncode == 0 and "post.publish.complete" in pending.stdout and "pending" in pending.stdout
    apply_pending(services)
    (shown,) = json.loads(listed("--publish-id", result.publish_id, "--json").stdout)
    assert shown["id"] == stored.id and shown["outcome"] == f"post {result.post_id}: uploaded -> published"
    assert listed("--pending").stdout.strip() == "no TikTok webhooks match"
    refused = listed("--limit", "0")
    assert refused.returncode == 2 and "--limit must be 1 or more" in refused.stderr


@pytest.mark.parametrize("failures", [2, 6])
def test_an_event_the_ledger_could_not_apply_is_applied_again(services, sandbox, clip, monkeypatch, failures) -> None:
    """Applying fails (a ledger busy with other writers): tried again after a pause (2 failures), and
    when every try failed, by the receiver's sweep of what is stored but not applied (6 failures)."""
    from ledger import DatabaseUnavailable

    real, calls = services.ledger.get_received_event, []

    def busy_at_first(event_id: int):
        calls.append(event_id)
        if len(calls) <= failures:
            raise DatabaseUnavailable("database is locked")
        return real(event_id)

    monkeypatch.setattr(services.ledger, "get_received_event", busy_at_first)
    with running_receiver(services, retry_delays=(0.1, 0.1, 0.1, 0.1), sweep_every=0.5) as url:
        sandbox.set_webhook_url(url)
        try:
            result, _ = uploaded_post(services, clip)
            wait_for("published once the ledger takes it",
                     lambda: state_of(services, result.post_id) is PostState.published)
        finally:
            sandbox.set_webhook_url(None)
    assert len(calls) > failures  # the sweep may try beside the retries: the lock keeps them one at a time
