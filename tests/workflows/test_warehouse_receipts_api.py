"""Warehouse receipts through the HTTP API on the real chain (issue 15): custody from EPCIS evidence, the
double-receipt and double-pledge attacks through the API and straight on chain, the bank's check, the
pledge lifecycle (release, enforce after maturity), delivery with its shipping event and the coil page."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.devnet import Stack
from provenance.samples import load_samples

from .conftest import Chain, auth, gov

pytestmark = pytest.mark.integration

SCHEMA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "epcis" / "EPCIS-JSON-Schema.json"
LOCATION = "urn:epc:id:sgln:6901234.00001.0"


def _enterprise(api: httpx.Client, stack: Stack, name: str, roles: list[str]) -> dict[str, Any]:
    r = api.post("/v1/enterprises", headers=gov(stack), json={"name": name, "roles": roles})
    assert r.status_code == 201, r.text
    return r.json()


def s355mc_certificate(coil: str) -> dict[str, Any]:
    """The bundled S355MC sample certificate for another coil number (B07)."""
    doc = copy.deepcopy(next(d for name, d in load_samples() if name.startswith("s355mc")))
    doc["Certificate"]["ProductDescription"]["B07"] = coil
    return doc


def receiving_document(identifiers: list[str], location: str = LOCATION, minute: int = 0) -> dict[str, Any]:
    """EPCIS 2.0: the coils arrive at ``location`` (CBV ``receiving``, ``in_progress``)."""
    stamp = f"2026-03-02T06:{minute:02d}:00.000Z"
    return {"@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"], "type": "EPCISDocument",
            "schemaVersion": "2.0", "creationDate": stamp, "epcisBody": {"eventList": [{
                "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "receiving", "disposition": "in_progress",
                "eventTime": stamp, "eventTimeZoneOffset": "+00:00", "epcList": [f"hdl:{i}" for i in identifiers],
                "readPoint": {"id": location}, "bizLocation": {"id": location}}]}}


def _reason(r: httpx.Response) -> str:
    return r.json()["detail"]["reason"]


def _wait_verified(api: httpx.Client, identifier: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not api.get(f"/v1/verify/{identifier}").json().get("verified"):
        assert time.monotonic() < deadline, f"{identifier} was not anchored in time"
        time.sleep(0.5)


def test_warehouse_receipt_lifecycle(api: httpx.Client, stack: Stack, chain: Chain) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"EPCIS JSON Schema not found at {SCHEMA} (../shared/data beside the project)")
    mill = _enterprise(api, stack, "WR Mill", ["manufacturer"])
    warehouse = _enterprise(api, stack, "WR Port Warehouse", ["warehouse"])
    trader = _enterprise(api, stack, "WR Steel Trader", ["supplier"])
    bank_a = _enterprise(api, stack, "WR Bank A", ["bank"])
    bank_b = _enterprise(api, stack, "WR Bank B", ["bank"])
    stranger = _enterprise(api, stack, "WR Stranger", ["supplier"])
    coils = []
    for n in range(3):
        r = api.post("/v1/coils/certificates", headers=auth(mill), json=s355mc_certificate(f"WR{n}-{mill['id']}"))
        assert r.status_code == 201, r.text
        coils.append(r.json()["identifier"])
    body = {"depositor_enterprise_id": trader["id"], "location": LOCATION, "insurance_reference": "PICC-WR-1",
            "storage_until": chain.block_time() + 180 * 86_400, "coils": [{"identifier": c} for c in coils[:2]]}

    # custody from evidence: no event, an event captured by the depositor, an event elsewhere → 422 per coil
    r = api.post("/v1/warehouse-receipts", headers=auth(warehouse), json=body)
    assert r.status_code == 422 and {d["field"] for d in r.json()["detail"]} == {"coils[0].identifier",
                                                                                    "coils[1].identifier"}
    assert api.post("/v1/epcis/capture", headers=auth(trader), json=receiving_document(coils)).status_code == 201
    r = api.post("/v1/warehouse-receipts", headers=auth(warehouse), json=body)
    assert r.status_code == 422 and "captured by another enterprise" in r.text
    assert api.post("/v1/epcis/capture", headers=auth(warehouse),
                    json=receiving_document(coils[:2], minute=5)).status_code == 201
    assert api.post("/v1/epcis/capture", headers=auth(warehouse),
                    json=receiving_document(coils[2:], "urn:epc:id:sgln:6901234.00002.0", 5)).status_code == 201
    r = api.post("/v1/warehouse-receipts", headers=auth(warehouse),
                 json={**body, "coils": [{"identifier": c} for c in coils]})
    assert r.status_code == 422 and [d["field"] for d in r.json()["detail"]] == ["coils[2].identifier"]
    # only a warehouse issues; a grade not on the certificates is refused
    r = api.post("/v1/warehouse-receipts", headers=auth(trader), json=body)
    assert r.status_code == 403 and _reason(r) == "NotWarehouse"
    r = api.post("/v1/warehouse-receipts", headers=auth(warehouse), json={**body, "grade": "S700MC"})
    assert r.status_code == 422 and r.json()["detail"][0]["rule"] == "grade"

    r = api.post("/v1/warehouse-receipts", headers=auth(warehouse), json=body)
    assert r.status_code == 201, r.text
    rc = r.json()
    rid = rc["id"]
    assert rc["status"] == "live" and rc["grade"] == "S355MC" and rc["holder"]["name"] == "WR Steel Trader"
    assert rc["net_weight_kg"] == sum(c["net_weight_kg"] for c in rc["coils"]) > 0
    assert [h["action"] for h in rc["history"]] == ["issue"]

    # the double receipt: again through the API, and straight on chain in another spelling
    r = api.post("/v1/warehouse-receipts", headers=auth(warehouse), json=body)
    assert r.status_code == 409 and _reason(r) == "CoilAlreadyReceipted"
    wr = chain.contract("WarehouseReceipt", stack.spec.warehouse_receipt)
    request = (trader["address"], LOCATION, "S355MC", "", chain.block_time() + 86_400, [(coils[0].lower(), "", 1)])
    chain.refused(wr.functions.issue(request), warehouse["address"], "CoilAlreadyReceipted")

    # who sees what: not a stranger, not a bank before it is pledged the receipt
    for who in (stranger, bank_a):
        assert api.get(f"/v1/warehouse-receipts/{rid}", headers=auth(who)).status_code == 404
    assert api.get(f"/v1/warehouse-receipts/{rid}", headers=auth(mill)).status_code == 404

    pledge = {"amount": "60000.00", "currency": "CNY", "maturity": chain.block_time() + 3600}
    r = api.post(f"/v1/warehouse-receipts/{rid}/pledge", headers=auth(trader),
                 json={**pledge, "bank_enterprise_id": stranger["id"]})
    assert r.status_code == 403 and _reason(r) == "NotBank"
    r = api.post(f"/v1/warehouse-receipts/{rid}/pledge", headers=auth(trader),
                 json={**pledge, "bank_enterprise_id": bank_a["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pledged" and r.json()["pledge"]["bank"]["name"] == "WR Bank A"
    # the double pledge: through the API and on chain
    r = api.post(f"/v1/warehouse-receipts/{rid}/pledge", headers=auth(trader),
                 json={**pledge, "bank_enterprise_id": bank_b["id"]})
    assert r.status_code == 409 and _reason(r) == "AlreadyPledged"
    chain.refused(wr.functions.pledge(rid, bank_b["address"], 1, b"CNY", chain.block_time() + 60),
                  trader["address"], "AlreadyPledged")

    # the bank's check
    for c in coils[:2]:
        _wait_verified(api, c)
    check = api.get(f"/v1/warehouse-receipts/{rid}/check", headers=auth(bank_a)).json()
    assert check["genuine"] and check["live"] and check["pledged_to_you"] and check["sound"], check
    assert check["all_certificates_verified"] and check["custody_confirmed"] and check["no_other_live_receipt"]
    assert check["coils"][0]["custody"]["biz_step"] == "receiving"
    assert check["pledge"]["loan_value"] == 6_000_000 and check["holder"]["name"] == "WR Steel Trader"

    # pledged goods do not move without the bank; only the pledgee bank releases
    r = api.post(f"/v1/warehouse-receipts/{rid}/transfer", headers=auth(trader),
                 json={"to_enterprise_id": stranger["id"]})
    assert r.status_code == 409 and _reason(r) == "Pledged"
    r = api.post(f"/v1/warehouse-receipts/{rid}/deliver", headers=auth(trader))
    assert r.status_code == 409 and _reason(r) == "Pledged"
    r = api.post(f"/v1/warehouse-receipts/{rid}/release", headers=auth(trader))
    assert r.status_code == 403 and _reason(r) == "NotBank"
    assert api.post(f"/v1/warehouse-receipts/{rid}/release", headers=auth(bank_b)).status_code == 404  # not its
    r = api.post(f"/v1/warehouse-receipts/{rid}/enforce", headers=auth(bank_a))
    assert r.status_code == 409 and _reason(r) == "NotMatured"
    r = api.post(f"/v1/warehouse-receipts/{rid}/release", headers=auth(bank_a))
    assert r.status_code == 200 and r.json()["status"] == "live" and r.json()["pledge"] is None

    # pledge to bank B with a short maturity: B enforces after it and takes title
    maturity = chain.block_time() + 6
    r = api.post(f"/v1/warehouse-receipts/{rid}/pledge", headers=auth(trader),
                 json={**pledge, "maturity": maturity, "bank_enterprise_id": bank_b["id"]})
    assert r.status_code == 200, r.text
    page = api.get(f"/id/{coils[0]}", headers={"Accept": "application/json"}).json()
    assert page["warehouse_receipt"] == {"receipt_id": rid, "status": "pledged", "warehouse": warehouse["address"],
                                         "pledged": True}
    node = api.get(f"/v1/lineage/{coils[1]}").json()["nodes"][0]
    assert node["warehouse_receipt"]["receipt_id"] == rid and node["warehouse_receipt"]["pledged"] is True
    chain.wait_block_time(maturity + 1)
    r = api.post(f"/v1/warehouse-receipts/{rid}/enforce", headers=auth(bank_b))
    assert r.status_code == 200 and r.json()["holder"]["name"] == "WR Bank B", r.text

    # delivery closes the receipt, frees the coils and records the shipping event; custody ends
    r = api.post(f"/v1/warehouse-receipts/{rid}/deliver", headers=auth(bank_b))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "delivered" and out["shipping_event"]["status"] == "created"
    assert [h["action"] for h in out["history"]] == ["issue", "pledge", "release", "pledge", "enforce", "deliver"]
    shipped = api.get("/v1/epcis/events", params={"EQ_bizStep": "shipping", "MATCH_epc": f"hdl:{coils[0]}"}).json()
    assert len(shipped["epcisBody"]["queryResults"]["resultsBody"]["eventList"]) == 1
    assert api.get(f"/id/{coils[0]}", headers={"Accept": "application/json"}).json()["warehouse_receipt"][
        "receipt_id"] is None
    assert "Warehouse receipt" in api.get(f"/id/{coils[0]}").text
    r = api.post("/v1/warehouse-receipts", headers=auth(warehouse), json=body)
    assert r.status_code == 422 and "shipping" in r.text  # the coils left: no new receipt without a new receiving
    r = api.post(f"/v1/warehouse-receipts/{rid}/deliver", headers=auth(bank_b))
    assert r.status_code == 409 and _reason(r) == "ReceiptClosed"


def test_load_setup_pledges_warehouse_receipts_to_the_bank(api: httpx.Client, stack: Stack) -> None:
    """The bank locust suite's data (api/cli/load_setup.py): receipts pledged to its bank, which /check confirms."""
    if not SCHEMA.is_file():
        pytest.skip(f"EPCIS JSON Schema not found at {SCHEMA} (../shared/data beside the project)")
    from api.cli.load_setup import setup_warehouse_receipts

    bank = _enterprise(api, stack, "WR Load Bank", ["bank"])
    receipts = setup_warehouse_receipts(api, stack.admin_token or "", bank, 2)
    assert len(receipts) == 2
    for rid in receipts:
        check = api.get(f"/v1/warehouse-receipts/{rid}/check", headers=auth(bank)).json()
        assert check["pledged_to_you"] and check["custody_confirmed"] and check["no_other_live_receipt"]


