"""Every test here uses the session's `make up` stack: under `pytest -n`, they all run in one worker
(one xdist group), so the session starts one stack, not one per worker."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name == "stack" and item.path.parent.parent.name == "tests":
            item.add_marker(pytest.mark.xdist_group("stack"))
