"""The daemon of `tiktok-pipeline listen`: S3 uploads → SQS → one publish-s3-object run per object version.

The bucket notifies an SQS queue of every s3:ObjectCreated:* (`deployments.listener.provisioning`
sets that up, with a dead-letter queue). The listener long-polls the queue and, for each record that
passes the key filter, checks the object the way the flow will (HEAD, metadata, sidecar) and then
starts the `publish-s3-object` deployment with `idempotency_key=bucket/key@etag`, so a repeated
notification finds the run that exists instead of making another. A message is deleted only once
every record in it has a run (or needs none). A message that cannot be handled ever (not an S3
notification, a record that cannot be read, a bucket not in the allow-list) is dead-lettered with
its reason on its first receive; one that cannot be handled yet is tried again, and dead-lettered
with its reason on the N-th. Decisions about sidecars that arrive late, dead letters and shutdown
are in docs/s3-events.md.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from deployments.listener.keeper import VisibilityKeeper
from deployments.listener.provisioning import ListenerError, bucket_allow_list, dead_letter_policy, sqs_client
from publishing.s3_events import KeyFilter, ObjectCreated, UnreadableMessage, parse_notification, prefect_event
from publishing.s3_events import S3RequestInvalid, check_prefix_defaults, read_object, request_for_object
from publishing.sources import S3Location, SourceError, SourceNotFound, s3_client
from tiktok_pipeline.settings import Settings, http_url_problem

logger = logging.getLogger("tiktok_pipeline.listener")

#: Message attributes set on a message sent to the dead-letter queue.
REASON_ATTRIBUTE = "tiktok-pipeline-reason"
RECEIVES_ATTRIBUTE = "tiktok-pipeline-receive-count"
_MAX_REASON = 4000
#: Characters SQS accepts in a message attribute (XML 1.0's); others are written as escapes.
_SQS_TEXT = re.compile(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: Pause after the queue could not be reached, before polling again (s).
_RECEIVE_ERROR_PAUSE = 5.0


class Readiness(Enum):
    ready = "ready"  # start the run
    skip = "skip"  # nothing to publish: the object is gone or was replaced
    wait = "wait"  # not yet: sidecar missing or invalid, S3 unreachable


class Action(str, Enum):
    deleted = "deleted"  # done: every record has its run or needs none
    retry = "retry"  # left in the queue, seen again after s3_retry_delay
    dead_lettered = "dead-lettered"  # sent to the dead-letter queue with the reason, then deleted
    released = "released"  # not handled (shutdown): visible again at once
    redelivered = "redelivered"  # SQS could not be told: left as is, visible again after the timeout


@dataclass(frozen=True)
class Outcome:
    message_id: str
    action: Action
    receive_count: int
    dispatched: tuple[str, ...] = ()  # flow run ids started or found (event ids when s3_start_runs is off)
    problems: tuple[str, ...] = ()  # every problem, those of `refused` included
    refused: tuple[str, ...] = ()  # the problems retrying cannot help with (dead-lettered at once)


def _receive_count(message: dict[str, Any]) -> int:
    try:
        return max(1, int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1")))
    except (TypeError, ValueError):
        return 1


def one_line(text: str) -> str:
    """`text` with every character that is not printable (newlines, ESC, bidi overrides, lone
    surrogates) written as its escape: what a message says cannot forge log lines or attributes."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _fit(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8 (whole characters), with SQS-safe characters."""
    text = _SQS_TEXT.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[: max(0, max_bytes - 3)].decode("utf-8", "ignore") + "..." if max_bytes >= 3 else ""


