"""Session-wide fixtures: ``shared_stack``, one 4-validator network for the read-mostly integration modules.

Starting a network (4 validator processes, 5 contract deployments, the API process) costs tens of seconds on a
loaded CI machine, so the modules that neither kill/partition validators nor need special settings (another
database, crypto profile, API workers) run on this one network instead of starting their own: they alias it as
their ``stack`` fixture. Such a module must not depend on a fresh chain: it registers its own enterprises (each
gets its own prefix), reads block numbers from its own transactions, and restores anything it tampers with.

The tests that use ``shared_stack`` are moved (in their collected order) after all other tests, so the shared
network starts once, late, and does not idle beside the isolated networks of other modules; it is stopped right
after its last test. Under ``pytest -n 2 --dist loadgroup`` (``make test``'s integration pass) the scheduler
below keeps each module, and all tests on the shared network, on one worker (:func:`xdist_group_of`).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest

from api.devnet import Stack
from tests.networks import stack_fixture

#: block period 1 s as ``make up``; anchoring batches every 0.5 s (default 1 s) to shorten the waits for "anchored"
_shared_stack = stack_fixture("_shared_stack", "shared-network", scope="session", validators=4,
                              extra_env={"TRACELEDGER_ANCHOR_INTERVAL_S": "0.5"})
#: the shared network started in this process (pytest-xdist: in this worker), until its last test is over
_RUNNING: list[Stack] = []


@pytest.fixture(scope="session")
def shared_stack(_shared_stack: Stack) -> Stack:
    """The session's shared 4-validator network (see the module docstring)."""
    _RUNNING.append(_shared_stack)
    return _shared_stack


def _uses_shared_stack(item: pytest.Item | None) -> bool:
    return item is not None and "shared_stack" in getattr(item, "fixturenames", ())


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the shared network right after the last test on it instead of at the end of the session.

    The tests on it are contiguous (:func:`pytest_collection_modifyitems`: last in a plain run, one
    ``xdist_group`` under pytest-xdist, whose worker knows its next test before running the current one), so a
    next test that does not use it means none will. Under ``-n 2`` the worker that ran them goes on with other
    modules: without this, 4 idle validators, the API and its anchoring worker kept making blocks and polling
    on the 2 cores beside them until that worker's last test. (The session fixture's own stop is then a no-op.)
    """
    if _RUNNING and _uses_shared_stack(item) and not _uses_shared_stack(nextitem):
        _RUNNING.pop().stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the tests on the shared network last and together (a stable partition: order kept inside each part)."""
    items[:] = ([i for i in items if not _uses_shared_stack(i)] + [i for i in items if _uses_shared_stack(i)])


#: a module, or a conftest.py of its package, whose fixture takes ``shared_stack`` runs on the shared network
_TAKES_SHARED_STACK = re.compile(r"def \w+\(\s*shared_stack\b")
_TESTS = Path(__file__).resolve().parent


@functools.cache
def _on_shared_network(module: Path) -> bool:
    sources = [module] + [d / "conftest.py" for d in module.parents if d != _TESTS and _TESTS in d.parents]
    return any(p.is_file() and _TAKES_SHARED_STACK.search(p.read_text(encoding="utf-8")) for p in sources)


def xdist_group_of(nodeid: str) -> str:
    """The worker group of a test for ``pytest -n N --dist loadgroup`` (``make test``'s integration pass):
    ``shared-network`` for every test on the shared network (one of its fixtures, in its module or in a
    ``conftest.py`` of its package, takes ``shared_stack``), else its module (its module-scoped network starts
    once). Exactly one worker then starts the shared network and runs its modules in order (the index test reads
    the work tickets the workflow tests issued)."""
    module = nodeid.split("::", 1)[0]
    return "shared-network" if _on_shared_network((_TESTS.parent / module).resolve()) else module


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` by :func:`xdist_group_of`, not by ``xdist_group`` markers.

    pytest-xdist 3.8 groups by a ``@group`` suffix it writes into ``item._nodeid``, which pytest 9 no longer
    reads (the node id lives in ``item._id``): every test became its own group, so both workers started the
    shared network and the module networks, split order-dependent modules, and ran the two network-namespace
    tests (one subnet, 10.77.0.0/24) at the same time. The grouping is therefore made here, in the controller,
    from the node ids alone. Other ``--dist`` modes keep pytest-xdist's schedulers (None)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByNetwork(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid)

    return ByNetwork(config, log)
