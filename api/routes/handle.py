"""``/api/handles/{handle}``: the Handle System REST API, as the Handle.net proxy serves it.

Follows the HANDLE.NET proxy servlet's ``REST-API.txt`` (hdlproxy 9) and the Handle Technical Manual's
JSON representation of handle values, so that unmodified Handle clients (e.g. pyhandle's
``RESTHandleClient``) resolve our ``88.<industry>.<enterprise>/<suffix>`` identifiers:

* answer ``{"responseCode", "handle", "values": [{"index", "type", "data": {"format", "value"}, "ttl",
  "timestamp"}]}``; ``timestamp`` ISO 8601 in UTC with ``Z`` (seconds), ``ttl`` 86400 s;
* Handle protocol response codes and their HTTP statuses: **1** success (200), **100** handle not
  found (404), **200** values not found (200 in resolution: the ``type`` / ``index`` filters matched
  nothing), **102** invalid handle (400), **301** server not responsible for the handle (400: a
  prefix outside the ``88`` root), **2** unexpected server error (500); errors carry ``message``;
* query parameters: ``type`` and ``index`` (repeatable; a value matches either; a ``type`` ending in
  ``.`` also selects its period-delimited sub-types), ``pretty`` (indented JSON), ``auth`` and
  ``publicOnly`` (accepted and ignored: every value here is public and read from the primary store).

Values of a record: 1 ``URL`` (the ``/id`` page), 100 ``HS_ADMIN`` (``{handle: "0.NA/<prefix>",
index: 200, permissions}``: the owner enterprise's prefix handle administers it), and our own typed
values as ``string`` data — 2 ``RECORD_DIGEST`` (``0x`` + 64 hex, SHA-256 of the RFC 8785 document), 3
``RECORD_KIND``, 4 ``OWNER`` (owner enterprise prefix), 5 ``OWNER_NAME``, 6 ``OWNER_ADDRESS``, 7
``STATUS`` (``pending`` / ``anchored``), 8 ``ANCHOR`` (compact JSON ``{root, leaf_index, tree_size,
tx_hash, block_number, block_hash}``, only once anchored), 9 / 10 ``SUPERSEDES`` / ``SUPERSEDED_BY``.
A traced object that is known only from EPCIS events (``88.x.y/01.<GTIN>.21.<serial>``) resolves to
``URL`` plus 11 ``GS1_DIGITAL_LINK`` (its canonical Digital Link URI) and 12 ``EPC_URN`` (the spelling
first captured) when those exist. ``EMAIL`` is not served: enterprises register no e-mail address.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from api.epcis.models import EpcisObject
from api.models import Batch, Enterprise, Record
from api.read_cache import (
    CACHE_CONTROL,
    HANDLE,
    BatchRow,
    CachedView,
    OwnerRow,
    RecordRow,
    etag_of,
    load_facts,
    not_modified,
)
from api.routes.identifiers import quoted
from api.state import AppState
from provenance.errors import InvalidIdentifier
from provenance.identifiers import ROOT, parse_identifier

#: The Handle proxy answers its errors in its own JSON, not as an HTTP problem body.
HANDLE_ERROR_SCHEMA: dict[str, Any] = {
    "title": "HandleError", "type": "object", "required": ["responseCode"],
    "properties": {
        "responseCode": {"type": "integer", "description": "Handle response code: 2 error, 100 handle not found, "
                                                           "102 invalid handle, 301 server not responsible"},
        "handle": {"type": "string"}, "message": {"type": "string"},
    },
}
_HANDLE_ERROR = {"description": "Handle error (Handle REST response codes)",
                 "content": {"application/json": {"schema": HANDLE_ERROR_SCHEMA}}}
router = APIRouter(prefix="/api/handles", tags=["handle"],
                   responses={400: _HANDLE_ERROR, 404: _HANDLE_ERROR, 500: _HANDLE_ERROR, "default": _HANDLE_ERROR})
log = logging.getLogger(__name__)

TTL_S = 86400
"""Time-to-live of every value, seconds (the Handle.net default)."""
ADMIN_PERMISSIONS = "011111110011"
"""HS_ADMIN permission bits (Handle Technical Manual: add handle, delete handle, add NA, delete NA,
modify value, remove value, add value, read value, modify admin, remove admin, add admin, list)."""
ADMIN_INDEX = 200
"""Index of the HS_PUBKEY / HS_VLIST value in the admin handle ``0.NA/<prefix>``."""

RC_SUCCESS, RC_ERROR, RC_HANDLE_NOT_FOUND, RC_INVALID_HANDLE = 1, 2, 100, 102
RC_VALUES_NOT_FOUND, RC_SERVER_NOT_RESPONSIBLE = 200, 301


def handle_timestamp(dt: datetime | None) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC (naive datetimes are taken as UTC, as stored by SQLite)."""
    if dt is None:
        dt = datetime.now(UTC)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def handle_value(index: int, type_: str, value: Any, timestamp: str, fmt: str = "string") -> dict[str, Any]:
    """One handle value ``{index, type, data: {format, value}, ttl, timestamp}``."""
    return {"index": index, "type": type_, "data": {"format": fmt, "value": value}, "ttl": TTL_S,
            "timestamp": timestamp}


