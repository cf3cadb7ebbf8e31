"""``/v1/coils/certificates``: ingestion of EN 10168 mill test certificates for steel coils."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Response, status
from sqlalchemy.exc import IntegrityError

from api import crud, metrics
from api.deps import CurrentEnterprise, SessionDep, StateDep
from api.errors import UnprocessableError, issue
from api.models import RECORD_KIND_COIL, Record
from api.routes.identifiers import parse_identifier_or_422
from provenance.canonical import canonicalize
from provenance.certificate import coil_suffix, validate_certificate
from provenance.errors import CanonicalizationError, CertificateInvalid, InvalidIdentifier, InvalidSignature
from provenance.identifiers import make_identifier
from provenance.signing import recover_record_signer, sign_record

MAX_BODY_BYTES = 2 * 1024 * 1024


def limit_body(content_length: Annotated[int | None, Header()] = None) -> None:
    """Refuse certificate bodies over 2 MiB (413) before they are parsed."""
    if content_length is not None and content_length > MAX_BODY_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"certificate body exceeds {MAX_BODY_BYTES} bytes")


router = APIRouter(prefix="/v1/coils/certificates", tags=["certificates"])

SIGNATURE_HEADER = "X-Record-Signature"


def record_out(rec: Record) -> dict[str, Any]:
    """Short ingestion answer ``{identifier, record_digest, status}``."""
    return {"identifier": rec.identifier, "record_digest": rec.record_digest, "status": rec.status}


def parse_signature(value: object, field: str) -> bytes:
    """A 65-byte ``r || s || v`` signature from 0x-hex; 422 naming ``field`` when malformed."""
    if not isinstance(value, str):
        raise UnprocessableError([issue(field, "type", "signature must be a 0x-prefixed hex string")])
    text = value.strip()
    if text.startswith(("0x", "0X")):
        text = text[2:]
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise UnprocessableError([issue(field, "hex", "signature must be 0x-prefixed hex")]) from exc
    if len(raw) != 65:
        raise UnprocessableError([issue(field, "length", f"signature must be 65 bytes (r||s||v), got {len(raw)}")])
    return raw


def check_device_signature(header: str, identifier: str, digest: bytes, chain_id: int, account: str) -> bytes:
    """The 65-byte ``X-Record-Signature`` if it recovers to ``account`` over the record; else 422 naming the header
    (malformed, high-s (EIP-2), or signed by another key)."""
    signature = parse_signature(header, f"header.{SIGNATURE_HEADER}")
    try:
        signer = recover_record_signer(signature, identifier, RECORD_KIND_COIL, digest, chain_id)
    except (InvalidSignature, ValueError) as exc:
        raise UnprocessableError(
            [issue(f"header.{SIGNATURE_HEADER}", "signature", f"signature does not recover: {exc}")]
        ) from exc
    if signer.lower() != account.lower():
        raise UnprocessableError([issue(f"header.{SIGNATURE_HEADER}", "signer",
                                        f"signature recovers to {signer}, not the enterprise account {account}")])
    return signature


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
    the enterprise account. Errors: 401 API key, 403 not a manufacturer, 422 every validation
    issue ``[{field, rule, message}]`` or a bad signature header, 409 same identifier with a
    different digest (same digest: 200 with the existing record), 503 chain id unknown.

    Replacement certificates: a coil keeps one identifier; a corrected certificate for the same
    coil is accepted only with ``?supersedes=<identifier of the current certificate>`` and gets
    ``<coil identifier>.r2``, ``.r3``…; both stay verifiable and the resolution records link them
    (``supersedes`` / ``superseded_by``). A stale ``supersedes`` (not the current revision) is 409.
    """
    if "manufacturer" not in enterprise.roles:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "role 'manufacturer' is required to submit certificates")
    issues = validate_certificate(document)
    if issues:
        raise UnprocessableError([issue(i.field, i.rule, i.message) for i in issues])
    try:
        suffix = coil_suffix(document)
        identifier = str(make_identifier(enterprise.prefix, suffix))
    except CertificateInvalid as exc:
        raise UnprocessableError([issue(i.field, i.rule, i.message) for i in exc.issues]) from exc
    except InvalidIdentifier as exc:
        raise UnprocessableError([issue("Certificate.ProductDescription.B07", "identifier", str(exc))]) from exc
    try:
        canonical = canonicalize(document)
    except CanonicalizationError as exc:
        raise UnprocessableError([issue("body", "canonical-json", f"not representable in RFC 8785: {exc}")]) from exc
    digest = hashlib.sha256(canonical).digest()
    digest_hex = "0x" + digest.hex()

    existing = crud.get_record(session, identifier=identifier)
    replaced: Record | None = None
    if existing is not None:
        revisions = crud.record_revisions(session, base=existing)
        same = next((r for r in revisions if r.record_digest == digest_hex), None)
        if same is not None:
            if x_record_signature is not None:  # a repost's signature is checked like a first post's
                check_device_signature(x_record_signature, same.identifier, digest, state.chain_id(),
                                       enterprise.address)
            response.status_code = status.HTTP_200_OK
            return record_out(same)
        current = revisions[-1]
        if supersedes is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"coil identifier {identifier} already holds a different certificate (current: {current.identifier}, "
                f"digest {current.record_digest}); to issue a replacement certificate repeat the POST with "
                f"?supersedes={current.identifier}",
                headers={"X-Current-Certificate": current.identifier},
            )
        if supersedes != current.identifier:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"query.supersedes: {supersedes} is not the current certificate of this coil ({current.identifier})",
            )
        replaced = current
        identifier = f"{existing.identifier}.r{len(revisions) + 1}"
    elif supersedes is not None:
        raise UnprocessableError([issue("query.supersedes", "exists",
                                        f"coil {identifier} has no certificate yet; nothing to supersede")])

    chain_id = state.chain_id()
    if x_record_signature is not None:
        signature = check_device_signature(x_record_signature, identifier, digest, chain_id, enterprise.address)
        by_client = True
    else:
        key = state.keys.private_key(enterprise.keystore, state.settings.keystore_passphrase)
        signature = sign_record(key, identifier, RECORD_KIND_COIL, digest, chain_id)
        by_client = False

    assert enterprise.id is not None
    try:
        rec = crud.create_record(
            session,
            identifier=identifier,
            kind=RECORD_KIND_COIL,
            enterprise_id=enterprise.id,
            document=canonical.decode("utf-8"),
            record_digest=digest_hex,
            signature="0x" + signature.hex(),
            signer=enterprise.address,
            signed_by_client=by_client,
            chain_id=chain_id,
            supersedes=replaced.identifier if replaced is not None else None,
        )
        if replaced is not None:
            replaced.superseded_by = identifier
            session.add(replaced)
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = crud.get_record(session, identifier=identifier)
        if existing is None:
            raise
        return _existing(existing, digest_hex, response)
    metrics.RECORDS_INGESTED.labels(kind=RECORD_KIND_COIL).inc()
    metrics.PENDING.inc()
    state.worker.notify()
    return record_out(rec)


def _existing(existing: Record, digest_hex: str, response: Response) -> dict[str, Any]:
    if existing.record_digest != digest_hex:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"identifier {existing.identifier} already holds a different certificate (digest {existing.record_digest})",
        )
    response.status_code = status.HTTP_200_OK
    return record_out(existing)


@router.get("/{identifier:path}")
def get_certificate(identifier: str, session: SessionDep) -> dict[str, Any]:
    """The stored certificate: ``{identifier, record_digest, status, document}``; 404/422."""
    parse_identifier_or_422(identifier)
    rec = crud.get_record(session, identifier=identifier)
    if rec is None or rec.kind != RECORD_KIND_COIL:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no certificate with identifier {identifier}")
    import json

    return {**record_out(rec), "document": json.loads(rec.document)}
