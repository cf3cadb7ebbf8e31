"""Races lose with the documented refusal (issue 12), on the real chain through the API.

Two requests that both pass the API's pre-checks land in the same block; the chain lets one win and
reverts the other. Before: the loser got ``502 {"reason": null}`` (read by a bank as a fault to retry).
Now the reverted transaction is replayed with ``eth_call`` on its block's state and its custom error
decoded, so the loser gets the same 409 the pre-check gives a late request.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from api.devnet import Stack

from .conftest import Chain, auth, gov

pytestmark = pytest.mark.integration


def _enterprise(api: httpx.Client, stack: Stack, name: str, roles: list[str]) -> dict[str, Any]:
    r = api.post("/v1/enterprises", headers=gov(stack), json={"name": name, "roles": roles})
    assert r.status_code == 201, r.text
    return r.json()


def together(stack: Stack, *requests: tuple[dict[str, Any], str, dict[str, Any]]) -> list[httpx.Response]:
    """POST every (enterprise, path, body) at the same instant from its own connection."""
    barrier = threading.Barrier(len(requests))
    out: list[httpx.Response | None] = [None] * len(requests)

    def run(i: int, ent: dict[str, Any], path: str, body: dict[str, Any]) -> None:
        with httpx.Client(base_url=stack.api_url(), timeout=120) as client:
            barrier.wait()
            out[i] = client.post(path, headers=auth(ent), json=body)

    threads = [threading.Thread(target=run, args=(i, *req)) for i, req in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert all(r is not None for r in out)
    return out  # type: ignore[return-value]


def loser(responses: list[httpx.Response], won: int) -> httpx.Response:
    codes = sorted(r.status_code for r in responses)
    assert codes[0] == won and codes[1] != 502, [(r.status_code, r.text) for r in responses]
    return next(r for r in responses if r.status_code != won)


def test_two_issues_against_one_invoice(api: httpx.Client, stack: Stack, chain: Chain) -> None:
    core = _enterprise(api, stack, "Race Core Motors", ["core_enterprise"])
    supplier = _enterprise(api, stack, "Race Seats Ltd", ["supplier"])
    for n in range(2):
        body = {"to_enterprise_id": supplier["id"], "currency": "CNY", "amount": "1000.00",
                "maturity": chain.block_time() + 3600, "invoice": {"number": f"RACE-INV-{n}", "amount": "1000.00"}}
        lost = loser(together(stack, (core, "/v1/receivables", body), (core, "/v1/receivables", body)), 201)
        assert lost.status_code == 409, lost.text
        assert lost.json()["detail"]["reason"] == "InvoiceAlreadyIssued"


def test_two_banks_discount_the_same_value(api: httpx.Client, stack: Stack, chain: Chain) -> None:
    core = _enterprise(api, stack, "Race Core Trucks", ["core_enterprise"])
    supplier = _enterprise(api, stack, "Race Axles Ltd", ["supplier"])
    banks = [_enterprise(api, stack, f"Race Bank {n}", ["bank"]) for n in (1, 2)]
    r = api.post("/v1/receivables", headers=auth(core), json={
        "to_enterprise_id": supplier["id"], "currency": "CNY", "amount": "5000.00",
        "maturity": chain.block_time() + 3600, "invoice": {"number": "RACE-DISC-1"}})
    assert r.status_code == 201, r.text
    token = r.json()["id"]
    for bank in banks:
        r = api.post(f"/v1/receivables/{token}/approve", headers=auth(supplier),
                     json={"operator_enterprise_id": bank["id"], "amount": "5000.00", "max_rate_bps": 500})
        assert r.status_code == 200, r.text
    bodies = [{"amount": "5000.00", "rate_bps": 500, "payment_reference": f"RACE-PAY-{n}"} for n in (1, 2)]
    lost = loser(together(stack, *[(b, f"/v1/receivables/{token}/discount", body)
                                   for b, body in zip(banks, bodies, strict=True)]), 201)
    assert lost.status_code in (403, 404, 409), lost.text
    if lost.status_code == 409:
        assert lost.json()["detail"]["reason"] in ("AlreadyDiscounted", "InsufficientBalance")
