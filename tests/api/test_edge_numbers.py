"""Numbers at the edge (issue 12): ids, values and maturities out of range are 404/422, never 500,
and refused before any transaction is sent (the chain is never reached: these apps have none)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from provenance.receivables import parse_amount
from tests.api.conftest import auth

BIG = [2**63, 2**64 - 1, 2**256, 10**30]


@pytest.mark.parametrize("big", BIG)
def test_enterprise_and_person_paths(client: TestClient, big: int) -> None:
    for path in (f"/v1/enterprises/{big}", f"/v1/persons/{big}", f"/v1/work-tickets/{big}",
                 f"/v1/work-tickets/{big}/verify"):
        r = client.get(path)
        assert r.status_code in (404, 422), (path, r.status_code, r.text)
    assert client.get("/v1/enterprises/0").status_code in (404, 422)


def fields_of(r: Any) -> list[str]:
    assert r.status_code == 422, r.text
    return [d["field"].removeprefix("body.") for d in r.json()["detail"]]


@pytest.mark.parametrize("big", [2**63, 2**64 - 1])
def test_body_ids(client: TestClient, manufacturer: dict[str, Any], big: int) -> None:
    h = auth(manufacturer["api_key"])
    r = client.post("/v1/receivables", headers=h, json={"to_enterprise_id": big, "currency": "CNY", "value": 100,
                                                         "maturity": 2_000_000_000, "invoice_digest": "0x" + "ab" * 32})
    assert "to_enterprise_id" in fields_of(r)
    for action in ("split", "transfer"):
        assert "to_enterprise_id" in fields_of(
            client.post(f"/v1/receivables/1/{action}", headers=h, json={"to_enterprise_id": big, "value": 1}))
    assert "operator_enterprise_id" in fields_of(
        client.post("/v1/receivables/1/approve", headers=h, json={"operator_enterprise_id": big, "value": 1}))
    ticket = {"document": {"x": 1}, "issuer": big, "permitter": 2, "leader": 3, "crew": [big]}
    f = fields_of(client.post("/v1/work-tickets", headers=h, json=ticket))
    assert "issuer" in f and "crew[0]" in f
    assert "person_id" in fields_of(client.post("/v1/work-tickets/1/steps", headers=h,
                                                json={"action": "permit", "person_id": big}))


@pytest.mark.parametrize(("body", "field"), [
    ({"value": 2**256}, "value"),
    ({"value": 0}, "value"),
    ({"value": 100, "maturity": 2**63}, "maturity"),
    ({"value": 100, "maturity": 2**64 - 1}, "maturity"),
    ({"value": 100, "maturity": 253_402_300_800}, "maturity"),
])
def test_value_and_maturity_bounds(client: TestClient, manufacturer: dict[str, Any], body: dict, field: str) -> None:
    full = {"to_enterprise_id": 1, "currency": "CNY", "maturity": 2_000_000_000,
            "invoice_digest": "0x" + "ab" * 32, **body}
    r = client.post("/v1/receivables", headers=auth(manufacturer["api_key"]), json=full)
    assert any(f == field or f.startswith(field) for f in fields_of(r)), r.json()


def test_token_id_path_bound(client: TestClient, manufacturer: dict[str, Any]) -> None:
    r = client.get(f"/v1/receivables/{2**256}", headers=auth(manufacturer["api_key"]))
    assert r.status_code == 422


@pytest.mark.parametrize("text", ["١٥٠٠٠٠.٠٠", "１５０.００", "150000.001", "1e5", "-1.00", "0.00", " ", "1" * 31])
def test_amounts_are_ascii_decimals_within_precision(text: str) -> None:
    with pytest.raises(ValueError):
        parse_amount(text)


def test_amount_ok() -> None:
    assert parse_amount("150000.00") == 15_000_000 and parse_amount("0.01") == 1


def test_created_at_is_utc_z(client: TestClient) -> None:
    """Before: ``GET /v1/enterprises/{id}`` answered ``created_at`` without a timezone (SQLite)."""
    ent = client.post("/v1/enterprises", json={"name": "Zulu Mill", "roles": ["manufacturer"]},
                      headers={"Authorization": "Bearer gov-token-for-tests"}).json()
    assert ent["created_at"].endswith("Z")
    assert client.get(f"/v1/enterprises/{ent['id']}").json()["created_at"].endswith("Z")


def test_openapi_declares_the_real_422_shape(client: TestClient) -> None:
    """Before: the document declared FastAPI's ``{loc, msg, type}`` while responses are ``{field, rule, message}``."""
    import jsonschema

    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert set(schemas["IssueSchema"]["required"]) == {"field", "rule", "message"}
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    r = client.get(f"/v1/enterprises/{2**64}")
    assert r.status_code == 422
    declared = doc["paths"]["/v1/enterprises/{enterprise_id}"]["get"]["responses"]["422"]
    ref = declared["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    resolver_doc = {"components": doc["components"], **schemas[ref]}
    jsonschema.validate(r.json(), resolver_doc)
