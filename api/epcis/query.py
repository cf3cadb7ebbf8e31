"""EPCIS 2.0 query on the database: the common SimpleEventQuery parameters (EPCIS 2.0 §8.2.7.1)
with keyset pagination, answered as an EPCISQueryDocument (REST binding §12.6)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from api.epcis.capture import parse_time
from api.epcis.models import EpcisEvent, EpcisEventEpc
from api.errors import UnprocessableError
from api.models import Record, utc_iso, utcnow
from provenance.epcis import EVENT_TYPES, EpcisInvalid, canonical_epc, cbv_short
from provenance.errors import Issue

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"


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
        raise UnprocessableError([Issue("query.nextPageToken", "token", "malformed page token")]) from exc
    if not same:
        raise UnprocessableError([Issue("query.nextPageToken", "token",
                                        "page token belongs to a query with other parameters")])
    return after


def _epc_keys(values: list[str], field: str) -> list[str]:
    keys = []
    for v in values:
        try:
            keys.append(canonical_epc(v))
        except EpcisInvalid as exc:
            raise UnprocessableError([Issue(f"query.{field}", "epc", exc.issues[0].message)]) from exc
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
        col(EpcisEvent.is_declaration).is_(False), *_conditions(params), *extra)
    if page_token:
        stmt = stmt.where(col(EpcisEvent.id) > _untoken(page_token, filters))
    rows = session.exec(stmt.order_by(col(EpcisEvent.id)).limit(per_page + 1)).all()
    more = len(rows) > per_page
    rows = rows[:per_page]
    events = [event_out(ev, rec) for ev, rec in rows]
    token = _token(rows[-1][0].id, filters) if more and rows and rows[-1][0].id is not None else None
    return events, token


MATCH_ROLES = {"MATCH_epc": ("epc", "child"), "MATCH_anyEPC": ("epc", "child", "parent", "input", "output")}
"""EPC roles each MATCH_ parameter looks at (EPCIS 2.0 §8.2.7.1)."""


def _conditions(params: dict[str, list[str]]) -> list[Any]:
    """SQL conditions of the query parameters; UnprocessableError naming ``query.<name>`` for bad values."""
    conds: list[Any] = []
    types = _split(params.get("eventType"))
    for t in types:
        if t not in EVENT_TYPES:
            raise UnprocessableError([Issue("query.eventType", "enum", f"unknown event type {t!r}")])
    if types:
        conds.append(col(EpcisEvent.event_type).in_(types))
    steps = [cbv_short("bizStep", v) for v in _split(params.get("EQ_bizStep"))]
    if steps:
        conds.append(col(EpcisEvent.biz_step).in_(steps))
    disps = [cbv_short("disposition", v) for v in _split(params.get("EQ_disposition"))]
    if disps:
        conds.append(col(EpcisEvent.disposition).in_(disps))
    locs = _split(params.get("EQ_bizLocation"))
    if locs:
        conds.append(col(EpcisEvent.biz_location).in_(_epc_keys(locs, "EQ_bizLocation")))
    for name in ("GE_eventTime", "LT_eventTime"):
        if params.get(name):
            try:
                t = parse_time(params[name][-1])
            except ValueError as exc:
                raise UnprocessableError([Issue(f"query.{name}", "date-time", str(exc))]) from exc
            conds.append(col(EpcisEvent.event_time) >= t if name == "GE_eventTime" else col(EpcisEvent.event_time) < t)
    for name, roles in MATCH_ROLES.items():
        vals = _split(params.get(name))
        if vals:
            sub = select(EpcisEventEpc.event_pk).where(col(EpcisEventEpc.epc).in_(_epc_keys(vals, name)),
                                                        col(EpcisEventEpc.role).in_(roles))
            conds.append(col(EpcisEvent.id).in_(sub))
    return conds


def event_out(ev: EpcisEvent, rec: Record) -> dict[str, Any]:
    """The captured event JSON, ``eventID`` defaulting to the hash ID, with retraction info."""
    doc = json.loads(rec.document)
    event = dict(doc.get("event") or {})
    event.setdefault("eventID", ev.event_hash)
    if ev.retracted and "errorDeclaration" not in event:
        event["errorDeclaration"] = {"declarationTime": None, "reason": ev.error_reason,
                                     "correctiveEventIDs": list(ev.corrective_event_ids)}
    return event


def query_document(events: list[dict[str, Any]], next_page_token: str | None) -> dict[str, Any]:
    """EPCISQueryDocument ``{@context, type, schemaVersion, creationDate (UTC, Z), epcisBody: {queryResults:
    {queryName: "SimpleEventQuery", resultsBody: {eventList}}}, nextPageToken}`` (EPCIS 2.0 §8.2.8)."""
    return {
        "@context": [EPCIS_CONTEXT],
        "type": "EPCISQueryDocument", "schemaVersion": "2.0", "creationDate": utc_iso(utcnow()),
        "epcisBody": {"queryResults": {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": events}}},
        "nextPageToken": next_page_token,
    }
