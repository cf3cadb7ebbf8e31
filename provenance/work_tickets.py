"""Electronic work tickets (GB 26860 power-safety roles): document model, digest, state machine, EIP-712.

A work ticket authorises one maintenance job on one piece of equipment. GB 26860 names four roles,
each a *person* registered under an enterprise (``EnterpriseRegistry.registerPerson``):

* ticket issuer (签发人, ``ticket_issuer``, flag 1) issues the ticket;
* permitting officer (许可人, ``permitting_officer``, flag 2) grants the permit after isolation,
  may extend the planned window once, and terminates the ticket;
* person in charge (工作负责人, ``person_in_charge``, flag 4) briefs the crew and reports the work ended;
* crew member (工作班成员, ``crew_member``, flag 8) acknowledges the briefing.

The off-chain **ticket document** (work content, safety measures, isolation points, planned window)
is hashed with SHA-256 over its RFC 8785 canonical JSON; only that digest goes on chain with the
equipment identifier (``88.<industry>.<enterprise>/<suffix>``) and the named people.

On chain (``contracts/WorkTicket.sol``) the steps are::

    issue -> permit -> brief -> acknowledge (each crew member once) -> end_work -> terminate
    issue -> cancel                        (issuer, before the permit)
    permitted/briefed -> extend            (permitting officer, once, later planned end)

:func:`replay_steps` mirrors that state machine so a verifier can re-check a recorded history
without trusting the contract's own bookkeeping; :func:`issue_typed_data` / :func:`step_typed_data`
build the EIP-712 documents a person signs on a device (contract functions ``issueBySig`` /
``stepBySig``); :func:`sm2_step_statement` / :func:`verify_sm2_step_evidence` the statement a person signs with
an SM2 device key (GB/T 32918.2) and the offline check of its anchored evidence. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data

from provenance.canonical import canonicalize, record_digest
from provenance.errors import DocumentInvalid, InvalidIdentifier, InvalidSignature, Issue, ProvenanceError
from provenance.identifiers import parse_identifier

__all__ = [
    "ACTIONS",
    "PERSON_ROLES",
    "STATUSES",
    "TicketDocument",
    "TicketInvalid",
    "TicketStepRefused",
    "TicketParties",
    "issue_typed_data",
    "person_registration_typed_data",
    "recover_typed_signer",
    "replay_steps",
    "roles_to_bits",
    "bits_to_roles",
    "sign_typed",
    "signature_hex",
    "step_typed_data",
    "ticket_digest",
    "validate_ticket_document",
    "SM2_STEP_KIND",
    "STEP_SIGNED_BY_TRANSACTION",
    "sm2_step_statement",
    "sm2_step_evidence",
    "verify_sm2_step_evidence",
]

PERSON_ROLES: dict[str, int] = {
    "ticket_issuer": 1,
    "permitting_officer": 2,
    "person_in_charge": 4,
    "crew_member": 8,
}
"""GB 26860 role names and their ``EnterpriseRegistry`` person flags."""

ACTIONS: tuple[str, ...] = ("issue", "permit", "brief", "acknowledge", "end_work", "terminate", "cancel", "extend",
                            "abort")
"""``WorkTicket.Action`` enum order (index = on-chain uint8)."""

STATUSES: tuple[str, ...] = ("none", "issued", "permitted", "briefed", "work_ended", "terminated", "cancelled",
                             "aborted")
"""``WorkTicket.Status`` enum order (index = on-chain uint8)."""

MAX_CREW = 32
EIP712_NAME = "TraceLedger WorkTicket"
EIP712_VERSION = "1"


class TicketInvalid(DocumentInvalid, ValueError):
    """A ticket document failed validation; ``issues`` lists every :class:`Issue` ``(field, rule, message)``."""

    def __init__(self, issues: Iterable[Issue | Mapping[str, Any]]) -> None:
        found = [Issue.coerce(i) for i in issues]
        super().__init__(found, "; ".join(f"{i.field}: {i.message}" for i in found))


class TicketStepRefused(ProvenanceError):
    """A step that the WorkTicket state machine refuses; ``reason`` is the contract's error name."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def roles_to_bits(roles: Iterable[str]) -> int:
    """OR of the GB 26860 role flags; ValueError naming an unknown role."""
    bits = 0
    for role in roles:
        if role not in PERSON_ROLES:
            raise ValueError(f"unknown person role {role!r}; expected one of {sorted(PERSON_ROLES)}")
        bits |= PERSON_ROLES[role]
    return bits


