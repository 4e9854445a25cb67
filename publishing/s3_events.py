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
import re
import uuid
from dataclasses import dataclass, field
from email.errors import MessageError
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
from tiktok_pipeline.settings import bucket_name_problem, split_prefix

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
    except (MessageError, LookupError, UnicodeError, ValueError):  # HeaderParseError, CharsetError, binascii.Error
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
    except RecursionError:
        return {}, ["is JSON nested too deeply to be a sidecar"]
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        return {}, [f"is not JSON Python can read: {exc}"]
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


#: An S3 notification is a few KB (one record; a key of at most 1024 bytes, percent-encoded): a body
#: bigger than this is not one, and is refused before it is parsed.
MAX_NOTIFICATION_BYTES = 64 * 1024
#: S3 sends one record per message; a message with more than this many is not S3's.
MAX_RECORDS = 100
#: S3 object keys are 1 to 1024 bytes of UTF-8.
MAX_KEY_BYTES = 1024
#: How much of a refused body an error keeps (its `detail`), and how many refused records it names.
_DETAIL_CHARS = 500
_NAMED_REFUSALS = 10
_ETAG = re.compile(r"[!#-~]{1,1024}")  # printable ASCII without spaces or quotes (hex, or hex-N for multipart)
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


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
    """What one message holds: object creations, S3's test event, other records to ignore, and
    records that cannot be read (each refusal says which record and why; retrying cannot help)."""

    created: tuple[ObjectCreated, ...] = ()
    ignored: tuple[str, ...] = ()  # event names of records that are not object creations
    test_event: bool = False
    refused: tuple[str, ...] = ()


