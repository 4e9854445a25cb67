"""publish-s3-object: publish an S3 object the way its uploader asked, from an S3 event.

What to publish comes from three places, later ones winning field by field:

1. defaults per key prefix (`TIKTOK_PIPELINE_S3_PREFIX_DEFAULTS`, longer prefixes win),
2. the object's user metadata (`x-amz-meta-tiktok-caption`, `-accounts` comma-separated,
   `-privacy`, `-mode`, `-disable-comment`, ... see `METADATA_ALIASES` and `metadata_names`),
3. a JSON sidecar object next to it, `<key>.json` (e.g. `clip.mp4.json`).

The merge is validated by `PublishRequest` with `source = s3://bucket/key`; a bad or missing
sidecar fails the run with one message naming the object and the problem, and nothing is posted.
The listener runs the same checks before it starts a run (`tiktok-pipeline listen`, docs/s3-events.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import NoCredentialsError
from prefect import flow, get_run_logger, task
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Completed, Failed
from pydantic import ValidationError

from flows.models import PublishRequest
from flows.publish import conclude, publish_video
from publishing import s3_object_run_name
from tasks import _context
from tasks._policy import retry_options
from tasks._sources import (
    S3Location,
    SourceNotFound,
    SourceUnavailable,
    credentials_missing,
    head_s3_object,
    s3_client,
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


@task(name="read-s3-request", **retry_options())
def read_s3_request(bucket: str, key: str, etag: str) -> PublishRequest | None:
    """The PublishRequest for this version of the object; None when a newer version replaced it."""
    current = _context.settings()
    snapshot = read_object(s3_client(current), S3Location(bucket, key))
    if snapshot.etag != normalize_etag(etag):
        get_run_logger().warning(
            "%s changed since the event (ETag %s, now %s): the newer version's own event publishes it",
            snapshot.location.uri, normalize_etag(etag), snapshot.etag,
        )
        return None
    return request_for_object(
        snapshot, prefix_defaults=current.s3_prefix_defaults, require_sidecar=current.s3_require_sidecar
    )


def _s3_run_name() -> str:
    parameters = current_flow_run.parameters
    return s3_object_run_name(str(parameters.get("bucket", "")), str(parameters.get("key", "")))


@flow(name="publish-s3-object", flow_run_name=_s3_run_name, persist_result=True)
def publish_s3_object(bucket: str, key: str, etag: str) -> State:
    """Publish one uploaded S3 object (bucket, key, ETag from its s3:ObjectCreated event) as its
    sidecar, metadata and prefix defaults ask; fails with a clear message when they are invalid.

    Runs publish-video as a subflow and ends as it did: Failed, naming the accounts not posted and
    why, when any was not; the result is the list of PublishResult either way.
    """
    request = read_s3_request(bucket, key, etag)
    if request is None:
        return Completed(message=f"s3://{bucket}/{key} changed since the event: the newer version's own run publishes it",
                         data=[])
    get_run_logger().info("publishing %s to %s", request.source, ", ".join(request.accounts))
    state = publish_video(request, return_state=True)
    results = state.result(raise_on_failure=False)
    if isinstance(results, list):
        return conclude(results)
    message = f"the publish-video subflow ended {state.name} without results: {state.message or results}"
    get_run_logger().error(message)
    return Failed(message=message)