def _indexed_receipt_check(api: httpx.Client, rid: int, who: dict[str, Any], timeout: float = 90) -> dict[str, Any]:
    """``/check`` once the API's chain indexer has caught up with the receipt."""
    deadline = time.monotonic() + timeout
    while True:
        r = api.get(f"/v1/warehouse-receipts/{rid}/check", headers=auth(who))
        assert r.status_code == 200, r.text
        if r.json()["chain_facts"]["source"] == "index+chain" or time.monotonic() > deadline:
            return r.json()
        time.sleep(0.5)


def _without_clock(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "chain_facts"}


def test_receipt_check_from_the_index_and_a_poisoned_index(api: httpx.Client, stack: Stack) -> None:
    """The bank check of a pledged receipt from the index (one JSON-RPC batch) says what the chain says; a
    receipt or coil row tampered in the API's database never reaches the bank: the answer comes from the
    chain, unchanged; the row restored, the index serves again."""
    if not SCHEMA.is_file():
        pytest.skip(f"EPCIS JSON Schema not found at {SCHEMA} (../shared/data beside the project)")
    import sqlite3

    from api.cli.load_setup import setup_warehouse_receipts

    bank = _enterprise(api, stack, "WR Index Bank", ["bank"])
    (rid,) = setup_warehouse_receipts(api, stack.admin_token or "", bank, 1)
    honest = _indexed_receipt_check(api, rid, bank)
    facts = honest["chain_facts"]
    assert facts["source"] == "index+chain", facts
    assert facts["confirmed_at_block"] >= facts["indexed_to_block"]
    assert honest["pledged_to_you"] and honest["no_other_live_receipt"] and honest["custody_confirmed"]
    db = stack.data_dir / "api" / "api.db"
    attacks = [  # another holder, "not pledged", another bank, another currency, a coil swapped out
        ("warehouse_receipt_index_receipts", "owner", "0x000000000000000000000000000000000000dEaD", "receipt_id"),
        ("warehouse_receipt_index_receipts", "status", "live", "receipt_id"),
        ("warehouse_receipt_index_receipts", "bank", "0x000000000000000000000000000000000000bEEF", "receipt_id"),
        ("warehouse_receipt_index_receipts", "currency", "USD", "receipt_id"),
        ("warehouse_receipt_index_coils", "identifier", "88.999/NOT-A-COIL", "receipt_id"),
    ]
    for table, column, value, key in attacks:
        with sqlite3.connect(db, timeout=30) as conn:
            (before,) = conn.execute(f"SELECT {column} FROM {table} WHERE {key} = ?", (rid,)).fetchone()
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (value, rid))
        try:
            answer = api.get(f"/v1/warehouse-receipts/{rid}/check", headers=auth(bank)).json()
            assert answer["chain_facts"]["source"] == "chain", (table, column)
            assert _without_clock(answer) == _without_clock(honest), (table, column)
        finally:
            with sqlite3.connect(db, timeout=30) as conn:
                conn.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (before, rid))
    assert _indexed_receipt_check(api, rid, bank)["chain_facts"]["source"] == "index+chain"
    other = _enterprise(api, stack, "WR Index Outsider", ["bank"])
    assert api.get(f"/v1/warehouse-receipts/{rid}/check", headers=auth(other)).status_code == 404


