"""Free text a request carries to TikTok and to the ledger: which characters are refused, one pure check.

    check_text("caption", "Launch\\n#new")      # returns the text, unchanged
    check_text("caption", "\\x1b[31mred")       # TextRefused: "caption: U+001B (ESCAPE) at character 1: ..."

Three kinds of field, each with its own set of refused characters (`REFUSED[kind]`, a regex character
class written with escapes, so the JSON Schema of the publish-video form uses the very same pattern):

- `TEXT` (the caption): every control character (Unicode category Cc: C0 U+0000-U+001F, DEL U+007F,
  C1 U+0080-U+009F) except newline and tab; the bidirectional embeddings and overrides U+202A-U+202E
  and isolates U+2066-U+2069 (the "Trojan Source" characters, which make text display in an order
  other than the one it is stored and sent in); lone surrogates U+D800-U+DFFF (not characters: they
  cannot be encoded as UTF-8, so neither TikTok nor PostgreSQL could take them).
- `LINE` (account names, the idempotency key): the same, newline and tab included.
- `LOCATION` (the source and move_prefix: an S3 key, a URL or a path): NUL and lone surrogates only.
  Any S3 key must stay publishable, and an S3 key may hold other control characters and bidi
  controls; NUL can be part of no path, of no PostgreSQL text and of no S3 key a listing can return.

Decided and kept: the marks U+200E LEFT-TO-RIGHT MARK, U+200F RIGHT-TO-LEFT MARK and U+061C ARABIC
LETTER MARK are allowed. They are invisible like the overrides, but they only give a neutral
character (a digit, a punctuation mark) a direction and cannot reorder the text around them; Arabic,
Hebrew and Persian captions mixing in numbers, hashtags or Latin names need them. Zero-width joiners
(emoji sequences), U+2028/U+2029 and other format characters are allowed too.

Nothing is ever changed: a text is accepted as it is or refused with the first refused character, as
U+XXXX with its name, and its position (the character count from 1, in code points).
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

from tiktok_pipeline.errors import PipelineError


class TextKind(StrEnum):
    text = "text"  # free text on several lines: the caption
    line = "line"  # one line: an account name, an idempotency key
    location = "location"  # an S3 key, a URL or a path


_BIDI = r"\u202A-\u202E\u2066-\u2069"
_SURROGATES = r"\uD800-\uDFFF"

#: The refused characters of each kind, as a regex character class (Python `re` and JSON Schema alike).
REFUSED: dict[TextKind, str] = {
    TextKind.text: rf"[\u0000-\u0008\u000B-\u001F\u007F-\u009F{_BIDI}{_SURROGATES}]",
    TextKind.line: rf"[\u0000-\u001F\u007F-\u009F{_BIDI}{_SURROGATES}]",
    TextKind.location: rf"[\u0000{_SURROGATES}]",
}
_REFUSED = {kind: re.compile(pattern) for kind, pattern in REFUSED.items()}

#: What each kind allows, said once for every message.
_RULES = {
    TextKind.text: "control characters other than newline and tab are not allowed",
    TextKind.line: "control characters (newline and tab included) are not allowed",
}
BIDI_RULE = "bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) are not allowed"
SURROGATE_RULE = "a lone surrogate is not a character (it cannot be encoded as UTF-8)"
NUL_RULE = "a NUL character cannot be part of a path, a URL or an S3 key"

# Control characters have no name in the Unicode database, only aliases: those of C0 and DEL.
_CONTROL_NAMES = (
    "NULL", "START OF HEADING", "START OF TEXT", "END OF TEXT", "END OF TRANSMISSION", "ENQUIRY", "ACKNOWLEDGE",
    "BELL", "BACKSPACE", "CHARACTER TABULATION", "LINE FEED", "LINE TABULATION", "FORM FEED", "CARRIAGE RETURN",
    "SHIFT OUT", "SHIFT IN", "DATA LINK ESCAPE", "DEVICE CONTROL ONE", "DEVICE CONTROL TWO", "DEVICE CONTROL THREE",
    "DEVICE CONTROL FOUR", "NEGATIVE ACKNOWLEDGE", "SYNCHRONOUS IDLE", "END OF TRANSMISSION BLOCK", "CANCEL",
    "END OF MEDIUM", "SUBSTITUTE", "ESCAPE", "FILE SEPARATOR", "GROUP SEPARATOR", "RECORD SEPARATOR", "UNIT SEPARATOR",
)  # fmt: skip


def character_name(char: str) -> str:
    """`ESCAPE`, `RIGHT-TO-LEFT OVERRIDE`, `C1 CONTROL`, `LONE SURROGATE`: what to call one character."""
    point = ord(char)
    if point < len(_CONTROL_NAMES):
        return _CONTROL_NAMES[point]
    if point == 0x7F:
        return "DELETE"
    if point == 0x85:
        return "NEXT LINE"
    if 0x80 <= point <= 0x9F:
        return "C1 CONTROL"
    if 0xD800 <= point <= 0xDFFF:
        return "LONE SURROGATE"
    return unicodedata.name(char, "UNNAMED")


def code_point(char: str) -> str:
    """`U+001B`."""
    return f"U+{ord(char):04X}"


def _rule(kind: TextKind, char: str) -> str:
    point = ord(char)
    if 0xD800 <= point <= 0xDFFF:
        return SURROGATE_RULE
    if kind is TextKind.location:
        return NUL_RULE
    if 0x202A <= point <= 0x202E or 0x2066 <= point <= 0x2069:
        return BIDI_RULE
    return _RULES[kind]


class TextRefused(PipelineError):
    """A text field holds a character that may not reach TikTok or the ledger (final: the input must change)."""

    def __init__(self, field: str, text: str, kind: TextKind, index: int, count: int) -> None:
        char = text[index]
        #: The field, the refused character (and as U+XXXX), its position counted from 1, how many there are.
        self.field, self.char, self.code_point, self.position, self.count = field, char, code_point(char), index + 1, count
        more = "" if count == 1 else f" ({count - 1} more refused character{'s' if count > 2 else ''} follow{'' if count > 2 else 's'})"
        #: The message without the field's name (a validation error's location names the field).
        self.reason = f"{self.code_point} ({character_name(char)}) at character {self.position}: {_rule(kind, char)}{more}"
        super().__init__(f"{field}: {self.reason}", detail=self.context())

    def context(self) -> dict[str, str | int]:
        """Plain values for a pydantic error's `ctx` and for logs (never the text itself)."""
        return {"field": self.field, "character": self.code_point, "position": self.position, "count": self.count,
                "reason": self.reason}


def first_refused(text: str, kind: TextKind = TextKind.text) -> int | None:
    """The index of the first character of `text` that `kind` refuses; None when there is none (pure)."""
    match = _REFUSED[kind].search(text)
    return None if match is None else match.start()


def check_text(field: str, text: str, kind: TextKind = TextKind.text) -> str:
    """`text`, unchanged, when `kind` allows every character of it; else TextRefused naming the first one."""
    index = first_refused(text, kind)
    if index is None:
        return text
    raise TextRefused(field, text, kind, index, len(_REFUSED[kind].findall(text, index)))


def visible(text: str, replacement: str = "\N{REPLACEMENT CHARACTER}") -> str:
    """`text` with every character a `LINE` refuses replaced: safe to show as one line (run names)."""
    return _REFUSED[TextKind.line].sub(replacement, text)
