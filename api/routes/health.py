"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api import crud, metrics
from api.chain import ChainError, ChainUnavailable, with_retry
from api.chain_index.reads import indexed_block
from api.deps import SessionDep, StateDep
from api.models import utc_iso

router = APIRouter(tags=["ops"])


@router.get("/livez", response_class=PlainTextResponse)
async def livez() -> PlainTextResponse:
    """Liveness only: ``200 ok`` (text/plain) without touching the database, the chain or a thread pool.

    The benchmark's ceiling: what this machine serves through the same ASGI stack at all.
    """
    return PlainTextResponse("ok")


@router.get("/healthz")
def healthz(session: SessionDep, state: StateDep) -> JSONResponse:
    """Liveness/readiness: ``{status, db: {ok}, rpc: {configured, ok, block_number, error},
    anchoring: {enabled, alive, last_run, last_error}, chain_index: {enabled, alive, indexed_to_block,
    last_error}, bootstrap: {ok, error}, pending}``.

    503 when the database fails (``down``) or when the operator's on-chain bootstrap (registration,
    funding) failed and has not been repaired since (``degraded``, reason in ``bootstrap.error``)."""
    out: dict[str, Any] = {"status": "ok"}
    try:
        session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        pending = crud.count_pending(session)
        metrics.PENDING.set(pending)
        out["db"] = {"ok": True}
        out["pending"] = pending
    except Exception as exc:  # noqa: BLE001
        out["db"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out["status"] = "down"
        return JSONResponse(out, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    rpc: dict[str, Any] = {"configured": state.chain is not None}
    if state.chain is not None:
        try:
            rpc["block_number"] = with_retry(
                lambda: state.chain.w3.eth.block_number, what="eth_blockNumber", attempts=1
            )
            rpc["ok"] = True
        except (ChainUnavailable, ChainError) as exc:
            rpc["ok"] = False
            rpc["error"] = str(exc)
            out["status"] = "degraded"
    out["rpc"] = rpc
    w = state.worker
    out["anchoring"] = {
        "enabled": state.settings.anchoring_enabled,
        "alive": w.alive,
        # exactly one API process holds the database-wide anchoring lease (api.anchoring.lease)
        "leader": w.is_leader,
        "pid": os.getpid(),
        "last_run": utc_iso(w.last_run) if w.last_run else None,
        "last_error": w.last_error or state.bootstrap_error,
    }
    if state.settings.anchoring_enabled and state.chain is not None and not w.alive:
        out["status"] = "degraded"
    indexer = state.indexer  # the chain-event index (api.chain_index): its cursor, and its error where it runs
    out["chain_index"] = {"enabled": indexer is not None, "alive": bool(indexer and indexer.alive),
                          "indexed_to_block": indexed_block(session) if indexer is not None else None,
                          "last_error": indexer.last_error if indexer is not None else None}
    # a failed operator bootstrap (registration or funding on chain) that the worker has not repaired since:
    # the API cannot anchor, so load balancers and operators must see it (503 with the reason)
    bootstrap_failed = state.bootstrap_error is not None and not getattr(w, "bootstrapped", False)
    out["bootstrap"] = {"ok": not bootstrap_failed, "error": state.bootstrap_error if bootstrap_failed else None}
    if bootstrap_failed:
        out["status"] = "degraded"
        return JSONResponse(out, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    return JSONResponse(out)


@router.get("/metrics")
def prometheus_metrics() -> Response:
    """Prometheus text exposition of the process metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
