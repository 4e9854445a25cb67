"""The keeper thread of the listener: received messages stay hidden while they wait or are handled."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger("tiktok_pipeline.listener")


class VisibilityKeeper:
    """Keeps received messages hidden while they wait or are handled: a crashed listener stops
    extending them, so SQS hands them to another listener after the visibility timeout."""

    def __init__(self, sqs: Any, queue_url: str, timeout: int, messages: Sequence[dict[str, Any]]) -> None:
        self._sqs, self._queue_url, self._timeout = sqs, queue_url, timeout
        self._pending = {m["MessageId"]: m["ReceiptHandle"] for m in messages}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-visibility", daemon=True)

    def __enter__(self) -> VisibilityKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def done(self, message: dict[str, Any]) -> None:
        """Stop extending `message` (before it is deleted, retried or released)."""
        with self._lock:
            self._pending.pop(message["MessageId"], None)

    def _run(self) -> None:
        while not self._stop.wait(max(self._timeout / 3, 0.2)):
            with self._lock:
                entries = [{"Id": f"m{i}", "ReceiptHandle": handle, "VisibilityTimeout": self._timeout}
                           for i, handle in enumerate(self._pending.values())]
                if not entries:
                    continue
                try:
                    failed = self._sqs.change_message_visibility_batch(QueueUrl=self._queue_url, Entries=entries).get("Failed")
                except (ClientError, BotoCoreError) as exc:
                    logger.warning("could not extend the visibility of %d messages: %s", len(entries), exc)
                    continue
                if failed:
                    logger.warning("could not extend the visibility of some messages: %s", failed)
