"""EPCIS 2.0 capture, query and the lineage graph on the database (the caller owns the session).

* :func:`capture_document` — validate (GS1 JSON Schema + our rules), compute GS1 event hash IDs,
  then store every new event as a signed ``epcis_event`` record with its query/graph rows, in one
  transaction (all or nothing). Already-stored hashes are idempotent; error declarations (EPCIS 2.0
  §7.4.1.4) retract the original event and link the corrective event IDs.
* :func:`resolve_node` — ``88.x.y/suffix`` identifiers, EPC URNs (instance or class) and GS1 Digital
  Link URIs to one canonical node key.
* :func:`query_events` — the common SimpleEventQuery parameters (EPCIS 2.0 §8.2.7.1) with keyset
  pagination.
* :func:`build_lineage` — breadth-first walk over ``lineage_edges`` upstream (towards heats) or
  downstream (the recall list), ignoring retracted events.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from api.bulk import insert_rows
from api.epcis_models import (
    RECORD_KIND_EPCIS_EVENT,
    RECORD_KIND_ERROR_DECLARATION,
    EpcisEvent,
    EpcisEventEpc,
    EpcisObject,
    LineageEdge,
)
from api.models import RECORD_KIND_COIL, Enterprise, Record
from provenance.canonical import canonicalize
from provenance.epcis import (
    HDL_SCHEME,
    EpcisInvalid,
    EpcisIssue,
    canonical_epc,
    cbv_short,
    document_events,
    epc_for_suffix,
    epc_kind,
    event_epcs,
    event_hash_ids,
    lineage_links,
    suffix_for_epc,
    validate_document,
)
from provenance.errors import InvalidIdentifier
from provenance.identifiers import parse_identifier

IN_CHUNK = 500
MAX_DEPTH = 1000


class NotFound(Exception):
    """The identifier / EPC is not known (→ 404)."""


class BadRequest(Exception):
    """Invalid input; ``issues`` are ``{field, rule, message[, event_index]}`` dicts (→ 422)."""

    def __init__(self, issues: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{i['field']}: {i['message']}" for i in issues[:5]))
        self.issues = issues


def _issue_dict(i: EpcisIssue, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"field": (prefix + i.field) if prefix else i.field, "rule": i.rule, "message": i.message}
    if i.event_index is not None:
        out["event_index"] = i.event_index
    return out


def event_hex(event_hash: str) -> str:
    """The 64 hex digits of ``ni:///sha-256;<hex>?ver=CBV2.0``."""
    return event_hash.split(";", 1)[1].split("?", 1)[0]


