"""The chain benchmark's pieces: its contract really stores and logs, the ceiling measurement runs the same
signed transactions, percentiles and the Caliper-style table."""

from __future__ import annotations

import math
import os
import time

from eth.vm.forks.shanghai.transactions import ShanghaiTransactionBuilder
from eth_account import Account
from eth_utils import to_checksum_address

from ledger.bench_chain import ANCHOR_INIT, BenchResult, interleave, markdown, measure_ceiling, percentile, sign_calls
from ledger.chain import GenesisConfig, Ledger, encode_block
from ledger.node import contract_address

CHAIN_ID = 881088


def _setup(n_senders: int = 3):
    keys = ["0x" + os.urandom(32).hex() for _ in range(n_senders)]
    deployer = "0x" + os.urandom(32).hex()
    alloc = {bytes.fromhex(Account.from_key(k).address[2:]): 10**24 for k in [*keys, deployer]}
    validators = (bytes.fromhex("aa" * 20),)
    genesis = GenesisConfig(chain_id=CHAIN_ID, validators=validators, alloc=alloc, timestamp=int(time.time()) - 50)
    deploy = Account.sign_transaction({"type": 2, "chainId": CHAIN_ID, "nonce": 0, "value": 0, "gas": 200_000,
                                       "data": ANCHOR_INIT, "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 0},
                                      deployer)
    contract = to_checksum_address(contract_address(bytes.fromhex(Account.from_key(deployer).address[2:]), 0))
    return keys, genesis, bytes(deploy.raw_transaction), contract


def test_anchor_contract_stores_and_logs(tmp_path) -> None:
    keys, genesis, deploy_raw, contract = _setup()
    calls = interleave(sign_calls(CHAIN_ID, keys, 6, contract))
    assert len(calls) == 6
    ledger = Ledger(tmp_path / "chain", genesis)
    try:
        block = ledger.build_block([ShanghaiTransactionBuilder.decode(deploy_raw)], genesis.validators[0])
        ledger.commit(encode_block(block), 0, [])
        txs = [ShanghaiTransactionBuilder.decode(raw) for _, raw in calls]
        block = ledger.build_block(txs, genesis.validators[0])
        ledger.commit(encode_block(block), 0, [])
        receipts = block.get_receipts(ledger.chain.chaindb)
        assert all(r.state_root == b"\x01" for r in receipts)
        assert all(len(r.logs) == 1 for r in receipts)
        state = ledger.chain.get_vm(ledger.head).state
        key = int.from_bytes(txs[0].data[:32], "big")
        assert state.get_storage(bytes.fromhex(contract[2:]), key) == int.from_bytes(txs[0].data[32:], "big")
    finally:
        ledger.close()


def test_ceiling_measures_the_same_transactions() -> None:
    keys, genesis, deploy_raw, contract = _setup()
    calls = [raw for _, raw in interleave(sign_calls(CHAIN_ID, keys, 40, contract))]
    rate = measure_ceiling(genesis.to_json(), deploy_raw, calls, block_txs=20)
    assert 1 < rate < 100_000


def test_percentile_and_table() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 99) == 1.99
    assert math.isnan(percentile([], 50))
    table = markdown(BenchResult(4, 1.0, 100, succ=99, fail=1, send_rate=200, throughput=180.4, latency_p50=0.5,
                                 latency_p95=0.9, latency_p99=1.2, ceiling=600, ratio=0.3))
    header, _, row = table.splitlines()
    for column in ("succ", "fail", "send rate", "throughput", "p50 / p95 / p99", "py-evm ceiling"):
        assert column in header
    assert "| 99 | 1 | 200 | 180 | 0.50 / 0.90 / 1.20 | 600 | 0.30 |" in row
