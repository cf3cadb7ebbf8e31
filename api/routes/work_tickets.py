"""Electronic work tickets (GB 26860): create and drive tickets on the WorkTicket contract, read history.

Endpoints:

* ``POST /v1/work-tickets`` (enterprise API key) -- issue: validates the ticket document, stores it,
  puts its SHA-256 digest on chain with the equipment identifier and the named people.
* ``POST /v1/work-tickets/{id}/steps`` (enterprise API key) -- ``permit`` / ``brief`` /
  ``acknowledge`` / ``end_work`` / ``terminate`` / ``cancel`` / ``extend`` by ``person_id``.
* ``POST /v1/work-tickets/typed-data`` and ``POST /v1/work-tickets/{id}/typed-data`` -- the EIP-712
  document a person signs on a device; the signature then goes in the issue/step body
  (``signature``, ``deadline``) and the calling enterprise relays it (``issueBySig`` / ``stepBySig``).
* ``GET /v1/work-tickets/{id}`` -- ticket, document and history (names, times, block numbers).
* ``GET /v1/work-tickets/{id}/verify`` -- document digest + every signed step re-checked.
* ``GET /v1/equipment/{identifier}/work-tickets`` -- every job on a piece of equipment.
* ``POST /v1/work-tickets/{id}/sm2-statement`` -- the statement a person's device signs with SM2 for one step
  (:func:`provenance.work_tickets.sm2_step_statement`); the DER signature goes in the step body
  (``sm2_signature``).

Who signs: without ``signature`` the person's key must be in the keystore of the calling enterprise
and the step is a transaction signed by the person's account; with ``signature`` any enterprise may
relay and the contract checks the EIP-712 signature with ecrecover.

SM2-signed steps (crypto profile ``sm``, issue 18): off-chain verification plus anchored evidence. With
``sm2_signature`` the API checks the DER SM2 signature over the step's statement (ticket id, position in
the history, action, person, chain id, WorkTicket address, domain) against the person's key bound on chain
(``EnterpriseRegistry.sm2PublicKeyOf`` at the latest block), sends the step from the person's account (keystore
custody, as for unsigned steps) and stores the evidence (statement + signature + key) as a record of kind
``work_ticket_step``, ``<prefix>/wt-<ticket>-step-<position>``, anchored in the next Merkle batch. History
and verify name the signature of every step (``signed_with``).
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from eth_utils import to_checksum_address
from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from web3.logs import DISCARD

from api.bounds import DbId, TicketIdPath, UnixSeconds
from api.chain import with_retry
from api.chain_index.reads import ticket_steps
from api.deps import CurrentEnterprise, SessionDep, StateDep
from api.errors import CHAIN_REFUSAL_RESPONSES, ConflictError, UnprocessableError, issue
from api.ingest import RecordSigner, announce, persist, prepare, record_row
from api.models import Enterprise, Record, utcnow
from api.workflows.adapters import StepRecord, TicketRecord, WorkTicketReader
from api.workflows.contract_calls import call_view, contract, enterprise_key, iso, require_chain, send_or_refuse, tx_hex
from api.workflows.models import Person, TicketDocumentRow
from provenance.canonical import canonicalize
from provenance.crypto_profile import SIG_EIP712, SIG_SM2, sm2_verify
from provenance.errors import InvalidSignature, ProvenanceError
from provenance.work_tickets import (
    ACTIONS,
    SM2_STEP_KIND,
    STEP_SIGNED_BY_TRANSACTION,
    TicketInvalid,
    TicketParties,
    TicketStepRefused,
    issue_typed_data,
    replay_steps,
    signature_hex,
    sm2_step_evidence,
    sm2_step_statement,
    step_typed_data,
    ticket_digest,
    validate_ticket_document,
    verify_sm2_step_evidence,
)

router = APIRouter(tags=["work tickets"], responses=CHAIN_REFUSAL_RESPONSES)

StepAction = Literal["permit", "brief", "acknowledge", "end_work", "terminate", "cancel", "extend", "abort"]
_FN = {"permit": "permit", "brief": "brief", "acknowledge": "acknowledge", "end_work": "endWork",
       "terminate": "terminate", "cancel": "cancel"}
_ROLE_OF_ACTION = {"issue": "ticket_issuer", "permit": "permitting_officer", "brief": "person_in_charge",
                   "acknowledge": "crew_member", "end_work": "person_in_charge", "terminate": "permitting_officer",
                   "cancel": "ticket_issuer", "extend": "permitting_officer", "abort": "permitting_officer"}


class TicketCreate(BaseModel):
    """Body of ``POST /v1/work-tickets`` (and of the issue typed-data request)."""

    document: dict[str, Any] = Field(description="ticket document, see provenance.work_tickets")
    issuer: DbId = Field(description="person id of the ticket issuer (签发人)")
    permitter: DbId = Field(description="person id of the permitting officer (许可人)")
    leader: DbId = Field(description="person id of the person in charge (工作负责人)")
    crew: list[DbId] = Field(min_length=1, max_length=32, description="person ids of the crew (工作班成员)")
    signature: str | None = Field(None, description="issuer's EIP-712 TicketIssue signature (device key)")
    deadline: UnixSeconds | None = Field(None, description="unix seconds; required with signature")

    @field_validator("signature")
    @classmethod
    def _sig(cls, v: str | None) -> str | None:
        return None if v is None else signature_hex(v)


class StepCreate(BaseModel):
    """Body of ``POST /v1/work-tickets/{id}/steps`` (and of the step typed-data request)."""

    action: StepAction
    person_id: DbId
    planned_end: str | None = Field(None, description="extend only: new planned end, ISO 8601 with offset")
    reason: str | None = Field(None, min_length=1, max_length=500, description="abort only: why the work is aborted")
    signature: str | None = Field(None, description="person's EIP-712 TicketStep signature (device key)")
    deadline: UnixSeconds | None = Field(None, description="unix seconds; required with signature")
    sm2_signature: str | None = Field(None, max_length=150, description="person's DER SM2 signature of the "
                                      "step's sm2-statement (device SM2 key bound on chain)")

    @field_validator("signature")
    @classmethod
    def _sig(cls, v: str | None) -> str | None:
        return None if v is None else signature_hex(v)

    @field_validator("sm2_signature")
    @classmethod
    def _sm2_sig(cls, v: str | None) -> str | None:
        if v is None:
            return v
        raw = v.removeprefix("0x")
        try:
            if not 8 <= len(bytes.fromhex(raw)) <= 72:
                raise ValueError
        except ValueError:
            raise ValueError("sm2_signature must be a DER SM2 signature SEQUENCE {r, s} as hex (8..72 bytes)") from None
        return "0x" + raw.lower()


# --------------------------------------------------------------------------- helpers


def _person(session: Session, person_id: int, field: str) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise UnprocessableError([issue(field, "not_found", f"person {person_id} does not exist")])
    return person


def _person_key(state: Any, ent: Enterprise, person: Person, field: str) -> bytes:
    if person.keystore is None:
        raise UnprocessableError([issue("signature", "required", f"person {person.id} ({field}) signs on a device: "
                                        "send its EIP-712 signature and deadline")])
    if person.enterprise_id != ent.id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"person {person.id} ({field}) belongs to enterprise "
                            f"{person.enterprise_id}; only that enterprise uses its key (or relay a device signature)")
    return state.keys.private_key(person.keystore, state.settings.keystore_passphrase)


def _parse_planned_end(text: str | None) -> int:
    doc = {"equipment": "88.0.0/x", "work_content": "x", "safety_measures": ["x"], "planned_start":
           "1970-01-01T00:00:00+00:00", "planned_end": text}
    try:
        return validate_ticket_document(doc).planned_end
    except TicketInvalid as exc:
        raise UnprocessableError([issue("planned_end", i["rule"], i["message"]) for i in exc.issues]) from exc


def _request(session: Session, body: TicketCreate) -> tuple[Any, dict[str, Person], tuple]:
    try:
        parsed = validate_ticket_document(body.document)
    except TicketInvalid as exc:
        raise UnprocessableError(exc.issues) from exc
    people = {"issuer": _person(session, body.issuer, "issuer"),
              "permitter": _person(session, body.permitter, "permitter"),
              "leader": _person(session, body.leader, "leader")}
    crew = [_person(session, pid, f"crew[{i}]") for i, pid in enumerate(body.crew)]
    digest = ticket_digest(parsed.document)
    request = (parsed.equipment, digest, people["permitter"].address, people["leader"].address,
               [c.address for c in crew], parsed.planned_start, parsed.planned_end)
    people.update({f"crew[{i}]": c for i, c in enumerate(crew)})
    return parsed, people, request


def _need_deadline(deadline: int | None) -> int:
    if deadline is None:
        raise UnprocessableError([issue("deadline", "required", "deadline (unix seconds) is required with signature")])
    return deadline


# --------------------------------------------------------------------------- issue


@router.post("/v1/work-tickets/typed-data")
def issue_typed(body: TicketCreate, session: SessionDep, state: StateDep, _: CurrentEnterprise) -> dict:
    """EIP-712 ``TicketIssue`` document for the issuer's device (nonce from chain, deadline now + 1 h)."""
    _, people, req = _request(session, body)
    wt = contract(state, "WorkTicket")
    issuer = people["issuer"].address
    nonce = call_view(lambda: wt.functions.nonces(issuer).call(), "nonces")
    return issue_typed_data(chain_id=state.chain_id(), contract=wt.address, equipment=req[0], digest=req[1],
                            permitter=req[2], leader=req[3], crew=req[4], planned_start=req[5], planned_end=req[6],
                            nonce=nonce, deadline=body.deadline or int(time.time()) + 3600)


