"""``/v1/persons``: named people under an enterprise with GB 26860 roles and a qualification.

A person is its own secp256k1 account, registered on chain by its enterprise
(``EnterpriseRegistry.registerPerson``), which makes it a permitted sender. Key custody:

* ``keystore`` (default): the API generates the key, stores it encrypted beside the enterprise's and
  funds the account with ``TRACELEDGER_PERSON_FUND_WEI`` wei from the enterprise, so the API can send
  the person's steps as transactions signed by that person;
* ``device``: the body gives the person's ``address`` and its EIP-712 ``PersonRegistration``
  ``signature`` with ``deadline`` (get the document from ``POST /v1/persons/typed-data``); the person
  signs each step on its own device (EIP-712, see ``POST /v1/work-tickets/typed-data``) and the API
  relays the signature.

Proof of possession: the registry registers an address only with that address's signature over the
registration, so no enterprise can claim (squat) an account whose key it does not hold. A retired
person (``POST /v1/persons/{id}/retire``) is never active again.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from eth_utils import is_address, to_checksum_address
from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field, StringConstraints, field_validator
from sqlalchemy.exc import IntegrityError

from api.bounds import PersonIdPath, UtcDateTime
from api.deps import CurrentEnterprise, SessionDep, StateDep
from api.errors import CHAIN_REFUSAL_RESPONSES, UnprocessableError, issue
from api.security import new_account_keystore
from api.workflows.contract_calls import contract, enterprise_key, require_chain, send_or_refuse, tx_hex
from api.workflows.models import Person
from provenance.work_tickets import (
    PERSON_ROLES,
    person_registration_typed_data,
    roles_to_bits,
    sign_typed,
    signature_hex,
)

#: validity of the registration signature the API makes for a keystore-held person key (seconds)
_SIGNATURE_TTL = 3600

router = APIRouter(prefix="/v1/persons", tags=["persons"], responses=CHAIN_REFUSAL_RESPONSES)
#: gas money kept back for registerPerson + the funding transfer when checking an enterprise's balance (wei)
PERSON_GAS_RESERVE_WEI = 10**16

PersonRole = Literal["ticket_issuer", "permitting_officer", "person_in_charge", "crew_member"]


class PersonCreate(BaseModel):
    """Body of ``POST /v1/persons``."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    roles: list[PersonRole] = Field(min_length=1, description="GB 26860 roles")
    qualification: str = Field("", max_length=500, description='e.g. "issue tickets: 110 kV Xinzhuang substation"')
    address: str | None = Field(None, description="device-held key: the person's account; omit for a keystore key")
    signature: str | None = Field(None, description="device key: the person's EIP-712 PersonRegistration signature")
    deadline: int | None = Field(None, ge=0, lt=2**63, description="unix seconds; with signature")

    @field_validator("signature")
    @classmethod
    def _signature(cls, v: str | None) -> str | None:
        return None if v is None else signature_hex(v)

    @field_validator("address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not is_address(v):
            raise ValueError("address must be a 0x-prefixed 20-byte hex account")
        return to_checksum_address(v)

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        return sorted(set(v), key=list(PERSON_ROLES).index)


class PersonPublic(BaseModel):
    """Public data of a person."""

    id: int
    enterprise_id: int
    name: str
    roles: list[str]
    qualification: str
    address: str
    key_custody: Literal["keystore", "device"]
    created_at: UtcDateTime
    tx_hash: str | None = Field(None, description="registerPerson transaction (creation answer only)")


def public_person(p: Person) -> dict:
    """Public fields of a Person row."""
    return {"id": p.id, "enterprise_id": p.enterprise_id, "name": p.name, "roles": p.roles,
            "qualification": p.qualification, "address": p.address,
            "key_custody": "keystore" if p.keystore else "device", "created_at": p.created_at}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=PersonPublic)