def parse_time(value: Any) -> datetime:
    """ISO 8601 date-time with offset (EPCIS ``eventTime``) → aware datetime; ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 date-time string, got {value!r}")
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone offset")
    return dt.astimezone(UTC)  # stored and compared in UTC (SQLite keeps no offset)


def _chunks(items: Sequence[Any], n: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


# ------------------------------------------------------------------------------------------ capture
@dataclass
class CaptureResult:
    """Outcome of one capture: hash IDs in document order and per-event status."""

    event_ids: list[str]
    events: list[dict[str, Any]]
    created: int


Signer = Callable[[str, str, bytes], tuple[str, bool]]
"""``signer(identifier, kind, digest) -> (signature hex, signed_by_client)``."""


def _prepare(doc: dict[str, Any], schema: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str], list[list[Any]]]:
    issues = [_issue_dict(i) for i in validate_document(doc, schema)]
    if issues:
        raise BadRequest(issues)
    events = document_events(doc)
    base = "epcisBody.eventList" if "eventList" in doc.get("epcisBody", {}) else "epcisBody.event"
    try:
        hashes = event_hash_ids(doc)
    except EpcisInvalid as exc:
        raise BadRequest([_issue_dict(i) for i in exc.issues]) from exc
    refs: list[list[Any]] = []
    for i, ev in enumerate(events):
        where = f"{base}[{i}]." if base.endswith("eventList") else f"{base}."
        try:
            parse_time(ev.get("eventTime"))
        except ValueError as exc:
            issues.append({"field": where + "eventTime", "rule": "date-time", "message": str(exc), "event_index": i})
        try:
            refs.append(event_epcs(ev, index=i))
        except EpcisInvalid as exc:
            issues.extend(_issue_dict(x, where) for x in exc.issues)
            refs.append([])
        decl = ev.get("errorDeclaration")
        if decl is not None and not isinstance(decl.get("correctiveEventIDs", []), list):
            issues.append({"field": where + "errorDeclaration.correctiveEventIDs", "rule": "type",
                           "message": "must be a list of event IDs", "event_index": i})
    if issues:
        raise BadRequest(issues)
    return events, hashes, refs


def capture_document(
    session: Session,
    *,
    enterprise: Enterprise,
    doc: dict[str, Any],
    schema: dict[str, Any],
    chain_id: int,
    sign: Signer,
) -> CaptureResult:
    """Validate and store an EPCISDocument (EPCIS 2.0 §8.2 capture interface semantics).

    All or nothing: on any invalid event nothing is written and :class:`BadRequest` lists every
    issue (``field`` = JSON path, ``event_index``). The session is flushed, not committed.
    Thousands of events per document: stored state is read with chunked ``IN`` queries and the rows
    (records, events, EPC references, lineage edges, new objects) are written with multi-row INSERTs
    (:func:`api.bulk.insert_rows`), so the caller's single commit makes the whole document durable.

    Returns:
        :class:`CaptureResult` with ``event_ids`` (GS1 event hash IDs in document order) and per event
        ``{index, eventID, identifier, status: created|duplicate|error_declaration|declaration_duplicate}``.
    """
    if not isinstance(doc, dict):
        raise BadRequest([{"field": "body", "rule": "type", "message": "an EPCISDocument must be a JSON object"}])
    events, hashes, refs = _prepare(doc, schema)
    context = doc.get("@context")
    assert enterprise.id is not None
    ent_id = enterprise.id
    now = datetime.now(UTC)
    # --- what is stored already (one chunked IN query instead of one query per event)
    stored: dict[tuple[str, bool], tuple[EpcisEvent, str]] = {}
    for chunk in _chunks(sorted(set(hashes))):
        for ev_row, ident in session.exec(
            select(EpcisEvent, Record.identifier).join(Record, col(Record.id) == EpcisEvent.record_id)
            .where(col(EpcisEvent.event_hash).in_(list(chunk)))
        ).all():
            stored.setdefault((ev_row.event_hash, ev_row.is_declaration), (ev_row, ident))
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, bool], str] = {}
    new_rows: list[dict[str, Any]] = []  # per new event: record + event columns, in document order
    for i, (ev, h, epcs) in enumerate(zip(events, hashes, refs, strict=True)):
        is_decl = isinstance(ev.get("errorDeclaration"), dict)
        kind = RECORD_KIND_ERROR_DECLARATION if is_decl else RECORD_KIND_EPCIS_EVENT
        identifier = f"{enterprise.prefix}/{'ed' if is_decl else 'ev'}-{event_hex(h)}"
        if (h, is_decl) in seen:
            out.append({"index": i, "eventID": h, "identifier": seen[(h, is_decl)], "status": "duplicate"})
            continue
        if (h, is_decl) in stored:
            ident = stored[(h, is_decl)][1]
            seen[(h, is_decl)] = ident
            out.append({"index": i, "eventID": h, "identifier": ident,
                        "status": "declaration_duplicate" if is_decl else "duplicate"})
            continue
        document = {"@context": context, "eventHashID": h, "event": ev} if context is not None else {
            "eventHashID": h, "event": ev}
        canonical = canonicalize(document)
        digest = hashlib.sha256(canonical).digest()
        signature, by_client = sign(identifier, kind, digest)
        decl = ev.get("errorDeclaration") if is_decl else None
        new_rows.append({
            "index": i, "hash": h, "is_decl": is_decl, "epcs": epcs, "ev": ev,
            "record": {"identifier": identifier, "kind": kind, "enterprise_id": ent_id,
                       "document": canonical.decode("utf-8"), "record_digest": "0x" + digest.hex(),
                       "signature": signature, "signer": enterprise.address, "signed_by_client": by_client,
                       "chain_id": chain_id, "status": "pending", "batch_id": None, "leaf_index": None,
                       "supersedes": None, "superseded_by": None, "created_at": now},
            "event": {"event_hash": h, "is_declaration": is_decl,
                      "event_id": ev.get("eventID") if isinstance(ev.get("eventID"), str) else None,
                      "event_type": str(ev.get("type")),
                      "action": ev.get("action") if isinstance(ev.get("action"), str) else None,
                      "biz_step": cbv_short("bizStep", ev.get("bizStep")),
                      "disposition": cbv_short("disposition", ev.get("disposition")),
                      "event_time": parse_time(ev.get("eventTime")),
                      "biz_location": _loc(ev.get("bizLocation")), "read_point": _loc(ev.get("readPoint")),
                      "enterprise_id": ent_id, "retracted": is_decl,
                      "error_reason": cbv_short("disposition", (decl or {}).get("reason")) if decl else None,
                      "corrective_event_ids": list((decl or {}).get("correctiveEventIDs") or []),
                      "created_at": now},
        })
        seen[(h, is_decl)] = identifier
    # --- retractions (EPCIS 2.0 §7.4.1.4), resolved in document order before anything is written
    originals: dict[str, dict[str, Any]] = {}
    declarations: dict[str, dict[str, Any]] = {}
    for row in new_rows:
        h, ev_cols = row["hash"], row["event"]
        if row["is_decl"]:
            declarations[h] = ev_cols
            target = originals.get(h)
            if target is not None:
                _retract_cols(target, ev_cols)
                row["retracted"] = True
            elif (h, False) in stored:
                original = stored[(h, False)][0]
                original.retracted = True
                original.error_reason = ev_cols["error_reason"]
                original.corrective_event_ids = list(ev_cols["corrective_event_ids"])
                session.add(original)
                row["retracted"] = True
            else:
                row["retracted"] = False
        else:
            originals[h] = ev_cols
            earlier = declarations.get(h) or (
                _cols(stored[(h, True)][0]) if (h, True) in stored else None)
            if earlier is not None:
                _retract_cols(ev_cols, earlier)
    # --- bulk writes: records, events, then EPC references, lineage edges and new objects
    record_ids = insert_rows(session, Record.__table__, [r["record"] for r in new_rows], returning_id=True)
    for row, rid in zip(new_rows, record_ids, strict=True):
        row["event"]["record_id"] = rid
    event_pks = insert_rows(session, EpcisEvent.__table__, [r["event"] for r in new_rows], returning_id=True)
    epc_rows: list[dict[str, Any]] = []
    edge_rows: list[dict[str, Any]] = []
    wanted: dict[str, str] = {}
    for row, pk in zip(new_rows, event_pks, strict=True):
        i, h, identifier = row["index"], row["hash"], row["record"]["identifier"]
        if row["is_decl"]:
            out.append({"index": i, "eventID": h, "identifier": identifier, "status": "error_declaration",
                        "retracted": row["retracted"]})
            continue
        for ref in dict.fromkeys(row["epcs"]):
            epc_rows.append({"event_pk": pk, "epc": ref.key, "role": ref.role})
            wanted.setdefault(ref.key, ref.raw)
        for link in dict.fromkeys(lineage_links(row["ev"], row["epcs"])):
            edge_rows.append({"src": link.src, "dst": link.dst, "event_pk": pk})
        out.append({"index": i, "eventID": h, "identifier": identifier, "status": "created"})
    insert_rows(session, EpcisEventEpc.__table__, epc_rows)
    insert_rows(session, LineageEdge.__table__, edge_rows)
    known: set[str] = set()
    for chunk in _chunks(list(wanted)):
        known.update(session.exec(select(EpcisObject.key).where(col(EpcisObject.key).in_(list(chunk)))).all())
    insert_rows(session, EpcisObject.__table__, [_object_row(k, raw, enterprise) for k, raw in wanted.items()
                                                 if k not in known])
    out.sort(key=lambda e: e["index"])
    session.flush()
    return CaptureResult(event_ids=list(hashes), events=out, created=len(new_rows))


def _cols(ev: EpcisEvent) -> dict[str, Any]:
    return {"error_reason": ev.error_reason, "corrective_event_ids": list(ev.corrective_event_ids)}


def _retract_cols(original: dict[str, Any], declaration: dict[str, Any]) -> None:
    original["retracted"] = True
    original["error_reason"] = declaration["error_reason"]
    original["corrective_event_ids"] = list(declaration["corrective_event_ids"])


def _object_row(key: str, raw: str, enterprise: Enterprise) -> dict[str, Any]:
    if key.startswith(HDL_SCHEME):
        identifier = key[len(HDL_SCHEME):]
    else:
        suffix = suffix_for_epc(key) or ("x-" + hashlib.sha256(key.encode()).hexdigest()[:40])
        identifier = f"{enterprise.prefix}/{suffix}"
    return {"key": key, "identifier": identifier, "raw": raw[:300], "kind": epc_kind(key),
            "enterprise_id": enterprise.id}


def _loc(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        try:
            return canonical_epc(value["id"])[:300]
        except EpcisInvalid:
            return value["id"][:300]
    return None


# ------------------------------------------------------------------------------------------ resolve
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
        BadRequest: malformed (field ``path.identifier``). NotFound: well-formed but unknown.
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
        raise BadRequest([{"field": "path.identifier", "rule": "identifier",
                           "message": f"{text!r} is neither an identifier 88.<industry>.<enterprise>/<suffix>, an "
                                      "EPC URN (urn:epc:…) nor a GS1 Digital Link URI (https://id.gs1.org/…)"}])
    try:
        key = canonical_epc(text)
    except EpcisInvalid as exc:
        raise BadRequest([{"field": "path.identifier", "rule": "epc", "message": exc.issues[0].message}]) from exc
    obj = session.exec(select(EpcisObject).where(EpcisObject.key == key)).first()
    if obj is not None:
        return Node(obj.key, obj.identifier)
    if key.startswith(HDL_SCHEME):
        return resolve_node(session, key[len(HDL_SCHEME):])
    raise NotFound(f"{text} is not named by any captured event")


# ------------------------------------------------------------------------------------------ query
QUERY_PARAMS = ("eventType", "EQ_bizStep", "EQ_disposition", "MATCH_epc", "MATCH_anyEPC", "GE_eventTime",
                "LT_eventTime", "EQ_bizLocation", "perPage", "nextPageToken")


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def _token(last_id: int, filters: str) -> str:
    raw = json.dumps({"after": last_id, "q": hashlib.sha256(filters.encode()).hexdigest()[:16]})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _untoken(token: str, filters: str) -> int:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after = int(raw["after"])
        same = raw["q"] == hashlib.sha256(filters.encode()).hexdigest()[:16]
    except Exception as exc:  # noqa: BLE001 - any garbage is a 422
        raise BadRequest([{"field": "query.nextPageToken", "rule": "token",
                           "message": "malformed page token"}]) from exc
    if not same:
        raise BadRequest([{"field": "query.nextPageToken", "rule": "token",
                           "message": "page token belongs to a query with other parameters"}])
    return after


def _epc_keys(values: list[str], field: str) -> list[str]:
    keys = []
    for v in values:
        try:
            keys.append(canonical_epc(v))
        except EpcisInvalid as exc:
            raise BadRequest([{"field": f"query.{field}", "rule": "epc", "message": exc.issues[0].message}]) from exc
    return keys


def query_events(session: Session, params: dict[str, list[str]], *, per_page: int,
                 page_token: str | None, extra: Sequence[Any] = ()) -> tuple[list[dict[str, Any]], str | None]:
    """Run a SimpleEventQuery subset; returns ``(events, next_page_token)``.

    Parameters (EPCIS 2.0 §8.2.7.1; repeated or comma-separated values are OR-ed): ``eventType``,
    ``EQ_bizStep`` / ``EQ_disposition`` (bare CBV word or either URI form), ``MATCH_epc`` (epcList,
    childEPCs and quantity classes), ``MATCH_anyEPC`` (also parentID, inputs, outputs), ``GE_eventTime``
    / ``LT_eventTime`` (ISO 8601 with offset), ``EQ_bizLocation``. Each event is returned as captured
    with ``eventID`` set to its hash ID when it had none, plus an ``errorDeclaration`` when retracted.
    Order: capture order; keyset pagination by ``nextPageToken``.

    ``extra``: further SQL conditions on :class:`EpcisEvent` (the EPCIS REST binding's other simple-query
    parameters, built in ``api/routes/epcis_rest.py``); name their parameters in ``params`` too, so that a
    page token stays bound to the whole query.
    """
    filters = json.dumps({k: sorted(_split(v)) for k, v in sorted(params.items())}, sort_keys=True)
    stmt = select(EpcisEvent, Record).join(Record, col(Record.id) == EpcisEvent.record_id).where(
        col(EpcisEvent.is_declaration).is_(False))
    types = _split(params.get("eventType"))
    for t in types:
        if t not in ("ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent"):
            raise BadRequest([{"field": "query.eventType", "rule": "enum", "message": f"unknown event type {t!r}"}])
    if types:
        stmt = stmt.where(col(EpcisEvent.event_type).in_(types))
    steps = [cbv_short("bizStep", v) for v in _split(params.get("EQ_bizStep"))]
    if steps:
        stmt = stmt.where(col(EpcisEvent.biz_step).in_(steps))
    disps = [cbv_short("disposition", v) for v in _split(params.get("EQ_disposition"))]
    if disps:
        stmt = stmt.where(col(EpcisEvent.disposition).in_(disps))
    locs = _split(params.get("EQ_bizLocation"))
    if locs:
        stmt = stmt.where(col(EpcisEvent.biz_location).in_(_epc_keys(locs, "EQ_bizLocation")))
    for name, op in (("GE_eventTime", "ge"), ("LT_eventTime", "lt")):
        vals = params.get(name)
        if vals:
            try:
                t = parse_time(vals[-1])
            except ValueError as exc:
                raise BadRequest([{"field": f"query.{name}", "rule": "date-time", "message": str(exc)}]) from exc
            stmt = stmt.where(col(EpcisEvent.event_time) >= t if op == "ge" else col(EpcisEvent.event_time) < t)
    for name, roles in (("MATCH_epc", ("epc", "child")), ("MATCH_anyEPC", ("epc", "child", "parent", "input",
                                                                            "output"))):
        vals = _split(params.get(name))
        if vals:
            keys = _epc_keys(vals, name)
            sub = select(EpcisEventEpc.event_pk).where(col(EpcisEventEpc.epc).in_(keys),
                                                        col(EpcisEventEpc.role).in_(roles))
            stmt = stmt.where(col(EpcisEvent.id).in_(sub))
    for cond in extra:  # issue 10: conditions of the EPCIS REST binding (EQ_eventID, EQ_action, MATCH_epcClass…)
        stmt = stmt.where(cond)
    if page_token:
        stmt = stmt.where(col(EpcisEvent.id) > _untoken(page_token, filters))
    rows = session.exec(stmt.order_by(col(EpcisEvent.id)).limit(per_page + 1)).all()
    more = len(rows) > per_page
    rows = rows[:per_page]
    events = [event_out(ev, rec) for ev, rec in rows]
    token = _token(rows[-1][0].id, filters) if more and rows and rows[-1][0].id is not None else None
    return events, token


def event_out(ev: EpcisEvent, rec: Record) -> dict[str, Any]:
    """The captured event JSON, ``eventID`` defaulting to the hash ID, with retraction info."""
    doc = json.loads(rec.document)
    event = dict(doc.get("event") or {})
    event.setdefault("eventID", ev.event_hash)
    if ev.retracted and "errorDeclaration" not in event:
        event["errorDeclaration"] = {"declarationTime": None, "reason": ev.error_reason,
                                     "correctiveEventIDs": list(ev.corrective_event_ids)}
    return event


# ------------------------------------------------------------------------------------------ lineage
@dataclass
class Lineage:
    """A lineage graph: nodes in BFS order (root first) with their level, and edges."""

    root: Node
    direction: str
    depth: int
    order: list[str]
    level: dict[str, int]
    edges: list[tuple[str, str, int]]  # (src, dst, event pk)


def walk(session: Session, root: Node, *, direction: str, depth: int) -> Lineage:
    """Breadth-first walk from ``root`` over non-retracted lineage edges.

    ``upstream`` follows edges backwards (part → blank → coil → slab → heat), ``downstream`` forwards
    (heat → … → every part and assembly made from it). ``depth`` bounds the number of hops.
    """
    order = [root.key]
    level = {root.key: 0}
    edges: list[tuple[str, str, int]] = []
    seen_edges: set[tuple[str, str, int]] = set()
    frontier = [root.key]
    for d in range(1, depth + 1):
        if not frontier:
            break
        nxt: list[str] = []
        for chunk in _chunks(frontier):
            near = col(LineageEdge.dst) if direction == "upstream" else col(LineageEdge.src)
            stmt = (select(LineageEdge.src, LineageEdge.dst, LineageEdge.event_pk)
                    .join(EpcisEvent, col(EpcisEvent.id) == LineageEdge.event_pk)
                    .where(near.in_(list(chunk)), col(EpcisEvent.retracted).is_(False)))
            for src, dst, pk in session.exec(stmt).all():
                if (src, dst, pk) not in seen_edges:
                    seen_edges.add((src, dst, pk))
                    edges.append((src, dst, pk))
                far = src if direction == "upstream" else dst
                if far not in level:
                    level[far] = d
                    order.append(far)
                    nxt.append(far)
        frontier = nxt
    return Lineage(root, direction, depth, order, level, edges)


def _records_by_id(session: Session, ids: Iterable[int]) -> dict[int, Record]:
    out: dict[int, Record] = {}
    id_list = sorted(set(ids))
    for chunk in _chunks(id_list):
        for rec in session.exec(select(Record).where(col(Record.id).in_(list(chunk)))).all():
            assert rec.id is not None
            out[rec.id] = rec
    return out


def lineage_detail(session: Session, lin: Lineage) -> dict[str, Any]:
    """Nodes with their records and edges with their events (the ``GET /v1/lineage`` body, without links).

    Shape: ``{root, identifier, direction, depth, nodes: [{key, identifier, epc, kind, level, label,
    non_conformant, certificate, records: [{identifier, kind, record_digest, status, eventID, type,
    bizStep, disposition, eventTime}]}], edges: [{from, to, from_identifier, to_identifier, event: {…}}]}``.
    A node's records: its coil certificate (if the node is one), the non-retracted Object/Transaction
    events naming it, and the graph's edge events that produced it (upstream) or consumed it.
    """
    keys = lin.order
    objs: dict[str, EpcisObject] = {}
    naming: dict[str, list[int]] = {k: [] for k in keys}
    for chunk in _chunks(keys):
        for obj in session.exec(select(EpcisObject).where(col(EpcisObject.key).in_(list(chunk)))).all():
            objs[obj.key] = obj
        stmt = (select(EpcisEventEpc.epc, EpcisEventEpc.event_pk)
                .join(EpcisEvent, col(EpcisEvent.id) == EpcisEventEpc.event_pk)
                .where(col(EpcisEventEpc.epc).in_(list(chunk)), col(EpcisEvent.retracted).is_(False),
                       col(EpcisEvent.event_type).in_(["ObjectEvent", "TransactionEvent"])))
        for epc, pk in session.exec(stmt).all():
            naming[epc].append(pk)
    for src, dst, pk in lin.edges:
        for k in (src, dst):
            if k in naming and pk not in naming[k]:
                naming[k].append(pk)
    all_pks = {pk for pks in naming.values() for pk in pks}
    events: dict[int, EpcisEvent] = {}
    for chunk in _chunks(sorted(all_pks)):
        for ev in session.exec(select(EpcisEvent).where(col(EpcisEvent.id).in_(list(chunk)))).all():
            assert ev.id is not None
            events[ev.id] = ev
    recs = _records_by_id(session, [ev.record_id for ev in events.values()])
    cert_ids = [k[len(HDL_SCHEME):] for k in keys if k.startswith(HDL_SCHEME)]
    certs: dict[str, Record] = {}
    for chunk in _chunks(cert_ids):
        for rec in session.exec(select(Record).where(col(Record.identifier).in_(list(chunk)),
                                                     Record.kind == RECORD_KIND_COIL)).all():
            certs[rec.identifier] = rec

    def ev_brief(pk: int) -> dict[str, Any]:
        ev = events[pk]
        rec = recs[ev.record_id]
        return {"identifier": rec.identifier, "kind": rec.kind, "record_digest": rec.record_digest,
                "status": rec.status, "eventID": ev.event_hash, "type": ev.event_type, "action": ev.action,
                "bizStep": ev.biz_step, "disposition": ev.disposition, "eventTime": _utc(ev.event_time).isoformat()}

    nodes = []
    for k in keys:
        obj = objs.get(k)
        ident = obj.identifier if obj else (k[len(HDL_SCHEME):] if k.startswith(HDL_SCHEME) else None)
        node_events = sorted((ev_brief(pk) for pk in naming[k] if pk in events), key=lambda e: e["eventTime"])
        records = list(node_events)
        cert_out = None
        cert = certs.get(k[len(HDL_SCHEME):]) if k.startswith(HDL_SCHEME) else None
        if cert is not None:
            cert_out = {"identifier": cert.identifier, "record_digest": cert.record_digest, "status": cert.status,
                        "summary": _cert_summary(cert)}
            records.insert(0, {"identifier": cert.identifier, "kind": cert.kind, "record_digest": cert.record_digest,
                               "status": cert.status, "eventID": None, "type": "certificate", "action": None,
                               "bizStep": None, "disposition": None,
                               "eventTime": _utc(cert.created_at).isoformat()})
        verdicts = [e["disposition"] for e in node_events if e["disposition"] in ("conformant", "non_conformant")]
        nodes.append({
            "key": k, "identifier": ident, "epc": obj.raw if obj else k, "kind": obj.kind if obj else epc_kind(k),
            "level": lin.level[k], "label": _label(k, cert_out),
            "non_conformant": bool(verdicts) and verdicts[-1] == "non_conformant",
            "certificate": cert_out, "records": records,
        })
    idents = {n["key"]: n["identifier"] for n in nodes}
    edges = [{"from": s, "to": d, "from_identifier": idents.get(s), "to_identifier": idents.get(d),
              "event": ev_brief(pk)} for s, d, pk in lin.edges if pk in events]
    return {"root": lin.root.key, "identifier": lin.root.identifier, "direction": lin.direction, "depth": lin.depth,
            "nodes": nodes, "edges": edges}


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _cert_summary(rec: Record) -> dict[str, Any]:
    from provenance.certificate import summarize_certificate

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


def now_iso() -> str:
    """Current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat()


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
    for chunk in _chunks(list(identifiers)):
        for rec in session.exec(select(Record).where(col(Record.identifier).in_(list(chunk)))).all():
            out[rec.identifier] = rec
    return out


def any_of(*conds: Any) -> Any:
    """SQL OR helper."""
    return or_(*conds)
