"""Every test here uses the session's `make up` stack: under `pytest -n`, they run in one worker per
xdist group, so each group's session starts one stack, not one per worker. The chaos suite
(test_exactly_once.py) has a group of its own: it mostly waits (leases, kills, crash detection), so
its own stack on another worker runs beside the other stack tests instead of after them."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name == "stack" and item.path.parent.parent.name == "tests":
            item.add_marker(pytest.mark.xdist_group("chaos" if item.path.name == "test_exactly_once.py" else "stack"))
