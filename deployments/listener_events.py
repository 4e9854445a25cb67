"""S3 event notifications as SQS delivers them: parse, filter, name. No I/O here.

A message body is S3's notification JSON (https://docs.aws.amazon.com/AmazonS3/latest/userguide/
notification-content-structure.html), possibly wrapped in an SNS envelope when the bucket notifies
a topic the queue subscribes to. Keys arrive URL-encoded with `+` for spaces.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from flows.s3_events import is_sidecar_key, normalize_etag
from tiktok_pipeline.errors import PipelineError

#: Name of the Prefect event the listener emits for each object it hands on.
EVENT_NAME = "s3.object.created"
#: Resource label saying who starts the run: "listener" (it did) or "trigger" (a deployment
#: trigger must); the trigger in prefect.yaml matches "trigger" only, so both wirings can coexist.
DISPATCH_LABEL = "tiktok-pipeline.dispatch"
_EVENT_NAMESPACE = uuid.UUID("6f1f3c1e-2b7a-4a59-9a51-3f4c2f0e5a11")


class UnreadableMessage(PipelineError):
    """A queue message that is not an S3 event notification: retrying cannot help."""


@dataclass(frozen=True)
class ObjectCreated:
    """One s3:ObjectCreated:* record."""

    bucket: str
    key: str  # decoded
    etag: str  # without quotes
    size: int | None
    event_name: str  # e.g. ObjectCreated:Put
    event_time: str | None = None
    sequencer: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def run_key(self) -> str:
        """Idempotency key of the flow run: one run per version (ETag) of an object."""
        return f"{self.bucket}/{self.key}@{self.etag}"


@dataclass(frozen=True)
class Notification:
    """What one message holds: object creations, S3's test event, or other records to ignore."""

    created: tuple[ObjectCreated, ...] = ()
    ignored: tuple[str, ...] = ()  # event names of records that are not object creations
    test_event: bool = False


def _record(raw: dict[str, Any]) -> ObjectCreated:
    s3 = raw.get("s3")
    if not isinstance(s3, dict):
        raise UnreadableMessage("an S3 event record has no `s3` section", detail=raw)
    bucket = (s3.get("bucket") or {}).get("name")
    obj = s3.get("object") or {}
    if not bucket or not obj.get("key") or not obj.get("eTag"):
        raise UnreadableMessage("an S3 event record lacks the bucket name, object key or eTag", detail=raw)
    size = obj.get("size")
    return ObjectCreated(
        bucket=str(bucket),
        key=unquote_plus(str(obj["key"])),
        etag=normalize_etag(str(obj["eTag"])),
        size=int(size) if size is not None else None,
        event_name=str(raw.get("eventName", "")),
        event_time=raw.get("eventTime"),
        sequencer=obj.get("sequencer"),
    )


def parse_notification(body: str) -> Notification:
    """Read one SQS message body. Raises UnreadableMessage when it is not an S3 notification."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise UnreadableMessage(f"message body is not JSON: {exc.msg} at position {exc.pos}", detail=body[:500]) from exc
    if isinstance(data, dict) and data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        return parse_notification(data["Message"])  # S3 → SNS → SQS without raw delivery
    if not isinstance(data, dict):
        raise UnreadableMessage("message body is not a JSON object", detail=body[:500])
    if data.get("Event") == "s3:TestEvent":  # sent when the bucket notification is configured
        return Notification(test_event=True)
    records = data.get("Records")
    if not isinstance(records, list):
        raise UnreadableMessage("message body has no S3 `Records` list", detail=body[:500])
    created: list[ObjectCreated] = []
    ignored: list[str] = []
    for raw in records:
        if not isinstance(raw, dict):
            raise UnreadableMessage("an S3 event record is not a JSON object", detail=raw)
        name = str(raw.get("eventName", ""))
        if name.removeprefix("s3:").startswith("ObjectCreated:"):
            created.append(_record(raw))
        else:
            ignored.append(name or "(no eventName)")
    return Notification(created=tuple(created), ignored=tuple(ignored))


@dataclass(frozen=True)
class KeyFilter:
    """Which keys are videos to publish: under a prefix (any when none), with a known suffix."""

    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()

    @classmethod
    def of(cls, prefixes: list[str] | str, suffixes: list[str] | str) -> KeyFilter:
        def listed(value: list[str] | str) -> tuple[str, ...]:
            items = value.split(",") if isinstance(value, str) else value
            return tuple(item.strip() for item in items if item.strip())

        return cls(prefixes=listed(prefixes), suffixes=tuple(s.lower() for s in listed(suffixes)))

    def skip_reason(self, key: str) -> str | None:
        """Why `key` is not published, or None when it is."""
        if is_sidecar_key(key):
            return "a sidecar, never published itself"
        if self.prefixes and not key.startswith(self.prefixes):
            return f"not under {', '.join(self.prefixes)}"
        if self.suffixes and not key.lower().endswith(self.suffixes):
            return f"not a {', '.join(self.suffixes)} file"
        return None


def event_id(record: ObjectCreated) -> uuid.UUID:
    """The same object version always gives the same event id, so Prefect drops repeats."""
    return uuid.uuid5(_EVENT_NAMESPACE, record.run_key)


def prefect_event(record: ObjectCreated, *, dispatch: str, flow_run_id: str | None = None) -> dict[str, Any]:
    """Keyword arguments of `prefect.events.emit_event` for `record`."""
    related = []
    if flow_run_id:
        related.append({"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"})
    return {
        "event": EVENT_NAME,
        "resource": {
            "prefect.resource.id": f"s3.{record.bucket}.{record.key}",
            "prefect.resource.name": record.uri,
            "s3.bucket": record.bucket,
            "s3.key": record.key,
            DISPATCH_LABEL: dispatch,
        },
        "related": related,
        "payload": {
            "bucket": record.bucket,
            "key": record.key,
            "etag": record.etag,
            "size": record.size,
            "s3_event": record.event_name,
            "event_time": record.event_time,
            "sequencer": record.sequencer,
        },
        "id": event_id(record),
    }
