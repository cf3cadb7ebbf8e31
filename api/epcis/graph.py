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

from sqlalchemy import bindparam, literal, null, text
from sqlalchemy import select as core_select
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


_OBJ = EpcisObject.__table__  # type: ignore[attr-defined]
_EV = EpcisEvent.__table__  # type: ignore[attr-defined]
_EEPC = EpcisEventEpc.__table__  # type: ignore[attr-defined]
_REC = Record.__table__  # type: ignore[attr-defined]
_NODE_BY_IDENTIFIER = core_select(_OBJ.c.key, _OBJ.c.identifier).where(_OBJ.c.identifier == bindparam("identifier"))
_NODE_BY_KEY = core_select(_OBJ.c.key, _OBJ.c.identifier).where(_OBJ.c.key == bindparam("key"))
_RECORD_KIND = core_select(_REC.c.kind).where(_REC.c.identifier == bindparam("identifier")).limit(1)


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
    conn = session.connection()
    if is_ours:
        obj = conn.execute(_NODE_BY_IDENTIFIER, {"identifier": text}).first()
        if obj is not None:
            return Node(obj.key, obj.identifier)
        kind = conn.execute(_RECORD_KIND, {"identifier": text}).scalar()
        if kind == RECORD_KIND_COIL:
            return Node(HDL_SCHEME + text, text)
        key = epc_for_suffix(text.partition("/")[2])
        if key is not None:
            obj = conn.execute(_NODE_BY_KEY, {"key": key}).first()
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
    obj = conn.execute(_NODE_BY_KEY, {"key": key}).first()
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


def lineage_detail(session: Session, lin: Lineage) -> dict[str, Any]:
    """Nodes with their records and edges with their events (the ``GET /v1/lineage`` body, without links).

    Shape: ``{root, identifier, direction, depth, nodes: [{key, identifier, epc, kind, level, label,
    non_conformant, certificate, records: [{identifier, kind, record_digest, status, eventID, type,
    bizStep, disposition, eventTime}]}], edges: [{from, to, from_identifier, to_identifier, event}]}``.
    A node's records: its coil certificate (if the node is one), the non-retracted Object/Transaction
    events naming it, and the graph's edge events that produced it (upstream) or consumed it.
    Read with three Core queries per 1,000 nodes (mapped objects with the events naming them, events with
    their records, coil certificates); no ORM objects are built.
    """
    objs, naming = _naming_events(session, lin)
    events = _events_by_pk(session, {pk for pks in naming.values() for pk in pks})
    briefs = {pk: _event_brief(ev) for pk, ev in events.items()}
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


#: in one statement, the mapped objects among some node keys (``"o", key, identifier, raw, kind, NULL``) and the
#: non-retracted Object/Transaction events naming them (``"n", epc, NULL, NULL, NULL, event pk``)
_OBJECTS_AND_NAMING = (
    core_select(literal("o").label("tag"), _OBJ.c.key, _OBJ.c.identifier, _OBJ.c.raw, _OBJ.c.kind,
                null().label("event_pk"))
    .where(_OBJ.c.key.in_(bindparam("keys", expanding=True)))
    .union_all(core_select(literal("n"), _EEPC.c.epc, null(), null(), null(), _EEPC.c.event_pk)
               .join(_EV, _EV.c.id == _EEPC.c.event_pk)
               .where(_EEPC.c.epc.in_(bindparam("keys", expanding=True)), _EV.c.retracted.is_(False),
                      _EV.c.event_type.in_(["ObjectEvent", "TransactionEvent"]))))
#: events by pk with what a lineage answer shows of them and of their records (one join, no documents)
_EVENTS = (core_select(_EV.c.id, _EV.c.event_hash, _EV.c.event_type, _EV.c.action, _EV.c.biz_step,
                       _EV.c.disposition, _EV.c.event_time, _REC.c.identifier, _REC.c.kind, _REC.c.record_digest,
                       _REC.c.status)
           .join(_REC, _REC.c.id == _EV.c.record_id)
           .where(_EV.c.id.in_(bindparam("pks", expanding=True))))
#: coil certificate records among some identifiers
_CERTS = (core_select(_REC.c.identifier, _REC.c.kind, _REC.c.record_digest, _REC.c.status, _REC.c.document,
                      _REC.c.created_at)
          .where(_REC.c.identifier.in_(bindparam("idents", expanding=True)), _REC.c.kind == RECORD_KIND_COIL))


def _naming_events(session: Session, lin: Lineage) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """The mapped objects of the walk's nodes (rows ``key, identifier, raw, kind``), and per node the event
    pks naming it: non-retracted Object/Transaction events listing its EPC, plus the walk's edge events
    touching it."""
    conn = session.connection()
    objs: dict[str, Any] = {}
    naming: dict[str, list[int]] = {k: [] for k in lin.order}
    for chunk in in_chunks(lin.order):
        for row in conn.execute(_OBJECTS_AND_NAMING, {"keys": list(chunk)}).all():
            if row.tag == "o":
                objs[row.key] = row
            else:
                naming[row.key].append(int(row.event_pk))
    for src, dst, pk in lin.edges:
        for k in (src, dst):
            if k in naming and pk not in naming[k]:
                naming[k].append(pk)
    return objs, naming


def _events_by_pk(session: Session, pks: Iterable[int]) -> dict[int, Any]:
    """:data:`_EVENTS` rows by event pk."""
    conn = session.connection()
    events: dict[int, Any] = {}
    for chunk in in_chunks(sorted(set(pks))):
        for ev in conn.execute(_EVENTS, {"pks": list(chunk)}).all():
            events[int(ev.id)] = ev
    return events


def _certificates(session: Session, keys: Sequence[str]) -> dict[str, Any]:
    """Coil certificate records (:data:`_CERTS` rows) of the ``hdl:88.x.y/suffix`` nodes among ``keys``, by
    identifier."""
    conn = session.connection()
    certs: dict[str, Any] = {}
    for chunk in in_chunks([k[len(HDL_SCHEME):] for k in keys if k.startswith(HDL_SCHEME)]):
        for rec in conn.execute(_CERTS, {"idents": list(chunk)}).all():
            certs[rec.identifier] = rec
    return certs


def _event_brief(ev: Any) -> dict[str, Any]:
    """One event of a lineage answer from an :data:`_EVENTS` row."""
    return {"identifier": ev.identifier, "kind": ev.kind, "record_digest": ev.record_digest,
            "status": ev.status, "eventID": ev.event_hash, "type": ev.event_type, "action": ev.action,
            "bizStep": ev.biz_step, "disposition": ev.disposition, "eventTime": utc_iso(ev.event_time)}


def _node(key: str, level: int, obj: Any, node_events: list[dict[str, Any]], cert: Any) -> dict[str, Any]:
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


def _cert_summary(rec: Any) -> dict[str, Any]:
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
