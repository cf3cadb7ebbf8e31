"""The bank check's one-round-trip confirmation reads at the highest *final* block of the finality model.

Under ``confirmations:N`` a fact read at the head could still be reorganised away, so a bank told "not financed"
at the head could be lied to; the batch must be pinned to ``head - N + 1``."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode
from web3 import Web3

from api.chain import ChainUnavailable
from api.chain_index import reads
from api.chain_index.reads import ViewCall, read_in_one_round_trip

ABI = [{"type": "function", "name": "balanceOf", "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "uint256"}], "outputs": [{"name": "", "type": "uint256"}]}]


class _Provider:
    def __init__(self) -> None:
        self.batches: list[list[tuple[Any, Any]]] = []

    def make_batch_request(self, requests: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
        self.batches.append(requests)
        tag = requests[0][1][0]
        return [{"result": {"number": tag, "timestamp": "0x1"}}] + [
            {"result": "0x" + encode(["uint256"], [int(tag, 16)]).hex()} for _ in requests[1:]]


class _Chain:
    def __init__(self, head: int, finality: str) -> None:
        self.head, self.finality = head, finality
        self.w3 = Web3()
        self.w3.provider = _Provider()  # type: ignore[assignment]

    def rpc(self, method: str, params: list[Any]) -> str:
        assert method == "eth_blockNumber"
        return hex(self.head)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    reads._CONFIRMED.clear()


def _call(chain: _Chain) -> ViewCall:
    token = chain.w3.eth.contract(address="0x" + "11" * 20, abi=ABI)
    return ViewCall(token, "balanceOf", (7,))


@pytest.mark.parametrize(("finality", "head", "pinned"), [("qbft", 100, 100), ("confirmations:1", 100, 100),
                                                          ("confirmations:6", 100, 95)])
def test_batch_is_pinned_to_the_final_block(finality: str, head: int, pinned: int) -> None:
    chain = _Chain(head, finality)
    block, results = read_in_one_round_trip(chain, [_call(chain)])  # type: ignore[arg-type]
    sent = chain.w3.provider.batches[0]  # type: ignore[attr-defined]
    assert sent[0] == ("eth_getBlockByNumber", [hex(pinned), False])
    assert sent[1][1][1] == hex(pinned), "the eth_call must be pinned to the final block, not the head"
    assert block["number"] == hex(pinned) and results == [(pinned,)]


def test_nothing_final_yet_is_unavailable_not_a_head_read() -> None:
    chain = _Chain(3, "confirmations:6")
    with pytest.raises(ChainUnavailable, match="no block is final"):
        read_in_one_round_trip(chain, [_call(chain)])  # type: ignore[arg-type]
    assert chain.w3.provider.batches == []  # type: ignore[attr-defined]
