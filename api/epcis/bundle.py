"""Offline provenance bundles: the upstream lineage of a node with every record, inclusion proof,
anchor and QBFT block header needed to check it without the API (``traceledger verify-bundle``)."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlmodel import Session

from api.chain import ChainClient, ChainError, ChainUnavailable
from api.epcis.graph import Node, lineage_detail, lineage_record_ids, records_by_identifier, walk
from api.models import Batch, Enterprise, Record, utc_iso, utcnow
from provenance.crypto_profile import HASH_SHA256, profile_for_hash
from provenance.merkle import hash_leaf, inclusion_proof

BUNDLE_FORMAT = "traceledger-provenance-bundle/1"
HEADER_KEYS = (
    "parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot", "logsBloom",
    "difficulty", "number", "gasLimit", "gasUsed", "timestamp", "extraData", "mixHash", "nonce",
    "baseFeePerGas", "withdrawalsRoot",
)


def _block_header(block: dict[str, Any]) -> dict[str, Any]:
    out = {k: block[k] for k in HEADER_KEYS if k in block}
    out["hash"] = block.get("hash")
    out["transactions"] = block.get("transactions", [])
    return out


def build_bundle(session: Session, node: Node, *, chain: ChainClient | None, depth: int,
                 hash_alg: str = HASH_SHA256) -> dict[str, Any]:
    """Self-contained provenance bundle of the upstream lineage of ``node`` (see ``traceledger verify-bundle``).

    Shape: ``{format, crypto_profile, hash_alg, identifier, key, generated_at, lineage: {nodes, edges}, records:
    [{identifier, kind, document (the exact canonical JSON string), record_digest, signature, signer, chain_id,
    enterprise: {prefix, name, address}, proof: {root, leaf_index, tree_size, path, hash_alg} | null}], anchors:
    [{root, size, metadata_digest, tx_hash, block_number, block_hash, anchor_registry}], validator_changes:
    [{<header fields>, hash}] (the first block of each validator set between genesis and the last anchor block, so
    an auditor who trusts only the genesis validators can follow every add and remove), registry_proofs: [{prefix,
    block_number, proof: eth_getProof answer of the EnterpriseRegistry}] (per prefix and anchor block), blocks:
    [{<header fields>, hash, transactions: [full transaction objects], receipts: [{transactionHash,
    transactionIndex, status, cumulativeGasUsed, logsBloom, type, logs: [{address, topics, data}], …}]}]}``. Blocks
    come from ``eth_getBlockByNumber(n, true)`` and ``eth_getTransactionReceipt``; without a chain (or for pending
    records) anchors/blocks are missing and the verifier says so.
    """
    detail = lineage_detail(session, walk(session, node, direction="upstream", depth=depth))
    ids = lineage_record_ids(session, detail)
    stored = records_by_identifier(session, ids)
    records_out, batches = _bundle_records(session, [stored[i] for i in ids if i in stored], hash_alg)
    anchors, blocks = _anchors_and_blocks(batches, chain)
    needed = {(r["identifier"].partition("/")[0], b.block_number) for r in records_out if r["proof"]
              for b in batches.values() if b.root == r["proof"]["root"] and b.block_number is not None}
    registry_proofs = _registry_proofs(chain, needed, sm2=hash_alg != HASH_SHA256) if chain is not None else []
    validator_changes = _validator_changes(chain, sorted(blocks)) if chain is not None else []
    return {
        "format": BUNDLE_FORMAT, "crypto_profile": profile_for_hash(hash_alg).name, "hash_alg": hash_alg,
        "identifier": node.identifier, "key": node.key, "generated_at": utc_iso(utcnow()),
        "lineage": {
            "nodes": [{"key": n["key"], "identifier": n["identifier"], "epc": n["epc"], "level": n["level"],
                       "label": n["label"], "records": [r["identifier"] for r in n["records"]]}
                      for n in detail["nodes"]],
            "edges": [{"from": e["from"], "to": e["to"], "event": e["event"]["identifier"]} for e in detail["edges"]],
        },
        "records": records_out,
        "anchors": anchors,
        "registry_proofs": registry_proofs,
        "validator_changes": validator_changes,
        "blocks": [blocks[k] for k in sorted(blocks)],
    }


def _bundle_records(session: Session, recs: list[Record], hash_alg: str = HASH_SHA256
                    ) -> tuple[list[dict[str, Any]], dict[int, Batch]]:
    """Bundle entries of ``recs`` (with owner and RFC 9162 inclusion proof when anchored) and their batches."""
    ents: dict[int, Enterprise] = {}
    batches: dict[int, Batch] = {}
    leaves_cache: dict[int, list[bytes]] = {}
    records_out = []
    for rec in recs:
        ent = ents.get(rec.enterprise_id) or session.get(Enterprise, rec.enterprise_id)
        if ent is not None:
            ents[rec.enterprise_id] = ent
        proof = None
        if rec.status == "anchored" and rec.batch_id is not None and rec.leaf_index is not None:
            batch = batches.get(rec.batch_id) or session.get(Batch, rec.batch_id)
            if batch is not None:
                batches[rec.batch_id] = batch
                if rec.batch_id not in leaves_cache:
                    leaves_cache[rec.batch_id] = [hash_leaf(bytes.fromhex(d[2:]), hash_alg)
                                                  for d in batch.leaf_digests]
                path = inclusion_proof(leaves_cache[rec.batch_id], rec.leaf_index, hash_alg=hash_alg)
                proof = {"root": batch.root, "leaf_index": rec.leaf_index, "tree_size": batch.size,
                         "path": ["0x" + p.hex() for p in path], "hash_alg": hash_alg}
        records_out.append({
            "identifier": rec.identifier, "kind": rec.kind, "document": rec.document,
            "record_digest": rec.record_digest, "signature": rec.signature, "signer": rec.signer,
            "chain_id": rec.chain_id,
            "enterprise": {"prefix": ent.prefix, "name": ent.name, "address": ent.address} if ent else None,
            "proof": proof,
        })
    return records_out, batches


def _anchors_and_blocks(batches: dict[int, Batch], chain: ChainClient | None
                        ) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """The anchors of ``batches`` (batch id order) and their blocks by number (``eth_getBlockByNumber(n,
    true)``; a block the chain cannot give is left out, and the offline verifier names it)."""
    anchors = []
    blocks: dict[int, dict[str, Any]] = {}
    contract = getattr(chain, "anchor_registry", None) if chain is not None else None
    registry = getattr(contract, "address", None)
    for b in sorted(batches.values(), key=lambda x: x.id or 0):
        anchors.append({"root": b.root, "size": b.size, "metadata_digest": b.metadata_digest, "tx_hash": b.tx_hash,
                        "block_number": b.block_number, "block_hash": b.block_hash,
                        "anchor_registry": str(registry) if registry else None})
        if chain is not None and b.block_number is not None:
            _add_block(chain, blocks, b.block_number)
    return anchors, blocks


# ---------------------------------------------------------------- evidence for the offline verifier (issue 20)
RECEIPT_KEYS = ("transactionHash", "transactionIndex", "status", "cumulativeGasUsed", "logsBloom", "type")
"""Receipt fields the verifier binds to receiptsRoot (plus ``logs``); nothing unverifiable is shipped."""


def _add_block(chain: ChainClient, blocks: dict[int, dict[str, Any]], number: int) -> None:
    """Add block ``number`` (full transactions and every receipt, in order) to ``blocks`` unless present."""
    if number in blocks:
        return
    try:
        raw = chain.rpc("eth_getBlockByNumber", [hex(number), True])
        if not isinstance(raw, dict):
            return
        block = _block_header(json.loads(json.dumps(raw)))
        receipts = []
        for tx in block["transactions"]:
            rc = chain.rpc("eth_getTransactionReceipt", [tx["hash"]]) or {}
            out = {k: rc.get(k) for k in RECEIPT_KEYS if k in rc}
            out["logs"] = [{"address": lg["address"], "topics": lg["topics"], "data": lg["data"]}
                           for lg in rc.get("logs") or []]
            receipts.append(json.loads(json.dumps(out)))
        block["receipts"] = receipts
    except (ChainError, ChainUnavailable, KeyError, TypeError):
        return
    blocks[number] = block


#: attempts of each eth_getProof call before the bundle is refused with 503 (a transient node error)
PROOF_ATTEMPTS = 3


def _registry_proofs(chain: ChainClient, needed: set[tuple[str, int]], *, sm2: bool = False) -> list[dict[str, Any]]:
    """``[{prefix, block_number, proof}]``: for each (prefix, anchor block), the EIP-1186 ``eth_getProof`` answer
    of the EnterpriseRegistry holding the slots :func:`provenance.registry_state.check_enterprise_state` needs
    (the prefix's owner, then the owner's name, prefix and flags — and on an ``sm`` network, ``sm2``, the owner's
    SM2 key slots; a long name's data slots)."""
    from provenance.registry_state import enterprise_proof_slots

    contract = getattr(chain, "enterprise_registry", None)
    registry = getattr(contract, "address", None)
    out: list[dict[str, Any]] = []
    if not registry:
        return out

    def get_proof(slots: list[int], number: int) -> dict[str, Any]:
        # a busy or failing-over node is retried; a bundle is never handed out silently lacking a proof
        for attempt in range(PROOF_ATTEMPTS):
            try:
                answer = chain.rpc("eth_getProof", [str(registry), [hex(x) for x in slots], hex(number)])
                return json.loads(json.dumps(answer))
            except (ChainError, ChainUnavailable) as exc:
                if attempt == PROOF_ATTEMPTS - 1:
                    raise ChainUnavailable(f"eth_getProof of the enterprise registry at block {number} failed "
                                           f"{PROOF_ATTEMPTS} times ({exc}); the bundle would lack the owner's "
                                           "state proof, try again") from exc
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    for prefix, number in sorted(needed):
        try:
            first = get_proof(enterprise_proof_slots(prefix, None), number)
            owner_word = int(first["storageProof"][0]["value"], 16)
            if owner_word == 0:
                continue  # no owner at that block: the verifier names it, nothing to prove
            owner = "0x" + owner_word.to_bytes(20, "big").hex()
            answer = get_proof(enterprise_proof_slots(prefix, owner, sm2=sm2), number)
            head = int(answer["storageProof"][1]["value"], 16)
            if head & 1:
                answer = get_proof(enterprise_proof_slots(prefix, owner, head, sm2=sm2), number)
        except (KeyError, TypeError, ValueError, IndexError):
            continue  # a malformed answer (e.g. a node without eth_getProof): the verifier names the gap
        out.append({"prefix": prefix, "block_number": number, "proof": answer})
    return out


def _validator_changes(chain: ChainClient, anchor_blocks: list[int]) -> list[dict[str, Any]]:
    """Headers (with seals) of the blocks where the validator set changes on the way from genesis to each of
    ``anchor_blocks``: bisection over ``qbft_getValidatorsByBlockNumber`` between consecutive points whose sets
    differ (a set that changes and changes back between two points needs no evidence: the set in force at each
    anchor block is what the verifier must reach). Empty on a chain without QBFT validator sets."""
    sets: dict[int, tuple[str, ...]] = {}

    def at(number: int) -> tuple[str, ...]:
        if number not in sets:
            sets[number] = tuple(sorted(chain.validators_at(number)))
        return sets[number]

    changes: set[int] = set()

    def find(lo: int, hi: int) -> None:  # at(lo) != at(hi), lo < hi
        if hi == lo + 1:
            changes.add(hi)
            return
        mid = (lo + hi) // 2
        if at(lo) != at(mid):
            find(lo, mid)
        if at(mid) != at(hi):
            find(mid, hi)

    points = [0, *sorted(set(anchor_blocks))]
    try:
        for lo, hi in zip(points, points[1:], strict=False):
            if hi > lo and at(lo) != at(hi):
                find(lo, hi)
        out = []
        for number in sorted(changes):
            raw = chain.rpc("eth_getBlockByNumber", [hex(number), False])
            if isinstance(raw, dict):
                header = {k: raw[k] for k in HEADER_KEYS if k in raw and k not in ("transactions", "receipts")}
                header["hash"] = raw.get("hash")
                out.append(json.loads(json.dumps(header)))
        return out
    except (ChainError, ChainUnavailable):
        return []

