"""EPCIS 2.0 capture jobs (REST binding ``POST /capture`` → ``/capture/{captureID}``) and the capture itself.

A capture job is a row in ``epcis_capture_jobs`` (so every API process behind a load balancer answers
``GET /capture/{captureID}``), created ``running`` when the document is received and finished by
:func:`run_capture_job` after the answer was sent. The capture is the existing code path,
:func:`api.epcis.capture.capture_document`: every event becomes a signed record anchored with the next
Merkle batch, exactly as through ``POST /v1/epcis/capture``.

``GS1-Capture-Error-Behaviour`` (EPCIS 2.0 REST binding):

* ``rollback`` (default): all or nothing — any invalid event rejects the whole document, nothing is
  stored, ``success: false`` with every error;
* ``proceed``: the events named by errors are left out and the rest is captured (``success: false``
  still reports the errors); an error that names no single event rejects the document.

A client's ``eventID`` is kept as the event's identifier; the GS1 event hash ID (``ni:///sha-256;…``) is
the integrity key, reported beside it per event. One ``eventID`` cannot name two different events: a
capture that would reuse another event's ``eventID`` is refused (``ResourceAlreadyExistsException``).
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from api import metrics
from api.epcis.capture import capture_document
from api.epcis.models import EpcisEvent
from api.errors import UnprocessableError
from api.ingest import RecordSigner
from api.models import Enterprise, utcnow
from provenance.errors import Issue

log = logging.getLogger(__name__)

EXC = "epcisException:"
"""Prefix of the EPCIS 2.0 exception types used as RFC 7807 ``type`` (REST binding OpenAPI)."""


class CaptureJob(SQLModel, table=True):
    """One ``POST /capture`` job."""

    __tablename__ = "epcis_capture_jobs"

    id: int | None = Field(default=None, primary_key=True)
    capture_id: str = Field(max_length=40, unique=True, index=True)
    enterprise_id: int = Field(foreign_key="enterprises.id", index=True)
    behaviour: str = Field(default="rollback", max_length=8)
    running: bool = True
    success: bool = True
    event_count: int = 0
    #: RFC 7807 problems ``{type, title, status, detail, pointer?, eventIndex?}``
    errors: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    #: per event ``{index, eventID, eventHashID, identifier, status}``
    events: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


def z_time(dt: datetime | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` (UTC), None for None."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_out(job: CaptureJob) -> dict[str, Any]:
    """The CaptureJob document of the OpenAPI: ``{captureID, createdAt, finishedAt?, running, success,
    captureErrorBehaviour, errors}`` plus ``eventCount`` and ``events`` (eventID beside eventHashID)."""
    out: dict[str, Any] = {"captureID": job.capture_id, "createdAt": z_time(job.created_at), "running": job.running,
                           "success": job.success, "captureErrorBehaviour": job.behaviour, "errors": job.errors,
                           "eventCount": job.event_count, "events": job.events}
    if job.finished_at is not None:
        out["finishedAt"] = z_time(job.finished_at)
    return out


def create_job(session: Session, *, enterprise: Enterprise, behaviour: str, event_count: int) -> CaptureJob:
    """Insert and commit a running job with a fresh ``captureID`` (``cap-`` + 24 hex)."""
    assert enterprise.id is not None
    job = CaptureJob(capture_id="cap-" + secrets.token_hex(12), enterprise_id=enterprise.id, behaviour=behaviour,
                     event_count=event_count)
    session.add(job)
    session.commit()
    return job


def issue_problem(issue: Issue) -> dict[str, Any]:
    """An :class:`Issue` ``{field, rule, message[, event_index]}`` of capture as an RFC 7807 ValidationException."""
    out: dict[str, Any] = {"type": EXC + "ValidationException", "title": "Invalid EPCIS document", "status": 400,
                           "detail": f"{issue.field}: {issue.message}", "pointer": issue.field}
    if issue.event_index is not None:
        out["eventIndex"] = issue.event_index
    return out


def event_id_conflicts(session: Session, client_ids: list[str]) -> list[str]:
    """Client eventIDs that now name more than one event (distinct hash IDs); call after a flush."""
    if not client_ids:
        return []
    rows = session.exec(
        select(EpcisEvent.event_id).where(col(EpcisEvent.event_id).in_(client_ids))
        .group_by(EpcisEvent.event_id).having(func.count(func.distinct(EpcisEvent.event_hash)) > 1)
    ).all()
    return sorted(r for r in rows if r)


def _client_ids(doc: dict[str, Any]) -> list[str]:
    body = doc.get("epcisBody") or {}
    events = body.get("eventList") or ([body["event"]] if isinstance(body.get("event"), dict) else [])
    return [e["eventID"] for e in events if isinstance(e, dict) and isinstance(e.get("eventID"), str)]


class EventIdConflict(Exception):
    """A client eventID would name two different events (→ 409 ResourceAlreadyExistsException)."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(f"eventID already names another event: {', '.join(ids[:5])}")
        self.ids = ids


