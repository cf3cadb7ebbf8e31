"""``POST /v1/coils/certificates/batch``: bulk ingest of EN 10168 certificates, all or nothing.

Every certificate is validated, identified, canonicalised, hashed and signed (or its device signature
checked) by the same pipeline as ``POST /v1/coils/certificates`` (:mod:`api.ingest`); the new records
are then written with multi-row INSERTs (:func:`api.bulk.insert_rows`) and committed **once**, before
the answer. Anchoring is unchanged: the worker picks the records up with the next Merkle batch.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Response, status

from api import ingest
from api.deps import CurrentEnterprise, SessionDep, StateDep

MAX_BATCH_BYTES = 32 * 1024 * 1024

router = APIRouter(prefix="/v1/coils/certificates", tags=["certificates"])


def limit_body(content_length: Annotated[int | None, Header()] = None) -> None:
    """Refuse batch bodies over 32 MiB (413) before they are parsed."""
    if content_length is not None and content_length > MAX_BATCH_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"batch body exceeds {MAX_BATCH_BYTES} bytes")


@router.post("/batch", status_code=status.HTTP_201_CREATED, dependencies=[Depends(limit_body)])
def ingest_batch(
    body: Annotated[dict[str, Any], Body(description='{"certificates": [certificate | {document, signature}]}')],
    enterprise: CurrentEnterprise,
    session: SessionDep,
    state: StateDep,
    response: Response,
) -> dict[str, Any]:
    """Ingest up to 5,000 certificates in one transaction.

    Body: ``{"certificates": [item, …]}``; an item is either a certificate JSON object or
    ``{"document": <certificate>, "signature": "0x<65 bytes>"}`` (the mill's own EIP-712 signature, as
    ``X-Record-Signature`` for single posts; without it the API signs with the mill's key).

    Answer: **201** ``{count, created, duplicates, records: [{index, identifier, record_digest, status}]}``
    (``status`` ``pending`` for new records, ``duplicate`` for an identical certificate stored before or
    earlier in the batch); **200** when every item was a duplicate. The records are committed before
    the answer. Errors — nothing is stored: **422** listing every issue with its field prefixed by the
    item, e.g. ``certificates[3].Certificate.Inspection[0].TensileTest.C11.Value``; **409** when a coil
    already holds a *different* certificate (replacements go through the single POST with
    ``?supersedes=``) or a concurrent request stored the same coil; 401/403 API key and role; 413 body
    over 32 MiB; 503 chain id unknown. The pipeline is :func:`api.ingest.ingest_certificates`.
    """
    result = ingest.ingest_certificates(session, state, enterprise, body)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return result.body()