def bits_to_roles(bits: int) -> list[str]:
    """Role names of a flag set, in :data:`PERSON_ROLES` order."""
    return [name for name, bit in PERSON_ROLES.items() if bits & bit]


# --------------------------------------------------------------------------- document


@dataclass(frozen=True)
class TicketDocument:
    """A validated ticket document.

    ``planned_start`` / ``planned_end`` are unix seconds (UTC); ``document`` is the JSON object that
    is hashed (with the timestamps as the ISO 8601 strings the author gave).
    """

    equipment: str
    work_content: str
    safety_measures: tuple[str, ...]
    isolation_points: tuple[str, ...]
    planned_start: int
    planned_end: int
    document: dict[str, Any]


def _issue(field: str, rule: str, message: str) -> Issue:
    return Issue(field, rule, message)


def _timestamp(value: Any, field: str, issues: list[Issue]) -> int | None:
    if not isinstance(value, str):
        issues.append(_issue(field, "type", "must be an ISO 8601 date-time string with a UTC offset"))
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        issues.append(_issue(field, "format", f"{value!r} is not an ISO 8601 date-time"))
        return None
    if parsed.tzinfo is None:
        issues.append(_issue(field, "timezone", "must carry a UTC offset (e.g. 2026-05-01T08:00:00+08:00)"))
        return None
    return int(parsed.timestamp())


def _text_list(value: Any, field: str, issues: list[Issue], *, required: bool) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        issues.append(_issue(field, "type", "must be a list of non-empty strings"))
        return ()
    if required and not value:
        issues.append(_issue(field, "required", "at least one entry is required"))
    return tuple(value)


def validate_ticket_document(doc: Any) -> TicketDocument:
    """Validate a ticket document and return it parsed.

    Shape::

        {"equipment": "88.2.7/XZ-110kV-T1",          # Handle-style identifier of the equipment
         "work_content": "Replace bushing of main transformer T1",
         "safety_measures": ["Open breaker 101", "Earth both sides"],   # >= 1
         "isolation_points": ["Breaker 101", "Disconnector 101-1"],     # may be empty
         "planned_start": "2026-05-01T08:00:00+08:00",
         "planned_end": "2026-05-01T18:00:00+08:00"}

    Further keys (e.g. ``"location"``, ``"notes"``) are kept and hashed.

    Raises:
        TicketInvalid: listing every problem with its field name.
    """
    issues: list[Issue] = []
    if not isinstance(doc, dict):
        raise TicketInvalid([_issue("document", "type", "must be a JSON object")])
    equipment = doc.get("equipment")
    if not isinstance(equipment, str):
        issues.append(_issue("document.equipment", "required", "equipment identifier 88.<industry>.<ent>/<suffix>"))
    else:
        try:
            parse_identifier(equipment)
        except InvalidIdentifier as exc:
            issues.append(_issue("document.equipment", "format", str(exc)))
    work = doc.get("work_content")
    if not isinstance(work, str) or not work.strip():
        issues.append(_issue("document.work_content", "required", "must be a non-empty string"))
    measures = _text_list(doc.get("safety_measures"), "document.safety_measures", issues, required=True)
    points = _text_list(doc.get("isolation_points", []), "document.isolation_points", issues, required=False)
    start = _timestamp(doc.get("planned_start"), "document.planned_start", issues)
    end = _timestamp(doc.get("planned_end"), "document.planned_end", issues)
    if start is not None and end is not None and end <= start:
        issues.append(_issue("document.planned_end", "order", "must be later than planned_start"))
    if not issues:
        try:
            canonicalize(doc)
        except ValueError as exc:
            issues.append(_issue("document", "canonical", str(exc)))
    if issues:
        raise TicketInvalid(issues)
    assert isinstance(equipment, str) and isinstance(work, str) and start is not None and end is not None
    return TicketDocument(equipment, work, measures, points, start, end, dict(doc))


