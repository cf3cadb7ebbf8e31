"""EPCIS 2.0 REST binding at the API root, as GS1's OpenAPI (``gs1/EPCIS``, ``REST Bindings/openapi.yaml``) reads.

Capture (an enterprise API key, ``Authorization: Bearer …``):

* ``POST /capture`` — an ``EPCISDocument`` (or ``EPCISQueryDocument``) → **202** ``Location:
  /capture/{captureID}``; the job runs after the answer (:mod:`api.capture_jobs`); header
  ``GS1-Capture-Error-Behaviour: rollback`` (default, all or nothing) or ``proceed``;
  ``GET /capture`` (the caller's jobs, paged), ``GET /capture/{captureID}`` (``running``, ``success``,
  ``errors``, per event ``eventID`` beside ``eventHashID``); ``OPTIONS /capture`` announces
  ``GS1-EPCIS-Capture-Limit`` (events) and ``GS1-EPCIS-Capture-File-Size-Limit`` (bytes);
* ``POST /events`` — one event, synchronous → **201** ``Location: /events/{eventID}``; 409 when it is
  stored already or its ``eventID`` names another event.

Query (public, like ``/v1/epcis/events``): ``GET /events``, ``/events/{eventID}`` (client eventID or GS1
hash ID), ``/eventTypes``, ``/eventTypes/{eventType}[/events]``, ``/epcs``, ``/epcs/{epc}[/events]``,
``/bizSteps``, ``/bizLocations``, ``/readPoints``, ``/dispositions`` and ``/{…}/{value}[/events]``.
Simple-query parameters (EPCIS 2.0 §8.2.7.1; values pipe-delimited or repeated, OR-ed): see
:data:`SUPPORTED`; any other parameter → **400** ``epcisException:QueryParameterException``. Paging:
``perPage`` (1–1000, default 30) and ``nextPageToken`` (valid 24 h), ``Link: <…>; rel="next"`` and
``GS1-Next-Page-Token-Expires``.

Every answer carries ``GS1-EPCIS-Version: 2.0.0`` and ``GS1-CBV-Version: 2.0.0``; every error is RFC 7807
``application/problem+json`` with the standard's exception ``type`` (``epcisException:…``).
Not served: named queries and subscriptions (``/queries``), XML bodies, ``GS1-EPC-Format`` translation,
``orderBy`` / ``orderDirection`` / ``eventCountLimit`` / ``maxEventCount``, quantity, sensor and ILMD
query parameters (each → 400 QueryParameterException).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import and_, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from api.capture_jobs import (
    EXC,
    CaptureJob,
    EventIdConflict,
    capture,
    create_job,
    issue_problem,
    job_out,
    run_capture_job,
)
from api.deps import CurrentEnterprise, SessionDep, StateDep
from api.epcis.capture import parse_time
from api.epcis.models import EpcisEvent, EpcisEventEpc, EpcisObject
from api.epcis.query import event_out, query_events
from api.errors import UnprocessableError
from api.models import Enterprise, Record, utc_iso, utcnow
from api.problems import problem
from api.routes.epcis import MAX_CAPTURE_BYTES, load_schema
from provenance.epcis import DL_HOST, EVENT_TYPES, EpcisInvalid, canonical_epc, cbv_short

log = logging.getLogger(__name__)

EPCIS_VERSION = "2.0.0"
CBV_VERSION = "2.0.0"
CAPTURE_LIMIT = 10_000
"""Most events per ``POST /capture`` (``GS1-EPCIS-Capture-Limit``)."""
FILE_SIZE_LIMIT = MAX_CAPTURE_BYTES
"""Largest capture body in bytes (``GS1-EPCIS-Capture-File-Size-Limit``), the same 16 MiB as ``/v1``."""
PER_PAGE_DEFAULT, PER_PAGE_MAX = 30, 1000
TOKEN_TTL_S = 24 * 3600
CONTEXT = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"]
VERSION_HEADERS = {"GS1-EPCIS-Version": EPCIS_VERSION, "GS1-CBV-Version": CBV_VERSION}
DISCOVERY_HEADERS = {**VERSION_HEADERS, "GS1-EPCIS-Min": EPCIS_VERSION, "GS1-EPCIS-Max": EPCIS_VERSION,
                     "GS1-CBV-Min": CBV_VERSION, "GS1-CBV-Max": CBV_VERSION, "GS1-EPC-Format": "Never_Translates"}

#: parameters the store's query handles itself (``api.epcis.query.query_events``)
STORE_PARAMS = ("eventType", "EQ_bizStep", "EQ_disposition", "MATCH_epc", "MATCH_anyEPC", "GE_eventTime",
                "LT_eventTime", "EQ_bizLocation")
#: further parameters handled here as SQL conditions
EXTRA_PARAMS = ("EQ_eventID", "EQ_action", "EQ_readPoint", "GE_recordTime", "LT_recordTime", "MATCH_parentID",
                "MATCH_inputEPC", "MATCH_outputEPC", "MATCH_epcClass", "MATCH_inputEPCClass", "MATCH_outputEPCClass",
                "MATCH_anyEPCClass", "EXISTS_errorDeclaration", "EQ_errorReason")
PAGING = ("perPage", "nextPageToken")
SUPPORTED = frozenset(STORE_PARAMS + EXTRA_PARAMS + PAGING)
"""Every simple-query parameter ``GET /events`` (and each ``…/events``) accepts."""

_ROLES = {
    "MATCH_parentID": (("parent",), "instance"), "MATCH_inputEPC": (("input",), "instance"),
    "MATCH_outputEPC": (("output",), "instance"), "MATCH_epcClass": (("epc", "child"), "class"),
    "MATCH_inputEPCClass": (("input",), "class"), "MATCH_outputEPCClass": (("output",), "class"),
    "MATCH_anyEPCClass": (("epc", "child", "input", "output"), "class"),
}


class QueryParameterError(Exception):
    """A query parameter that is unknown, unsupported or malformed (→ 400 QueryParameterException)."""


class EpcisRoute(APIRoute):
    """Route class of the binding: version headers on every answer, errors as RFC 7807 problems."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def wrapped(request: Request) -> Response:
            asked = request.headers.get("GS1-EPCIS-Version")
            if asked and asked.split(".")[0] != "2":
                response: Response = problem(406, EXC + "NotAcceptableException", "EPCIS version not supported",
                                             f"GS1-EPCIS-Version {asked!r} asked; this repository speaks "
                                             f"{EPCIS_VERSION}", instance=request.url.path)
            else:
                try:
                    response = await handler(request)
                except QueryParameterError as exc:
                    response = problem(400, EXC + "QueryParameterException", "Invalid query parameter", str(exc),
                                       instance=request.url.path)
                except RequestValidationError as exc:
                    detail = "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}"
                                       for e in exc.errors())
                    response = problem(400, EXC + "ValidationException", "Invalid request", detail,
                                       instance=request.url.path)
                except HTTPException as exc:
                    kind = {401: "SecurityException", 403: "SecurityException", 404: "NoSuchResourceException",
                            413: "CaptureLimitExceededException"}.get(exc.status_code, "ImplementationException")
                    response = problem(exc.status_code, EXC + kind, kind, str(exc.detail), instance=request.url.path,
                                       headers=dict(exc.headers or {}))
                except Exception:  # noqa: BLE001 - the binding answers problems, never a bare 500
                    log.exception("EPCIS REST %s %s failed", request.method, request.url.path)
                    response = problem(500, EXC + "ImplementationException", "Internal error",
                                       "the repository failed; see the server log", instance=request.url.path)
            for k, v in VERSION_HEADERS.items():
                response.headers.setdefault(k, v)
            return response

        return wrapped


