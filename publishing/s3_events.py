"""S3 object → PublishRequest, and S3 event notifications as SQS delivers them. No Prefect here.

What to publish comes from three places, later ones winning field by field:

1. defaults per key prefix (`TIKTOK_PIPELINE_S3_PREFIX_DEFAULTS`, longer prefixes win),
2. the object's user metadata (`x-amz-meta-tiktok-caption`, `-accounts` comma-separated,
   `-privacy`, `-mode`, `-disable-comment`, ... see `METADATA_ALIASES` and `metadata_names`),
3. a JSON sidecar object next to it, `<key>.json` (e.g. `clip.mp4.json`).

The merge is validated by `PublishRequest` with `source = s3://bucket/key`; a bad or missing
sidecar raises `S3RequestInvalid` naming the object and every problem, and nothing is posted.
The listener runs the same checks before it starts a run, and the publish-s3-object flow runs them
again on the worker (`tiktok-pipeline listen`, docs/s3-events.md).

A notification body is S3's notification JSON (https://docs.aws.amazon.com/AmazonS3/latest/userguide/
notification-content-structure.html), possibly wrapped in an SNS envelope when the bucket notifies
a topic the queue subscribes to. Keys arrive URL-encoded with `+` for spaces.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import NoCredentialsError
from pydantic import ValidationError

from publishing._models import PublishRequest
from publishing.sources import (
    S3Location,
    SourceNotFound,
    SourceUnavailable,
    credentials_missing,
    head_s3_object,
)
from tiktok_pipeline.errors import PipelineError

SIDECAR_SUFFIX = ".json"
#: A sidecar is a handful of fields; anything bigger is not one.
MAX_SIDECAR_BYTES = 256 * 1024
#: User metadata names (after `x-amz-meta-`) that feed the request start with this.
METADATA_PREFIX = "tiktok-"
#: Short metadata names for the fields whose names are long; every field also has its own
#: name with dashes (`tiktok-privacy-level`, `tiktok-cover-timestamp-ms`, ...).
METADATA_ALIASES = {
    "privacy": "privacy_level",
    "brand-content": "brand_content_toggle",
    "brand-organic": "brand_organic_toggle",
    "aigc": "is_aigc",
    "cover-ms": "cover_timestamp_ms",
}
#: Fields whose metadata value is a comma-separated list.
_LIST_FIELDS = frozenset({"accounts"})


class S3RequestInvalid(PipelineError):
    """The sidecar, the object metadata or the prefix defaults do not make a valid PublishRequest.

    `detail` = {"source": s3 URI, "problems": [one line per problem]}.
    """


def normalize_etag(etag: str) -> str:
    """ETags without their quotes: S3 events carry `abc`, HEAD answers `"abc"`."""
    return etag.strip().strip('"')


def sidecar_location(location: S3Location) -> S3Location:
    return S3Location(location.bucket, location.key + SIDECAR_SUFFIX)


def is_sidecar_key(key: str) -> bool:
    return key.lower().endswith(SIDECAR_SUFFIX)


def metadata_names() -> dict[str, str]:
    """Metadata name (without `tiktok-`) → PublishRequest field; `source` is the object itself."""
    names = {name.replace("_", "-"): name for name in PublishRequest.model_fields if name != "source"}
    return names | METADATA_ALIASES


@dataclass(frozen=True)
class ObjectSnapshot:
    """What S3 holds for one object when it is looked at: its ETag, metadata and sidecar."""

    location: S3Location
    etag: str
    size: int
    metadata: dict[str, str] = field(default_factory=dict)
    sidecar: bytes | None = None  # None: there is no sidecar
    sidecar_size: int = 0


def read_object(client: Any, location: S3Location) -> ObjectSnapshot:
    """HEAD the object and fetch its sidecar (when under MAX_SIDECAR_BYTES). Raises SourceError."""
    head = head_s3_object(client, location)
    side = sidecar_location(location)
    try:
        side_head = head_s3_object(client, side)
    except SourceNotFound:
        side_head = None
    body: bytes | None = None
    side_size = 0
    if side_head is not None:
        side_size = int(side_head["ContentLength"])
        body = b""  # when too big to be a sidecar: request_for_object reports the size
        if side_size <= MAX_SIDECAR_BYTES:
            try:
                body = client.get_object(Bucket=side.bucket, Key=side.key)["Body"].read()
            except NoCredentialsError as exc:  # final: retrying cannot find credentials
                raise credentials_missing(side.uri, exc) from exc
            except (ClientError, BotoCoreError) as exc:  # it existed a moment ago: worth another try
                raise SourceUnavailable(f"cannot read the sidecar {side.uri}: {exc}") from exc
    return ObjectSnapshot(
        location=location,
        etag=normalize_etag(str(head.get("ETag", ""))),
        size=int(head.get("ContentLength", 0)),
        metadata={str(k).lower(): str(v) for k, v in (head.get("Metadata") or {}).items()},
        sidecar=body,
        sidecar_size=side_size,
    )


def _decoded(value: str) -> str:
    """S3 returns non-ASCII metadata as RFC 2047 encoded words (`=?UTF-8?B?...?=`)."""
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeDecodeError):
        return value


def metadata_fields(metadata: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """PublishRequest fields from `x-amz-meta-tiktok-*` metadata, and the problems found."""
    names = metadata_names()
    fields: dict[str, Any] = {}
    set_by: dict[str, str] = {}
    problems: list[str] = []
    for raw_name, raw_value in sorted(metadata.items()):
        name = raw_name.lower()
        if not name.startswith(METADATA_PREFIX):
            continue  # other metadata belongs to someone else
        short = name[len(METADATA_PREFIX):]
        if short not in names:
            problems.append(f"unknown metadata x-amz-meta-{name} (known: {', '.join(sorted(names))})")
            continue
        target = names[short]
        if target in set_by:
            problems.append(f"x-amz-meta-{set_by[target]} and x-amz-meta-{name} both set {target}")
            continue
        set_by[target] = name
        value = _decoded(raw_value)
        fields[target] = [part.strip() for part in value.split(",")] if target in _LIST_FIELDS else value
    return fields, problems


def sidecar_fields(raw: bytes, size: int) -> tuple[dict[str, Any], list[str]]:
    """PublishRequest fields from a sidecar's bytes, and the problems found."""
    if size > MAX_SIDECAR_BYTES:
        return {}, [f"is {size} bytes; a sidecar holds at most {MAX_SIDECAR_BYTES}"]
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return {}, [f"is not UTF-8 text ({exc.reason} at byte {exc.start})"]
    except json.JSONDecodeError as exc:
        return {}, [f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]
    if not isinstance(data, dict):
        return {}, [f"must be a JSON object of PublishRequest fields, not {type(data).__name__}"]
    if "source" in data:
        return {}, ["must not set source: the object next to it is the source"]
    return data, []


