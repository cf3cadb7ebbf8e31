"""``POST /v1/coils/certificates/batch``: bulk ingest of EN 10168 certificates, all or nothing.

Every certificate is validated, identified, canonicalised, hashed and signed (or its device signature
checked) exactly as by ``POST /v1/coils/certificates``; the new records are then written with
multi-row INSERTs (:func:`api.bulk.insert_rows`) and committed **once**, before the answer. Anchoring is
unchanged: the worker picks the records up with the next Merkle batch.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Response, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from api import metrics
from api.bulk import insert_rows
from api.deps import CurrentEnterprise, SessionDep, StateDep
from api.errors import UnprocessableError, issue
from api.models import RECORD_KIND_COIL, Record, utcnow
from api.routes.certificates import parse_signature
from provenance.canonical import canonicalize
from provenance.certificate import coil_suffix, validate_certificate
from provenance.errors import CanonicalizationError, CertificateInvalid, InvalidIdentifier, InvalidSignature
from provenance.identifiers import make_identifier
from provenance.signing import recover_record_signer, sign_record

MAX_BATCH_BYTES = 32 * 1024 * 1024
MAX_ITEMS = 5000
IN_CHUNK = 500

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
    over 32 MiB; 503 chain id unknown.
    """
    if "manufacturer" not in enterprise.roles:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "role 'manufacturer' is required to submit certificates")
    items = body.get("certificates")
    if not isinstance(items, list) or not items:
        raise UnprocessableError([issue("body.certificates", "type", "must be a non-empty list of certificates")])
    if len(items) > MAX_ITEMS:
        raise UnprocessableError([issue("body.certificates", "max-items",
                                        f"at most {MAX_ITEMS} certificates per batch, got {len(items)}")])
    chain_id = state.chain_id()
    problems: list[dict[str, str]] = []
    prepared: list[dict[str, Any]] = []  # index, identifier, digest(bytes), canonical, signature | None
    for i, item in enumerate(items):
        where = f"certificates[{i}]"
        if not isinstance(item, dict):
            problems.append(issue(where, "type", "must be a certificate object"))
            continue
        signature: bytes | None = None
        doc = item
        if "document" in item:
            doc = item["document"]
            if not isinstance(doc, dict):
                problems.append(issue(f"{where}.document", "type", "must be a certificate object"))
                continue
            if item.get("signature") is not None:
                try:
                    signature = parse_signature(item["signature"], f"{where}.signature")
                except UnprocessableError as exc:
                    problems.extend(exc.issues)
                    continue
            where = f"{where}.document"
        found = validate_certificate(doc)
        if found:
            problems.extend(issue(f"{where}.{x.field}", x.rule, x.message) for x in found)
            continue
        try:
            identifier = str(make_identifier(enterprise.prefix, coil_suffix(doc)))
            canonical = canonicalize(doc)
        except CertificateInvalid as exc:
            problems.extend(issue(f"{where}.{x.field}", x.rule, x.message) for x in exc.issues)
            continue
        except InvalidIdentifier as exc:
            problems.append(issue(f"{where}.Certificate.ProductDescription.B07", "identifier", str(exc)))
            continue
        except CanonicalizationError as exc:
            problems.append(issue(where, "canonical-json", f"not representable in RFC 8785: {exc}"))
            continue
        prepared.append({"index": i, "identifier": identifier, "digest": hashlib.sha256(canonical).digest(),
                         "canonical": canonical, "signature": signature, "where": where})
    # the same coil twice in one batch: identical → duplicate, different → refused
    first: dict[str, dict[str, Any]] = {}
    for p in prepared:
        earlier = first.get(p["identifier"])
        if earlier is None:
            first[p["identifier"]] = p
        elif earlier["digest"] != p["digest"]:
            problems.append(issue(p["where"], "duplicate-coil",
                                  f"coil {p['identifier']} appears again with a different certificate "
                                  f"(first at certificates[{earlier['index']}])"))
    # device signatures: checked per document before anything is written
    for p in prepared:
        if p["signature"] is None:
            continue
        field = p["where"].removesuffix(".document") + ".signature"
        try:
            signer = recover_record_signer(p["signature"], p["identifier"], RECORD_KIND_COIL, p["digest"], chain_id)
        except (InvalidSignature, ValueError) as exc:
            problems.append(issue(field, "signature", f"signature does not recover: {exc}"))
            continue
        if signer.lower() != enterprise.address.lower():
            problems.append(issue(field, "signer",
                                  f"signature recovers to {signer}, not the enterprise account {enterprise.address}"))
    if problems:
        raise UnprocessableError(problems[:1000])

    stored: dict[str, str] = {}
    idents = list(first)
    for k in range(0, len(idents), IN_CHUNK):
        rows = session.exec(select(col(Record.identifier), col(Record.record_digest))
                            .where(col(Record.identifier).in_(idents[k:k + IN_CHUNK]))).all()
        stored.update({ident: dig for ident, dig in rows})
    conflicts = [p for p in first.values() if p["identifier"] in stored
                 and stored[p["identifier"]] != "0x" + p["digest"].hex()]
    if conflicts:
        raise HTTPException(status.HTTP_409_CONFLICT, [
            {"field": p["where"], "rule": "conflict",
             "message": f"coil identifier {p['identifier']} already holds a different certificate "
                        f"(digest {stored[p['identifier']]}); post a replacement with "
                        f"POST /v1/coils/certificates?supersedes={p['identifier']}"} for p in conflicts])

    key: bytes | None = None
    now = utcnow()
    rows_out: list[dict[str, Any]] = []
    new_rows: list[dict[str, Any]] = []
    for p in prepared:
        digest_hex = "0x" + p["digest"].hex()
        is_new = first[p["identifier"]] is p and p["identifier"] not in stored
        rows_out.append({"index": p["index"], "identifier": p["identifier"], "record_digest": digest_hex,
                         "status": "pending" if is_new else "duplicate"})
        if not is_new:
            continue
        signature = p["signature"]
        if signature is None:
            if key is None:
                key = state.keys.private_key(enterprise.keystore, state.settings.keystore_passphrase)
            signature = sign_record(key, p["identifier"], RECORD_KIND_COIL, p["digest"], chain_id)
        assert enterprise.id is not None
        new_rows.append({
            "identifier": p["identifier"], "kind": RECORD_KIND_COIL, "enterprise_id": enterprise.id,
            "document": p["canonical"].decode("utf-8"), "record_digest": digest_hex,
            "signature": "0x" + signature.hex(), "signer": enterprise.address,
            "signed_by_client": p["signature"] is not None, "chain_id": chain_id, "status": "pending",
            "batch_id": None, "leaf_index": None, "supersedes": None, "superseded_by": None, "created_at": now,
        })
    try:
        insert_rows(session, Record.__table__, new_rows)
        session.commit()  # acknowledged means durable: one commit for the whole batch, before the 201
    except IntegrityError as exc:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT,
                            "a concurrent request stored some of these coils; repeat the request") from exc
    if new_rows:
        metrics.RECORDS_INGESTED.labels(kind=RECORD_KIND_COIL).inc(len(new_rows))
        metrics.PENDING.inc(len(new_rows))
        state.worker.notify()
    else:
        response.status_code = status.HTTP_200_OK
    return {"count": len(items), "created": len(new_rows), "duplicates": len(items) - len(new_rows),
            "records": rows_out}