def create_person(body: PersonCreate, ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """Register a person under the calling enterprise, on chain and in the database.

    Errors: 401 API key; 422 body (field named; ``signature`` for a device key); 409 address already a
    person, or ``InsufficientFunds`` (checked before any transaction); 502/503 chain.
    """
    if body.address is not None and (body.signature is None or body.deadline is None):  # before any work
        raise UnprocessableError([issue("signature", "required", "a device-held person key must sign its "
                                        "registration: POST /v1/persons/typed-data, then send signature and "
                                        "deadline")])
    chain = require_chain(state)
    registry = contract(state, "EnterpriseRegistry")
    bits = roles_to_bits(body.roles)
    if body.address is None and state.settings.person_fund_wei:  # no half-done write: check funds first
        needed = state.settings.person_fund_wei + PERSON_GAS_RESERVE_WEI
        balance = chain.balance(ent.address)
        if balance < needed:
            raise HTTPException(status.HTTP_409_CONFLICT, {
                "reason": "InsufficientFunds",
                "message": f"enterprise account {ent.address} holds {balance} wei; registering a keystore person "
                           f"needs {needed} (TRACELEDGER_PERSON_FUND_WEI + gas reserve)"})
    if body.address is None:
        address, keystore = new_account_keystore(state.settings.keystore_passphrase, state.settings.keystore_scrypt_n)
        deadline = int(time.time()) + _SIGNATURE_TTL
        typed = person_registration_typed_data(
            chain_id=state.chain_id(), contract=registry.address, enterprise=to_checksum_address(ent.address),
            person=address, roles=bits, qualification=body.qualification, deadline=deadline)
        signature = sign_typed(state.keys.private_key(keystore, state.settings.keystore_passphrase), typed)
    else:
        address, keystore = body.address, None
        assert body.signature is not None and body.deadline is not None  # checked on entry
        deadline, signature = body.deadline, bytes.fromhex(body.signature[2:])
    person = Person(enterprise_id=ent.id, name=body.name, roles=body.roles, qualification=body.qualification,
                    address=address, keystore=keystore)
    session.add(person)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, f"account {address} is already registered as a person") from exc
    key = enterprise_key(state, ent)
    call = registry.functions.registerPerson(ent.address, address, bits, body.qualification, deadline, signature)
    receipt = send_or_refuse(chain, key, call, "registerPerson")
    if keystore is not None and state.settings.person_fund_wei:
        chain.transfer(key, address, state.settings.person_fund_wei)
    session.commit()
    out = public_person(person)
    out["tx_hash"] = tx_hex(receipt)
    return out


@router.get("/{person_id}", response_model=PersonPublic)
def get_person(person_id: PersonIdPath, session: SessionDep) -> dict:
    """Public data of one person; 404 when unknown."""
    person = session.get(Person, person_id)
    if person is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"person {person_id} not found")
    return public_person(person)


@router.post("/typed-data")
def registration_typed_data(body: PersonCreate, ent: CurrentEnterprise, state: StateDep) -> dict:
    """EIP-712 ``PersonRegistration`` document the person signs on its device (``address`` required;
    ``deadline`` defaults to now + 1 h). Errors: 422 body; 503 chain not configured."""
    if body.address is None:
        raise UnprocessableError([issue("address", "required", "the device-held person account is required")])
    registry = contract(state, "EnterpriseRegistry")
    return person_registration_typed_data(
        chain_id=state.chain_id(), contract=registry.address, enterprise=to_checksum_address(ent.address),
        person=body.address, roles=roles_to_bits(body.roles), qualification=body.qualification,
        deadline=body.deadline or int(time.time()) + _SIGNATURE_TTL)


@router.post("/{person_id}/retire", response_model=PersonPublic)
def retire_person(person_id: PersonIdPath, ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """Retire a person of the calling enterprise for good (``EnterpriseRegistry.retirePerson``).

    Errors: 404 unknown person or another enterprise's; 409 PersonIsRetired; 502/503 chain.
    """
    person = session.get(Person, person_id)
    if person is None or person.enterprise_id != ent.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"person {person_id} not found in your enterprise")
    chain = require_chain(state)
    registry = contract(state, "EnterpriseRegistry")
    receipt = send_or_refuse(chain, enterprise_key(state, ent), registry.functions.retirePerson(person.address),
                             "retirePerson")
    out = public_person(person)
    out["tx_hash"] = tx_hex(receipt)
    return out
