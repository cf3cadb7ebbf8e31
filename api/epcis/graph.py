"""The lineage graph on the database: resolving identifiers to graph nodes and walking the edges.

* :func:`resolve_node` — ``88.x.y/suffix`` identifiers, EPC URNs (instance or class), GS1 Digital Link
  URIs and ``hdl:`` keys to one canonical node key;
* :func:`walk` — breadth-first walk over ``lineage_edges`` upstream (towards heats) or downstream
  (the recall list), ignoring retracted events (EPCIS 2.0 §7.4.1.4), in one recursive query;
* :func:`lineage_detail` — the nodes with their records and the edges with their events
  (``GET /v1/lineage`` body); :func:`recall_list`, :func:`lineage_record_ids`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select as core_select
from sqlalchemy import text
from sqlmodel import Session, col, select

from api.bulk import in_chunks
from api.epcis.models import EpcisEvent, EpcisEventEpc, EpcisObject
from api.errors import UnprocessableError
from api.models import RECORD_KIND_COIL, Record, utc_iso
from provenance.certificate import summarize_certificate
from provenance.epcis import HDL_SCHEME, EpcisInvalid, canonical_epc, epc_for_suffix, epc_kind
from provenance.errors import InvalidIdentifier, Issue
from provenance.identifiers import parse_identifier


class NotFound(Exception):
    """The identifier / EPC is not known (→ 404)."""


@dataclass
class Node:
    """A resolved graph node: canonical ``key`` and its ``identifier`` (``88.x.y/suffix``) if mapped."""

    key: str
    identifier: str | None


def resolve_node(session: Session, raw: str) -> Node:
    """Resolve a path ``{identifier}``: ``88.x.y/suffix`` (a coil certificate, a mapped object, or a
    suffix that encodes a GS1 key), an EPC URN (``urn:epc:id:…`` / ``urn:epc:class:…``), a GS1 Digital
    Link URI (any host) or ``hdl:88.x.y/suffix``.

    Raises:
        UnprocessableError: malformed (field ``path.identifier``). NotFound: well-formed but unknown.
    """
    text = raw.strip()
    try:
        parse_identifier(text)
        is_ours = True
    except InvalidIdentifier:
        is_ours = False
    if is_ours:
        obj = session.exec(select(EpcisObject).where(EpcisObject.identifier == text)).first()
        if obj is not None:
            return Node(obj.key, obj.identifier)
        rec = session.exec(select(Record).where(Record.identifier == text)).first()
        if rec is not None and rec.kind == RECORD_KIND_COIL:
            return Node(HDL_SCHEME + text, text)
        key = epc_for_suffix(text.partition("/")[2])
        if key is not None:
            obj = session.exec(select(EpcisObject).where(EpcisObject.key == key)).first()
            if obj is not None:
                return Node(obj.key, obj.identifier)
        raise NotFound(f"identifier {text} is not registered")
    if not text.startswith(("urn:", "http://", "https://", HDL_SCHEME)):
        raise UnprocessableError([Issue(
            "path.identifier", "identifier", f"{text!r} is neither an identifier 88.<industry>.<enterprise>/<suffix>, "
            "an EPC URN (urn:epc:…) nor a GS1 Digital Link URI (https://id.gs1.org/…)")])
    try:
        key = canonical_epc(text)
    except EpcisInvalid as exc:
        raise UnprocessableError([Issue("path.identifier", "epc", exc.issues[0].message)]) from exc
    obj = session.exec(select(EpcisObject).where(EpcisObject.key == key)).first()
    if obj is not None:
        return Node(obj.key, obj.identifier)
    if key.startswith(HDL_SCHEME):
        return resolve_node(session, key[len(HDL_SCHEME):])
    raise NotFound(f"{text} is not named by any captured event")



@dataclass
class Lineage:
    """A lineage graph: nodes in BFS order (root first) with their level, and edges."""

    root: Node
    direction: str
    depth: int
    order: list[str]
    level: dict[str, int]
    edges: list[tuple[str, str, int]]  # (src, dst, event pk)


_REACH_SQL = """
WITH RECURSIVE reach(node, lvl) AS (
    SELECT CAST(:root AS TEXT), 0
    UNION
    SELECT CAST(e.{far} AS TEXT), r.lvl + 1
    FROM reach r
    JOIN lineage_edges e ON e.{near} = r.node
    JOIN epcis_events ev ON ev.id = e.event_pk
    WHERE ev.retracted = :retracted AND r.lvl < :depth
)
SELECT e.src, e.dst, e.event_pk, m.lvl
FROM (SELECT node, MIN(lvl) AS lvl FROM reach GROUP BY node) m
JOIN lineage_edges e ON e.{near} = m.node
JOIN epcis_events ev ON ev.id = e.event_pk
WHERE ev.retracted = :retracted AND m.lvl < :depth
"""
"""Every non-retracted edge within ``depth`` hops of ``root``, with the hop level of its near end, in one
statement (SQLite ≥ 3.8.3 and PostgreSQL). ``reach`` holds distinct (node, level) pairs: ``UNION`` drops a
pair seen before, and ``lvl < :depth`` stops every path, so a cycle in the edges (a dishonest or mistaken
capture: A made from B made from A) ends at the depth limit instead of looping; at most nodes × depth rows."""

_REACH = {
    "upstream": text(_REACH_SQL.format(near="dst", far="src")),
    "downstream": text(_REACH_SQL.format(near="src", far="dst")),
}


def walk(session: Session, root: Node, *, direction: str, depth: int) -> Lineage:
    """Breadth-first walk from ``root`` over non-retracted lineage edges, read with one recursive query.

    ``upstream`` follows edges backwards (part → blank → coil → slab → heat), ``downstream`` forwards
    (heat → … → every part and assembly made from it). ``depth`` bounds the number of hops (≥ 1).
    The edges come from :data:`_REACH` (a recursive CTE); the breadth-first order is rebuilt in memory from
    them, edges of one node taken in (event pk, src, dst) order, so the answer does not depend on the
    database's row order. A node's level is its shortest distance from ``root``; cycles end (see
    :data:`_REACH_SQL`).
    """
    if direction not in _REACH:
        raise ValueError(f"direction must be upstream or downstream, got {direction!r}")
    rows = session.connection().execute(
        _REACH[direction], {"root": root.key, "depth": depth, "retracted": False}).all()
    near_of = 1 if direction == "upstream" else 0
    by_near: dict[str, list[tuple[str, str, int]]] = {}
    for src, dst, pk, _lvl in rows:
        edge = (str(src), str(dst), int(pk))
        by_near.setdefault(edge[near_of], []).append(edge)
    for edges_of in by_near.values():
        edges_of.sort(key=lambda e: (e[2], e[0], e[1]))
    order = [root.key]
    level = {root.key: 0}
    edges: list[tuple[str, str, int]] = []
    seen_edges: set[tuple[str, str, int]] = set()
    frontier = [root.key]
    for d in range(1, depth + 1):
        if not frontier:
            break
        nxt: list[str] = []
        for near in frontier:
            for edge in by_near.get(near, ()):
                if edge not in seen_edges:
                    seen_edges.add(edge)
                    edges.append(edge)
                far = edge[0] if direction == "upstream" else edge[1]
                if far not in level:
                    level[far] = d
                    order.append(far)
                    nxt.append(far)
        frontier = nxt
    return Lineage(root, direction, depth, order, level, edges)


def _records_by_id(session: Session, ids: Iterable[int]) -> dict[int, Any]:
    """``(id, identifier, kind, record_digest, status)`` rows by record id (Core, no documents loaded)."""
    table = Record.__table__  # type: ignore[attr-defined]
    stmt = core_select(table.c.id, table.c.identifier, table.c.kind, table.c.record_digest, table.c.status)
    out: dict[int, Any] = {}
    id_list = sorted(set(ids))
    for chunk in in_chunks(id_list):
        for row in session.connection().execute(stmt.where(table.c.id.in_(chunk))).all():
            out[int(row.id)] = row
    return out


def lineage_detail(session: Session, lin: Lineage) -> dict[str, Any]:
    """Nodes with their records and edges with their events (the ``GET /v1/lineage`` body, without links).

    Shape: ``{root, identifier, direction, depth, nodes: [{key, identifier, epc, kind, level, label,
    non_conformant, certificate, records: [{identifier, kind, record_digest, status, eventID, type,
    bizStep, disposition, eventTime}]}], edges: [{from, to, from_identifier, to_identifier, event: {…}}]}``.
    A node's records: its coil certificate (if the node is one), the non-retracted Object/Transaction
    events naming it, and the graph's edge events that produced it (upstream) or consumed it.
    """
    objs, naming = _naming_events(session, lin)
    events = _events_by_pk(session, {pk for pks in naming.values() for pk in pks})
    recs = _records_by_id(session, [ev.record_id for ev in events.values()])
    briefs = {pk: _event_brief(ev, recs[ev.record_id]) for pk, ev in events.items()}
    certs = _certificates(session, lin.order)
    nodes = []
    for k in lin.order:
        ordered = sorted((pk for pk in naming[k] if pk in events), key=lambda pk: _utc(events[pk].event_time))
        nodes.append(_node(k, lin.level[k], objs.get(k), [briefs[pk] for pk in ordered],
                           certs.get(k[len(HDL_SCHEME):]) if k.startswith(HDL_SCHEME) else None))
    idents = {n["key"]: n["identifier"] for n in nodes}
    edges = [{"from": s, "to": d, "from_identifier": idents.get(s), "to_identifier": idents.get(d),
              "event": briefs[pk]} for s, d, pk in lin.edges if pk in events]
    return {"root": lin.root.key, "identifier": lin.root.identifier, "direction": lin.direction, "depth": lin.depth,
            "nodes": nodes, "edges": edges}


def _naming_events(session: Session, lin: Lineage) -> tuple[dict[str, EpcisObject], dict[str, list[int]]]:
    """The mapped objects of the walk's nodes, and per node the event pks naming it: non-retracted
    Object/Transaction events listing its EPC, plus the walk's edge events touching it."""
    objs: dict[str, EpcisObject] = {}
    naming: dict[str, list[int]] = {k: [] for k in lin.order}
    for chunk in in_chunks(lin.order):
        for obj in session.exec(select(EpcisObject).where(col(EpcisObject.key).in_(chunk))).all():
            objs[obj.key] = obj
        stmt = (select(EpcisEventEpc.epc, EpcisEventEpc.event_pk)
                .join(EpcisEvent, col(EpcisEvent.id) == EpcisEventEpc.event_pk)
                .where(col(EpcisEventEpc.epc).in_(chunk), col(EpcisEvent.retracted).is_(False),
                       col(EpcisEvent.event_type).in_(["ObjectEvent", "TransactionEvent"])))
        for epc, pk in session.exec(stmt).all():
            naming[epc].append(pk)
    for src, dst, pk in lin.edges:
        for k in (src, dst):
            if k in naming and pk not in naming[k]:
                naming[k].append(pk)
    return objs, naming


