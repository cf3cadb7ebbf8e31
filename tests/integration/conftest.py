"""A real 4-validator network (separate OS processes over TCP) + contracts + API process.

``stack`` is an isolated network per module, for modules that kill validators (test_spine.py); read-mostly
modules alias the session's ``shared_stack`` (tests/conftest.py) as their ``stack`` instead, and ``api``/``mill``
below then run on that network.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from api.devnet import Stack
from tests.networks import stack_fixture

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


stack = stack_fixture("stack", "network", validators=4)


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url(), timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def mill(stack: Stack, api: httpx.Client) -> dict:
    r = api.post("/v1/enterprises", headers={"Authorization": f"Bearer {stack.admin_token}"},
                 json={"name": "Nordstahl Walzwerk GmbH", "roles": ["manufacturer"]})
    assert r.status_code == 201, r.text
    return r.json()


def path_of(identifier: str) -> str:
    return quote(identifier, safe="/")


def wait_anchored(api: httpx.Client, identifiers: list[str], timeout: float = 90.0) -> None:
    """Poll the resolution records until every identifier is anchored."""
    pending = set(identifiers)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for identifier in list(pending):
            r = api.get(f"/v1/identifiers/{path_of(identifier)}")
            if r.status_code == 200 and r.json()["status"] == "anchored":
                pending.discard(identifier)
        time.sleep(0.3)
    assert not pending, f"not anchored within {timeout:.0f} s: {sorted(pending)}"
