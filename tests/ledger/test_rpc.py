"""JSON-RPC methods answered by ``dispatch`` against a real Ledger with committed, sealed blocks."""

from __future__ import annotations

import warnings

import pytest
from eth_utils import keccak, to_checksum_address

from ledger.chain import Ledger
from ledger.node import contract_address
from ledger.rpc import dispatch, make_rpc_app
from provenance.qbft_header import block_hash_from_rpc_block, decode_extra_data, recover_seal_signers_from_rpc_block
from tests.ledger.helpers import (
    CHAIN_ID,
    FUNDED,
    FUNDED_BALANCE,
    FUNDED_KEY,
    RECIPIENT,
    SORTED_KEYS,
    STRANGER,
    VALIDATORS,
    build_and_commit,
    make_genesis,
    sign_raw,
    sign_tx,
)

ROUND = 1
TRANSFER_VALUE = 12_345
TOPIC_A = keccak(b"topic A")
TOPIC_B = keccak(b"topic B")

#: PUSH1 42, PUSH1 0, MSTORE, PUSH1 32, PUSH1 0, RETURN: returns uint256 42
RUNTIME_42 = bytes.fromhex("602a60005260206000f3")
#: PUSH1 0, PUSH1 0, REVERT: reverts without data
RUNTIME_REVERT = bytes.fromhex("60006000fd")
#: stores 42 at memory 0 then REVERT(0, 32): reverts with 32 bytes of data
RUNTIME_REVERT_DATA = bytes.fromhex("602a60005260206000fd")


def runtime_log1(topic: bytes) -> bytes:
    """MSTORE(0, 42); LOG1(offset 0, size 32, topic); STOP."""
    return bytes.fromhex("602a600052") + b"\x7f" + topic + bytes.fromhex("60206000a100")


def init_code(runtime: bytes) -> bytes:
    """Init code returning ``runtime``: PUSH1 len, DUP1, PUSH1 11, PUSH1 0, CODECOPY, PUSH1 0, RETURN."""
    assert len(runtime) < 256
    return bytes([0x60, len(runtime)]) + bytes.fromhex("80600b6000396000f3") + runtime


ADDR_42 = contract_address(FUNDED, 0)
ADDR_REVERT = contract_address(FUNDED, 2)
ADDR_REVERT_DATA = contract_address(FUNDED, 3)
ADDR_LOG_A = contract_address(FUNDED, 4)
ADDR_LOG_B = contract_address(FUNDED, 5)


def hx(value: bytes) -> str:
    return "0x" + value.hex()


def cs(value: bytes) -> str:
    return to_checksum_address(value)


class Ctx:
    """The minimal NodeContext the RPC methods need."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.submitted: list = []

    def submit_transaction(self, tx) -> None:
        self.submitted.append(tx)

    def pending_nonce(self, sender: bytes) -> int:
        return 1000 + sender[0]

    def peer_count(self) -> int:
        return 3


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Block 1: deploys and a transfer; block 2: calls emitting logs and one reverting call."""
    ledger = Ledger(tmp_path_factory.mktemp("rpc") / "node", make_genesis())
    deploy = dict(to=None, value=0, gas=200_000)
    block1 = [
        sign_tx(FUNDED_KEY, 0, data=init_code(RUNTIME_42), **deploy),
        sign_tx(FUNDED_KEY, 1, value=TRANSFER_VALUE),
        sign_tx(FUNDED_KEY, 2, data=init_code(RUNTIME_REVERT), **deploy),
        sign_tx(FUNDED_KEY, 3, data=init_code(RUNTIME_REVERT_DATA), **deploy),
        sign_tx(FUNDED_KEY, 4, data=init_code(runtime_log1(TOPIC_A)), **deploy),
        sign_tx(FUNDED_KEY, 5, data=init_code(runtime_log1(TOPIC_B)), **deploy),
    ]
    call = dict(value=0, gas=100_000)
    block2 = [
        sign_tx(FUNDED_KEY, 6, to=ADDR_LOG_A, **call),
        sign_tx(FUNDED_KEY, 7, to=ADDR_LOG_B, **call),
        sign_tx(FUNDED_KEY, 8, to=ADDR_REVERT_DATA, **call),
        sign_tx(FUNDED_KEY, 9, to=ADDR_LOG_A, **call),
    ]
    build_and_commit(ledger, block1, round_=ROUND)
    build_and_commit(ledger, block2, round_=0, proposer=VALIDATORS[1])
    ctx = Ctx(ledger)
    ctx.block1, ctx.block2 = block1, block2
    yield ctx
    ledger.close()