def _events_by_pk(session: Session, pks: Iterable[int]) -> dict[int, EpcisEvent]:
    events: dict[int, EpcisEvent] = {}
    for chunk in in_chunks(sorted(set(pks))):
        for ev in session.exec(select(EpcisEvent).where(col(EpcisEvent.id).in_(chunk))).all():
            assert ev.id is not None
            events[ev.id] = ev
    return events


def _certificates(session: Session, keys: Sequence[str]) -> dict[str, Record]:
    """Coil certificate records of the ``hdl:88.x.y/suffix`` nodes among ``keys``, by identifier."""
    certs: dict[str, Record] = {}
    for chunk in in_chunks([k[len(HDL_SCHEME):] for k in keys if k.startswith(HDL_SCHEME)]):
        for rec in session.exec(select(Record).where(col(Record.identifier).in_(chunk),
                                                     Record.kind == RECORD_KIND_COIL)).all():
            certs[rec.identifier] = rec
    return certs


def _event_brief(ev: EpcisEvent, rec: Any) -> dict[str, Any]:
    return {"identifier": rec.identifier, "kind": rec.kind, "record_digest": rec.record_digest,
            "status": rec.status, "eventID": ev.event_hash, "type": ev.event_type, "action": ev.action,
            "bizStep": ev.biz_step, "disposition": ev.disposition, "eventTime": utc_iso(ev.event_time)}


