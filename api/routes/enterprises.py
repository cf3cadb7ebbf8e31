"""``/v1/enterprises``: governance creates enterprises (key pair, on-chain registration, funding)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field, StringConstraints, field_validator
from sqlalchemy.exc import IntegrityError

from api import crud
from api.bounds import EnterpriseIdPath, UtcDateTime
from api.chain import ChainError, ChainUnavailable
from api.deps import GovernanceToken, SessionDep, StateDep
from api.models import ROLE_ALIASES, ROLE_BITS, enterprise_role_bits
from api.security import generate_api_key, hash_api_key, new_account_keystore
from provenance.errors import InvalidIdentifier
from provenance.identifiers import parse_prefix

router = APIRouter(prefix="/v1/enterprises", tags=["enterprises"])

RoleName = Literal["manufacturer", "supplier", "core_enterprise", "bank", "auditor", "regulator", "plant_operator",
                   "warehouse", "price_publisher"]


class EnterpriseCreate(BaseModel):
    """Body of ``POST /v1/enterprises``."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    roles: list[RoleName] = Field(min_length=1, description=(
        "enterprise roles; `plant_operator` (a utility issuing GB 26860 work tickets) holds the core_enterprise "
        "flag on chain"))
    prefix: str | None = Field(None, description="88.<industry>.<enterprise>; assigned when absent")
    industry: int = Field(1, ge=0, le=999999, description="industry code for an assigned prefix")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            industry, enterprise = parse_prefix(v)
        except InvalidIdentifier as exc:
            raise ValueError(str(exc)) from exc
        if (industry, enterprise) == ("0", "0"):
            raise ValueError("prefix 88.0.0 is reserved for the anchoring service")
        return f"88.{industry}.{enterprise}"

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        return sorted(set(v), key=[*ROLE_BITS, *ROLE_ALIASES].index)


class EnterprisePublic(BaseModel):
    """Public data of an enterprise."""

    id: int
    name: str
    roles: list[str]
    prefix: str
    address: str
    active: bool
    registered_on_chain: bool
    created_at: UtcDateTime


class EnterpriseCreated(EnterprisePublic):
    """``POST /v1/enterprises`` answer; ``api_key`` is shown only here."""

    api_key: str


@router.post("", status_code=status.HTTP_201_CREATED, response_model=EnterpriseCreated)
def create_enterprise(body: EnterpriseCreate, session: SessionDep, state: StateDep, _: GovernanceToken) -> dict:
    """Create an enterprise: key pair (stored encrypted), API key (stored hashed), prefix.

    When the chain is configured (RPC, registries, admin key) the account is registered in
    EnterpriseRegistry with the role bits and funded with ``fund_wei``; if that fails the
    enterprise is removed again. Errors: 401/403 governance token, 422 bad body (roles must be
    among the six role names), 409 prefix taken (DB or chain), 502/503 chain refused/unreachable.
    """
    settings = state.settings
    if body.prefix is not None:
        if crud.get_enterprise_by_prefix(session, prefix=body.prefix) is not None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"prefix {body.prefix} is already assigned")
        prefix = body.prefix
    else:
        prefix = crud.next_prefix(session, industry=str(body.industry))
    address, keystore = new_account_keystore(settings.keystore_passphrase, settings.keystore_scrypt_n)
    api_key = generate_api_key()
    try:
        ent = crud.create_enterprise(
            session,
            name=body.name,
            roles=body.roles,
            prefix=prefix,
            address=address,
            api_key_hash=hash_api_key(api_key),
            keystore=keystore,
        )
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, f"prefix {prefix} is already assigned") from exc

    if state.chain is not None and settings.admin_private_key and state.chain.enterprise_registry is not None:
        try:
            state.chain.register_enterprise(
                settings.admin_private_key,
                account=address,
                name=body.name,
                roles=enterprise_role_bits(body.roles),
                prefix=prefix,
                fund_wei=settings.fund_wei,
            )
        except (ChainError, ChainUnavailable) as exc:
            session.delete(ent)
            session.commit()
            if isinstance(exc, ChainError) and exc.reason == "PrefixTaken":
                raise HTTPException(status.HTTP_409_CONFLICT, f"prefix {prefix} is taken on chain") from exc
            raise
        ent.registered_on_chain = True
        session.add(ent)
        session.commit()
    return {**public_enterprise(ent), "api_key": api_key}


def public_enterprise(ent: object) -> dict:
    """Public fields of an Enterprise row."""
    return {k: getattr(ent, k) for k in EnterprisePublic.model_fields}


@router.get("/{enterprise_id}", response_model=EnterprisePublic)
def get_enterprise(enterprise_id: EnterpriseIdPath, session: SessionDep) -> dict:
    """Public data of one enterprise; 404 when unknown."""
    ent = crud.get_enterprise(session, enterprise_id=enterprise_id)
    if ent is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"enterprise {enterprise_id} not found")
    return public_enterprise(ent)
