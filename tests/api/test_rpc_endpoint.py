"""The anchoring/verification path over a real HTTP JSON-RPC endpoint (optional).

Runs only when ``TRACELEDGER_TEST_RPC_URL`` and ``TRACELEDGER_TEST_FUNDED_KEY`` (hex key of a
funded account) are set, e.g. a ganache dev node or the QBFT network. A fresh admin account is
funded from that key so the registries are its nonce-0/1 deployments. On a QBFT node the
``finality_seals`` check must pass; on any other node it must fail cleanly with a detail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from api.chain import ChainClient, deploy_contracts
from api.main import create_app
from tests.api.conftest import auth, create_enterprise, make_settings, sample

RPC_URL = os.environ.get("TRACELEDGER_TEST_RPC_URL")
FUNDED_KEY = os.environ.get("TRACELEDGER_TEST_FUNDED_KEY")

pytestmark = pytest.mark.skipif(
    not (RPC_URL and FUNDED_KEY), reason="set TRACELEDGER_TEST_RPC_URL and TRACELEDGER_TEST_FUNDED_KEY"
)


@pytest.fixture
def rpc_app(tmp_path: Path) -> Iterator[TestClient]:
    assert RPC_URL and FUNDED_KEY
    admin = Account.create()
    funder = ChainClient.from_url(RPC_URL)
    funder.transfer(FUNDED_KEY, admin.address, 100 * 10**18)
    addrs = deploy_contracts(RPC_URL, admin.key)
    settings = make_settings(
        f"sqlite:///{(tmp_path / 'api.db').as_posix()}",
        tmp_path,
        chain_id=None,
        rpc_url=RPC_URL,
        admin_private_key="0x" + admin.key.hex(),
        enterprise_registry_address=addrs["EnterpriseRegistry"],
        anchor_registry_address=addrs["AnchorRegistry"],
        fund_wei=10**18,
        anchoring_enabled=False,
    )
    with TestClient(create_app(settings)) as c:
        yield c


def test_anchor_and_verify_over_http(rpc_app: TestClient) -> None:
    ent = create_enterprise(rpc_app)
    assert ent["registered_on_chain"] is True
    r = rpc_app.post("/v1/coils/certificates", json=sample(), headers=auth(ent["api_key"]))
    assert r.status_code == 201, r.text
    worker = rpc_app.app.state.tl.worker  # type: ignore[attr-defined]
    assert len(worker.run_once()) == 1, worker.last_error
    body = rpc_app.get(f"/v1/verify/{r.json()['identifier']}").json()
    checks = {c["name"]: c for c in body["checks"]}
    for name in ("record_digest", "signature", "inclusion_proof", "anchored_on_chain"):
        assert checks[name]["ok"], checks[name]
    seals = checks["finality_seals"]
    assert seals["detail"]
    if seals["ok"]:
        assert body["verified"] is True and body["anchor"]["seals"] >= 1 and body["anchor"]["validators"]
    health = rpc_app.get("/healthz").json()
    assert health["rpc"]["ok"] is True and health["rpc"]["block_number"] > 0