def capture(session: Session, *, state: Any, enterprise: Enterprise, doc: dict[str, Any],
            schema: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Capture ``doc`` (all or nothing) and commit; returns ``(events, created)`` with per event
    ``{index, eventID (client's, else the hash ID), eventHashID, identifier, status}``.

    Raises:
        UnprocessableError: invalid document (issues carry ``event_index``); nothing stored.
        EventIdConflict: a client eventID already names a different event; nothing stored.
        IntegrityError: a concurrent capture stored some of these very events (same GS1 event hash) and the one
            retry in a new transaction failed too; nothing stored. (On the first clash the capture is repeated
            once: it then finds those events stored and reports them as duplicates, as ``POST
            /v1/epcis/capture`` does.)
    """
    signer = RecordSigner.for_request(state, enterprise)
    for attempt in (1, 2):
        try:
            result = capture_document(session, enterprise=enterprise, doc=doc, schema=schema, signer=signer)
            conflicts = event_id_conflicts(session, _client_ids(doc))
            if conflicts:
                raise EventIdConflict(conflicts)
            session.commit()
            break
        except IntegrityError:
            session.rollback()
            if attempt == 2:
                raise
        except Exception:
            session.rollback()
            raise
    client = _client_ids_by_index(doc)
    events = [{"index": e["index"], "eventID": client.get(e["index"], e["eventID"]), "eventHashID": e["eventID"],
               "identifier": e["identifier"], "status": e["status"]} for e in result.events]
    if result.created:
        metrics.RECORDS_INGESTED.labels(kind="epcis_event").inc(result.created)
        metrics.PENDING.inc(result.created)
        state.worker.notify()
    return events, result.created


def _client_ids_by_index(doc: dict[str, Any]) -> dict[int, str]:
    body = doc.get("epcisBody") or {}
    events = body.get("eventList") or ([body["event"]] if isinstance(body.get("event"), dict) else [])
    return {i: e["eventID"] for i, e in enumerate(events) if isinstance(e, dict) and isinstance(e.get("eventID"), str)}


def _without(doc: dict[str, Any], drop: set[int]) -> tuple[dict[str, Any], list[int]]:
    events = list(doc["epcisBody"]["eventList"])
    keep = [i for i in range(len(events)) if i not in drop]
    out = dict(doc)
    out["epcisBody"] = dict(doc["epcisBody"], eventList=[events[i] for i in keep])
    return out, keep


def run_capture_job(engine: Any, state: Any, capture_id: str, enterprise_id: int, doc: dict[str, Any],
                    schema: dict[str, Any] | None, schema_error: str | None = None) -> None:
    """Run a job to its end (background task after the 202): capture, then store the outcome on the job row.

    ``doc`` is an EPCISDocument with ``epcisBody.eventList``. Never raises (every failure ends in the job's
    ``errors``); ``schema`` None with ``schema_error`` fails the job with an ImplementationException.
    """
    errors: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    with Session(engine, expire_on_commit=False) as session:
        job = session.exec(select(CaptureJob).where(CaptureJob.capture_id == capture_id)).one()
        enterprise = session.get(Enterprise, enterprise_id)
        try:
            if schema is None or enterprise is None:
                raise RuntimeError(schema_error or "capturing enterprise vanished")
            todo, index_map = doc, list(range(len(doc["epcisBody"]["eventList"])))
            for _attempt in range(3):
                try:
                    got, _created = capture(session, state=state, enterprise=enterprise, doc=todo, schema=schema)
                    events = [dict(e, index=index_map[e["index"]]) for e in got]
                    break
                except UnprocessableError as exc:
                    problems = []
                    for i in exc.issues:
                        p = issue_problem(i)
                        if "eventIndex" in p:
                            p["eventIndex"] = index_map[p["eventIndex"]]
                        problems.append(p)
                    errors.extend(problems)
                    bad = {p["eventIndex"] for p in problems if "eventIndex" in p}
                    whole = any("eventIndex" not in p for p in problems)
                    if job.behaviour != "proceed" or whole or not bad:
                        break
                    local_bad = {index_map.index(b) for b in bad}
                    todo, keep = _without(todo, local_bad)
                    index_map = [index_map[k] for k in keep]
                    if not index_map:
                        break
        except EventIdConflict as exc:
            errors.append({"type": EXC + "ResourceAlreadyExistsException", "title": "eventID already used",
                           "status": 409, "detail": str(exc)})
        except IntegrityError:
            errors.append({"type": EXC + "ImplementationException", "title": "Concurrent capture", "status": 409,
                           "detail": "a concurrent capture stored some of these events; capture again"})
        except Exception as exc:  # noqa: BLE001 - a job always ends, with the reason in its errors
            log.warning("capture job %s failed: %s", capture_id, exc)
            errors.append({"type": EXC + "ImplementationException", "title": "Capture failed", "status": 500,
                           "detail": f"{type(exc).__name__}: {exc}"})
        session.rollback()
        job = session.exec(select(CaptureJob).where(CaptureJob.capture_id == capture_id)).one()
        job.running = False
        job.success = not errors
        job.errors = errors
        job.events = sorted(events, key=lambda e: e["index"])
        job.finished_at = datetime.now(UTC)
        session.add(job)
        session.commit()
