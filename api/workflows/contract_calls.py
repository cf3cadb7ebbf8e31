"""Contract calls of the workflow routes (work tickets, receivables, warehouse receipts, price index, persons,
SM2 keys): bound contract handles (:func:`contract`), enterprise signing keys (:func:`enterprise_key`), sends and
reads with the chain's refusals as HTTP answers (:func:`send_or_refuse`, :func:`call_view`, :func:`refusal`), and
how their results are shown (:func:`party`, :func:`iso`, :func:`tx_hex`)."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from eth_utils import to_checksum_address
from fastapi import HTTPException, status
from sqlmodel import Session, select

from api.chain import ChainClient, ChainError, ChainUnavailable, with_retry
from api.models import Enterprise
from api.revert_reasons import REASONS, explain_chain_error
from api.state import AppState
from contracts import load_artifact

T = TypeVar("T")

#: contract custom error -> HTTP status of the refusal
REFUSAL_STATUS: dict[str, int] = {name: code for name, (code, _sentence) in REASONS.items()}
"""HTTP status of each contract custom error (403 not yours to do, 404 unknown, 409 conflicts with the on-chain
state, 422 invalid request): one table, :data:`api.revert_reasons.REASONS`."""


def refusal(exc: ChainError, what: str) -> HTTPException:
    """HTTP error for a chain refusal: 403/404/409/422 by custom error name (``reason``), else 502."""
    explained = explain_chain_error(exc)  # name, arguments by meaning and a sentence (api/revert_reasons.py)
    if explained is not None:
        return HTTPException(explained.status, explained.detail(what))
    code = REFUSAL_STATUS.get(exc.reason or "", status.HTTP_502_BAD_GATEWAY)
    return HTTPException(code, {"reason": exc.reason, "message": f"{what} refused by the chain: {exc}"})


def send_or_refuse(chain: ChainClient, key: bytes, call: Any, what: str) -> dict[str, Any]:
    """``chain.send`` mapping ChainError to :func:`refusal` (ChainUnavailable stays a 503)."""
    try:
        return chain.send(key, call)
    except ChainError as exc:
        raise refusal(exc, what) from exc


def _node_busy(exc: BaseException) -> bool:
    """True for the node's JSON-RPC ``-32005`` (limit exceeded: too many calls waiting), not a revert."""
    error = (getattr(exc, "rpc_response", None) or {}).get("error")
    return isinstance(error, dict) and error.get("code") == -32005


def call_view(fn: Callable[[], T], what: str) -> T:
    """A contract read with transport retries; a revert (e.g. UnknownToken) becomes a 404. A node refusing
    for load (``-32005``) is retried with backoff, then answered 503 -- never a 404 for a token that exists."""
    for attempt in range(6):
        try:
            return with_retry(fn, what=what)
        except ChainUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - web3 raises ContractCustomError / ContractLogicError
            if not _node_busy(exc):
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"{what}: not found on chain") from exc
            if attempt == 5:
                raise ChainUnavailable(f"{what}: the node is busy executing calls (-32005, retried)") from exc
            time.sleep(0.02 * 2**attempt)
    raise AssertionError("unreachable")


_BOUND: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], Any]] = weakref.WeakKeyDictionary()
_BOUND_LOCK = threading.Lock()


def require_chain(state: AppState) -> ChainClient:
    """The chain client, or 503 when no RPC is configured."""
    if state.chain is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "chain not configured: set TRACELEDGER_RPC_URL")
    return state.chain


def contract(state: AppState, name: str) -> Any:
    """Bound web3 contract ``WorkTicket`` / ``ReceivableToken`` / ``EnterpriseRegistry`` / ``PriceIndex``
    (503 if unset), built once per Web3 connection and address (contract objects hold no per-call state)."""
    chain = require_chain(state)
    address = {
        "WorkTicket": state.settings.work_ticket_address,
        "ReceivableToken": state.settings.receivable_token_address,
        "EnterpriseRegistry": state.settings.enterprise_registry_address,
        "WarehouseReceipt": state.settings.warehouse_receipt_address,
        "PriceIndex": state.settings.price_index_address,
    }[name]
    if not address:
        env = {"WorkTicket": "TRACELEDGER_WORK_TICKET", "ReceivableToken": "TRACELEDGER_RECEIVABLE_TOKEN",
               "EnterpriseRegistry": "TRACELEDGER_ENTERPRISE_REGISTRY", "PriceIndex": "TRACELEDGER_PRICE_INDEX",
               "WarehouseReceipt": "TRACELEDGER_WAREHOUSE_RECEIPT"}[name]
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"{name} not configured: set {env}")
    key = (name, address.lower())
    with _BOUND_LOCK:
        per_w3 = _BOUND.setdefault(chain.w3, {})
        bound = per_w3.get(key)
    if bound is None:  # building one hashes every ABI selector (keccak): about half a bank check's CPU
        bound = chain.w3.eth.contract(address=to_checksum_address(address), abi=load_artifact(name)["abi"])
        with _BOUND_LOCK:
            per_w3[key] = bound
    return bound


def enterprise_key(state: AppState, ent: Enterprise) -> bytes:
    """Private key of an enterprise account from the encrypted keystore."""
    return state.keys.private_key(ent.keystore, state.settings.keystore_passphrase)


def enterprise_by_address(session: Session, address: str) -> Enterprise | None:
    """Enterprise row whose account is ``address`` (checksum compare), or None."""
    return session.exec(select(Enterprise).where(Enterprise.address == to_checksum_address(address))).first()


def party(session: Session, address: str) -> dict[str, Any]:
    """``{address, enterprise_id, name}`` of an account (name/id None when not an enterprise here)."""
    ent = enterprise_by_address(session, address)
    return {"address": to_checksum_address(address), "enterprise_id": ent.id if ent else None,
            "name": ent.name if ent else None}


def iso(ts: int) -> str:
    """Unix seconds as an ISO 8601 UTC string."""
    return datetime.fromtimestamp(int(ts), UTC).isoformat()


def tx_hex(receipt: dict[str, Any]) -> str:
    """0x-hex transaction hash of a receipt."""
    return "0x" + bytes(receipt["transactionHash"]).hex()
