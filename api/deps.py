"""FastAPI dependencies: DB session, app state, enterprise API-key auth, governance token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from api import crud
from api.models import Enterprise
from api.security import hash_api_key, tokens_equal
from api.state import AppState

_bearer = HTTPBearer(auto_error=False, description="Enterprise API key or governance token")


def get_state(request: Request) -> AppState:
    """The AppState of the running app."""
    return request.app.state.tl


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    """A DB session per request (rolled back if the handler did not commit)."""
    with Session(state.engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def current_enterprise(request: Request, session: SessionDep, credentials: BearerDep) -> Enterprise:
    """Enterprise authenticated by ``Authorization: Bearer <api_key>``.

    Raises: 401 when the header is missing or the key unknown; 403 when the enterprise is inactive.
    """
    if credentials is None or not credentials.credentials:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing Authorization: Bearer <api_key>", _UNAUTHORIZED)
    ent = crud.get_enterprise_by_api_key_hash(session, api_key_hash=hash_api_key(credentials.credentials))
    if ent is None or ent.is_service:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key", _UNAUTHORIZED)
    if not ent.active:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"enterprise {ent.id} is inactive")
    request.state.audit_actor = ("enterprise", ent.id)  # the audit log's "who" (api/audit.py)
    return ent


CurrentEnterprise = Annotated[Enterprise, Depends(current_enterprise)]


def governance_token(request: Request, state: StateDep, credentials: BearerDep) -> str:
    """Check ``Authorization: Bearer <TRACELEDGER_ADMIN_TOKEN>``.

    Raises: 401 without a bearer token, 403 with a wrong one, 503 when no admin token is configured.
    """
    expected = state.settings.admin_token
    if not expected:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "governance disabled: TRACELEDGER_ADMIN_TOKEN unset")
    if credentials is None or not credentials.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing Authorization: Bearer <governance token>", _UNAUTHORIZED
        )
    if not tokens_equal(credentials.credentials, expected):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid governance token")
    request.state.audit_actor = ("governance", None)
    return credentials.credentials


GovernanceToken = Annotated[str, Depends(governance_token)]
