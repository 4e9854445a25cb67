"""TikTok's inbound webhooks, the pure part: check the `TikTok-Signature` header, parse the body.

    t = verify_webhook(request.headers.get("TikTok-Signature"), body, client_secret, now=datetime.now(UTC))
    event = parse_webhook(body)        # after verify: only TikTok's bytes are parsed
    if event.kind is None: ...         # an event TikTok added later: answer 200 and ignore it
    if seen(event.key): ...            # at-least-once delivery: the same event may come again

The receiver reads at most MAX_WEBHOOK_BODY_SIZE bytes of the raw body, verifies the signature over
those exact bytes (never over re-serialized JSON), then parses them. Every refusal is a
`WebhookRejected` (final) and its message never contains the secret or the expected signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from tiktok._errors import (
    InvalidInput,
    WebhookPayloadInvalid,
    WebhookSignatureInvalid,
    WebhookSignatureMissing,
    WebhookStale,
)

SIGNATURE_HEADER = "TikTok-Signature"

#: TikTok retries an undelivered event for up to 72 h, but signs every retry afresh with the time of
#: that attempt, so a genuine delivery is never old: only a captured delivery replayed later is.
#: Five minutes covers clock skew between TikTok and us and slow networks, and nothing more.
DEFAULT_TOLERANCE = timedelta(minutes=5)

#: The largest body parse_webhook accepts. TikTok's events are a few hundred bytes; a receiver
#: should stop reading at this size rather than buffer whatever a caller sends.
MAX_WEBHOOK_BODY_SIZE = 64 * 1024

#: A header longer than this is refused before it is split (a real one is about 80 characters).
MAX_SIGNATURE_HEADER_LENGTH = 1024

# At most 12 digits (until the year 33658): no sign, no `_`, no non-ASCII digits that int() would take.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# A hex SHA-256: 32 bytes. Either case is accepted, since both spell the same bytes.
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class WebhookEventType(StrEnum):
    """The events TikTok documents for Login Kit and the Content Posting API."""

    PUBLISH_COMPLETE = "post.publish.complete"
    PUBLISH_FAILED = "post.publish.failed"
    INBOX_DELIVERED = "post.publish.inbox_delivered"
    PUBLICLY_AVAILABLE = "post.publish.publicly_available"
    # (sic) TikTok's spelling of the event name: "publicaly".
    NO_LONGER_PUBLICLY_AVAILABLE = "post.publish.no_longer_publicaly_available"
    AUTHORIZATION_REMOVED = "authorization.removed"


#: Fields of `content` the properties read. TikTok sends some as JSON numbers (the `reason` of
#: authorization.removed is an int code, a `post_id` is an int64): they are given as decimal strings.
_CONTENT_TEXT_FIELDS = ("publish_id", "publish_type", "reason", "post_id")


class WebhookEvent(BaseModel):
    """One webhook delivery's body. `event` is TikTok's raw name; `kind` is None for unknown names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_key: str
    event: str
    create_time: datetime
    user_openid: str
    #: `content` parsed from the JSON string TikTok sends; {} when absent or empty.
    content: dict[str, Any] = {}

    @field_validator("create_time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("create_time must be timezone-aware")
        return value.astimezone(UTC)

    @property
    def kind(self) -> WebhookEventType | None:
        try:
            return WebhookEventType(self.event)
        except ValueError:
            return None

    def _text(self, name: str) -> str | None:
        value = self.content.get(name)
        if value is None or isinstance(value, bool):
            return None
        if isinstance(value, int):
            return str(value)
        return value if isinstance(value, str) else None

    @property
    def publish_id(self) -> str | None:
        return self._text("publish_id")

    @property
    def publish_type(self) -> str | None:
        return self._text("publish_type")

    @property
    def reason(self) -> str | None:
        """post.publish.failed: the failure reason; authorization.removed: TikTok's int code as text."""
        return self._text("reason")

    @property
    def post_id(self) -> str | None:
        """post.publish.publicly_available: the public post's id (an int64, as text)."""
        return self._text("post_id")

    @property
    def key(self) -> str:
        """A stable dedupe key: TikTok gives no delivery id and delivers at least once.

        Hex SHA-256 over canonical JSON of event, user_openid, create_time (unix s), client_key and
        every field of content as TikTok sent it (not only the ones the properties read).
        """
        canonical = json.dumps(
            {
                "client_key": self.client_key,
                "content": self.content,
                "create_time": (self.create_time - _EPOCH) // timedelta(seconds=1),
                "event": self.event,
                "user_openid": self.user_openid,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            allow_nan=False,
        )
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _secret_key(client_secret: str) -> bytes:
    if not isinstance(client_secret, str):  # e.g. the settings' SecretStr: pass get_secret_value()
        raise TypeError(f"client_secret must be a str, got {type(client_secret).__name__}")
    # An empty key is one anybody can sign with: refuse it rather than accept forged deliveries.
    if not client_secret.strip():
        raise InvalidInput("client_secret is empty: webhooks cannot be signed or verified")
    return client_secret.encode("utf-8")


def _digest(t: str, body: bytes, key: bytes) -> bytes:
    return hmac.new(key, t.encode("ascii") + b"." + body, hashlib.sha256).digest()


def sign_webhook(body: bytes, client_secret: str, t: int) -> str:
    """The `TikTok-Signature` header value TikTok would send for `body` at unix time `t`."""
    if isinstance(t, bool) or not isinstance(t, int) or not _TIMESTAMP.fullmatch(str(t)):
        raise ValueError(f"t must be a unix time in seconds of at most 12 digits, got {t!r}")
    return f"t={t},s={_digest(str(t), body, _secret_key(client_secret)).hex()}"


def _header_parts(header: str) -> dict[str, str]:
    """`k=v` parts split on `,` and on the first `=`; unknown keys are kept (and ignored later)."""
    if len(header) > MAX_SIGNATURE_HEADER_LENGTH:
        raise WebhookSignatureInvalid(
            f"{SIGNATURE_HEADER} header is {len(header)} characters long; at most {MAX_SIGNATURE_HEADER_LENGTH} accepted"
        )
    parts: dict[str, str] = {}
    for part in header.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise WebhookSignatureInvalid(f"{SIGNATURE_HEADER} header has a part that is not key=value")
        if name in parts:
            raise WebhookSignatureInvalid(f"{SIGNATURE_HEADER} header has {name!r} more than once")
        parts[name] = value.strip()
    return parts


def _seconds(microseconds: int) -> str:
    whole, fraction = divmod(microseconds, 1_000_000)
    return f"{whole}.{fraction:06d}".rstrip("0").rstrip(".")


def verify_webhook(
    signature_header: str | None,
    body: bytes,
    client_secret: str,
    *,
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> int:
    """Check `TikTok-Signature: t=<unix s>,s=<hex HMAC-SHA256>` over `<t>.<raw body>`; return `t`.

    Raises WebhookSignatureMissing (no or blank header), WebhookSignatureInvalid (malformed header or
    signature mismatch) or WebhookStale (authentic, but `t` is more than `tolerance` from `now`, in
    the past or the future). The signature is checked first, so WebhookStale means a genuine but
    replayed delivery. Keys other than t and s are ignored, as TikTok's verification guide says.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if tolerance < timedelta(0):
        raise ValueError(f"tolerance must not be negative, got {tolerance}")
    key = _secret_key(client_secret)
    if signature_header is None or not signature_header.strip():
        raise WebhookSignatureMissing(f"no {SIGNATURE_HEADER} header")
    parts = _header_parts(signature_header)
    if "t" not in parts:
        raise WebhookSignatureInvalid(f"{SIGNATURE_HEADER} header has no t (timestamp)")
    if "s" not in parts:
        raise WebhookSignatureInvalid(f"{SIGNATURE_HEADER} header has no s (signature)")
    t_text, s_text = parts["t"], parts["s"]
    if not _TIMESTAMP.fullmatch(t_text):
        raise WebhookSignatureInvalid(f"{SIGNATURE_HEADER} t is not a unix time in whole seconds")
    if not _HEX_SHA256.fullmatch(s_text):
        raise WebhookSignatureInvalid(f"{SIGNATURE_HEADER} s is not 64 hex digits (an HMAC-SHA256)")
    # TikTok signs the timestamp as it wrote it: sign the text received, not a re-rendered int.
    if not hmac.compare_digest(bytes.fromhex(s_text), _digest(t_text, body, key)):
        raise WebhookSignatureInvalid(f"{SIGNATURE_HEADER} does not match the body (wrong secret or altered body)")
    t = int(t_text)
    # Whole microseconds on both sides: exact, and no datetime is built from an untrusted t.
    skew = (now - _EPOCH) // _MICROSECOND - t * 1_000_000
    if abs(skew) > tolerance // _MICROSECOND:
        direction = "in the past" if skew > 0 else "in the future"
        raise WebhookStale(
            f"webhook timestamp t={t} is {_seconds(abs(skew))} s {direction}; "
            f"at most {_seconds(tolerance // _MICROSECOND)} s accepted",
            detail={"t": t, "now": now.isoformat(), "tolerance_s": tolerance.total_seconds()},
        )
    return t


def _invalid(message: str, field: str | None = None) -> WebhookPayloadInvalid:
    return WebhookPayloadInvalid(message, detail={"field": field} if field else None)


class _NotPlainJson(ValueError):
    """Python's json module would take it, but it is ambiguous or not JSON (the message ends a sentence)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise _NotPlainJson(f"has the key {name!r} twice in one object")
        result[name] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise _NotPlainJson(f"contains {name}, which is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 would otherwise become inf
        raise _NotPlainJson(f"contains the number {text[:20]}, too large for a float")
    return value


def _loads(text: str, what: str, field: str | None = None) -> Any:
    """json.loads refusing duplicate keys, NaN/Infinity and overflowing numbers: WebhookPayloadInvalid."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise _invalid(f"{what} is not JSON: {exc.msg} at position {exc.pos}", field) from exc
    except _NotPlainJson as exc:
        raise _invalid(f"{what} {exc}", field) from exc
    except RecursionError as exc:
        raise _invalid(f"{what} is nested too deeply", field) from exc
    except ValueError as exc:  # an integer of more digits than int() converts (sys.get_int_max_str_digits)
        raise _invalid(f"{what} has a number too long to read", field) from exc


_TYPE_NAMES = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array", dict: "an object"}


def _type_name(value: Any) -> str:
    return "null" if value is None else _TYPE_NAMES.get(type(value), type(value).__name__)


def _required_text(data: dict[str, Any], name: str) -> str:
    if name not in data:
        raise _invalid(f"webhook body has no {name}", name)
    value = data[name]
    if not isinstance(value, str):
        raise _invalid(f"webhook {name} is {_type_name(value)}, not a string", name)
    if not value.strip():
        raise _invalid(f"webhook {name} is blank", name)
    return value


def _create_time(data: dict[str, Any]) -> datetime:
    if "create_time" not in data:
        raise _invalid("webhook body has no create_time", "create_time")
    value = data["create_time"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"webhook create_time is {_type_name(value)}, not an integer (unix seconds)", "create_time")
    if not 0 <= value <= 253402300799:  # 9999-12-31T23:59:59Z, the last second datetime holds
        raise _invalid(f"webhook create_time {value} is not a unix time from 1970 to 9999", "create_time")
    return datetime.fromtimestamp(value, UTC)


def _content(data: dict[str, Any]) -> dict[str, Any]:
    value = data.get("content")
    if value is None:
        return {}
    if not isinstance(value, str):
        raise _invalid(f"webhook content is {_type_name(value)}, not a string holding a JSON object", "content")
    if not value.strip():
        return {}
    content = _loads(value, "webhook content", "content")
    if not isinstance(content, dict):
        raise _invalid(f"webhook content holds {_type_name(content)}, not a JSON object", "content")
    for name in _CONTENT_TEXT_FIELDS:
        field = content.get(name)
        if field is not None and (isinstance(field, bool) or not isinstance(field, (str, int))):
            raise _invalid(f"webhook content.{name} is {_type_name(field)}, not a string or integer", f"content.{name}")
    return content


def parse_webhook(body: bytes) -> WebhookEvent:
    """The event in a webhook body; WebhookPayloadInvalid names what breaks TikTok's documented format.

    Unknown event names parse (kind None) and fields TikTok adds later are ignored, so a receiver can
    still answer 200 to events it does not handle. Fields are checked in the documented order.
    """
    if len(body) > MAX_WEBHOOK_BODY_SIZE:
        raise _invalid(f"webhook body is {len(body)} bytes; at most {MAX_WEBHOOK_BODY_SIZE} accepted")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(f"webhook body is not UTF-8 (byte {exc.start})") from exc
    if not text.strip():
        raise _invalid("webhook body is empty")
    data = _loads(text, "webhook body")
    if not isinstance(data, dict):
        raise _invalid(f"webhook body is {_type_name(data)}, not a JSON object")
    client_key = _required_text(data, "client_key")
    event = _required_text(data, "event")
    create_time = _create_time(data)
    user_openid = _required_text(data, "user_openid")
    return WebhookEvent(
        client_key=client_key,
        event=event,
        create_time=create_time,
        user_openid=user_openid,
        content=_content(data),
    )
