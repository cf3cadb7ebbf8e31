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


def test_sm2_public_key_bound_on_chain_is_proven_at_each_block(tmp_path: Any) -> None:
    """Issue 18: an active enterprise binds its own SM2 key (``setSm2PublicKey``, the registry's last state
    variable); the EIP-1186 proof at a block gives the key bound then (none before, the new one after a rotation),
    and an account that is no active member cannot bind one."""
    from provenance.crypto_profile import sm2_generate_private_key, sm2_public_key
    from provenance.registry_state import sm2_key_slots

    ledger = Ledger(tmp_path / "node", make_genesis())
    code = bytes.fromhex(load_artifact("EnterpriseRegistry")["bytecode"].removeprefix("0x"))
    registry = to_checksum_address(contract_address(FUNDED, 0))
    to = bytes.fromhex(registry[2:])
    build_and_commit(ledger, [sign_tx(FUNDED_KEY, 0, to=None, value=0, gas=5_000_000,
                                      data=code + encode(["address[]"], [[to_checksum_address(FUNDED)]]))])
    me = to_checksum_address(FUNDED)
    build_and_commit(ledger, [sign_tx(FUNDED_KEY, 1, to=to, value=0, gas=1_000_000, data=selector(
        "registerEnterprise(address,string,uint32,string)") + encode(["address", "string", "uint32", "string"],
                                                                     [me, "Mill", 1, "88.1.1"]))])
    keys_ = [sm2_public_key(sm2_generate_private_key()) for _ in range(2)]

    def bind(nonce: int, pub: bytes) -> Any:
        return sign_tx(FUNDED_KEY, nonce, to=to, value=0, gas=200_000, data=selector(
            "setSm2PublicKey(bytes32,bytes32)") + pub[1:33] + pub[33:])

    build_and_commit(ledger, [bind(2, keys_[0])])  # block 3
    build_and_commit(ledger, [bind(3, keys_[1])])  # block 4: rotation
    from eth_keys import keys as eth_keys

    stranger = eth_keys.PrivateKey(keccak(b"stranger"))
    stranger_address = to_checksum_address(stranger.public_key.to_canonical_address())
    fund = sign_tx(FUNDED_KEY, 4, to=bytes.fromhex(stranger_address[2:]), value=10**18, gas=21_000)
    outsider = sign_tx(stranger, 0, to=to, value=0, gas=200_000, data=selector(
        "setSm2PublicKey(bytes32,bytes32)") + keys_[0][1:33] + keys_[0][33:])
    build_and_commit(ledger, [fund, outsider])  # block 5: the stranger's binding reverts (NotActiveMember)
    ctx = Ctx(ledger)
    ctx.registry = registry  # type: ignore[attr-defined]

    def proven(block: int) -> Any:
        slots = enterprise_proof_slots("88.1.1", me, sm2=True)
        assert slots[-2:] == sm2_key_slots(me)
        answer = call(ctx, "eth_getProof", registry, [hex(s) for s in slots], hex(block))
        root = call(ctx, "eth_getBlockByNumber", hex(block), False)["stateRoot"]
        v = check_enterprise_state(root, registry, answer, "88.1.1")
        assert v.ok, v.detail
        return v.facts["sm2_public_key"], answer, root

    assert proven(2)[0] is None
    assert proven(3)[0] == "0x" + keys_[0].hex()
    key4, answer, root = proven(4)
    assert key4 == "0x" + keys_[1].hex()
    # without the SM2 slots no key is proven; a tampered SM2 slot proof is refused, never read as another key
    plain = call(ctx, "eth_getProof", registry, [hex(s) for s in enterprise_proof_slots("88.1.1", me)], "0x4")
    assert "sm2_public_key" not in check_enterprise_state(root, registry, plain, "88.1.1").facts
    bad = copy.deepcopy(answer)
    node = bad["storageProof"][-1]["proof"][-1]
    bad["storageProof"][-1]["proof"][-1] = node[:-2] + ("00" if node[-2:] != "00" else "11")
    assert check_enterprise_state(root, registry, bad, "88.1.1").reason is Reason.MALFORMED
    receipt = call(ctx, "eth_getTransactionReceipt", "0x" + bytes(outsider.hash).hex())
    assert receipt["status"] == "0x0"
    assert call(ctx, "eth_getStorageAt", registry, hex(sm2_key_slots(stranger_address)[0]), "0x5") == "0x" + "00" * 32
    # the x slot agrees with eth_getStorageAt (the layout: the mapping is the contract's slot 16)
    x_slot = hex(sm2_key_slots(me)[0])
    assert call(ctx, "eth_getStorageAt", registry, x_slot, "0x4") == "0x" + keys_[1][1:33].hex()
    ledger.close()