def call(ctx, method: str, *params, req_id: int = 1):
    answer = dispatch(ctx, {"jsonrpc": "2.0", "id": req_id, "method": method, "params": list(params)})
    assert answer["jsonrpc"] == "2.0" and answer["id"] == req_id
    assert "error" not in answer, answer
    return answer["result"]


def error(ctx, method: str, *params) -> dict:
    answer = dispatch(ctx, {"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)})
    assert "result" not in answer, answer
    return answer["error"]


# ------------------------------------------------------------------ simple reads
def test_chain_id_and_net_version(chain):
    assert call(chain, "eth_chainId") == hex(CHAIN_ID)
    assert call(chain, "net_version") == str(CHAIN_ID)
    assert call(chain, "net_peerCount") == "0x3"
    assert call(chain, "web3_clientVersion").startswith("traceledger/")


def test_block_number_follows_commits(tmp_path):
    ledger = Ledger(tmp_path / "n", make_genesis())
    try:
        ctx = Ctx(ledger)
        assert call(ctx, "eth_blockNumber") == "0x0"
        build_and_commit(ledger, [sign_tx(FUNDED_KEY, 0)])
        assert call(ctx, "eth_blockNumber") == "0x1"
    finally:
        ledger.close()


def test_get_block_by_number_is_verifiable(chain):
    block = call(chain, "eth_getBlockByNumber", "0x1", False)
    header = chain.ledger.header_at(1)
    assert block["number"] == "0x1"
    assert block["hash"] == hx(header.hash)
    assert block["hash"] == hx(block_hash_from_rpc_block(block))
    assert block["parentHash"] == hx(chain.ledger.genesis_hash)
    assert block["miner"] == cs(VALIDATORS[0])
    assert block["transactions"] == [hx(tx.hash) for tx in chain.block1]
    extra = decode_extra_data(bytes.fromhex(block["extraData"][2:]))
    assert extra.round == ROUND and len(extra.seals) == 3
    assert recover_seal_signers_from_rpc_block(block) == [
        cs(k.public_key.to_canonical_address()) for k in SORTED_KEYS[:3]]
    assert call(chain, "eth_getBlockByHash", block["hash"], False) == block


def test_get_block_round_zero_and_latest(chain):
    block = call(chain, "eth_getBlockByNumber", "latest", True)
    assert block["number"] == "0x2"
    assert block["hash"] == hx(block_hash_from_rpc_block(block))
    assert decode_extra_data(bytes.fromhex(block["extraData"][2:])).round == 0
    assert [tx["hash"] for tx in block["transactions"]] == [hx(tx.hash) for tx in chain.block2]
    assert block["transactions"][1]["transactionIndex"] == "0x1"
    assert call(chain, "eth_getBlockByNumber", "earliest", False)["hash"] == hx(chain.ledger.genesis_hash)
    assert call(chain, "eth_getBlockTransactionCountByNumber", "0x2") == "0x4"


def test_get_block_beyond_head_is_null(chain):
    assert call(chain, "eth_getBlockByNumber", "0x3", False) is None
    assert call(chain, "eth_getBlockByNumber", "0x100", False) is None
    assert call(chain, "eth_getBlockByHash", hx(b"\x42" * 32), False) is None


def test_validators_by_block_number(chain):
    assert call(chain, "qbft_getValidatorsByBlockNumber", "0x1") == [cs(v) for v in VALIDATORS]


# ------------------------------------------------------------------ transactions and receipts
def test_transfer_receipt(chain):
    transfer = chain.block1[1]
    receipt = call(chain, "eth_getTransactionReceipt", hx(transfer.hash))
    assert receipt["status"] == "0x1"
    assert receipt["gasUsed"] == "0x5208"
    assert int(receipt["cumulativeGasUsed"], 16) > 21_000  # a deployment precedes it in the block
    assert receipt["transactionIndex"] == "0x1"
    assert receipt["blockNumber"] == "0x1"
    assert receipt["blockHash"] == hx(chain.ledger.header_at(1).hash)
    assert receipt["from"] == cs(FUNDED) and receipt["to"] == cs(RECIPIENT)
    assert receipt["contractAddress"] is None
    assert receipt["logs"] == []
    assert receipt["type"] == "0x2"


def test_deploy_and_failed_call_receipts(chain):
    deploy = call(chain, "eth_getTransactionReceipt", hx(chain.block1[0].hash))
    assert deploy["status"] == "0x1"
    assert deploy["contractAddress"] == cs(ADDR_42)
    assert deploy["to"] is None
    reverted = call(chain, "eth_getTransactionReceipt", hx(chain.block2[2].hash))
    assert reverted["status"] == "0x0"
    gas_used = [int(call(chain, "eth_getTransactionReceipt", hx(tx.hash))["gasUsed"], 16) for tx in chain.block2]
    assert sum(gas_used) == chain.ledger.header_at(2).gas_used


def test_unknown_transaction_is_null(chain):
    assert call(chain, "eth_getTransactionReceipt", hx(b"\x01" * 32)) is None
    assert call(chain, "eth_getTransactionByHash", hx(b"\x01" * 32)) is None


def test_get_transaction_by_hash(chain):
    tx = chain.block1[1]
    got = call(chain, "eth_getTransactionByHash", hx(tx.hash))
    assert got["hash"] == hx(tx.hash)
    assert got["from"] == cs(FUNDED)
    assert got["to"] == cs(RECIPIENT)
    assert got["value"] == hex(TRANSFER_VALUE)
    assert got["nonce"] == "0x1"
    assert got["gas"] == hex(21_000)
    assert got["input"] == "0x"
    assert got["type"] == "0x2"
    assert got["chainId"] == hex(CHAIN_ID)
    assert got["blockNumber"] == "0x1"
    assert got["blockHash"] == hx(chain.ledger.header_at(1).hash)
    assert got["transactionIndex"] == "0x1"
    assert got["maxFeePerGas"] == hex(2 * 10**9)
    assert got["r"] == hex(tx.r) and got["s"] == hex(tx.s) and got["yParity"] == hex(tx.y_parity)
    deploy = call(chain, "eth_getTransactionByHash", hx(chain.block1[0].hash))
    assert deploy["to"] is None and deploy["input"].endswith(RUNTIME_42.hex())


def test_balance_and_transaction_count(chain):
    assert call(chain, "eth_getBalance", cs(RECIPIENT)) == hex(TRANSFER_VALUE)
    assert call(chain, "eth_getBalance", cs(RECIPIENT), "0x0") == "0x0"
    assert call(chain, "eth_getBalance", cs(FUNDED), "earliest") == hex(FUNDED_BALANCE)
    assert int(call(chain, "eth_getBalance", cs(FUNDED), "latest"), 16) < FUNDED_BALANCE
    assert call(chain, "eth_getBalance", cs(STRANGER)) == "0x0"
    assert call(chain, "eth_getTransactionCount", cs(FUNDED)) == "0xa"
    assert call(chain, "eth_getTransactionCount", cs(FUNDED), "0x1") == "0x6"
    assert call(chain, "eth_getTransactionCount", cs(FUNDED), "0x0") == "0x0"
    assert call(chain, "eth_getTransactionCount", cs(FUNDED), "pending") == hex(1000 + FUNDED[0])
    # lowercase addresses are accepted too
    assert call(chain, "eth_getBalance", "0x" + RECIPIENT.hex()) == hex(TRANSFER_VALUE)


def test_send_raw_transaction(chain):
    raw = sign_raw(FUNDED_KEY, 10)
    before = len(chain.submitted)
    assert call(chain, "eth_sendRawTransaction", hx(raw)) == hx(keccak(raw))
    assert len(chain.submitted) == before + 1 and chain.submitted[-1].hash == keccak(raw)
    err = error(chain, "eth_sendRawTransaction", hx(raw[:-5]))
    assert err["code"] == -32602 and "invalid transaction" in err["message"]
    assert len(chain.submitted) == before + 1


# ------------------------------------------------------------------ contracts
def test_get_code(chain):
    assert call(chain, "eth_getCode", cs(ADDR_42)) == hx(RUNTIME_42)
    assert call(chain, "eth_getCode", cs(ADDR_LOG_A)) == hx(runtime_log1(TOPIC_A))
    assert call(chain, "eth_getCode", cs(ADDR_42), "0x0") == "0x"
    assert call(chain, "eth_getCode", cs(RECIPIENT)) == "0x"


def test_eth_call_returns_42(chain):
    result = call(chain, "eth_call", {"to": cs(ADDR_42), "data": "0x"}, "latest")
    assert result == hx((42).to_bytes(32, "big"))
    assert int(result, 16) == 42
    # from an explicit sender, and against the block where it was deployed
    assert call(chain, "eth_call", {"from": cs(STRANGER), "to": cs(ADDR_42)}, "0x1") == result
    # before deployment there is no code: empty output
    assert call(chain, "eth_call", {"to": cs(ADDR_42)}, "0x0") == "0x"


def test_eth_call_revert_without_data(chain):
    err = error(chain, "eth_call", {"to": cs(ADDR_REVERT), "data": "0x"}, "latest")
    assert err["code"] in (3, -32000)
    assert err["message"] == "execution reverted"


def test_eth_call_revert_with_data(chain):
    err = error(chain, "eth_call", {"to": cs(ADDR_REVERT_DATA)}, "latest")
    assert err["code"] == 3
    assert err["message"] == "execution reverted"
    assert err["data"] == hx((42).to_bytes(32, "big"))


def test_estimate_gas(chain):
    assert call(chain, "eth_estimateGas", {"from": cs(FUNDED), "to": cs(RECIPIENT), "value": "0x1"}) == hex(21_000)
    err = error(chain, "eth_estimateGas", {"to": cs(ADDR_REVERT)})
    assert err["message"] == "execution reverted"


def test_storage_at_empty_slot(chain):
    assert call(chain, "eth_getStorageAt", cs(ADDR_42), "0x0") == hx(b"\x00" * 32)


# ------------------------------------------------------------------ logs
def _logs(chain, **flt):
    return call(chain, "eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest", **flt})


def test_get_logs_by_address(chain):
    logs = _logs(chain, address=cs(ADDR_LOG_A))
    assert len(logs) == 2
    assert {entry["transactionHash"] for entry in logs} == {hx(chain.block2[0].hash), hx(chain.block2[3].hash)}
    for entry in logs:
        assert entry["address"] == cs(ADDR_LOG_A)
        assert entry["topics"] == [hx(TOPIC_A)]
        assert entry["data"] == hx((42).to_bytes(32, "big"))
        assert entry["blockNumber"] == "0x2"
        assert entry["blockHash"] == hx(chain.ledger.header_at(2).hash)
    assert [entry["logIndex"] for entry in logs] == ["0x0", "0x2"]
    assert [entry["transactionIndex"] for entry in logs] == ["0x0", "0x3"]
    # lowercase and list forms of the address filter
    assert _logs(chain, address=["0x" + ADDR_LOG_A.hex()]) == logs


def test_get_logs_by_topic(chain):
    only_b = _logs(chain, topics=[hx(TOPIC_B)])
    assert len(only_b) == 1
    assert only_b[0]["address"] == cs(ADDR_LOG_B)
    assert only_b[0]["logIndex"] == "0x1"
    assert len(_logs(chain, topics=[[hx(TOPIC_A), hx(TOPIC_B)]])) == 3
    assert len(_logs(chain, topics=[None])) == 3
    assert len(_logs(chain)) == 3
    assert _logs(chain, address=cs(ADDR_LOG_A), topics=[hx(TOPIC_B)]) == []
    assert _logs(chain, topics=[hx(keccak(b"nothing"))]) == []
    # a second topic position that no log has
    assert _logs(chain, topics=[hx(TOPIC_A), hx(TOPIC_A)]) == []


def test_get_logs_block_range_and_hash(chain):
    assert call(chain, "eth_getLogs", {"fromBlock": "0x0", "toBlock": "0x1"}) == []
    block2 = hx(chain.ledger.header_at(2).hash)
    assert len(call(chain, "eth_getLogs", {"blockHash": block2})) == 3
    assert len(call(chain, "eth_getLogs", {"blockHash": block2, "address": cs(ADDR_LOG_B)})) == 1


# ------------------------------------------------------------------ errors
def test_unknown_method(chain):
    err = error(chain, "eth_mining")
    assert err["code"] == -32601
    assert "eth_mining" in err["message"]


@pytest.mark.parametrize(
    ("method", "params", "name"),
    [
        ("eth_getBalance", ["not-an-address"], "address"),
        ("eth_getBalance", [], "address"),
        ("eth_getBalance", ["0x" + "11" * 20, "0xzz"], "block"),
        ("eth_getBlockByNumber", [], "block"),
        ("eth_getBlockByNumber", ["12"], "block"),
        ("eth_getTransactionReceipt", ["0x123"], "hash"),
        ("eth_getTransactionByHash", [12], "hash"),
        ("eth_getStorageAt", ["0x" + "11" * 20, "nope"], "slot"),
        ("eth_call", [{"to": "0x1234"}], "to"),
        ("eth_call", [{"to": "0x" + "11" * 20, "data": "0x123"}], "data"),
        ("eth_sendRawTransaction", ["zz"], "signedTransaction"),
        ("eth_feeHistory", ["ten", "latest"], "blockCount"),
    ],
)
def test_invalid_params(chain, method, params, name):
    err = error(chain, method, *params)
    assert err["code"] == -32602
    assert name in err["message"]


def test_invalid_filter_and_call_objects(chain):
    assert error(chain, "eth_getLogs", "x")["code"] == -32602
    assert error(chain, "eth_call", "x")["code"] == -32602


@pytest.mark.parametrize("request_", ["x", 5, [], {"id": 1}, {"id": 1, "method": 5}, None])
def test_malformed_request(chain, request_):
    answer = dispatch(chain, request_)
    assert answer["error"]["code"] == -32600
    assert answer["id"] is None


def test_params_must_be_a_list(chain):
    answer = dispatch(chain, {"jsonrpc": "2.0", "id": 4, "method": "eth_blockNumber", "params": {"a": 1}})
    assert answer["error"]["code"] == -32602 and answer["id"] == 4


def test_extra_methods_and_internal_errors(chain):
    def boom(ctx, params):
        raise RuntimeError("kaput")

    answer = dispatch(chain, {"jsonrpc": "2.0", "id": 1, "method": "x_boom"}, {"x_boom": boom})
    assert answer["error"]["code"] == -32603 and "kaput" in answer["error"]["message"]
    answer = dispatch(chain, {"jsonrpc": "2.0", "id": 2, "method": "x_hi"}, {"x_hi": lambda ctx, p: "hi"})
    assert answer["result"] == "hi"


def test_notification_gets_no_answer(chain):
    assert dispatch(chain, {"jsonrpc": "2.0", "method": "eth_blockNumber"}) is None


def test_http_app(chain):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette warns that its TestClient prefers httpx2
        from starlette.testclient import TestClient
    client = TestClient(make_rpc_app(chain))
    one = client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).json()
    assert one == {"jsonrpc": "2.0", "id": 1, "result": "0x2"}
    batch = client.post("/", json=[
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
    ]).json()
    assert batch[0]["result"] == hex(CHAIN_ID) and batch[1]["error"]["code"] == -32601
    assert client.post("/", content=b"{not json").json()["error"]["code"] == -32700
    assert client.get("/healthz").json() == {"status": "ok", "block": 2, "peers": 3}


def test_fee_history_shape(chain):
    result = call(chain, "eth_feeHistory", "0x2", "latest", [25, 75])
    assert result["oldestBlock"] == "0x1"
    assert result["baseFeePerGas"][:2] == [hex(chain.ledger.header_at(n).base_fee_per_gas) for n in (1, 2)]
    assert len(result["baseFeePerGas"]) == 3
    assert result["gasUsedRatio"] == [chain.ledger.header_at(n).gas_used / chain.ledger.header_at(n).gas_limit
                                      for n in (1, 2)]
    assert result["reward"] == [["0x0", "0x0"], ["0x0", "0x0"]]


def test_fee_history_ends_with_next_base_fee(chain):
    result = call(chain, "eth_feeHistory", "0x1", "latest", [])
    following = chain.ledger.chain.create_header_from_parent(chain.ledger.head)
    assert result["baseFeePerGas"][-1] == hex(following.base_fee_per_gas)


def test_fee_history_zero_blocks(chain):
    result = call(chain, "eth_feeHistory", "0x0", "latest", [])
    assert result["gasUsedRatio"] == []
