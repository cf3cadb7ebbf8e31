"""Custody of coils from evidence: the signed EPCIS 2.0 events captured through ``/v1/epcis/capture``.

A warehouse receipt may be issued only for coils the warehouse provably holds, and a bank checking a
receipt wants the same proof again later. The evidence is the coil's **latest** (by ``eventTime``, then
capture order) non-retracted EPCIS event that names it -- in ``epcList``, as ``hdl:88.x.y/suffix``, its
identifier, or a GS1 key mapped to it -- and custody holds when that event

* has CBV 2.0 ``bizStep`` ``receiving`` or ``storing`` (CBV 2.0 §7.1: the goods arrived at / are kept at
  the location),
* has ``bizLocation`` equal to the receipt's storage location (compared in canonical EPC form), and
* was captured -- hence signed -- by the warehouse enterprise itself (a depositor cannot vouch for the
  warehouse's stock).

A later event anywhere else (e.g. the ``shipping`` event :func:`shipping_document` builds when a receipt
is delivered) ends custody. Pure reads of the database; the route decides what a missing custody means.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from api.epcis.graph import NotFound, resolve_node
from api.epcis.models import EpcisEvent, EpcisEventEpc
from api.errors import UnprocessableError
from api.models import Enterprise, Record
from provenance.epcis import EpcisInvalid, canonical_epc

#: CBV 2.0 bizSteps that put goods in a warehouse's custody
CUSTODY_STEPS: frozenset[str] = frozenset({"receiving", "storing"})


def canonical_location(location: str) -> str:
    """A bizLocation ID in the canonical form the EPCIS tables store (as ``api.epcis.capture`` does)."""
    try:
        return canonical_epc(location)[:300]
    except EpcisInvalid:
        return location[:300]


@dataclass(frozen=True)
class CustodyEvidence:
    """The latest event naming a coil: record identifier (``<prefix>/ev-<hash>``), GS1 event hash ID,
    CBV bizStep (bare word), bizLocation (canonical), event time, capturing enterprise, and ``holds``:
    whether it proves custody at ``location`` by ``warehouse`` (see the module docstring)."""

    record_identifier: str
    event_hash: str
    biz_step: str | None
    biz_location: str | None
    event_time: datetime
    captured_by: int
    holds: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.record_identifier, "event_id": self.event_hash, "biz_step": self.biz_step,
                "biz_location": self.biz_location, "event_time": self.event_time.isoformat(),
                "captured_by_enterprise_id": self.captured_by, "holds": self.holds, "reason": self.reason}


def latest_event(session: Session, identifier: str) -> tuple[EpcisEvent, str] | None:
    """The coil's latest non-retracted event (not an error declaration) and its record identifier, or None."""
    try:
        key = resolve_node(session, identifier).key
    except (NotFound, UnprocessableError):
        return None
    row = session.exec(
        select(EpcisEvent, Record.identifier)
        .join(EpcisEventEpc, col(EpcisEventEpc.event_pk) == col(EpcisEvent.id))
        .join(Record, col(Record.id) == col(EpcisEvent.record_id))
        .where(EpcisEventEpc.epc == key, col(EpcisEvent.retracted).is_(False),
               col(EpcisEvent.is_declaration).is_(False))
        .order_by(col(EpcisEvent.event_time).desc(), col(EpcisEvent.id).desc())
        .limit(1)
    ).first()
    return (row[0], row[1]) if row is not None else None


def custody(session: Session, identifier: str, location: str, warehouse: Enterprise) -> CustodyEvidence | None:
    """Custody evidence of coil ``identifier`` at ``location`` by ``warehouse`` (None: no event names it)."""
    found = latest_event(session, identifier)
    if found is None:
        return None
    ev, record_identifier = found
    where = canonical_location(location)
    if ev.biz_step not in CUSTODY_STEPS:
        holds, reason = False, f"the latest event is `{ev.biz_step}`, not receiving or storing"
    elif ev.biz_location != where:
        holds, reason = False, f"the latest event is at {ev.biz_location}, not at {where}"
    elif ev.enterprise_id != warehouse.id:
        holds, reason = False, "the latest event was captured by another enterprise, not by the warehouse"
    else:
        holds, reason = True, f"`{ev.biz_step}` at {where}, captured by the warehouse"
    event_time = ev.event_time if ev.event_time.tzinfo else ev.event_time.replace(tzinfo=UTC)
    return CustodyEvidence(record_identifier=record_identifier, event_hash=ev.event_hash, biz_step=ev.biz_step,
                           biz_location=ev.biz_location, event_time=event_time, captured_by=ev.enterprise_id,
                           holds=holds, reason=reason)


def shipping_document(identifiers: list[str], location: str, when: datetime, receipt_id: int) -> dict[str, Any]:
    """EPCIS 2.0 document of one ObjectEvent: the coils leave ``location`` (CBV ``shipping``,
    disposition ``in_transit``), naming the delivered warehouse receipt in ``bizTransactionList``."""
    stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": stamp,
        "epcisBody": {"eventList": [{
            "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "shipping", "disposition": "in_transit",
            "eventTime": stamp, "eventTimeZoneOffset": "+00:00",
            "epcList": [f"hdl:{i}" for i in identifiers],
            "readPoint": {"id": location},
            "bizTransactionList": [{"type": "bol",
                                    "bizTransaction": f"urn:traceledger:warehouse-receipt:{receipt_id}"}],
        }]},
    }