def test_valuation_of_a_pledged_receipt_follows_the_price_index(api: httpx.Client, stack: Stack, chain: Chain) -> None:
    """Value per day = net weight × the grade's PriceIndex price; LTV of the pledge; the margin-call crossing."""
    if not SCHEMA.is_file():
        pytest.skip(f"EPCIS JSON Schema not found at {SCHEMA} (../shared/data beside the project)")
    from datetime import date, timedelta

    mill = _enterprise(api, stack, "WRV Mill", ["manufacturer"])
    warehouse = _enterprise(api, stack, "WRV Warehouse", ["warehouse"])
    trader = _enterprise(api, stack, "WRV Trader", ["supplier"])
    bank = _enterprise(api, stack, "WRV Bank", ["bank"])
    publisher = _enterprise(api, stack, "WRV Price Index", ["price_publisher"])
    r = api.post("/v1/coils/certificates", headers=auth(mill), json=s355mc_certificate(f"WRV-{mill['id']}"))
    coil = r.json()["identifier"]
    location = "urn:epc:id:sgln:6901234.00009.0"
    assert api.post("/v1/epcis/capture", headers=auth(warehouse),
                    json=receiving_document([coil], location)).status_code == 201
    body = {"depositor_enterprise_id": trader["id"], "location": location,
            "storage_until": chain.block_time() + 86_400 * 90, "coils": [{"identifier": coil, "net_weight_kg": 20_000}]}
    r = api.post("/v1/warehouse-receipts", headers=auth(warehouse), json={
        **body, "coils": [{"identifier": coil}, {"identifier": f"{mill['prefix']}/NO-SUCH-COIL"}]})
    assert r.status_code == 422 and [(d["field"], d["rule"]) for d in r.json()["detail"]] == [
        ("coils[1].identifier", "not_found")]
    r = api.post("/v1/warehouse-receipts", headers=auth(warehouse), json=body)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    # 20 t: value 80,000.00 EUR at 4000.00 EUR/t; a loan of 52,000.00 is LTV 0.65
    r = api.post(f"/v1/warehouse-receipts/{rid}/pledge", headers=auth(trader), json={
        "bank_enterprise_id": bank["id"], "amount": "52000.00", "currency": "EUR",
        "maturity": chain.block_time() + 86_400 * 30})
    assert r.status_code == 200, r.text
    today = chain.block_time() // 86_400
    for offset, price in ((-2, "4000.00"), (-1, "3700.00"), (0, "3200.00")):
        day = (date(1970, 1, 1) + timedelta(days=today + offset)).isoformat()
        r = api.post("/v1/price-index", headers=auth(publisher),
                     json={"day": day, "prices": [{"grade": "S355MC", "currency": "EUR", "price_per_tonne": price}]})
        assert r.status_code == 201, r.text
    r = api.get(f"/v1/warehouse-receipts/{rid}/valuation", headers=auth(bank),
                params={"from": today - 3, "to": today, "margin_call_ltv": "0.7"})
    assert r.status_code == 200, r.text
    val = r.json()
    assert val["currency"] == "EUR" and val["loan_value"] == 5_200_000
    assert [d["value"] for d in val["days"]] == [None, 8_000_000, 7_400_000, 6_400_000]
    assert [d["ltv"] for d in val["days"]][1:] == ["0.650000", "0.702703", "0.812500"]
    assert val["margin_calls"] == [today - 1]
    check = api.get(f"/v1/warehouse-receipts/{rid}/check", headers=auth(bank)).json()
    assert check["value_now"]["value"] == 6_400_000 and check["value_now"]["ltv"] == "0.812500"
    # the loan is in EUR: valued in another currency there is no LTV; bad input names the field
    r = api.get(f"/v1/warehouse-receipts/{rid}/valuation", headers=auth(bank), params={"currency": "USD"})
    assert r.status_code == 200 and r.json()["loan_value"] is None
    r = api.get(f"/v1/warehouse-receipts/{rid}/valuation", headers=auth(bank), params={"from": today, "to": today - 1})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "from"
    assert api.get(f"/v1/warehouse-receipts/{rid}/valuation", headers=auth(mill)).status_code == 404