class _Refused(Exception):
    """One record cannot be read (internal: becomes a line of `Notification.refused`)."""


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _is_unicode(text: str) -> bool:
    """False for text holding a lone surrogate (JSON allows `\ud800`; nothing can encode it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _section(container: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = container.get(name)
    if value is None:
        raise _Refused(f"has no `{where}{name}` section")
    if not isinstance(value, dict):
        raise _Refused(f"has a `{where}{name}` that is {_kind(value)}, not an object")
    return value


def _text(container: dict[str, Any], name: str, where: str) -> str | None:
    """An optional string field: None when absent, refused when of another type or not Unicode."""
    value = container.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Refused(f"has a `{where}{name}` that is {_kind(value)}, not a string")
    if not _is_unicode(value):
        raise _Refused(f"has a `{where}{name}` that is not valid Unicode (it holds a lone surrogate)")
    return value


def _required_text(container: dict[str, Any], name: str, where: str) -> str:
    value = _text(container, name, where)
    if value is None:
        raise _Refused(f"lacks `{where}{name}`")
    if not value.strip():
        raise _Refused(f"has an empty `{where}{name}`")
    return value


def decode_key(raw: str) -> str:
    """The object key of a notification: URL-decoded with `+` as a space, strictly (a `%` not
    followed by two hex digits, or escapes that are not UTF-8, make no key). Raises ValueError."""
    if bad := _BAD_PERCENT.search(raw):
        raise ValueError(f"a % at position {bad.start()} is not followed by two hex digits")
    try:
        key = unquote_plus(raw, errors="strict")
    except UnicodeDecodeError as exc:
        raise ValueError(f"its percent-escapes are not UTF-8 ({exc.reason})") from None
    if not key:
        raise ValueError("it is empty")
    if (size := len(key.encode("utf-8"))) > MAX_KEY_BYTES:
        raise ValueError(f"it is {size} bytes; S3 keys are at most {MAX_KEY_BYTES}")
    return key


def _record(raw: dict[str, Any], event_name: str) -> ObjectCreated:
    s3 = _section(raw, "s3", "")
    bucket = _required_text(_section(s3, "bucket", "s3."), "name", "s3.bucket.")
    if problem := bucket_name_problem(bucket):
        raise _Refused(f"has an invalid `s3.bucket.name`: {problem}")
    obj = _section(s3, "object", "s3.")
    raw_key = _required_text(obj, "key", "s3.object.")
    try:
        key = decode_key(raw_key)
    except ValueError as exc:
        raise _Refused(f"has an invalid `s3.object.key` {raw_key[:200]!r}: {exc}") from None
    raw_etag = _required_text(obj, "eTag", "s3.object.")
    etag = normalize_etag(raw_etag)
    if not _ETAG.fullmatch(etag):
        raise _Refused(f"has an invalid `s3.object.eTag` {raw_etag[:100]!r}")
    size = obj.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise _Refused(f"has an invalid `s3.object.size` {str(size)[:40]!r}: a size is a whole number of bytes, 0 or more")
    return ObjectCreated(
        bucket=bucket,
        key=key,
        etag=etag,
        size=size,
        event_name=event_name,
        event_time=_text(raw, "eventTime", ""),
        sequencer=_text(obj, "sequencer", "s3.object."),
    )


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableMessage(f"{what} is not JSON: {exc.msg} at position {exc.pos}",
                                detail=text[:_DETAIL_CHARS]) from None
    except RecursionError:
        raise UnreadableMessage(f"{what} is JSON nested too deeply to be an S3 notification",
                                detail=text[:_DETAIL_CHARS]) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise UnreadableMessage(f"{what} is not JSON Python can read: {exc}", detail=text[:_DETAIL_CHARS]) from None


def _text_body(body: str | bytes) -> str:
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnreadableMessage(f"message body is not UTF-8 text ({exc.reason} at byte {exc.start})",
                                    detail=repr(body[:_DETAIL_CHARS])) from None
    if not isinstance(body, str):
        raise UnreadableMessage(f"message body is {_kind(body)}, not text")
    size = len(body.encode("utf-8", "surrogatepass"))
    if size > MAX_NOTIFICATION_BYTES:
        raise UnreadableMessage(
            f"message body is {size} bytes; an S3 notification is a few KB (at most {MAX_NOTIFICATION_BYTES} read)",
            detail=body[:_DETAIL_CHARS],
        )
    if not _is_unicode(body):
        raise UnreadableMessage("message body is not valid Unicode text (it holds a lone surrogate)",
                                detail=body[:_DETAIL_CHARS].encode("utf-8", "backslashreplace").decode("ascii"))
    return body


def parse_notification(body: str | bytes) -> Notification:
    """Read one SQS message body: S3's notification JSON, possibly in an SNS envelope.

    Raises UnreadableMessage when the body is not an S3 notification at all (not UTF-8, too big,
    not JSON or nested too deeply, no `Records`, not one record that can be read); a record that
    cannot be read among readable ones is named in `Notification.refused` instead. Never raises
    anything else, whatever the body.
    """
    data = _json(_text_body(body), "message body")
    if isinstance(data, dict) and data.get("Type") == "Notification" and "Message" in data:
        message = data["Message"]  # S3 → SNS → SQS without raw delivery: unwrapped once
        if not isinstance(message, str):
            raise UnreadableMessage(f"the SNS envelope's Message must be a string, not {_kind(message)}",
                                    detail=_text_body(body)[:_DETAIL_CHARS])
        data = _json(message, "the SNS envelope's Message")
    return _notification(data, body if isinstance(body, str) else "")


def _notification(data: Any, body: str) -> Notification:
    detail = body[:_DETAIL_CHARS]
    if not isinstance(data, dict):
        raise UnreadableMessage(f"message body is not a JSON object but {_kind(data)}", detail=detail)
    if data.get("Event") == "s3:TestEvent":  # sent when the bucket notification is configured
        return Notification(test_event=True)
    records = data.get("Records")
    if not isinstance(records, list):
        raise UnreadableMessage("message body has no S3 `Records` list", detail=detail)
    if not records:
        raise UnreadableMessage("message body has an empty `Records` list (S3 sends one record)", detail=detail)
    if len(records) > MAX_RECORDS:
        raise UnreadableMessage(f"message body holds {len(records)} records; S3 sends one per message", detail=detail)
    created: list[ObjectCreated] = []
    ignored: list[str] = []
    refused: list[str] = []
    for number, raw in enumerate(records, start=1):
        try:
            if not isinstance(raw, dict):
                raise _Refused(f"is not a JSON object but {_kind(raw)}")
            name = _text(raw, "eventName", "")
            if name is not None and name.removeprefix("s3:").startswith("ObjectCreated:"):
                created.append(_record(raw, name))
            else:
                ignored.append(name or "(no eventName)")
        except _Refused as exc:
            refused.append(f"S3 event record {number} of {len(records)} {exc}")
    if refused and not created and not ignored:
        shown = refused[:_NAMED_REFUSALS] + ([f"and {len(refused) - _NAMED_REFUSALS} more"]
                                             if len(refused) > _NAMED_REFUSALS else [])
        raise UnreadableMessage("; ".join(shown), detail=detail)
    return Notification(created=tuple(created), ignored=tuple(ignored), refused=tuple(refused))


@dataclass(frozen=True)
class KeyFilter:
    """Which keys are videos to publish: under a prefix (any when none), with a known suffix.

    A prefix `s3://bucket/prefix` holds for that bucket only; a plain one for every bucket.
    """

    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    bucket_prefixes: tuple[tuple[str, str], ...] = ()  # (bucket, key prefix)

    @classmethod
    def of(cls, prefixes: list[str] | str, suffixes: list[str] | str) -> KeyFilter:
        def listed(value: list[str] | str) -> tuple[str, ...]:
            items = value.split(",") if isinstance(value, str) else value
            return tuple(item.strip() for item in items if item.strip())

        plain: list[str] = []
        qualified: list[tuple[str, str]] = []
        for entry in listed(prefixes):
            bucket, prefix = split_prefix(entry)
            if bucket is None:
                plain.append(prefix)
            else:
                qualified.append((bucket, prefix))
        return cls(prefixes=tuple(plain), suffixes=tuple(s.lower() for s in listed(suffixes)),
                   bucket_prefixes=tuple(qualified))

    def skip_reason(self, key: str, bucket: str | None = None) -> str | None:
        """Why `key` (of `bucket`) is not published, or None when it is."""
        if is_sidecar_key(key):
            return "a sidecar, never published itself"
        if self.prefixes or self.bucket_prefixes:
            applicable = self.prefixes + tuple(p for b, p in self.bucket_prefixes if b == bucket)
            if not key.startswith(applicable):
                shown = [*self.prefixes, *(f"s3://{b}/{p}" for b, p in self.bucket_prefixes)]
                return f"not under {', '.join(shown)}"
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
