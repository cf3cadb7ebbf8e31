"""EPCIS 2.0 capture on the database (EPCIS 2.0 §8.2 capture interface semantics; the caller owns the session).

:func:`capture_document` validates a whole EPCISDocument (GS1 JSON Schema + our rules), computes the
GS1 event hash IDs, then stores every new event as a signed ``epcis_event`` record with its query
and graph rows, all or nothing. Already-stored hashes are idempotent; error declarations
(EPCIS 2.0 §7.4.1.4) retract the original event and link the corrective event IDs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.bulk import copy_rows, in_chunks, insert_new_rows
from api.epcis.models import (
    RECORD_KIND_EPCIS_EVENT,
    RECORD_KIND_ERROR_DECLARATION,
    EpcisEvent,
    EpcisEventEpc,
    EpcisObject,
    LineageEdge,
)
from api.errors import ConflictError, UnprocessableError
from api.ingest import RecordSigner, announce, persist, prepare, record_row
from api.models import Enterprise, Record
from api.state import AppState
from provenance.epcis import (
    HDL_SCHEME,
    EpcisInvalid,
    canonical_epc,
    cbv_short,
    document_events,
    epc_kind,
    event_epcs,
    event_hash_ids,
    lineage_links,
    suffix_for_epc,
    validate_document,
)
from provenance.errors import Issue


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


@dataclass
class CaptureResult:
    """Outcome of one capture: hash IDs in document order, per-event status, number of new events."""

    event_ids: list[str]
    events: list[dict[str, Any]]
    created: int

    def body(self) -> dict[str, Any]:
        """The ``POST /v1/epcis/capture`` answer ``{eventIDs, captured, duplicates, events}``."""
        duplicates = sum(1 for e in self.events if e["status"] in ("duplicate", "declaration_duplicate"))
        return {"eventIDs": self.event_ids, "captured": self.created, "duplicates": duplicates, "events": self.events}


@dataclass
class _NewEvent:
    """A new event to store: its record row and ``epcis_events`` row, EPC references and retraction state."""

    index: int
    hash: str
    is_decl: bool
    epcs: list[Any]
    ev: dict[str, Any]
    record: dict[str, Any]
    event: dict[str, Any]
    retracted: bool = False


def _prepare(doc: dict[str, Any], schema: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str], list[list[Any]]]:
    issues = validate_document(doc, schema)
    if issues:
        raise UnprocessableError(issues)
    events = document_events(doc)
    base = "epcisBody.eventList" if "eventList" in doc.get("epcisBody", {}) else "epcisBody.event"
    try:
        hashes = event_hash_ids(doc)
    except EpcisInvalid as exc:
        raise UnprocessableError(exc.issues) from exc
    refs: list[list[Any]] = []
    for i, ev in enumerate(events):
        where = f"{base}[{i}]." if base.endswith("eventList") else f"{base}."
        try:
            parse_time(ev.get("eventTime"))
        except ValueError as exc:
            issues.append(Issue(where + "eventTime", "date-time", str(exc), i))
        try:
            refs.append(event_epcs(ev, index=i))
        except EpcisInvalid as exc:
            issues.extend(x.at(where) for x in exc.issues)
            refs.append([])
        decl = ev.get("errorDeclaration")
        if decl is not None and not isinstance(decl.get("correctiveEventIDs", []), list):
            issues.append(Issue(where + "errorDeclaration.correctiveEventIDs", "type",
                                "must be a list of event IDs", i))
    if issues:
        raise UnprocessableError(issues)
    return events, hashes, refs


def capture_events(session: Session, state: AppState, enterprise: Enterprise, doc: Any,
                   schema: dict[str, Any]) -> CaptureResult:
    """``POST /v1/epcis/capture``: :func:`capture_document` signed with the enterprise's keystore key,
    committed before returning, the anchoring worker woken.

    Raises:
        UnprocessableError: every issue of the document (nothing stored).
        ConflictError: a concurrent capture stored some of these very events (same GS1 event hash) and the
            one retry in a new transaction (which finds them stored: duplicates) failed too (nothing stored).
            Concurrent captures of different events naming the same EPCs both succeed.
        ChainUnavailable: chain id unknown (503).
    """
    signer = RecordSigner.for_request(state, enterprise)
    signer.chain_id  # noqa: B018 - an unknown chain id answers 503 before anything else
    for attempt in (1, 2):
        try:
            result = capture_document(session, enterprise=enterprise, doc=doc, schema=schema, signer=signer)
            session.commit()
            break
        except UnprocessableError:
            session.rollback()
            raise
        except IntegrityError as exc:
            session.rollback()
            # a concurrent capture committed some of these very events meanwhile: once more, in a new
            # transaction, they are found stored and answered as duplicates
            if attempt == 2:
                raise ConflictError("a concurrent capture stored some of these events; repeat the request") from exc
    announce(state, RECORD_KIND_EPCIS_EVENT, result.created)
    return result


def capture_document(session: Session, *, enterprise: Enterprise, doc: Any, schema: dict[str, Any],
                     signer: RecordSigner) -> CaptureResult:
    """Validate and store an EPCISDocument (EPCIS 2.0 §8.2 capture interface semantics).

    All or nothing: on any invalid event nothing is written and :class:`api.errors.UnprocessableError`
    lists every issue (``field`` = JSON path, ``event_index``). The session is flushed, not committed.
    Thousands of events per document: stored hashes are read with one ``= ANY(array)`` query (PostgreSQL) or
    chunked ``IN`` queries (SQLite); the rows (records from :func:`api.ingest.record_row`, events, EPC
    references, lineage edges) are written with :func:`api.bulk.copy_rows` and the shared EPC ↔ identifier
    rows with :func:`api.bulk.insert_new_rows` (``ON CONFLICT (key) DO NOTHING``: a concurrent capture naming
    the same objects is no conflict), so the caller's single commit makes the whole document durable.

    Returns:
        :class:`CaptureResult` with ``event_ids`` (GS1 event hash IDs in document order) and per event
        ``{index, eventID, identifier, status: created|duplicate|error_declaration|declaration_duplicate}``.
    """
    if not isinstance(doc, dict):
        raise UnprocessableError([Issue("body", "type", "an EPCISDocument must be a JSON object")])
    events, hashes, refs = _prepare(doc, schema)
    stored = _stored_events(session, hashes)
    out, new = _plan(doc, events, hashes, refs, stored, enterprise, signer)
    _resolve_retractions(session, new, stored)
    out.extend(_write(session, new, enterprise))
    out.sort(key=lambda e: e["index"])
    session.flush()
    return CaptureResult(event_ids=list(hashes), events=out, created=len(new))


def _stored_events(session: Session, hashes: list[str]) -> dict[tuple[str, bool], tuple[EpcisEvent, str]]:
    """Already-stored events by ``(hash, is_declaration)`` with their record identifier (one ``= ANY`` read on
    PostgreSQL, chunked ``IN`` reads elsewhere)."""
    stored: dict[tuple[str, bool], tuple[EpcisEvent, str]] = {}
    wanted = sorted(set(hashes))
    # PostgreSQL: one ``= ANY(array)`` parameter (an IN list of 500 binds per chunk cost ~40 µs of CPU per event)
    conditions = ([col(EpcisEvent.event_hash) == any_(bindparam("hashes", wanted, type_=ARRAY(String)))]
                  if session.connection().dialect.name == "postgresql" and wanted
                  else [col(EpcisEvent.event_hash).in_(chunk) for chunk in in_chunks(wanted)])
    for condition in conditions:
        for ev_row, ident in session.exec(
            select(EpcisEvent, Record.identifier).join(Record, col(Record.id) == EpcisEvent.record_id)
            .where(condition)
        ).all():
            stored.setdefault((ev_row.event_hash, ev_row.is_declaration), (ev_row, ident))
    return stored


def _plan(doc: dict[str, Any], events: list[dict[str, Any]], hashes: list[str], refs: list[list[Any]],
          stored: dict[tuple[str, bool], tuple[EpcisEvent, str]], enterprise: Enterprise,
          signer: RecordSigner) -> tuple[list[dict[str, Any]], list[_NewEvent]]:
    """Duplicates (answered at once) and the new events, each prepared and signed (steps 2–5 of
    :mod:`api.ingest`): identifier ``<prefix>/ev-<hash hex>`` (``ed-`` for error declarations)."""
    context = doc.get("@context")
    now = datetime.now(UTC)
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, bool], str] = {}
    new: list[_NewEvent] = []
    for i, (ev, h, epcs) in enumerate(zip(events, hashes, refs, strict=True)):
        is_decl = isinstance(ev.get("errorDeclaration"), dict)
        if (h, is_decl) in seen:
            out.append({"index": i, "eventID": h, "identifier": seen[(h, is_decl)], "status": "duplicate"})
            continue
        if (h, is_decl) in stored:
            seen[(h, is_decl)] = stored[(h, is_decl)][1]
            out.append({"index": i, "eventID": h, "identifier": seen[(h, is_decl)],
                        "status": "declaration_duplicate" if is_decl else "duplicate"})
            continue
        kind = RECORD_KIND_ERROR_DECLARATION if is_decl else RECORD_KIND_EPCIS_EVENT
        identifier = f"{enterprise.prefix}/{'ed' if is_decl else 'ev'}-{event_hex(h)}"
        document = {"eventHashID": h, "event": ev} if context is None else {
            "@context": context, "eventHashID": h, "event": ev}
        record = prepare(identifier, kind, document, hash_alg=signer.hash_alg)
        row = record_row(record, enterprise=enterprise, signature=signer.sign(identifier, record),
                         signed_by_client=False, chain_id=signer.chain_id, now=now)
        new.append(_NewEvent(i, h, is_decl, epcs, ev, row, _event_row(ev, h, is_decl, enterprise, now)))
        seen[(h, is_decl)] = identifier
    return out, new


def _event_row(ev: dict[str, Any], h: str, is_decl: bool, enterprise: Enterprise, now: datetime) -> dict[str, Any]:
    """The ``epcis_events`` columns of one event (``record_id`` is added once the record is inserted)."""
    decl = ev.get("errorDeclaration") if is_decl else None
    return {"event_hash": h, "is_declaration": is_decl,
            "event_id": ev.get("eventID") if isinstance(ev.get("eventID"), str) else None,
            "event_type": str(ev.get("type")),
            "action": ev.get("action") if isinstance(ev.get("action"), str) else None,
            "biz_step": cbv_short("bizStep", ev.get("bizStep")),
            "disposition": cbv_short("disposition", ev.get("disposition")),
            "event_time": parse_time(ev.get("eventTime")),
            "biz_location": _loc(ev.get("bizLocation")), "read_point": _loc(ev.get("readPoint")),
            "enterprise_id": enterprise.id, "retracted": is_decl,
            "error_reason": cbv_short("disposition", (decl or {}).get("reason")) if decl else None,
            "corrective_event_ids": list((decl or {}).get("correctiveEventIDs") or []),
            "created_at": now}


def _resolve_retractions(session: Session, new: list[_NewEvent],
                         stored: dict[tuple[str, bool], tuple[EpcisEvent, str]]) -> None:
    """Retractions (EPCIS 2.0 §7.4.1.4), resolved in document order before anything is written: a
    declaration retracts its original (new in this document or stored); an original arriving after
    its declaration is stored retracted."""
    originals: dict[str, dict[str, Any]] = {}
    declarations: dict[str, dict[str, Any]] = {}
    for row in new:
        h, ev_cols = row.hash, row.event
        if not row.is_decl:
            originals[h] = ev_cols
            earlier = declarations.get(h) or (_cols(stored[(h, True)][0]) if (h, True) in stored else None)
            if earlier is not None:
                _retract_cols(ev_cols, earlier)
            continue
        declarations[h] = ev_cols
        target = originals.get(h)
        if target is not None:
            _retract_cols(target, ev_cols)
            row.retracted = True
        elif (h, False) in stored:
            original = stored[(h, False)][0]
            original.retracted = True
            original.error_reason = ev_cols["error_reason"]
            original.corrective_event_ids = list(ev_cols["corrective_event_ids"])
            session.add(original)
            row.retracted = True


def _write(session: Session, new: list[_NewEvent], enterprise: Enterprise) -> list[dict[str, Any]]:
    """Bulk writes: records, events, then EPC references, lineage edges and new objects; the per-event
    answers of the new events."""
    stored_at = datetime.now(UTC)  # created_at = when the rows are written (validation and signing came before)
    for row in new:
        row.record["created_at"] = row.event["created_at"] = stored_at
    record_ids = persist(session, [r.record for r in new])
    for row, rid in zip(new, record_ids, strict=True):
        row.event["record_id"] = rid
    event_pks = copy_rows(session, EpcisEvent.__table__, [r.event for r in new], returning_id=True)
    out: list[dict[str, Any]] = []
    epc_rows: list[dict[str, Any]] = []
    edge_rows: list[dict[str, Any]] = []
    wanted: dict[str, str] = {}
    for row, pk in zip(new, event_pks, strict=True):
        status = {"index": row.index, "eventID": row.hash, "identifier": row.record["identifier"]}
        if row.is_decl:
            out.append({**status, "status": "error_declaration", "retracted": row.retracted})
            continue
        for ref in dict.fromkeys(row.epcs):
            epc_rows.append({"event_pk": pk, "epc": ref.key, "role": ref.role})
            wanted.setdefault(ref.key, ref.raw)
        for link in dict.fromkeys(lineage_links(row.ev, row.epcs)):
            edge_rows.append({"src": link.src, "dst": link.dst, "event_pk": pk})
        out.append({**status, "status": "created"})
    copy_rows(session, EpcisEventEpc.__table__, epc_rows)
    copy_rows(session, LineageEdge.__table__, edge_rows)
    # the identifier mapping is shared: a concurrent capture naming the same EPC may insert it first
    insert_new_rows(session, EpcisObject.__table__, [_object_row(k, raw, enterprise) for k, raw in wanted.items()],
                    key="key")
    return out


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