def admin_value(prefix: str, timestamp: str) -> dict[str, Any]:
    """``HS_ADMIN`` at index 100: the enterprise prefix handle ``0.NA/<prefix>`` (index 200) administers."""
    return handle_value(100, "HS_ADMIN", {"handle": f"0.NA/{prefix}", "index": ADMIN_INDEX,
                                          "permissions": ADMIN_PERMISSIONS}, timestamp, fmt="admin")


def record_values(rec: Record | RecordRow, owner: Enterprise | OwnerRow | None, batch: Batch | BatchRow | None,
                  page_url: str) -> list[dict[str, Any]]:
    """Handle values of a stored record (see the module docstring for indices and types)."""
    ts = handle_timestamp(rec.created_at)
    out = [handle_value(1, "URL", page_url, ts), handle_value(2, "RECORD_DIGEST", rec.record_digest, ts),
           handle_value(3, "RECORD_KIND", rec.kind, ts)]
    if owner is not None:
        out += [handle_value(4, "OWNER", owner.prefix, ts), handle_value(5, "OWNER_NAME", owner.name, ts),
                handle_value(6, "OWNER_ADDRESS", owner.address, ts)]
    out.append(handle_value(7, "STATUS", rec.status, ts))
    if rec.status == "anchored" and batch is not None:
        anchor = {"root": batch.root, "leaf_index": rec.leaf_index, "tree_size": batch.size, "tx_hash": batch.tx_hash,
                  "block_number": batch.block_number, "block_hash": batch.block_hash}
        out.append(handle_value(8, "ANCHOR", json.dumps(anchor, separators=(",", ":")),
                                handle_timestamp(batch.anchored_at)))
    if rec.supersedes:
        out.append(handle_value(9, "SUPERSEDES", rec.supersedes, ts))
    if rec.superseded_by:
        out.append(handle_value(10, "SUPERSEDED_BY", rec.superseded_by, ts))
    if owner is not None:
        out.append(admin_value(owner.prefix, ts))
    return out


def object_values(obj: EpcisObject, owner: Enterprise | None, page_url: str) -> list[dict[str, Any]]:
    """Handle values of a traced object known from EPCIS events (no record of its own)."""
    ts = handle_timestamp(owner.created_at if owner is not None else None)
    out = [handle_value(1, "URL", page_url, ts)]
    if obj.key.startswith("https://"):
        out.append(handle_value(11, "GS1_DIGITAL_LINK", obj.key, ts))
    if obj.raw.startswith("urn:epc:"):
        out.append(handle_value(12, "EPC_URN", obj.raw, ts))
    if owner is not None:
        out += [handle_value(4, "OWNER", owner.prefix, ts), admin_value(owner.prefix, ts)]
    return out


def select_values(values: list[dict[str, Any]], types: Iterable[str], indices: Iterable[int]) -> list[dict[str, Any]]:
    """Values matching any of ``types`` (``"X."`` also matches ``X.sub…``) or ``indices``; all when both are empty."""
    types, indices = list(types), set(indices)
    if not types and not indices:
        return values

    def wanted(v: dict[str, Any]) -> bool:
        t = v["type"]
        return v["index"] in indices or any(t == w or (w.endswith(".") and t.startswith(w)) for w in types)

    return [v for v in values if wanted(v)]


def _answer(body: dict[str, Any], status_code: int, pretty: bool) -> JSONResponse:
    return (_PrettyJSON if pretty else JSONResponse)(body, status_code=status_code)


class _PrettyJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, indent=2, ensure_ascii=False).encode("utf-8")


