"""Append-only audit log of authenticated writes (issue 12): who, what, when, outcome; own rows vs auditors."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import auth, create_enterprise, sample


def flush(client: TestClient) -> None:
    client.app.state.tl  # noqa: B018 - the app is running
    for mw in client.app.user_middleware:  # type: ignore[attr-defined]
        writer = mw.kwargs.get("writer")
        if writer is not None:
            writer.flush()


def test_writes_are_audited_and_scoped(client: TestClient) -> None:
    mill = create_enterprise(client)
    other = create_enterprise(client, name="Other Mill AG", prefix="88.1.2")
    auditor = create_enterprise(client, name="TÜV Audit", roles=["auditor"], prefix="88.1.3")
    h = auth(mill["api_key"])
    assert client.post("/v1/coils/certificates", json=sample(), headers=h).status_code == 201
    assert client.post("/v1/coils/certificates", json={"Certificate": {}}, headers=h).status_code == 422
    assert client.post("/v1/coils/certificates", json=sample(), headers=auth(other["api_key"])).status_code == 201
    assert client.post("/v1/coils/certificates", json=sample(), headers=auth("wrong-key")).status_code == 401
    flush(client)

    mine = client.get("/v1/audit", headers=h).json()["entries"]
    assert [(e["method"], e["route"], e["status"], e["outcome"]) for e in mine] == [
        ("POST", "/v1/coils/certificates", 422, "refused"), ("POST", "/v1/coils/certificates", 201, "ok")]
    assert all(e["actor"] == "enterprise" and e["enterprise_id"] == mill["id"] for e in mine)
    assert all(e["at"].endswith("Z") for e in mine)

    seen: list[dict[str, Any]] = client.get("/v1/audit", headers=auth(auditor["api_key"])).json()["entries"]
    assert {e["enterprise_id"] for e in seen} >= {mill["id"], other["id"], None}  # None: governance writes
    assert sum(e["actor"] == "governance" for e in seen) == 3  # the three POST /v1/enterprises
    only = client.get("/v1/audit", params={"enterprise_id": other["id"]}, headers=auth(auditor["api_key"]))
    assert [e["enterprise_id"] for e in only.json()["entries"]] == [other["id"]]
    # the unauthenticated write is not an authenticated write: not logged, not attributed to anyone
    assert len(seen) == 3 + 3
    assert client.get("/v1/audit").status_code == 401


def test_paging(client: TestClient) -> None:
    mill = create_enterprise(client)
    h = auth(mill["api_key"])
    for _ in range(5):
        client.post("/v1/coils/certificates", json=sample(), headers=h)
    flush(client)
    first = client.get("/v1/audit", params={"limit": 2}, headers=h).json()
    second = client.get("/v1/audit", params={"limit": 2, "before_id": first["next_before_id"]}, headers=h).json()
    ids = [e["id"] for e in first["entries"] + second["entries"]]
    assert len(ids) == 4 and ids == sorted(ids, reverse=True)
