"""The error tree `ledger/_errors.py` draws is the one the classes form, and all of it is public."""

from __future__ import annotations

import ledger
import ledger._errors
from tests.plugins.error_tree import assert_drawing_matches, declared_tree


def test_the_docstring_draws_the_whole_tree_with_parents_and_kinds() -> None:
    assert_drawing_matches(ledger._errors.__doc__, ledger._errors)


def test_every_error_class_is_public() -> None:
    assert set(declared_tree(ledger._errors)) <= set(ledger.__all__)
