"""POST/GET /v1/enterprises."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import create_enterprise, gov


def test_create_enterprise_shape(client: TestClient) -> None:
    body = create_enterprise(client, roles=["supplier", "manufacturer"])
    assert set(body) >= {"id", "name", "roles", "prefix", "address", "api_key"}
    assert body["roles"] == ["manufacturer", "supplier"]
    assert body["prefix"] == "88.1.1"
    assert body["address"].startswith("0x") and len(body["address"]) == 42
    assert body["registered_on_chain"] is False
    second = create_enterprise(client, name="Other")
    assert second["prefix"] == "88.1.2"
    assert second["api_key"] != body["api_key"]
    pub = client.get(f"/v1/enterprises/{body['id']}")
    assert pub.status_code == 200
    assert "api_key" not in pub.json() and pub.json()["prefix"] == "88.1.1"


def test_assigned_prefix_uses_industry_and_skips_taken(client: TestClient) -> None:
    create_enterprise(client, prefix="88.7.1")
    body = create_enterprise(client, name="B", industry=7)
    assert body["prefix"] == "88.7.2"


def test_requires_governance_token(client: TestClient) -> None:
    payload = {"name": "X", "roles": ["manufacturer"]}
    assert client.post("/v1/enterprises", json=payload).status_code == 401
    wrong = client.post("/v1/enterprises", json=payload, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403


def test_bad_roles_422_names_field(client: TestClient) -> None:
    resp = client.post("/v1/enterprises", json={"name": "X", "roles": ["miner"]}, headers=gov())
    assert resp.status_code == 422
    fields = [d["field"] for d in resp.json()["detail"]]
    assert fields == ["body.roles[0]"]
    empty = client.post("/v1/enterprises", json={"name": "X", "roles": []}, headers=gov())
    assert empty.status_code == 422 and empty.json()["detail"][0]["field"] == "body.roles"


def test_bad_prefix_422(client: TestClient) -> None:
    resp = client.post("/v1/enterprises", json={"name": "X", "roles": ["bank"], "prefix": "86.1"}, headers=gov())
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["field"] == "body.prefix"
    reserved = client.post("/v1/enterprises", json={"name": "X", "roles": ["bank"], "prefix": "88.0.0"}, headers=gov())
    assert reserved.status_code == 422


def test_duplicate_prefix_409(client: TestClient) -> None:
    create_enterprise(client, prefix="88.3.5")
    resp = client.post(
        "/v1/enterprises", json={"name": "Y", "roles": ["manufacturer"], "prefix": "88.3.5"}, headers=gov()
    )
    assert resp.status_code == 409
    assert "88.3.5" in resp.json()["detail"]


def test_unknown_enterprise_404(client: TestClient) -> None:
    assert client.get("/v1/enterprises/999").status_code == 404
    assert client.get("/v1/enterprises/abc").status_code == 422


def test_malformed_json_422(client: TestClient) -> None:
    resp = client.post("/v1/enterprises", content=b"{not json", headers={**gov(), "Content-Type": "application/json"})
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["field"] == "body"
