"""The error tree `sandbox/_errors.py` draws is the one the classes form, and all of it is public."""

from __future__ import annotations

import sandbox
import sandbox._errors
from tests.plugins.error_tree import assert_drawing_matches, declared_tree


def test_the_docstring_draws_the_whole_tree_with_parents_and_kinds() -> None:
    assert_drawing_matches(sandbox._errors.__doc__, sandbox._errors)


def test_every_error_class_is_public() -> None:
    assert set(declared_tree(sandbox._errors)) <= set(sandbox.__all__)