@router.post("/v1/work-tickets", status_code=status.HTTP_201_CREATED)
def create_ticket(body: TicketCreate, ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """Issue a work ticket; 201 ``{id, digest, status, tx_hash, block_number}``.

    Errors: 422 document/persons (field named) or on-chain rule (``reason``: SamePerson,
    InvalidCrewSize…); 403 the issuer lacks the role / signs for another enterprise; 503 no chain.
    """
    chain = require_chain(state)
    wt = contract(state, "WorkTicket")
    parsed, people, req = _request(session, body)
    issuer = people["issuer"]
    if body.signature is not None:
        deadline = _need_deadline(body.deadline)
        call = wt.functions.issueBySig(req, issuer.address, deadline, bytes.fromhex(body.signature[2:]))
        receipt = send_or_refuse(chain, enterprise_key(state, ent), call, "issue")
    else:
        receipt = send_or_refuse(chain, _person_key(state, ent, issuer, "issuer"), wt.functions.issue(req), "issue")
    (event,) = wt.events.TicketIssued().process_receipt(receipt, errors=DISCARD)
    ticket_id = int(event["args"]["ticketId"])
    session.add(TicketDocumentRow(ticket_id=ticket_id, equipment=parsed.equipment,
                                  document=canonicalize(parsed.document).decode("utf-8"),
                                  digest="0x" + req[1].hex(), enterprise_id=ent.id, tx_hash=tx_hex(receipt)))
    session.commit()
    return {"id": ticket_id, "equipment": parsed.equipment, "digest": "0x" + req[1].hex(), "status": "issued",
            "tx_hash": tx_hex(receipt), "block_number": receipt["blockNumber"]}


# --------------------------------------------------------------------------- steps


TicketId = TicketIdPath


@router.post("/v1/work-tickets/{ticket_id}/typed-data")
def step_typed(ticket_id: TicketId, body: StepCreate, session: SessionDep, state: StateDep,
               _: CurrentEnterprise) -> dict:
    """EIP-712 ``TicketStep`` document for a person's device (nonce from chain, deadline now + 1 h)."""
    person = _person(session, body.person_id, "person_id")
    wt = contract(state, "WorkTicket")
    planned_end = _parse_planned_end(body.planned_end) if body.action == "extend" else 0
    nonce = call_view(lambda: wt.functions.nonces(person.address).call(), "nonces")
    return step_typed_data(chain_id=state.chain_id(), contract=wt.address, ticket_id=ticket_id, action=body.action,
                           planned_end=planned_end, nonce=nonce, deadline=body.deadline or int(time.time()) + 3600)


def _sm2_statement(state: Any, wt: Any, ticket_id: int, body: StepCreate, person: Person,
                   planned_end: int) -> dict[str, Any]:
    step = len(WorkTicketReader(wt).steps(ticket_id))  # 404 unknown ticket
    try:
        return sm2_step_statement(chain_id=state.chain_id(), contract=wt.address, ticket_id=ticket_id, step=step,
                                  action=body.action, person=person.address, planned_end=planned_end)
    except ValueError as exc:
        raise UnprocessableError([issue("action", "sm2-statement", str(exc))]) from exc


@router.post("/v1/work-tickets/{ticket_id}/sm2-statement")
def step_sm2_statement(ticket_id: TicketId, body: StepCreate, session: SessionDep, state: StateDep,
                       _: CurrentEnterprise) -> dict:
    """The statement a person's device signs with its SM2 key for the next step of the ticket:
    ``{statement, message (its RFC 8785 JSON, the bytes to sign), step}``. Sign ``message`` with SM2 (SM3, default
    user ID 1234567812345678, DER), e.g. ``openssl pkeyutl -sign -rawin -digest sm3 -pkeyopt
    distid:1234567812345678``, and send it as ``sm2_signature`` in ``POST /v1/work-tickets/{id}/steps``.

    Errors: 404 unknown ticket; 422 body (``planned_end`` for extend, ``action`` abort or unknown).
    """
    person = _person(session, body.person_id, "person_id")
    wt = contract(state, "WorkTicket")
    planned_end = _parse_planned_end(body.planned_end) if body.action == "extend" else 0
    statement = _sm2_statement(state, wt, ticket_id, body, person, planned_end)
    return {"statement": statement, "message": canonicalize(statement).decode("utf-8"), "step": statement["step"]}


def _sm2_signed_step(state: Any, session: Session, ent: Enterprise, wt: Any, ticket_id: int, body: StepCreate,
                     person: Person, planned_end: int) -> dict[str, Any]:
    """Check the person's SM2 signature, send the step from the person's account, store the anchored evidence.

    The evidence row is flushed before the transaction and committed after it (rolled back when the chain
    refuses), so an acknowledged SM2 step always has its evidence."""
    assert body.sm2_signature is not None
    chain = require_chain(state)
    if body.signature is not None:
        raise UnprocessableError([issue("sm2_signature", "conflict", "send either signature (EIP-712) or "
                                        "sm2_signature, not both")])
    if body.action == "abort":
        raise UnprocessableError([issue("sm2_signature", "unsupported", "abort is sent by the officer's own key")])
    if person.keystore is None:
        raise UnprocessableError([issue("sm2_signature", "device-custody", f"person {person.id} holds its account "
                                        "key on a device: relay its EIP-712 signature (signature, deadline)")])
    person_key = _person_key(state, ent, person, "person_id")  # 403 another enterprise's person
    public_key = chain.sm2_public_key_of(person.address)
    if public_key is None:
        raise UnprocessableError([issue("sm2_signature", "sm2-key-not-bound",
                                        f"person {person.id} ({person.address}) has no SM2 public key bound on chain: "
                                        f"PUT /v1/persons/{person.id}/sm2-key first")])
    statement = _sm2_statement(state, wt, ticket_id, body, person, planned_end)
    signature = bytes.fromhex(body.sm2_signature[2:])
    try:
        sm2_verify(public_key, signature, canonicalize(statement))
    except InvalidSignature as exc:
        raise UnprocessableError([issue("sm2_signature", "signature",
                                        f"not an SM2 signature of step {statement['step']} ({body.action}) of ticket "
                                        f"{ticket_id} by the key bound to person {person.id}: {exc}")]) from exc
    identifier = f"{ent.prefix}/wt-{ticket_id}-step-{statement['step']}"
    record = prepare(identifier, SM2_STEP_KIND, sm2_step_evidence(statement, signature, public_key),
                     hash_alg=state.settings.hash_alg)
    signer = RecordSigner.for_request(state, ent)
    row = record_row(record, enterprise=ent, signature=signer.sign(identifier, record), signed_by_client=False,
                     chain_id=signer.chain_id, now=utcnow())
    try:
        persist(session, [row])
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"step {statement['step']} of ticket {ticket_id} already has evidence {identifier}") \
            from exc
    try:
        fn = wt.functions.extend(ticket_id, planned_end) if body.action == "extend" else getattr(
            wt.functions, _FN[body.action])(ticket_id)
        receipt = send_or_refuse(chain, person_key, fn, body.action)
    except BaseException:
        session.rollback()
        raise
    session.commit()
    announce(state, SM2_STEP_KIND, 1)
    return {"receipt": receipt, "evidence": identifier}