def lookup(session: Session, handle: str, base_url: str) -> list[dict[str, Any]] | None:
    """All values of ``handle`` (a well-formed identifier), or None when it names nothing here."""
    page = f"{base_url}/id/{quoted(handle)}"
    row = session.exec(
        select(Record, Enterprise, Batch)
        .join(Enterprise, col(Enterprise.id) == col(Record.enterprise_id))
        .outerjoin(Batch, col(Batch.id) == col(Record.batch_id))
        .where(Record.identifier == handle)
    ).first()
    if row is not None:
        return record_values(row[0], row[1], row[2], page)
    obj = session.exec(select(EpcisObject).where(EpcisObject.identifier == handle)).first()
    if obj is not None:
        return object_values(obj, session.get(Enterprise, obj.enterprise_id), page)
    return None


def handle_values(state: AppState, handle: str) -> list[dict[str, Any]] | None:
    """:func:`lookup` with a record read by one Core query (:func:`api.read_cache.load_facts`) and kept in
    the read cache once anchored (view ``handle``); objects known only from EPCIS events are read each time."""
    epoch = state.reads.epoch()
    base_url = state.settings.public_base_url
    facts = load_facts(state.engine, handle)
    if facts is None:
        with Session(state.engine) as session:
            return lookup(session, handle, base_url)
    values = record_values(facts.record, facts.owner, facts.batch, f"{base_url}/id/{quoted(handle)}")
    if facts.final:
        state.reads.put(CachedView(HANDLE, handle, facts.revision, b"", "", values, time.monotonic()), epoch)
    return values


@router.get("/{handle:path}", response_class=JSONResponse)
async def resolve_handle(handle: str, request: Request) -> Response:
    """Resolve ``handle`` like the Handle.net proxy's ``GET /api/handles/<handle>``.

    Query: ``type`` / ``index`` (repeatable, OR-ed), ``pretty``; ``auth``, ``publicOnly`` ignored.
    Answers: 200 ``{responseCode: 1, handle, values}``; 200 ``{responseCode: 200, handle, values: []}``
    when the filters match no value; 404 ``{responseCode: 100, handle, message}`` unknown handle; 400
    ``{responseCode: 102 | 301, handle, message}`` malformed handle / not an ``88`` prefix, or an
    ``index`` that is not an integer (responseCode 2, naming the parameter); 500 ``{responseCode: 2}`` when
    the database cannot be read.
    """
    q = request.query_params
    pretty = "pretty" in q and q.get("pretty", "").lower() not in ("false", "0")
    if handle.startswith("hdl:"):
        handle = handle[4:]
    try:
        indices = [int(i) for i in q.getlist("index")]
    except ValueError:
        return _answer({"responseCode": RC_ERROR, "handle": handle,
                        "message": f"query parameter index must be an integer, got {q.getlist('index')!r}"}, 400,
                       pretty)
    if handle.split(".", 1)[0].split("/", 1)[0] != ROOT:
        return _answer({"responseCode": RC_SERVER_NOT_RESPONSIBLE, "handle": handle,
                        "message": f"That prefix doesn't live here: this server holds the {ROOT}.x.y prefixes"}, 400,
                       pretty)
    try:
        parse_identifier(handle)
    except InvalidIdentifier as exc:
        return _answer({"responseCode": RC_INVALID_HANDLE, "handle": handle, "message": f"Invalid handle: {exc}"},
                       400, pretty)
    state: AppState = request.app.state.tl
    cached = state.reads.get(HANDLE, handle)
    try:
        values = cached.data if cached is not None else await run_in_threadpool(handle_values, state, handle)
    except SQLAlchemyError as exc:
        log.warning("handle resolution of %s failed: %s", handle, exc)
        return _answer({"responseCode": RC_ERROR, "handle": handle, "message": "Server error: store unavailable"},
                       500, pretty)
    if values is None:
        return _answer({"responseCode": RC_HANDLE_NOT_FOUND, "handle": handle, "message": "Handle Not Found"}, 404,
                       pretty)
    chosen = select_values(values, q.getlist("type"), indices)
    if not chosen:
        return _answer({"responseCode": RC_VALUES_NOT_FOUND, "handle": handle, "values": []}, 200, pretty)
    answer = _answer({"responseCode": RC_SUCCESS, "handle": handle, "values": chosen}, 200, pretty)
    etag = etag_of(HANDLE, handle, bytes(answer.body))
    answer.headers["ETag"] = etag
    answer.headers["Cache-Control"] = CACHE_CONTROL
    if not_modified(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": CACHE_CONTROL})
    return answer
