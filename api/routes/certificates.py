"""``/v1/coils/certificates``: ingestion of EN 10168 mill test certificates for steel coils."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Response, status

from api import crud, ingest
from api.deps import CurrentEnterprise, SessionDep, StateDep
from api.ingest import SIGNATURE_HEADER, record_out
from api.models import RECORD_KIND_COIL
from api.routes.identifiers import parse_identifier_or_422

MAX_BODY_BYTES = 2 * 1024 * 1024


def limit_body(content_length: Annotated[int | None, Header()] = None) -> None:
    """Refuse certificate bodies over 2 MiB (413) before they are parsed."""
    if content_length is not None and content_length > MAX_BODY_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"certificate body exceeds {MAX_BODY_BYTES} bytes")


router = APIRouter(prefix="/v1/coils/certificates", tags=["certificates"])


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[Depends(limit_body)])
def ingest_certificate(
    document: Annotated[dict[str, Any], Body(description="EN 10168 certificate JSON")],
    enterprise: CurrentEnterprise,
    session: SessionDep,
    state: StateDep,
    response: Response,
    x_record_signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
    supersedes: Annotated[
        str | None,
        Query(description="Identifier of the coil's current certificate that this one replaces (a corrected "
                          "replacement certificate). The new one gets the identifier `<coil>.r<N>`."),
    ] = None,
) -> dict[str, Any]:
    """Ingest a certificate: validate, identify, sign (or check the mill's signature), persist.

    Body: the certificate JSON object. Answer 201 ``{identifier, record_digest, status: "pending"}``
    after the record (RFC 8785 canonical JSON, SHA-256 digest, EIP-712 signature) is committed.
    Identifier = ``<prefix>/<coil_suffix(doc)>``. Optional header ``X-Record-Signature: 0x<65 bytes>``
    over ``record_typed_data(identifier, "coil_certificate", digest, chain_id)`` must recover to
    the enterprise account (also for an identical repost). Errors: 401 API key, 403 not a manufacturer,
    422 every validation issue ``[{field, rule, message}]`` or a bad signature header, 409 same
    identifier with a different digest (same digest: 200 with the existing record), 503 chain id unknown.

    Replacement certificates: a coil keeps one identifier; a corrected certificate for the same
    coil is accepted only with ``?supersedes=<identifier of the current certificate>`` and gets
    ``<coil identifier>.r2``, ``.r3``…; both stay verifiable and the resolution records link them
    (``supersedes`` / ``superseded_by``). A stale ``supersedes`` (not the current revision) is 409.
    The pipeline is :func:`api.ingest.ingest_certificate`.
    """
    result = ingest.ingest_certificate(session, state, enterprise, document, signature=x_record_signature,
                                       supersedes=supersedes)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return result.body


@router.get("/{identifier:path}")
def get_certificate(identifier: str, session: SessionDep) -> dict[str, Any]:
    """The stored certificate: ``{identifier, record_digest, status, document}``; 404/422."""
    parse_identifier_or_422(identifier)
    rec = crud.get_record(session, identifier=identifier)
    if rec is None or rec.kind != RECORD_KIND_COIL:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no certificate with identifier {identifier}")
    return {**record_out(rec), "document": json.loads(rec.document)}
