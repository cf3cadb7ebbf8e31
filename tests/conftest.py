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
    """Run the tests on the shared network last and together (a stable partition: order kept inside each part)."""
    items[:] = ([i for i in items if "shared_stack" not in getattr(i, "fixturenames", ())]
                + [i for i in items if "shared_stack" in getattr(i, "fixturenames", ())])
