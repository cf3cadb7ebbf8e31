"""``/v1/identifiers``: Handle-style resolution of ``88.<industry>.<enterprise>/<suffix>`` and QR codes.

The QR routes are declared before the resolution route: ``{identifier:path}`` also matches
``…/qr.png``, and Starlette takes the first matching route.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request, Response, status
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from api import crud
from api.errors import UnprocessableError, issue
from api.models import Batch, Enterprise, Record, utc_iso
from api.qr import MEDIA_TYPES, qr_content, render_qr
from api.read_cache import (
    CACHE_CONTROL,
    QR,
    RESOLUTION,
    BatchRow,
    CachedView,
    OwnerRow,
    RecordRow,
    etag_of,
    load_facts,
    make_view,
    not_modified,
)
from api.state import AppState
from provenance.errors import InvalidIdentifier
from provenance.identifiers import parse_identifier

router = APIRouter(prefix="/v1/identifiers", tags=["identifiers"])


def parse_identifier_or_422(identifier: str) -> None:
    """Raise 422 ``[{field: "path.identifier", rule: "identifier", message}]`` when malformed."""
    try:
        parse_identifier(identifier)
    except InvalidIdentifier as exc:
        raise UnprocessableError([issue("path.identifier", "identifier", str(exc))]) from exc


def record_or_404(session: Session, identifier: str) -> Record:
    """Record for a well-formed identifier; 422 malformed, 404 unknown."""
    parse_identifier_or_422(identifier)
    rec = crud.get_record(session, identifier=identifier)
    if rec is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"identifier {identifier} is not registered")
    return rec


def quoted(identifier: str) -> str:
    """Identifier for use in a URL path (the '/' between prefix and suffix stays)."""
    return quote(identifier, safe="/")


def links(base_url: str, identifier: str) -> dict[str, str]:
    """Absolute URLs related to an identifier."""
    q = quoted(identifier)
    return {
        "self": f"{base_url}/v1/identifiers/{q}",
        "qr_png": f"{base_url}/v1/identifiers/{q}/qr.png",
        "qr_svg": f"{base_url}/v1/identifiers/{q}/qr.svg",
        "page": f"{base_url}/id/{q}",
        "verify": f"{base_url}/v1/verify/{q}",
    }


def _iso(dt: datetime | None) -> str | None:
    return utc_iso(dt) if dt is not None else None


def resolution(session: Session | None, rec: Record | RecordRow, base_url: str, *,
               owner: Enterprise | OwnerRow | None = None, batch: Batch | BatchRow | None = None) -> dict[str, Any]:
    """Handle-style resolution record of ``rec`` (see ``GET /v1/identifiers/{identifier}``).

    ``owner`` / ``batch`` when the caller loaded them already (else they are read here with ``session``)."""
    if owner is None or owner.id != rec.enterprise_id:
        assert session is not None, "resolution without the owner row needs a session"
        owner = session.get(Enterprise, rec.enterprise_id)
    if batch is None or batch.id != rec.batch_id:
        if rec.batch_id is not None:
            assert session is not None, "resolution without the batch row needs a session"
        batch = session.get(Batch, rec.batch_id) if session is not None and rec.batch_id is not None else None
    ts = _iso(rec.created_at)
    lk = links(base_url, rec.identifier)
    owner_out = (
        {"id": owner.id, "name": owner.name, "prefix": owner.prefix, "address": owner.address} if owner else None
    )
    values: list[dict[str, Any]] = [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": lk["page"]}, "timestamp": ts},
        {"index": 2, "type": "RECORD_DIGEST", "data": {"format": "hex", "value": rec.record_digest}, "timestamp": ts},
        {"index": 3, "type": "OWNER", "data": {"format": "object", "value": owner_out}, "timestamp": ts},
    ]
    if rec.status == "anchored" and batch is not None:
        values.append(
            {
                "index": 4,
                "type": "ANCHOR",
                "data": {
                    "format": "object",
                    "value": {
                        "root": batch.root,
                        "leaf_index": rec.leaf_index,
                        "tree_size": batch.size,
                        "tx_hash": batch.tx_hash,
                        "block_number": batch.block_number,
                        "block_hash": batch.block_hash,
                    },
                },
                "timestamp": _iso(batch.anchored_at),
            }
        )
    if rec.supersedes:
        values.append({"index": 5, "type": "SUPERSEDES", "data": {"format": "string", "value": rec.supersedes},
                       "timestamp": ts})
    if rec.superseded_by:
        values.append({"index": 6, "type": "SUPERSEDED_BY", "data": {"format": "string", "value": rec.superseded_by},
                       "timestamp": ts})
    if owner is not None:
        values.append(
            {
                "index": 100,
                "type": "HS_ADMIN",
                "data": {"format": "admin", "value": {"address": owner.address, "prefix": owner.prefix}},
                "timestamp": ts,
            }
        )
    return {
        "identifier": rec.identifier,
        "kind": rec.kind,
        "owner": owner_out,
        "record_digest": rec.record_digest,
        "status": rec.status,
        "supersedes": rec.supersedes,
        "superseded_by": rec.superseded_by,
        "values": values,
        "links": lk,
    }


def qr_url(state: AppState, identifier: str) -> str:
    """What the QR code of ``identifier`` encodes (see :func:`api.qr.qr_content`); 404 unknown, 422 malformed.

    A registered identifier never loses its record or object, so the answer is kept (view ``qr``)."""
    cached = state.reads.get(QR, identifier)
    if cached is not None:
        return str(cached.data)
    epoch = state.reads.epoch()
    gs1_key = None
    with Session(state.engine) as session:
        if crud.get_record(session, identifier=identifier) is None:  # an EPCIS object: QR of its Digital Link
            from api.epcis.models import EpcisObject

            obj = session.exec(select(EpcisObject).where(EpcisObject.identifier == identifier)).first()
            if obj is None:
                record_or_404(session, identifier)
            else:
                gs1_key = obj.key
    url = qr_content(state.settings.public_base_url, identifier, gs1_key)
    state.reads.put(CachedView(QR, identifier, "registered", b"", "", url, time.monotonic()), epoch)
    return url


async def _qr(identifier: str, fmt: str, request: Request) -> Response:
    state: AppState = request.app.state.tl
    cached = state.reads.get(QR, identifier)
    url = str(cached.data) if cached is not None else await run_in_threadpool(qr_url, state, identifier)
    data = state.qr_cache.get((url, fmt))  # images of a URL never change (as api.qr.cached_qr)
    if data is None:
        data = await run_in_threadpool(render_qr, url, fmt)
        state.qr_cache[(url, fmt)] = data
    etag = etag_of("qr." + fmt, url, data)
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "ETag": etag}
    if not_modified(request.headers.get("if-none-match"), etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(content=data, media_type=MEDIA_TYPES[fmt], headers=headers)


@router.get("/{identifier:path}/qr.png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def qr_png(identifier: str, request: Request) -> Response:
    """PNG QR code of ``{PUBLIC_BASE_URL}/id/{identifier}``, or of the GS1 Digital Link URI on
    ``PUBLIC_BASE_URL`` for an object identified by a GS1 key (image/png); 404 unknown, 422 malformed.
    ``ETag`` of the image; ``If-None-Match`` answers 304."""
    return await _qr(identifier, "png", request)


@router.get("/{identifier:path}/qr.svg", response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}})
async def qr_svg(identifier: str, request: Request) -> Response:
    """SVG QR code, content as for ``qr.png`` (image/svg+xml); 404 unknown, 422 malformed."""
    return await _qr(identifier, "svg", request)


@router.get("/{identifier:path}", response_class=Response,
            responses={200: {"content": {"application/json": {"schema": {"type": "object"}}},
                             "headers": {"ETag": {"schema": {"type": "string"}}}},
                       304: {"description": "Not Modified (If-None-Match matched the ETag)"}})
async def resolve(identifier: str, request: Request) -> Response:
    """Resolve an identifier.

    Answer: ``{identifier, kind, owner: {id, name, prefix, address}, record_digest, status,
    values: [{index, type, data: {format, value}, timestamp}], links: {self, qr_png, qr_svg, page,
    verify}}`` with values 1 URL (the /id page), 2 RECORD_DIGEST, 3 OWNER, 4 ANCHOR (only when
    anchored), 100 HS_ADMIN (owner account). Headers ``ETag`` (strong) and ``Cache-Control: public, no-cache``;
    ``If-None-Match`` with that tag answers 304. An anchored record's answer is served from memory
    (:mod:`api.read_cache`). Errors: 422 malformed identifier, 404 unknown.
    """
    state: AppState = request.app.state.tl
    view = state.reads.get(RESOLUTION, identifier)
    if view is None:
        view = await run_in_threadpool(resolution_view, state, identifier)
    return view_response(request, view)


def resolution_view(state: AppState, identifier: str) -> CachedView:
    """The resolution answer of ``identifier`` from one Core query, cached when the record is final.

    Errors: 422 malformed, 404 unknown."""
    parse_identifier_or_422(identifier)
    epoch = state.reads.epoch()
    facts = load_facts(state.engine, identifier)
    if facts is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"identifier {identifier} is not registered")
    body = resolution(None, facts.record, state.settings.public_base_url, owner=facts.owner, batch=facts.batch)
    view = make_view(RESOLUTION, identifier, facts.revision, body)
    if facts.final:
        state.reads.put(view, epoch)
    return view


def view_response(request: Request, view: CachedView, media_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> Response:
    """200 with ``view.body``, or 304 when ``If-None-Match`` matches; both with ``ETag`` and ``Cache-Control``."""
    out = {"ETag": view.etag, "Cache-Control": CACHE_CONTROL, **(headers or {})}
    if not_modified(request.headers.get("if-none-match"), view.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=out)
    return Response(content=view.body, media_type=media_type, headers=out)
