"""The publish-video form refuses what the flow would refuse, and nothing it would accept.

Every sample is validated the way the Prefect server validates a new run's parameters (prefect's own
`validate`, Draft 2020-12) and, where the UI matters, the way the Prefect UI sends the form to
/api/ui/schemas/validate: with only the keywords its schema mapper keeps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools.validation import ValidationError, build_error_obj, is_valid_schema, validate
from pydantic import ValidationError as ModelInvalid

from flows.publish import publish_video
from publishing import MAX_CAPTION_UTF16, PublishRequest
from publishing._form import NO_ACCOUNT_DESCRIPTION, account_choices, request_schema, with_account_choices
from publishing.sources import InvalidSource, fetch_source
from tiktok_pipeline.settings import load_settings

CONNECTED = ["main", "private"]
DIRECT = {"source": "s3://media/clip.mp4", "accounts": ["main"], "privacy_level": "SELF_ONLY"}
INBOX = {"source": "s3://media/clip.mp4", "accounts": ["main"], "mode": "inbox"}


@pytest.fixture(scope="module")
def deployed() -> dict[str, Any]:
    """What `prefect deploy` writes for publish-video: the schema of the flow's signature."""
    return parameter_schema(publish_video).model_dump()


@pytest.fixture(scope="module")
def form(deployed: dict[str, Any]) -> dict[str, Any]:
    """The schema once the connected accounts are written onto the deployment."""
    return with_account_choices(deployed, CONNECTED)


def refusal(request: dict[str, Any], schema: dict[str, Any]) -> str | None:
    """The server's reason for refusing `{"request": request}` (its 409 detail says the same), or None."""
    try:
        validate({"request": request}, schema, raise_on_error=True)
    except ValidationError as exc:
        return str(exc)
    return None


def accepted(request: dict[str, Any], schema: dict[str, Any]) -> bool:
    """`refusal(...) is None`, without the (slow) check of the schema itself that raising adds."""
    return not validate({"request": request}, schema)


# Keys the Prefect UI's schema mapper keeps, on the schema, its definitions and their properties
# (prefect/server/ui/assets/index-*.js, "SchemaResponse"); anyOf, allOf and items pass through whole.
UI_KEPT = {"definitions", "position", "block_type_slug", "$ref", "anyOf", "allOf", "example", "default", "const",
           "description", "enum", "format", "items", "prefixItems", "properties", "required", "title", "type",
           "maxItems", "minItems"}


def as_the_ui_sends_it(schema: dict[str, Any]) -> dict[str, Any]:
    def keep(node: dict[str, Any]) -> dict[str, Any]:
        kept = {key: value for key, value in node.items() if key in UI_KEPT}
        for nested in ("properties", "definitions"):
            if nested in kept:
                kept[nested] = {name: keep(child) for name, child in kept[nested].items()}
        return kept

    return keep(schema)


