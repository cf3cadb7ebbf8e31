"""``/v1/verify``: end-to-end provenance verification of one identifier."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status

from api.deps import SessionDep, StateDep
from api.routes.identifiers import record_owner_batch_or_404
from api.verification import verify_record

router = APIRouter(prefix="/v1/verify", tags=["verify"])


@router.get("/{identifier:path}")
def verify(
    identifier: str,
    session: SessionDep,
    state: StateDep,
    lineage: Annotated[Literal["upstream"] | None, Query(description="verify the whole upstream lineage")] = None,
    depth: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    """Verify record hash → EIP-712 signature → inclusion proof → on-chain root → commit seals.

    Answer: ``{identifier, verified, checks: [{name, ok, detail}], record_digest,
    proof: {root, leaf_index, tree_size, path: [hex]} | null,
    anchor: {block_number, block_hash, tx_hash, seals, validators} | null}``. Check names in order:
    ``record_digest``, ``signature``, then ``anchored`` ("pending anchoring") for a pending record,
    or ``inclusion_proof``, ``anchored_on_chain``, ``finality_seals``. Errors: 422 malformed, 404 unknown.
    With ``?lineage=upstream`` (and for EPC URNs / GS1 Digital Link URIs / mapped objects) every record
    of the upstream lineage is verified: see :func:`api.epcis.lineage.verify_lineage`.
    """
    from api.routes.lineage import verify_lineage_body
    from provenance.identifiers import is_valid_identifier

    if lineage == "upstream" or not is_valid_identifier(identifier):
        return verify_lineage_body(session, state, identifier, depth)
    try:
        rec, owner, batch = record_owner_batch_or_404(session, identifier)  # one query: record, owner, batch
    except HTTPException as exc:
        if exc.status_code == status.HTTP_404_NOT_FOUND and _is_graph_node(session, identifier):
            return verify_lineage_body(session, state, identifier, depth)
        raise
    batches = {batch.id: batch} if batch is not None and batch.id is not None else {}
    return verify_record(session, rec, chain=state.chain, seal_cache=state.seal_cache, owner=owner, batches=batches)


def _is_graph_node(session: SessionDep, identifier: str) -> bool:
    from api.epcis.graph import NotFound, resolve_node
    from api.errors import UnprocessableError

    try:
        resolve_node(session, identifier)
    except (UnprocessableError, NotFound):
        return False
    return True
