"""Offline verification of a provenance bundle (``GET /v1/provenance/{identifier}/bundle``).

Trusts only the validator set and the two registry addresses given by the auditor (the ``network.json`` of
``traceledger network up``). Pure: no file or network I/O here (``traceledger verify-bundle`` in
``api/cli/verify_bundle.py`` reads the files and does the optional ``--rpc`` cross-check); every decision is a
check of :mod:`provenance.verify` / :mod:`provenance.registry_state`, the checks ``GET /v1/verify`` runs too.
Every check names the place in the bundle it concerns:

* ``blocks[k].header`` — the QBFT block hash recomputes from the header fields (round 0, no seals);
  ``blocks[k].extraData.commitSeals`` — seals recover to ≥ quorum(n) distinct trusted validators;
  ``blocks[k].transactions`` / ``.receipts`` — transaction hashes, ``transactionsRoot`` and ``receiptsRoot``;
* ``anchors[j]`` — the transaction in a verified block is ``anchor(root, size, metadataDigest)`` to the
  trusted AnchorRegistry; ``anchors[j].receipt`` — its sealed receipt has status 1 and the registry's
  ``Anchored(root, submitter, size, metadataDigest, blockNumber)`` log;
* ``registry_proofs[j]`` — EIP-1186 proofs against a verified block's ``stateRoot``: the prefix's owner, active;
* ``hash_alg`` — the bundle's declared hash (``hash_alg``; absent: SHA-256, bundles from before crypto profiles)
  is the one of the auditor's network (its ``network.json`` ``cryptoProfile``): an SM3 network refuses a SHA-256
  bundle and the other way round; each ``records[i].proof.hash_alg`` must agree too;
* ``records[i].document`` — SHA-256 (SM3 on an ``sm`` network) of the exact canonical document equals
  ``record_digest``; for EPCIS events
  the GS1 event hash ID recomputed equals ``eventHashID`` and the identifier ``…/ev-<hex>``;
  ``records[i].proof`` — RFC 9162 §2.1.3.2 path to an anchored root, ``tree_size`` the anchored size;
  ``records[i].signature`` — EIP-712 ``Record(identifier, kind, digest)`` by the owner of the identifier's prefix
  proven active at the record's anchor block (the bundle's ``enterprise`` / ``signer`` claims are ignored); on an
  ``sm`` network an SM2 signature under the SM2 key that owner had bound at that block (same EIP-1186 proof);
* ``subject`` — level 0, named by its own records, identifier bound to key; ``records[i].lineage`` — a record
  outside the subject's upstream lineage is refused as unrelated;
* ``lineage`` — rebuilt from the signed events (EPCIS 2.0 §7.4 links) and equal to the claimed one; completeness
  is NOT proven (a record no signed document refers to can be left out), and the check says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from eth_utils import to_checksum_address

from provenance.crypto_profile import SIG_SM2, get_profile
from provenance.qbft_header import UntrustedValidatorChange, advance_trusted_validators
from provenance.registry_state import check_enterprise_state
from provenance.verify import (
    Reason,
    Verdict,
    check_anchor_call,
    check_anchor_receipt,
    check_block_header,
    check_commit_seals,
    check_event_hash,
    check_hash_alg,
    check_inclusion,
    check_receipts,
    check_record_digest,
    check_record_signature,
    check_record_signature_sm2,
    check_transactions,
    hex_int,
    parse_finality_model,
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
                  enterprise_registry: str | None = None, crypto_profile: str | None = None) -> list[BundleCheck]:
    """All checks of a bundle (see :func:`prove_bundle`); the bundle verifies iff every check is ok."""
    return prove_bundle(bundle, validators, anchor_registry=anchor_registry,
                        enterprise_registry=enterprise_registry, crypto_profile=crypto_profile).checks


def prove_bundle(bundle: Any, validators: list[str], *, anchor_registry: str | None = None,
                 enterprise_registry: str | None = None, finality: str = "qbft",
                 crypto_profile: str | None = None) -> BundleReport:
    """Verify a bundle trusting only ``validators`` and the two registry addresses of the auditor's network file.

    Args:
        bundle: the parsed bundle JSON (format :data:`BUNDLE_FORMAT`).
        validators: trusted validator addresses (commit seals must reach their quorum).
        anchor_registry: AnchorRegistry address (None: every anchor is refused, :attr:`Reason.NO_REGISTRY`).
        enterprise_registry: EnterpriseRegistry address (None: no prefix owner is proven, every record's
            signature is refused with :attr:`Reason.OWNER_UNPROVEN`).
        finality: the finality model the auditor knows the chain runs (``provenance.verify.parse_finality_model``):
            ``qbft`` (commit seals of ``validators``) or ``confirmations:N`` for a chain without seals. Under
            ``confirmations:N`` the plain Ethereum header hash is checked and each block gets a failing
            ``blocks[k].finality`` check: nothing offline proves such a block final or canonical; the CLI's
            ``--rpc`` cross-check (confirmations on the canonical chain) is the only evidence.
        crypto_profile: the crypto profile of the auditor's network (``network.json`` ``cryptoProfile``; None:
            ``standard``). It selects the record hash; the bundle's own ``hash_alg`` must agree, never replaces it.

    Returns:
        A :class:`BundleReport`; checks are in bundle order (blocks, anchors, registry_proofs, records, subject,
        lineage). Nothing the bundle merely claims (``anchor_registry``, ``enterprise``, ``signer``, lineage
        labels and levels) is trusted: owners come from EIP-1186 proofs of sealed state, anchors from sealed
        successful receipts, the lineage from the signed events.
    """
    prover = _Prover(validators, anchor_registry, enterprise_registry)
    prover.finality = parse_finality_model(finality)
    prover.hash_alg = get_profile(crypto_profile).hash_alg
    prover.sm2 = get_profile(crypto_profile).signature_alg == SIG_SM2
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        prover.add("format", False, f"not a {BUNDLE_FORMAT} bundle", Reason.MALFORMED)
        return prover.report
    if not prover.put("hash_alg", check_hash_alg(bundle.get("hash_alg"), prover.hash_alg, where="bundle")):
        return prover.report  # nothing of it can be read with the network's algorithms
    prover.validator_changes(bundle.get("validator_changes", []))
    prover.blocks(_list(bundle, "blocks"))
    prover.anchors(_list(bundle, "anchors"))
    prover.registry_state(_list(bundle, "registry_proofs"))
    prover.records(_list(bundle, "records"))
    prover.lineage(bundle)
    return prover.report


class _Prover:
    """State of one :func:`prove_bundle` run: what each section proved, for the sections after it."""

    def __init__(self, validators: list[str], anchor_registry: str | None, enterprise_registry: str | None) -> None:
        self.validators = tuple(validators)
        self.finality: tuple[str, int] = ("qbft", 0)
        #: the record hash of the auditor's network (its crypto profile), never the bundle's own say
        self.hash_alg = "sha-256"
        #: records are SM2-signed (an ``sm`` network): keys come from the registry proofs, ``sm2_at``
        self.sm2 = False
        self.sm2_at: dict[tuple[str, int], str | None] = {}  # (prefix, block number) → owner's SM2 key then
        #: (first block number, validator set) in increasing order: the trusted set, then each proven change
        self.validator_sets: list[tuple[int, tuple[str, ...]]] = [(0, self.validators)]
        self.anchor_registry = anchor_registry
        self.enterprise_registry = enterprise_registry
        self.report = BundleReport([])
        self.good_blocks: dict[int, Mapping[str, Any]] = {}
        self.tx_in_block: dict[tuple[int, str], Mapping[str, Any]] = {}
        self.receipt_of: dict[tuple[int, str], Mapping[str, Any]] = {}
        self.anchored: dict[str, tuple[int, int]] = {}  # root → (anchored size, block number)
        self.owner_at: dict[tuple[str, int], str] = {}  # (prefix, block number) → active owner
        self.verified: dict[str, tuple[int, str, str]] = {}  # identifier → (index, kind, canonical document)
        self.seen: set[str] = set()

    def add(self, place: str, ok: bool, detail: str, reason: Reason | None = None) -> None:
        self.report.checks.append(BundleCheck(place, ok, detail, reason))

    def put(self, place: str, v: Verdict, prefix: str = "") -> bool:
        self.report.checks.append(BundleCheck(place, v.ok, prefix + v.detail, v.reason))
        return v.ok

    # ------------------------------------------------------------------------------- validator changes
    def validator_changes(self, changes: Any) -> None:
        """``validator_changes[k]``: the first block that lists each new validator set, in increasing block order.

        Besu's rule makes every block list the validators that seal it, so each such block proves its own set
        once a quorum of that set and more than a third of the set trusted so far sealed it
        (:func:`provenance.qbft_header.advance_trusted_validators`). A block is then checked against the set of
        the latest change at or below its number; a bundle that leaves a change out fails the seal check of the
        blocks after it (their seals come from validators outside the set in force).
        """
        if not isinstance(changes, list):
            self.add("validator_changes", False, "malformed: validator_changes must be a list", Reason.MALFORMED)
            return
        for k, block in enumerate(changes):
            place = f"validator_changes[{k}]"
            try:
                if not isinstance(block, dict):
                    raise ValueError("not a block object")
                number = hex_int(block.get("number"), "number")
                start, current = self.validator_sets[-1]
                if number <= start:
                    raise ValueError(f"block {number} is not after the previous change (block {start})")
                new = advance_trusted_validators(current, block)
            except (UntrustedValidatorChange, ValueError, TypeError) as exc:
                reason = Reason.SEALS_INSUFFICIENT if isinstance(exc, UntrustedValidatorChange) else Reason.MALFORMED
                self.add(place, False, f"validator change not proven: {exc}", reason)
                return
            self.validator_sets.append((number, new))
            self.add(place, True, f"from block {number} the validators are {', '.join(new)} (sealed by a quorum "
                                  f"of them and more than a third of the {len(current)} trusted before)")

    def validators_at(self, number: int) -> tuple[str, ...]:
        """The validator set in force at block ``number`` (the latest proven change at or below it)."""
        chosen = self.validator_sets[0][1]
        for start, validators in self.validator_sets:
            if start <= number:
                chosen = validators
        return chosen

    # ------------------------------------------------------------------------------------------ blocks
    def blocks(self, blocks: list[Any]) -> None:
        """``blocks[k]``: header hash, commit seals, transactions and receipts (memoised per block)."""
        for k, block in enumerate(blocks):
            place = f"blocks[{k}]"
            if not isinstance(block, dict):
                self.add(place, False, "malformed block: not an object", Reason.MALFORMED)
                continue
            try:
                trusted = self.validators_at(hex_int(block.get("number"), "number"))
            except (ValueError, TypeError):
                trusted = self.validators  # the header check below names the malformed number
            bft = self.finality[0] == "qbft"
            verdicts = _verify_block(json.dumps(block, sort_keys=True), trusted if bft else None)
            for suffix, v in verdicts:
                self.put(f"{place}{suffix}" if suffix else place, v)
            if not verdicts[-1][1].ok:
                continue
            if not bft:
                self.add(f"{place}.finality", False, f"confirmations:{self.finality[1]}: a block of a chain "
                         "without commit seals is not proven final or canonical offline; cross-check with --rpc",
                         Reason.SEALS_INSUFFICIENT)
            number = int(verdicts[0][1].facts["number"])
            if number in self.good_blocks:
                self.add(place, False, f"block {number} appears twice", Reason.MALFORMED)
                continue
            for tx, rc in zip(block["transactions"], block.get("receipts") or [], strict=False):
                self.receipt_of[(number, str(tx["hash"]).lower())] = rc
            for tx in block["transactions"]:
                self.tx_in_block[(number, str(tx["hash"]).lower())] = tx
            self.good_blocks[number] = block

    def sealed_receipt(self, place: str, number: int, block_hash: str, tx_hash: Any) -> tuple[Any, Any] | None:
        """``(transaction, receipt)`` of ``tx_hash`` in verified block ``number`` (named ``block_hash``), or None
        after adding the failing check."""
        block = self.good_blocks.get(number)
        if block is None:
            self.add(place, False, f"block {number} is not a verified block of this bundle", Reason.NOT_ANCHORED)
            return None
        if str(block["hash"]).lower() != block_hash.lower():
            self.add(place, False, f"names block hash {block_hash}, block {number} is {block['hash']}",
                     Reason.NOT_ANCHORED)
            return None
        key = (number, str(tx_hash).lower())
        if key not in self.tx_in_block:
            self.add(place, False, f"transaction {tx_hash} is not in block {number}", Reason.NOT_ANCHORED)
            return None
        if key not in self.receipt_of:
            self.add(place, False, f"block {number} carries no verified receipt of {tx_hash}",
                     Reason.RECEIPT_INVALID)
            return None
        return self.tx_in_block[key], self.receipt_of[key]

    # ------------------------------------------------------------------------------------------ anchors
    def anchors(self, anchors: list[Any]) -> None:
        """``anchors[j]``: the call to the trusted AnchorRegistry, its sealed successful receipt and log."""
        for j, a in enumerate(anchors):
            place = f"anchors[{j}]"
            try:
                number, size = _int(a["block_number"], "block_number"), _int(a["size"], "size")
                found = self.sealed_receipt(place, number, _text(a["block_hash"]), a.get("tx_hash"))
                if found is None:
                    continue
                tx, receipt = found
                if not self.put(place, check_anchor_call(tx, root=a["root"], size=size, metadata_digest=a[
                        "metadata_digest"], registry=self.anchor_registry)):
                    continue
                rv = check_anchor_receipt(receipt, registry=self.anchor_registry, root=a["root"], size=size,
                                          metadata_digest=a["metadata_digest"], block_number=number)
                if not self.put(f"{place}.receipt", rv):
                    continue
                root = str(a["root"]).lower()
                if root in self.anchored:
                    self.add(place, False, f"root {a['root']} listed twice", Reason.MALFORMED)
                    continue
                self.anchored[root] = (size, number)
                self.add(place, True, f"root {a['root']} anchored by tx {a['tx_hash']} in block {number} "
                                      f"(submitter {rv.facts['submitter']})")
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                self.add(place, False, f"malformed anchor: {type(exc).__name__}: {exc}", Reason.MALFORMED)

    # ------------------------------------------------------------------------------------------ registry state
    def registry_state(self, proofs: list[Any]) -> None:
        """``registry_proofs[j]``: EIP-1186 proofs of prefix → active owner at a verified block."""
        for j, e in enumerate(proofs):
            place = f"registry_proofs[{j}]"
            try:
                if not self.enterprise_registry:
                    self.add(place, False, "no EnterpriseRegistry address from the auditor (pass the network file)",
                             Reason.NO_REGISTRY)
                    continue
                number, prefix = _int(e["block_number"], "block_number"), _text(e["prefix"])
                block = self.good_blocks.get(number)
                if block is None:
                    self.add(place, False, f"block {number} is not a verified block of this bundle",
                             Reason.MALFORMED)
                    continue
                state = check_enterprise_state(block["stateRoot"], self.enterprise_registry, e["proof"], prefix)
                if not self.put(place, state, f"block {number}: "):
                    continue
                self.owner_at[(prefix, number)] = state.facts["owner"]
                if "sm2_public_key" in state.facts:
                    self.sm2_at[(prefix, number)] = state.facts["sm2_public_key"]
                self.report.enterprises[state.facts["owner"]] = (state.facts["name"], prefix)
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                self.add(place, False, f"malformed registry proof: {type(exc).__name__}: {exc}", Reason.MALFORMED)

    # ------------------------------------------------------------------------------------------ records
    def records(self, records: list[Any]) -> None:
        """``records[i]``: document digest (and event hash), inclusion in an anchored root of the anchored size,
        and a signature by the prefix's owner proven active at that anchor block."""
        for i, r in enumerate(records):
            place = f"records[{i}]"
            ident = str(r.get("identifier")) if isinstance(r, dict) else "?"
            try:
                if ident in self.verified or ident in self.seen:
                    self.add(place, False, f"{ident}: listed twice", Reason.MALFORMED)
                    continue
                self.seen.add(ident)
                if self.record(place, ident, r):
                    self.verified[ident] = (i, r["kind"], r["document"])
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                self.add(place, False, f"{ident}: malformed record: {type(exc).__name__}: {exc}", Reason.MALFORMED)

    def record(self, place: str, ident: str, r: Mapping[str, Any]) -> bool:
        """Checks of one record; True when every one holds."""
        kind = r["kind"]
        digest_v = check_record_digest(r["document"], r["record_digest"], self.hash_alg)
        if not self.put(f"{place}.document", digest_v, f"{ident}: "):
            return False
        digest: bytes = digest_v.facts["digest"]
        if kind in EVENT_KINDS and not self.put(f"{place}.document", check_event_hash(r["document"], ident),
                                                f"{ident}: "):
            return False
        at = _prove_inclusion(place, ident, digest, r.get("proof"), self.anchored, self.add, self.put, self.hash_alg)
        prefix = ident.partition("/")[0]
        if at is not None:
            owner = self.owner_at.get((prefix, at))
            owners = [owner] if owner else None
        else:  # not anchored: still name whether the signer could be the owner at any proven block
            owners = sorted({o for (pfx, _), o in self.owner_at.items() if pfx == prefix}) or None
        where = f"anchor block {at}" if at is not None else "any proven block"
        if self.sm2:
            return self.put(f"{place}.signature", self._sm2_signature(r, ident, kind, digest, prefix, at, where),
                            f"{ident}: ") and at is not None
        sig = check_record_signature(r["signature"], ident, kind, digest, _int(r["chain_id"], "chain_id"),
                                     owners=owners)
        if sig.ok:
            signer = sig.facts["signer"]
            sig = Verdict("signature", True, f"EIP-712 signature by {signer} ({self.report.enterprises[signer][0]!r}, "
                                             f"active owner of {prefix} at {where} by an EIP-1186 state proof)",
                          None, sig.facts)
        elif sig.reason is Reason.OWNER_UNPROVEN:
            sig = Verdict("signature", False, f"{sig.detail} at {where} (no state proof of an active owner; the "
                                              f"bundle's own claim is not evidence)", Reason.OWNER_UNPROVEN, sig.facts)
        return self.put(f"{place}.signature", sig, f"{ident}: ") and at is not None

    def _sm2_signature(self, r: Mapping[str, Any], ident: str, kind: str, digest: bytes, prefix: str, at: int | None,
                       where: str) -> Verdict:
        """SM2 record signature under the key the prefix's owner had bound at the anchor block (EIP-1186 proof)."""
        if at is not None:
            keys = [self.sm2_at[(prefix, at)]] if (prefix, at) in self.sm2_at else None
        else:
            keys = sorted({k for (pfx, _), k in self.sm2_at.items() if pfx == prefix and k}) or None
        if keys is not None:
            keys = [k for k in keys if k]
        sig = check_record_signature_sm2(r["signature"], ident, kind, digest, _int(r["chain_id"], "chain_id"),
                                         owner_keys=keys)
        if sig.ok:
            owner = self.owner_at.get((prefix, at)) if at is not None else None
            name = self.report.enterprises.get(owner, ("?", prefix))[0] if owner else "?"
            return Verdict("signature", True, f"SM2 signature by the key {owner} ({name!r}) had bound at {where} "
                                              "(EIP-1186 state proof)", None, sig.facts)
        if sig.reason is Reason.OWNER_UNPROVEN:
            return Verdict("signature", False, f"no SM2 key of the owner of {prefix} proven at {where} (the bundle "
                                               "carries no state proof of it)", Reason.OWNER_UNPROVEN, sig.facts)
        return sig

    # ------------------------------------------------------------------------------------------ lineage
    def lineage(self, bundle: Mapping[str, Any]) -> None:
        """The subject bound, the lineage rebuilt from the verified events, unrelated records refused and the
        claimed lineage compared with the rebuilt one."""
        from provenance.epcis import HDL_SCHEME, EpcisInvalid, canonical_epc

        key, ident = bundle.get("key"), bundle.get("identifier")
        if not isinstance(key, str) or not isinstance(ident, str):
            self.add("subject", False, "the bundle names no subject key / identifier", Reason.MALFORMED)
            return
        try:
            if not key.startswith(HDL_SCHEME) and canonical_epc(key) != key:
                raise ValueError("not canonical")
        except (EpcisInvalid, ValueError) as exc:
            self.add("subject", False, f"subject key {key!r} is not a canonical EPC or hdl: key ({exc})",
                     Reason.MALFORMED)
            return
        graph = _rebuild(key, self.verified)
        self.report.nodes, self.report.edges = graph.nodes, graph.labelled_edges()
        self.subject(key, ident, graph)
        belongs = {rid for recs in graph.node_records.values() for rid in recs}
        for rid, (i, _, _) in self.verified.items():
            if rid not in belongs:
                self.add(f"records[{i}].lineage", False, f"{rid}: unrelated to the upstream lineage of {key} "
                                                         f"rebuilt from the signed events", Reason.MALFORMED)
        self.claimed(bundle.get("lineage"), graph)

    def subject(self, key: str, ident: str, graph: _Graph) -> None:
        """``subject``: level 0, named by its own records, its identifier the one mapped to its key."""
        from provenance.epcis import HDL_SCHEME, suffix_for_epc

        own = graph.node_records.get(key, [])
        if not own:
            self.add("subject", False, f"no verified record of the bundle names the subject {key}", Reason.MALFORMED)
        elif key.startswith(HDL_SCHEME) and ident != key[len(HDL_SCHEME):]:
            self.add("subject", False, f"identifier {ident} is not the subject {key}", Reason.MALFORMED)
        elif not key.startswith(HDL_SCHEME) and (
                ident.partition("/")[2] != suffix_for_epc(key)
                or ident.partition("/")[0] not in {rid.partition("/")[0] for rid in graph.naming.get(key, [])}):
            self.add("subject", False, f"identifier {ident} is not the mapped identifier of {key} (suffix "
                                       f"{suffix_for_epc(key)} under the prefix of an enterprise that recorded it)",
                     Reason.MALFORMED)
        else:
            self.add("subject", True, f"{ident} = {key}, named by {len(own)} of its own signed records")

    def claimed(self, lin: Any, graph: _Graph) -> None:
        """``lineage``: the bundle's claimed nodes (with their records) and edges equal the rebuilt ones."""
        try:
            claimed_nodes = {_text(n["key"]): sorted(_text(x) for x in n["records"]) for n in lin["nodes"]}
            claimed_edges = sorted((_text(e["from"]), _text(e["to"]), _text(e["event"])) for e in lin["edges"])
            if len(claimed_nodes) != len(lin["nodes"]):
                raise ValueError("a node is listed twice")
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            self.add("lineage", False, f"malformed lineage: {type(exc).__name__}: {exc}", Reason.MALFORMED)
            return
        rebuilt_nodes = {k: sorted(v) for k, v in graph.node_records.items()}
        named = {x for v in claimed_nodes.values() for x in v} | {e[2] for e in claimed_edges}
        missing = sorted(x for x in named if x not in self.verified)
        if missing:
            self.add("lineage", False, f"records named by the lineage are not verified records of the bundle: "
                                       f"{missing[:5]}", Reason.MALFORMED)
        elif claimed_nodes != rebuilt_nodes:
            diff = sorted(set(claimed_nodes) ^ set(rebuilt_nodes)) or sorted(
                k for k in rebuilt_nodes if claimed_nodes.get(k) != rebuilt_nodes[k])
            self.add("lineage", False, f"claimed nodes differ from the lineage rebuilt from the signed events at "
                                       f"{diff[:3]}", Reason.MALFORMED)
        elif claimed_edges != sorted(graph.edges):
            diff = sorted(set(claimed_edges) ^ set(graph.edges))
            self.add("lineage", False, f"claimed edges differ from the edges of the signed events: {diff[:2]}",
                     Reason.MALFORMED)
        else:
            bad = [n.key for n in graph.nodes if n.disposition == "non_conformant"]
            self.add("lineage", True, f"{len(graph.nodes)} nodes, {len(graph.edges)} edges rebuilt from "
                                      f"{len(graph.events)} signed events{f'; non_conformant: {bad}' if bad else ''}; "
                                      f"{COMPLETENESS_NOTE}")


