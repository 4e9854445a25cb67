"""Every test here uses the session's `make up` stack: under `pytest -n --dist loadgroup`, each xdist group
runs in one worker, so each group's session starts one stack, not one per worker. The doc blocks
(test_docs.py) build on one another and must share one stack. The chaos suite (test_exactly_once.py)
has a group of its own: it mostly waits (leases, kills, crash detection), so its own stack on another
worker runs beside the other stack tests instead of after them.

Each module names its group with a module-level `pytestmark` (groups.py): xdist
reads the group into the node id in its own collection hook, and a marker added from here arrives
too late for it. A stack test without a group would start a stack of its own on whichever worker
got it, and doc blocks split over workers see another stack's ledger: such a test fails at once."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _in_its_xdist_group(request: pytest.FixtureRequest) -> None:
    # Under --dist loadgroup, xdist suffixes a grouped test's node id with "@<group>"; without it the
    # test went to any worker (a module without a pytestmark, or an xdist/pytest pair that no longer
    # renames node ids, as pytest 9.2 with xdist 3.8). Failing here names it; a collection error in a
    # worker would be an INTERNALERROR without the reason.
    if request.config.getoption("loadgroup", default=False) and "@" not in request.node.nodeid:
        pytest.fail(f"{request.node.nodeid} is in no xdist group: give its module a `pytestmark` from "
                    "tests/stack/groups.py, or check that this pytest-xdist still groups with this pytest",
                    pytrace=False)