def _node(key: str, level: int, obj: EpcisObject | None, node_events: list[dict[str, Any]],
          cert: Record | None) -> dict[str, Any]:
    """One node of :func:`lineage_detail`; ``node_events`` in event-time order."""
    records = list(node_events)
    cert_out = None
    if cert is not None:
        cert_out = {"identifier": cert.identifier, "record_digest": cert.record_digest, "status": cert.status,
                    "summary": _cert_summary(cert)}
        records.insert(0, {"identifier": cert.identifier, "kind": cert.kind, "record_digest": cert.record_digest,
                           "status": cert.status, "eventID": None, "type": "certificate", "action": None,
                           "bizStep": None, "disposition": None, "eventTime": utc_iso(cert.created_at)})
    verdicts = [e["disposition"] for e in node_events if e["disposition"] in ("conformant", "non_conformant")]
    ident = obj.identifier if obj else (key[len(HDL_SCHEME):] if key.startswith(HDL_SCHEME) else None)
    return {"key": key, "identifier": ident, "epc": obj.raw if obj else key,
            "kind": obj.kind if obj else epc_kind(key), "level": level, "label": _label(key, cert_out),
            "non_conformant": bool(verdicts) and verdicts[-1] == "non_conformant",
            "certificate": cert_out, "records": records}


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _cert_summary(rec: Record) -> dict[str, Any]:
    try:
        return summarize_certificate(json.loads(rec.document))
    except Exception:  # noqa: BLE001 - a summary problem must not hide the node
        return {}


