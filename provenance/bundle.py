"""Offline verification of a provenance bundle (``GET /v1/provenance/{identifier}/bundle``).

Trusts only the validator set given by the auditor (genesis file, network manifest, node.json or
comma-separated addresses). Every check names the place in the bundle it concerns:

* ``records[i].document`` — SHA-256 of the exact canonical document equals ``record_digest``; for
  EPCIS events the GS1 event hash ID recomputed from the event (``epcis-event-hash-generator``)
  equals ``eventHashID`` and the identifier ``…/ev-<hex>``;
* ``records[i].signature`` — the EIP-712 ``Record(identifier, kind, digest)`` signature recovers to
  ``signer``, which is the address of the enterprise owning the identifier's prefix;
* ``records[i].proof`` — the RFC 9162 §2.1.3.2 audit path from ``hash_leaf(digest)`` gives the root;
* ``anchors[j]`` — the root is anchored by a transaction ``AnchorRegistry.anchor(root, size,
  metadataDigest)`` included in the block (transaction hash recomputed from its fields, transactions
  trie root equal to the header's ``transactionsRoot``);
* ``blocks[k].header`` — the QBFT block hash recomputes from the header fields (round 0, no seals);
* ``blocks[k].extraData.commitSeals`` — commit seals recover to ≥ quorum(n) distinct trusted validators;
* ``lineage`` — every record the lineage names is in the bundle and anchored;
* with ``rpc_url``: ``blocks[k].hash`` equals what that validator serves.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rlp
from eth_utils import keccak, to_checksum_address

BUNDLE_FORMAT = "traceledger-provenance-bundle/1"
ANCHOR_SELECTOR = keccak(text="anchor(bytes32,uint64,bytes32)")[:4]
HEADER_KEYS = {
    "parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot", "logsBloom",
    "difficulty", "number", "gasLimit", "gasUsed", "timestamp", "extraData", "mixHash", "nonce",
    "baseFeePerGas", "withdrawalsRoot", "hash", "transactions",
}


@dataclass
class BundleCheck:
    """One check: ``place`` in the bundle, ``ok``, ``detail``."""

    place: str
    ok: bool
    detail: str


def load_validators(spec: str) -> list[str]:
    """Trusted validator addresses from a JSON file (genesis ``{"validators": […]}``, a node.json with
    ``genesis``, or a network manifest with ``validators: [{address}]``) or comma-separated addresses.

    Raises:
        ValueError: nothing usable in ``spec``.
    """
    path = Path(spec)
    if path.is_file():
        data = json.loads(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("genesis"), dict):
            data = data["genesis"]
        vals = data.get("validators") if isinstance(data, dict) else data
        if not isinstance(vals, list):
            raise ValueError(f"{spec}: no 'validators' list")
        out = [v["address"] if isinstance(v, dict) else v for v in vals]
    else:
        out = [a.strip() for a in spec.split(",") if a.strip()]
    if not out:
        raise ValueError("no validator addresses given")
    try:
        return [to_checksum_address(a if a.startswith("0x") else "0x" + a) for a in out]
    except ValueError as exc:
        raise ValueError(f"not an address list: {exc}") from exc


def _b(h: Any) -> bytes:
    if not isinstance(h, str):
        raise ValueError(f"expected a hex string, got {type(h).__name__}")
    return bytes.fromhex(h[2:] if h.startswith("0x") else h)


def _i(h: Any) -> int:
    if isinstance(h, int):
        return h
    return int(h, 16)


def raw_transaction(tx: dict[str, Any]) -> bytes:
    """Signed transaction bytes (legacy, EIP-2930 or EIP-1559 envelope) from its JSON-RPC fields."""
    to = _b(tx["to"]) if tx.get("to") else b""
    t = _i(tx.get("type", "0x0"))
    access = [[_b(a["address"]), [_b(k) for k in a.get("storageKeys", [])]] for a in tx.get("accessList", [])]
    if t == 2:
        fields = [_i(tx["chainId"]), _i(tx["nonce"]), _i(tx["maxPriorityFeePerGas"]), _i(tx["maxFeePerGas"]),
                  _i(tx["gas"]), to, _i(tx["value"]), _b(tx["input"]), access, _i(tx.get("yParity", tx["v"])),
                  _i(tx["r"]), _i(tx["s"])]
        return b"\x02" + rlp.encode(fields)
    if t == 1:
        fields = [_i(tx["chainId"]), _i(tx["nonce"]), _i(tx["gasPrice"]), _i(tx["gas"]), to, _i(tx["value"]),
                  _b(tx["input"]), access, _i(tx.get("yParity", tx["v"])), _i(tx["r"]), _i(tx["s"])]
        return b"\x01" + rlp.encode(fields)
    return rlp.encode([_i(tx["nonce"]), _i(tx["gasPrice"]), _i(tx["gas"]), to, _i(tx["value"]), _b(tx["input"]),
                       _i(tx["v"]), _i(tx["r"]), _i(tx["s"])])


def transactions_root(raws: list[bytes]) -> bytes:
    """Root of the Merkle-Patricia trie ``rlp(index) → raw tx`` (Yellow Paper §4.3)."""
    from trie import HexaryTrie

    t = HexaryTrie({})
    for i, raw in enumerate(raws):
        t[rlp.encode(i)] = raw
    return bytes(t.root_hash)


def verify_bundle(bundle: Any, validators: list[str], *, rpc_url: str | None = None) -> list[BundleCheck]:
    """All checks of a bundle (see module docstring); the bundle verifies iff every check is ok."""
    from provenance.errors import InvalidProof, InvalidSignature
    from provenance.merkle import hash_leaf, verify_inclusion
    from provenance.qbft_header import block_hash_from_rpc_block, quorum, recover_seal_signers_from_rpc_block
    from provenance.signing import recover_record_signer

    checks: list[BundleCheck] = []

    def add(place: str, ok: bool, detail: str) -> None:
        checks.append(BundleCheck(place, ok, detail))

    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        add("format", False, f"not a {BUNDLE_FORMAT} bundle")
        return checks
    trusted = set(validators)
    # ----------------------------------------------------------------- blocks
    good_blocks: dict[int, dict[str, Any]] = {}
    tx_in_block: dict[tuple[int, str], dict[str, Any]] = {}
    for k, block in enumerate(bundle.get("blocks") or []):
        place = f"blocks[{k}]"
        try:
            extra = set(block) - HEADER_KEYS
            if extra:
                raise ValueError(f"unexpected fields {sorted(extra)}")
            number = _i(block["number"])
            recomputed = "0x" + block_hash_from_rpc_block(block).hex()
            if recomputed != str(block["hash"]).lower():
                add(f"{place}.header", False, f"block {number}: header fields hash to {recomputed}, bundle says "
                                              f"{block['hash']}")
                continue
            add(f"{place}.header", True, f"block {number} hash {recomputed} recomputed (QBFT, round 0, no seals)")
            signers = recover_seal_signers_from_rpc_block(block)
            distinct = set(signers)
            outsiders = sorted(distinct - trusted)
            need = quorum(len(trusted))
            if outsiders:
                add(f"{place}.extraData.commitSeals", False, f"seals from non-validators {outsiders}")
                continue
            if len(distinct) != len(signers) or len(distinct) < need:
                add(f"{place}.extraData.commitSeals", False,
                    f"{len(distinct)} distinct validator seals ({len(signers)} seals), quorum is {need}")
                continue
            add(f"{place}.extraData.commitSeals", True, f"{len(distinct)} of {len(trusted)} validators sealed")
            raws = []
            for j, tx in enumerate(block.get("transactions") or []):
                raw = raw_transaction(tx)
                h = "0x" + keccak(raw).hex()
                if h != str(tx.get("hash", "")).lower():
                    raise ValueError(f"transactions[{j}] fields hash to {h}, not {tx.get('hash')}")
                raws.append(raw)
                tx_in_block[(number, h)] = tx
            root = "0x" + transactions_root(raws).hex()
            if root != str(block["transactionsRoot"]).lower():
                add(f"{place}.transactions", False,
                    f"transactions trie root {root} ≠ header {block['transactionsRoot']}")
                continue
            add(f"{place}.transactions", True, f"{len(raws)} transactions reproduce transactionsRoot")
            good_blocks[number] = block
        except (KeyError, ValueError, TypeError, rlp.exceptions.RLPException) as exc:
            add(place, False, f"malformed block: {type(exc).__name__}: {exc}")
    if rpc_url:
        import httpx

        for k, block in enumerate(bundle.get("blocks") or []):
            try:
                r = httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber",
                                              "params": [block["number"], False]}, timeout=15)
                served = (r.json().get("result") or {}).get("hash")
                add(f"blocks[{k}].hash (rpc)", served == block.get("hash"),
                    f"{rpc_url} serves {served} for block {_i(block['number'])}")
            except Exception as exc:  # noqa: BLE001 - report, do not crash
                add(f"blocks[{k}].hash (rpc)", False, f"cannot ask {rpc_url}: {exc}")
    # ----------------------------------------------------------------- anchors
    anchored_roots: set[str] = set()
    for j, a in enumerate(bundle.get("anchors") or []):
        place = f"anchors[{j}]"
        try:
            number = _i(a["block_number"]) if isinstance(a["block_number"], str) else int(a["block_number"])
            block = good_blocks.get(number)
            if block is None:
                add(place, False, f"block {number} is not a verified block of this bundle")
                continue
            if str(block["hash"]).lower() != str(a.get("block_hash", "")).lower():
                add(place, False, f"anchor names block hash {a.get('block_hash')}, block {number} is {block['hash']}")
                continue
            tx = tx_in_block.get((number, str(a.get("tx_hash", "")).lower()))
            if tx is None:
                add(place, False, f"transaction {a.get('tx_hash')} is not in block {number}")
                continue
            data = _b(tx["input"])
            expect = ANCHOR_SELECTOR + _b(a["root"]) + int(a["size"]).to_bytes(32, "big") + _b(a["metadata_digest"])
            if data != expect:
                add(place, False, "transaction input is not anchor(root, size, metadataDigest) of this anchor")
                continue
            if a.get("anchor_registry") and str(tx.get("to", "")).lower() != str(a["anchor_registry"]).lower():
                add(place, False, f"transaction goes to {tx.get('to')}, not AnchorRegistry {a['anchor_registry']}")
                continue
            anchored_roots.add(str(a["root"]).lower())
            add(place, True, f"root {a['root']} anchored by tx {a['tx_hash']} in block {number}")
        except (KeyError, ValueError, TypeError) as exc:
            add(place, False, f"malformed anchor: {type(exc).__name__}: {exc}")
    # ----------------------------------------------------------------- records
    owners: dict[str, str] = {}
    present: dict[str, bool] = {}
    for i, r in enumerate(bundle.get("records") or []):
        place = f"records[{i}]"
        ident = str(r.get("identifier"))
        try:
            doc = r["document"]
            digest = hashlib.sha256(doc.encode("utf-8")).digest()
            if "0x" + digest.hex() != str(r["record_digest"]).lower():
                add(f"{place}.document", False, f"{ident}: document hashes to 0x{digest.hex()}, record_digest is "
                                                f"{r['record_digest']}")
                present[ident] = False
                continue
            if r.get("kind") in ("epcis_event", "epcis_error_declaration"):
                _check_event(json.loads(doc), ident, place, add)
            else:
                add(f"{place}.document", True, f"{ident}: SHA-256 matches record_digest")
            try:
                signer = recover_record_signer(_b(r["signature"]), ident, r["kind"], digest, int(r["chain_id"]))
            except (InvalidSignature, ValueError) as exc:
                add(f"{place}.signature", False, f"{ident}: {exc}")
                present[ident] = False
                continue
            ent = r.get("enterprise") or {}
            prefix = ident.partition("/")[0]
            owner = owners.setdefault(prefix, str(ent.get("address", "")).lower())
            if signer.lower() != str(r.get("signer", "")).lower() or signer.lower() != owner or \
                    ent.get("prefix") != prefix:
                add(f"{place}.signature", False, f"{ident}: signature recovers to {signer}, the record names "
                                                 f"{r.get('signer')} / enterprise {ent.get('prefix')} {owner}")
                present[ident] = False
                continue
            add(f"{place}.signature", True, f"{ident}: EIP-712 signature by {signer} ({ent.get('name')})")
            p = r.get("proof")
            if not p:
                add(f"{place}.proof", False, f"{ident}: no inclusion proof (record not anchored yet)")
                present[ident] = False
                continue
            try:
                verify_inclusion(hash_leaf(digest), int(p["leaf_index"]), int(p["tree_size"]),
                                 [_b(x) for x in p["path"]], _b(p["root"]))
            except (InvalidProof, ValueError, KeyError, TypeError) as exc:
                add(f"{place}.proof", False, f"{ident}: {type(exc).__name__}: {exc}")
                present[ident] = False
                continue
            if str(p["root"]).lower() not in anchored_roots:
                add(f"{place}.proof", False, f"{ident}: root {p['root']} is not anchored by a verified anchor")
                present[ident] = False
                continue
            add(f"{place}.proof", True, f"{ident}: leaf {p['leaf_index']} of {p['tree_size']} → root {p['root']}")
            present[ident] = True
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            add(place, False, f"{ident}: malformed record: {type(exc).__name__}: {exc}")
            present[ident] = False
    # ----------------------------------------------------------------- lineage
    lin = bundle.get("lineage") or {}
    named = [x for n in lin.get("nodes") or [] for x in n.get("records") or []]
    named += [e.get("event") for e in lin.get("edges") or []]
    missing = sorted({str(x) for x in named if x not in present})
    failed = sorted({str(x) for x in named if present.get(x) is False})
    if missing:
        add("lineage", False, f"records named by the lineage are not in the bundle: {missing[:5]}")
    elif failed:
        add("lineage", False, f"lineage records that failed: {failed[:5]}")
    elif not named:
        add("lineage", False, "the lineage names no records")
    else:
        add("lineage", True, f"{len(set(named))} lineage records verified, {len(lin.get('nodes') or [])} nodes")
    return checks


def _check_event(document: dict[str, Any], ident: str, place: str, add: Any) -> None:
    from provenance.epcis import EpcisInvalid, event_hash_ids

    event = document.get("event")
    claimed = document.get("eventHashID")
    wrapper = {"epcisBody": {"eventList": [event]}}
    if "@context" in document:
        wrapper["@context"] = document["@context"]
    try:
        (recomputed,) = event_hash_ids(wrapper)
    except (EpcisInvalid, ValueError) as exc:
        add(f"{place}.document", False, f"{ident}: cannot recompute the event hash ID: {exc}")
        return
    hexpart = recomputed.split(";", 1)[1].split("?", 1)[0]
    if recomputed != claimed or not ident.endswith("-" + hexpart):
        add(f"{place}.document", False, f"{ident}: event hashes to {recomputed}, the record claims {claimed}")
        return
    add(f"{place}.document", True, f"{ident}: SHA-256 matches record_digest; event hash ID {recomputed} recomputed")
