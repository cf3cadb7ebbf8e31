"""Through the HTTP API on the real chain: the 3-tier receivables scenario and a full work ticket."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from eth_account import Account

from api.devnet import Stack
from provenance.work_tickets import sign_typed

from .conftest import Chain, auth, gov

pytestmark = pytest.mark.integration


def _enterprise(api: httpx.Client, stack: Stack, name: str, roles: list[str]) -> dict[str, Any]:
    r = api.post("/v1/enterprises", headers=gov(stack), json={"name": name, "roles": roles})
    assert r.status_code == 201, r.text
    return r.json()


def test_three_tier_receivables(api: httpx.Client, stack: Stack, chain: Chain) -> None:
    automaker = _enterprise(api, stack, "Changan Automobile", ["core_enterprise"])
    tier1 = _enterprise(api, stack, "Tier-1 Seats Co.", ["supplier"])
    tier2 = _enterprise(api, stack, "Tier-2 Frames Co.", ["supplier"])
    mill = _enterprise(api, stack, "Baosteel Coil Mill", ["manufacturer"])
    bank = _enterprise(api, stack, "Bank of Chongqing", ["bank"])
    other = _enterprise(api, stack, "Unrelated Supplier", ["supplier"])

    maturity = chain.block_time() + 45
    invoice = {"number": "INV-2026-000417", "seller": "Tier-1 Seats Co.", "buyer": "Changan Automobile",
               "amount": "1000000.00", "currency": "CNY", "maturity": maturity}
    body = {"to_enterprise_id": tier1["id"], "currency": "CNY", "amount": "1000000.00", "maturity": maturity,
            "invoice": invoice}
    # bad input names the field; only a core enterprise confirms payables
    r = api.post("/v1/receivables", headers=auth(automaker), json={**body, "amount": "12.345"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "amount"
    r = api.post("/v1/receivables", headers=auth(automaker), json={**body, "currency": "cny"})
    assert r.status_code == 422 and "currency" in r.text
    r = api.post("/v1/receivables", headers=auth(tier1), json=body)
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "NotCoreEnterprise"

    r = api.post("/v1/receivables", headers=auth(automaker), json=body)
    assert r.status_code == 201, r.text
    payable = r.json()
    root = payable["id"]
    assert payable["value"] == 100_000_000 and payable["holder"]["name"] == "Tier-1 Seats Co."
    assert payable["issuer"]["name"] == "Changan Automobile" and payable["currency"] == "CNY"
    assert payable["maturity"] == maturity and payable["status"] == "outstanding"
    # a second issue against the same invoice is refused: no double financing
    r = api.post("/v1/receivables", headers=auth(automaker), json=body)
    assert r.status_code == 409 and r.json()["detail"]["reason"] == "InvoiceAlreadyIssued"

    r = api.post(f"/v1/receivables/{root}/split", headers=auth(tier1),
                 json={"to_enterprise_id": tier2["id"], "amount": "400000.00"})
    assert r.status_code == 201, r.text
    t2 = r.json()["token_id"]
    r = api.post(f"/v1/receivables/{t2}/split", headers=auth(tier2),
                 json={"to_enterprise_id": mill["id"], "amount": "150000.00"})
    assert r.status_code == 201, r.text
    t3 = r.json()["token_id"]
    r = api.post(f"/v1/receivables/{t3}/split", headers=auth(mill),
                 json={"to_enterprise_id": tier2["id"], "amount": "150000.01"})
    assert r.status_code == 409 and r.json()["detail"]["reason"] == "InsufficientBalance"

    # access: the bank sees nothing before it is asked; unrelated suppliers never
    assert api.get(f"/v1/receivables/{t3}/check", headers=auth(bank)).status_code == 404
    assert api.get(f"/v1/receivables/{root}", headers=auth(other)).status_code == 404
    assert api.get(f"/v1/receivables/{t3}", headers=auth(other)).status_code == 404
    assert api.get(f"/v1/receivables/{root}", headers=auth(mill)).status_code == 404  # upstream balance is private
    assert api.get("/v1/receivables", headers=auth(other)).json()["tokens"] == []
    assert api.get(f"/v1/receivables/{t3}").status_code == 401

    r = api.post(f"/v1/receivables/{t3}/approve", headers=auth(mill),
                 json={"operator_enterprise_id": bank["id"], "amount": "150000.00", "max_rate_bps": 9000})
    assert r.status_code == 200, r.text
    # the offer lets the bank discount, nothing else: no split or transfer to itself (the double-financing path)
    r = api.post(f"/v1/receivables/{t3}/split", headers=auth(bank),
                 json={"to_enterprise_id": bank["id"], "amount": "150000.00"})
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "NotHolder"
    r = api.post(f"/v1/receivables/{t3}/transfer", headers=auth(bank), json={"to_enterprise_id": bank["id"]})
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "NotHolder"
    r = api.post(f"/v1/receivables/{t3}/discount", headers=auth(bank),
                 json={"amount": "150000.00", "rate_bps": 9001, "payment_reference": "CQB-2026-88119"})
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "RateAboveOffer"  # the holder's terms hold
    check = api.get(f"/v1/receivables/{t3}/check", headers=auth(bank)).json()
    assert check["genuine"] is True and check["outstanding"] is True and check["already_financed"] is False
    assert check["confirmed_by"]["name"] == "Changan Automobile"
    assert check["free_to_finance"] == 15_000_000 and check["offered_to_you"] == 15_000_000
    assert check["invoice_digest"] == payable["payable"]["invoice_digest"]
    assert [(c["kind"], c["holder"]["name"], c["value_received"]) for c in check["chain"]] == [
        ("issued", "Tier-1 Seats Co.", 100_000_000), ("split", "Tier-2 Frames Co.", 40_000_000),
        ("split", "Baosteel Coil Mill", 15_000_000)]

    r = api.post(f"/v1/receivables/{t3}/discount", headers=auth(bank),
                 json={"amount": "150000.00", "rate_bps": 9000, "payment_reference": "CQB-2026-88120"})
    assert r.status_code == 201, r.text
    financed = r.json()
    assert financed["holder"]["name"] == "Bank of Chongqing" and financed["financed"] is True
    assert financed["discount"]["rate_bps"] == 9000 and financed["discount"]["payment_reference"] == "CQB-2026-88120"
    assert financed["discount"]["price"] < 15_000_000
    assert [c["holder"]["name"] for c in financed["chain"]] == [
        "Tier-1 Seats Co.", "Tier-2 Frames Co.", "Baosteel Coil Mill", "Bank of Chongqing"]
    check = api.get(f"/v1/receivables/{financed['id']}/check", headers=auth(bank)).json()
    assert check["already_financed"] is True and check["free_to_finance"] == 0 and len(check["chain"]) == 4
    # the financed value cannot be discounted a second time
    r = api.post(f"/v1/receivables/{financed['id']}/approve", headers=auth(bank),
                 json={"operator_enterprise_id": bank["id"], "value": 1, "max_rate_bps": 100})
    assert r.status_code == 422  # a holder cannot approve itself
    r = api.post(f"/v1/receivables/{t3}/discount", headers=auth(bank),
                 json={"value": 1, "rate_bps": 100, "payment_reference": "CQB-2026-88121"})
    # the bank already financed from t3 (its allowance is spent): 409 AlreadyDiscounted in words, not 404
    assert r.status_code == 409 and r.json()["detail"]["reason"] == "AlreadyDiscounted", r.text
    assert r.json()["detail"]["arguments"] == {"tokenId": t3, "financed_token_id": financed["id"]}
    assert f"receivable {t3} is already discounted" in r.json()["detail"]["message"]
    r = api.post(f"/v1/receivables/{t3}/discount", headers=auth(other),
                 json={"value": 1, "rate_bps": 100, "payment_reference": "CQB-2026-88122"})
    assert r.status_code == 404  # anyone else still learns nothing about t3

    mine = {t["id"]: t for t in api.get("/v1/receivables", headers=auth(tier2)).json()["tokens"]}
    assert mine[t2]["value"] == 25_000_000

    # maturity: transfers stop, the automaker settles every holder
    r = api.post(f"/v1/receivables/{root}/settle", headers=auth(automaker), json={"payment_reference": "EARLY"})
    assert r.status_code == 409 and r.json()["detail"]["reason"] == "NotMatured"
    chain.wait_block_time(maturity)
    r = api.post(f"/v1/receivables/{root}/split", headers=auth(tier1),
                 json={"to_enterprise_id": tier2["id"], "amount": "1.00"})
    assert r.status_code == 409 and r.json()["detail"]["reason"] == "Matured"
    holders = api.get(f"/v1/receivables/{root}", headers=auth(automaker)).json()["holders"]
    assert sum(h["value"] for h in holders) == 100_000_000
    paid = {}
    by_name = {e["name"]: e for e in (tier1, tier2, mill, bank)}
    for h in holders:
        if h["value"] == 0:
            continue
        r = api.post(f"/v1/receivables/{h['token_id']}/settle", headers=auth(automaker),
                     json={"payment_reference": f"CHANGAN-PAY-{h['token_id']}"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "settlement_pending" and r.json()["value"] == h["value"]
        # the issuer alone cannot extinguish the holder's claim: the holder confirms receipt
        r = api.post(f"/v1/receivables/{h['token_id']}/confirm-settlement", headers=auth(automaker))
        assert r.status_code == 403 and r.json()["detail"]["reason"] == "NotHolder"
        r = api.post(f"/v1/receivables/{h['token_id']}/confirm-settlement", headers=auth(by_name[h["holder"]["name"]]))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "redeemed" and r.json()["value"] == 0
        paid[h["holder"]["name"]] = r.json()["settlement"]["value"]
    assert paid == {"Tier-1 Seats Co.": 60_000_000, "Tier-2 Frames Co.": 25_000_000,
                    "Bank of Chongqing": 15_000_000}
    final = api.get(f"/v1/receivables/{root}", headers=auth(automaker)).json()
    assert final["payable"]["settled_value"] == 100_000_000
    assert all(h["value"] == 0 for h in final["holders"])
    r = api.post(f"/v1/receivables/{root}/settle", headers=auth(automaker), json={"payment_reference": "AGAIN"})
    assert r.status_code == 409 and r.json()["detail"]["reason"] == "Redeemed"


def test_work_ticket_through_api(api: httpx.Client, stack: Stack, chain: Chain) -> None:
    grid = _enterprise(api, stack, "State Grid Xinzhuang Substation", ["manufacturer"])
    contractor = _enterprise(api, stack, "Huadian Maintenance Contractor", ["supplier"])

    def person(ent: dict, name: str, roles: list[str], **extra: Any) -> dict:
        r = api.post("/v1/persons", headers=auth(ent),
                     json={"name": name, "roles": roles, "qualification": "110 kV Xinzhuang", **extra})
        assert r.status_code == 201, r.text
        return r.json()

    issuer = person(grid, "Wang Wei (签发人)", ["ticket_issuer", "permitting_officer"])
    permitter = person(grid, "Li Na (许可人)", ["permitting_officer"])
    leader = person(contractor, "Zhang Qiang (工作负责人)", ["person_in_charge"])
    crew = [person(contractor, f"Crew {n}", ["crew_member"]) for n in ("Chen", "Liu")]
    device = Account.create()
    r = api.post("/v1/persons", headers=auth(contractor),
                 json={"name": "Crew Zhao (device)", "roles": ["crew_member"], "address": device.address})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "signature"  # proof of possession
    typed = api.post("/v1/persons/typed-data", headers=auth(contractor),
                     json={"name": "Crew Zhao (device)", "roles": ["crew_member"], "qualification": "110 kV Xinzhuang",
                           "address": device.address}).json()
    crew.append(person(contractor, "Crew Zhao (device)", ["crew_member"], address=device.address,
                       signature="0x" + sign_typed(device.key, typed).hex(), deadline=typed["message"]["deadline"]))
    assert crew[2]["key_custody"] == "device" and issuer["key_custody"] == "keystore"
    r = api.post("/v1/persons", headers=auth(grid), json={"name": "X", "roles": ["electrician"]})
    assert r.status_code == 422 and r.json()["detail"][0]["field"].startswith("body.roles")

    # tickets only on the issuing enterprise's own equipment, for a window that has not passed
    equipment = f"{grid['prefix']}/XZ-110kV-T1"
    start = datetime.fromtimestamp(chain.block_time(), timezone(timedelta(hours=8))).replace(microsecond=0)
    document = {"equipment": equipment, "work_content": "Replace the 110 kV bushing of main transformer T1",
                "safety_measures": ["Open breaker 101", "Earth both sides of T1", "Hang warning signs"],
                "isolation_points": ["Breaker 101", "Disconnector 101-1"],
                "planned_start": start.isoformat(), "planned_end": (start + timedelta(hours=10)).isoformat()}
    body = {"document": document, "issuer": issuer["id"], "permitter": permitter["id"], "leader": leader["id"],
            "crew": [c["id"] for c in crew]}
    r = api.post("/v1/work-tickets", headers=auth(grid), json={**body, "document": {**document, "planned_end": "x"}})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "document.planned_end"
    # issuer = permitting officer is refused by the contract
    r = api.post("/v1/work-tickets", headers=auth(grid), json={**body, "permitter": issuer["id"]})
    assert r.status_code == 422 and r.json()["detail"]["reason"] == "SamePerson"
    r = api.post("/v1/work-tickets", headers=auth(grid), json=body)
    assert r.status_code == 201, r.text
    tid = r.json()["id"]

    def step(ent: dict, action: str, who: dict, **extra: Any) -> httpx.Response:
        return api.post(f"/v1/work-tickets/{tid}/steps", headers=auth(ent),
                        json={"action": action, "person_id": who["id"], **extra})

    r = step(contractor, "brief", leader)  # out of order: not permitted yet
    assert r.status_code == 409 and r.json()["detail"]["reason"] == "WrongStatus"
    # in words: statuses and actions by name, not WrongStatus(1, 1, 2)
    assert r.json()["detail"]["arguments"] == {"ticketId": tid, "status": "issued", "action": "brief"}
    assert f"ticket {tid} is `issued`; `brief` needs `permitted`" in r.json()["detail"]["message"]
    r = step(grid, "permit", issuer)  # wrong person: the ticket names Li Na
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "NotNamedPerson"
    assert r.json()["detail"]["arguments"]["action"] == "permit"
    assert f"`permit` on ticket {tid} is for {permitter['address']}" in r.json()["detail"]["message"]
    r = step(grid, "permit", leader)  # the contractor's key is not the grid's to use
    assert r.status_code == 403
    assert step(grid, "permit", permitter).status_code == 201
    assert step(contractor, "brief", leader).status_code == 201
    assert step(contractor, "acknowledge", crew[0]).status_code == 201
    assert step(contractor, "acknowledge", crew[1]).status_code == 201
    r = step(contractor, "acknowledge", crew[2])  # a device person must send its signature
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "signature"
    typed = api.post(f"/v1/work-tickets/{tid}/typed-data", headers=auth(contractor),
                     json={"action": "acknowledge", "person_id": crew[2]["id"]}).json()

    signature = "0x" + sign_typed(device.key, typed).hex()
    r = step(contractor, "acknowledge", crew[2], signature=signature, deadline=typed["message"]["deadline"])
    assert r.status_code == 201, r.text
    assert step(grid, "extend", permitter, planned_end=(start + timedelta(hours=12)).isoformat()).status_code == 201
    assert step(contractor, "end_work", leader).status_code == 201
    r = step(grid, "terminate", permitter)
    assert r.status_code == 201 and r.json()["status"] == "terminated"

    view = api.get(f"/v1/work-tickets/{tid}").json()
    assert view["status"] == "terminated" and view["document"] == document
    assert [(h["action"], h["person"]["name"]) for h in view["history"]] == [
        ("issue", "Wang Wei (签发人)"), ("permit", "Li Na (许可人)"), ("brief", "Zhang Qiang (工作负责人)"),
        ("acknowledge", "Crew Chen"), ("acknowledge", "Crew Liu"), ("acknowledge", "Crew Zhao (device)"),
        ("extend", "Li Na (许可人)"), ("end_work", "Zhang Qiang (工作负责人)"), ("terminate", "Li Na (许可人)")]
    assert all(h["block_number"] > 0 and h["time"] for h in view["history"])
    assert view["history"][5]["relayed_by"] == contractor["address"]  # device signature relayed
    assert view["history"][5]["signed_with"] == "eip712-secp256k1" and view["history"][0]["signed_with"] == \
        "secp256k1-transaction"
    assert all(c["acknowledged"] for c in view["crew"])
    verdict = api.get(f"/v1/work-tickets/{tid}/verify").json()
    assert verdict["verified"] is True, verdict

    # a second (cancelled) job on the same equipment; the history lists both
    r = api.post("/v1/work-tickets", headers=auth(grid), json=body)
    tid2 = r.json()["id"]
    r = api.post(f"/v1/work-tickets/{tid2}/steps", headers=auth(grid), json={"action": "cancel",
                                                                             "person_id": issuer["id"]})
    assert r.status_code == 201 and r.json()["status"] == "cancelled"
    # a person retires for good: no longer a permitted sender, never re-activated
    spare = person(grid, "Retiring Officer", ["permitting_officer"])
    r = api.post(f"/v1/persons/{spare['id']}/retire", headers=auth(contractor))
    assert r.status_code == 404  # not the contractor's person
    r = api.post(f"/v1/persons/{spare['id']}/retire", headers=auth(grid))
    assert r.status_code == 200, r.text
    assert not chain.registry.functions.isPermittedSender(spare["address"]).call()
    r = api.post(f"/v1/persons/{spare['id']}/retire", headers=auth(grid))
    assert r.status_code == 409 and r.json()["detail"]["reason"] == "PersonIsRetired"
    listing = api.get(f"/v1/equipment/{equipment}/work-tickets").json()
    assert [(t["id"], t["status"]) for t in listing["tickets"]][-2:] == [(tid, "terminated"), (tid2, "cancelled")]
    assert listing["tickets"][-2]["crew"] == ["Crew Chen", "Crew Liu", "Crew Zhao (device)"]
    assert api.get("/v1/work-tickets/99999").status_code == 404


def test_expelled_holder_cannot_be_financed_through_api(api: httpx.Client, stack: Stack, chain: Chain) -> None:
    core = _enterprise(api, stack, "Expel Test Automaker", ["core_enterprise"])
    supplier = _enterprise(api, stack, "Expel Test Supplier", ["supplier"])
    bank = _enterprise(api, stack, "Expel Test Bank", ["bank"])
    body = {"to_enterprise_id": supplier["id"], "currency": "CNY", "amount": "1000.00",
            "maturity": chain.block_time() + 3600, "invoice_digest": "0x" + "ab" * 32}
    r = api.post("/v1/receivables", headers=auth(core), json=body)
    assert r.status_code == 201, r.text
    token = r.json()["id"]
    r = api.post(f"/v1/receivables/{token}/approve", headers=auth(supplier),
                 json={"operator_enterprise_id": bank["id"], "amount": "1000.00", "max_rate_bps": 500})
    assert r.status_code == 200, r.text
    assert api.get(f"/v1/receivables/{token}/check", headers=auth(bank)).json()["free_to_finance"] == 100_000
    # governance expels the supplier: the contract itself refuses to finance its value
    chain.do(chain.admin, chain.registry.functions.setActive(supplier["address"], False))
    check = api.get(f"/v1/receivables/{token}/check", headers=auth(bank)).json()
    assert check["free_to_finance"] == 0
    r = api.post(f"/v1/receivables/{token}/discount", headers=auth(bank),
                 json={"amount": "1000.00", "rate_bps": 100, "payment_reference": "EXPEL-1"})
    assert r.status_code == 422 and r.json()["detail"]["reason"] == "NotMember"