@router.post("/v1/work-tickets/{ticket_id}/steps", status_code=status.HTTP_201_CREATED)
def add_step(ticket_id: TicketId, body: StepCreate, ent: CurrentEnterprise, session: SessionDep,
             state: StateDep) -> dict:
    """Record one step by the named person; 201 ``{id, action, person_id, status, tx_hash, block_number}``.

    Errors: 409 out of order (``reason`` WrongStatus, AlreadyAcknowledged, CrewNotAcknowledged…);
    403 not the named person (NotNamedPerson, NotCrewMember, MissingRole); 404 unknown ticket;
    422 body (e.g. ``planned_end`` missing for extend); with ``sm2_signature``: 422 ``sm2_signature`` when it does
    not verify under the person's bound SM2 key (another key, another ticket or step) or no key is bound.
    The answer then also names ``evidence``, the anchored record of the signed step.
    """
    chain = require_chain(state)
    wt = contract(state, "WorkTicket")
    person = _person(session, body.person_id, "person_id")
    planned_end = 0
    if body.action == "extend":
        if body.planned_end is None:
            raise UnprocessableError([issue("planned_end", "required", "extend needs the new planned_end")])
        planned_end = _parse_planned_end(body.planned_end)
    evidence = None
    if body.sm2_signature is not None:
        done = _sm2_signed_step(state, session, ent, wt, ticket_id, body, person, planned_end)
        receipt, evidence = done["receipt"], done["evidence"]
    elif body.action == "abort":
        if body.reason is None:
            raise UnprocessableError([issue("reason", "required", "abort needs a reason")])
        if body.signature is not None:
            raise UnprocessableError([issue("signature", "unsupported", "abort is sent by the officer's own key")])
        receipt = send_or_refuse(chain, _person_key(state, ent, person, "person_id"),
                                 wt.functions.abort(ticket_id, body.reason), "abort")
    elif body.signature is not None:
        deadline = _need_deadline(body.deadline)
        call = wt.functions.stepBySig(ticket_id, ACTIONS.index(body.action), planned_end, person.address, deadline,
                                      bytes.fromhex(body.signature[2:]))
        receipt = send_or_refuse(chain, enterprise_key(state, ent), call, body.action)
    else:
        key = _person_key(state, ent, person, "person_id")
        fn = wt.functions.extend(ticket_id, planned_end) if body.action == "extend" else getattr(
            wt.functions, _FN[body.action])(ticket_id)
        receipt = send_or_refuse(chain, key, fn, body.action)
    ticket = WorkTicketReader(wt).ticket(ticket_id)
    out = {"id": ticket_id, "action": body.action, "person_id": person.id, "status": ticket.status_name,
           "tx_hash": tx_hex(receipt), "block_number": receipt["blockNumber"]}
    if evidence is not None:
        out.update(signed_with=SIG_SM2, evidence=evidence)
    return out


