"""Behaviour with an unreachable JSON-RPC endpoint: clear 503s and clean failing checks, never 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.api.conftest import auth, create_enterprise, make_settings, sample

DEAD = "http://127.0.0.1:9"  # discard port: connection refused


@pytest.fixture
def dead_chain_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(
        f"sqlite:///{(tmp_path / 'api.db').as_posix()}",
        tmp_path,
        rpc_url=DEAD,
        chain_id=None,
        enterprise_registry_address="0x" + "11" * 20,
        anchor_registry_address="0x" + "22" * 20,
        admin_private_key="0x" + "33" * 32,
        anchoring_enabled=False,
    )
    with TestClient(create_app(settings)) as c:
        yield c


def test_rpc_down(dead_chain_client: TestClient) -> None:
    c = dead_chain_client
    health = c.get("/healthz").json()
    assert health["status"] == "degraded" and health["rpc"]["ok"] is False
    assert "unreachable" in health["rpc"]["error"]
    assert "bootstrap" in (health["anchoring"]["last_error"] or "")
    # registration needs the chain: 503 and no enterprise left behind
    resp = c.post(
        "/v1/enterprises",
        json={"name": "M", "roles": ["manufacturer"]},
        headers={"Authorization": "Bearer gov-token-for-tests"},
    )
    assert resp.status_code == 503 and "unreachable" in resp.json()["detail"]
    assert c.get("/v1/enterprises/2").status_code == 404


def test_ingest_without_chain_id_is_503(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{(tmp_path / 'api.db').as_posix()}", tmp_path, rpc_url=DEAD, chain_id=None)
    with TestClient(create_app(settings)) as c:
        ent = create_enterprise(c)
        resp = c.post("/v1/coils/certificates", json=sample(), headers=auth(ent["api_key"]))
        assert resp.status_code == 503 and "eth_chainId" in resp.json()["detail"]
        assert c.get("/v1/identifiers/88.1.1/HK52791-CNW24-118734").status_code == 404
