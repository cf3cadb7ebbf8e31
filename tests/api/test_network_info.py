"""``GET /v1/network``: chain id, contracts, finality model, validator RPC URLs."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.test_chain_anchoring import chain_app, evm  # noqa: F401 - fixtures


def test_network_without_a_chain_says_why(client: TestClient) -> None:
    r = client.get("/v1/network")
    assert r.status_code == 200
    body = r.json()
    assert body["chain_id"] is None and body["finality_model"] == "qbft"
    assert "TRACELEDGER_RPC_URL" in body["error"]
    assert set(body["contracts"]) == {"EnterpriseRegistry", "AnchorRegistry", "WorkTicket", "ReceivableToken",
                                     "WarehouseReceipt", "PriceIndex"}


def test_network_lists_chain_id_and_contracts(chain_app: TestClient, evm) -> None:  # noqa: F811
    _chain, _key, addrs = evm
    body = chain_app.get("/v1/network").json()
    assert body["chain_id"] == 131277322940537  # eth-tester's chain id
    assert body["contracts"]["AnchorRegistry"] == addrs["AnchorRegistry"]
    assert body["contracts"]["EnterpriseRegistry"] == addrs["EnterpriseRegistry"]
    assert isinstance(body["block_number"], int) and body["block_number"] >= 2
    assert body["validators"] == []  # eth-tester is no QBFT chain: no validator set to report