# --------------------------------------------------------------------------- reads


def _who(session: Session, address: str) -> dict[str, Any]:
    person = session.exec(select(Person).where(Person.address == to_checksum_address(address))).first()
    if person is None:
        return {"person_id": None, "name": None, "address": to_checksum_address(address), "enterprise": None}
    ent = session.get(Enterprise, person.enterprise_id)
    return {"person_id": person.id, "name": person.name, "address": person.address,
            "enterprise": ent.name if ent else None, "qualification": person.qualification}


def _load(state: Any, ticket_id: int) -> tuple[TicketRecord, list[StepRecord]]:
    reader = WorkTicketReader(contract(state, "WorkTicket"))
    return reader.ticket(ticket_id), reader.steps(ticket_id)


_STATUS_AFTER = {"issue": "issued", "permit": "permitted", "brief": "briefed", "end_work": "work_ended",
                 "terminate": "terminated", "cancel": "cancelled", "abort": "aborted"}


def steps_complete(t: TicketRecord, steps: list[StepRecord]) -> bool:
    """True when ``steps`` (a prefix of the ticket's steps, as the index holds them) are all of them: their
    replay gives the chain's status, acknowledgement count, extension flag and planned end. Every step changes
    one of these for good (statuses only move forward), so a missing last step always shows."""
    state, acks, end = "none", 0, None
    for step in steps:
        name = step.action_name
        state = _STATUS_AFTER.get(name, state)
        acks += name == "acknowledge"
        end = step.plannedEnd if name == "extend" else end
    return (state, acks, end is not None) == (t.status_name, t.acknowledged, t.extended) and (
        end is None or end == t.plannedEnd)