def _label(key: str, cert: dict[str, Any] | None) -> str:
    if cert is not None:
        s = cert.get("summary") or {}
        return f"coil {s.get('coil') or ''} (heat {s.get('heat') or '?'}, {s.get('grade') or ''})".strip()
    if "/10/" in key:
        return "lot " + key.rsplit("/10/", 1)[1]
    if "/21/" in key:
        return "serial " + key.rsplit("/21/", 1)[1]
    return key


def recall_list(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node downstream of the root (level ≥ 1): ``{identifier, epc, key, level, non_conformant}``."""
    return [{"identifier": n["identifier"], "epc": n["epc"], "key": n["key"], "level": n["level"],
             "label": n["label"], "non_conformant": n["non_conformant"]}
            for n in detail["nodes"] if n["level"] >= 1]


def lineage_record_ids(session: Session, detail: dict[str, Any]) -> list[str]:
    """Identifiers of every record in a lineage (certificates first by node order, then events), unique."""
    out: list[str] = []
    for n in detail["nodes"]:
        for r in n["records"]:
            if r["identifier"] not in out:
                out.append(r["identifier"])
    return out


def records_by_identifier(session: Session, identifiers: Sequence[str]) -> dict[str, Record]:
    """Records for identifiers (chunked IN queries)."""
    out: dict[str, Record] = {}
    for chunk in in_chunks(list(identifiers)):
        for rec in session.exec(select(Record).where(col(Record.identifier).in_(list(chunk)))).all():
            out[rec.identifier] = rec
    return out