@dataclass
class _Graph:
    """The upstream lineage rebuilt from verified events: ``events`` (identifier → event), ``naming`` (node →
    Object/Transaction events naming it), ``edges`` ``(src, dst, event identifier)``, ``node_records``."""

    events: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    naming: dict[str, list[str]] = field(default_factory=dict)
    edges: list[tuple[str, str, str]] = field(default_factory=list)
    node_records: dict[str, list[str]] = field(default_factory=dict)
    nodes: list[ProvenNode] = field(default_factory=list)

    def labelled_edges(self) -> list[tuple[str, str, str, str | None]]:
        from provenance.epcis import cbv_short

        return [(s, d, rid, cbv_short("bizStep", self.events[rid].get("bizStep"))) for s, d, rid in self.edges]


def _rebuild(key: str, verified: Mapping[str, tuple[int, str, str]]) -> _Graph:
    """Breadth-first upstream from ``key`` over the links of the verified events (EPCIS 2.0 §7.4 via
    :func:`provenance.epcis.lineage_links`); a node's records are its certificate (``hdl:`` key), the
    Object/Transaction events naming it and the edge events touching it (as the API's lineage lists them)."""
    from provenance.epcis import HDL_SCHEME, cbv_short

    g = _Graph()
    into: dict[str, list[tuple[str, str, str]]] = {}
    for rid, (_, kind, text) in verified.items():
        parsed = _event_graph(text) if kind == "epcis_event" else None
        if parsed is None:
            continue
        ev, epcs, links = parsed
        g.events[rid] = ev
        for link in links:
            into.setdefault(link.dst, []).append((link.src, link.dst, rid))
        if ev.get("type") in ("ObjectEvent", "TransactionEvent"):
            for ref in dict.fromkeys(e.key for e in epcs):
                g.naming.setdefault(ref, []).append(rid)
    certs = {rid: text for rid, (_, kind, text) in verified.items() if kind == COIL_KIND}
    level, order, frontier = {key: 0}, [key], [key]
    while frontier:
        nxt = []
        for dst in frontier:
            for edge in into.get(dst, []):
                if edge not in g.edges:
                    g.edges.append(edge)
                if edge[0] not in level:
                    level[edge[0]] = level[dst] + 1
                    order.append(edge[0])
                    nxt.append(edge[0])
        frontier = nxt
    for k in order:
        cert_id = k[len(HDL_SCHEME):] if k.startswith(HDL_SCHEME) else None
        recs = [cert_id] if cert_id in certs else []
        for rid in g.naming.get(k, []) + [rid for s, d, rid in g.edges if k in (s, d)]:
            if rid not in recs:
                recs.append(rid)
        g.node_records[k] = recs
        dated = sorted((str(g.events[rid].get("eventTime")), cbv_short("disposition", g.events[rid].get(
            "disposition"))) for rid in g.naming.get(k, []))
        verdicts = [d for _, d in dated if d in ("conformant", "non_conformant")]
        g.nodes.append(ProvenNode(k, level[k], _node_label(k, certs.get(cert_id) if cert_id else None), recs,
                                  verdicts[-1] if verdicts else None))
    return g


