"""Free text of a request: the refused characters, the one check, and PublishRequest over hostile input.

The character classes of publishing/_text.py are checked against an oracle written from Unicode's
categories, over every code point; PublishRequest is fed random unicode (lone surrogates included),
huge, empty and wrongly typed values: each ends in a ValidationError or a valid request that
round-trips unchanged, never in another exception.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from publishing import MAX_CAPTION_UTF16, PublishRequest
from publishing._text import REFUSED, TextKind, TextRefused, character_name, check_text, first_refused, visible
from tiktok import utf16_length

DIRECT = {"source": "s3://media/clip.mp4", "accounts": ["main"], "privacy_level": "SELF_ONLY"}
BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))


def refused_by_unicode(char: str, kind: TextKind) -> bool:
    """The oracle: the rule of each kind, from Unicode's general categories (not from the module's regex)."""
    category = unicodedata.category(char)
    if category == "Cs":
        return True
    if kind is TextKind.location:
        return char == "\0"
    if ord(char) in BIDI:
        return True
    return category == "Cc" and not (kind is TextKind.text and char in "\n\t")


@pytest.mark.parametrize("kind", list(TextKind))
def test_every_code_point_is_refused_exactly_when_the_rule_says(kind: TextKind) -> None:
    import re

    everything = "".join(map(chr, range(0x110000)))
    found = {m.start() for m in re.finditer(REFUSED[kind], everything)}
    expected = {point for point in range(0x110000) if refused_by_unicode(chr(point), kind)}
    assert found == expected, sorted(found ^ expected)[:20]


REFUSALS = {
    "ESC of a colour sequence": ("\x1b[31mred", TextKind.text, "U+001B (ESCAPE) at character 1: control characters "
                                                              "other than newline and tab are not allowed"),
    "NUL": ("ab\x00", TextKind.text, "U+0000 (NULL) at character 3"),
    "carriage return": ("line\r\nnext", TextKind.text, "U+000D (CARRIAGE RETURN) at character 5"),
    "DEL": ("a\x7f", TextKind.text, "U+007F (DELETE) at character 2"),
    "C1 NEXT LINE": ("a\x85b", TextKind.text, "U+0085 (NEXT LINE) at character 2"),
    "C1 CSI": ("\x9b31m", TextKind.text, "U+009B (C1 CONTROL) at character 1"),
    "right-to-left override": ("abc\u202etxt.exe", TextKind.text,
                               "U+202E (RIGHT-TO-LEFT OVERRIDE) at character 4: bidirectional embeddings, overrides "
                               "and isolates (U+202A-U+202E, U+2066-U+2069) are not allowed"),
    "left-to-right embedding": ("\u202aa", TextKind.text, "U+202A (LEFT-TO-RIGHT EMBEDDING) at character 1"),
    "first strong isolate": ("x\u2068y\u2069", TextKind.text, "U+2068 (FIRST STRONG ISOLATE) at character 2: "),
    "pop directional isolate": ("\u2069", TextKind.line, "U+2069 (POP DIRECTIONAL ISOLATE) at character 1"),
    "lone surrogate": ("🎬\ud800", TextKind.text, "U+D800 (LONE SURROGATE) at character 2: a lone surrogate is not a "
                                                  "character (it cannot be encoded as UTF-8)"),
    "tab in one line": ("a\tb", TextKind.line, "U+0009 (CHARACTER TABULATION) at character 2: control characters "
                                               "(newline and tab included) are not allowed"),
    "newline in one line": ("a\n", TextKind.line, "U+000A (LINE FEED) at character 2"),
    "NUL in a location": ("/srv/a\x00.mp4", TextKind.location, "U+0000 (NULL) at character 7: a NUL character cannot be "
                                                               "part of a path, a URL or an S3 key"),
    "surrogate in a location": ("s3://b/\udfff", TextKind.location, "U+DFFF (LONE SURROGATE) at character 8"),
}


@pytest.mark.parametrize("text, kind, reason", REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refusal_names_the_field_the_character_and_its_position(text: str, kind: TextKind, reason: str) -> None:
    with pytest.raises(TextRefused) as caught:
        check_text("caption", text, kind)
    refused = caught.value
    assert str(refused).startswith("caption: " + reason), str(refused)
    assert refused.field == "caption" and refused.final and not refused.retryable
    assert text[refused.position - 1] == refused.char and refused.code_point == f"U+{ord(refused.char):04X}"
    assert refused.detail == refused.context() and refused.context()["character"] == refused.code_point
    assert text not in str(refused.detail)  # the text itself is not repeated


def test_the_count_of_refused_characters_is_said() -> None:
    with pytest.raises(TextRefused, match=r"at character 2: .* \(1 more refused character follows\)$"):
        check_text("caption", "a\x1bb\x1b", TextKind.text)
    with pytest.raises(TextRefused, match=r"\(3 more refused characters follow\)$") as caught:
        check_text("caption", "\u202e\x00\x01\u2066", TextKind.text)
    assert caught.value.count == 4


ALLOWED = {
    "empty": ("", TextKind.text),
    "newlines and tabs": ("Launch day\n\n#new\t@friend", TextKind.text),
    "emoji with joiners and a flag": ("👩‍👩‍👧‍👦 🏳️‍🌈 🇫🇷", TextKind.text),
    "left-to-right and right-to-left marks": ("\u05e9\u05dc\u05d5\u05dd 2024\u200e \u200f#tag", TextKind.text),
    "arabic letter mark": ("\u0627\u0644\u0639\u0631\u0628\u064a\u0629\u061c 10", TextKind.text),
    "zero width space, BOM, line separator": ("a\u200bb\ufeffc\u2028d", TextKind.text),
    "a key with control and bidi characters": ("s3://media/in\x1b/\u202eclip.mp4", TextKind.location),
    "noncharacters": ("\ufffe\uffff\U0010ffff", TextKind.line),
}


@pytest.mark.parametrize("text, kind", ALLOWED.values(), ids=ALLOWED.keys())
def test_allowed_text_is_returned_as_it_is(text: str, kind: TextKind) -> None:
    assert check_text("caption", text, kind) is text
    assert first_refused(text, kind) is None


def test_control_characters_have_names() -> None:
    assert [character_name(c) for c in "\x00\x07\x1b\x1f\x7f\x80\x85\u202e\ud83c"] == [
        "NULL", "BELL", "ESCAPE", "UNIT SEPARATOR", "DELETE", "C1 CONTROL", "NEXT LINE", "RIGHT-TO-LEFT OVERRIDE",
        "LONE SURROGATE"]
    assert character_name("é") == "LATIN SMALL LETTER E WITH ACUTE"


def test_visible_makes_one_line_that_reads_as_written() -> None:
    assert visible("a\x1b[31m\u202eb\nc") == "a\ufffd[31m\ufffdb\ufffdc"
    assert visible("plain 🎬 \u200f") == "plain 🎬 \u200f"


# --- properties of the check ------------------------------------------------------------------------

#: Any code point, lone surrogates included, weighted towards the interesting ones.
any_char = st.characters(codec=None, categories=None) | st.characters(categories=["Cc", "Cs", "Cf"]) | st.sampled_from(
    sorted(map(chr, BIDI | {0x200E, 0x200F, 0x061C, 0x0A, 0x09, 0x0D, 0x00, 0x85})))
hostile_text = st.text(any_char, max_size=60)


@settings(max_examples=1500, deadline=None)
@given(text=hostile_text, kind=st.sampled_from(list(TextKind)))
def test_the_check_accepts_unchanged_or_names_the_first_refused_character(text: str, kind: TextKind) -> None:
    flags = [refused_by_unicode(c, kind) for c in text]
    try:
        result = check_text("field", text, kind)
    except TextRefused as exc:
        index = exc.position - 1
        assert flags[index] and not any(flags[:index]) and exc.count == sum(flags)
        assert exc.char == text[index] and f"at character {exc.position}:" in str(exc)
    else:
        assert result is text and not any(flags)


@settings(max_examples=30, deadline=None)
@given(size=st.integers(min_value=100_000, max_value=400_000), at=st.floats(min_value=0, max_value=1))
def test_a_huge_text_is_checked_whole(size: int, at: float) -> None:
    text = "x" * size
    assert check_text("caption", text) is text
    index = int(at * (size - 1))
    with pytest.raises(TextRefused, match=f"at character {index + 1}:"):
        check_text("caption", text[:index] + "\x00" + text[index + 1 :])


# --- PublishRequest over hostile input ----------------------------------------------------------------

huge_text = st.integers(min_value=2_000, max_value=120_000).map(lambda n: "\U0001f3ac" * (n // 2))
strings = hostile_text | huge_text | st.just("") | st.text(max_size=30)
junk = st.none() | st.integers() | st.floats() | st.booleans() | st.lists(st.text(max_size=5), max_size=3) | st.dictionaries(
    st.text(max_size=3), st.integers(), max_size=2)
values = strings | junk

def allowed_text(kind: TextKind, max_size: int) -> st.SearchStrategy[str]:
    return st.text(any_char.filter(lambda c: first_refused(c, kind) is None), max_size=max_size)


#: A valid request most of the time (captions of any allowed character), to which hostile values are then given.
valid_requests = st.fixed_dictionaries(
    {"source": st.sampled_from(["s3://media/a.mp4", "/srv/a.mp4", "https://cdn.example/a.mp4"]) | allowed_text(
        TextKind.location, 40).filter(str.strip),
     "accounts": st.lists(st.sampled_from(["main", " main ", "brand.2", "a" * 64, "B-1_x"]), min_size=1, max_size=3,
                          unique_by=str.strip),
     "privacy_level": st.sampled_from(["SELF_ONLY", "PUBLIC_TO_EVERYONE"])},
    optional={
        "caption": allowed_text(TextKind.text, 300) | st.text(alphabet="ab\n\t🎬", min_size=2190, max_size=2210),
        "mode": st.sampled_from(["direct", "inbox", "hold"]),
        "idempotency_key": st.none() | allowed_text(TextKind.line, 200),
        "move_prefix": allowed_text(TextKind.location, 40),
    },
)
FIELDS = ["source", "accounts", "caption", "privacy_level", "mode", "idempotency_key", "move_prefix",
          "cover_timestamp_ms", "schedule_at", "disable_comment", "privacy"]  # the last is no field of the model
requests = st.builds(lambda base, hostile: {**base, **hostile}, valid_requests,
                     st.dictionaries(st.sampled_from(FIELDS), values, max_size=2))


def validated(data: dict[str, Any]) -> PublishRequest | None:
    """The request, or None for a ValidationError: any other exception fails the test."""
    try:
        return PublishRequest.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():  # every error is readable: a location and a message
            assert isinstance(error["msg"], str) and error["msg"]
            if error["type"] == "text_refused":
                assert error["msg"].startswith("U+") and {"field", "character", "position"} <= error["ctx"].keys()
        return None


@settings(max_examples=600, deadline=None)
@given(data=requests)
def test_any_input_is_a_valid_request_or_a_validation_error(data: dict[str, Any]) -> None:
    request = validated(data)
    if request is None:
        return
    # Valid: nothing refused is in it, and it round-trips unchanged through JSON (Prefect's parameters, the ledger).
    assert request.caption == data.get("caption", "") and first_refused(request.caption) is None
    assert utf16_length(request.caption) <= MAX_CAPTION_UTF16
    assert request.source == data["source"] and first_refused(request.source, TextKind.location) is None
    again = PublishRequest.model_validate_json(request.model_dump_json())
    assert again == request and again.caption == data.get("caption", "")
    assert PublishRequest.model_validate(request.model_dump(mode="json")) == request


@settings(max_examples=600, deadline=None)
@given(data=requests)
def test_json_input_is_a_valid_request_or_a_validation_error(data: dict[str, Any]) -> None:
    # What the listener's sidecar and Prefect's parameters carry: JSON text (lone surrogates as \\ud800 escapes).
    try:
        request = PublishRequest.model_validate_json(json.dumps(data))
    except ValidationError:
        return
    assert request == validated(json.loads(json.dumps(data)))


@settings(max_examples=800, deadline=None)
@given(caption=hostile_text | st.text(max_size=40))
def test_a_caption_is_refused_exactly_when_the_check_refuses_it(caption: str) -> None:
    request = validated({**DIRECT, "caption": caption})
    try:
        check_text("caption", caption)
    except TextRefused as exc:
        assert request is None
        with pytest.raises(ValidationError) as caught:
            PublishRequest.model_validate({**DIRECT, "caption": caption})
        (error,) = caught.value.errors()
        assert (error["loc"], error["type"], error["msg"]) == (("caption",), "text_refused", exc.reason)
        assert error["ctx"]["position"] == exc.position and error["ctx"]["character"] == exc.code_point
    else:
        assert request is not None and request.caption == caption


@pytest.mark.parametrize("field, value, loc, reason", [
    ("caption", "\x1b[31mred", ("caption",), "U+001B (ESCAPE) at character 1"),
    ("caption", "Sale \u202e%05", ("caption",), "U+202E (RIGHT-TO-LEFT OVERRIDE) at character 6"),
    ("caption", "a\x00b", ("caption",), "U+0000 (NULL) at character 2"),
    ("idempotency_key", "launch\t1", ("idempotency_key",), "U+0009 (CHARACTER TABULATION) at character 7"),
    ("source", "/srv/a\x00.mp4", ("source",), "U+0000 (NULL) at character 7"),
    ("move_prefix", "done/\ud800", ("move_prefix",), "U+D800 (LONE SURROGATE) at character 6"),
    ("accounts", ["main", "\u2066brand"], ("accounts", 1), "account name: U+2066 (LEFT-TO-RIGHT ISOLATE) at character 1"),
    ("accounts", ["../evil"], ("accounts", 0), "account name '../evil' is not valid: use 1-64 letters, digits"),
])
def test_each_text_field_names_its_problem(field: str, value: Any, loc: tuple[Any, ...], reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PublishRequest.model_validate({**DIRECT, field: value})
    (error,) = caught.value.errors()
    assert error["loc"] == loc and error["msg"].startswith(reason), error


def test_the_caption_length_check_stays() -> None:
    with pytest.raises(ValidationError, match="2201 UTF-16 code units"):
        PublishRequest.model_validate({**DIRECT, "caption": "\U0001f3ac" + "x" * (MAX_CAPTION_UTF16 - 1)})
    assert PublishRequest.model_validate({**DIRECT, "caption": "\n\t" * (MAX_CAPTION_UTF16 // 2)}).caption.count("\t") == 1100


def test_a_key_may_hold_what_a_caption_may_not() -> None:
    # Any S3 key stays publishable: control and bidi characters are refused in the caption, not in the source.
    request = PublishRequest.model_validate({**DIRECT, "source": "s3://media/in\x1b/\u202eclip.mp4"})
    assert request.source == "s3://media/in\x1b/\u202eclip.mp4"


# --- S3: the sidecar and the metadata go through the same check ---------------------------------------

def test_a_sidecar_or_metadata_caption_is_refused_naming_where_it_came_from(s3_bucket: str, moto_server) -> None:
    """Real objects on the moto server: read as the listener reads them, refused as the CLI refuses them."""
    import boto3
    from email.header import Header

    from publishing.s3_events import S3RequestInvalid, read_object, request_for_object, sidecar_location
    from publishing.sources import S3Location

    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    where = S3Location(s3_bucket, "in/\x1bclip\u202e.mp4")  # a key may hold them: it stays publishable
    defaults = {"in/": {"accounts": ["main"], "privacy_level": "SELF_ONLY"}}

    def outcome() -> PublishRequest | S3RequestInvalid:
        try:
            return request_for_object(read_object(s3, where), prefix_defaults=defaults, require_sidecar=False)
        except S3RequestInvalid as exc:
            return exc

    # Metadata travels as RFC 2047 encoded words when it is not ASCII.
    s3.put_object(Bucket=s3_bucket, Key=where.key, Body=b"video",
                  Metadata={"tiktok-caption": Header("Sale \u202e%05", "utf-8").encode()})
    refused = outcome()
    assert isinstance(refused, S3RequestInvalid)
    assert str(refused) == (f"metadata of {where.uri}: caption: U+202E (RIGHT-TO-LEFT OVERRIDE) at character 6: "
                            "bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) are not allowed")

    s3.put_object(Bucket=s3_bucket, Key=where.key, Body=b"video", Metadata={"tiktok-caption": "fine"})
    side = sidecar_location(where)
    s3.put_object(Bucket=s3_bucket, Key=side.key, Body=json.dumps({"caption": "\x1b[31mred", "idempotency_key": "k\x00"}).encode())
    refused = outcome()
    assert isinstance(refused, S3RequestInvalid)
    assert str(refused) == (f"sidecar {side.uri}: caption: U+001B (ESCAPE) at character 1: control characters other than "
                            f"newline and tab are not allowed; sidecar {side.uri}: idempotency_key: U+0000 (NULL) at "
                            "character 2: control characters (newline and tab included) are not allowed")

    s3.put_object(Bucket=s3_bucket, Key=side.key, Body=json.dumps({"caption": "Launch\n\t#new \u200f"}).encode())
    request = outcome()
    assert isinstance(request, PublishRequest), request
    assert request.caption == "Launch\n\t#new \u200f" and request.source == where.uri
