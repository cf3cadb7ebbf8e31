"""Funding that fits the admin's purse, and a failed on-chain bootstrap that /healthz reports (issue 11)."""

from __future__ import annotations

from pathlib import Path

import eth_tester
from eth_account import Account
from fastapi.testclient import TestClient

from api.chain import DEFAULT_FUND_WEI, ChainClient, deploy_contracts_with
from api.main import create_app
from tests.api.conftest import gov, make_settings


def _poor_chain(balance_wei: int) -> tuple[ChainClient, str, dict[str, str]]:
    """An eth-tester chain whose contract admin holds only ``balance_wei`` (as a ganache account might)."""
    from web3 import EthereumTesterProvider, Web3

    backend = eth_tester.PyEVMBackend()
    w3 = Web3(EthereumTesterProvider(eth_tester.EthereumTester(backend)))
    rich = str(backend.account_keys[0])
    admin = Account.create()
    bare = ChainClient(w3)
    bare.transfer(rich, admin.address, balance_wei)
    addrs = deploy_contracts_with(bare, admin.key)
    client = ChainClient(w3, enterprise_registry=addrs["EnterpriseRegistry"], anchor_registry=addrs["AnchorRegistry"])
    return client, admin.key.hex(), addrs


def _app(tmp_path: Path, chain: ChainClient, admin_key: str, addrs: dict[str, str], **overrides) -> TestClient:
    settings = make_settings(
        f"sqlite:///{(tmp_path / 'api.db').as_posix()}", tmp_path, chain_id=None, admin_private_key=admin_key,
        enterprise_registry_address=addrs["EnterpriseRegistry"], anchor_registry_address=addrs["AnchorRegistry"],
        anchoring_enabled=False, **overrides)
    return TestClient(create_app(settings, chain=chain))


def test_unset_funding_is_what_the_admin_can_afford(tmp_path: Path) -> None:
    chain, admin_key, addrs = _poor_chain(100 * 10**18)  # 100 ether: far less than 1,000 ether per account
    assert chain.affordable_funding(admin_key) < DEFAULT_FUND_WEI
    with _app(tmp_path, chain, admin_key, addrs, fund_wei=None) as client:
        health = client.get("/healthz")
        assert health.status_code == 200, health.json()
        assert health.json()["bootstrap"] == {"ok": True, "error": None}
        r = client.post("/v1/enterprises", json={"name": "Mill", "roles": ["manufacturer"]},
                        headers=gov())
        assert r.status_code == 201, r.text
        assert 0 < chain.balance(r.json()["address"]) <= 5 * 10**18


def test_failed_bootstrap_makes_healthz_degraded_with_the_reason(tmp_path: Path) -> None:
    chain, admin_key, addrs = _poor_chain(10**18)
    with _app(tmp_path, chain, admin_key, addrs, fund_wei=50 * 10**18) as client:  # more than the admin holds
        health = client.get("/healthz")
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "degraded" and body["bootstrap"]["ok"] is False
        assert body["bootstrap"]["error"].startswith("bootstrap:")
