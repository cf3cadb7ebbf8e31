"""``/v1/verify``: end-to-end provenance verification of one identifier."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.read_cache import VERIFY, CachedView, load_facts, make_view
from api.routes.identifiers import parse_identifier_or_422, view_response
from api.state import AppState
from api.verification import verify_record
from provenance.verify import FINALITY_QBFT

router = APIRouter(prefix="/v1/verify", tags=["verify"])


@router.get("/{identifier:path}", response_class=Response,
            responses={200: {"content": {"application/json": {"schema": {"type": "object"}}},
                             "headers": {"ETag": {"schema": {"type": "string"}}}},
                       304: {"description": "Not Modified (If-None-Match matched the ETag)"}})
async def verify(
    identifier: str,
    request: Request,
    lineage: Annotated[Literal["upstream"] | None, Query(description="verify the whole upstream lineage")] = None,
    depth: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Response:
    """Verify record hash → EIP-712 signature → inclusion proof → on-chain root → commit seals.

    Answer: ``{identifier, verified, checks: [{name, ok, detail}], record_digest,
    proof: {root, leaf_index, tree_size, path: [hex]} | null,
    anchor: {block_number, block_hash, tx_hash, seals, validators} | null}``. Check names in order:
    ``record_digest``, ``signature``, then ``anchored`` ("pending anchoring") for a pending record,
    or ``inclusion_proof``, ``anchored_on_chain``, ``finality_seals``. Errors: 422 malformed, 404 unknown.
    With ``?lineage=upstream`` (and for EPC URNs / GS1 Digital Link URIs / mapped objects) every record
    of the upstream lineage is verified: see :func:`api.epcis.lineage.verify_lineage`.
    Headers ``ETag`` (strong) and ``Cache-Control: public, no-cache``; ``If-None-Match`` answers 304. A verified
    verdict of an anchored record (QBFT finality) is served from memory, without a database round trip, until
    its row changes (:mod:`api.read_cache`): a replacement, or any change made behind the API's back, which the
    database's triggers record in ``read_invalidations`` (seen by every process within the poll interval).
    Any other verdict is recomputed.
    """
    state: AppState = request.app.state.tl
    if lineage is None:
        view = state.reads.get(VERIFY, identifier)
        if view is not None:
            return view_response(request, view)
    view = await run_in_threadpool(verify_view, state, identifier, lineage, depth)
    return view_response(request, view)


def verify_view(state: AppState, identifier: str, lineage: str | None, depth: int) -> CachedView:
    """The ``GET /v1/verify`` answer: one Core query for a record (cached when final and verified), else the
    lineage verification. Errors: 422 malformed, 404 unknown."""
    from api.routes.lineage import verify_lineage_body
    from provenance.identifiers import is_valid_identifier

    if lineage == "upstream" or not is_valid_identifier(identifier):
        with Session(state.engine) as session:
            return make_view(VERIFY, identifier, "lineage", verify_lineage_body(session, state, identifier, depth))
    parse_identifier_or_422(identifier)
    epoch = state.reads.epoch()
    facts = load_facts(state.engine, identifier)
    if facts is None:
        with Session(state.engine) as session:
            if _is_graph_node(session, identifier):
                return make_view(VERIFY, identifier, "lineage",
                                 verify_lineage_body(session, state, identifier, depth))
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"identifier {identifier} is not registered")
    batches = {facts.batch.id: facts.batch} if facts.batch is not None else {}
    body = verify_record(None, facts.record, chain=state.chain, seal_cache=state.seal_cache, owner=facts.owner,
                         batches=batches)
    view = make_view(VERIFY, identifier, facts.revision, body)
    qbft = state.chain is not None and getattr(state.chain, "finality", FINALITY_QBFT) == FINALITY_QBFT
    if facts.final and qbft and body["verified"] is True:
        state.reads.put(view, epoch)
    return view


def _is_graph_node(session: Session, identifier: str) -> bool:
    from api.epcis.graph import NotFound, resolve_node
    from api.errors import UnprocessableError

    try:
        resolve_node(session, identifier)
    except (UnprocessableError, NotFound):
        return False
    return True
