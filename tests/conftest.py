"""Session-wide fixtures: ``shared_stack``, one 4-validator network for the read-mostly integration modules.

Starting a network (4 validator processes, 5 contract deployments, the API process) costs tens of seconds on a
loaded CI machine, so the modules that neither kill/partition validators nor need special settings (another
database, crypto profile, API workers) run on this one network instead of starting their own: they alias it as
their ``stack`` fixture. Such a module must not depend on a fresh chain: it registers its own enterprises (each
gets its own prefix), reads block numbers from its own transactions, and restores anything it tampers with.

The tests that use ``shared_stack`` are moved (in their collected order) after all other tests, so the shared
network starts once, late, and does not idle beside the isolated networks of other modules.
"""

from __future__ import annotations

import pytest

from tests.networks import stack_fixture

#: block period 1 s as ``make up``; anchoring batches every 0.5 s (default 1 s) to shorten the waits for "anchored"
shared_stack = stack_fixture("shared_stack", "shared-network", scope="session", validators=4,
                             extra_env={"TRACELEDGER_ANCHOR_INTERVAL_S": "0.5"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the tests on the shared network last and together (a stable partition: order kept inside each part).

    For ``pytest -n N --dist loadgroup`` (``make test``'s integration pass) every test also gets an
    ``xdist_group``: its module, or ``shared-network`` for all tests on the shared network, so a worker runs a
    whole module (its module-scoped network starts once) and exactly one worker starts the shared network and
    runs its modules in order (e.g. the index test reads the work tickets the workflow tests issued)."""
    items[:] = ([i for i in items if "shared_stack" not in getattr(i, "fixturenames", ())]
                + [i for i in items if "shared_stack" in getattr(i, "fixturenames", ())])
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            shared = "shared_stack" in getattr(item, "fixturenames", ())
            item.add_marker(pytest.mark.xdist_group("shared-network" if shared else item.nodeid.split("::")[0]))