def ui_errors(request: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """What /api/ui/schemas/validate answers the UI (its errors are shown under each field)."""
    return build_error_obj(validate({"request": request}, as_the_ui_sends_it(schema)))


def field_errors(answer: dict[str, Any], field: str) -> list[str]:
    (request,) = [e for e in answer["errors"] if e.get("property") == "request"]
    return [m for e in request["errors"] if isinstance(e, dict) and e.get("property") == field
            for m in e["errors"] if isinstance(m, str)]


# --- refused: the model refuses them too -------------------------------------------------------------

REFUSED_BY_THE_MODEL = {
    "direct post without privacy": ({k: v for k, v in DIRECT.items() if k != "privacy_level"},
                                    "'privacy_level' is a required property"),
    "held post without privacy": ({**INBOX, "mode": "hold"}, "'privacy_level' is a required property"),
    "direct post with privacy null": ({**DIRECT, "privacy_level": None}, "a direct or held post needs a privacy level"),
    "branded content, SELF_ONLY": ({**DIRECT, "brand_content_toggle": True}, "branded content cannot be SELF_ONLY"),
    "branded inbox draft, SELF_ONLY": ({**INBOX, "brand_content_toggle": True, "privacy_level": "SELF_ONLY"},
                                       "branded content cannot be SELF_ONLY"),
    "no account": ({**DIRECT, "accounts": []}, "[] should be non-empty"),
    "an account twice": ({**DIRECT, "accounts": ["main", "main"]}, "has non-unique elements"),
    "only blank accounts": ({**DIRECT, "accounts": ["", "  "]}, "at least one account name (not blank)"),
    "caption over 2200 characters": ({**DIRECT, "caption": "x" * (MAX_CAPTION_UTF16 + 1)},
                                     "a caption of at most 2200 characters"),
    "empty source": ({**DIRECT, "source": ""}, "'' should be non-empty"),
    "unknown field": ({**DIRECT, "privacy": "SELF_ONLY"}, "Additional properties are not allowed"),
    "privacy level TikTok does not have": ({**DIRECT, "privacy_level": "EVERYONE"}, "privacy_level"),
    "caption with an ESC sequence": ({**DIRECT, "caption": "\x1b[31mred"}, "a caption without control characters"),
    "caption with a NUL": ({**DIRECT, "caption": "a\x00b"}, "a caption without control characters"),
    "caption with a right-to-left override": ({**DIRECT, "caption": "Sale \u202e%05"},
                                              "bidirectional overrides or isolates (U+202A-U+202E, U+2066-U+2069)"),
    "caption with a lone surrogate": ({**DIRECT, "caption": "\ud83c"}, "or lone surrogates"),
    "idempotency key with a tab": ({**DIRECT, "idempotency_key": "launch\t1"}, "an idempotency key without control"),
    "source with a NUL": ({**DIRECT, "source": "/srv/a\x00.mp4"}, "a source without NUL characters"),
    "move prefix with a NUL": ({**DIRECT, "move_prefix": "done\x00/"}, "a prefix without NUL characters"),
    "account name with a path": ({**DIRECT, "accounts": ["../evil"]}, "account names that use 1-64 letters, digits"),
    "account name too long": ({**DIRECT, "accounts": ["a" * 65]}, "account names that use 1-64 letters"),
    "account name with an isolate": ({**DIRECT, "accounts": ["main", "\u2066x"]}, "account names that use 1-64"),
}


@pytest.mark.parametrize("request_, reason", REFUSED_BY_THE_MODEL.values(), ids=REFUSED_BY_THE_MODEL.keys())
@pytest.mark.parametrize("choices", [False, True], ids=["typed-accounts", "account-choices"])
def test_refused_at_creation_as_the_model_refuses(request_: dict[str, Any], reason: str, choices: bool,
                                                   deployed: dict[str, Any], form: dict[str, Any]) -> None:
    answer = refusal(request_, form if choices else deployed)
    assert answer is not None and reason in answer, answer
    with pytest.raises(ModelInvalid):
        PublishRequest.model_validate(request_)


def test_the_server_names_the_field_and_reads_as_a_sentence(form: dict[str, Any]) -> None:
    caption = refusal({**DIRECT, "caption": "y" * 3000}, form)
    # Not the 3,000 characters back: the reason, in words.
    assert caption == ("Validation failed for field 'request.caption'. Failure reason: 'a caption of at most 2200 "
                       "characters (TikTok counts UTF-16 code units, emoji count twice)' was expected")
    assert refusal({**DIRECT, "brand_content_toggle": True}, form) == (
        "Validation failed for field 'request.privacy_level'. Failure reason: 'PUBLIC_TO_EVERYONE, "
        "MUTUAL_FOLLOW_FRIENDS or FOLLOWER_OF_CREATOR: branded content cannot be SELF_ONLY' was expected")
    assert refusal({**DIRECT, "accounts": ["nobody"]}, form) == (
        "Validation failed for field 'request.accounts[0]'. Failure reason: 'nobody' is not one of ['main', 'private']")


# --- refused: the flow refuses them when it starts ---------------------------------------------------

REFUSED_SOURCES = ["ftp://media.example/clip.mp4", "sftp://host/clip.mp4", "S3://media/clip.mp4", "s3://media",
                   "s3://media/", "s3://media//", "s3:/media/clip.mp4", "s3:media/clip.mp4", "s3:///clip.mp4"]


@pytest.mark.parametrize("source", REFUSED_SOURCES)
def test_a_source_the_flow_cannot_fetch_is_refused(source: str, form: dict[str, Any], tmp_path: Path) -> None:
    answer = refusal({**DIRECT, "source": source}, form)
    assert answer is not None and "Validation failed for field 'request.source'" in answer
    assert "s3://bucket/key" in answer  # what to write instead
    PublishRequest.model_validate({**DIRECT, "source": source})  # the model takes it: ingest refuses it
    with pytest.raises(InvalidSource):
        fetch_source(source, tmp_path, load_settings(), max_bytes=1)


def test_an_account_that_is_not_connected_is_refused(form: dict[str, Any]) -> None:
    # The flow would fail that account's post (no such account); with choices, so does the form.
    assert "'nobody' is not one of ['main', 'private']" in refusal({**DIRECT, "accounts": ["main", "nobody"]}, form)
    # A blank or padded name is not a choice either (the validator would drop or strip it).
    assert "'' is not one of" in refusal({**DIRECT, "accounts": ["main", ""]}, form)
    assert refusal({**DIRECT, "accounts": ["main", ""]}, with_account_choices(form, [])) is None


# --- accepted: whatever the flow accepts --------------------------------------------------------------

ACCEPTED = {
    "direct post": DIRECT,
    "inbox draft without privacy": INBOX,
    "inbox draft with privacy null": {**INBOX, "privacy_level": None},
    "held post with privacy": {**INBOX, "mode": "hold", "privacy_level": "MUTUAL_FOLLOW_FRIENDS"},
    "branded content, public": {**DIRECT, "brand_content_toggle": True, "privacy_level": "PUBLIC_TO_EVERYONE"},
    "branded inbox draft without privacy": {**INBOX, "brand_content_toggle": True},
    "own brand, SELF_ONLY": {**DIRECT, "brand_organic_toggle": True},
    "caption of exactly 2200 characters": {**DIRECT, "caption": "x" * MAX_CAPTION_UTF16},
    "caption of 1100 emoji (2200 UTF-16 units)": {**DIRECT, "caption": "\U0001f3ac" * 1100},
    "both accounts": {**DIRECT, "accounts": ["private", "main"]},
    "https source": {**DIRECT, "source": "https://cdn.example/clip.mp4"},
    "http source": {**DIRECT, "source": "http://127.0.0.1:9000/clip.mp4"},
    "file URL": {**DIRECT, "source": "file:///srv/media/clip.mp4"},
    "absolute path": {**DIRECT, "source": "/srv/media/clip.mp4"},
    "relative path with a colon": {**DIRECT, "source": "renders/take 2: final.mp4"},
    "windows path": {**DIRECT, "source": "C:\\media\\clip.mp4"},
    "S3 key with a trailing slash": {**DIRECT, "source": "s3://media/clips/clip.mp4/"},
    "S3 key with control and bidi characters": {**DIRECT, "source": "s3://media/in\x1b/\u202eclip.mp4"},
    "caption on lines, with tabs, marks and emoji": {**DIRECT, "caption": "Launch\n\t#new \u200f\u05e9\u05dc\u05d5\u05dd 👩‍👩‍👧"},
    "everything set": {**DIRECT, "caption": "Launch #new @friend", "disable_comment": True, "disable_duet": True,
                       "disable_stitch": True, "is_aigc": True, "cover_timestamp_ms": 1500, "fit": "crop",
                       "on_too_long": "reject", "idempotency_key": "launch-1", "schedule_at": "2031-05-01T09:30:00Z",
                       "cap_policy": "fail", "source_action": "move", "move_prefix": "done/"},
}


@pytest.mark.parametrize("request_", ACCEPTED.values(), ids=ACCEPTED.keys())
@pytest.mark.parametrize("choices", [False, True], ids=["typed-accounts", "account-choices"])
def test_accepted_what_the_model_accepts(request_: dict[str, Any], choices: bool, deployed: dict[str, Any],
                                         form: dict[str, Any]) -> None:
    PublishRequest.model_validate(request_)
    assert refusal(request_, form if choices else deployed) is None
    # What the pipeline itself sends (schedule_publish, publish_via_deployment): the model dumped to JSON.
    dumped = PublishRequest.model_validate(request_).model_dump(mode="json")
    assert refusal(dumped, form if choices else deployed) is None


def test_the_exact_caption_check_stays_in_the_validator(form: dict[str, Any]) -> None:
    # 2200 characters, but 2201 UTF-16 units: the schema cannot count those, the model does.
    caption = "\U0001f3ac" + "x" * (MAX_CAPTION_UTF16 - 1)
    assert refusal({**DIRECT, "caption": caption}, form) is None
    with pytest.raises(ModelInvalid, match="2201 UTF-16 code units"):
        PublishRequest.model_validate({**DIRECT, "caption": caption})


def test_a_refused_character_is_named_by_the_model_and_summed_up_by_the_form(form: dict[str, Any]) -> None:
    # JSON Schema cannot say where: the form says what is refused, the validator which character and where.
    assert refusal({**DIRECT, "caption": "ok \x1b[31mred"}, form) == (
        "Validation failed for field 'request.caption'. Failure reason: 'a caption without control characters "
        "(newline and tab are fine), bidirectional overrides or isolates (U+202A-U+202E, U+2066-U+2069) or lone "
        "surrogates' was expected")
    with pytest.raises(ModelInvalid, match=r"U\+001B \(ESCAPE\) at character 4: control characters other than newline"):
        PublishRequest.model_validate({**DIRECT, "caption": "ok \x1b[31mred"})
    messages = field_errors(ui_errors({**DIRECT, "caption": "ok \u202e"}, form), "caption")
    assert any("a caption without control characters" in m for m in messages), messages


# --- properties: over many requests ------------------------------------------------------------------

names = st.sampled_from(CONNECTED)
requests = st.fixed_dictionaries(
    {"source": st.sampled_from(["s3://media/a.mp4", "https://cdn.example/a.mp4", "/srv/a.mp4"]),
     "accounts": st.lists(names, max_size=3)},
    optional={
        "caption": st.text(max_size=40) | st.text(min_size=2195, max_size=2205, alphabet="ab\U0001f3ac"),
        "privacy_level": st.none() | st.sampled_from(["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS",
                                                      "FOLLOWER_OF_CREATOR", "SELF_ONLY"]),
        "mode": st.sampled_from(["direct", "inbox", "hold"]),
        "brand_content_toggle": st.booleans(),
        "brand_organic_toggle": st.booleans(),
        "cover_timestamp_ms": st.none() | st.integers(min_value=-2, max_value=10_000),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request_=requests)
def test_the_form_and_the_model_agree(request_: dict[str, Any], form: dict[str, Any]) -> None:
    """Refused by the form ⇒ refused by the model; accepted by the model ⇒ accepted by the form."""
    try:
        model_accepts = PublishRequest.model_validate_json(json.dumps(request_)) is not None
    except ModelInvalid:
        model_accepts = False
    form_accepts = accepted(request_, form)
    if model_accepts:
        assert form_accepts, refusal(request_, form)
    if not form_accepts:
        assert not model_accepts


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(accounts=st.lists(st.sampled_from(["main", " main", "private", "", " ", "\t", "brand"]), max_size=4))
def test_typed_accounts_are_refused_only_when_the_model_refuses_them(accounts: list[str], deployed: dict[str, Any]) -> None:
    request_ = {**DIRECT, "accounts": accounts}
    try:
        model_accepts = PublishRequest.model_validate(request_) is not None
    except ModelInvalid:
        model_accepts = False
    if not accepted(request_, deployed):
        assert not model_accepts, refusal(request_, deployed)


hostile = st.text(st.characters(codec=None, categories=None) | st.characters(categories=["Cc", "Cs", "Cf", "Zs"]) |
                  st.sampled_from(["\u202e", "\u2066", "\u200f", "\n", "\t", "\r", "\x00", "\x85"]), max_size=20)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["caption", "idempotency_key", "source", "move_prefix"]), text=hostile)
