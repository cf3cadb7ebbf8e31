"""``/v1/verify``: end-to-end provenance verification of one identifier."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import SessionDep, StateDep
from api.routes.identifiers import record_or_404
from api.verification import verify_record

router = APIRouter(prefix="/v1/verify", tags=["verify"])


@router.get("/{identifier:path}")
def verify(identifier: str, session: SessionDep, state: StateDep) -> dict[str, Any]:
    """Verify record hash → EIP-712 signature → inclusion proof → on-chain root → commit seals.

    Answer: ``{identifier, verified, checks: [{name, ok, detail}], record_digest,
    proof: {root, leaf_index, tree_size, path: [hex]} | null,
    anchor: {block_number, block_hash, tx_hash, seals, validators} | null}``. Check names in order:
    ``record_digest``, ``signature``, then ``anchored`` ("pending anchoring") for a pending record,
    or ``inclusion_proof``, ``anchored_on_chain``, ``finality_seals``. Errors: 422 malformed, 404 unknown.
    """
    rec = record_or_404(session, identifier)
    return verify_record(session, rec, chain=state.chain, seal_cache=state.seal_cache)
