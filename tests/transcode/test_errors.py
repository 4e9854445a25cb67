"""The error tree `transcode/_errors.py` draws is the one the classes form, and all of it is public."""

from __future__ import annotations

import transcode
import transcode._errors
from tests.plugins.error_tree import assert_drawing_matches, declared_tree


def test_the_docstring_draws_the_whole_tree_with_parents_and_kinds() -> None:
    assert_drawing_matches(transcode._errors.__doc__, transcode._errors)


def test_every_error_class_is_public() -> None:
    assert set(declared_tree(transcode._errors)) <= set(transcode.__all__)