router = APIRouter(tags=["epcis-rest"], route_class=EpcisRoute)


# ------------------------------------------------------------------------------------------- helpers
def _values(request: Request, name: str) -> list[str]:
    out: list[str] = []
    for v in request.query_params.getlist(name):
        out.extend(x for x in v.split("|") if x != "")
    return out


def _check_params(request: Request, allowed: frozenset[str] | set[str]) -> None:
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        raise QueryParameterError(
            f"unknown or unsupported query parameter(s) {', '.join(unknown)}; supported: {', '.join(sorted(allowed))}")


def _per_page(request: Request) -> int:
    raw = request.query_params.get("perPage")
    if raw is None:
        return PER_PAGE_DEFAULT
    try:
        n = int(raw)
    except ValueError as exc:
        raise QueryParameterError(f"perPage must be an integer, got {raw!r}") from exc
    if not 1 <= n <= PER_PAGE_MAX:
        raise QueryParameterError(f"perPage must be 1–{PER_PAGE_MAX}, got {n}")
    return n


def _wrap_token(inner: str) -> tuple[str, str]:
    """Our nextPageToken (inner token + expiry) and its expiry as ``…Z``."""
    exp = int(time.time()) + TOKEN_TTL_S
    raw = json.dumps({"t": inner, "e": exp}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("="), _z(exp)


def _unwrap_token(request: Request) -> str | None:
    token = request.query_params.get("nextPageToken")
    if token is None:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        inner, exp = str(raw["t"]), int(raw["e"])
    except Exception as exc:  # noqa: BLE001 - any garbage is a 400
        raise QueryParameterError("nextPageToken is malformed") from exc
    if exp < time.time():
        raise QueryParameterError(f"nextPageToken expired at {_z(exp)}")
    return inner


def _z(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _page_headers(request: Request, state: Any, token: str | None) -> dict[str, str]:
    if token is None:
        return {}
    outer, expires = _wrap_token(token)
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "nextPageToken"]
    params.append(("nextPageToken", outer))
    url = f"{state.settings.public_base_url}{request.url.path}?{urlencode(params)}"
    return {"Link": f'<{url}>; rel="next"', "GS1-Next-Page-Token-Expires": expires}


def _keys(values: list[str], name: str) -> list[str]:
    out = []
    for v in values:
        try:
            out.append(canonical_epc(v))
        except EpcisInvalid as exc:
            raise QueryParameterError(f"{name}: {exc.issues[0].message}") from exc
    return out


def _epc_match(keys: list[str], kind: str) -> Any:
    """Condition on ``EpcisEventEpc.epc``: exact keys, and GTIN patterns (``urn:epc:idpat:sgtin:CP.IIR.*`` →
    ``https://id.gs1.org/01/<GTIN>``) matching that GTIN's instances (``/21/``) or classes (``/10/``)."""
    conds: list[Any] = [col(EpcisEventEpc.epc).in_(keys)]
    for k in keys:
        if k.startswith(DL_HOST + "/01/") and k.count("/") == 4:
            conds.append(col(EpcisEventEpc.epc).like(k + ("/21/%" if kind == "instance" else "/10/%")))
    return or_(*conds)


def extra_conditions(values: dict[str, list[str]]) -> list[Any]:
    """SQL conditions on :class:`EpcisEvent` for the :data:`EXTRA_PARAMS` in ``values`` (EPCIS 2.0 §8.2.7.1).

    ``values``: parameter → its values (pipe-split); ``EXISTS_errorDeclaration`` counts by its presence.

    Raises:
        QueryParameterError: a malformed value (action not ADD/OBSERVE/DELETE, bad date-time or EPC).
    """
    conds: list[Any] = []
    ids = values.get("EQ_eventID")
    if ids:
        conds.append(or_(col(EpcisEvent.event_id).in_(ids), col(EpcisEvent.event_hash).in_(ids)))
    actions = values.get("EQ_action")
    if actions:
        bad = [a for a in actions if a not in ("ADD", "OBSERVE", "DELETE")]
        if bad:
            raise QueryParameterError(f"EQ_action must be ADD, OBSERVE or DELETE, got {', '.join(bad)}")
        conds.append(col(EpcisEvent.action).in_(actions))
    points = values.get("EQ_readPoint")
    if points:
        conds.append(col(EpcisEvent.read_point).in_(_keys(points, "EQ_readPoint")))
    for name, ge in (("GE_recordTime", True), ("LT_recordTime", False)):
        for v in (values.get(name) or [])[-1:]:
            try:
                t = parse_time(v)
            except ValueError as exc:
                raise QueryParameterError(f"{name}: {exc}") from exc
            conds.append(col(EpcisEvent.created_at) >= t if ge else col(EpcisEvent.created_at) < t)
    for name, (roles, kind) in _ROLES.items():
        vals = values.get(name)
        if vals:
            sub = select(EpcisEventEpc.event_pk).where(and_(_epc_match(_keys(vals, name), kind),
                                                            col(EpcisEventEpc.role).in_(roles)))
            conds.append(col(EpcisEvent.id).in_(sub))
    if "EXISTS_errorDeclaration" in values:
        conds.append(col(EpcisEvent.retracted).is_(True))
    reasons = values.get("EQ_errorReason")
    if reasons:
        short = {r.rsplit("ER-", 1)[-1].rsplit(":", 1)[-1] for r in reasons} | set(reasons)
        conds.append(col(EpcisEvent.error_reason).in_(sorted(short)))
    return conds


def query_document(events: list[dict[str, Any]]) -> dict[str, Any]:
    """An EPCISQueryDocument (EPCIS 2.0 §12) of ``events`` for the SimpleEventQuery."""
    return {"@context": CONTEXT, "type": "EPCISQueryDocument", "schemaVersion": "2.0",
            "creationDate": utc_iso(utcnow()),
            "epcisBody": {"queryResults": {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": events}}}}


def run_query(request: Request, session: Session, state: Any, fixed: dict[str, str] | None = None) -> Response:
    """``GET /events`` and every ``…/events``: the request's parameters plus ``fixed`` (from the path)."""
    fixed = fixed or {}
    _check_params(request, SUPPORTED)
    clash = sorted(set(fixed) & set(request.query_params))
    if clash:
        raise QueryParameterError(f"{', '.join(clash)} is given by the path and cannot be repeated in the query")
    params: dict[str, list[str]] = {k: _values(request, k) for k in STORE_PARAMS + EXTRA_PARAMS
                                    if k in request.query_params}
    for k, v in fixed.items():
        params[k] = [v]
    extra = extra_conditions(params)
    try:
        events, token = query_events(session, params, per_page=_per_page(request), page_token=_unwrap_token(request),
                                     extra=extra)
    except UnprocessableError as exc:
        raise QueryParameterError("; ".join(f"{i['field'].removeprefix('query.')}: {i['message']}"
                                            for i in exc.issues)) from exc
    return JSONResponse(query_document(events), headers=_page_headers(request, state, token))


def collection(members: list[str]) -> dict[str, Any]:
    """A JSON-LD ``Collection`` of ``members`` (OpenAPI ``UriCollection`` / ``ResourceCollection``)."""
    return {"@context": CONTEXT, "type": "Collection", "member": members}


def _offset(inner: str | None) -> int:
    if inner is None:
        return 0
    try:
        return max(0, int(inner))
    except ValueError as exc:
        raise QueryParameterError("nextPageToken does not belong to this collection") from exc


def distinct_page(request: Request, session: Session, state: Any, column: Any) -> Response:
    """Paged distinct non-null values of ``column`` (a vocabulary or EPC list), in sort order."""
    _check_params(request, set(PAGING))
    per_page = _per_page(request)
    start = _offset(_unwrap_token(request))
    rows = session.exec(select(column).where(column.is_not(None)).distinct().order_by(column)
                        .offset(start).limit(per_page + 1)).all()
    more = len(rows) > per_page
    members = [str(r) for r in rows[:per_page]]
    return JSONResponse(collection(members),
                        headers=_page_headers(request, state, str(start + per_page) if more else None))


def _options(allow: str, **extra: str) -> Response:
    return Response(status_code=204, headers={"Allow": allow, **DISCOVERY_HEADERS, **extra})


def _add_options(path: str, allow: str = "OPTIONS, GET") -> None:
    """``OPTIONS path`` → 204 with ``Allow`` and the version headers (the binding's discovery answer)."""

    def discover() -> Response:
        return _options(allow)

    router.add_api_route(path, discover, methods=["OPTIONS"], include_in_schema=False,
                         name="options " + path)


# ------------------------------------------------------------------------------------------- capture
def _behaviour(request: Request) -> str:
    value = request.headers.get("GS1-Capture-Error-Behaviour", "rollback").strip().lower()
    if value not in ("rollback", "proceed"):
        raise HTTPException(400, f"GS1-Capture-Error-Behaviour must be rollback or proceed, got {value!r}")
    return value


async def _json_body(request: Request) -> Any:
    ctype = request.headers.get("content-type", "application/json")
    if "json" not in ctype:
        raise _Problem(415, "UnsupportedMediaTypeException", f"content type {ctype!r}: send application/json or "
                                                              "application/ld+json (XML is not supported)")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > FILE_SIZE_LIMIT:
        raise _Problem(413, "CaptureLimitExceededException", f"body of {length} bytes exceeds "
                                                             f"GS1-EPCIS-Capture-File-Size-Limit {FILE_SIZE_LIMIT}")
    body = await request.body()
    if len(body) > FILE_SIZE_LIMIT:
        raise _Problem(413, "CaptureLimitExceededException",
                       f"body of {len(body)} bytes exceeds GS1-EPCIS-Capture-File-Size-Limit {FILE_SIZE_LIMIT}")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise _Problem(400, "ValidationException", f"body is not valid JSON: {exc}") from exc


class _Problem(Exception):
    def __init__(self, status: int, kind: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail, self.extra = status, kind, detail, extra

    def response(self, request: Request, headers: dict[str, str] | None = None) -> Response:
        return problem(self.status, EXC + self.kind, self.kind, self.detail, instance=request.url.path,
                       headers=headers, **self.extra)


def as_epcis_document(doc: Any) -> dict[str, Any]:
    """An EPCISDocument with ``epcisBody.eventList`` from an EPCISDocument or EPCISQueryDocument (400 else)."""
    if not isinstance(doc, dict):
        raise _Problem(400, "ValidationException", "body must be a JSON object (EPCISDocument)")
    kind = doc.get("type")
    if kind == "EPCISQueryDocument":
        results = ((doc.get("epcisBody") or {}).get("queryResults") or {}).get("resultsBody") or {}
        events = results.get("eventList")
        if not isinstance(events, list):
            raise _Problem(400, "ValidationException", "EPCISQueryDocument has no epcisBody.queryResults."
                                                       "resultsBody.eventList")
        return {"@context": doc.get("@context", CONTEXT), "type": "EPCISDocument",
                "schemaVersion": doc.get("schemaVersion", "2.0"),
                "creationDate": doc.get("creationDate", utc_iso(utcnow())),
                "epcisBody": {"eventList": events}}
    if kind != "EPCISDocument":
        raise _Problem(400, "ValidationException", f"type must be EPCISDocument or EPCISQueryDocument, got {kind!r}")
    body = doc.get("epcisBody")
    if isinstance(body, dict) and "eventList" not in body and isinstance(body.get("event"), dict):
        doc = dict(doc, epcisBody={"eventList": [body["event"]]})
    events = (doc.get("epcisBody") or {}).get("eventList") if isinstance(doc.get("epcisBody"), dict) else None
    if not isinstance(events, list):
        raise _Problem(400, "ValidationException", "EPCISDocument has no epcisBody.eventList")
    return doc


@router.options("/capture", include_in_schema=False)
def capture_options() -> Response:
    """Capture discovery: limits, error behaviours, versions (204)."""
    return _options("OPTIONS, POST, GET", **{"GS1-EPCIS-Capture-Limit": str(CAPTURE_LIMIT),
                                             "GS1-EPCIS-Capture-File-Size-Limit": str(FILE_SIZE_LIMIT),
                                             "GS1-Capture-Error-Behaviour": "all"})


@router.post("/capture", status_code=202)
async def capture_async(request: Request, enterprise: CurrentEnterprise, state: StateDep) -> Response:
    """Capture an EPCISDocument asynchronously: **202** ``Location: /capture/{captureID}`` and the job
    document; the capture runs after the answer. **400** ValidationException (not JSON, not an EPCIS
    document, bad ``GS1-Capture-Error-Behaviour``), **401/403** SecurityException, **413**
    CaptureLimitExceededException (> ``GS1-EPCIS-Capture-Limit`` events or > 16 MiB), **415**
    UnsupportedMediaTypeException (XML), **503** ImplementationException (schema unreadable)."""
    try:
        behaviour = _behaviour(request)
        doc = as_epcis_document(await _json_body(request))
        n = len(doc["epcisBody"]["eventList"])
        if n > CAPTURE_LIMIT:
            raise _Problem(413, "CaptureLimitExceededException",
                           f"{n} events exceed GS1-EPCIS-Capture-Limit {CAPTURE_LIMIT}")
    except _Problem as exc:
        return exc.response(request)
    except HTTPException as exc:
        return problem(exc.status_code, EXC + "ValidationException", "Invalid request", str(exc.detail),
                       instance=request.url.path)
    schema = load_schema()  # 503 when unreadable
    assert enterprise.id is not None

    def _create() -> CaptureJob:
        with Session(state.engine, expire_on_commit=False) as s:
            return create_job(s, enterprise=enterprise, behaviour=behaviour, event_count=n)

    job = await run_in_threadpool(_create)
    task = BackgroundTask(run_capture_job, state.engine, state, job.capture_id, enterprise.id, doc, schema)
    return JSONResponse(job_out(job), status_code=202, headers={"Location": f"/capture/{job.capture_id}"},
                        background=task)


def _own_job_query(enterprise: Enterprise) -> Any:
    return select(CaptureJob).where(CaptureJob.enterprise_id == enterprise.id)


@router.get("/capture")
def capture_jobs(request: Request, enterprise: CurrentEnterprise, session: SessionDep, state: StateDep) -> Response:
    """The caller's capture jobs, oldest first, paged (``perPage``, ``nextPageToken``; ``Link`` rel=next)."""
    _check_params(request, set(PAGING))
    per_page = _per_page(request)
    start = _offset(_unwrap_token(request))
    rows = session.exec(_own_job_query(enterprise).order_by(col(CaptureJob.id)).offset(start)
                        .limit(per_page + 1)).all()
    more = len(rows) > per_page
    return JSONResponse([job_out(j) for j in rows[:per_page]],
                        headers=_page_headers(request, state, str(start + per_page) if more else None))


@router.get("/capture/{capture_id}")
def capture_job(capture_id: str, request: Request, enterprise: CurrentEnterprise, session: SessionDep) -> Response:
    """One capture job of the caller: ``{captureID, createdAt, finishedAt?, running, success,
    captureErrorBehaviour, errors, eventCount, events}``; another enterprise's job → 404 (not 403: its
    existence is not disclosed)."""
    _check_params(request, set())
    job = session.exec(_own_job_query(enterprise).where(CaptureJob.capture_id == capture_id)).first()
    if job is None:
        return problem(404, EXC + "NoSuchResourceException", "No such capture job",
                       f"capture job {capture_id} not found", instance=request.url.path)
    return JSONResponse(job_out(job))


# ------------------------------------------------------------------------------------------- events
@router.options("/events", include_in_schema=False)
def events_options() -> Response:
    """Events discovery (204)."""
    return _options("OPTIONS, GET, POST")


@router.post("/events", status_code=201)
async def post_event(request: Request, enterprise: CurrentEnterprise, state: StateDep) -> Response:
    """Capture one EPCIS event synchronously: **201** ``Location: /events/{eventID}`` (the client's eventID,
    else the GS1 hash ID) and the event; header ``TL-Event-Hash-ID``. **409** ResourceAlreadyExistsException
    when the event is stored already (``Location`` names it) or its eventID names another event; **400**
    ValidationException with ``errors``."""
    try:
        event = await _json_body(request)
        if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
            raise _Problem(400, "ValidationException", f"body must be one EPCIS event ({', '.join(EVENT_TYPES)})")
    except _Problem as exc:
        return exc.response(request)
    event = dict(event)
    context = event.pop("@context", CONTEXT)
    doc = {"@context": context, "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": utc_iso(utcnow()),
           "epcisBody": {"eventList": [event]}}
    schema = load_schema()

    def _capture() -> tuple[list[dict[str, Any]], int]:
        with Session(state.engine, expire_on_commit=False) as s:
            return capture(s, state=state, enterprise=enterprise, doc=doc, schema=schema)

    try:
        results, created = await run_in_threadpool(_capture)
    except UnprocessableError as exc:
        problems = [issue_problem(i) for i in exc.issues]
        return problem(400, EXC + "ValidationException", "Invalid EPCIS event",
                       "; ".join(p["detail"] for p in problems[:5]), instance=request.url.path, errors=problems)
    except EventIdConflict as exc:
        return problem(409, EXC + "ResourceAlreadyExistsException", "eventID already used", str(exc),
                       instance=request.url.path)
    except IntegrityError:
        return problem(409, EXC + "ResourceAlreadyExistsException", "Concurrent capture",
                       "a concurrent capture stored this event", instance=request.url.path)
    r = results[0]
    headers = {"Location": f"/events/{quote(r['eventID'], safe='')}", "TL-Event-Hash-ID": r["eventHashID"]}
    if not created:
        return problem(409, EXC + "ResourceAlreadyExistsException", "Event already captured",
                       f"event {r['eventID']} is stored already", instance=request.url.path, headers=headers)
    return JSONResponse(dict(event, eventID=event.get("eventID", r["eventHashID"])), status_code=201,
                        headers=headers)


@router.get("/events")
def events(request: Request, session: SessionDep, state: StateDep) -> Response:
    """Query events (EPCISQueryDocument). Parameters: :data:`SUPPORTED`; others → 400 QueryParameterException."""
    return run_query(request, session, state)


@router.get("/events/{event_id:path}")
def event_by_id(event_id: str, request: Request, session: SessionDep) -> Response:
    """One event by the client's ``eventID`` or its GS1 hash ID (``ni:///sha-256;…?ver=CBV2.0``, percent-encoded):
    an EPCISQueryDocument with the event (and its error declaration when retracted); header
    ``TL-Event-Hash-ID``. 404 NoSuchResourceException."""
    _check_params(request, set())
    rows = session.exec(
        select(EpcisEvent, Record).join(Record, col(Record.id) == EpcisEvent.record_id)
        .where(or_(EpcisEvent.event_id == event_id, EpcisEvent.event_hash == event_id))
        .order_by(col(EpcisEvent.is_declaration), col(EpcisEvent.id))
    ).all()
    originals = [(ev, rec) for ev, rec in rows if not ev.is_declaration] or list(rows)
    if not originals:
        return problem(404, EXC + "NoSuchResourceException", "No such event", f"no event {event_id}",
                       instance=request.url.path)
    return JSONResponse(query_document([event_out(ev, rec) for ev, rec in originals]),
                        headers={"TL-Event-Hash-ID": originals[0][0].event_hash})


# ------------------------------------------------------------------------------- top-level resources
@router.get("/eventTypes")
def event_types(request: Request) -> Response:
    """The five EPCIS 2.0 event types (Collection)."""
    _check_params(request, set(PAGING))
    return JSONResponse(collection(sorted(EVENT_TYPES)))


@router.get("/eventTypes/{event_type}/events")
def event_type_events(event_type: str, request: Request, session: SessionDep, state: StateDep) -> Response:
    """Events of one type (as ``GET /events?eventType=…``); 404 for an unknown type."""
    if event_type not in EVENT_TYPES:
        return problem(404, EXC + "NoSuchResourceException", "No such event type", event_type,
                       instance=request.url.path)
    return run_query(request, session, state, {"eventType": event_type})


@router.get("/eventTypes/{event_type}")
def event_type(event_type: str, request: Request) -> Response:
    """Sub-resources of an event type: ``events``; 404 for an unknown type."""
    if event_type not in EVENT_TYPES:
        return problem(404, EXC + "NoSuchResourceException", "No such event type", event_type,
                       instance=request.url.path)
    return JSONResponse(collection(["events"]))


def _vocabulary(name: str, column: Any, param: str, normalise: Callable[[str], str | None]) -> None:
    """Register ``/{name}``, ``/{name}/{value}`` and ``/{name}/{value}/events`` for one vocabulary column."""

    def listing(request: Request, session: SessionDep, state: StateDep) -> Response:
        return distinct_page(request, session, state, column)

    def known(session: Session, value: str) -> str | None:
        v = normalise(value)
        if v is None:
            return None
        return v if session.exec(select(column).where(column == v).limit(1)).first() is not None else None

    def resource(value: str, request: Request, session: SessionDep) -> Response:
        if known(session, value) is None:
            return problem(404, EXC + "NoSuchResourceException", f"No such {param}", value, instance=request.url.path)
        return JSONResponse(collection(["events"]))

    def events_of(value: str, request: Request, session: SessionDep, state: StateDep) -> Response:
        if known(session, value) is None:
            return problem(404, EXC + "NoSuchResourceException", f"No such {param}", value, instance=request.url.path)
        return run_query(request, session, state, {param: value})

    for path in (f"/{name}", f"/{name}/{{value:path}}/events", f"/{name}/{{value:path}}"):
        _add_options(path)
    router.add_api_route(f"/{name}", listing, methods=["GET"], summary=f"All {name} (Collection, paged)")
    router.add_api_route(f"/{name}/{{value:path}}/events", events_of, methods=["GET"],
                         summary=f"Events with this {param.split('_', 1)[1]} (EPCISQueryDocument)")
    router.add_api_route(f"/{name}/{{value:path}}", resource, methods=["GET"],
                         summary=f"Sub-resources of one of the {name}")


def _epc_or_none(value: str) -> str | None:
    try:
        return canonical_epc(value)
    except EpcisInvalid:
        return None


for _path in ("/capture/{capture_id}", "/events/{event_id:path}", "/eventTypes", "/eventTypes/{event_type}",
              "/eventTypes/{event_type}/events"):
    _add_options(_path)
_vocabulary("epcs", col(EpcisObject.key), "MATCH_anyEPC", _epc_or_none)
_vocabulary("bizSteps", col(EpcisEvent.biz_step), "EQ_bizStep", lambda v: cbv_short("bizStep", v))
_vocabulary("bizLocations", col(EpcisEvent.biz_location), "EQ_bizLocation", _epc_or_none)
_vocabulary("readPoints", col(EpcisEvent.read_point), "EQ_readPoint", _epc_or_none)
_vocabulary("dispositions", col(EpcisEvent.disposition), "EQ_disposition", lambda v: cbv_short("disposition", v))