def prefix_defaults_for(key: str, prefix_defaults: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The defaults whose prefix `key` starts with, shortest prefix first (longer ones override)."""
    matching = [(prefix, values) for prefix, values in prefix_defaults.items() if key.startswith(prefix)]
    return sorted(matching, key=lambda item: len(item[0]))


def check_prefix_defaults(prefix_defaults: dict[str, dict[str, Any]]) -> None:
    """Refuse defaults naming fields PublishRequest does not have (a typo would be silently ignored)."""
    allowed = set(PublishRequest.model_fields) - {"source"}
    for prefix, values in prefix_defaults.items():
        if unknown := sorted(set(values) - allowed):
            raise S3RequestInvalid(
                f"TIKTOK_PIPELINE_S3_PREFIX_DEFAULTS[{prefix!r}]: unknown field(s) {', '.join(unknown)} "
                f"(PublishRequest fields: {', '.join(sorted(allowed))})",
                detail={"prefix": prefix, "unknown": unknown},
            )


def _problem_lines(exc: ValidationError, supplied_by: dict[str, str], whole: str) -> list[str]:
    lines = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        top = str(error["loc"][0]) if error["loc"] else ""
        origin = supplied_by.get(top, whole)
        lines.append(f"{origin}: {loc}: {message}" if loc else f"{origin}: {message}")
    return lines


def request_for_object(
    snapshot: ObjectSnapshot, *, prefix_defaults: dict[str, dict[str, Any]], require_sidecar: bool
) -> PublishRequest:
    """Merge prefix defaults < metadata < sidecar into a PublishRequest for the object.

    Raises S3RequestInvalid with one line per problem, each naming where the bad value came from.
    """
    uri = snapshot.location.uri
    side_uri = sidecar_location(snapshot.location).uri
    merged: dict[str, Any] = {}
    supplied_by: dict[str, str] = {}
    problems: list[str] = []
    for prefix, values in prefix_defaults_for(snapshot.location.key, prefix_defaults):
        merged |= values
        supplied_by |= {name: f"defaults for prefix {prefix!r}" for name in values}
    from_metadata, metadata_problems = metadata_fields(snapshot.metadata)
    merged |= from_metadata
    supplied_by |= {name: f"metadata of {uri}" for name in from_metadata}
    problems += [f"metadata of {uri}: {p}" for p in metadata_problems]
    sidecar_problems: list[str] = []
    if snapshot.sidecar is None:
        whole = f"{uri} (no sidecar {side_uri})"
        if require_sidecar:
            problems.append(f"sidecar {side_uri} is missing (TIKTOK_PIPELINE_S3_REQUIRE_SIDECAR is on)")
    else:
        whole = f"sidecar {side_uri}"
        from_sidecar, sidecar_problems = sidecar_fields(snapshot.sidecar, snapshot.sidecar_size)
        merged |= from_sidecar
        supplied_by |= {name: f"sidecar {side_uri}" for name in from_sidecar}
        problems += [f"sidecar {side_uri} {p}" for p in sidecar_problems]
    request: PublishRequest | None = None
    if not sidecar_problems:  # an unreadable sidecar makes the merge meaningless
        try:
            request = PublishRequest.model_validate({**merged, "source": snapshot.location.uri})
        except ValidationError as exc:
            problems += _problem_lines(exc, supplied_by, whole)
    if problems or request is None:
        raise S3RequestInvalid("; ".join(problems), detail={"source": uri, "problems": problems})
    return request


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