def _load_indexed(session: Session, state: Any, ticket_id: int) -> tuple[TicketRecord, list[StepRecord], Any] | None:
    """The ticket (one ``getTicket`` on chain) with its history from the chain index, or None when the index
    does not hold every step yet (see :func:`steps_complete`)."""
    if getattr(state, "indexer", None) is None:
        return None
    row, indexed = ticket_steps(session, ticket_id)
    if row is None:
        return None
    t = WorkTicketReader(contract(state, "WorkTicket")).ticket(ticket_id)
    steps = [StepRecord(action=s.action, actor=s.actor, submitter=s.submitter, timestamp=s.timestamp,
                        blockNumber=s.block_number, plannedEnd=s.planned_end) for s in indexed]
    return (t, steps, row) if steps_complete(t, steps) else None
def _sm2_evidence(session: Session, ticket_id: int) -> dict[int, Record]:
    """Anchored evidence records of the ticket's SM2-signed steps, by position in the history."""
    rows = session.exec(select(Record).where(Record.kind == SM2_STEP_KIND,
                                             col(Record.identifier).like(f"%/wt-{ticket_id}-step-%"))).all()
    out: dict[int, Record] = {}
    for rec in rows:
        position = rec.identifier.rsplit("-step-", 1)[1]
        if rec.identifier.split("/", 1)[1] == f"wt-{ticket_id}-step-{position}" and position.isdigit():
            out[int(position)] = rec
    return out


