"""``/v1/coils/certificates``: ingestion of EN 10168 mill test certificates for steel coils."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api import crud, ingest
from api.deps import BearerDep, SessionDep, current_enterprise
from api.errors import UnprocessableError
from api.ingest import SIGNATURE_HEADER, record_out
from api.json_reader import parsed_body
from api.models import RECORD_KIND_COIL
from api.routes.identifiers import parse_identifier_or_422
from api.state import AppState
from provenance.errors import Issue

MAX_BODY_BYTES = 2 * 1024 * 1024
"""Largest certificate body (bytes); :mod:`api.json_reader` refuses more with 413 as the bytes arrive."""

router = APIRouter(prefix="/v1/coils/certificates", tags=["certificates"])

_CERTIFICATE_BODY = {"required": True, "description": "EN 10168 certificate JSON", "content": {
    "application/json": {"schema": {"type": "object", "additionalProperties": True,
                                    "title": "Document", "description": "EN 10168 certificate JSON"}}}}


def certificate_body(scope: dict[str, Any]) -> dict[str, Any]:
    """The certificate object of this request, as :class:`api.json_reader.StrictJsonBody` parsed it (once, with
    every input limit held): no second parse.

    Raises:
        UnprocessableError: ``{field: "body"}`` — rule ``missing`` (no JSON body: empty, or not sent as
            ``application/json``) or ``type`` (JSON, but not an object).
    """
    parsed, document = parsed_body(scope)
    if not parsed:
        raise UnprocessableError([Issue("body", "missing", "send the certificate as a JSON object "
                                                           "(Content-Type: application/json)")])
    if not isinstance(document, dict):
        raise UnprocessableError([Issue("body", "type", "the certificate must be a JSON object, "
                                                        f"not {type(document).__name__}")])
    return document


def _authenticated_ingest(state: AppState, request: Request, credentials: HTTPAuthorizationCredentials | None,
                          signature: str | None, supersedes: str | None) -> ingest.Ingested:
    """In one worker thread: the caller's enterprise (401/403), the body (422), then the ingest pipeline, all
    on one session (the same checks, in the same order, as the dependencies of every other write route)."""
    with Session(state.engine, expire_on_commit=False) as session:
        enterprise = current_enterprise(request, session, credentials)
        document = certificate_body(request.scope)
        return ingest.ingest_certificate(session, state, enterprise, document, signature=signature,
                                         supersedes=supersedes)


@router.post("", status_code=status.HTTP_201_CREATED, openapi_extra={"requestBody": _CERTIFICATE_BODY},
             responses={200: {"description": "identical repost: the stored record (idempotent)"}})
async def ingest_certificate(
    request: Request,
    credentials: BearerDep,
    x_record_signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
    supersedes: Annotated[
        str | None,
        Query(description="Identifier of the coil's current certificate that this one replaces (a corrected "
                          "replacement certificate). The new one gets the identifier `<coil>.r<N>`."),
    ] = None,
) -> JSONResponse:
    """Ingest a certificate: validate, identify, sign (or check the mill's signature), persist.

    Body: the certificate JSON object. Answer 201 ``{identifier, record_digest, status: "pending"}``
    after the record (RFC 8785 canonical JSON, SHA-256 digest, EIP-712 signature) is committed.
    Identifier = ``<prefix>/<coil_suffix(doc)>``. Optional header ``X-Record-Signature: 0x<65 bytes>``
    over ``record_typed_data(identifier, "coil_certificate", digest, chain_id)`` must recover to
    the enterprise account (also for an identical repost). Errors: 401 API key, 403 not a manufacturer,
    413 body over 2 MiB, 422 every validation issue ``[{field, rule, message}]`` (``body`` when it is not a
    JSON object) or a bad signature header, 409 same identifier with a different digest (same digest: 200
    with the existing record), 503 chain id unknown.

    Replacement certificates: a coil keeps one identifier; a corrected certificate for the same
    coil is accepted only with ``?supersedes=<identifier of the current certificate>`` and gets
    ``<coil identifier>.r2``, ``.r3``…; both stay verifiable and the resolution records link them
    (``supersedes`` / ``superseded_by``). A stale ``supersedes`` (not the current revision) is 409.
    The pipeline is :func:`api.ingest.ingest_certificate`; the body is the value the strict JSON reader
    parsed (:func:`certificate_body`), and everything blocking runs in one worker thread (one hop).
    """
    state: AppState = request.app.state.tl
    result = await run_in_threadpool(_authenticated_ingest, state, request, credentials, x_record_signature,
                                     supersedes)
    return JSONResponse(result.body, status_code=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


@router.get("/{identifier:path}")
def get_certificate(identifier: str, session: SessionDep) -> dict[str, Any]:
    """The stored certificate: ``{identifier, record_digest, status, document}``; 404/422."""
    parse_identifier_or_422(identifier)
    rec = crud.get_record(session, identifier=identifier)
    if rec is None or rec.kind != RECORD_KIND_COIL:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no certificate with identifier {identifier}")
    return {**record_out(rec), "document": json.loads(rec.document)}
