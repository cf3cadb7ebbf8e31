"""``GET /v1/network``: what an integrator needs to talk to the chain directly."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.chain import ChainError, ChainUnavailable, with_retry
from api.deps import StateDep

router = APIRouter(tags=["ops"])


class NetworkInfo(BaseModel):
    """The chain this API anchors on. Fields are ``null`` when the API runs without a chain."""

    chain_id: int | None = Field(None, description="EIP-155 chain id")
    finality_model: str = Field(
        "qbft", description="how a block is taken as final: `qbft` (a quorum of commit seals by the validators) "
        "or `confirmations:N` (N blocks on the canonical chain, for chains without seals)")
    block_number: int | None = Field(None, description="latest block number the API's validator serves")
    contracts: dict[str, str | None] = Field(
        default_factory=dict,
        description="EnterpriseRegistry, AnchorRegistry, WorkTicket, ReceivableToken, PriceIndex addresses")
    rpc_urls: list[str] = Field(default_factory=list, description="validator JSON-RPC endpoints the API uses")
    validators: list[str] = Field(
        default_factory=list, description="current validator set (qbft_getValidatorsByBlockNumber latest)")
    error: str | None = Field(None, description="why chain facts are missing, when the chain is unreachable")


@router.get("/v1/network", response_model=NetworkInfo)
def network_info(state: StateDep) -> NetworkInfo:
    """Chain id, contract addresses, finality model and validator RPC URLs (public; never a 5xx:
    an unreachable chain leaves the chain facts ``null`` and says why in ``error``)."""
    s = state.settings
    urls = [u.strip() for u in (s.rpc_urls or "").split(",") if u.strip()] or ([s.rpc_url] if s.rpc_url else [])
    info = NetworkInfo(
        contracts={"EnterpriseRegistry": s.enterprise_registry_address, "AnchorRegistry": s.anchor_registry_address,
                   "WorkTicket": s.work_ticket_address, "ReceivableToken": s.receivable_token_address,
                   "WarehouseReceipt": s.warehouse_receipt_address, "PriceIndex": s.price_index_address},
        rpc_urls=urls, finality_model=s.finality,
    )
    chain = state.chain
    if chain is None:
        info.error = "no chain configured (TRACELEDGER_RPC_URL)"
        return info
    try:
        info.chain_id = state.chain_id()
        info.block_number = with_retry(lambda: chain.w3.eth.block_number, what="eth_blockNumber", attempts=1)
        raw: Any = with_retry(lambda: chain.w3.provider.make_request("qbft_getValidatorsByBlockNumber", ["latest"]),
                              what="qbft_getValidatorsByBlockNumber", attempts=1)
        if isinstance(raw, dict) and isinstance(raw.get("result"), list):
            info.validators = [str(v) for v in raw["result"]]
    except (ChainUnavailable, ChainError) as exc:
        info.error = str(exc)
    return info
