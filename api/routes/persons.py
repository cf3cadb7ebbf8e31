"""``/v1/persons``: named people under an enterprise with GB 26860 roles and a qualification.

A person is its own secp256k1 account, registered on chain by its enterprise
(``EnterpriseRegistry.registerPerson``), which makes it a permitted sender. Key custody:

* ``keystore`` (default): the API generates the key, stores it encrypted beside the enterprise's and
  funds the account with ``TRACELEDGER_PERSON_FUND_WEI`` wei from the enterprise, so the API can send
  the person's steps as transactions signed by that person;
* ``device``: the body gives the person's ``address`` and ``key_proof``, the device's EIP-712
  ``PersonKey(address enterprise,address person)`` signature (proof of possession: the document comes
  from ``POST /v1/persons/key-challenge``); the person signs each step on its own device (EIP-712, see
  ``POST /v1/work-tickets/typed-data``) and the API relays the signature.
"""

from __future__ import annotations

from typing import Annotated, Literal

from eth_utils import is_address, to_checksum_address
from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field, StringConstraints, field_validator
from sqlalchemy.exc import IntegrityError

from api.bounds import PersonIdPath, UtcDateTime
from api.deps import CurrentEnterprise, SessionDep, StateDep
from api.errors import UnprocessableError, issue
from api.routes.certificates import parse_signature
from api.security import new_account_keystore
from api.workflows.common import contract, enterprise_key, require_chain, send_or_refuse, tx_hex
from api.workflows.models import Person
from provenance.errors import InvalidSignature
from provenance.signing import person_key_typed_data, verify_person_key
from provenance.work_tickets import PERSON_ROLES, roles_to_bits

router = APIRouter(prefix="/v1/persons", tags=["persons"])
#: gas money kept back for registerPerson + the funding transfer when checking an enterprise's balance (wei)
PERSON_GAS_RESERVE_WEI = 10**16

PersonRole = Literal["ticket_issuer", "permitting_officer", "person_in_charge", "crew_member"]


class PersonCreate(BaseModel):
    """Body of ``POST /v1/persons``."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    roles: list[PersonRole] = Field(min_length=1, description="GB 26860 roles")
    qualification: str = Field("", max_length=500, description='e.g. "issue tickets: 110 kV Xinzhuang substation"')
    address: str | None = Field(None, description="device-held key: the person's account; omit for a keystore key")
    key_proof: str | None = Field(None, max_length=140, description="with address: the device's 65-byte EIP-712 "
                                  "PersonKey signature (0x hex) from POST /v1/persons/key-challenge")

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

    Errors: 401 API key; 422 body (field named, ``key_proof`` for a device key); 409 address already a
    person, or ``InsufficientFunds`` (checked before any transaction); 502/503 chain.
    """
    if body.address is not None:  # proof of possession, before any work (issue 12)
        _check_key_proof(body.key_proof, ent.address, body.address, state.chain_id())
    chain = require_chain(state)
    registry = contract(state, "EnterpriseRegistry")
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
    else:
        address, keystore = body.address, None
    person = Person(enterprise_id=ent.id, name=body.name, roles=body.roles, qualification=body.qualification,
                    address=address, keystore=keystore)
    session.add(person)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, f"account {address} is already registered as a person") from exc
    key = enterprise_key(state, ent)
    call = registry.functions.registerPerson(ent.address, address, roles_to_bits(body.roles), body.qualification)
    receipt = send_or_refuse(chain, key, call, "registerPerson")
    if keystore is not None and state.settings.person_fund_wei:
        chain.transfer(key, address, state.settings.person_fund_wei)
    session.commit()
    out = public_person(person)
    out["tx_hash"] = tx_hex(receipt)
    return out


class KeyChallenge(BaseModel):
    """Body of ``POST /v1/persons/key-challenge``."""

    address: str = Field(description="the device-held account to be registered")

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        if not is_address(v):
            raise ValueError("address must be a 0x-prefixed 20-byte hex account")
        return to_checksum_address(v)


@router.post("/key-challenge")
def key_challenge(body: KeyChallenge, ent: CurrentEnterprise, state: StateDep) -> dict:
    """EIP-712 ``PersonKey`` document the device signs (``eth_signTypedData_v4``) to prove it holds the key.

    The signature goes into ``POST /v1/persons`` as ``key_proof``. Errors: 401 API key; 422 address.
    """
    return person_key_typed_data(ent.address, body.address, state.chain_id())


def _check_key_proof(key_proof: str | None, enterprise: str, person: str, chain_id: int) -> None:
    if key_proof is None:
        raise UnprocessableError([issue("body.key_proof", "required", "a device-held address needs key_proof: the "
                                        "device's EIP-712 PersonKey signature (POST /v1/persons/key-challenge)")])
    signature = parse_signature(key_proof, "body.key_proof")
    try:
        verify_person_key(signature, enterprise, person, chain_id)
    except (InvalidSignature, ValueError) as exc:
        raise UnprocessableError([issue("body.key_proof", "signature", str(exc))]) from exc


@router.get("/{person_id}", response_model=PersonPublic)
def get_person(person_id: PersonIdPath, session: SessionDep) -> dict:
    """Public data of one person; 404 when unknown."""
    person = session.get(Person, person_id)
    if person is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"person {person_id} not found")
    return public_person(person)
