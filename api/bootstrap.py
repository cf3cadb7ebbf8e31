"""Idempotent bootstrap of the anchoring service's operator account.

The operator key is generated on first start and stored encrypted (keystore) in the service's
own Enterprise row. When the governance key and registry addresses are configured, the admin
registers it on chain as enterprise "TraceLedger anchoring service" with prefix ``88.0.0`` and
funds it, so that ``EnterpriseRegistry.isActiveAnchorer(operator)`` holds.

Roles: the registry rejects ``roles == 0`` (``InvalidRoles``), so the service is registered with
the AUDITOR flag (16), the least privileged role that has no business meaning for ingestion.
"""

from __future__ import annotations

import logging
import secrets

from sqlalchemy.engine import Engine

from api import crud
from api.chain import ChainClient, ChainError
from api.db import session_scope
from api.models import ROLE_BITS, Enterprise
from api.security import hash_api_key, new_account_keystore
from api.settings import Settings

log = logging.getLogger(__name__)

SERVICE_NAME = "TraceLedger anchoring service"
SERVICE_PREFIX = "88.0.0"
SERVICE_ROLES = ["auditor"]


def ensure_service_enterprise(engine: Engine, settings: Settings) -> Enterprise:
    """Return the service's Enterprise row, creating it (with a fresh encrypted key) if missing."""
    with session_scope(engine) as session:
        service = crud.get_service_enterprise(session)
        if service is not None:
            return service
        address, keystore = new_account_keystore(settings.keystore_passphrase, settings.keystore_scrypt_n)
        service = crud.create_enterprise(
            session,
            name=SERVICE_NAME,
            roles=SERVICE_ROLES,
            prefix=SERVICE_PREFIX,
            address=address,
            # unusable API key: nobody knows the preimage of a random 256-bit secret's hash
            api_key_hash=hash_api_key(secrets.token_hex(32)),
            keystore=keystore,
            is_service=True,
        )
        session.commit()
        log.info("generated anchoring operator account %s", address)
        return service


def ensure_service_registered(engine: Engine, settings: Settings, chain: ChainClient) -> bool:
    """Register and fund the operator on chain if needed; True when it can anchor.

    Without an admin key, only checks ``isActiveAnchorer``. Raises ChainUnavailable / ChainError.
    """
    service = ensure_service_enterprise(engine, settings)
    if settings.admin_private_key:
        roles = sum(ROLE_BITS[r] for r in SERVICE_ROLES)
        chain.register_enterprise(
            settings.admin_private_key,
            account=service.address,
            name=SERVICE_NAME,
            roles=roles,
            prefix=SERVICE_PREFIX,
            fund_wei=settings.fund_wei,
        )
    if not chain.is_active_anchorer(service.address):
        raise ChainError(f"operator {service.address} is not an active anchorer in EnterpriseRegistry")
    if not service.registered_on_chain:
        with session_scope(engine) as session:
            row = session.get(Enterprise, service.id)
            if row is not None:
                row.registered_on_chain = True
                session.commit()
    return True
