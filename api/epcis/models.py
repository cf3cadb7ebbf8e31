"""Tables for EPCIS 2.0 events and the lineage graph.

Each captured event is a :class:`api.models.Record` of kind ``epcis_event`` (so it is signed, anchored
in the same Merkle batches and verified by :func:`api.verification.verify_record`); the tables here
hold the query and graph fields derived from it:

* ``epcis_events`` — one row per event record: GS1 event hash ID (unique → idempotent capture),
  type, action, CBV bizStep/disposition (bare words), times, locations, retraction state;
* ``epcis_event_epcs`` — every EPC / EPC class an event names, canonical (see
  :func:`provenance.epcis.canonical_epc`) with its role (epc, parent, child, input, output);
* ``lineage_edges`` — material-flow edges ``src → dst`` made by Transformation, Aggregation and
  Association events;
* ``epcis_objects`` — the identifier mapping: canonical EPC ↔ ``88.x.y/suffix``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from api.models import UTCDateTime, utcnow

RECORD_KIND_EPCIS_EVENT = "epcis_event"
RECORD_KIND_ERROR_DECLARATION = "epcis_error_declaration"


class EpcisEvent(SQLModel, table=True):
    """Query/graph fields of one event record (``record_id``)."""

    __tablename__ = "epcis_events"

    id: int | None = Field(default=None, primary_key=True)
    record_id: int = Field(foreign_key="records.id", unique=True, index=True)
    event_hash: str = Field(max_length=120, index=True)
    #: for error declarations: the hash of the retracted event (same hash, EPCIS 2.0 §7.4.1.4)
    is_declaration: bool = False
    event_id: str | None = Field(default=None, max_length=300, index=True)
    event_type: str = Field(max_length=32, index=True)
    action: str | None = Field(default=None, max_length=8)
    biz_step: str | None = Field(default=None, max_length=200, index=True)
    disposition: str | None = Field(default=None, max_length=200, index=True)
    event_time: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    biz_location: str | None = Field(default=None, max_length=300, index=True)
    read_point: str | None = Field(default=None, max_length=300)
    enterprise_id: int = Field(foreign_key="enterprises.id", index=True)
    retracted: bool = Field(default=False, index=True)
    error_reason: str | None = Field(default=None, max_length=200)
    corrective_event_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class EpcisEventEpc(SQLModel, table=True):
    """An EPC (canonical key) named by an event, with its role."""

    __tablename__ = "epcis_event_epcs"

    id: int | None = Field(default=None, primary_key=True)
    event_pk: int = Field(foreign_key="epcis_events.id", index=True)
    epc: str = Field(max_length=300, index=True)
    role: str = Field(max_length=8)


class LineageEdge(SQLModel, table=True):
    """Material flow ``src → dst`` (canonical EPC keys) made by event ``event_pk``."""

    __tablename__ = "lineage_edges"

    id: int | None = Field(default=None, primary_key=True)
    src: str = Field(max_length=300, index=True)
    dst: str = Field(max_length=300, index=True)
    event_pk: int = Field(foreign_key="epcis_events.id", index=True)


class EpcisObject(SQLModel, table=True):
    """Identifier mapping of a traced object or class: canonical EPC ``key`` ↔ ``identifier``.

    ``raw`` is the first spelling seen (e.g. the ``urn:epc:id:sgtin:…`` URN, which cannot be derived
    back from the Digital Link form without the company-prefix length).
    """

    __tablename__ = "epcis_objects"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=300, unique=True, index=True)
    identifier: str = Field(max_length=300, unique=True, index=True)
    raw: str = Field(max_length=300)
    kind: str = Field(default="instance", max_length=16)
    enterprise_id: int = Field(foreign_key="enterprises.id")
