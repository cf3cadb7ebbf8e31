"""Offline verification of a provenance bundle (``GET /v1/provenance/{identifier}/bundle``).

Trusts only the validator set given by the auditor (genesis file, network manifest, node.json or
comma-separated addresses). Pure: no file or network I/O here (``traceledger verify-bundle`` in
``api/cli/verify_bundle.py`` reads the files and does the optional ``--rpc`` cross-check); every decision is a
check of :mod:`provenance.verify`, the same functions ``GET /v1/verify`` runs. Every check names the place in
the bundle it concerns:

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
* ``lineage`` — every record the lineage names is in the bundle and anchored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from provenance.verify import (
    Reason,
    Verdict,
    check_anchor_call,
    check_block_header,
    check_commit_seals,
    check_event_hash,
    check_inclusion,
    check_record_digest,
    check_record_signature,
    check_transactions,
    hex_int,
)

BUNDLE_FORMAT = "traceledger-provenance-bundle/1"
HEADER_KEYS = {
    "parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot", "logsBloom",
    "difficulty", "number", "gasLimit", "gasUsed", "timestamp", "extraData", "mixHash", "nonce",
    "baseFeePerGas", "withdrawalsRoot", "hash", "transactions",
}


@dataclass
class BundleCheck:
    """One check: ``place`` in the bundle, ``ok``, ``detail``, and the typed ``reason`` of a failure."""

    place: str
    ok: bool
    detail: str
    reason: Reason | None = None


def parse_validators(spec: Any) -> list[str]:
    """Trusted validator addresses from parsed JSON (genesis ``{"validators": […]}``, a node.json with
    ``genesis``, a network manifest with ``validators: [{address}]``, or a list) or a string of
    comma-separated addresses. Returns checksum addresses.

    Raises:
        ValueError: nothing usable in ``spec``.
    """
    if isinstance(spec, str):
        out: list[Any] = [a.strip() for a in spec.split(",") if a.strip()]
    else:
        data = spec
        if isinstance(data, dict) and isinstance(data.get("genesis"), dict):
            data = data["genesis"]
        vals = data.get("validators") if isinstance(data, dict) else data
        if not isinstance(vals, list):
            raise ValueError("no 'validators' list")
        out = [v.get("address") if isinstance(v, dict) else v for v in vals]
    if not out:
        raise ValueError("no validator addresses given")
    try:
        return [to_checksum_address(a if a.startswith("0x") else "0x" + a) for a in out]
    except (ValueError, AttributeError, TypeError) as exc:
        raise ValueError(f"not an address list: {exc}") from exc


def verify_bundle(bundle: Any, validators: list[str], *, anchor_registry: str | None = None) -> list[BundleCheck]:
    """All checks of a bundle (see module docstring); the bundle verifies iff every check is ok.

    Args:
        bundle: the parsed bundle JSON.
        validators: the trusted validator addresses (the only trust root besides ``anchor_registry``).
        anchor_registry: the AnchorRegistry address from the auditor's network file; when None the
            bundle's own ``anchor_registry`` claim is used if present.

    Returns:
        One :class:`BundleCheck` per check, in bundle order (blocks, anchors, records, lineage).
    """
    checks: list[BundleCheck] = []

    def add(place: str, ok: bool, detail: str, reason: Reason | None = None) -> None:
        checks.append(BundleCheck(place, ok, detail, reason))

    def put(place: str, v: Verdict, prefix: str = "") -> bool:
        checks.append(BundleCheck(place, v.ok, prefix + v.detail, v.reason))
        return v.ok

    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        add("format", False, f"not a {BUNDLE_FORMAT} bundle", Reason.MALFORMED)
        return checks
    # ----------------------------------------------------------------- blocks
    good_blocks: dict[int, Mapping[str, Any]] = {}
    tx_in_block: dict[tuple[int, str], Mapping[str, Any]] = {}
    for k, block in enumerate(_list(bundle, "blocks")):
        place = f"blocks[{k}]"
        if not isinstance(block, dict):
            add(place, False, "malformed block: not an object", Reason.MALFORMED)
            continue
        extra = set(block) - HEADER_KEYS
        if extra:
            add(place, False, f"malformed block: unexpected fields {sorted(extra)}", Reason.MALFORMED)
            continue
        header = check_block_header(block)
        if not header.ok and header.reason is Reason.MALFORMED:
            add(place, False, f"malformed block: {header.detail}", Reason.MALFORMED)
            continue
        if not put(f"{place}.header", header):
            continue
        number = int(header.facts["number"])
        if not put(f"{place}.extraData.commitSeals", check_commit_seals(block, validators)):
            continue
        txs = check_transactions(block)
        if not put(f"{place}.transactions", txs):
            continue
        for tx in block.get("transactions") or []:
            tx_in_block[(number, str(tx["hash"]).lower())] = tx
        good_blocks[number] = block
    # ----------------------------------------------------------------- anchors
    anchored_roots: set[str] = set()
    for j, a in enumerate(_list(bundle, "anchors")):
        place = f"anchors[{j}]"
        try:
            number = hex_int(a["block_number"], "block_number")
            block = good_blocks.get(number)
            if block is None:
                add(place, False, f"block {number} is not a verified block of this bundle", Reason.NOT_ANCHORED)
                continue
            if str(block["hash"]).lower() != str(a.get("block_hash", "")).lower():
                add(place, False, f"anchor names block hash {a.get('block_hash')}, block {number} is {block['hash']}",
                    Reason.NOT_ANCHORED)
                continue
            tx = tx_in_block.get((number, str(a.get("tx_hash", "")).lower()))
            if tx is None:
                add(place, False, f"transaction {a.get('tx_hash')} is not in block {number}", Reason.NOT_ANCHORED)
                continue
            registry = anchor_registry or a.get("anchor_registry") or tx.get("to")
            call = check_anchor_call(tx, root=a["root"], size=a["size"], metadata_digest=a["metadata_digest"],
                                     registry=registry)
            if not call.ok:
                put(place, call)
                continue
            anchored_roots.add(str(a["root"]).lower())
            add(place, True, f"root {a['root']} anchored by tx {a['tx_hash']} in block {number}")
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            add(place, False, f"malformed anchor: {type(exc).__name__}: {exc}", Reason.MALFORMED)
    # ----------------------------------------------------------------- records
    owners: dict[str, str] = {}
    present: dict[str, bool] = {}
    for i, r in enumerate(_list(bundle, "records")):
        place = f"records[{i}]"
        ident = str(r.get("identifier")) if isinstance(r, dict) else "?"
        present[ident] = False
        try:
            digest_v = check_record_digest(r["document"], r["record_digest"])
            if not put(f"{place}.document", digest_v, f"{ident}: "):
                continue
            digest: bytes = digest_v.facts["digest"]
            if r.get("kind") in ("epcis_event", "epcis_error_declaration"):
                event = check_event_hash(r["document"], ident)
                if not put(f"{place}.document", event, f"{ident}: "):
                    continue
            ent = r.get("enterprise") or {}
            prefix = ident.partition("/")[0]
            owner = owners.setdefault(prefix, str(ent.get("address", "")).lower())
            sig = check_record_signature(r["signature"], ident, r["kind"], digest, r["chain_id"],
                                         owners=[owner] if owner and ent.get("prefix") == prefix else [])
            if sig.ok and sig.facts["signer"].lower() != str(r.get("signer", "")).lower():
                sig = Verdict("signature", False, f"signature recovers to {sig.facts['signer']}, the record names "
                                                  f"{r.get('signer')}", Reason.WRONG_SIGNER)
            if not put(f"{place}.signature", sig, f"{ident}: "):
                continue
            p = r.get("proof")
            if not p:
                add(f"{place}.proof", False, f"{ident}: no inclusion proof (record not anchored yet)",
                    Reason.NOT_ANCHORED)
                continue
            incl = check_inclusion(digest, p["leaf_index"], p["tree_size"], p["path"], p["root"])
            if not incl.ok:
                put(f"{place}.proof", incl, f"{ident}: ")
                continue
            if str(p["root"]).lower() not in anchored_roots:
                add(f"{place}.proof", False, f"{ident}: root {p['root']} is not anchored by a verified anchor",
                    Reason.NOT_ANCHORED)
                continue
            add(f"{place}.proof", True, f"{ident}: leaf {p['leaf_index']} of {p['tree_size']} → root {p['root']}")
            present[ident] = True
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            add(place, False, f"{ident}: malformed record: {type(exc).__name__}: {exc}", Reason.MALFORMED)
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


def _list(bundle: Mapping[str, Any], key: str) -> list[Any]:
    value = bundle.get(key)
    return value if isinstance(value, list) else []
