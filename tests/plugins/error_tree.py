"""Reads the error tree a core package draws in its errors module's docstring (the httpx model).

A drawing line is `<tree prefix>ClassName  kind  note`: the column of the name gives the depth, the
nearest line above with a smaller column is the parent, kind is `retryable`, `needs_reauth` or
`final`. The first line is the root's parent (`PipelineError (tiktok_pipeline.errors)`), drawn
without a kind.
"""

from __future__ import annotations

import inspect
import re
from types import ModuleType

from tiktok_pipeline.errors import PipelineError

_LINE = re.compile(r"^(?P<prefix>[ │├└─]*?)(?P<name>[A-Z]\w*)(?:\s+(?P<kind>retryable|needs_reauth|final)\b|\s*\(|\s*$)")


def drawn_tree(doc: str) -> dict[str, tuple[str | None, str | None]]:
    """{class name: (parent name, kind)} for every line of the drawing in `doc`."""
    lines = doc.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip().startswith("PipelineError")), None)
    assert first is not None, "no drawing starting at PipelineError"
    drawing = [lines[first]]
    for line in lines[first + 1 :]:
        if "──" not in line:
            break  # the drawing ended
        drawing.append(line)
    tree: dict[str, tuple[str | None, str | None]] = {}
    stack: list[tuple[int, str]] = []  # (column, name) of the open ancestors
    for line in drawing:
        match = _LINE.match(line)
        assert match is not None, f"cannot read drawing line {line!r}"
        column = match.start("name")
        while stack and stack[-1][0] >= column:
            stack.pop()
        name = match["name"]
        assert name not in tree, f"{name} drawn twice"
        tree[name] = (stack[-1][1] if stack else None, match["kind"])
        stack.append((column, name))
    return tree


def declared_tree(*modules: ModuleType) -> dict[str, tuple[str, str]]:
    """{class name: (parent name, kind)} for every PipelineError subclass the modules define."""
    found: dict[str, tuple[str, str]] = {}
    for module in modules:
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, PipelineError) and cls.__module__ == module.__name__:
                kind = "retryable" if cls.retryable else "needs_reauth" if cls.needs_reauth else "final"
                assert kind != "retryable" or not cls.needs_reauth, f"{name} is both retryable and needs_reauth"
                found[name] = (cls.__bases__[0].__name__, kind)
    return found


def assert_drawing_matches(doc: str | None, *modules: ModuleType) -> None:
    """Every class is drawn once, under its real parent, with its real kind; nothing else is drawn."""
    assert doc, "the errors module has no docstring"
    drawn = drawn_tree(doc)
    declared = declared_tree(*modules)
    root = [name for name, (parent, kind) in drawn.items() if parent is None]
    assert root == ["PipelineError"], f"the drawing must start at PipelineError, starts at {root}"
    drawn.pop("PipelineError")
    assert drawn.keys() == declared.keys(), (
        f"drawn but not defined: {sorted(drawn.keys() - declared.keys())}; "
        f"defined but not drawn: {sorted(declared.keys() - drawn.keys())}"
    )
    wrong = {name: (drawn[name], declared[name]) for name in declared if drawn[name] != declared[name]}
    assert not wrong, f"(drawn parent, kind) vs (real parent, kind): {wrong}"