def _signed_with(step: StepRecord, evidence: Record | None) -> str:
    if evidence is not None:
        return SIG_SM2
    return SIG_EIP712 if step.relayed else STEP_SIGNED_BY_TRANSACTION


def _view(session: Session, state: Any, ticket_id: int) -> dict[str, Any]:
    """The ticket view: history from the chain index when it holds every step (one chain read), else from
    the chain (``getTicket``, ``getSteps``, ``isAcknowledged`` per crew member, ``abortReason``)."""
    indexed = _load_indexed(session, state, ticket_id)
    if indexed is not None:
        t, steps, row_idx = indexed
        acked = {s.actor for s in steps if s.action_name == "acknowledge"}
        return _shape(session, ticket_id, t, steps, lambda c: c in acked, lambda: row_idx.abort_reason, "index+chain")
    t, steps = _load(state, ticket_id)
    wt = contract(state, "WorkTicket")
    return _shape(session, ticket_id, t, steps,
                  lambda c: bool(with_retry(lambda: wt.functions.isAcknowledged(ticket_id, c).call(),
                                            what="isAcknowledged")),
                  lambda: with_retry(lambda: wt.functions.abortReason(ticket_id).call(), what="abortReason"), "chain")


def _shape(session: Session, ticket_id: int, t: TicketRecord, steps: list[StepRecord],
           acknowledged: Any, abort_reason: Any, source: str) -> dict[str, Any]:
    row = session.get(TicketDocumentRow, ticket_id)
    evidence = _sm2_evidence(session, ticket_id)
    history = []
    for position, step in enumerate(steps):
        name = step.action_name
        entry = {"action": name, "role": _ROLE_OF_ACTION.get(name), "person": _who(session, step.actor),
                 "time": iso(step.timestamp), "timestamp": step.timestamp, "block_number": step.blockNumber,
                 "relayed_by": step.submitter if step.relayed else None,
                 "signed_with": _signed_with(step, evidence.get(position))}
        if position in evidence:
            entry["evidence"] = evidence[position].identifier
        if name == "extend":
            entry["planned_end"] = iso(step.plannedEnd)
        history.append(entry)
    return {
        "id": ticket_id, "equipment": t.equipment, "digest": "0x" + t.digest.hex(), "status": t.status_name,
        "issuer": _who(session, t.issuer), "permitter": _who(session, t.permitter), "leader": _who(session, t.leader),
        "crew": [{**_who(session, c), "acknowledged": bool(acknowledged(c))} for c in t.crew],
        "acknowledged": t.acknowledged, "planned_start": iso(t.plannedStart), "planned_end": iso(t.plannedEnd),
        "extended": t.extended,
        "abort_reason": abort_reason() if t.status_name == "aborted" else None,
        "document": None if row is None else json.loads(row.document),
        "history": history, "history_from": source,
    }


