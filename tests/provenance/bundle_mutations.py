"""Mutation harness for provenance bundles (issue 20): every JSON leaf and structure, typed mutations, plus the
semantic attacks of a dishonest member, validator or API operator. A mutant the verifier accepts must be on the
explicit, commented :data:`HARMLESS` list (or, for the semantic attacks, :data:`NOT_PROVABLE`), else it is a
finding.

Typed mutations, for a leaf at ``path``:

* ``flip`` — a ``0x`` hex string with its last hex digit changed; an integer + 1; a boolean negated;
  any other string with one character appended (a JSON document string: one value changed inside);
* ``null`` — replaced by JSON null; ``retype`` — a string becomes the integer 0, anything else the string "0x1";

and for a container: ``delete`` (each key / each element), ``add`` (an unknown key), ``dup`` (the first element
twice), ``swap`` (first two elements exchanged), ``empty`` (emptied).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str | int, ...]

# Accepted mutants that change no claim. (pattern on the path with indices as [*], kinds or None for all, why)
HARMLESS: list[tuple[str, frozenset[str] | None, str]] = [
    (r"generated_at", None, "when the API wrote the bundle: not a provenance claim, never printed"),
    (r".*", frozenset({"add"}), "an unknown key (refused in a block header): read by nothing, printed nowhere"),
    (r"records\[\*\]\.enterprise(\..*)?", None,
     "the bundle's claim of the owner: ignored, the owner comes from an EIP-1186 proof of sealed state"),
    (r"records\[\*\]\.signer", None, "the claimed signer: ignored, the signer is recovered from the signature"),
    (r"anchors\[\*\]\.anchor_registry", None, "ignored: the AnchorRegistry address comes from the auditor's file"),
    (r"registry_proofs\[\*\]\.proof\.storageProof\[\*\]\.value", None,
     "eth_getProof's claimed value: never read, each value is re-derived from its Merkle proof"),
    (r"registry_proofs\[\*\]\.proof\.(balance|nonce|codeHash|storageHash)", None,
     "account fields claimed beside the proof: never read, the storage root comes from the account proof"),
    (r"registry_proofs\[\*\]\.proof\.(accountProof|storageProof\[\*\]\.proof)", frozenset({"dup", "swap"}),
     "a Merkle-Patricia proof is a set of nodes looked up by hash: order and repetition are immaterial"),
    (r"registry_proofs(\[\*\]\.proof\.storageProof)?", frozenset({"dup", "swap"}),
     "the same state proof twice, or in another order (proofs are looked up by block, prefix and slot)"),
    (r"lineage\.nodes\[\*\]\.(label|level|epc|identifier)", None,
     "claimed presentation: ignored, the verifier prints the graph it rebuilt from the signed events"),
    (r"(records|anchors|blocks|lineage\.nodes|lineage\.edges|lineage\.nodes\[\*\]\.records)", frozenset({"swap"}),
     "order carries no meaning in these lists"),
    (r"blocks\[\*\]\.transactions\[\*\]\.(from|blockHash|blockNumber|transactionIndex|gasPrice)", None,
     "JSON-RPC conveniences outside the signed transaction encoding; the verifier never reads them "
     "(the submitter is proven from the Anchored log)"),
    (r"validator_changes", frozenset({"delete"}),
     "an absent list means no validator change: the same as the empty list these bundles carry; where the chain "
     "did change its validators, leaving a change out fails the seal check of every later block "
     "(tests/provenance/test_bundle_validator_changes.py)"),
    (r"(hash_alg|records\[\*\]\.proof\.hash_alg)", frozenset({"delete", "null"}),
     "an absent hash_alg means SHA-256 by rule (bundles from before crypto profiles): on these SHA-256 bundles the "
     "same claim; the auditor's network.json decides the algorithm, and an SM3 network refuses such a bundle "
     "(tests/provenance/test_crypto_profile.py)"),
    (r"crypto_profile", None, "the profile's name is presentation: the algorithms come from the auditor's "
     "network.json and the declared hash_alg must match it"),
    (r"blocks\[\*\]\.transactions\[\*\]\.(v|yParity)", frozenset({"delete"}),
     "typed transactions carry the parity twice; either one alone encodes the same transaction"),
]

# Semantic attacks the signed documents cannot reveal: accepted, and the verifier says so ("completeness is NOT
# proven"). Proving them needs an anchored verifiable map (object → hash chain of its events), not built yet.
NOT_PROVABLE: dict[str, str] = {
    "truncate_upstream": "the upstream end of the lineage cut off consistently (records, nodes and edges)",
    "drop_inspection": "an ObjectEvent (e.g. a non_conformant inspection) left out with its lineage mention",
}


@dataclass
class Tally:
    """Counts of one campaign: ``refused``, ``harmless`` (accepted, on the list), ``findings`` (accepted, not)."""

    refused: int = 0
    harmless: int = 0
    findings: list[str] = field(default_factory=list)
    not_provable: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.refused + self.harmless + len(self.findings) + len(self.not_provable)

    def line(self) -> str:
        return (f"{self.total} mutants: {self.refused} refused, {self.harmless} accepted harmless, "
                f"{len(self.not_provable)} accepted not provable, {len(self.findings)} accepted findings")


def pattern(path: Path) -> str:
    out = ""
    for p in path:
        out += "[*]" if isinstance(p, int) else (("." if out else "") + p)
    return out


def is_harmless(path: Path, kind: str) -> bool:
    pat = pattern(path)
    return any(re.fullmatch(rx, pat) and (kinds is None or kind in kinds) for rx, kinds, _ in HARMLESS)


def _walk(node: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, (*path, i))


def _flip(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        if re.fullmatch(r"0x[0-9a-fA-F]+", value):
            return value[:-1] + ("0" if value[-1] != "0" else "1")
        if value.startswith("{"):
            m = re.search(r'":\s*"?([0-9])', value)  # first digit of a JSON value inside the document
            if m:
                i = m.start(1)
                return value[:i] + str((int(value[i]) + 1) % 10) + value[i + 1:]
        return value + "x"
    return "0x1"


def mutations(bundle: Any) -> Iterator[tuple[Path, str, Callable[[Any], None]]]:
    """Every typed mutation of ``bundle``: ``(path, kind, apply)``; ``apply`` mutates a copy in place."""

    def at(path: Path) -> Callable[[Any], Any]:
        def get(root: Any) -> Any:
            for p in path:
                root = root[p]
            return root
        return get

    for path, value in _walk(bundle):
        if not path:
            continue
        parent, key = at(path[:-1]), path[-1]
        if isinstance(value, dict | list):
            if isinstance(value, dict):
                yield path, "add", lambda b, g=at(path): g(b).__setitem__("x_unknown", 1)
            else:
                if value:
                    yield path, "dup", lambda b, g=at(path): g(b).append(copy.deepcopy(g(b)[0]))
                if len(value) > 1:
                    yield path, "swap", lambda b, g=at(path): g(b).__setitem__(slice(0, 2), g(b)[1::-1])
                if value:
                    yield path, "empty", lambda b, g=at(path): g(b).clear()
        else:
            yield path, "flip", lambda b, g=parent, k=key: g(b).__setitem__(k, _flip(g(b)[k]))
            yield path, "retype", lambda b, g=parent, k=key: g(b).__setitem__(k, 0 if isinstance(g(b)[k], str)
                                                                              else "0x1")
        if value is not None:
            yield path, "null", lambda b, g=parent, k=key: g(b).__setitem__(k, None)
        yield path, "delete", lambda b, g=parent, k=key: g(b).__delitem__(k)


def run_campaign(bundle: dict[str, Any], accepts: Callable[[dict[str, Any]], bool]) -> Tally:
    """Apply every typed mutation of :func:`mutations` to a copy of ``bundle``; classify with ``accepts``."""
    tally = Tally()
    text = json.dumps(bundle)
    for path, kind, apply in mutations(bundle):
        b = json.loads(text)
        apply(b)
        try:
            accepted = accepts(b)
        except Exception as exc:  # noqa: BLE001 - a crash is a finding: bad input must fail cleanly
            tally.findings.append(f"crash {kind} {pattern(path)}: {type(exc).__name__}: {exc}"[:300])
            continue
        if not accepted:
            tally.refused += 1
        elif is_harmless(path, kind):
            tally.harmless += 1
        else:
            tally.findings.append(f"{kind} {pattern(path)} ({'.'.join(map(str, path))})")
    return tally


# ------------------------------------------------------------------ semantic attacks
def _records_of(b: dict[str, Any], kinds: tuple[str, ...]) -> list[int]:
    return [i for i, r in enumerate(b["records"]) if r["kind"] in kinds]


def _drop_records(b: dict[str, Any], idents: set[str]) -> None:
    """Remove records and every lineage mention of them (a consistent lie, not a sloppy one)."""
    b["records"] = [r for r in b["records"] if r["identifier"] not in idents]
    for n in b["lineage"]["nodes"]:
        n["records"] = [x for x in n["records"] if x not in idents]
    b["lineage"]["edges"] = [e for e in b["lineage"]["edges"] if e["event"] not in idents]


def semantic_attacks(part: dict[str, Any], cert: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Issue 20's claim-changing attacks on a part bundle (``part``) and a certificate bundle (``cert``)."""
    nodes = sorted(part["lineage"]["nodes"], key=lambda n: n["level"])
    deepest = max(n["level"] for n in nodes)
    # the subject relabelled: another node of the lineage, another identifier of the same enterprise, the
    # certificate's records presented as the part's bundle
    b = copy.deepcopy(part)
    b["key"], b["identifier"] = nodes[1]["key"], nodes[1]["identifier"]
    yield "subject_is_another_node", b
    b = copy.deepcopy(part)
    b["identifier"] = b["identifier"][:-1] + ("9" if b["identifier"][-1] != "9" else "8")
    yield "subject_other_identifier", b
    b = copy.deepcopy(part)
    b["identifier"] = "88.1.99/" + b["identifier"].partition("/")[2]
    yield "subject_other_enterprise", b
    b = copy.deepcopy(cert)
    b["key"], b["identifier"] = part["key"], part["identifier"]
    yield "certificate_as_part", b
    # a middle node removed (its records and mentions): what is upstream of it becomes unrelated
    mid = next(n for n in nodes if 0 < n["level"] < deepest)
    b = copy.deepcopy(part)
    _drop_records(b, set(mid["records"]))
    b["lineage"]["nodes"] = [n for n in b["lineage"]["nodes"] if n["key"] != mid["key"]]
    yield "remove_middle_node", b
    # down to the subject alone, keeping the upstream records as "evidence"
    b = copy.deepcopy(part)
    b["lineage"]["nodes"] = [n for n in b["lineage"]["nodes"] if n["level"] == 0]
    b["lineage"]["edges"] = []
    yield "claim_subject_alone", b
    # the upstream end cut off consistently: not provable without completeness
    b = copy.deepcopy(part)
    cut = {n["key"] for n in nodes if n["level"] == deepest}
    cut_edges = {e["event"] for e in part["lineage"]["edges"] if e["from"] in cut}
    only_cut = ({x for n in nodes if n["key"] in cut for x in n["records"]}
                - {x for n in nodes if n["key"] not in cut for x in n["records"]})
    _drop_records(b, only_cut | cut_edges)
    b["lineage"]["nodes"] = [n for n in b["lineage"]["nodes"] if n["key"] not in cut]
    yield "truncate_upstream", b
    # an inspection (ObjectEvent) of a node dropped with its mention
    b = copy.deepcopy(part)
    edge_events = {e["event"] for e in part["lineage"]["edges"]}
    inspection = next(r["identifier"] for r in part["records"] if r["kind"] == "epcis_event"
                      and r["identifier"] not in edge_events)
    _drop_records(b, {inspection})
    yield "drop_inspection", b
    # the same, but only from the records (the lineage still names it)
    b = copy.deepcopy(part)
    b["records"] = [r for r in b["records"] if r["identifier"] != inspection]
    yield "drop_inspection_sloppy", b
    # a fake edge splicing the certificate bundle's records in
    b = copy.deepcopy(part)
    foreign = [r for r in cert["records"] if r["identifier"] not in {x["identifier"] for x in part["records"]}]
    if foreign:
        b["records"].append(foreign[0])
        b["lineage"]["edges"].append({"from": "hdl:" + foreign[0]["identifier"], "to": b["key"],
                                      "event": foreign[0]["identifier"]})
        yield "splice_foreign_record_by_fake_edge", b
        b = copy.deepcopy(part)
        b["records"].append(foreign[0])
        yield "unrelated_record", b
    # an edge between two real nodes through an event that does not link them
    b = copy.deepcopy(part)
    e0 = b["lineage"]["edges"][0]
    b["lineage"]["edges"].append({"from": nodes[-1]["key"], "to": b["key"], "event": e0["event"]})
    yield "fake_edge", b
    # a node's records swapped with another node's (relabel the bad one as the good one)
    b = copy.deepcopy(part)
    same = [n for n in b["lineage"]["nodes"] if n["level"] == nodes[1]["level"]]
    n0 = b["lineage"]["nodes"][0]
    b["lineage"]["nodes"][0] = {**n0, "key": nodes[1]["key"]}
    yield "relabel_node_key", b
    if len(same) > 1:
        b = copy.deepcopy(part)
        x, y = (n for n in b["lineage"]["nodes"] if n["key"] in {same[0]["key"], same[1]["key"]})
        x["records"], y["records"] = y["records"], x["records"]
        yield "swap_node_records", b
    # tree_size not the anchored size
    b = copy.deepcopy(part)
    p = next(r["proof"] for r in b["records"] if r["proof"])
    p["tree_size"] = p["tree_size"] + 1
    yield "tree_size_not_anchored_size", b
    # another enterprise's state proof relabelled as the proof of a record's prefix
    b = copy.deepcopy(part)
    target = b["records"][_records_of(b, ("epcis_event",))[0]]["identifier"].partition("/")[0]
    proofs = b.get("registry_proofs", [])
    other = next((e for e in proofs if e["prefix"] != target), None)
    if other is not None:
        b["registry_proofs"] = [{**e, "prefix": target} if e is other else e for e in proofs if e["prefix"] != target]
        yield "owner_proof_of_another_enterprise", b
