"""The shared money type of request bodies (:mod:`api.money`): receivables and warehouse-receipt pledges take
an amount as ``value`` (minor unit) or ``amount`` (decimal string), exactly one, and refuse anything else
with a 422 naming the field -- the same rule for both, from one type."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.errors import UnprocessableError
from api.money import MinorUnitAmount, Money
from api.routes.receivables import ApproveBody, DiscountBody, IssueBody, SplitBody
from api.routes.warehouse_receipts import PledgeBody
from tests.api.conftest import auth

BODIES = [IssueBody, SplitBody, ApproveBody, DiscountBody, PledgeBody]


def test_every_amount_body_uses_the_shared_type() -> None:
    assert all(issubclass(body, MinorUnitAmount) for body in BODIES)
    assert issubclass(IssueBody, Money) and issubclass(PledgeBody, Money)


@pytest.mark.parametrize(("given", "fen"), [({"value": 150}, 150), ({"amount": "150000.00"}, 15_000_000),
                                            ({"amount": "0.01"}, 1)])
def test_value_or_amount_in_minor_units(given: dict, fen: int) -> None:
    assert MinorUnitAmount(**given).fen() == fen


@pytest.mark.parametrize("given", [{}, {"value": 1, "amount": "0.01"}])
def test_exactly_one_of_value_or_amount(given: dict) -> None:
    with pytest.raises(UnprocessableError) as err:
        MinorUnitAmount(**given).fen()
    assert [(i.field, i.rule) for i in err.value.issues] == [("value", "required")]


@pytest.mark.parametrize("text", ["1.001", "-1.00", "0.00", "1e5", "１５０.００"])
def test_bad_amount_names_the_field(text: str) -> None:
    with pytest.raises(UnprocessableError) as err:
        MinorUnitAmount(amount=text).fen()
    assert [(i.field, i.rule) for i in err.value.issues] == [("amount", "format")]


@pytest.mark.parametrize("value", [0, 2**256])
def test_value_out_of_uint256_range_is_refused_by_the_model(value: int) -> None:
    with pytest.raises(ValidationError) as err:
        MinorUnitAmount(value=value)
    assert err.value.errors()[0]["loc"] == ("value",)


def test_currency_defaults_to_cny_and_must_be_iso_4217_letters() -> None:
    assert Money(value=1).currency == "CNY" and Money(value=1, currency="EUR").currency == "EUR"
    for bad in ("eur", "EURO", "E1R"):
        with pytest.raises(ValidationError) as err:
            Money(value=1, currency=bad)
        assert err.value.errors()[0]["loc"] == ("currency",)


@pytest.mark.parametrize(("given", "field"), [({"value": 100, "amount": "1.00"}, "value"), ({}, "value"),
                                              ({"amount": "1.001"}, "amount")])
def test_pledge_route_refuses_a_bad_amount_naming_the_field(client: TestClient, manufacturer: dict[str, Any],
                                                            given: dict, field: str) -> None:
    """The route reads the shared type (the amount is checked before the chain is reached: this app has none)."""
    body = {"bank_enterprise_id": manufacturer["id"], "maturity": 2_000_000_000, **given}
    r = client.post("/v1/warehouse-receipts/1/pledge", headers=auth(manufacturer["api_key"]), json=body)
    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["detail"]] == [field]
