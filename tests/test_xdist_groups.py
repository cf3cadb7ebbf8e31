"""``make test``'s integration pass groups tests per worker by network (tests/conftest.py), not by markers."""

from __future__ import annotations

import pytest

from tests.conftest import pytest_xdist_make_scheduler, xdist_group_of


@pytest.mark.parametrize(("nodeid", "group"), [
    ("tests/workflows/test_chain_index.py::test_x", "shared-network"),  # via tests/workflows/conftest.py
    ("tests/workflows/test_api_workflows.py::test_y[a@b]", "shared-network"),
    ("tests/integration/test_besu_compat.py::test_x", "shared-network"),  # its own fixture takes shared_stack
    ("tests/integration/test_lineage_stack.py::test_x", "shared-network"),
    ("tests/integration/test_spine.py::test_a", "tests/integration/test_spine.py"),  # a module network of its own
    ("tests/integration/test_consortium_netns.py::test_b", "tests/integration/test_consortium_netns.py"),
    ("tests/faults/test_faults.py::test_c", "tests/faults/test_faults.py"),
])
def test_each_test_is_grouped_by_the_network_it_runs_on(nodeid: str, group: str) -> None:
    assert xdist_group_of(nodeid) == group


def test_the_scheduler_groups_by_network_only_for_loadgroup(pytestconfig: pytest.Config,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest 9 ignores the ``@group`` node-id suffix pytest-xdist 3.8 writes, so loadgroup is scheduled here."""
    scheduler = pytest.importorskip("xdist.scheduler")
    monkeypatch.setattr(scheduler.LoadScopeScheduling, "__init__", lambda self, config, log=None: None)
    monkeypatch.setattr(pytestconfig.option, "dist", "loadscope", raising=False)
    assert pytest_xdist_make_scheduler(pytestconfig, None) is None
    monkeypatch.setattr(pytestconfig.option, "dist", "loadgroup", raising=False)
    sched = pytest_xdist_make_scheduler(pytestconfig, None)
    assert sched._split_scope("tests/workflows/test_races.py::t") == "shared-network"
    assert sched._split_scope("tests/integration/test_demo.py::t") == "tests/integration/test_demo.py"
