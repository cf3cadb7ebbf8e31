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

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from eth_utils import to_checksum_address

from provenance.registry_state import check_enterprise_state
from provenance.verify import (
    Reason,
    Verdict,
    check_anchor_call,
    check_anchor_receipt,
    check_block_header,
    check_commit_seals,
    check_event_hash,
    check_inclusion,
    check_receipts,
    check_record_digest,
    check_record_signature,
    check_transactions,
)

BUNDLE_FORMAT = "traceledger-provenance-bundle/1"
HEADER_KEYS = {
    "parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot", "logsBloom",
    "difficulty", "number", "gasLimit", "gasUsed", "timestamp", "extraData", "mixHash", "nonce",
    "baseFeePerGas", "withdrawalsRoot", "hash", "transactions", "receipts",
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


@dataclass
class ProvenNode:
    """A lineage node rebuilt from signed EPCIS events: canonical ``key`` (EPC or ``hdl:88.x.y/suffix``), BFS
    ``level`` from the subject (0), ``label`` derived from the key / certificate, the identifiers of its
    ``records``, and ``disposition`` (last conformant / non_conformant of its Object/Transaction events)."""

    key: str
    level: int
    label: str
    records: list[str] = field(default_factory=list)
    disposition: str | None = None


@dataclass
class BundleReport:
    """Outcome of :func:`prove_bundle`: every check, and what was proven.

    ``nodes`` / ``edges`` (``(src, dst, event identifier, bizStep)``) are the lineage rebuilt from the signed
    events; ``enterprises`` maps a proven owner account to ``(name, prefix)`` from an EIP-1186 state proof.
    """

    checks: list[BundleCheck]
    nodes: list[ProvenNode] = field(default_factory=list)
    edges: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    enterprises: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        """True iff there is at least one check and every check holds."""
        return bool(self.checks) and all(c.ok for c in self.checks)


COMPLETENESS_NOTE = ("completeness is NOT proven: a bundle can leave out records (e.g. a later inspection "
                     "or upstream events) that no signed document in it refers to")
EVENT_KINDS = ("epcis_event", "epcis_error_declaration")
COIL_KIND = "coil_certificate"


def verify_bundle(bundle: Any, validators: list[str], *, anchor_registry: str | None = None,
                  enterprise_registry: str | None = None) -> list[BundleCheck]:
    """All checks of a bundle (see :func:`prove_bundle`); the bundle verifies iff every check is ok."""
    return prove_bundle(bundle, validators, anchor_registry=anchor_registry,
                        enterprise_registry=enterprise_registry).checks


def prove_bundle(bundle: Any, validators: list[str], *, anchor_registry: str | None = None,
                 enterprise_registry: str | None = None) -> BundleReport:
    """Verify a bundle trusting only ``validators`` and the two registry addresses of the auditor's network file.

    Args:
        bundle: the parsed bundle JSON (format :data:`BUNDLE_FORMAT`).
        validators: trusted validator addresses (commit seals must reach their quorum).
        anchor_registry: AnchorRegistry address (None: every anchor is refused, :attr:`Reason.NO_REGISTRY`).
        enterprise_registry: EnterpriseRegistry address (None: no prefix owner is proven, every record's
            signature is refused with :attr:`Reason.OWNER_UNPROVEN`).

    Returns:
        A :class:`BundleReport`; checks are in bundle order (blocks, anchors, registry_proofs, records, subject,
        lineage). Nothing the bundle merely claims (``anchor_registry``, ``enterprise``, ``signer``, lineage
        labels and levels) is trusted: owners come from sealed ``EnterpriseRegistered`` logs, anchors from
        sealed successful receipts, the lineage from the signed events.
    """
    report = BundleReport([])
    checks = report.checks

    def add(place: str, ok: bool, detail: str, reason: Reason | None = None) -> None:
        checks.append(BundleCheck(place, ok, detail, reason))

    def put(place: str, v: Verdict, prefix: str = "") -> bool:
        checks.append(BundleCheck(place, v.ok, prefix + v.detail, v.reason))
        return v.ok

    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        add("format", False, f"not a {BUNDLE_FORMAT} bundle", Reason.MALFORMED)
        return report
    # ----------------------------------------------------------------- blocks
    good_blocks: dict[int, Mapping[str, Any]] = {}
    tx_in_block: dict[tuple[int, str], Mapping[str, Any]] = {}
    receipt_of: dict[tuple[int, str], Mapping[str, Any]] = {}
    for k, block in enumerate(_list(bundle, "blocks")):
        place = f"blocks[{k}]"
        if not isinstance(block, dict):
            add(place, False, "malformed block: not an object", Reason.MALFORMED)
            continue
        verdicts = _verify_block(json.dumps(block, sort_keys=True), tuple(validators))
        for suffix, v in verdicts:
            put(f"{place}{suffix}" if suffix else place, v)
        if not verdicts[-1][1].ok:
            continue
        number = int(verdicts[0][1].facts["number"])
        if number in good_blocks:
            add(place, False, f"block {number} appears twice", Reason.MALFORMED)
            continue
        if "receipts" in block:
            for tx, rc in zip(block["transactions"], block["receipts"], strict=True):
                receipt_of[(number, str(tx["hash"]).lower())] = rc
        for tx in block.get("transactions") or []:
            tx_in_block[(number, str(tx["hash"]).lower())] = tx
        good_blocks[number] = block

    def sealed_receipt(place: str, number: int, block_hash: Any, tx_hash: Any) -> tuple[Any, Any] | None:
        block = good_blocks.get(number)
        if block is None:
            add(place, False, f"block {number} is not a verified block of this bundle", Reason.NOT_ANCHORED)
            return None
        if block_hash is not None and str(block["hash"]).lower() != str(block_hash).lower():
            add(place, False, f"names block hash {block_hash}, block {number} is {block['hash']}", Reason.NOT_ANCHORED)
            return None
        key = (number, str(tx_hash).lower())
        if key not in tx_in_block:
            add(place, False, f"transaction {tx_hash} is not in block {number}", Reason.NOT_ANCHORED)
            return None
        if key not in receipt_of:
            add(place, False, f"block {number} carries no verified receipt of {tx_hash}", Reason.RECEIPT_INVALID)
            return None
        return tx_in_block[key], receipt_of[key]

    # ----------------------------------------------------------------- anchors
    anchored: dict[str, tuple[int, int]] = {}  # root → (anchored size, block number)
    for j, a in enumerate(_list(bundle, "anchors")):
        place = f"anchors[{j}]"
        try:
            number = _int(a["block_number"], "block_number")
            found = sealed_receipt(place, number, _text(a["block_hash"]), a.get("tx_hash"))
            if found is None:
                continue
            tx, receipt = found
            call = check_anchor_call(tx, root=a["root"], size=_int(a["size"], "size"),
                                     metadata_digest=a["metadata_digest"], registry=anchor_registry)
            if not put(place, call):
                continue
            rv = check_anchor_receipt(receipt, registry=anchor_registry, root=a["root"], size=a["size"],
                                      metadata_digest=a["metadata_digest"], block_number=number)
            if not put(f"{place}.receipt", rv):
                continue
            root = str(a["root"]).lower()
            if root in anchored:
                add(place, False, f"root {a['root']} listed twice", Reason.MALFORMED)
                continue
            anchored[root] = (_int(a["size"], "size"), number)
            add(place, True, f"root {a['root']} anchored by tx {a['tx_hash']} in block {number} "
                             f"(submitter {rv.facts['submitter']})")
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            add(place, False, f"malformed anchor: {type(exc).__name__}: {exc}", Reason.MALFORMED)
    # ----------------------------------------------------------------- registry state (prefix → owner, per block)
    owner_at: dict[tuple[str, int], str] = {}
    for j, e in enumerate(_list(bundle, "registry_proofs")):
        place = f"registry_proofs[{j}]"
        try:
            if not enterprise_registry:
                add(place, False, "no EnterpriseRegistry address from the auditor (pass the network file)",
                    Reason.NO_REGISTRY)
                continue
            number, prefix = _int(e["block_number"], "block_number"), _text(e["prefix"])
            block = good_blocks.get(number)
            if block is None:
                add(place, False, f"block {number} is not a verified block of this bundle", Reason.MALFORMED)
                continue
            state = check_enterprise_state(block["stateRoot"], enterprise_registry, e["proof"], prefix)
            if not put(place, state, f"block {number}: "):
                continue
            owner_at[(prefix, number)] = state.facts["owner"]
            report.enterprises[state.facts["owner"]] = (state.facts["name"], prefix)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            add(place, False, f"malformed registry proof: {type(exc).__name__}: {exc}", Reason.MALFORMED)
    # ----------------------------------------------------------------- records
    verified: dict[str, tuple[int, str, str]] = {}  # identifier → (index, kind, canonical document)
    seen: set[str] = set()
    for i, r in enumerate(_list(bundle, "records")):
        place = f"records[{i}]"
        ident = str(r.get("identifier")) if isinstance(r, dict) else "?"
        try:
            if ident in seen:
                add(place, False, f"{ident}: listed twice", Reason.MALFORMED)
                continue
            seen.add(ident)
            kind = r["kind"]
            digest_v = check_record_digest(r["document"], r["record_digest"])
            if not put(f"{place}.document", digest_v, f"{ident}: "):
                continue
            digest: bytes = digest_v.facts["digest"]
            if kind in EVENT_KINDS and not put(f"{place}.document", check_event_hash(r["document"], ident),
                                               f"{ident}: "):
                continue
            at = _prove_inclusion(place, ident, digest, r.get("proof"), anchored, add, put)
            prefix = ident.partition("/")[0]
            if at is not None:
                owner = owner_at.get((prefix, at))
                owners = [owner] if owner else None
            else:  # not anchored: still name whether the signer could be the owner at any proven block
                owners = sorted({o for (pfx, _), o in owner_at.items() if pfx == prefix}) or None
            sig = check_record_signature(r["signature"], ident, kind, digest, _int(r["chain_id"], "chain_id"),
                                         owners=owners)
            where = f"anchor block {at}" if at is not None else "any proven block"
            if sig.ok:
                owner = sig.facts["signer"]
                sig = Verdict("signature", True, f"EIP-712 signature by {owner} ({report.enterprises[owner][0]!r}, "
                                                 f"active owner of {prefix} at {where} by an EIP-1186 state proof)",
                              None, sig.facts)
            elif sig.reason is Reason.OWNER_UNPROVEN:
                sig = Verdict("signature", False, f"{sig.detail} at {where} (no state proof of an active owner; the "
                                                  f"bundle's own claim is not evidence)", Reason.OWNER_UNPROVEN,
                              sig.facts)
            if not put(f"{place}.signature", sig, f"{ident}: ") or at is None:
                continue
            verified[ident] = (i, kind, r["document"])
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            add(place, False, f"{ident}: malformed record: {type(exc).__name__}: {exc}", Reason.MALFORMED)
    # ----------------------------------------------------------------- subject and lineage, rebuilt
    _prove_lineage(bundle, verified, report, add)
    return report


@lru_cache(maxsize=256)
def _verify_block(text: str, validators: tuple[str, ...]) -> tuple[tuple[str, Verdict], ...]:
    """Checks of one bundle block given as canonical JSON text: ``((place suffix, verdict), …)``, stopping at
    the first failure. Memoised (a pure function of the text and the validator set): header hash, commit seals,
    transactions and receipts tries cost milliseconds per block."""
    block = json.loads(text)
    extra = set(block) - HEADER_KEYS
    if extra:
        return (("", Verdict("block", False, f"malformed block: unexpected fields {sorted(extra)}",
                             Reason.MALFORMED)),)
    odd = sorted(k for k in HEADER_KEYS - {"transactions", "receipts"} if not isinstance(block.get(k), str))
    if odd:
        return (("", Verdict("block", False, f"malformed block: {odd} must be 0x hex strings", Reason.MALFORMED)),)
    header = check_block_header(block)
    if not header.ok and header.reason is Reason.MALFORMED:
        return (("", Verdict("block", False, f"malformed block: {header.detail}", Reason.MALFORMED)),)
    out: list[tuple[str, Verdict]] = [(".header", header)]
    if header.ok:
        out.append((".extraData.commitSeals", check_commit_seals(block, validators)))
    if out[-1][1].ok:
        out.append((".transactions", check_transactions(block)))
    if out[-1][1].ok and "receipts" in block:
        out.append((".receipts", check_receipts(block, block["receipts"])))
    return tuple(out)


@lru_cache(maxsize=4096)
def _event_graph(document: str) -> tuple[dict[str, Any], tuple[Any, ...], tuple[Any, ...]] | None:
    """``(event, EPC refs, lineage links)`` of a verified event record's canonical JSON (memoised), or None when
    it names no well-formed event."""
    from provenance.epcis import EpcisInvalid, event_epcs, lineage_links

    doc = json.loads(document)
    ev = doc.get("event") if isinstance(doc, dict) else None
    if not isinstance(ev, dict):
        return None
    try:
        epcs = event_epcs(ev)
    except EpcisInvalid:
        return None
    return ev, tuple(epcs), tuple(dict.fromkeys(lineage_links(ev, epcs)))


@lru_cache(maxsize=1024)
def _node_label(key: str, cert: str | None) -> str:
    """Label of a node from its key, or from its certificate's canonical JSON (coil, heat, grade)."""
    if cert is not None:
        from provenance.certificate import summarize_certificate

        try:
            s = summarize_certificate(json.loads(cert))
        except Exception:  # noqa: BLE001 - a summary problem must not hide the node
            s = {}
        return f"coil {s.get('coil') or ''} (heat {s.get('heat') or '?'}, {s.get('grade') or ''})".strip()
    if "/10/" in key:
        return "lot " + key.rsplit("/10/", 1)[1]
    if "/21/" in key:
        return "serial " + key.rsplit("/21/", 1)[1]
    return key


def _prove_lineage(bundle: Mapping[str, Any], verified: dict[str, tuple[int, str, Any]], report: BundleReport,
                   add: Any) -> None:
    """Rebuild the upstream lineage of the subject from the verified signed events (EPCIS 2.0 §7.4 links via
    :func:`provenance.epcis.lineage_links`), bind the subject, refuse unrelated records and compare the
    bundle's claimed lineage with the rebuilt one."""
    from provenance.epcis import (
        HDL_SCHEME,
        EpcisInvalid,
        canonical_epc,
        cbv_short,
        suffix_for_epc,
    )

    key, ident = bundle.get("key"), bundle.get("identifier")
    if not isinstance(key, str) or not isinstance(ident, str):
        add("subject", False, "the bundle names no subject key / identifier", Reason.MALFORMED)
        return
    try:
        if not key.startswith(HDL_SCHEME) and canonical_epc(key) != key:
            raise ValueError("not canonical")
    except (EpcisInvalid, ValueError) as exc:
        add("subject", False, f"subject key {key!r} is not a canonical EPC or hdl: key ({exc})", Reason.MALFORMED)
        return
    # events: identifier → (event, epc refs, links)
    events: dict[str, tuple[Mapping[str, Any], list[Any]]] = {}
    into: dict[str, list[tuple[str, str, str]]] = {}
    naming: dict[str, list[str]] = {}
    for rid, (_, kind, text) in verified.items():
        parsed = _event_graph(text) if kind == "epcis_event" else None
        if parsed is None:
            continue
        ev, epcs, links = parsed
        events[rid] = (ev, list(epcs))
        for link in links:
            into.setdefault(link.dst, []).append((link.src, link.dst, rid))
        if ev.get("type") in ("ObjectEvent", "TransactionEvent"):
            for ref in dict.fromkeys(e.key for e in epcs):
                naming.setdefault(ref, []).append(rid)
    certs = {rid: text for rid, (_, kind, text) in verified.items() if kind == COIL_KIND}
    # breadth-first upstream from the subject
    level = {key: 0}
    order = [key]
    edges: list[tuple[str, str, str]] = []
    frontier = [key]
    while frontier:
        nxt = []
        for dst in frontier:
            for src, d, rid in into.get(dst, []):
                if (src, d, rid) not in edges:
                    edges.append((src, d, rid))
                if src not in level:
                    level[src] = level[dst] + 1
                    order.append(src)
                    nxt.append(src)
        frontier = nxt
    node_records: dict[str, list[str]] = {}
    for k in order:
        recs: list[str] = []
        cert_id = k[len(HDL_SCHEME):] if k.startswith(HDL_SCHEME) else None
        if cert_id in certs:
            recs.append(cert_id)
        for rid in naming.get(k, []) + [rid for s, d, rid in edges if k in (s, d)]:
            if rid not in recs:
                recs.append(rid)
        node_records[k] = recs
        dispositions = sorted(
            ((str(events[rid][0].get("eventTime")), cbv_short("disposition", events[rid][0].get("disposition")))
             for rid in naming.get(k, [])), key=lambda x: x[0])
        verdicts = [d for _, d in dispositions if d in ("conformant", "non_conformant")]
        report.nodes.append(ProvenNode(k, level[k], _node_label(k, certs.get(cert_id) if cert_id else None), recs,
                                       verdicts[-1] if verdicts else None))
    report.edges = [(s, d, rid, cbv_short("bizStep", events[rid][0].get("bizStep"))) for s, d, rid in edges]
    # the subject: level 0, named by its own records, its identifier bound to its key
    own = node_records.get(key, [])
    if not own:
        add("subject", False, f"no verified record of the bundle names the subject {key}", Reason.MALFORMED)
    elif key.startswith(HDL_SCHEME) and ident != key[len(HDL_SCHEME):]:
        add("subject", False, f"identifier {ident} is not the subject {key}", Reason.MALFORMED)
    elif not key.startswith(HDL_SCHEME) and (
            ident.partition("/")[2] != suffix_for_epc(key)
            or ident.partition("/")[0] not in {rid.partition("/")[0] for rid in naming.get(key, [])}):
        add("subject", False, f"identifier {ident} is not the mapped identifier of {key} (suffix "
                              f"{suffix_for_epc(key)} under the prefix of an enterprise that recorded it)",
            Reason.MALFORMED)
    else:
        add("subject", True, f"{ident} = {key}, named by {len(own)} of its own signed records")
    # every verified record belongs to the rebuilt lineage
    belongs = {rid for recs in node_records.values() for rid in recs}
    for rid, (i, _, _) in verified.items():
        if rid not in belongs:
            add(f"records[{i}].lineage", False, f"{rid}: unrelated to the upstream lineage of {key} rebuilt from the "
                                                f"signed events", Reason.MALFORMED)
    # the claimed lineage must be the rebuilt one (claims are not evidence, but a differing claim is a lie)
    lin = bundle.get("lineage")
    try:
        claimed_nodes = {_text(n["key"]): sorted(_text(x) for x in n["records"]) for n in lin["nodes"]}
        claimed_edges = sorted((_text(e["from"]), _text(e["to"]), _text(e["event"])) for e in lin["edges"])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        add("lineage", False, f"malformed lineage: {type(exc).__name__}: {exc}", Reason.MALFORMED)
        return
    if len(claimed_nodes) != len(lin["nodes"]):
        add("lineage", False, "a node is listed twice in the claimed lineage", Reason.MALFORMED)
        return
    rebuilt_nodes = {k: sorted(v) for k, v in node_records.items()}
    named = {x for v in claimed_nodes.values() for x in v} | {e[2] for e in claimed_edges}
    missing = sorted(x for x in named if x not in verified)
    if missing:
        add("lineage", False, f"records named by the lineage are not verified records of the bundle: {missing[:5]}",
            Reason.MALFORMED)
    elif claimed_nodes != rebuilt_nodes:
        diff = sorted(set(claimed_nodes) ^ set(rebuilt_nodes)) or sorted(
            k for k in rebuilt_nodes if claimed_nodes.get(k) != rebuilt_nodes[k])
        add("lineage", False, f"claimed nodes differ from the lineage rebuilt from the signed events at {diff[:3]}",
            Reason.MALFORMED)
    elif claimed_edges != sorted(edges):
        diff = sorted(set(claimed_edges) ^ set(edges))
        add("lineage", False, f"claimed edges differ from the edges of the signed events: {diff[:2]}",
            Reason.MALFORMED)
    else:
        bad = [n.key for n in report.nodes if n.disposition == "non_conformant"]
        add("lineage", True, f"{len(report.nodes)} nodes, {len(edges)} edges rebuilt from {len(events)} signed events"
                             f"{f'; non_conformant: {bad}' if bad else ''}; {COMPLETENESS_NOTE}")


def _prove_inclusion(place: str, ident: str, digest: bytes, p: Any, anchored: Mapping[str, tuple[int, int]],
                     add: Any, put: Any) -> int | None:
    """The record's inclusion proof reproduces an anchored root with the anchored tree size: the anchor's block
    number, or None after adding the failing check at ``{place}.proof``."""
    if not p:
        add(f"{place}.proof", False, f"{ident}: no inclusion proof (record not anchored yet)", Reason.NOT_ANCHORED)
        return None
    tree_size = _int(p["tree_size"], "tree_size")
    if not put(f"{place}.proof", check_inclusion(digest, _int(p["leaf_index"], "leaf_index"), tree_size, p["path"],
                                                 p["root"]), f"{ident}: "):
        return None
    root = str(p["root"]).lower()
    if root not in anchored:
        add(f"{place}.proof", False, f"{ident}: root {p['root']} is not anchored by a verified anchor",
            Reason.NOT_ANCHORED)
        return None
    size, at = anchored[root]
    if tree_size != size:
        add(f"{place}.proof", False, f"{ident}: proof for a tree of {tree_size} leaves, root anchored with size "
                                     f"{size}", Reason.PROOF_INVALID)
        return None
    return at


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a JSON integer, got {value!r}"[:120])
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def _list(bundle: Mapping[str, Any], key: str) -> list[Any]:
    value = bundle.get(key)
    return value if isinstance(value, list) else []
