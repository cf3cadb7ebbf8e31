"""PriceIndex joins the deployment: at its ``CONTRACT_NAMES`` position as the admin's nonce on a new chain; added
at the admin's current nonce to a chain deployed before it existed (whose admin has transacted since), recorded
in ``network.json``."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from api.chain import ChainClient, contract_address, deploy_contracts_with
from contracts import CONTRACT_NAMES, load_artifact
from ledger.network import init_network, load_network, record_contracts

eth_tester = pytest.importorskip("eth_tester")


def _chain() -> tuple[ChainClient, str]:
    from web3 import EthereumTesterProvider, Web3

    backend = eth_tester.PyEVMBackend()
    w3 = Web3(EthereumTesterProvider(eth_tester.EthereumTester(backend)))
    return ChainClient(w3), str(backend.account_keys[0])


def _is_price_index(client: ChainClient, address: str, registry: str) -> bool:
    pi = client.w3.eth.contract(address=address, abi=load_artifact("PriceIndex")["abi"])
    return pi.functions.enterpriseRegistry().call() == registry and pi.functions.PRICE_PUBLISHER().call() == 128


def test_a_new_chain_gets_price_index_at_its_position_in_contract_names() -> None:
    client, key = _chain()
    admin = Account.from_key(key).address
    addrs = deploy_contracts_with(client, key)
    assert CONTRACT_NAMES.index("PriceIndex") >= 4  # after the contracts of the previous release
    assert addrs["PriceIndex"] == contract_address(admin, CONTRACT_NAMES.index("PriceIndex"))
    assert _is_price_index(client, addrs["PriceIndex"], addrs["EnterpriseRegistry"])
    assert deploy_contracts_with(client, key) == addrs  # idempotent


def test_an_older_chain_gets_price_index_at_the_admins_current_nonce() -> None:
    client, key = _chain()
    admin = Account.from_key(key).address
    w3 = client.w3
    for nonce, name in enumerate(CONTRACT_NAMES[:4]):  # the contracts of the previous release
        art = load_artifact(name)
        args = [[admin]] if name == "EnterpriseRegistry" else [contract_address(admin, 0)]
        client.send(key, None, data=w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"]).constructor(
            *args).data_in_transaction)
        assert w3.eth.get_code(contract_address(admin, nonce))
    client.send(key, None, to=Account.create().address, value=1)  # the admin funded an enterprise: nonce 4 used
    addrs = deploy_contracts_with(client, key)
    # the contracts added since that release follow at the admin's nonces 5, 6, … in CONTRACT_NAMES order
    nonce = 5 + CONTRACT_NAMES[4:].index("PriceIndex")
    assert addrs["PriceIndex"] == contract_address(admin, nonce) != contract_address(
        admin, CONTRACT_NAMES.index("PriceIndex"))
    assert _is_price_index(client, addrs["PriceIndex"], addrs["EnterpriseRegistry"])
    assert addrs["ReceivableToken"] == contract_address(admin, 3)
    block = w3.eth.block_number
    moved = {name: addrs[name] for name in CONTRACT_NAMES[4:]}  # every added contract (WarehouseReceipt too)
    assert deploy_contracts_with(client, key, known=moved) == addrs
    assert w3.eth.block_number == block  # with the recorded addresses: nothing sent again


def test_network_json_records_a_moved_address(tmp_path: Path) -> None:
    spec = init_network(tmp_path / "net", validators=1, rpc_base_port=None, p2p_base_port=None)
    assert spec.price_index == contract_address(spec.admin_address, CONTRACT_NAMES.index("PriceIndex"))
    moved = contract_address(spec.admin_address, 99)
    again = record_contracts(spec.data_dir, {"PriceIndex": moved})
    assert again.price_index == moved == load_network(spec.data_dir).price_index
    assert again.receivable_token == spec.receivable_token


def test_without_a_chain_bodies_are_checked_then_503(client) -> None:
    from tests.api.conftest import auth, create_enterprise

    publisher = create_enterprise(client, roles=["price_publisher"], name="Mysteel Price Centre")
    assert publisher["roles"] == ["price_publisher"]
    key = auth(publisher["api_key"])
    r = client.post("/v1/price-index", headers=key, json={"day": "2026-11-31", "prices": [
        {"grade": "S355MC", "currency": "CNY", "price_per_tonne": "4125.50"}]})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body.day"
    r = client.post("/v1/price-index", headers=key, json={"day": "2026-11-30", "prices": [
        {"grade": "S355MC", "currency": "CNY", "price_per_tonne": "4125.50"}]})
    assert r.status_code == 503 and "TRACELEDGER_RPC_URL" in r.text
    assert client.get("/v1/price-index/S355MC").status_code == 503
    r = client.get("/v1/price-index/S355MC", params={"currency": "XAU"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "query.currency"
