"""SM2 public keys bound on chain (crypto profile ``sm``, issue 18): enterprises and persons.

Endpoints:

* ``GET /v1/enterprises/{id}/sm2-key`` / ``GET /v1/persons/{id}/sm2-key`` -- the key bound on chain
  (``EnterpriseRegistry.sm2PublicKeyOf`` at the latest block; ``null`` when none) and the
  ``binding_statement`` a key holder signs to bind a key to that account.
* ``PUT /v1/enterprises/{id}/sm2-key`` (the enterprise's own API key) -- ``setSm2PublicKey`` sent by the
  enterprise account from its keystore.
* ``PUT /v1/persons/{id}/sm2-key`` (the API key of the person's enterprise) -- ``setSm2PublicKey`` sent by the
  person's own account (keystore custody; a device-custody person sends that transaction from its device).

Proof of possession: the body carries ``public_key`` (65 bytes ``04 ‖ x ‖ y``) and ``signature``, a DER SM2
signature by that key (SM3, default user ID) over
:func:`provenance.crypto_profile.sm2_key_binding_statement` of the account, the chain id and the
registry: nobody binds a key whose private half they do not hold, and a proof made for one account does not
bind the key to another. The contract cannot check an SM2 point or signature (no SM2 in the EVM), so the
API checks both before it sends.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from api import crud
from api.bounds import EnterpriseIdPath, PersonIdPath
from api.deps import CurrentEnterprise, SessionDep, StateDep
from api.errors import CHAIN_REFUSAL_RESPONSES, UnprocessableError, issue
from api.workflows.contract_calls import contract, enterprise_key, require_chain, send_or_refuse, tx_hex
from api.workflows.models import Person
from provenance.crypto_profile import parse_sm2_public_key, sm2_key_binding_statement, sm2_verify
from provenance.errors import InvalidSignature

router = APIRouter(tags=["sm2 keys"], responses=CHAIN_REFUSAL_RESPONSES)


class Sm2KeyBinding(BaseModel):
    """Body of ``PUT /v1/enterprises/{id}/sm2-key`` and ``PUT /v1/persons/{id}/sm2-key``."""

    public_key: str = Field(max_length=140, description="0x + 65-byte SM2 public key 04||x||y (hex)")
    signature: str = Field(max_length=150, description="0x + DER SM2 signature by that key over binding_statement")


def _hex(value: str, field: str) -> bytes:
    try:
        return bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise UnprocessableError([issue(field, "hex", f"{field} must be 0x-prefixed hex")]) from None


def _checked_key(state: Any, account: str, body: Sm2KeyBinding) -> bytes:
    """The 65-byte key of ``body`` after its proof of possession for ``account`` verified; 422 naming the field."""
    try:
        key = parse_sm2_public_key(_hex(body.public_key, "public_key"))
    except ValueError as exc:
        raise UnprocessableError([issue("public_key", "sm2-point", str(exc))]) from exc
    if len(key) != 65:
        raise UnprocessableError([issue("public_key", "sm2-point", "SM2 public key must be 65 bytes 04||x||y")])
    registry = contract(state, "EnterpriseRegistry").address
    statement = sm2_key_binding_statement(account, state.chain_id(), registry)
    try:
        sm2_verify(key, _hex(body.signature, "signature"), statement)
    except InvalidSignature as exc:
        raise UnprocessableError([issue("signature", "proof-of-possession",
                                        f"not an SM2 signature by public_key over the binding statement of "
                                        f"{account}: {exc}")]) from exc
    return key


def _view(state: Any, account: str) -> dict[str, Any]:
    chain = require_chain(state)
    key = chain.sm2_public_key_of(account)
    registry = contract(state, "EnterpriseRegistry").address
    return {"account": account, "sm2_public_key": None if key is None else "0x" + key.hex(),
            "binding_statement": sm2_key_binding_statement(account, state.chain_id(), registry).decode("utf-8")}


def _bind(state: Any, private_key: bytes, account: str, key: bytes) -> dict[str, Any]:
    chain = require_chain(state)
    call = contract(state, "EnterpriseRegistry").functions.setSm2PublicKey(key[1:33], key[33:])
    receipt = send_or_refuse(chain, private_key, call, "setSm2PublicKey")
    return {**_view(state, account), "tx_hash": tx_hex(receipt), "block_number": receipt["blockNumber"]}


def _enterprise(session: Any, enterprise_id: int) -> Any:
    ent = crud.get_enterprise(session, enterprise_id=enterprise_id)
    if ent is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"enterprise {enterprise_id} not found")
    return ent


@router.get("/v1/enterprises/{enterprise_id}/sm2-key")
def get_enterprise_sm2_key(enterprise_id: EnterpriseIdPath, session: SessionDep, state: StateDep) -> dict:
    """``{account, sm2_public_key ("0x04…" or null), binding_statement}``; 404 unknown enterprise, 503 no chain."""
    return _view(state, _enterprise(session, enterprise_id).address)


@router.put("/v1/enterprises/{enterprise_id}/sm2-key")
def put_enterprise_sm2_key(enterprise_id: EnterpriseIdPath, body: Sm2KeyBinding, ent: CurrentEnterprise,
                           session: SessionDep, state: StateDep) -> dict:
    """Bind an SM2 key to the calling enterprise's own account (e.g. its device's key); the GET answer plus
    ``tx_hash``, ``block_number``.

    Under ``sm`` the enterprise's record signatures are then checked against this key: the API's own record
    signatures (made with the key derived from the keystore) stop verifying until that key is bound again.

    Errors: 403 another enterprise's account; 404 unknown; 422 ``public_key`` not a point of the SM2 curve,
    ``signature`` not a proof of possession for this account; 502/503 chain.
    """
    target = _enterprise(session, enterprise_id)
    if target.id != ent.id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"enterprise {ent.id} cannot bind a key to enterprise "
                            f"{enterprise_id}'s account; each enterprise binds its own")
    key = _checked_key(state, ent.address, body)
    return _bind(state, enterprise_key(state, ent), ent.address, key)


def _person(session: Any, person_id: int) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"person {person_id} not found")
    return person


@router.get("/v1/persons/{person_id}/sm2-key")
def get_person_sm2_key(person_id: PersonIdPath, session: SessionDep, state: StateDep) -> dict:
    """``{account, sm2_public_key ("0x04…" or null), binding_statement}``; 404 unknown person, 503 no chain."""
    return _view(state, _person(session, person_id).address)


@router.put("/v1/persons/{person_id}/sm2-key")
def put_person_sm2_key(person_id: PersonIdPath, body: Sm2KeyBinding, ent: CurrentEnterprise, session: SessionDep,
                       state: StateDep) -> dict:
    """Bind the SM2 key of a person's device to the person's account, sent by that account (keystore custody);
    the GET answer plus ``tx_hash``, ``block_number``.

    Errors: 403 a person of another enterprise; 404 unknown; 422 ``public_key`` / ``signature`` (proof of
    possession), or a device-custody person (``person_id``: its device sends ``setSm2PublicKey`` itself);
    502/503 chain (``NotActiveMember`` for a retired person).
    """
    person = _person(session, person_id)
    if person.enterprise_id != ent.id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"person {person_id} belongs to enterprise "
                            f"{person.enterprise_id}; only that enterprise binds its keys")
    if person.keystore is None:
        raise UnprocessableError([issue("person_id", "device-custody", f"person {person_id} holds its account key "
                                        "on a device: send EnterpriseRegistry.setSm2PublicKey from that account")])
    key = _checked_key(state, person.address, body)
    return _bind(state, state.keys.private_key(person.keystore, state.settings.keystore_passphrase),
                 person.address, key)