def ticket_digest(doc: dict[str, Any]) -> bytes:
    """32-byte SHA-256 of the RFC 8785 canonical JSON of a ticket document."""
    return record_digest(doc)


# --------------------------------------------------------------------------- state machine


@dataclass(frozen=True)
class TicketParties:
    """The named people of a ticket (checksum or lower-case addresses; compared case-insensitively)."""

    issuer: str
    permitter: str
    leader: str
    crew: tuple[str, ...]
    planned_end: int = 0


def _norm(address: str) -> str:
    return address.lower()


def check_parties(parties: TicketParties) -> None:
    """Issue-time rules: three different people for issuer / permitter / leader; 1–32 distinct crew
    members, none of them one of the three. Raises TicketStepRefused (``SamePerson`` / ``InvalidCrewSize``)."""
    issuer, permitter, leader = _norm(parties.issuer), _norm(parties.permitter), _norm(parties.leader)
    if issuer in (permitter, leader):
        raise TicketStepRefused("SamePerson", f"{parties.issuer} cannot be issuer and permitting officer/in charge")
    if permitter == leader:
        raise TicketStepRefused("SamePerson", f"{parties.permitter} cannot be permitting officer and in charge")
    if not 1 <= len(parties.crew) <= MAX_CREW:
        raise TicketStepRefused("InvalidCrewSize",
                                f"a ticket needs 1..{MAX_CREW} crew members, got {len(parties.crew)}")
    seen: set[str] = set()
    for member in parties.crew:
        m = _norm(member)
        if m in (issuer, permitter, leader) or m in seen:
            raise TicketStepRefused("SamePerson", f"crew member {member} is named twice")
        seen.add(m)


def replay_steps(parties: TicketParties, steps: Sequence[tuple[str, str, int]]) -> str:
    """Re-run the WorkTicket state machine over recorded steps; returns the final status name.

    Args:
        parties: the ticket's named people.
        steps: ``(action, actor address, planned_end)`` in order, the first being ``issue`` by the
            issuer; ``planned_end`` (unix seconds) matters only for ``extend``.

    Raises:
        TicketStepRefused: with the contract's error name (``WrongStatus``, ``NotNamedPerson``,
            ``NotCrewMember``, ``AlreadyAcknowledged``, ``CrewNotAcknowledged``,
            ``ExtensionAlreadyUsed``, ``InvalidExtension``, ``SamePerson``…).
    """
    check_parties(parties)
    status = "none"
    acked: set[str] = set()
    crew = {_norm(c) for c in parties.crew}
    extended = False
    planned_end = parties.planned_end
    named = {"permit": parties.permitter, "brief": parties.leader, "end_work": parties.leader,
             "terminate": parties.permitter, "cancel": parties.issuer, "extend": parties.permitter}
    required = {"permit": ("issued",), "brief": ("permitted",), "acknowledge": ("briefed",),
                "end_work": ("briefed",), "terminate": ("work_ended",), "cancel": ("issued",),
                "extend": ("permitted", "briefed"), "abort": ("issued", "permitted", "briefed", "work_ended")}
    after = {"permit": "permitted", "brief": "briefed", "end_work": "work_ended", "terminate": "terminated",
             "cancel": "cancelled", "abort": "aborted"}
    for index, (action, actor, new_end) in enumerate(steps):
        where = f"step {index} ({action} by {actor})"
        if index == 0:
            if action != "issue":
                raise TicketStepRefused("WrongStatus", f"{where}: the first step must be issue")
            if _norm(actor) != _norm(parties.issuer):
                raise TicketStepRefused("NotNamedPerson", f"{where}: issuer is {parties.issuer}")
            status = "issued"
            continue
        if action not in required:
            raise TicketStepRefused("WrongStatus" if action == "issue" else "InvalidAction", f"{where}: not allowed")
        if status not in required[action]:
            raise TicketStepRefused("WrongStatus", f"{where}: ticket is {status}")
        if action == "acknowledge":
            if _norm(actor) not in crew:
                raise TicketStepRefused("NotCrewMember", f"{where}: not a crew member of this ticket")
            if _norm(actor) in acked:
                raise TicketStepRefused("AlreadyAcknowledged", f"{where}: acknowledged before")
            acked.add(_norm(actor))
            continue
        if action == "abort":  # the contract checked the officer's role and enterprise, which replay cannot see
            status = after[action]
            continue
        if _norm(actor) != _norm(named[action]):
            raise TicketStepRefused("NotNamedPerson", f"{where}: the named person is {named[action]}")
        if action == "end_work" and len(acked) != len(crew):
            raise TicketStepRefused("CrewNotAcknowledged", f"{where}: {len(acked)} of {len(crew)} acknowledged")
        if action == "extend":
            if extended:
                raise TicketStepRefused("ExtensionAlreadyUsed", f"{where}: a ticket is extended once only")
            if new_end <= planned_end:
                raise TicketStepRefused("InvalidExtension", f"{where}: {new_end} is not after {planned_end}")
            extended, planned_end = True, new_end
            continue
        status = after[action]
    return status


