"""Verification of a whole upstream lineage: every record of the graph checked with
:func:`api.verification.verify_record`, the nearest failing node named."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from api.chain import ChainClient
from api.epcis.graph import Node, lineage_detail, lineage_record_ids, walk
from api.read_cache import load_facts_many
from api.verification import SealCache, verify_record


class _MemoChain:
    """Delegates to a ChainClient, caching ``get_anchor`` / ``get_anchor_by`` per root for one lineage verification."""

    def __init__(self, chain: ChainClient) -> None:
        self._chain = chain
        self._anchors: dict[bytes, Any] = {}
        self._by: dict[tuple[str, bytes], Any] = {}

    def get_anchor(self, root: bytes) -> Any:
        if root not in self._anchors:
            self._anchors[root] = self._chain.get_anchor(root)
        return self._anchors[root]

    def get_anchor_by(self, submitter: str, root: bytes) -> Any:
        key = (submitter.lower(), root)
        if key not in self._by:
            self._by[key] = self._chain.get_anchor_by(submitter, root)
        return self._by[key]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chain, name)


def verify_lineage(session: Session, node: Node, *, chain: ChainClient | None, seal_cache: SealCache,
                   depth: int) -> dict[str, Any]:
    """Verify every record of the upstream lineage of ``node`` with :func:`verify_record`.

    Answer: ``{identifier, key, lineage: "upstream", verified, records_checked, nodes: [{key, identifier,
    level, verified, records: [{identifier, kind, verified, failed: [{name, detail}]}]}],
    first_failure: {key, identifier, record, check, detail} | null}``. Nodes are in breadth-first
    order from ``node`` (level 0) towards the heats; ``first_failure`` is the nearest failing node.
    """
    lin = walk(session, node, direction="upstream", depth=depth)
    detail = lineage_detail(session, lin)
    ids = lineage_record_ids(session, detail)
    facts = load_facts_many(session.connection(), ids)  # records + owners + batches: one Core query, no ORM
    memo: Any = _MemoChain(chain) if chain is not None else None
    verdicts: dict[str, dict[str, Any]] = {}
    for ident in ids:
        f = facts.get(ident)
        if f is None:
            verdicts[ident] = {"identifier": ident, "kind": None, "verified": False,
                               "failed": [{"name": "record", "detail": "record missing"}]}
            continue
        rec = f.record
        res = verify_record(None, rec, chain=memo, seal_cache=seal_cache, owner=f.owner,
                            batches={f.batch.id: f.batch} if f.batch is not None else {})
        verdicts[ident] = {"identifier": ident, "kind": rec.kind, "verified": res["verified"],
                           "failed": [{"name": c["name"], "detail": c["detail"]} for c in res["checks"] if not c["ok"]]}
    nodes_out = []
    first: dict[str, Any] | None = None
    for n in detail["nodes"]:
        rs = [verdicts[r["identifier"]] for r in n["records"]]
        ok = all(r["verified"] for r in rs)
        nodes_out.append({"key": n["key"], "identifier": n["identifier"], "level": n["level"], "label": n["label"],
                          "verified": ok, "records": rs})
        if not ok and first is None:
            bad = next(r for r in rs if not r["verified"])
            check = bad["failed"][0] if bad["failed"] else {"name": "?", "detail": ""}
            first = {"key": n["key"], "identifier": n["identifier"], "record": bad["identifier"],
                     "check": check["name"], "detail": check["detail"]}
    return {"identifier": node.identifier, "key": node.key, "lineage": "upstream",
            "verified": first is None and bool(ids), "records_checked": len(ids), "nodes": nodes_out,
            "first_failure": first}
