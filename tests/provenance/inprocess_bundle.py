"""A real provenance bundle built in process, in about a second: the project's Ledger (py-evm, QBFT headers
sealed by 3 of 4 validator keys) runs the real EnterpriseRegistry and AnchorRegistry; a mill anchors a batch
holding its coil certificate; the bundle is assembled from the node's own JSON-RPC answers (``dispatch``),
exactly as ``GET /v1/provenance/{id}/bundle`` assembles it from a network.

Blocks: 1 deploys both registries; 2 registers the mill (and a rival) and funds the mill and an outsider;
3 holds the mill's ``anchor(root, 3, meta)``; 4 holds the outsider's ``anchor`` of a forged root, which reverts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi import encode
from eth_keys import keys
from eth_utils import function_signature_to_4byte_selector as selector
from eth_utils import keccak, to_checksum_address

from contracts import load_artifact
from ledger.chain import Ledger
from ledger.node import contract_address
from ledger.rpc import dispatch
from provenance.canonical import canonicalize
from provenance.merkle import hash_leaf, inclusion_proof, root_from_leaf_hashes
from provenance.registry_state import enterprise_proof_slots
from provenance.signing import sign_record
from provenance.verify import ANCHOR_SELECTOR
from tests.ledger.helpers import CHAIN_ID, FUNDED, FUNDED_KEY, VALIDATORS, build_and_commit, make_genesis, sign_tx

SAMPLES = Path(__file__).resolve().parents[2] / "provenance" / "samples"
MILL_KEY = keys.PrivateKey(keccak(b"mill"))
RIVAL_KEY = keys.PrivateKey(keccak(b"rival"))
OUTSIDER_KEY = keys.PrivateKey(keccak(b"outsider"))
IDENT = "88.1.1/HK52791-CNW24-118734"
META = b"\x5a" * 32


@dataclass
class Built:
    """The bundle, the trust roots an auditor holds, and the pieces a test needs to forge variants."""

    bundle: dict[str, Any]
    validators: list[str]
    anchor_registry: str
    enterprise_registry: str
    forged_anchor: dict[str, Any]  # the outsider's reverted anchor (block 4) of ``forged_record``
    forged_block: dict[str, Any]
    forged_record: dict[str, Any]

    def trust(self) -> dict[str, Any]:
        return {"validators": self.validators, "anchor_registry": self.anchor_registry,
                "enterprise_registry": self.enterprise_registry}


class _Ctx:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger


def _rpc(ctx: _Ctx, method: str, *params: Any) -> Any:
    answer = dispatch(ctx, {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    assert "error" not in answer, answer
    return answer["result"]


def _block(ctx: _Ctx, number: int) -> dict[str, Any]:
    raw = _rpc(ctx, "eth_getBlockByNumber", hex(number), True)
    keep = ("parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot", "logsBloom",
            "difficulty", "number", "gasLimit", "gasUsed", "timestamp", "extraData", "mixHash", "nonce",
            "baseFeePerGas", "withdrawalsRoot", "hash", "transactions")
    block = {k: raw[k] for k in keep}
    block["receipts"] = []
    for tx in block["transactions"]:
        rc = _rpc(ctx, "eth_getTransactionReceipt", tx["hash"])
        block["receipts"].append({k: rc[k] for k in ("transactionHash", "transactionIndex", "status",
                                                     "cumulativeGasUsed", "logsBloom", "type")}
                                 | {"logs": [{k: lg[k] for k in ("address", "topics", "data")} for lg in rc["logs"]]})
    return block


def _certificate_record(key: keys.PrivateKey, document: str) -> dict[str, Any]:
    digest = hashlib.sha256(document.encode()).digest()
    return {"identifier": IDENT, "kind": "coil_certificate", "document": document,
            "record_digest": "0x" + digest.hex(), "chain_id": CHAIN_ID,
            "signature": "0x" + sign_record(key.to_bytes(), IDENT, "coil_certificate", digest, CHAIN_ID).hex(),
            "signer": key.public_key.to_checksum_address(),
            "enterprise": {"prefix": "88.1.1", "name": "mill", "address": key.public_key.to_checksum_address()}}


def build(tmp_path: Path) -> Built:
    """Run the four blocks on a fresh Ledger under ``tmp_path`` and assemble the certificate's bundle."""
    ledger = Ledger(tmp_path / "node", make_genesis())
    ctx = _Ctx(ledger)
    try:
        registry = to_checksum_address(contract_address(FUNDED, 0))
        anchors = to_checksum_address(contract_address(FUNDED, 1))

        def code(name: str) -> bytes:
            return bytes.fromhex(load_artifact(name)["bytecode"].removeprefix("0x"))

        def to(addr: str, nonce: int, data: bytes, key: keys.PrivateKey = FUNDED_KEY, value: int = 0) -> Any:
            return sign_tx(key, nonce, to=bytes.fromhex(addr[2:]), value=value, gas=1_000_000, data=data)

        build_and_commit(ledger, [
            sign_tx(FUNDED_KEY, 0, to=None, value=0, gas=5_000_000,
                    data=code("EnterpriseRegistry") + encode(["address[]"], [[to_checksum_address(FUNDED)]])),
            sign_tx(FUNDED_KEY, 1, to=None, value=0, gas=5_000_000,
                    data=code("AnchorRegistry") + encode(["address"], [registry]))])
        register = selector("registerEnterprise(address,string,uint32,string)")
        mill, outsider = MILL_KEY.public_key.to_checksum_address(), OUTSIDER_KEY.public_key.to_checksum_address()
        build_and_commit(ledger, [
            to(registry, 2, register + encode(["address", "string", "uint32", "string"], [mill, "mill", 1, "88.1.1"])),
            to(registry, 3, register + encode(["address", "string", "uint32", "string"],
                                             [RIVAL_KEY.public_key.to_checksum_address(), "rival", 2, "88.1.2"])),
            to(mill, 4, b"", value=10**18), to(outsider, 5, b"", value=10**18)])
        document = canonicalize(json.loads((SAMPLES / "s355mc_coil_nw24-118734.json").read_text())).decode()
        record = _certificate_record(MILL_KEY, document)
        leaves = [hash_leaf(bytes.fromhex(record["record_digest"][2:])), hash_leaf(b"\x01" * 32),
                  hash_leaf(b"\x02" * 32)]
        root = root_from_leaf_hashes(leaves)
        anchor = selector("anchor(bytes32,uint64,bytes32)")
        assert anchor == ANCHOR_SELECTOR
        build_and_commit(ledger, [to(anchors, 0, anchor + root + (3).to_bytes(32, "big") + META, key=MILL_KEY)])
        # the forged certificate: carbon changed, re-signed by an outsider, "anchored" by a reverted transaction
        forged_doc = document.replace('"Value":"0.', '"Value":"9.', 1)
        assert forged_doc != document
        forged = _certificate_record(OUTSIDER_KEY, forged_doc)
        forged_root = hash_leaf(bytes.fromhex(forged["record_digest"][2:]))
        forged["proof"] = {"root": "0x" + forged_root.hex(), "leaf_index": 0, "tree_size": 1, "path": []}
        build_and_commit(ledger, [to(anchors, 0, anchor + forged_root + (1).to_bytes(32, "big") + META,
                                     key=OUTSIDER_KEY)])
        blocks = [_block(ctx, 3), _block(ctx, 4)]
        assert blocks[0]["receipts"][0]["status"] == "0x1" and blocks[1]["receipts"][0]["status"] == "0x0"
        record["proof"] = {"root": "0x" + root.hex(), "leaf_index": 0, "tree_size": 3,
                           "path": ["0x" + p.hex() for p in inclusion_proof(leaves, 0)]}
        first = _rpc(ctx, "eth_getProof", registry, [hex(s) for s in enterprise_proof_slots("88.1.1", None)], "0x3")
        owner = "0x" + int(first["storageProof"][0]["value"], 16).to_bytes(20, "big").hex()
        proof = _rpc(ctx, "eth_getProof", registry, [hex(s) for s in enterprise_proof_slots("88.1.1", owner)], "0x3")
        key = "hdl:" + IDENT
        bundle = {
            "format": "traceledger-provenance-bundle/1", "identifier": IDENT, "key": key,
            "generated_at": "2026-11-30T12:00:00+00:00",
            "lineage": {"nodes": [{"key": key, "identifier": IDENT, "epc": key, "level": 0, "label": "coil",
                                   "records": [IDENT]}], "edges": []},
            "records": [record],
            "anchors": [{"root": "0x" + root.hex(), "size": 3, "metadata_digest": "0x" + META.hex(),
                         "tx_hash": blocks[0]["transactions"][0]["hash"], "block_number": 3,
                         "block_hash": blocks[0]["hash"], "anchor_registry": anchors}],
            "registry_proofs": [{"prefix": "88.1.1", "block_number": 3, "proof": proof}],
            "blocks": [blocks[0]],
        }
        forged_anchor = {"root": "0x" + forged_root.hex(), "size": 1, "metadata_digest": "0x" + META.hex(),
                         "tx_hash": blocks[1]["transactions"][0]["hash"], "block_number": 4,
                         "block_hash": blocks[1]["hash"], "anchor_registry": anchors}
        return Built(bundle, [to_checksum_address(v) for v in VALIDATORS], anchors, registry, forged_anchor,
                     blocks[1], forged)
    finally:
        ledger.close()