# --------------------------------------------------------------------------- EIP-712


def _domain(chain_id: int, contract: str) -> dict[str, Any]:
    return {"name": EIP712_NAME, "version": EIP712_VERSION, "chainId": chain_id, "verifyingContract": contract}


_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def issue_typed_data(
    *, chain_id: int, contract: str, equipment: str, digest: bytes, permitter: str, leader: str,
    crew: Sequence[str], planned_start: int, planned_end: int, nonce: int, deadline: int,
) -> dict[str, Any]:
    """EIP-712 document ``TicketIssue`` the ticket issuer signs (``WorkTicket.issueBySig``).

    ``digest`` is the 32-byte ticket digest; times are unix seconds; ``nonce`` is
    ``WorkTicket.nonces(issuer)``; ``deadline`` the last unix second the signature is valid.
    """
    if len(digest) != 32:
        raise ValueError(f"digest must be 32 bytes, got {len(digest)}")
    return {
        "types": {
            "EIP712Domain": _DOMAIN_TYPE,
            "TicketIssue": [
                {"name": "equipment", "type": "string"},
                {"name": "digest", "type": "bytes32"},
                {"name": "permitter", "type": "address"},
                {"name": "leader", "type": "address"},
                {"name": "crew", "type": "address[]"},
                {"name": "plannedStart", "type": "uint64"},
                {"name": "plannedEnd", "type": "uint64"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "TicketIssue",
        "domain": _domain(chain_id, contract),
        "message": {
            "equipment": equipment, "digest": "0x" + bytes(digest).hex(), "permitter": permitter, "leader": leader,
            "crew": list(crew), "plannedStart": planned_start, "plannedEnd": planned_end, "nonce": nonce,
            "deadline": deadline,
        },
    }


def step_typed_data(
    *, chain_id: int, contract: str, ticket_id: int, action: str, planned_end: int, nonce: int, deadline: int,
) -> dict[str, Any]:
    """EIP-712 document ``TicketStep`` a person signs for one step (``WorkTicket.stepBySig``).

    ``action`` is one of :data:`ACTIONS` except ``issue``; ``planned_end`` (unix seconds) only for
    ``extend``, else 0.
    """
    if action not in ACTIONS or action == "issue":
        raise ValueError(f"action must be one of {list(ACTIONS[1:])}, got {action!r}")
    return {
        "types": {
            "EIP712Domain": _DOMAIN_TYPE,
            "TicketStep": [
                {"name": "ticketId", "type": "uint256"},
                {"name": "action", "type": "uint8"},
                {"name": "plannedEnd", "type": "uint64"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "TicketStep",
        "domain": _domain(chain_id, contract),
        "message": {"ticketId": ticket_id, "action": ACTIONS.index(action), "plannedEnd": planned_end,
                    "nonce": nonce, "deadline": deadline},
    }


REGISTRY_EIP712_NAME = "TraceLedger EnterpriseRegistry"


def person_registration_typed_data(
    *, chain_id: int, contract: str, enterprise: str, person: str, roles: int, qualification: str, deadline: int,
) -> dict[str, Any]:
    """EIP-712 document ``PersonRegistration`` a person signs to be registered under ``enterprise``
    (``EnterpriseRegistry.registerPerson``: proof that the person holds the key of its address).

    ``contract`` is the EnterpriseRegistry address; ``roles`` the GB 26860 role bits (1..15);
    ``deadline`` the last unix second the signature is valid (the contract refuses roles outside
    1..15 with ``InvalidPersonRoles``). Raises ValueError for roles that are not a uint32.
    """
    if not 0 <= roles < 2**32:
        raise ValueError(f"roles must be a uint32, got {roles}")
    return {
        "types": {
            "EIP712Domain": _DOMAIN_TYPE,
            "PersonRegistration": [
                {"name": "enterprise", "type": "address"},
                {"name": "person", "type": "address"},
                {"name": "roles", "type": "uint32"},
                {"name": "qualification", "type": "string"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "PersonRegistration",
        "domain": {"name": REGISTRY_EIP712_NAME, "version": EIP712_VERSION, "chainId": chain_id,
                   "verifyingContract": contract},
        "message": {"enterprise": enterprise, "person": person, "roles": roles, "qualification": qualification,
                    "deadline": deadline},
    }


def sign_typed(private_key: bytes, typed: dict[str, Any]) -> bytes:
    """65-byte ``r || s || v`` EIP-712 signature (v in {27, 28}) of a typed-data document."""
    return bytes(Account.sign_message(encode_typed_data(full_message=typed), private_key=private_key).signature)


def signature_hex(text: str) -> str:
    """``0x`` + lowercase hex of a 65-byte ``r || s || v`` EIP-712 signature given as hex (``0x`` optional).

    The form the API takes a device's signature in (``signature`` of persons, tickets and steps); recovering
    the signer is :func:`recover_typed_signer`'s job. Raises ValueError when ``text`` is not 65 bytes of hex.
    """
    raw = text[2:] if text.startswith("0x") else text
    try:
        if len(bytes.fromhex(raw)) != 65:
            raise ValueError
    except ValueError:
        raise ValueError("signature must be 65 bytes r||s||v as hex") from None
    return "0x" + raw.lower()


def recover_typed_signer(signature: bytes, typed: dict[str, Any]) -> str:
    """Checksum address that signed ``typed``; InvalidSignature for a malformed signature."""
    if len(signature) != 65:
        raise InvalidSignature(f"signature must be 65 bytes r||s||v, got {len(signature)}")
    try:
        return str(Account.recover_message(encode_typed_data(full_message=typed), signature=signature))
    except Exception as exc:  # noqa: BLE001 - eth-keys raises several types
        raise InvalidSignature(f"cannot recover signer: {exc}") from exc


# --------------------------------------------------------------------------- SM2-signed steps (crypto profile sm)
SM2_STEP_KIND = "work_ticket_step"
"""Record kind of the anchored evidence of an SM2-signed step, and the ``kind`` field of its statement."""

STEP_SIGNED_BY_TRANSACTION = "secp256k1-transaction"
"""How a step is signed when the person's own account sent the transaction (no device signature)."""


def sm2_step_statement(*, chain_id: int, contract: str, ticket_id: int, step: int, action: str, person: str,
                       planned_end: int = 0) -> dict[str, Any]:
    """What a person's SM2 signature of one work-ticket step covers (before RFC 8785 canonicalization).

    ``{"action", "chainId", "contract", "domain": "TraceLedger", "kind": "work_ticket_step", "person",
    "plannedEnd", "step", "ticketId", "version": "1"}``: ``step`` is the position the step takes in the
    ticket's on-chain history (0 = the issue), so a signature binds one ticket, one position, one chain and one
    WorkTicket contract and cannot be replayed onto another ticket, a later step or another network.
    ``planned_end`` (unix seconds) only for ``extend``, else 0; ``person`` is the named person's account.

    Raises:
        ValueError: an unknown action (or ``issue``), a non-positive chain id, a negative ticket id or step.
    """
    if action not in ACTIONS or action == "issue":
        raise ValueError(f"action must be one of {list(ACTIONS[1:])}, got {action!r}")
    for name, value, low in (("chain_id", chain_id, 1), ("ticket_id", ticket_id, 0), ("step", step, 0),
                             ("planned_end", planned_end, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return {"action": action, "chainId": chain_id, "contract": _norm(contract), "domain": "TraceLedger",
            "kind": SM2_STEP_KIND, "person": _norm(person), "plannedEnd": planned_end, "step": step,
            "ticketId": ticket_id, "version": "1"}


def sm2_step_evidence(statement: dict[str, Any], signature: bytes, public_key: bytes) -> dict[str, Any]:
    """The document of the anchored evidence record of an SM2-signed step: ``{"statement": …,
    "signature_alg": "sm2-sm3", "sm2_signature": "0x<DER>", "sm2_public_key": "0x04…", "user_id":
    "1234567812345678"}`` — everything an auditor needs to re-check the signature offline
    (:func:`verify_sm2_step_evidence`)."""
    from provenance.crypto_profile import SIG_SM2, SM2_DEFAULT_USER_ID

    return {"statement": dict(statement), "signature_alg": SIG_SM2, "sm2_signature": "0x" + bytes(signature).hex(),
            "sm2_public_key": "0x" + bytes(public_key).hex(), "user_id": SM2_DEFAULT_USER_ID.decode("ascii")}


def verify_sm2_step_evidence(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """Re-check an SM2 step evidence document offline: the DER SM2 signature (GB/T 32918.2, SM3, default user
    ID) over the RFC 8785 bytes of ``statement`` under ``sm2_public_key``. Returns the statement.

    What it does not prove alone: that ``sm2_public_key`` was the named person's key; compare it with
    ``EnterpriseRegistry.sm2PublicKeyOf(person)`` at the step's block (``GET /v1/work-tickets/{id}/verify``).

    Raises:
        ProvenanceError: a missing or malformed field, another ``signature_alg`` or user ID.
        InvalidSignature: the signature does not verify.
    """
    from provenance.crypto_profile import SIG_SM2, SM2_DEFAULT_USER_ID, sm2_verify

    statement = evidence.get("statement")
    if not isinstance(statement, dict) or statement.get("kind") != SM2_STEP_KIND \
            or statement.get("domain") != "TraceLedger":
        raise ProvenanceError("evidence.statement must be a TraceLedger work_ticket_step statement")
    if evidence.get("signature_alg") != SIG_SM2 or evidence.get("user_id") != SM2_DEFAULT_USER_ID.decode("ascii"):
        raise ProvenanceError(f"evidence must be signature_alg {SIG_SM2} with the default user ID")
    try:
        signature = bytes.fromhex(str(evidence["sm2_signature"]).removeprefix("0x"))
        public_key = bytes.fromhex(str(evidence["sm2_public_key"]).removeprefix("0x"))
    except (KeyError, ValueError) as exc:
        raise ProvenanceError(f"evidence.sm2_signature / sm2_public_key must be hex: {exc}") from exc
    sm2_verify(public_key, signature, canonicalize(statement))
    return statement