def test_the_form_refuses_a_text_field_exactly_when_the_model_does(field: str, text: str, form: dict[str, Any]) -> None:
    value = "/srv/" + text if field == "source" else text  # a path: the form's scheme rules stay out of it
    request_ = {**DIRECT, field: value}
    try:
        model_accepts = PublishRequest.model_validate(request_) is not None
    except ModelInvalid:
        model_accepts = False
    assert accepted(request_, form) == model_accepts, refusal(request_, form)


name_chars = st.sampled_from(list("aZ09._-/é ") + ["\t", "\n", "\x1c", "\x85", "\u00a0", "\u2003", "\u202e", "\x00"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(name_chars, max_size=8) | st.text(name_chars, min_size=62, max_size=67))
def test_a_typed_account_name_is_refused_exactly_when_the_model_refuses_it(name: str, deployed: dict[str, Any]) -> None:
    request_ = {**DIRECT, "accounts": [name]}
    try:
        model_accepts = PublishRequest.model_validate(request_) is not None
    except ModelInvalid:
        model_accepts = False
    assert accepted(request_, deployed) == model_accepts, (name, refusal(request_, deployed))


source_tails = st.text(alphabet="sS3hHtTpPfFiIlLeE:/.+-_aZ09 \t", max_size=12)
sources = st.text(alphabet="sS3hHtTpPfFiIlLeE:/.+-_aZ09 \t", min_size=1, max_size=14) | st.builds(
    str.__add__, st.sampled_from(["s3:", "S3:", "s3://", "s3:/", "s3://b/", "ftp:", "http:", "HTTPS:", "File:", "c:",
                                  "ab+c:", " s3:", "\ts3:", "x-y.z:"]), source_tails)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(source=sources)
def test_a_source_is_refused_only_when_ingest_refuses_it(source: str, form: dict[str, Any], tmp_path: Path) -> None:
    if accepted({**DIRECT, "source": source}, form):
        return
    with pytest.raises(InvalidSource):
        fetch_source(source, tmp_path, load_settings(), max_bytes=1)


# --- the accounts to choose from ---------------------------------------------------------------------

def test_the_choices_are_the_connected_accounts(deployed: dict[str, Any], form: dict[str, Any]) -> None:
    assert account_choices(deployed) is None  # as deployed: names are typed in
    assert account_choices(form) == ["main", "private"]
    again = with_account_choices(form, ["private", "brand", "main", "brand"])
    assert account_choices(again) == ["brand", "main", "private"]  # sorted, once each
    assert account_choices(with_account_choices(again, ["main"])) == ["main"]
    assert with_account_choices(form, CONNECTED) == form  # idempotent: a second sync changes nothing
    assert deployed == parameter_schema(publish_video).model_dump()  # the input is left alone
    is_valid_schema(form)


def test_with_no_account_connected_the_field_says_how_to_connect_one(form: dict[str, Any]) -> None:
    none = with_account_choices(form, [])
    accounts = request_schema(none)["properties"]["accounts"]
    assert account_choices(none) is None and accounts["items"] == {"type": "string"}
    assert accounts["description"] == NO_ACCOUNT_DESCRIPTION and "accounts connect NAME" in accounts["description"]
    assert refusal({**DIRECT, "accounts": ["anyone"]}, none) is None  # usable: any name can be typed
    assert "privacy_level" in refusal({**INBOX, "mode": "direct"}, none)  # and the rules still hold


def test_the_ui_refuses_the_same_and_shows_it_under_the_field(form: dict[str, Any]) -> None:
    # The UI drops property-level keywords before it validates: the rules must survive that.
    no_privacy = ui_errors({**DIRECT, "privacy_level": None}, form)  # the form sends null for "None"
    assert no_privacy["valid"] is False
    assert any("a direct or held post needs a privacy level" in m for m in field_errors(no_privacy, "privacy_level"))
    for request_, field, reason in [
        ({**DIRECT, "caption": "x" * 2300}, "caption", "at most 2200 characters"),
        ({**DIRECT, "accounts": ["main", "main"]}, "accounts", "non-unique"),
        ({**DIRECT, "source": ""}, "source", "should be non-empty"),
        ({**DIRECT, "source": "s3:/media/clip.mp4"}, "source", "s3://bucket/key"),
        ({**DIRECT, "brand_content_toggle": True}, "privacy_level", "branded content cannot be SELF_ONLY"),
    ]:
        messages = field_errors(ui_errors(request_, form), field)
        assert any(reason in m for m in messages), (field, messages)
    assert ui_errors(INBOX, form) == {"errors": [], "valid": True}
    assert ui_errors(DIRECT, form) == {"errors": [], "valid": True}


def test_a_schema_without_the_request_parameter_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="no 'request' parameter"):
        with_account_choices({"type": "object", "properties": {}}, ["main"])
    with pytest.raises(ValueError, match="no such definition"):
        with_account_choices({"properties": {"request": {"$ref": "#/definitions/Gone"}}, "definitions": {}}, ["main"])
