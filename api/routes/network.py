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
    crypto_profile: str = Field(
        "standard", description="the record layer's cryptography, fixed when the network was created: `standard` "
        "(SHA-256 digests and Merkle trees, EIP-712/secp256k1 record signatures) or `sm` (SM3, SM2 over SM3 with the "
        "default user ID 1234567812345678); the chain's seals and transactions are secp256k1/keccak under both")
    hash_alg: str = Field("sha-256", description="record digest and RFC 9162 Merkle hash: `sha-256` or `sm3`")
    record_signature: str = Field(
        "eip712-secp256k1", description="record signature scheme of the profile: `eip712-secp256k1` or `sm2-sm3`")
    error: str | None = Field(None, description="why chain facts are missing, when the chain is unreachable")


@router.get("/v1/network", response_model=NetworkInfo)
def network_info(state: StateDep) -> NetworkInfo:
    """Chain id, contract addresses, finality model and validator RPC URLs (public; never a 5xx:
    an unreachable chain leaves the chain facts ``null`` and says why in ``error``)."""
    from provenance.crypto_profile import get_profile

    s = state.settings
    profile = get_profile(s.crypto_profile)
    urls = [u.strip() for u in (s.rpc_urls or "").split(",") if u.strip()] or ([s.rpc_url] if s.rpc_url else [])
    info = NetworkInfo(
        contracts={"EnterpriseRegistry": s.enterprise_registry_address, "AnchorRegistry": s.anchor_registry_address,
                   "WorkTicket": s.work_ticket_address, "ReceivableToken": s.receivable_token_address,
                   "WarehouseReceipt": s.warehouse_receipt_address, "PriceIndex": s.price_index_address},
        rpc_urls=urls, finality_model=s.finality, crypto_profile=profile.name, hash_alg=profile.hash_alg,
        record_signature=profile.signature_alg,
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
