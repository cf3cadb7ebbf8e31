"""Make the project root importable when pytest runs without an installed package."""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    """``slow_random`` tests run only when selected explicitly (``-m slow_random``)."""
    import pytest

    if "slow_random" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="long randomized run: select with -m slow_random")
    for item in items:
        if "slow_random" in item.keywords:
            item.add_marker(skip)
