"""The xdist groups of the stack tests (see conftest.py): each group runs on one pytest worker with one
`make up` stack. Every module under tests/stack sets `pytestmark` to one of these."""

from __future__ import annotations

import pytest

#: The doc blocks and every other stack test: one stack, in file order.
STACK_GROUP = pytest.mark.xdist_group("stack")
#: The kill -9 suite, on a stack of its own beside the other.
CHAOS_GROUP = pytest.mark.xdist_group("chaos")
#: Prefect's scale-out setup (two API servers, services, Redis, two workers): a stack of its own.
TOPOLOGY_GROUP = pytest.mark.xdist_group("topology")
