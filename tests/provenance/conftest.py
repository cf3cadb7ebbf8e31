"""Shared fixtures for the provenance tests: location of the public reference data sets
(``../shared/data`` beside the project root)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data``; skips the test when the reference data is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data {SHARED_DATA} not present (expected ../shared/data beside the project)")
    return SHARED_DATA
