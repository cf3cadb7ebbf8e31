"""``/v1/price-index`` through the HTTP API on the real chain (one QBFT validator process, the API process):
a publisher posts days, corrects one, another publisher cannot overwrite or backfill, the series reads back
from the chain with publisher and transaction per day; bad input is a 422 naming the field."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.devnet import Stack
from api.valuation import grade_key

from .conftest import Chain, auth, gov

pytestmark = pytest.mark.integration


def _enterprise(api: httpx.Client, stack: Stack, name: str, roles: list[str]) -> dict[str, Any]:
    r = api.post("/v1/enterprises", headers=gov(stack), json={"name": name, "roles": roles})
    assert r.status_code == 201, r.text
    return r.json()


def _day(chain: Chain, offset: int) -> str:
    """The chain's UTC day + ``offset`` as an ISO date."""
    today = datetime.fromtimestamp(chain.block_time(), UTC).date()
    return (today + timedelta(days=offset)).isoformat()


def _fields(r: httpx.Response) -> list[str]:
    assert r.status_code == 422, r.text
    return [p["field"] for p in r.json()["detail"]]


def test_publish_correct_and_read_the_price_index(api: httpx.Client, stack: Stack, chain: Chain) -> None:
    mysteel = _enterprise(api, stack, "Mysteel Price Centre", ["price_publisher"])
    other = _enterprise(api, stack, "Other Price Agency", ["price_publisher"])
    bank = _enterprise(api, stack, "Bank of Ningbo (prices)", ["bank"])
    assert api.get("/v1/network").json()["contracts"]["PriceIndex"] == stack.spec.price_index
    index = chain.contract("PriceIndex", stack.spec.price_index)
    d3, d2, d1 = _day(chain, -3), _day(chain, -2), _day(chain, -1)
    s355 = {"grade": "S355MC", "currency": "CNY", "price_per_tonne": "4125.50"}

    # only price publishers publish; the role check answers before any transaction
    r = api.post("/v1/price-index", headers=auth(bank), json={"day": d3, "prices": [s355]})
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "NotPricePublisher"
    assert api.post("/v1/price-index", json={"day": d3, "prices": [s355]}).status_code == 401

    # bad input: a 422 naming each field, nothing sent
    bad = [
        ({"day": "2026-13-01", "prices": [s355]}, ["body.day"]),
        ({"day": "30.11.2026", "prices": [s355]}, ["body.day"]),
        ({"day": _day(chain, 2), "prices": [s355]}, ["body.day"]),  # beyond the chain's day + 1
        ({"day": d3, "prices": []}, ["body.prices"]),
        ({"day": d3, "prices": [s355] * 65}, ["body.prices"]),
        ({"day": d3, "prices": [{**s355, "price_per_tonne": "4125.505"}]}, ["body.prices[0].price_per_tonne"]),
        ({"day": d3, "prices": [{**s355, "price_per_tonne": 4125.5}]}, ["body.prices[0].price_per_tonne"]),
        ({"day": d3, "prices": [{**s355, "price_per_tonne": "-1"}]}, ["body.prices[0].price_per_tonne"]),
        ({"day": d3, "prices": [{**s355, "price_per_tonne": "0.00"}]}, ["body.prices[0].price_per_tonne"]),
        ({"day": d3, "prices": [{**s355, "currency": "XAU"}]}, ["body.prices[0].currency"]),
        ({"day": d3, "prices": [{**s355, "currency": "cny"}]}, ["body.prices[0].currency"]),
        ({"day": d3, "prices": [{**s355, "grade": "S355 MC"}]}, ["body.prices[0].grade"]),
        ({"day": d3, "prices": [s355, {**s355, "price_per_tonne": "1.00"}]}, ["body.prices[1]"]),
        ({"day": d3, "prices": [{**s355, "currency": "JPY", "price_per_tonne": "1.5"},
                                {**s355, "grade": "Q355B", "price_per_tonne": "1.001"}]},
         ["body.prices[0].price_per_tonne", "body.prices[1].price_per_tonne"]),
    ]
    for body, fields in bad:
        r = api.post("/v1/price-index", headers=auth(mysteel), json=body)
        assert _fields(r) == fields, (body, r.text)
    assert index.functions.seriesLength(grade_key("S355MC"), b"CNY").call() == 0

    r = api.post("/v1/price-index", headers=auth(mysteel), json={"day": d3, "prices": [
        s355, {"grade": "S355MC", "currency": "USD", "price_per_tonne": "580"},
        {"grade": "Q355B", "currency": "JPY", "price_per_tonne": "61300"}]})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["day"] == d3 and first["publisher"]["name"] == "Mysteel Price Centre"
    assert [(p["grade"], p["currency"], p["price_per_tonne_minor"], p["outcome"]) for p in first["prices"]] == [
        ("S355MC", "CNY", 412_550, "published"), ("S355MC", "USD", 58_000, "published"),
        ("Q355B", "JPY", 61_300, "published")]
    d3_unix = first["unix_day"]
    assert index.functions.priceAt(grade_key("S355MC"), b"CNY", d3_unix + 1).call() == [
        412_550, d3_unix, mysteel["address"]]
    r = api.post("/v1/price-index", headers=auth(mysteel), json={"day": d1, "prices": [
        {**s355, "price_per_tonne": "4000.00"}]})
    assert r.status_code == 201, r.text

    # another publisher can neither overwrite that day nor fill the gap before it
    r = api.post("/v1/price-index", headers=auth(other), json={"day": d1, "prices": [
        {**s355, "price_per_tonne": "3000.00"}]})
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "PriceOwnedByOther"
    assert r.json()["detail"]["arguments"]["publisher"] == mysteel["address"]
    r = api.post("/v1/price-index", headers=auth(other), json={"day": d2, "prices": [s355]})
    assert r.status_code == 409 and r.json()["detail"]["reason"] == "DayBeforeLatest"
    assert r.json()["detail"]["arguments"]["latestDay"] == d1

    # its publisher corrects the day once; the same price again changes nothing
    r = api.post("/v1/price-index", headers=auth(mysteel), json={"day": d1, "prices": [
        {**s355, "price_per_tonne": "4010.00"}]})
    assert r.status_code == 201, r.text
    fix = r.json()
    assert fix["prices"][0]["outcome"] == "corrected" and fix["prices"][0]["previous_price_per_tonne"] == "4000.00"
    r = api.post("/v1/price-index", headers=auth(mysteel), json={"day": d1, "prices": [
        {**s355, "price_per_tonne": "4020.00"}]})
    assert r.status_code == 409 and r.json()["detail"]["reason"] == "AlreadyCorrected"
    r = api.post("/v1/price-index", headers=auth(mysteel), json={"day": d1, "prices": [
        {**s355, "price_per_tonne": "4010.00"}]})
    assert r.status_code == 201 and r.json()["prices"][0]["outcome"] == "unchanged"

    # the series, read back from the chain: publisher, transaction and the correction per day
    r = api.get("/v1/price-index/S355MC", params={"currency": "CNY", "from": d2, "to": _day(chain, 0)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["grade_key"] == "0x" + grade_key("S355MC").hex() and body["from"] == d2
    (cny,) = body["series"]
    assert cny["currency"] == "CNY" and cny["exponent"] == 2
    assert cny["in_force_at_from"]["day"] == d3 and cny["in_force_at_from"]["price_per_tonne"] == "4125.50"
    (day1,) = cny["prices"]
    assert day1["day"] == d1 and day1["price_per_tonne"] == "4010.00" and day1["price_per_tonne_minor"] == 401_000
    assert day1["publisher"]["name"] == "Mysteel Price Centre"
    correction = day1["correction"]
    assert correction["original_price_per_tonne"] == "4000.00" and correction["tx_hash"] == fix["tx_hash"]
    receipt = chain.w3.eth.get_transaction_receipt(day1["tx_hash"])
    assert receipt.status == 1 and receipt.blockNumber == day1["block_number"]
    assert datetime.fromisoformat(day1["published_at"]).tzinfo is not None

    every = api.get("/v1/price-index/S355MC", params={"from": d3}).json()
    assert [(s["currency"], [p["day"] for p in s["prices"]]) for s in every["series"]] == [
        ("CNY", [d3, d1]), ("USD", [d3])]
    assert every["series"][0]["prices"][0]["tx_hash"] == first["tx_hash"]
    assert every["series"][0]["prices"][0]["correction"] is None
    jpy = api.get("/v1/price-index/Q355B", params={"currency": "JPY", "from": d3}).json()["series"][0]
    assert jpy["exponent"] == 0 and jpy["prices"][0]["price_per_tonne"] == "61300"
    nothing = api.get("/v1/price-index/S355JR").json()
    assert nothing["series"] == []
    assert nothing["to"] == _day(chain, 1) and nothing["from"] == _day(chain, 1 - 365)  # the defaults

    for params, field in [({"from": d1, "to": d3}, "query.from"), ({"currency": "ABC"}, "query.currency"),
                          ({"from": "2000-01-01", "to": "2026-01-01"}, "query.from"),
                          ({"from": "1969-12-31", "to": "1970-01-02"}, "query.from"), ({"to": "tomorrow"}, "query.to")]:
        assert field in _fields(api.get("/v1/price-index/S355MC", params=params)), params
    assert api.get("/v1/price-index/S355%20MC").status_code == 422

    # an expelled publisher publishes nothing more (EnterpriseRegistry deactivation); its prices stay, marked
    r = api.post("/v1/price-index", headers=auth(other), json={"day": d1, "prices": [
        {"grade": "S355MC", "currency": "USD", "price_per_tonne": "575.00"}]})
    assert r.status_code == 201, r.text
    chain.do(chain.admin, chain.registry.functions.setActive(other["address"], False))
    r = api.post("/v1/price-index", headers=auth(other), json={"day": _day(chain, 0), "prices": [
        {**s355, "grade": "DD11"}]})
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "NotPricePublisher"
    usd = api.get("/v1/price-index/S355MC", params={"currency": "USD", "from": d3}).json()["series"][0]["prices"]
    assert [(p["day"], p["publisher"]["name"], p["publisher"]["active"]) for p in usd] == [
        (d3, "Mysteel Price Centre", True), (d1, "Other Price Agency", False)]
    assert date.fromisoformat(d1) < date.fromisoformat(_day(chain, 0))