class Listener:
    """Turns the queue's S3 notifications into publish-s3-object runs (see the module docstring).

    `run()` polls until `stop` is set; `receive()` and `handle_batch()` are one step of it.
    """

    def __init__(self, settings: Settings, *, stop: threading.Event | None = None) -> None:
        if not settings.s3_queue_url:
            raise ListenerError("no queue to listen to: set TIKTOK_PIPELINE_S3_QUEUE_URL (or pass --queue-url)")
        if problem := http_url_problem(settings.s3_queue_url):  # --queue-url bypasses the settings' check
            raise ListenerError(f"the queue to listen to (TIKTOK_PIPELINE_S3_QUEUE_URL or --queue-url): {problem}")
        try:
            check_prefix_defaults(settings.s3_prefix_defaults)
        except S3RequestInvalid as exc:
            raise ListenerError(str(exc), detail=exc.detail) from exc
        self.settings = settings
        self.queue_url = settings.s3_queue_url
        self.sqs = sqs_client(self.queue_url, settings.aws_region)
        self.s3 = s3_client(settings)
        self.filter = KeyFilter.of(settings.s3_prefixes, settings.s3_suffixes)
        self.policy = dead_letter_policy(self.sqs, self.queue_url, settings)
        self.buckets = bucket_allow_list(self.sqs, self.queue_url, settings)
        self.stop = stop or threading.Event()

    # one poll --------------------------------------------------------------------------------

    def receive(self, wait_seconds: int | None = None) -> list[dict[str, Any]]:
        """Up to s3_batch_size messages, hidden for s3_visibility_timeout seconds."""
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.settings.s3_batch_size,
            WaitTimeSeconds=self.settings.s3_wait_seconds if wait_seconds is None else wait_seconds,
            VisibilityTimeout=self.settings.s3_visibility_timeout,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return list(answer.get("Messages", []))

    def handle_batch(self, messages: Sequence[dict[str, Any]]) -> list[Outcome]:
        """Handle messages in order; when asked to stop, finish the one in hand and release the rest."""
        outcomes = []
        with VisibilityKeeper(self.sqs, self.queue_url, self.settings.s3_visibility_timeout, messages) as keeper:
            for message in messages:
                if self.stop.is_set():
                    keeper.done(message)
                    outcomes.append(self._release(message))
                else:
                    outcomes.append(self._handle(message, keeper))
        return outcomes

    def run(self) -> None:
        logger.info("listening to %s (dead letters after %d receives to %s)",
                    self.queue_url, self.policy.max_receives, self.policy.queue_url)
        logger.info("publishing objects of %s (from %s); other buckets' notifications are dead-lettered",
                    ", ".join(self.buckets.buckets), self.buckets.source)
        while not self.stop.is_set():
            try:
                messages = self.receive()
            except (ClientError, BotoCoreError) as exc:
                logger.error("cannot receive from %s: %s; trying again in %.0f s", self.queue_url, exc, _RECEIVE_ERROR_PAUSE)
                self.stop.wait(_RECEIVE_ERROR_PAUSE)
                continue
            self.handle_batch(messages)
        logger.info("stopped listening to %s", self.queue_url)

    # one message -----------------------------------------------------------------------------

    def _handle(self, message: dict[str, Any], keeper: VisibilityKeeper) -> Outcome:
        count = _receive_count(message)
        final = count >= self.policy.max_receives
        try:
            dispatched, waiting, refused = self._dispatch_message(message, final=final)
        except UnreadableMessage as exc:  # retrying cannot help
            dispatched, waiting, refused = (), (), (one_line(str(exc)),)
        except Exception as exc:  # a bug or an outage nobody classified: tried again, dead-lettered at the N-th
            problem = one_line(f"unexpected error while handling it: {type(exc).__name__}: {exc}")
            logger.error("message %s (receive %d of %d): %s", message.get("MessageId"), count,
                         self.policy.max_receives, problem)
            logger.debug("message %s: the unexpected error", message.get("MessageId"), exc_info=True)
            dispatched, waiting, refused = (), (problem,), ()
        finally:
            keeper.done(message)
        try:
            return self._settle(message, count, dispatched, waiting, refused, final=final)
        except (ClientError, BotoCoreError) as exc:  # SQS unreachable: the message comes back by itself
            logger.error("message %s: could not delete, retry or dead-letter it (%s); it comes back after the "
                         "visibility timeout", message.get("MessageId"), one_line(str(exc)))
            return Outcome(message["MessageId"], Action.redelivered, count, dispatched, refused + waiting, refused)

    def _settle(self, message: dict[str, Any], count: int, dispatched: tuple[str, ...], waiting: tuple[str, ...],
                refused: tuple[str, ...], *, final: bool) -> Outcome:
        """Delete (nothing wrong), dead-letter (refused, nothing waiting; or the N-th receive), else retry."""
        problems = refused + waiting
        if not problems:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            return Outcome(message["MessageId"], Action.deleted, count, dispatched)
        if final or not waiting:
            return self._dead_letter(message, count, dispatched, problems, refused)
        self.sqs.change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=self.settings.s3_retry_delay
        )
        logger.warning("message %s (receive %d of %d) tried again in %d s: %s", message["MessageId"], count,
                       self.policy.max_receives, self.settings.s3_retry_delay, "; ".join(problems))
        return Outcome(message["MessageId"], Action.retry, count, dispatched, problems, refused)

    def _dispatch_message(
        self, message: dict[str, Any], *, final: bool
    ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """Start the run of every record that is ready (all of them on the final receive, so that
        a bad request is recorded as a failed run). Returns (dispatched, problems that may pass,
        problems that cannot: records that cannot be read, buckets not allowed)."""
        notification = parse_notification(message.get("Body", ""))
        if notification.test_event:
            logger.info("message %s: S3's test event, nothing to publish", message["MessageId"])
        if notification.ignored:
            logger.info("message %s: ignored %s records", message["MessageId"],
                        one_line(", ".join(notification.ignored)))
        dispatched: list[str] = []
        waiting: list[str] = []
        refused = [one_line(reason) for reason in notification.refused]
        for record in notification.created:
            shown = one_line(record.uri)
            if record.bucket not in self.buckets.buckets:
                refused.append(f"{shown}: the bucket {record.bucket!r} is not one this listener publishes "
                               f"({', '.join(self.buckets.buckets)}, from {self.buckets.source})")
                continue
            if reason := self.filter.skip_reason(record.key, record.bucket):
                logger.info("%s skipped: %s", shown, reason)
                continue
            readiness, reason = self.check(record)
            if readiness is Readiness.skip:
                logger.info("%s skipped: %s", shown, one_line(reason or ""))
                continue
            if readiness is Readiness.wait:
                waiting.append(one_line(reason or f"{shown}: not ready"))
                if not final:
                    continue
            try:
                dispatched.append(self.dispatch(record))
            except Exception as exc:  # Prefect unreachable, deployment missing, ...: the message stays
                problem = one_line(f"{record.uri}: could not start its run: {type(exc).__name__}: {exc}")
                logger.error("%s", problem)
                waiting.append(problem)
        return tuple(dispatched), tuple(waiting), tuple(refused)

    def check(self, record: ObjectCreated) -> tuple[Readiness, str | None]:
        """Would the run succeed in reading its request? The same checks as the flow's first task."""
        location = S3Location(record.bucket, record.key)
        try:
            snapshot = read_object(self.s3, location)
        except SourceNotFound:
            return Readiness.skip, "the object was deleted since the event"
        except SourceError as exc:
            return Readiness.wait, f"{record.uri}: {exc}"
        if snapshot.etag != record.etag:
            return Readiness.skip, f"replaced by a newer version (ETag {snapshot.etag}), which has its own event"
        try:
            request_for_object(snapshot, prefix_defaults=self.settings.s3_prefix_defaults,
                               require_sidecar=self.settings.s3_require_sidecar)
        except S3RequestInvalid as exc:
            return Readiness.wait, str(exc)
        return Readiness.ready, None

    def dispatch(self, record: ObjectCreated) -> str:
        """Start (or find) the run for `record` and emit s3.object.created; returns the run id.

        With s3_start_runs off only the event is emitted (a deployment trigger starts the run) and
        the event id is returned.
        """
        if not self.settings.s3_start_runs:
            event = emit(prefect_event(record, dispatch="trigger"))
            logger.info("%s: emitted %s for the deployment trigger", record.uri, event)
            return event
        from prefect.deployments import run_deployment

        flow_run = run_deployment(
            self.settings.s3_deployment,
            parameters={"bucket": record.bucket, "key": record.key, "etag": record.etag},
            timeout=0,
            idempotency_key=record.run_key,
            as_subflow=False,
            tags=["s3-event"],
        )
        logger.info("%s: flow run %s (%s)", record.uri, flow_run.name, flow_run.id)
        try:
            emit(prefect_event(record, dispatch="listener", flow_run_id=str(flow_run.id)))
        except Exception as exc:  # the run exists, which is what matters; the event is for observers
            logger.warning("%s: could not emit its event: %s", record.uri, exc)
        return str(flow_run.id)

    def _dead_letter(
        self, message: dict[str, Any], count: int, dispatched: tuple[str, ...], problems: tuple[str, ...],
        refused: tuple[str, ...] = (),
    ) -> Outcome:
        reason = "; ".join(problems)
        body = message.get("Body", "")
        # The dead-letter queue takes body and attributes up to its MaximumMessageSize: the reason
        # gives way to the body (which must stay as it came, for a replay).
        receives = str(count)
        room = (self.policy.max_message_bytes - len(body.encode("utf-8", "surrogatepass"))
                - len(RECEIVES_ATTRIBUTE) - len("Number") - len(receives) - len(REASON_ATTRIBUTE) - len("String"))
        attributes = {RECEIVES_ATTRIBUTE: {"DataType": "Number", "StringValue": receives}}
        if (shown := _fit(reason, min(_MAX_REASON, room))):
            attributes[REASON_ATTRIBUTE] = {"DataType": "String", "StringValue": shown}
        self.sqs.send_message(QueueUrl=self.policy.queue_url, MessageBody=body, MessageAttributes=attributes)
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        logger.error("message %s dead-lettered after %d receive%s: %s", message["MessageId"], count,
                     "" if count == 1 else "s", reason)
        return Outcome(message["MessageId"], Action.dead_lettered, count, dispatched, problems, refused)

    def _release(self, message: dict[str, Any]) -> Outcome:
        count = _receive_count(message)
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        except (ClientError, BotoCoreError) as exc:  # it comes back after the visibility timeout instead
            logger.warning("message %s: could not release it: %s", message["MessageId"], exc)
            return Outcome(message["MessageId"], Action.redelivered, count)
        return Outcome(message["MessageId"], Action.released, count)


def emit(fields: dict[str, Any]) -> str:
    """Send one Prefect event and wait until the server has it (connection closed cleanly);
    raises when it cannot be sent. Returns the event id."""
    from prefect.events import Event
    from prefect.events.clients import get_events_client

    event = Event(**fields)

    async def send() -> None:
        async with get_events_client() as client:
            await client.emit(event)

    asyncio.run(send())
    return str(event.id)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT ask the listener to stop after the message in hand; a second one stops at
    once (whatever was in hand is not deleted, so SQS delivers it again)."""

    def request_stop(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        logger.info("%s: stopping after the message in hand", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