@router.get("/v1/work-tickets/{ticket_id}")
def get_ticket(ticket_id: TicketId, session: SessionDep, state: StateDep) -> dict:
    """Ticket with its document and history: who (name, enterprise, role), when (ISO + unix), which block."""
    return _view(session, state, ticket_id)


@router.get("/v1/work-tickets/{ticket_id}/verify")
def verify_ticket(ticket_id: TicketId, session: SessionDep, state: StateDep) -> dict:
    """Re-check a ticket: ``document_digest`` (SHA-256 of the stored document = on-chain digest),
    ``named_people`` (every actor is a registered person), ``steps`` (replay of the GB 26860 state
    machine: order, named person per step, distinct roles), ``sm2_step_signatures`` (every SM2-signed step's
    evidence: signature, statement = the on-chain step, key = the one bound at the step's block). ``verified``
    when all pass."""
    t, steps = _load(state, ticket_id)
    row = session.get(TicketDocumentRow, ticket_id)
    checks = []
    if row is None:
        checks.append({"name": "document_digest", "ok": False, "detail": "document not stored by this API"})
    else:
        ok = ticket_digest(json.loads(row.document)) == t.digest
        checks.append({"name": "document_digest", "ok": ok,
                       "detail": "SHA-256 of the canonical document matches the chain" if ok else "digest mismatch"})
    unknown = [s.actor for s in steps if _who(session, s.actor)["person_id"] is None]
    checks.append({"name": "named_people", "ok": not unknown,
                   "detail": "every step by a registered person" if not unknown else f"unknown actors {unknown}"})
    # the original planned end: before an extension the contract shows the current one
    original_end = 0 if any(s.action_name == "extend" for s in steps) else t.plannedEnd
    parties = TicketParties(t.issuer, t.permitter, t.leader, t.crew, planned_end=original_end)
    try:
        final = replay_steps(parties, [(s.action_name, s.actor, s.plannedEnd) for s in steps])
        ok = final == t.status_name
        checks.append({"name": "steps", "ok": ok, "detail": f"{len(steps)} steps replayed to {final}"
                       if ok else f"replay ends {final}, chain says {t.status_name}"})
    except (TicketStepRefused, ProvenanceError) as exc:
        checks.append({"name": "steps", "ok": False, "detail": str(exc)})
    checks.append(_check_sm2_steps(state, ticket_id, steps, _sm2_evidence(session, ticket_id)))
    return {"id": ticket_id, "verified": all(c["ok"] for c in checks), "checks": checks,
            "digest": "0x" + t.digest.hex()}


