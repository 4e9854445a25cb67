"""TikTok's inbound webhooks: TikTok-Signature checked against signatures computed here with hmac/hashlib
(and one computed by `openssl dgst`), bodies of every documented event parsed, malformed ones named."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

import tiktok
from tiktok import (
    MAX_WEBHOOK_BODY_SIZE,
    WebhookEvent,
    WebhookEventType,
    WebhookPayloadInvalid,
    WebhookRejected,
    WebhookSignatureInvalid,
    WebhookSignatureMissing,
    WebhookStale,
    parse_webhook,
    sign_webhook,
    verify_webhook,
)
from tiktok._webhooks import DEFAULT_TOLERANCE

SECRET = "cs-webhook-secret"
T = 1633174587  # the timestamp of TikTok's own header example
AT_T = datetime.fromtimestamp(T, UTC)

# TikTok's documented authorization.removed example, byte for byte.
EXAMPLE_BODY = (
    rb'{"client_key":"bwo2m45353a6k85","event":"authorization.removed","create_time":1615338610,'
    rb'"user_openid":"act.example12345Example12345Example","content":"{\"reason\": 1 }"}'
)
# printf '%s' '1633174587.<EXAMPLE_BODY>' | openssl dgst -sha256 -hmac 'cs-webhook-secret'
EXAMPLE_SIGNATURE = "eb918d4da8eb37bcabf26884bd03006bf28c04b430c5461a6f6bec2231c88c78"


def tiktok_signature(body: bytes, secret: str, t: int | str) -> str:
    """What TikTok computes: hex HMAC-SHA256 keyed by client_secret over `<t>.<raw body>`."""
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def header(body: bytes = EXAMPLE_BODY, secret: str = SECRET, t: int = T) -> str:
    return f"t={t},s={tiktok_signature(body, secret, t)}"


_ABSENT = object()


def body_of(**fields: Any) -> bytes:
    data: dict[str, Any] = {
        "client_key": "ck-123",
        "event": "post.publish.complete",
        "create_time": 1700000000,
        "user_openid": "act.user-1",
    }
    data.update(fields)
    return json.dumps({k: v for k, v in data.items() if v is not _ABSENT}).encode()


# --- signature ----------------------------------------------------------------------------------
def test_a_signature_computed_independently_is_accepted_and_t_returned() -> None:
    assert tiktok_signature(EXAMPLE_BODY, SECRET, T) == EXAMPLE_SIGNATURE
    assert verify_webhook(f"t={T},s={EXAMPLE_SIGNATURE}", EXAMPLE_BODY, SECRET, now=AT_T) == T


def test_sign_webhook_builds_the_header_tiktok_sends() -> None:
    assert sign_webhook(EXAMPLE_BODY, SECRET, T) == f"t={T},s={EXAMPLE_SIGNATURE}"
    assert sign_webhook(b"", "k", 0) == f"t=0,s={tiktok_signature(b'', 'k', 0)}"
    for bad in (-1, 10**12, True, 1.0):
        with pytest.raises(ValueError):
            sign_webhook(b"{}", SECRET, bad)  # type: ignore[arg-type]


def test_wrong_secret_is_refused_without_leaking_the_secret_or_the_expected_signature() -> None:
    forged = header(secret="not-the-secret")
    with pytest.raises(WebhookSignatureInvalid) as caught:
        verify_webhook(forged, EXAMPLE_BODY, SECRET, now=AT_T)
    message = str(caught.value)
    assert "does not match" in message and "\n" not in message
    assert SECRET not in message and EXAMPLE_SIGNATURE not in message and "not-the-secret" not in message
    assert SECRET not in repr(caught.value.detail) and EXAMPLE_SIGNATURE not in repr(caught.value.detail)


def test_a_changed_body_byte_is_refused() -> None:
    changed = EXAMPLE_BODY.replace(b'"reason\\": 1', b'"reason\\": 2')
    assert changed != EXAMPLE_BODY
    with pytest.raises(WebhookSignatureInvalid, match="does not match"):
        verify_webhook(header(), changed, SECRET, now=AT_T)
    with pytest.raises(WebhookSignatureInvalid):
        verify_webhook(header(), EXAMPLE_BODY + b" ", SECRET, now=AT_T)


def test_the_timestamp_is_signed_too() -> None:
    # The signature of t=T presented with another t: an attacker cannot refresh an old delivery.
    with pytest.raises(WebhookSignatureInvalid, match="does not match"):
        verify_webhook(f"t={T + 1},s={EXAMPLE_SIGNATURE}", EXAMPLE_BODY, SECRET, now=AT_T)


@pytest.mark.parametrize("signature", [EXAMPLE_SIGNATURE[:-1], EXAMPLE_SIGNATURE[:-2], EXAMPLE_SIGNATURE[:32], ""])
def test_a_truncated_signature_is_refused(signature: str) -> None:
    with pytest.raises(WebhookSignatureInvalid, match="64 hex digits"):
        verify_webhook(f"t={T},s={signature}", EXAMPLE_BODY, SECRET, now=AT_T)


def test_a_longer_signature_is_refused() -> None:
    with pytest.raises(WebhookSignatureInvalid, match="64 hex digits"):
        verify_webhook(f"t={T},s={EXAMPLE_SIGNATURE}00", EXAMPLE_BODY, SECRET, now=AT_T)


def test_uppercase_hex_is_accepted_because_it_spells_the_same_bytes() -> None:
    # Decision: s is compared as the 32 bytes it encodes, so the hex digits' case does not matter.
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(EXAMPLE_SIGNATURE))
    for signature in (EXAMPLE_SIGNATURE.upper(), mixed):
        assert verify_webhook(f"t={T},s={signature}", EXAMPLE_BODY, SECRET, now=AT_T) == T


@pytest.mark.parametrize("value", [None, "", "   ", "\t"])
def test_no_or_blank_header_is_missing(value: str | None) -> None:
    with pytest.raises(WebhookSignatureMissing, match="no TikTok-Signature header"):
        verify_webhook(value, EXAMPLE_BODY, SECRET, now=AT_T)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
    (f"s={EXAMPLE_SIGNATURE}", "no t"),
    (f"T={T},s={EXAMPLE_SIGNATURE}", "no t"),  # keys are case-sensitive, as TikTok writes them
    (f"t={T}", "no s"),
    (f"t={T},signature={EXAMPLE_SIGNATURE}", "no s"),
    (f"t={T},t={T},s={EXAMPLE_SIGNATURE}", "'t' more than once"),
    (f"t={T},s={EXAMPLE_SIGNATURE},s={EXAMPLE_SIGNATURE}", "'s' more than once"),
    (f"t={T},s={EXAMPLE_SIGNATURE},", "not key=value"),
    (f"t={T};s={EXAMPLE_SIGNATURE}", "no s"),  # `;` is no separator: t's value is then not a number
    (EXAMPLE_SIGNATURE, "not key=value"),
    (f"={T},s={EXAMPLE_SIGNATURE}", "not key=value"),
    ("t=" + "1" * 2000 + f",s={EXAMPLE_SIGNATURE}", "characters long"),
    ],
)
def test_a_malformed_header_is_invalid(value: str, problem: str) -> None:
    with pytest.raises(WebhookSignatureInvalid, match=problem):
        verify_webhook(value, EXAMPLE_BODY, SECRET, now=AT_T)


@pytest.mark.parametrize("t", ["abc", "1.5", "-5", "+1633174587", "1_633_174_587", "1633174587.0", "", "١٦٣٣", "1" * 13])
def test_a_non_integer_t_is_invalid(t: str) -> None:
    with pytest.raises(WebhookSignatureInvalid, match="t is not a unix time"):
        verify_webhook(f"t={t},s={EXAMPLE_SIGNATURE}", EXAMPLE_BODY, SECRET, now=AT_T)


@pytest.mark.parametrize(
    "s", ["z" * 64, "é" * 64, "0x" + EXAMPLE_SIGNATURE[:62], EXAMPLE_SIGNATURE[:30] + "  " + EXAMPLE_SIGNATURE[32:]]
)
def test_a_non_hex_s_is_invalid(s: str) -> None:
    with pytest.raises(WebhookSignatureInvalid, match="not 64 hex digits"):
        verify_webhook(f"t={T},s={s}", EXAMPLE_BODY, SECRET, now=AT_T)


def test_whitespace_around_parts_is_tolerated_and_unknown_keys_ignored() -> None:
    for value in (
        f" t={T} , s={EXAMPLE_SIGNATURE} ",
        f"t = {T},\ts = {EXAMPLE_SIGNATURE}",
        f"s={EXAMPLE_SIGNATURE},t={T}",
        f"t={T},v1=whatever,s={EXAMPLE_SIGNATURE}",
    ):
        assert verify_webhook(value, EXAMPLE_BODY, SECRET, now=AT_T) == T, value


def test_leading_zeros_in_t_are_signed_as_written() -> None:
    signature = tiktok_signature(EXAMPLE_BODY, SECRET, f"0{T}")
    assert verify_webhook(f"t=0{T},s={signature}", EXAMPLE_BODY, SECRET, now=AT_T) == T
    with pytest.raises(WebhookSignatureInvalid, match="does not match"):
        verify_webhook(f"t=0{T},s={EXAMPLE_SIGNATURE}", EXAMPLE_BODY, SECRET, now=AT_T)


# --- replay -------------------------------------------------------------------------------------
def test_the_default_tolerance_is_five_minutes() -> None:
    assert DEFAULT_TOLERANCE == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("offset", "direction"),
    [(DEFAULT_TOLERANCE + timedelta(seconds=1), "in the past"), (-DEFAULT_TOLERANCE - timedelta(seconds=1), "in the future")],
)
def test_a_stale_timestamp_is_refused_in_either_direction(offset: timedelta, direction: str) -> None:
    with pytest.raises(WebhookStale) as caught:
        verify_webhook(header(), EXAMPLE_BODY, SECRET, now=AT_T + offset)
    assert str(caught.value) == f"webhook timestamp t={T} is 301 s {direction}; at most 300 s accepted"
    assert caught.value.detail["t"] == T


@pytest.mark.parametrize("offset", [DEFAULT_TOLERANCE, -DEFAULT_TOLERANCE, timedelta(0), timedelta(microseconds=999_999)])
def test_exactly_at_the_tolerance_is_accepted(offset: timedelta) -> None:
    assert verify_webhook(header(), EXAMPLE_BODY, SECRET, now=AT_T + offset) == T


@pytest.mark.parametrize(
    "offset", [DEFAULT_TOLERANCE + timedelta(microseconds=1), -DEFAULT_TOLERANCE - timedelta(microseconds=1)]
)
def test_one_microsecond_past_the_tolerance_is_stale(offset: timedelta) -> None:
    with pytest.raises(WebhookStale, match=r"is 300\.000001 s"):
        verify_webhook(header(), EXAMPLE_BODY, SECRET, now=AT_T + offset)


def test_a_custom_tolerance_and_a_now_in_another_timezone() -> None:
    now = (AT_T + timedelta(seconds=30)).astimezone(ZoneInfo("Asia/Tokyo"))
    assert verify_webhook(header(), EXAMPLE_BODY, SECRET, now=now, tolerance=timedelta(seconds=30)) == T
    with pytest.raises(WebhookStale, match="at most 29 s"):
        verify_webhook(header(), EXAMPLE_BODY, SECRET, now=now, tolerance=timedelta(seconds=29))


def test_the_signature_is_checked_before_the_timestamp() -> None:
    # A forged stale delivery is a bad signature, so WebhookStale always means "genuine but replayed".
    with pytest.raises(WebhookSignatureInvalid):
        verify_webhook(header(secret="other"), EXAMPLE_BODY, SECRET, now=AT_T + timedelta(days=3))


def test_a_far_future_t_is_stale_not_a_crash() -> None:
    t = 10**12 - 1
    with pytest.raises(WebhookStale, match="in the future"):
        verify_webhook(header(t=t), EXAMPLE_BODY, SECRET, now=AT_T)


def test_refusals_are_final_webhook_rejected_tiktok_errors() -> None:
    for cls in (WebhookSignatureMissing, WebhookSignatureInvalid, WebhookStale, WebhookPayloadInvalid):
        assert issubclass(cls, WebhookRejected) and issubclass(cls, tiktok.TikTokError)
        assert cls("x").final
    assert WebhookRejected("x").final


def test_misuse_is_refused_loudly() -> None:
    with pytest.raises(tiktok.InvalidInput, match="client_secret is empty"):
        verify_webhook(header(), EXAMPLE_BODY, "", now=AT_T)
    with pytest.raises(tiktok.InvalidInput, match="client_secret is empty"):
        sign_webhook(EXAMPLE_BODY, "  ", T)
    with pytest.raises(TypeError, match="SecretStr"):
        verify_webhook(header(), EXAMPLE_BODY, SecretStr(SECRET), now=AT_T)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_webhook(header(), EXAMPLE_BODY, SECRET, now=datetime(2021, 10, 2, 11, 36, 27))
    with pytest.raises(ValueError, match="negative"):
        verify_webhook(header(), EXAMPLE_BODY, SECRET, now=AT_T, tolerance=timedelta(seconds=-1))


@given(
    body=st.binary(min_size=1, max_size=512),
    secret=st.text(min_size=1, max_size=64).filter(str.strip),
    t=st.integers(min_value=0, max_value=253402300799),  # up to 9999-12-31, the last datetime
    data=st.data(),
)
def test_any_signed_body_verifies_at_t_and_no_single_byte_change_does(
    body: bytes, secret: str, t: int, data: st.DataObject
) -> None:
    signed = sign_webhook(body, secret, t)
    assert signed == f"t={t},s={tiktok_signature(body, secret, t)}"
    now = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=t)
    assert verify_webhook(signed, body, secret, now=now) == t
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1), label="index")
    delta = data.draw(st.integers(min_value=1, max_value=255), label="delta")
    changed = bytearray(body)
    changed[index] = (changed[index] + delta) % 256
    with pytest.raises(WebhookSignatureInvalid):
        verify_webhook(signed, bytes(changed), secret, now=now)


# --- parsing ------------------------------------------------------------------------------------
PUBLISH_ID = "v_pub_file~v2-1.7311111111111111111"

EVENTS = [
    (
        "post.publish.complete",
        WebhookEventType.PUBLISH_COMPLETE,
        {"publish_id": PUBLISH_ID, "publish_type": "DIRECT_PUBLISH"},
        {"publish_id": PUBLISH_ID, "publish_type": "DIRECT_PUBLISH", "reason": None, "post_id": None},
    ),
    (
        "post.publish.failed",
        WebhookEventType.PUBLISH_FAILED,
        {"publish_id": PUBLISH_ID, "publish_type": "DIRECT_PUBLISH", "reason": "file_format_check_failed"},
        {"publish_id": PUBLISH_ID, "publish_type": "DIRECT_PUBLISH", "reason": "file_format_check_failed", "post_id": None},
    ),
    (
        "post.publish.inbox_delivered",
        WebhookEventType.INBOX_DELIVERED,
        {"publish_id": PUBLISH_ID, "publish_type": "INBOX_SHARE"},
        {"publish_id": PUBLISH_ID, "publish_type": "INBOX_SHARE", "reason": None, "post_id": None},
    ),
    (
        "post.publish.publicly_available",
        WebhookEventType.PUBLICLY_AVAILABLE,
        {"publish_id": PUBLISH_ID, "publish_type": "DIRECT_PUBLISH", "post_id": "7311111111111111111"},
        {"publish_id": PUBLISH_ID, "publish_type": "DIRECT_PUBLISH", "reason": None, "post_id": "7311111111111111111"},
    ),
    (
        "post.publish.no_longer_publicaly_available",
        WebhookEventType.NO_LONGER_PUBLICLY_AVAILABLE,
        {"publish_id": PUBLISH_ID, "publish_type": "DIRECT_PUBLISH", "post_id": 7311111111111111111},
        {"publish_id": PUBLISH_ID, "publish_type": "DIRECT_PUBLISH", "reason": None, "post_id": "7311111111111111111"},
    ),
    (
        "authorization.removed",
        WebhookEventType.AUTHORIZATION_REMOVED,
        {"reason": 1},
        {"publish_id": None, "publish_type": None, "reason": "1", "post_id": None},
    ),
]


def test_the_six_documented_event_names_with_tiktoks_spelling() -> None:
    assert {e.value for e in WebhookEventType} == {name for name, *_ in EVENTS}
    assert WebhookEventType.NO_LONGER_PUBLICLY_AVAILABLE == "post.publish.no_longer_publicaly_available"


@pytest.mark.parametrize(("name", "kind", "content", "expected"), EVENTS, ids=[e[0] for e in EVENTS])
def test_each_event_parses_with_its_fields(
    name: str, kind: WebhookEventType, content: dict[str, Any], expected: dict[str, str | None]
) -> None:
    event = parse_webhook(body_of(event=name, content=json.dumps(content)))
    assert event.event == name and event.kind is kind
    assert event.client_key == "ck-123" and event.user_openid == "act.user-1"
    assert event.create_time == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert event.create_time.utcoffset() == timedelta(0)
    assert event.content == content
    assert {field: getattr(event, field) for field in expected} == expected


def test_tiktoks_documented_example_parses() -> None:
    event = parse_webhook(EXAMPLE_BODY)
    assert event.kind is WebhookEventType.AUTHORIZATION_REMOVED
    assert (event.client_key, event.user_openid) == ("bwo2m45353a6k85", "act.example12345Example12345Example")
    assert event.create_time == datetime(2021, 3, 10, 1, 10, 10, tzinfo=UTC)
    assert event.content == {"reason": 1} and event.reason == "1"


def test_an_unknown_event_parses_with_kind_none() -> None:
    event = parse_webhook(body_of(event="video.upload.failed", content='{"share_id": "s-1", "extra": [1, 2]}'))
    assert event.event == "video.upload.failed" and event.kind is None
    assert event.content == {"share_id": "s-1", "extra": [1, 2]}
    assert (event.publish_id, event.publish_type, event.reason, event.post_id) == (None, None, None, None)


def test_fields_tiktok_adds_later_are_ignored() -> None:
    event = parse_webhook(body_of(content="{}", new_top_level_field={"x": 1}))
    assert event.kind is WebhookEventType.PUBLISH_COMPLETE and event.content == {}


@pytest.mark.parametrize("content", [_ABSENT, None, "", "  ", "{}"])
def test_empty_or_absent_content_is_an_empty_dict(content: Any) -> None:
    assert parse_webhook(body_of(content=content)).content == {}


def test_the_event_is_frozen() -> None:
    event = parse_webhook(EXAMPLE_BODY)
    with pytest.raises(ValidationError):
        event.event = "other"  # type: ignore[misc]


PAYLOAD_ERRORS = [
    (b"not json", "webhook body is not JSON", None),
    (b"", "webhook body is empty", None),
    (b"  \n", "webhook body is empty", None),
    (b"\xff\xfe{}", "not UTF-8", None),
    (b"[1, 2]", "webhook body is an array, not a JSON object", None),
    (b'"text"', "webhook body is a string, not a JSON object", None),
    (b"null", "webhook body is null, not a JSON object", None),
    (b'{"event": NaN}', "contains NaN", None),
    (b'{"event": "a", "event": "b"}', "key 'event' twice", None),
    (b'{"event": 1e999}', "webhook body contains the number 1e999, too large", None),
    (b'{"event": ' + b"1" * 5000 + b"}", "webhook body has a number too long to read", None),
    (b"[" * 60_000, "webhook body is nested too deeply", None),
    (body_of(client_key=_ABSENT), "webhook body has no client_key", "client_key"),
    (body_of(event=_ABSENT), "webhook body has no event", "event"),
    (body_of(create_time=_ABSENT), "webhook body has no create_time", "create_time"),
    (body_of(user_openid=_ABSENT), "webhook body has no user_openid", "user_openid"),
    (body_of(client_key=""), "webhook client_key is blank", "client_key"),
    (body_of(event="  "), "webhook event is blank", "event"),
    (body_of(user_openid=""), "webhook user_openid is blank", "user_openid"),
    (body_of(client_key=None), "webhook client_key is null, not a string", "client_key"),
    (body_of(event=5), "webhook event is a number, not a string", "event"),
    (body_of(user_openid=["a"]), "webhook user_openid is an array, not a string", "user_openid"),
    (body_of(create_time="1700000000"), "create_time is a string, not an integer", "create_time"),
    (body_of(create_time=1700000000.5), "create_time is a number, not an integer", "create_time"),
    (body_of(create_time=True), "create_time is a boolean, not an integer", "create_time"),
    (body_of(create_time=None), "create_time is null, not an integer", "create_time"),
    (body_of(create_time=-1), "create_time -1 is not a unix time", "create_time"),
    (body_of(create_time=10**20), "is not a unix time", "create_time"),
    (body_of(content={"publish_id": "p"}), "content is an object, not a string holding a JSON object", "content"),
    (body_of(content=7), "content is a number, not a string", "content"),
    (body_of(content="{bad"), "webhook content is not JSON", "content"),
    (body_of(content="[1]"), "webhook content holds an array, not a JSON object", "content"),
    (body_of(content='"x"'), "webhook content holds a string, not a JSON object", "content"),
    (body_of(content='{"a": 1, "a": 2}'), "webhook content has the key 'a' twice", "content"),
    (body_of(content='{"a": Infinity}'), "webhook content contains Infinity", "content"),
    (body_of(content='{"a": -1e400}'), "webhook content contains the number -1e400, too large", "content"),
    (body_of(content="[" * 10_000), "webhook content is nested too deeply", "content"),
    (body_of(content='{"publish_id": ["p"]}'), "content.publish_id is an array, not a string or integer", "content.publish_id"),
    (body_of(content='{"post_id": 1.5}'), "content.post_id is a number, not a string or integer", "content.post_id"),
    (body_of(content='{"reason": true}'), "content.reason is a boolean", "content.reason"),
    (body_of(content='{"publish_type": {}}'), "content.publish_type is an object", "content.publish_type"),
]


@pytest.mark.parametrize(("body", "problem", "field"), PAYLOAD_ERRORS, ids=[problem for _, problem, _ in PAYLOAD_ERRORS])
def test_payload_errors_name_what_is_wrong(body: bytes, problem: str, field: str | None) -> None:
    with pytest.raises(WebhookPayloadInvalid) as caught:
        parse_webhook(body)
    message = str(caught.value)
    assert problem in message and "\n" not in message
    assert caught.value.detail == ({"field": field} if field else None)
    assert isinstance(caught.value, WebhookRejected) and caught.value.final


def test_fields_are_checked_in_the_documented_order() -> None:
    with pytest.raises(WebhookPayloadInvalid, match="client_key"):
        parse_webhook(body_of(client_key=_ABSENT, event=_ABSENT, content="{bad"))
    with pytest.raises(WebhookPayloadInvalid, match="create_time"):
        parse_webhook(body_of(create_time="x", user_openid=_ABSENT))


def test_the_body_size_is_bounded() -> None:
    assert MAX_WEBHOOK_BODY_SIZE == 64 * 1024
    just_fits = body_of(content="{}")
    just_fits += b" " * (MAX_WEBHOOK_BODY_SIZE - len(just_fits))
    assert len(just_fits) == MAX_WEBHOOK_BODY_SIZE
    assert parse_webhook(just_fits).kind is WebhookEventType.PUBLISH_COMPLETE
    with pytest.raises(WebhookPayloadInvalid, match=f"is {MAX_WEBHOOK_BODY_SIZE + 1} bytes; at most {MAX_WEBHOOK_BODY_SIZE}"):
        parse_webhook(just_fits + b" ")


# --- dedupe key ---------------------------------------------------------------------------------
def test_the_key_is_equal_for_the_same_event_delivered_twice() -> None:
    content = json.dumps({"publish_id": PUBLISH_ID, "publish_type": "DIRECT_PUBLISH"})
    first = parse_webhook(body_of(content=content))
    again = parse_webhook(body_of(content=content))
    assert first.key == again.key
    assert len(first.key) == 64 and int(first.key, 16) >= 0
    # A redelivery TikTok serialized with other spacing or key order is still the same event.
    reordered = json.dumps(
        {
            "user_openid": "act.user-1",
            "content": content,
            "create_time": 1700000000,
            "event": "post.publish.complete",
            "client_key": "ck-123",
        },
        indent=2,
    ).encode()
    assert parse_webhook(reordered).key == first.key
    swapped = json.dumps({"publish_type": "DIRECT_PUBLISH", "publish_id": PUBLISH_ID})
    assert parse_webhook(body_of(content=swapped)).key == first.key


@pytest.mark.parametrize(
    "change",
    [
        {"content": json.dumps({"publish_id": PUBLISH_ID, "publish_type": "INBOX_SHARE"})},
        {"content": json.dumps({"publish_id": PUBLISH_ID, "publish_type": "DIRECT_PUBLISH", "later": 1})},
        {"event": "post.publish.failed"},
        {"user_openid": "act.user-2"},
        {"create_time": 1700000001},
        {"client_key": "ck-456"},
    ],
)
def test_the_key_differs_when_the_event_differs(change: dict[str, Any]) -> None:
    content = json.dumps({"publish_id": PUBLISH_ID, "publish_type": "DIRECT_PUBLISH"})
    base = parse_webhook(body_of(content=content))
    assert parse_webhook(body_of(**{"content": content, **change})).key != base.key


def test_the_key_does_not_depend_on_how_the_event_was_built() -> None:
    parsed = parse_webhook(EXAMPLE_BODY)
    built = WebhookEvent(
        client_key="bwo2m45353a6k85",
        event="authorization.removed",
        create_time=datetime(2021, 3, 10, 10, 10, 10, tzinfo=ZoneInfo("Asia/Tokyo")),
        user_openid="act.example12345Example12345Example",
        content={"reason": 1},
    )
    assert built.create_time.tzinfo is UTC and built == parsed and built.key == parsed.key
    with pytest.raises(ValidationError, match="timezone-aware"):
        WebhookEvent(client_key="c", event="e", create_time=datetime(2021, 1, 1), user_openid="u")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(
    body=st.one_of(
        st.binary(max_size=256),
        st.dictionaries(st.sampled_from(["client_key", "event", "create_time", "user_openid", "content", "x"]), _JSON)
        .map(lambda d: json.dumps(d).encode()),
        st.dictionaries(st.sampled_from(["publish_id", "publish_type", "reason", "post_id", "y"]), _JSON).map(
            lambda c: body_of(content=json.dumps(c))
        ),
    )
)
def test_any_body_parses_or_is_payload_invalid(body: bytes) -> None:
    try:
        event = parse_webhook(body)
    except WebhookPayloadInvalid as exc:
        assert "\n" not in str(exc)
        return
    assert len(event.key) == 64
    for value in (event.publish_id, event.publish_type, event.reason, event.post_id):
        assert value is None or isinstance(value, str)
