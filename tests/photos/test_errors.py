"""The error tree `photos/_errors.py` draws is the one the classes form, all final, all public."""

from __future__ import annotations

import photos
import photos._errors
from tests.plugins.error_tree import assert_drawing_matches, declared_tree


def test_the_docstring_draws_the_whole_tree_with_parents_and_kinds() -> None:
    assert_drawing_matches(photos._errors.__doc__, photos._errors)


def test_every_error_class_is_public() -> None:
    assert set(declared_tree(photos._errors)) <= set(photos.__all__)


def test_every_error_is_final() -> None:
    kinds = {name: kind for name, (_, kind) in declared_tree(photos._errors).items()}
    assert kinds and set(kinds.values()) == {"final"}, kinds


def test_an_error_keeps_its_path_and_detail() -> None:
    err = photos.PhotoCannotFit("a.png: too big", path="a.png", detail={"max_bytes": 1})
    assert (err.path.name, err.detail, str(err), err.final, err.kind) == ("a.png", {"max_bytes": 1}, "a.png: too big", True, "final")
