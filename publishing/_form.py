"""The publish-video form: JSON Schema that refuses what the flow would refuse, and the accounts to choose from.

A deployment with `enforce_parameter_schema` has its parameters checked against its schema when a run
is created (the UI's Run form, `prefect deployment run --params`, `run_deployment`), so what the
schema can say is refused before a worker picks the run up. Two pure transformations, no Prefect:

- `add_request_rules(schema)`: the `json_schema_extra` of `PublishRequest`. The rules of its
  validators that JSON Schema can express (privacy required for direct and held posts, branded
  content never SELF_ONLY, a caption TikTok can accept, accounts neither duplicated nor all blank,
  account names of the ledger's form, no refused character in a text field: the very patterns of
  publishing/_text.py) and the form of source the flow can fetch. Each rule is a necessary condition: what the schema refuses, the
  validators or the flow refuse too; exact checks (UTF-16 length, stripped duplicates) stay there.
- `with_account_choices(parameters, names)`: the deployment's parameter schema with the connected
  accounts as the choices of `request.accounts` (`deployments.forms` writes it to the server).

Where the rules sit matters. The Prefect UI (3.8) keeps only some keywords of a property when it
sends the form to /api/ui/schemas/validate (type, enum, items, minItems, maxItems, anyOf, allOf, ...)
and drops the others (minLength, maxLength, pattern, uniqueItems, if/then/else), while what is under
`allOf`, `anyOf` and `items` reaches the validator untouched. So every rule is an `allOf` entry of the
PublishRequest schema, and property-level keywords the UI would drop are moved there too: the UI and
the server then refuse the same things.

JSON Schema has no custom messages, and the message of a length or pattern error quotes the whole
value (a 2,300-character caption, a regex). Where that would be unreadable, the rule is written as
"if <refused> then const <sentence>": the const cannot match, and the error reads
"'<sentence>' was expected", which is what the UI shows under the field and the server's 409 says.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

from ledger import PublishMode
from publishing._names import ACCOUNT_NAME_MAX_LENGTH, ACCOUNT_NAME_RULE
from publishing._text import REFUSED, TextKind
from tiktok import PrivacyLevel

#: Keywords of a property that the Prefect UI drops before it asks the server to validate the form.
UI_DROPPED_KEYWORDS = frozenset({
    "minLength", "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf", "uniqueItems", "contains", "minContains", "maxContains", "minProperties", "maxProperties",
    "propertyNames", "dependentRequired", "dependentSchemas", "not", "oneOf", "if", "then", "else",
})  # fmt: skip

#: The flow parameter the form is about, and the field of it that names accounts.
REQUEST_PARAMETER = "request"
ACCOUNTS_FIELD = "accounts"

ACCOUNTS_DESCRIPTION = "Connected accounts to post to (tiktok-pipeline accounts list)"
NO_ACCOUNT_DESCRIPTION = (
    "No account is connected yet: connect one with `tiktok-pipeline accounts connect NAME` and it is offered here "
    "(type its name meanwhile)"
)

# A scheme as urllib.parse reads one (a letter, then letters, digits, + - .; up to the first colon) that
# the flow does not fetch: it refuses every scheme but s3, http, https and file (one letter: a drive).
UNSUPPORTED_SCHEME = r"^(?![sS]3:|[hH][tT][tT][pP][sS]?:|[fF][iI][lL][eE]:)[A-Za-z][A-Za-z0-9+.-]+:"
# An s3 scheme (urllib lowercases it) is read by parse_s3_uri, which wants exactly s3://bucket/key.
S3_SCHEME = r"^[sS]3:"
S3_URI = r"^s3://[^/]+/[\s\S]*[^/]"
NOT_BLANK = r"\S"
BLANK = r"^\s*$"
# A name of `accounts` the validator keeps: blank (dropped), or an account name once stripped (Python's
# \s is str.isspace, what str.strip removes).
ACCOUNT_NAME_OR_BLANK = rf"^\s*(?:[A-Za-z0-9][A-Za-z0-9._-]{{0,{ACCOUNT_NAME_MAX_LENGTH - 1}}})?\s*$"

_BIDI = "bidirectional overrides or isolates (U+202A-U+202E, U+2066-U+2069)"
#: The text fields of a request, the characters each refuses (publishing/_text.py) and the form's sentence.
TEXT_FIELDS: dict[str, tuple[TextKind, str]] = {
    "caption": (TextKind.text, f"a caption without control characters (newline and tab are fine), {_BIDI} or lone surrogates"),
    "idempotency_key": (TextKind.line, f"an idempotency key without control characters, {_BIDI} or lone surrogates"),
    "source": (TextKind.location, "a source without NUL characters or lone surrogates (no path, URL or S3 key holds them)"),
    "move_prefix": (TextKind.location, "a prefix without NUL characters or lone surrogates (no S3 key holds them)"),
}


def refusal(sentence: str) -> dict[str, Any]:
    """A schema that the value it is applied to never matches, whose error reads "'<sentence>' was expected".

    Used only under an `if` that already established the value is refused (see the module doc).
    """
    return {"const": sentence}


def _when(condition: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    return {"if": condition, "then": then}


def _field(name: str, schema: dict[str, Any], *, present: bool = True) -> dict[str, Any]:
    """A schema about one field of the request: `schema` applies to it; with `present` it must be there."""
    return {"properties": {name: schema}, **({"required": [name]} if present else {})}


def _one_of(values: Sequence[str]) -> str:
    return f"{', '.join(values[:-1])} or {values[-1]}"


def privacy_rule() -> dict[str, Any]:
    """privacy_level is required, and not null, unless the post is an inbox draft or is reviewed (the
    reviewer chooses it then): TikTok forbids a default."""
    levels = [level.value for level in PrivacyLevel]
    sentence = f"one of {_one_of(levels)}: a direct or held post needs a privacy level (TikTok has no default)"
    not_null = {"if": {"type": "null"}, "then": refusal(sentence)}
    return {
        "if": {"anyOf": [_field("mode", {"const": PublishMode.inbox.value}), _field("review", {"const": True})]},
        "else": {"required": ["privacy_level"], "properties": {"privacy_level": not_null}},
    }


def branded_content_rule() -> dict[str, Any]:
    """Branded content (brand_content_toggle) cannot be SELF_ONLY (TikTok's content-sharing rules)."""
    others = [level.value for level in PrivacyLevel if level is not PrivacyLevel.SELF_ONLY]
    branded_and_private = {
        "properties": {"brand_content_toggle": {"const": True}, "privacy_level": {"const": PrivacyLevel.SELF_ONLY.value}},
        "required": ["brand_content_toggle", "privacy_level"],
    }
    sentence = f"{_one_of(others)}: branded content cannot be SELF_ONLY"
    return _when(branded_and_private, _field("privacy_level", refusal(sentence)))


def caption_rule(max_length: int) -> dict[str, Any]:
    """At most `max_length` characters: a necessary condition for TikTok's limit in UTF-16 code units."""
    too_long = _field("caption", {"type": "string", "minLength": max_length + 1})
    sentence = f"a caption of at most {max_length} characters (TikTok counts UTF-16 code units, emoji count twice)"
    return _when(too_long, _field("caption", refusal(sentence)))


def source_rules() -> list[dict[str, Any]]:
    """Sources the flow's ingest step refuses for their form alone: an unsupported scheme, a broken S3 URI."""
    unsupported = _field("source", {"type": "string", "pattern": UNSUPPORTED_SCHEME})
    broken_s3 = _field("source", {"type": "string", "pattern": S3_SCHEME, "not": {"pattern": S3_URI}})
    return [
        _when(unsupported, _field("source", refusal("s3://bucket/key, an https:// URL or a path readable by the worker"))),
        _when(broken_s3, _field("source", refusal("an S3 URI of the form s3://bucket/key"))),
    ]


def accounts_rules() -> list[dict[str, Any]]:
    """No account listed twice, and not only blank names.

    A blank name among others is not refused: the validator drops it and posts to the others. (With
    the accounts offered as choices, a blank name is not one of them and is refused like any other.)
    """
    only_blanks = {"type": "array", "minItems": 1, "not": {"contains": {"type": "string", "pattern": NOT_BLANK}}}
    # The validator compares names once blanks are dropped: ["main", "", ""] is fine, so blanks skip the check.
    no_blank = {"type": "array", "not": {"contains": {"type": "string", "pattern": BLANK}}}
    return [
        _when(_field(ACCOUNTS_FIELD, no_blank), _field(ACCOUNTS_FIELD, {"uniqueItems": True})),
        _when(_field(ACCOUNTS_FIELD, only_blanks), _field(ACCOUNTS_FIELD, refusal("at least one account name (not blank)"))),
    ]


def account_name_rule() -> dict[str, Any]:
    """Every name the validator keeps is an account name (the ledger's rule); blank ones are dropped."""
    misnamed = {"type": "array", "contains": {"type": "string", "not": {"pattern": ACCOUNT_NAME_OR_BLANK}}}
    return _when(_field(ACCOUNTS_FIELD, misnamed), _field(ACCOUNTS_FIELD, refusal(f"account names that {ACCOUNT_NAME_RULE}")))


def text_rules() -> list[dict[str, Any]]:
    """No refused character in a text field: the validators' own patterns (publishing/_text.py).

    The validator's message says which character and where; the form's sentence says what is refused.
    """
    return [_when(_field(name, {"type": "string", "pattern": REFUSED[kind]}), _field(name, refusal(sentence)))
            for name, (kind, sentence) in TEXT_FIELDS.items()]


def free_text_account() -> dict[str, Any]:
    """An account name typed in, when no choices are offered."""
    return {"type": "string"}


def _moved_keywords(properties: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Take the keywords the UI would drop off each property; None when there are none."""
    moved: dict[str, dict[str, Any]] = {}
    for name, schema in properties.items():
        kept = {key: schema.pop(key) for key in list(schema) if key in UI_DROPPED_KEYWORDS}
        if kept:
            moved[name] = kept
    return {"properties": moved} if moved else None


def add_request_rules(schema: dict[str, Any], *, max_caption_length: int) -> None:
    """The PublishRequest JSON Schema (as pydantic generates it), made to refuse what the model refuses.

    Changes `schema` in place, as pydantic's `json_schema_extra` expects.
    """
    rules: list[dict[str, Any]] = []
    if moved := _moved_keywords(schema["properties"]):
        rules.append(moved)
    rules += [*accounts_rules(), account_name_rule(), privacy_rule(), branded_content_rule(),
              caption_rule(max_caption_length), *source_rules(), *text_rules()]
    schema["allOf"] = [*schema.get("allOf", []), *rules]


def request_schema(parameters: dict[str, Any]) -> dict[str, Any]:
    """The schema of the `request` parameter inside a flow's parameter schema (its definition when referenced)."""
    try:
        prop = parameters["properties"][REQUEST_PARAMETER]
    except (KeyError, TypeError):
        raise ValueError(f"the parameter schema has no {REQUEST_PARAMETER!r} parameter") from None
    ref = prop.get("$ref") or next((item["$ref"] for item in prop.get("allOf", []) if "$ref" in item), None)
    if ref is None:
        return prop
    name = ref.rsplit("/", 1)[-1]
    try:
        return parameters["definitions"][name]
    except KeyError:
        raise ValueError(f"the parameter schema refers to {ref} but has no such definition") from None


def with_account_choices(parameters: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """A copy of a publish-video parameter schema whose `request.accounts` offers exactly `names`.

    With no name the accounts are typed in, and the field says to connect one.
    """
    updated = copy.deepcopy(parameters)
    accounts = request_schema(updated)["properties"][ACCOUNTS_FIELD]
    choices = sorted(set(names))
    if choices:
        accounts["items"] = {"type": "string", "enum": choices}
        accounts["description"] = ACCOUNTS_DESCRIPTION
    else:
        accounts["items"] = free_text_account()
        accounts["description"] = NO_ACCOUNT_DESCRIPTION
    return updated


def account_choices(parameters: dict[str, Any]) -> list[str] | None:
    """The accounts a publish-video parameter schema offers; None when it offers none (free text)."""
    choices: Sequence[str] | None = request_schema(parameters)["properties"][ACCOUNTS_FIELD].get("items", {}).get("enum")
    return list(choices) if choices is not None else None
