"""EnterpriseRegistry entries proven from sealed state (issue 20): the real contract on a real Ledger, EIP-1186
``eth_getProof`` answers from ledger/rpc.py, verified by the pure provenance/registry_state.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector as selector
from eth_utils import keccak, to_checksum_address

from contracts import load_artifact
from ledger.chain import Ledger
from ledger.node import contract_address
from ledger.rpc import dispatch
from provenance.registry_state import check_enterprise_state, enterprise_proof_slots, verify_storage_proof
from provenance.verify import Reason
from tests.ledger.helpers import FUNDED, FUNDED_KEY, build_and_commit, make_genesis, sign_tx

MILL = "0x" + "a1" * 20
RIVAL = "0x" + "b2" * 20
LONG_NAME = "Nordstahl Walzwerk GmbH & Co. KG, Werk Süd, Kaltwalzwerk und Beizlinie 3"  # > 31 bytes


class Ctx:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger


def call(ctx: Ctx, method: str, *params: Any) -> Any:
    answer = dispatch(ctx, {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    assert "error" not in answer, answer
    return answer["result"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Block 1 deploys EnterpriseRegistry([FUNDED]); block 2 registers the mill (long name) and a rival;
    block 3 deactivates the rival."""
    ledger = Ledger(tmp_path_factory.mktemp("registry") / "node", make_genesis())
    code = bytes.fromhex(load_artifact("EnterpriseRegistry")["bytecode"].removeprefix("0x"))
    registry = to_checksum_address(contract_address(FUNDED, 0))
    build_and_commit(ledger, [sign_tx(FUNDED_KEY, 0, to=None, value=0, gas=5_000_000,
                                      data=code + encode(["address[]"], [[to_checksum_address(FUNDED)]]))])

    def register(nonce: int, account: str, name: str, prefix: str) -> Any:
        data = selector("registerEnterprise(address,string,uint32,string)") + encode(
            ["address", "string", "uint32", "string"], [account, name, 1, prefix])
        return sign_tx(FUNDED_KEY, nonce, to=bytes.fromhex(registry[2:]), value=0, gas=1_000_000, data=data)

    build_and_commit(ledger, [register(1, MILL, LONG_NAME, "88.1.1"), register(2, RIVAL, "rival", "88.1.2")])
    deactivate = selector("setActive(address,bool)") + encode(["address", "bool"], [RIVAL, False])
    build_and_commit(ledger, [sign_tx(FUNDED_KEY, 3, to=bytes.fromhex(registry[2:]), value=0, gas=200_000,
                                      data=deactivate)])
    ctx = Ctx(ledger)
    ctx.registry = registry  # type: ignore[attr-defined]
    yield ctx
    ledger.close()


def proof(ctx: Any, prefix: str, block: int) -> tuple[str, dict[str, Any]]:
    """(stateRoot, eth_getProof answer) as a bundle builder gets them: owner first, then the entry's slots."""
    first = call(ctx, "eth_getProof", ctx.registry, [hex(s) for s in enterprise_proof_slots(prefix, None)], hex(block))
    owner = "0x" + int(first["storageProof"][0]["value"], 16).to_bytes(20, "big").hex()
    slots = enterprise_proof_slots(prefix, owner)
    second = call(ctx, "eth_getProof", ctx.registry, [hex(s) for s in slots], hex(block))
    head = int(second["storageProof"][1]["value"], 16)
    answer = call(ctx, "eth_getProof", ctx.registry, [hex(s) for s in enterprise_proof_slots(prefix, owner, head)],
                  hex(block))
    root = call(ctx, "eth_getBlockByNumber", hex(block), False)["stateRoot"]
    return root, answer


def test_owner_name_and_active_flag_proven_from_state(chain: Any) -> None:
    root, answer = proof(chain, "88.1.1", 3)
    v = check_enterprise_state(root, chain.registry, answer, "88.1.1")
    assert v.ok, v.detail
    assert v.facts["owner"] == to_checksum_address(MILL) and v.facts["name"] == LONG_NAME and v.facts["roles"] == 1
    # the slots agree with eth_getStorageAt (the storage layout the module documents)
    for item in answer["storageProof"]:
        assert call(chain, "eth_getStorageAt", chain.registry, item["key"], "0x3") == "0x" + int(
            item["value"], 16).to_bytes(32, "big").hex()


def test_inactive_enterprise_and_unknown_prefix_are_not_owners(chain: Any) -> None:
    root, answer = proof(chain, "88.1.2", 2)
    assert check_enterprise_state(root, chain.registry, answer, "88.1.2").ok  # active at block 2
    root, answer = proof(chain, "88.1.2", 3)
    v = check_enterprise_state(root, chain.registry, answer, "88.1.2")
    assert v.reason is Reason.OWNER_UNPROVEN and "inactive" in v.detail
    root, answer = proof(chain, "88.1.9", 3)
    assert check_enterprise_state(root, chain.registry, answer, "88.1.9").reason is Reason.OWNER_UNPROVEN


def test_forged_proofs_are_refused(chain: Any) -> None:
    root, answer = proof(chain, "88.1.1", 3)
    # the proof of the mill's entry passed off for another prefix: the recomputed slot has no proof
    assert check_enterprise_state(root, chain.registry, answer, "88.1.2").reason is Reason.MALFORMED
    # claimed values are never read: a changed value with its proof still proves the true value
    lie = copy.deepcopy(answer)
    lie["storageProof"][0]["value"] = "0x" + "b2" * 20
    assert check_enterprise_state(root, chain.registry, lie, "88.1.1").facts["owner"] == to_checksum_address(MILL)
    # a tampered node, another state root, another account
    bad = copy.deepcopy(answer)
    node = bad["storageProof"][0]["proof"][-1]
    bad["storageProof"][0]["proof"][-1] = node[:-2] + ("00" if node[-2:] != "00" else "11")
    assert check_enterprise_state(root, chain.registry, bad, "88.1.1").reason is Reason.MALFORMED
    other_root = call(chain, "eth_getBlockByNumber", "0x1", False)["stateRoot"]
    assert check_enterprise_state(other_root, chain.registry, answer, "88.1.1").reason is not None
    assert check_enterprise_state(root, "0x" + "cd" * 20, answer, "88.1.1").reason is Reason.MALFORMED
    bad = copy.deepcopy(answer)
    bad["accountProof"] = bad["accountProof"][:-1]
    assert check_enterprise_state(root, chain.registry, bad, "88.1.1").reason is Reason.MALFORMED


def test_get_proof_of_an_absent_slot_proves_zero(chain: Any) -> None:
    answer = call(chain, "eth_getProof", chain.registry, ["0x" + keccak(b"nothing here").hex()], "latest")
    item = answer["storageProof"][0]
    assert item["value"] == "0x0"
    assert verify_storage_proof(bytes.fromhex(answer["storageHash"][2:]), int(item["key"], 16), item["proof"]) == 0
    err = dispatch(chain, {"jsonrpc": "2.0", "id": 1, "method": "eth_getProof",
                           "params": [chain.registry, ["0x1"] * 65, "latest"]})["error"]
    assert err["code"] == -32602 and "storageKeys" in err["message"]