def _check_sm2_steps(state: Any, ticket_id: int, steps: list[StepRecord], evidence: dict[int, Record]) -> dict:
    """Every SM2 step evidence: the signature verifies over its statement, the statement is the on-chain step at
    its position (ticket, action, person, planned end, chain id, contract), and the key in it is the one bound to
    the person at that step's block."""
    wt = contract(state, "WorkTicket")
    chain = require_chain(state)
    problems = []
    for position, rec in sorted(evidence.items()):
        try:
            doc = json.loads(rec.document)
            statement = verify_sm2_step_evidence(doc)
        except (InvalidSignature, ProvenanceError, ValueError) as exc:
            problems.append(f"{rec.identifier}: {exc}")
            continue
        step = steps[position] if position < len(steps) else None
        expected = None if step is None else sm2_step_statement(
            chain_id=state.chain_id(), contract=wt.address, ticket_id=ticket_id, step=position,
            action=step.action_name, person=step.actor, planned_end=step.plannedEnd if step.action_name == "extend"
            else 0)
        if statement != expected:
            problems.append(f"{rec.identifier}: statement is not step {position} of ticket {ticket_id} on chain")
            continue
        assert step is not None
        bound = chain.sm2_public_key_of(step.actor, step.blockNumber)
        if bound is None or "0x" + bound.hex() != doc["sm2_public_key"]:
            problems.append(f"{rec.identifier}: key is not the one bound to {step.actor} at block {step.blockNumber}")
    ok = not problems
    return {"name": "sm2_step_signatures", "ok": ok,
            "detail": f"{len(evidence)} SM2-signed steps verified against the keys bound on chain" if ok
            else "; ".join(problems)}


@router.get("/v1/equipment/{identifier:path}/work-tickets")
def equipment_tickets(identifier: str, session: SessionDep, state: StateDep) -> dict:
    """Every work ticket ever issued for the equipment ``88.x.y/…``, oldest first: who, when, status."""
    wt = contract(state, "WorkTicket")
    ids = call_view(lambda: wt.functions.ticketsForEquipment(identifier).call(), "ticketsForEquipment")
    tickets = []
    for ticket_id in ids:
        view = _view(session, state, int(ticket_id))
        first, last = view["history"][0], view["history"][-1]
        tickets.append({
            "id": view["id"], "status": view["status"],
            "work_content": (view["document"] or {}).get("work_content"),
            "issued_at": first["time"], "last_step": last["action"], "last_step_at": last["time"],
            "issuer": view["issuer"]["name"], "permitter": view["permitter"]["name"],
            "leader": view["leader"]["name"], "crew": [c["name"] for c in view["crew"]],
            "block_number": first["block_number"],
        })
    rows = session.exec(select(TicketDocumentRow).where(TicketDocumentRow.equipment == identifier)
                        .order_by(col(TicketDocumentRow.ticket_id))).all()
    return {"equipment": identifier, "count": len(tickets), "tickets": tickets,
            "stored_documents": [r.ticket_id for r in rows]}
