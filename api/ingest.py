"""The one ingest pipeline: every record the API stores goes through these steps, in this order.

1. **validate** the document (EN 10168: :func:`provenance.certificate.validate_certificate`; EPCIS 2.0:
   :mod:`api.epcis.capture`) — every problem is one :class:`provenance.errors.Issue`, all of them
   answered at once as 422;
2. **identify**: ``<enterprise prefix>/<suffix>`` (certificates: :func:`provenance.certificate.coil_suffix`);
3. **canonical bytes + digest**: RFC 8785 JSON and its 32-byte digest, SHA-256 or SM3 by the network's crypto
   profile (:func:`prepare`, ``hash_alg``);
4. **revision policy** (certificates): an identical document is a duplicate (200), a different one
   for the same coil needs ``supersedes`` and becomes ``<coil>.r<N>`` (:func:`revision_of`);
5. **signature**: a device signature (header ``X-Record-Signature`` or the batch item's ``signature``,
   65 bytes r‖s‖v over the EIP-712 ``Record(identifier, kind, digest)``) must recover to the
   enterprise account — checked for duplicates too — otherwise the API signs with the enterprise's
   keystore key (:class:`RecordSigner`). The revision policy comes first because the signature
   covers the identifier the record is stored under (``<coil>.r<N>`` for a replacement);
6. **one row builder** (:func:`record_row`) and **persist** (:func:`persist`: multi-row INSERT, then one
   commit before the 2xx, :func:`store`); the anchoring worker is then woken (:func:`announce`).

``POST /v1/coils/certificates`` calls :func:`ingest_certificate`, ``POST /v1/coils/certificates/batch``
:func:`ingest_certificates`, ``POST /v1/epcis/capture`` :func:`api.epcis.capture.capture_events` (which uses
:func:`prepare`, :class:`RecordSigner`, :func:`record_row`, :func:`store`, :func:`announce`). Errors are
raised as :class:`api.errors.UnprocessableError` (422), :class:`api.errors.ConflictError` (409),
``HTTPException`` 403 (role) and :class:`api.chain.ChainUnavailable` (503, chain id unknown); route
handlers only parse, call and shape the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import HTTPException, status
from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api import crud, metrics
from api.bulk import copy_rows, in_chunks
from api.chain import ChainUnavailable
from api.errors import ConflictError, UnprocessableError
from api.group_commit import Write
from api.models import RECORD_KIND_COIL, Enterprise, Record, utcnow
from api.read_cache import record_invalidation
from api.state import AppState
from provenance.canonical import canonicalize
from provenance.certificate import coil_suffix, validate_certificate
from provenance.crypto_profile import (
    HASH_SHA256,
    SIG_SM2,
    derive_sm2_record_key,
    hash_function,
    profile_for_hash,
    sign_record_sm2,
    verify_record_sm2,
)
from provenance.errors import CanonicalizationError, CertificateInvalid, InvalidIdentifier, InvalidSignature, Issue
from provenance.identifiers import make_identifier
from provenance.signing import recover_record_signer, sign_record

SIGNATURE_HEADER = "X-Record-Signature"
"""Request header carrying a device signature of a single certificate (0x + 130 hex digits)."""

MAX_BATCH_ITEMS = 5000
"""Most certificates in one ``POST /v1/coils/certificates/batch``."""


_RECORDS = Record.__table__  # type: ignore[attr-defined]


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


# ----------------------------------------------------------------------------------- steps 1–3
@dataclass(frozen=True)
class Prepared:
    """A validated record ready to sign: identifier, kind, RFC 8785 bytes and their digest (32 bytes, SHA-256 or
    SM3 by the network's crypto profile)."""

    identifier: str
    kind: str
    canonical: bytes
    digest: bytes

    @property
    def digest_hex(self) -> str:
        """``0x`` + 64 hex digits, as stored in ``records.record_digest``."""
        return "0x" + self.digest.hex()


def prepare(identifier: str, kind: str, document: Any, *, where: str = "", hash_alg: str = HASH_SHA256) -> Prepared:
    """Step 3: canonical bytes (RFC 8785) and digest of ``document`` (``hash_alg``: the network's, ``"sha-256"`` or
    ``"sm3"``).

    Raises:
        UnprocessableError: ``{field: where or "body", rule: "canonical-json"}`` when the document is not
            representable in RFC 8785 (NaN, integers beyond ±2**53…).
    """
    try:
        canonical = canonicalize(document)
    except CanonicalizationError as exc:
        raise UnprocessableError([Issue(where or "body", "canonical-json",
                                        f"not representable in RFC 8785: {exc}")]) from exc
    return Prepared(identifier, kind, canonical, hash_function(hash_alg)(canonical))


def prepare_certificate(document: dict[str, Any], *, prefix: str, where: str = "",
                        hash_alg: str = HASH_SHA256) -> Prepared:
    """Steps 1–3 for an EN 10168 certificate: validate, identify ``<prefix>/<coil suffix>``, canonicalise.

    ``where`` prefixes every issue's field (``certificates[3].document`` in a batch).

    Raises:
        UnprocessableError: every validation issue (fields such as ``Certificate.Inspection[0].TensileTest.C11.
            Value``), a coil number unusable in an identifier (``Certificate.ProductDescription.B07``), or a
            document not representable in RFC 8785.
    """
    found = validate_certificate(document)
    if found:
        raise UnprocessableError([i.at(where + ".") if where else i for i in found])
    try:
        identifier = str(make_identifier(prefix, coil_suffix(document)))
    except CertificateInvalid as exc:
        raise UnprocessableError([i.at(where + ".") if where else i for i in exc.issues]) from exc
    except InvalidIdentifier as exc:
        raise UnprocessableError([Issue(_at(where, "Certificate.ProductDescription.B07"), "identifier",
                                        str(exc))]) from exc
    return prepare(identifier, RECORD_KIND_COIL, document, where=where, hash_alg=hash_alg)


# ----------------------------------------------------------------------------------- step 5
def parse_signature(value: object, field: str, *, scheme: str = "eip712-secp256k1") -> bytes:
    """A 65-byte ``r || s || v`` signature from 0x-hex (``scheme="sm2-sm3"``: a DER SM2 signature, 8–72 bytes).

    Raises:
        UnprocessableError: naming ``field`` (rule ``type``, ``hex`` or ``length``) when malformed.
    """
    if not isinstance(value, str):
        raise UnprocessableError([Issue(field, "type", "signature must be a 0x-prefixed hex string")])
    text = value.strip()
    if text.startswith(("0x", "0X")):
        text = text[2:]
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise UnprocessableError([Issue(field, "hex", "signature must be 0x-prefixed hex")]) from exc
    if scheme == SIG_SM2:
        if not 8 <= len(raw) <= 72 or raw[0] != 0x30:
            raise UnprocessableError([Issue(field, "length", "SM2 signature must be DER SEQUENCE {r, s} (8..72 "
                                                              f"bytes, GM/T 0009), got {len(raw)} bytes")])
        return raw
    if len(raw) != 65:
        raise UnprocessableError([Issue(field, "length", f"signature must be 65 bytes (r||s||v), got {len(raw)}")])
    return raw


class RecordSigner:
    """Step 5 for one request: checks device signatures and signs the others with the enterprise's key.

    ``load_key`` returns the enterprise's 32-byte secp256k1 private key (read from its keystore at most
    once, on the first :meth:`sign`); ``chain_id`` gives the EIP-155 chain id of the EIP-712 domain
    (asked at most once, when first needed).
    """

    def __init__(self, enterprise: Enterprise, *, chain_id: Callable[[], int], load_key: Callable[[], bytes],
                 hash_alg: str = HASH_SHA256, sm2_key: Callable[[], bytes | None] | None = None) -> None:
        self.enterprise = enterprise
        #: the network's record hash (``"sha-256"`` / ``"sm3"``): the digests this signer signs are made with it
        self.hash_alg = hash_alg
        #: the record signature of the network's profile: ``eip712-secp256k1`` or ``sm2-sm3``
        self.scheme = profile_for_hash(hash_alg).signature_alg
        #: the enterprise's SM2 public key bound on chain (``sm`` networks), read at most once
        self._sm2_key_source = sm2_key
        self._sm2_key: bytes | None = None
        self._chain_id_source = chain_id
        self._chain_id: int | None = None
        self._load_key = load_key
        self._key: bytes | None = None

    @classmethod
    def for_request(cls, state: AppState, enterprise: Enterprise) -> RecordSigner:
        """The signer of ``enterprise`` with the app's chain id and keystore (ChainUnavailable → 503 when used)."""
        chain = state.chain
        return cls(enterprise, chain_id=state.chain_id,
                   load_key=lambda: state.keys.private_key(enterprise.keystore, state.settings.keystore_passphrase),
                   hash_alg=state.settings.hash_alg,
                   sm2_key=(lambda: chain.sm2_public_key_of(enterprise.address)) if chain is not None else None)

    @property
    def chain_id(self) -> int:
        """EIP-155 chain id of the EIP-712 domain. Raises ChainUnavailable when unknown."""
        if self._chain_id is None:
            self._chain_id = self._chain_id_source()
        return self._chain_id

    def check(self, signature: bytes, record: Prepared, *, identifier: str | None = None,
              field: str) -> Issue | None:
        """None when ``signature`` recovers to the enterprise account for ``record`` (under ``identifier``,
        default ``record.identifier``); else the :class:`Issue` naming ``field`` (rule ``signature``: does
        not recover; ``signer``: recovers to another account)."""
        if self.scheme == SIG_SM2:
            return self._check_sm2(signature, record, identifier=identifier, field=field)
        try:
            signer = recover_record_signer(signature, identifier or record.identifier, record.kind, record.digest,
                                           self.chain_id)
        except (InvalidSignature, ValueError) as exc:
            return Issue(field, "signature", f"signature does not recover: {exc}")
        if signer.lower() != self.enterprise.address.lower():
            return Issue(field, "signer",
                         f"signature recovers to {signer}, not the enterprise account {self.enterprise.address}")
        return None

    def _check_sm2(self, signature: bytes, record: Prepared, *, identifier: str | None, field: str) -> Issue | None:
        """An SM2 device signature must verify under the SM2 key the enterprise bound on chain."""
        if self._sm2_key is None and self._sm2_key_source is not None:
            self._sm2_key = self._sm2_key_source()
        if self._sm2_key is None:
            return Issue(field, "signer", f"the enterprise account {self.enterprise.address} has no SM2 public key "
                                          "bound on chain (EnterpriseRegistry.setSm2PublicKey)")
        try:
            verify_record_sm2(self._sm2_key, signature, identifier or record.identifier, record.kind, record.digest,
                              self.chain_id)
        except InvalidSignature as exc:
            return Issue(field, "signer", f"SM2 signature does not verify under the enterprise's bound key: {exc}")
        except ValueError as exc:
            return Issue(field, "signature", f"SM2 signature does not verify: {exc}")
        return None

    def sign(self, identifier: str, record: Prepared) -> bytes:
        """Signature of ``record`` under ``identifier`` with the enterprise's keystore key: 65-byte EIP-712, or on an
        ``sm`` network a DER SM2 signature with the key :func:`derive_sm2_record_key` derives from it."""
        if self._key is None:
            self._key = self._load_key()
        if self.scheme == SIG_SM2:
            return sign_record_sm2(derive_sm2_record_key(self._key), identifier, record.kind, record.digest,
                                   self.chain_id)
        return sign_record(self._key, identifier, record.kind, record.digest, self.chain_id)


# ----------------------------------------------------------------------------------- step 6
def record_row(record: Prepared, *, identifier: str | None = None, enterprise: Enterprise, signature: bytes | str,
               signed_by_client: bool, chain_id: int, now: datetime, supersedes: str | None = None) -> dict[str, Any]:
    """The one builder of a new ``records`` row (a pending record, not yet in a Merkle batch).

    ``identifier`` defaults to ``record.identifier`` (a replacement certificate gets ``<coil>.r<N>``);
    ``signature`` is 65 bytes or its ``0x`` hex; ``now`` is the aware UTC ``created_at``.
    """
    assert enterprise.id is not None
    sig_hex = signature if isinstance(signature, str) else "0x" + signature.hex()
    return {
        "identifier": identifier or record.identifier, "kind": record.kind, "enterprise_id": enterprise.id,
        "document": record.canonical.decode("utf-8"), "record_digest": record.digest_hex, "signature": sig_hex,
        "signer": enterprise.address, "signed_by_client": signed_by_client, "chain_id": chain_id,
        "status": "pending", "batch_id": None, "leaf_index": None, "supersedes": supersedes, "superseded_by": None,
        "created_at": now,
    }


def persist(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` (from :func:`record_row`) with :func:`api.bulk.copy_rows` (PostgreSQL ``COPY``, SQLite
    ``executemany``); their new ids, in order.

    Raises IntegrityError on a taken identifier (the caller rolls back)."""
    return copy_rows(session, Record.__table__, rows, returning_id=True)


def store(session: Session, rows: Sequence[dict[str, Any]], *, conflict: str) -> list[int]:
    """:func:`persist` ``rows`` and commit (durable before the 2xx); the new record ids.

    Raises:
        ConflictError: 409 ``conflict`` when a concurrent request stored one of the identifiers first
            (nothing of this request is kept).
    """
    try:
        ids = persist(session, rows)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(conflict) from exc
    return ids


def announce(state: AppState, kind: str, count: int) -> None:
    """After the commit: count ``count`` new records of ``kind`` and wake the anchoring worker."""
    if count:
        metrics.RECORDS_INGESTED.labels(kind=kind).inc(count)
        metrics.PENDING.inc(count)
        state.worker.notify()


def require_role(enterprise: Enterprise, role: str) -> None:
    """Raises HTTPException 403 unless ``enterprise`` holds ``role``."""
    if role not in enterprise.roles:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role '{role}' is required to submit certificates")


def record_out(rec: Record | dict[str, Any]) -> dict[str, Any]:
    """Short ingestion answer ``{identifier, record_digest, status}``."""
    if isinstance(rec, dict):
        return {"identifier": rec["identifier"], "record_digest": rec["record_digest"], "status": rec["status"]}
    return {"identifier": rec.identifier, "record_digest": rec.record_digest, "status": rec.status}


# ----------------------------------------------------------------------------------- one certificate
@dataclass
class Revision:
    """Step 4's verdict for one certificate: the identifier it is stored (or was stored) under."""

    identifier: str
    duplicate: Record | None = None
    replaced: Record | None = None


def revision_of(session: Session, record: Prepared, supersedes: str | None) -> Revision:
    """Revision policy of a coil certificate (EN 10204 replacement certificates).

    New coil → its identifier. Identical to any stored revision → that record (``duplicate``).
    Different → allowed only with ``supersedes`` = the current revision; the new one gets
    ``<coil identifier>.r<N>`` and ``replaced`` is the current revision.

    Raises:
        ConflictError: different certificate without ``supersedes`` (header ``X-Current-Certificate``), or
            ``supersedes`` naming a revision that is not the current one.
        UnprocessableError: ``query.supersedes`` given for a coil without a certificate.
    """
    # hot path, a new coil: one index probe on the Core table, no ORM object (the full rows only for revisions)
    taken = session.connection().execute(
        select(col(Record.id)).where(col(Record.identifier) == record.identifier)).first()
    existing = crud.get_record(session, identifier=record.identifier) if taken is not None else None
    if existing is None:
        if supersedes is not None:
            raise UnprocessableError([Issue("query.supersedes", "exists",
                                            f"coil {record.identifier} has no certificate yet; nothing to supersede")])
        return Revision(record.identifier)
    revisions = crud.record_revisions(session, base=existing)
    same = next((r for r in revisions if r.record_digest == record.digest_hex), None)
    if same is not None:
        return Revision(same.identifier, duplicate=same)
    current = revisions[-1]
    if supersedes is None:
        raise ConflictError(
            f"coil identifier {record.identifier} already holds a different certificate (current: "
            f"{current.identifier}, digest {current.record_digest}); to issue a replacement certificate repeat the "
            f"POST with ?supersedes={current.identifier}",
            headers={"X-Current-Certificate": current.identifier})
    if supersedes != current.identifier:
        raise ConflictError(f"query.supersedes: {supersedes} is not the current certificate of this coil "
                            f"({current.identifier})")
    return Revision(f"{existing.identifier}.r{len(revisions) + 1}", replaced=current)


@dataclass
class Ingested:
    """Outcome of one certificate: the answer body and whether a record was created (201) or not (200)."""

    body: dict[str, Any]
    created: bool


def ingest_certificate(session: Session, state: AppState, enterprise: Enterprise, document: dict[str, Any], *,
                       signature: str | None = None, supersedes: str | None = None) -> Ingested:
    """``POST /v1/coils/certificates``: the whole pipeline for one certificate, committed before returning.

    ``signature``: the raw ``X-Record-Signature`` header (checked for duplicates too: an identical repost
    with a signature that does not recover to the enterprise is refused like a first post).

    Raises:
        HTTPException: 403 without the ``manufacturer`` role.
        UnprocessableError: validation issues, ``header.X-Record-Signature`` malformed / wrong signer,
            ``query.supersedes`` for a new coil.
        ConflictError: another certificate holds the coil (see :func:`revision_of`).
        ChainUnavailable: chain id unknown (503).
    """
    require_role(enterprise, "manufacturer")
    signer = RecordSigner.for_request(state, enterprise)
    record = prepare_certificate(document, prefix=enterprise.prefix, hash_alg=signer.hash_alg)
    if supersedes is None:
        created = _store_if_new_coil(session, state, enterprise, signer, record, signature)
        if created is not None:
            return created
    revision = revision_of(session, record, supersedes)
    device = None
    if signature is not None:
        device = parse_signature(signature, f"header.{SIGNATURE_HEADER}", scheme=signer.scheme)
        problem = signer.check(device, record, identifier=revision.identifier, field=f"header.{SIGNATURE_HEADER}")
        if problem is not None:
            raise UnprocessableError([problem])
    if revision.duplicate is not None:
        return Ingested(record_out(revision.duplicate), created=False)
    row = record_row(record, identifier=revision.identifier, enterprise=enterprise,
                     signature=device if device is not None else signer.sign(revision.identifier, record),
                     signed_by_client=device is not None, chain_id=signer.chain_id, now=utcnow(),
                     supersedes=revision.replaced.identifier if revision.replaced is not None else None)
    return _store_one(session, state, row, revision.replaced)


def _insert_if_new(session: Session, row: dict[str, Any]) -> int | None:
    """``INSERT … ON CONFLICT (identifier) DO NOTHING RETURNING id`` of one ``records`` row in the session's
    transaction (one round trip, no ORM object): the new id, or None when the identifier is taken."""
    conn = session.connection()
    dialect = conn.dialect.name
    if dialect == "postgresql":
        stmt: Any = pg_insert(_RECORDS).on_conflict_do_nothing(index_elements=[_RECORDS.c.identifier])
    elif dialect == "sqlite":
        stmt = sqlite_insert(_RECORDS).on_conflict_do_nothing(index_elements=[_RECORDS.c.identifier])
    else:  # no portable ON CONFLICT: the unique constraint answers (IntegrityError, the caller's slow path)
        stmt = insert(_RECORDS)
    found = conn.execute(stmt.values(row).returning(_RECORDS.c.id)).first()
    return None if found is None else int(found[0])


def _store_if_new_coil(session: Session, state: AppState, enterprise: Enterprise, signer: RecordSigner,
                       record: Prepared, signature: str | None) -> Ingested | None:
    """The hot path of a first certificate for a coil: sign (or check the device signature under the coil's
    identifier), then one ``INSERT … ON CONFLICT DO NOTHING RETURNING id`` and the commit — the unique
    constraint on ``records.identifier`` answers "is this coil new?", so no SELECT before the write.

    Returns the 201 outcome, committed (durable) before returning; or None, with nothing written and the
    session's transaction rolled back, whenever the general path must decide: the identifier is taken
    (duplicate, revision or 409), the signature header is malformed or does not recover under the coil's
    identifier (the answer may depend on the stored revisions), the chain id is unknown (a stored duplicate is
    still 200), or the insert raised ``IntegrityError``.
    """
    field = f"header.{SIGNATURE_HEADER}"
    device = None
    if signature is not None:
        try:
            device = parse_signature(signature, field, scheme=signer.scheme)
        except UnprocessableError:
            return None
        if signer.check(device, record, field=field) is not None:
            return None
    try:
        row = record_row(record, enterprise=enterprise,
                         signature=device if device is not None else signer.sign(record.identifier, record),
                         signed_by_client=device is not None, chain_id=signer.chain_id, now=utcnow())
    except ChainUnavailable:
        return None  # the general path answers: 200 for a stored duplicate, else the same 503
    try:
        if state.commits is not None:  # group commit: shares one durable commit with the concurrent requests
            session.rollback()  # end this request's read transaction before waiting for the group
            state.commits.submit(Write([row]))
        else:
            if _insert_if_new(session, row) is None:
                session.rollback()
                return None
            session.commit()
    except IntegrityError:
        session.rollback()
        return None
    announce(state, RECORD_KIND_COIL, 1)
    return Ingested(record_out(row), created=True)


def _store_one(session: Session, state: AppState, row: dict[str, Any], replaced: Record | None) -> Ingested:
    replaced_identifier = replaced.identifier if replaced is not None else None
    try:
        if state.commits is not None:  # shares one durable commit with the concurrent requests (group commit)
            write = Write([row], replaced_id=replaced.id if replaced is not None else None,
                          replaced_identifier=replaced_identifier)
            session.rollback()  # end this request's read transaction before waiting for the group
            state.commits.submit(write)
        else:
            persist(session, [row])
            if replaced is not None:
                replaced.superseded_by = row["identifier"]
                session.add(replaced)
                record_invalidation(session, replaced.identifier)  # every API process drops its cached answers
            session.commit()
    except IntegrityError:
        session.rollback()  # a concurrent POST stored this identifier first
        existing = crud.get_record(session, identifier=row["identifier"])
        if existing is None:
            raise
        if existing.record_digest != row["record_digest"]:
            raise ConflictError(f"identifier {existing.identifier} already holds a different certificate "
                                f"(digest {existing.record_digest})") from None
        return Ingested(record_out(existing), created=False)
    if replaced_identifier is not None:
        state.reads.invalidate(replaced_identifier)  # this process at once, the others at their next poll
    announce(state, RECORD_KIND_COIL, 1)
    return Ingested(record_out(row), created=True)


# ----------------------------------------------------------------------------------- a batch
@dataclass
class BatchItem:
    """One prepared batch item: its index, where its fields live, the record and its device signature."""

    index: int
    where: str
    record: Prepared
    signature: bytes | None = None
    signature_field: str = ""


@dataclass
class BatchResult:
    """Outcome of a batch: ``records`` ``[{index, identifier, record_digest, status: pending|duplicate}]``."""

    count: int
    records: list[dict[str, Any]] = field(default_factory=list)
    created: int = 0

    def body(self) -> dict[str, Any]:
        """``{count, created, duplicates, records}``."""
        return {"count": self.count, "created": self.created, "duplicates": self.count - self.created,
                "records": self.records}


def batch_items(body: Any) -> list[Any]:
    """The ``certificates`` list of a batch body.

    Raises:
        UnprocessableError: ``body.certificates`` missing, empty, not a list or over :data:`MAX_BATCH_ITEMS`.
    """
    items = body.get("certificates") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise UnprocessableError([Issue("body.certificates", "type", "must be a non-empty list of certificates")])
    if len(items) > MAX_BATCH_ITEMS:
        raise UnprocessableError([Issue("body.certificates", "max-items",
                                        f"at most {MAX_BATCH_ITEMS} certificates per batch, got {len(items)}")])
    return items


def _prepare_item(i: int, item: Any, prefix: str, hash_alg: str = HASH_SHA256) -> BatchItem:
    """Steps 1–3 of one batch item (a certificate or ``{document, signature}``); UnprocessableError otherwise."""
    where = f"certificates[{i}]"
    if not isinstance(item, dict):
        raise UnprocessableError([Issue(where, "type", "must be a certificate object")])
    if "document" not in item:
        return BatchItem(i, where, prepare_certificate(item, prefix=prefix, where=where, hash_alg=hash_alg))
    if not isinstance(item["document"], dict):
        raise UnprocessableError([Issue(f"{where}.document", "type", "must be a certificate object")])
    signature = None
    if item.get("signature") is not None:
        signature = parse_signature(item["signature"], f"{where}.signature",
                                    scheme=profile_for_hash(hash_alg).signature_alg)
    record = prepare_certificate(item["document"], prefix=prefix, where=f"{where}.document", hash_alg=hash_alg)
    return BatchItem(i, f"{where}.document", record, signature, f"{where}.signature")


def _check_batch(prepared: list[BatchItem], signer: RecordSigner) -> tuple[dict[str, BatchItem], list[Issue]]:
    """The first item per coil, and the issues: a coil twice with different certificates, bad device signatures."""
    first: dict[str, BatchItem] = {}
    problems: list[Issue] = []
    for p in prepared:
        earlier = first.setdefault(p.record.identifier, p)
        if earlier.record.digest != p.record.digest:
            problems.append(Issue(p.where, "duplicate-coil",
                                  f"coil {p.record.identifier} appears again with a different certificate "
                                  f"(first at certificates[{earlier.index}])"))
    for p in prepared:
        if p.signature is not None:
            problem = signer.check(p.signature, p.record, field=p.signature_field)
            if problem is not None:
                problems.append(problem)
    return first, problems


def _stored_digests(session: Session, first: dict[str, BatchItem]) -> dict[str, str]:
    """Digests already stored under the batch's identifiers (chunked IN reads).

    Raises:
        ConflictError: 409 listing ``{field: certificates[i]…, rule: "conflict", message}`` for every coil
            that holds a different certificate (replacements go through the single POST with ``supersedes``).
    """
    stored: dict[str, str] = {}
    for chunk in in_chunks(list(first)):
        rows = session.exec(select(col(Record.identifier), col(Record.record_digest))
                            .where(col(Record.identifier).in_(chunk))).all()
        stored.update({ident: digest for ident, digest in rows})
    conflicts = [Issue(p.where, "conflict", f"coil identifier {ident} already holds a different certificate "
                                            f"(digest {stored[ident]}); post a replacement with "
                                            f"POST /v1/coils/certificates?supersedes={ident}")
                 for ident, p in first.items() if ident in stored and stored[ident] != p.record.digest_hex]
    if conflicts:
        raise ConflictError(conflicts)
    return stored


def ingest_certificates(session: Session, state: AppState, enterprise: Enterprise, body: Any) -> BatchResult:
    """``POST /v1/coils/certificates/batch``: the pipeline for up to :data:`MAX_BATCH_ITEMS` certificates,
    all or nothing, committed once before returning.

    Raises:
        HTTPException: 403 without the ``manufacturer`` role.
        UnprocessableError: every issue of every item, fields prefixed ``certificates[i].`` (at most 1000).
        ConflictError: a coil already holds a different certificate (list of ``{field, rule: "conflict",
            message}``), or a concurrent request stored some of these coils.
        ChainUnavailable: chain id unknown (503).
    """
    require_role(enterprise, "manufacturer")
    items = batch_items(body)
    signer = RecordSigner.for_request(state, enterprise)
    chain_id = signer.chain_id
    prepared: list[BatchItem] = []
    problems: list[Issue] = []
    for i, item in enumerate(items):
        try:
            prepared.append(_prepare_item(i, item, enterprise.prefix, state.settings.hash_alg))
        except UnprocessableError as exc:
            problems.extend(exc.issues)
    first, found = _check_batch(prepared, signer)
    if problems or found:
        raise UnprocessableError(problems + found)
    stored = _stored_digests(session, first)
    result = BatchResult(count=len(items))
    rows: list[dict[str, Any]] = []
    now = utcnow()
    for p in prepared:
        is_new = first[p.record.identifier] is p and p.record.identifier not in stored
        result.records.append({"index": p.index, "identifier": p.record.identifier,
                               "record_digest": p.record.digest_hex, "status": "pending" if is_new else "duplicate"})
        if is_new:
            sig = p.signature if p.signature is not None else signer.sign(p.record.identifier, p.record)
            rows.append(record_row(p.record, enterprise=enterprise, signature=sig,
                                   signed_by_client=p.signature is not None, chain_id=chain_id, now=now))
    store(session, rows, conflict="a concurrent request stored some of these coils; repeat the request")
    result.created = len(rows)
    announce(state, RECORD_KIND_COIL, len(rows))
    return result
