"""``/v1/epcis``: EPCIS 2.0 capture (``POST /v1/epcis/capture``) and query (``GET /v1/epcis/events``).

The GS1 EPCIS 2.0 JSON Schema is loaded at run time from ``TRACELEDGER_EPCIS_SCHEMA`` (default
``../shared/data/epcis/EPCIS-JSON-Schema.json`` beside the project root): no PyPI package ships it
(``epcis-event-hash-generator`` 1.9.3 carries only the JSON-LD contexts), and the repository does not
copy GS1's file. Without the schema, capture answers 503 naming the path it looked for.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status

from api.deps import CurrentEnterprise, SessionDep, StateDep
from api.epcis.capture import capture_events
from api.epcis.query import query_document, query_events
from api.errors import UnprocessableError
from api.json_reader import parsed_body
from provenance import strict_json
from provenance.errors import Issue
from provenance.strict_json import StrictJsonError

router = APIRouter(prefix="/v1/epcis", tags=["epcis"])

SCHEMA_ENV = "TRACELEDGER_EPCIS_SCHEMA"
DEFAULT_SCHEMA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "epcis" / "EPCIS-JSON-Schema.json"
MAX_CAPTURE_BYTES = 16 * 1024 * 1024
_schema_lock = threading.Lock()
_schema_cache: dict[str, dict[str, Any]] = {}


def schema_path() -> Path:
    """Where the EPCIS 2.0 JSON Schema is read from (``TRACELEDGER_EPCIS_SCHEMA`` or the shared default)."""
    return Path(os.environ.get(SCHEMA_ENV) or DEFAULT_SCHEMA)


def load_schema() -> dict[str, Any]:
    """The GS1 EPCIS 2.0 JSON Schema (cached per path). Raises 503 when it cannot be read."""
    path = schema_path()
    key = str(path)
    with _schema_lock:
        if key not in _schema_cache:
            try:
                _schema_cache[key] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise HTTPException(
                    status.HTTP_503_SERVICE_UNAVAILABLE,
                    f"EPCIS 2.0 JSON Schema not readable at {path} (set {SCHEMA_ENV}): {exc}") from exc
        return _schema_cache[key]


def limit_body(content_length: Annotated[int | None, Header()] = None) -> None:
    """Refuse capture bodies over 16 MiB (413) before they are parsed."""
    if content_length is not None and content_length > MAX_CAPTURE_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"EPCIS document exceeds {MAX_CAPTURE_BYTES} bytes")


async def capture_body(request: Request) -> Any:
    """The capture document: the value the strict JSON reader (:mod:`api.json_reader`) parsed already — the body
    is not parsed twice —, else the body parsed here (the reader's limits apply); raw bytes of another media type
    (refused as "not a JSON object" by the capture). Raises 422 ``body``/``required`` on an empty body."""
    done, value = parsed_body(request.scope)
    if done:
        return value
    raw = await request.body()
    if not raw.strip():
        raise UnprocessableError([Issue("body", "required", "an EPCISDocument (JSON) is required")])
    if request.headers.get("content-type", "application/json").split(";")[0].strip().lower().endswith("json"):
        try:
            return strict_json.loads(raw)
        except StrictJsonError as exc:
            raise UnprocessableError([Issue("body", exc.limit, exc.message)]) from exc
    return raw


@router.post("/capture", dependencies=[Depends(limit_body)], status_code=status.HTTP_201_CREATED,
             responses={200: {"description": "every event was stored already (idempotent repost)"}},
             openapi_extra={"requestBody": {"required": True, "description": "EPCISDocument (JSON / JSON-LD, "
                                            "EPCIS 2.0 §8.2)", "content": {"application/json": {"schema": {}}}}})
def capture(
    enterprise: CurrentEnterprise,
    session: SessionDep,
    state: StateDep,
    response: Response,
    document: Annotated[Any, Depends(capture_body)],  # after the API key check: a 401 comes first
) -> dict[str, Any]:
    """Capture an EPCISDocument: validate it whole, hash, sign and store every event, all or nothing.

    Validation: the GS1 EPCIS 2.0 JSON Schema plus our rules (a non-empty EPCISDocument; EPCs that
    are GS1 keys must be well-formed). Errors: **422** ``{"detail": [{field, rule, message,
    event_index}]}`` naming every bad event (0-based index in ``epcisBody.eventList``) and field —
    nothing is stored; 401/403 API key; 503 schema or chain id unavailable.

    Answer: **201** when at least one event is new, **200** when all were already stored
    (idempotent by GS1 event hash ID): ``{eventIDs: [ni:///sha-256;…?ver=CBV2.0, …] (document order),
    captured, duplicates, events: [{index, eventID, identifier, status}]}``. Each new event becomes a
    record ``<prefix>/ev-<hash hex>`` of kind ``epcis_event`` signed by the capturing enterprise
    (EIP-712) and anchored with the next Merkle batch. An event carrying ``errorDeclaration``
    (EPCIS 2.0 §7.4.1.4) is stored as ``<prefix>/ed-<hash hex>`` and retracts the original event.
    The pipeline is :func:`api.epcis.capture.capture_events` (steps of :mod:`api.ingest`).
    """
    result = capture_events(session, state, enterprise, document, load_schema())
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return result.body()


_V1_PARAMS = frozenset({"eventType", "EQ_bizStep", "EQ_disposition", "MATCH_epc", "MATCH_anyEPC", "GE_eventTime",
                        "LT_eventTime", "EQ_bizLocation", "perPage", "nextPageToken", "EQ_eventID", "EQ_action",
                        "MATCH_epcClass"})


def _split_pipes(values: list[str]) -> list[str]:
    return [x for v in values for x in v.split("|") if x]


@router.get("/events")
def events(
    request: Request,
    response: Response,
    session: SessionDep,
    eventType: Annotated[list[str] | None, Query()] = None,  # noqa: N803 - EPCIS parameter names
    EQ_bizStep: Annotated[list[str] | None, Query()] = None,  # noqa: N803
    EQ_disposition: Annotated[list[str] | None, Query()] = None,  # noqa: N803
    MATCH_epc: Annotated[list[str] | None, Query()] = None,  # noqa: N803
    MATCH_anyEPC: Annotated[list[str] | None, Query()] = None,  # noqa: N803
    GE_eventTime: Annotated[str | None, Query()] = None,  # noqa: N803
    LT_eventTime: Annotated[str | None, Query()] = None,  # noqa: N803
    EQ_bizLocation: Annotated[list[str] | None, Query()] = None,  # noqa: N803
    perPage: Annotated[int, Query(ge=1, le=1000)] = 100,  # noqa: N803
    nextPageToken: Annotated[str | None, Query()] = None,  # noqa: N803
    EQ_eventID: Annotated[list[str] | None, Query()] = None,  # noqa: N803
    EQ_action: Annotated[list[str] | None, Query()] = None,  # noqa: N803
    MATCH_epcClass: Annotated[list[str] | None, Query()] = None,  # noqa: N803
) -> dict[str, Any]:
    """Query captured events (EPCIS 2.0 §8.2.7.1 SimpleEventQuery subset, REST binding §12.6).

    Parameters: ``eventType``, ``EQ_bizStep``, ``EQ_disposition``, ``MATCH_epc``, ``MATCH_anyEPC``,
    ``GE_eventTime``, ``LT_eventTime``, ``EQ_bizLocation`` (repeat or comma-separate values to OR them),
    ``perPage`` (1–1000, default 100), ``nextPageToken``; ``EQ_eventID`` (client eventID or hash ID),
    ``EQ_action``, ``MATCH_epcClass`` as in the REST binding (``api/routes/epcis_rest.py``, which serves the
    whole simple-query set at ``GET /events``). Any other parameter → 422 (``query.<name>``, rule
    ``unknown``): a filter is never silently ignored. Answer: an EPCISQueryDocument
    ``{@context, type, schemaVersion, creationDate, epcisBody: {queryResults: {queryName:
    "SimpleEventQuery", resultsBody: {eventList}}}, nextPageToken}``; also a ``Link: <…>; rel="next"``
    header. Errors: 422 naming the parameter (``query.<name>``).
    """
    unknown = sorted(set(request.query_params) - _V1_PARAMS)
    if unknown:
        raise UnprocessableError([Issue(f"query.{name}", "unknown", f"unknown query parameter {name!r}; supported: "
                                        f"{', '.join(sorted(_V1_PARAMS))} (the REST binding GET /events supports more)")
                                  for name in unknown])
    from api.routes.epcis_rest import QueryParameterError, extra_conditions

    rest = {k: _split_pipes(v) for k, v in (("EQ_eventID", EQ_eventID), ("EQ_action", EQ_action),
                                            ("MATCH_epcClass", MATCH_epcClass)) if v}
    try:
        extra = extra_conditions(rest)
    except QueryParameterError as exc:
        raise UnprocessableError([Issue("query." + str(exc).split(":", 1)[0].split(" ", 1)[0], "value", str(exc))]
                                 ) from exc
    params = {k: v for k, v in {
        "eventType": eventType, "EQ_bizStep": EQ_bizStep, "EQ_disposition": EQ_disposition, "MATCH_epc": MATCH_epc,
        "MATCH_anyEPC": MATCH_anyEPC, "GE_eventTime": [GE_eventTime] if GE_eventTime else None,
        "LT_eventTime": [LT_eventTime] if LT_eventTime else None, "EQ_bizLocation": EQ_bizLocation,
    }.items() if v} | rest
    found, token = query_events(session, params, per_page=perPage, page_token=nextPageToken, extra=extra)
    if token is not None:
        response.headers["Link"] = f'<{request.url.include_query_params(nextPageToken=token)}>; rel="next"'
    return query_document(found, token)
