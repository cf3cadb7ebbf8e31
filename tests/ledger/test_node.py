"""Node admission checks (check_transaction) on a Node built from a config dict, without running it."""

from __future__ import annotations

import pytest
from eth.vm.forks.shanghai.transactions import ShanghaiTransactionBuilder
from eth_account import Account

from ledger.node import Node, contract_address
from ledger.rpc import RpcError, dispatch
from tests.ledger.helpers import (
    CHAIN_ID,
    FUNDED,
    FUNDED_KEY,
    GWEI,
    POOR_KEY,
    RECIPIENT,
    SORTED_KEYS,
    STRANGER_KEY,
    VALIDATORS,
    build_and_commit,
    free_port,
    make_genesis,
    sign_raw,
    sign_tx,
)


@pytest.fixture
def node(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("0x" + SORTED_KEYS[0].to_bytes().hex())
    config = {
        "name": "validator-1",
        "data_dir": str(tmp_path / "data"),
        "key_file": str(key_file),
        "genesis": make_genesis().to_json(),
        "p2p": {"host": "127.0.0.1", "port": free_port()},
        "rpc": {"host": "127.0.0.1", "port": free_port()},
        "peers": [],
        "observers": [],
        "permissioning": {"registry": None},
    }
    built = Node(config)
    yield built
    built.ledger.close()


def refused(node: Node, tx) -> RpcError:
    with pytest.raises(RpcError) as info:
        node.check_transaction(tx)
    return info.value


def test_node_wiring(node):
    assert node.address == VALIDATORS[0]
    assert node.ledger.height == 0
    assert node.ledger.genesis.chain_id == CHAIN_ID
    assert node.genesis.alloc[FUNDED] > 0


def test_unknown_account_not_permitted(node):
    err = refused(node, sign_tx(STRANGER_KEY, 0, value=0))
    assert err.code == -32007
    assert "not permitted" in err.message
    assert STRANGER_KEY.public_key.to_checksum_address() in err.message


def test_funded_genesis_account_accepted(node):
    node.check_transaction(sign_tx(FUNDED_KEY, 0))
    node.check_transaction(sign_tx(FUNDED_KEY, 5))  # a future nonce is admitted (it waits in the pool)


def test_nonce_too_low(node):
    build_and_commit(node.ledger, [sign_tx(FUNDED_KEY, 0), sign_tx(FUNDED_KEY, 1)])
    err = refused(node, sign_tx(FUNDED_KEY, 1, value=7))
    assert err.code == -32000
    assert "nonce too low" in err.message and "next nonce 2" in err.message
    node.check_transaction(sign_tx(FUNDED_KEY, 2))


def test_insufficient_funds(node):
    err = refused(node, sign_tx(POOR_KEY, 0, value=0))
    assert err.code == -32000
    assert "insufficient funds" in err.message
    assert "balance 1000" in err.message


def test_insufficient_funds_for_value(node):
    err = refused(node, sign_tx(FUNDED_KEY, 0, value=10**30))
    assert "insufficient funds" in err.message


@pytest.mark.parametrize("chain_id", [1, CHAIN_ID + 1])
def test_wrong_chain_id(node, chain_id):
    err = refused(node, sign_tx(FUNDED_KEY, 0, chain_id=chain_id))
    assert err.code == -32000
    assert f"invalid chain id {chain_id}" in err.message and str(CHAIN_ID) in err.message


def test_legacy_transaction_without_chain_id(node):
    raw = Account.sign_transaction(
        {"nonce": 0, "to": "0x" + RECIPIENT.hex(), "value": 1, "gas": 21_000, "gasPrice": 2 * GWEI},
        FUNDED_KEY.to_bytes(),
    ).raw_transaction
    err = refused(node, ShanghaiTransactionBuilder.decode(bytes(raw)))
    assert err.code == -32000 and "invalid chain id None" in err.message


def test_legacy_eip155_transaction_accepted(node):
    raw = Account.sign_transaction(
        {"nonce": 0, "to": "0x" + RECIPIENT.hex(), "value": 1, "gas": 21_000, "gasPrice": 2 * GWEI,
         "chainId": CHAIN_ID},
        FUNDED_KEY.to_bytes(),
    ).raw_transaction
    node.check_transaction(ShanghaiTransactionBuilder.decode(bytes(raw)))


def test_gas_above_block_limit(node):
    err = refused(node, sign_tx(FUNDED_KEY, 0, gas=node.ledger.head.gas_limit + 1))
    assert "exceeds block gas limit" in err.message


def test_fee_below_base_fee(node):
    err = refused(node, sign_tx(FUNDED_KEY, 0, max_fee=GWEI // 2))
    assert "below base fee" in err.message


def test_submit_through_rpc_pools_and_counts_pending(node):
    raw = sign_raw(FUNDED_KEY, 0)
    answer = dispatch(node, {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction",
                             "params": ["0x" + raw.hex()]})
    assert "result" in answer, answer
    assert len(node.pool) == 1
    assert node.pending_nonce(FUNDED) == 1
    found = dispatch(node, {"jsonrpc": "2.0", "id": 2, "method": "eth_getTransactionByHash",
                            "params": [answer["result"]]})["result"]
    assert found["hash"] == answer["result"] and found["blockNumber"] is None
    refusal = dispatch(node, {"jsonrpc": "2.0", "id": 3, "method": "eth_sendRawTransaction",
                              "params": ["0x" + sign_raw(STRANGER_KEY, 0, value=0).hex()]})
    assert refusal["error"]["code"] == -32007
    assert len(node.pool) == 1


def test_contract_address():
    # the well-known CREATE address of 0x6ac7ea33f8831ea9dcc53393aaa88b25a785dbf0 at nonce 0
    sender = bytes.fromhex("6ac7ea33f8831ea9dcc53393aaa88b25a785dbf0")
    assert contract_address(sender, 0).hex() == "cd234a471b72ba2f1ccf0a70fcaba648a5eecd8d"
