"""Reading the shell commands out of the README and docs/, and running them as written.

Every ```bash block must say, in an HTML comment on the line before it (invisible on GitHub), how a
test runs it:

    <!-- test: run -->                       run with bash against the test session's `make up` stack
    <!-- test: run expect="published" -->    ... and its output must contain the text
    <!-- test: fails expect="privacy" -->    ... it must exit non-zero, saying so
    <!-- test: background until="started" --> start it, wait for the text in its output, then stop it
    <!-- test: python -->                    (a ```python block) run with the stack's environment
    <!-- test: by tests/test_quickstart.py .ci/run -->  named tests (or CI) run exactly these commands

The stack runs on free ports with its state in a temporary directory, so before a block runs the
defaults the docs show (ports 4200/9400/9401/9403, `.data/up/env`, the example server URL) are
replaced by the stack's own, and a receiver's `--port 8787` by a free port (`substitutions` in
tests/stack/test_docs.py); nothing else is changed.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

SHELL_LANGUAGES = {"bash", "sh", "shell", "console", "zsh"}
_FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[\w+-]*)\s*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*test:\s*(?P<body>.*?)\s*-->\s*$")
MODES = {"run", "fails", "background", "python", "by"}


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    mode: str | None  # from the directive; None when there is none
    options: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"

    @property
    def is_shell(self) -> bool:
        return self.language in SHELL_LANGUAGES


def parse_directive(body: str) -> tuple[str, dict[str, str]]:
    """`run expect="x y"` → ("run", {"expect": "x y"}); `by tests/a.py b` → ("by", {"targets": "tests/a.py b"})."""
    words = shlex.split(body)
    if not words or words[0] not in MODES:
        raise ValueError(f"unknown test directive {body!r}; modes: {', '.join(sorted(MODES))}")
    mode, options, targets = words[0], {}, []
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if sep:
            options[key] = value
        else:
            targets.append(word)
    if targets:
        options["targets"] = " ".join(targets)
    return mode, options


def blocks(path: Path) -> list[Block]:
    """Every fenced block of `path`, with the directive written on the line before it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent = len(opening.group("indent"))
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), len(lines))
        code = "\n".join(line[indent:] for line in lines[i + 1:end])
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        directive = _DIRECTIVE.match(previous)
        mode, options = parse_directive(directive.group("body")) if directive else (None, {})
        found.append(Block(path, i + 1, opening.group("info") or "", code, mode, options))
        i = end + 1
    return found


def substitute(code: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        code = code.replace(old, new)
    return code