@lru_cache(maxsize=256)
def _verify_block(text: str, validators: tuple[str, ...] | None) -> tuple[tuple[str, Verdict], ...]:
    """Checks of one bundle block given as canonical JSON text: ``((place suffix, verdict), …)``, stopping at
    the first failure. Memoised (a pure function of the text and the validator set): header hash, commit seals,
    transactions and receipts tries cost milliseconds per block. ``validators`` None: a chain without QBFT
    headers (finality ``confirmations:N``): the plain header hash, no seals."""
    block = json.loads(text)
    extra = set(block) - HEADER_KEYS
    if extra:
        return (("", Verdict("block", False, f"malformed block: unexpected fields {sorted(extra)}",
                             Reason.MALFORMED)),)
    odd = sorted(k for k in HEADER_KEYS - {"transactions", "receipts"} if not isinstance(block.get(k), str))
    if odd:
        return (("", Verdict("block", False, f"malformed block: {odd} must be 0x hex strings", Reason.MALFORMED)),)
    header = check_block_header(block, bft=validators is not None)
    if not header.ok and header.reason is Reason.MALFORMED:
        return (("", Verdict("block", False, f"malformed block: {header.detail}", Reason.MALFORMED)),)
    out: list[tuple[str, Verdict]] = [(".header", header)]
    if header.ok and validators is not None:
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


def _prove_inclusion(place: str, ident: str, digest: bytes, p: Any, anchored: Mapping[str, tuple[int, int]],
                     add: Any, put: Any, hash_alg: str = "sha-256") -> int | None:
    """The record's inclusion proof, hashed with the network's ``hash_alg`` (the proof's own ``hash_alg`` must
    agree), reproduces an anchored root with the anchored tree size: the anchor's block number, or None after adding
    the failing check at ``{place}.proof``."""
    if not p:
        add(f"{place}.proof", False, f"{ident}: no inclusion proof (record not anchored yet)", Reason.NOT_ANCHORED)
        return None
    if not put(f"{place}.proof", check_hash_alg(p.get("hash_alg"), hash_alg), f"{ident}: "):
        return None
    tree_size = _int(p["tree_size"], "tree_size")
    if not put(f"{place}.proof", check_inclusion(digest, _int(p["leaf_index"], "leaf_index"), tree_size, p["path"],
                                                 p["root"], hash_alg), f"{ident}: "):
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
