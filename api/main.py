"""App factory: ``create_app(settings)``; module-level ``app`` for ``uvicorn api.main:app``."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import make_url
from starlette.concurrency import run_in_threadpool

from api import audit as audit_routes
from api import dashboard
from api.anchoring import AnchoringWorker, serialized
from api.asgi import RequestCounter
from api.audit import AuditMiddleware, AuditWriter
from api.bootstrap import ensure_service_enterprise, ensure_service_registered
from api.caches import BoundedCache
from api.chain import ChainClient
from api.db import init_db, make_engine
from api.docs_offline import install_offline_docs
from api.errors import install_handlers
from api.group_commit import GroupCommitter
from api.json_reader import StrictJsonBody
from api.openapi_docs import install_openapi_docs
from api.rate_limits import WriteRateLimit
from api.read_cache import ReadCache
from api.routes import bulk as bulk_routes
from api.routes import (
    certificates,
    enterprises,
    health,
    identifiers,
    pages,
    persons,
    receivables,
    verify,
    work_tickets,
)
from api.routes import digital_link as digital_link_routes
from api.routes import epcis as epcis_routes
from api.routes import epcis_rest as epcis_rest_routes
from api.routes import handle as handle_routes
from api.routes import lineage as lineage_routes
from api.routes import network as network_routes
from api.routes import price_index as price_index_routes
from api.routes import sm2_keys as sm2_key_routes
from api.routes import warehouse_receipts as warehouse_receipt_routes
from api.security import KeyCache
from api.settings import Settings, get_settings, loopback_base_url_warning
from api.state import AppState
from api.verification import SealCache
from provenance.strict_json import JsonLimits

log = logging.getLogger(__name__)


def build_chain(settings: Settings) -> ChainClient | None:
    """ChainClient for ``settings.rpc_endpoints`` (``TRACELEDGER_RPC_URLS``, else ``TRACELEDGER_RPC_URL``; several
    mean failover, :mod:`api.rpc_failover`; registries optional), or None without an RPC URL."""
    if not settings.rpc_endpoints:
        return None
    chain = ChainClient.from_url(
        settings.rpc_endpoints,
        enterprise_registry=settings.enterprise_registry_address,
        anchor_registry=settings.anchor_registry_address,
        timeout_s=settings.rpc_timeout_s,
        receipt_timeout_s=settings.receipt_timeout_s,
    )
    chain.finality = settings.finality
    return chain


def build_indexer(engine: Any, settings: Settings, chain: ChainClient | None, worker: AnchoringWorker) -> Any:
    """The chain-event indexer (:mod:`api.chain_index`) writing while ``worker`` holds the anchoring lease, or
    None without a chain, with ``TRACELEDGER_CHAIN_INDEX_ENABLED=false`` or without an indexed contract address."""
    if chain is None or not settings.chain_index_enabled:
        return None
    from api.chain_index import ChainIndexer

    indexer = ChainIndexer(engine=engine, settings=settings, chain=chain, is_leader=lambda: worker.is_leader)
    return indexer if indexer.contracts else None


def group_commit_wanted(settings: Settings) -> bool:
    """``TRACELEDGER_GROUP_COMMIT`` when set; else on for SQLite, off for PostgreSQL (api/group_commit.py)."""
    if settings.group_commit is not None:
        return settings.group_commit
    return make_url(settings.sqlalchemy_url).get_backend_name() == "sqlite"


def create_app(settings: Settings | None = None, *, chain: ChainClient | None = None) -> FastAPI:
    """Build the FastAPI app.

    ``chain`` overrides the client built from ``settings.rpc_url`` (tests pass any Web3 provider).
    Startup (lifespan): upgrade the schema to the newest migration (:mod:`api.migrations`); create the
    operator key; when the chain is configured, register/fund the operator (errors are reported in
    /healthz and retried by the worker);
    start the anchoring worker when ``anchoring_enabled``. Shutdown stops the worker.
    """
    settings = settings or get_settings()
    engine = make_engine(settings)
    chain = chain if chain is not None else build_chain(settings)
    keys = KeyCache(settings.key_cache_entries)
    worker = AnchoringWorker(engine=engine, settings=settings, chain=chain, keys=keys)
    seal_cache = SealCache(settings.seal_cache_entries, settings.anchor_cache_entries, settings.hash_alg)
    state = AppState(settings=settings, engine=engine, chain=chain, keys=keys, seal_cache=seal_cache, worker=worker,
                     qr_cache=BoundedCache("qr_images", settings.qr_cache_entries),
                     reads=ReadCache(settings.read_cache_entries, settings.read_cache_ttl_s,
                                     settings.read_cache_poll_s),
                     commits=GroupCommitter(engine) if group_commit_wanted(settings) else None)
    state.indexer = build_indexer(engine, settings, chain, worker)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if warning := loopback_base_url_warning(settings.public_base_url):
            log.warning(warning)
        # several uvicorn workers start together: schema migration and bootstrap run one process at a time
        await run_in_threadpool(serialized, engine, init_db, engine)
        if settings.bootstrap_enabled:
            await run_in_threadpool(serialized, engine, ensure_service_enterprise, engine, settings)
            if chain is not None and chain.enterprise_registry is not None:
                try:
                    await run_in_threadpool(serialized, engine, ensure_service_registered, engine, settings, chain)
                except Exception as exc:  # noqa: BLE001 - the API still serves reads
                    state.bootstrap_error = f"bootstrap: {exc}"
                    log.warning("operator bootstrap failed (worker will retry): %s", exc)
        if chain is not None and settings.warehouse_receipt_address:
            try:  # a delivery whose shipping event a crash left uncaptured (api/routes/warehouse_receipts.py)
                await run_in_threadpool(warehouse_receipt_routes.finish_pending_deliveries_of, engine, state)
            except Exception as exc:  # noqa: BLE001 - retried at the next read of that receipt
                log.warning("pending warehouse-receipt deliveries not finished: %s", exc)
        if settings.anchoring_enabled and chain is not None:
            worker.start()
            if state.indexer is not None:  # writes only while this process holds the anchoring lease
                state.indexer.start()
        state.reads.start_poller(engine)  # other processes' replacements reach this process's read cache
        # The start-up heap (modules, app, ORM metadata, contract ABIs: hundreds of thousands of objects) never
        # becomes garbage; frozen, the cyclic GC's full collections no longer walk it. Bulk ingest allocates
        # enough to trigger them every document: ~30-45 µs of CPU per captured event went to walking this heap.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # several apps in one process (tests): what this one held becomes collectable again
            if state.indexer is not None:
                state.indexer.stop()
            state.reads.stop()
            if state.commits is not None:
                state.commits.stop()
            worker.stop()
            audit.close()
            engine.dispose()

    app = FastAPI(
        docs_url=None,  # /docs and /redoc without a CDN: install_offline_docs below
        redoc_url=None,
        title="TraceLedger API",
        version="0.1.0",
        description="Steel-coil certificate ingestion, Handle-style identifiers, anchoring and verification.",
        lifespan=lifespan,
    )
    app.state.tl = state
    install_handlers(app)
    install_offline_docs(app)  # Swagger UI + ReDoc assets from the fastapi-offline package, with a self-only CSP
    install_openapi_docs(app)  # Bearer scheme described, an example per request body, every schema documented

    audit = AuditWriter(engine)
    app.add_middleware(AuditMiddleware, writer=audit)  # innermost: sees the authenticated caller and the status
    app.add_middleware(StrictJsonBody, max_body_bytes=settings.max_body_bytes, limits=JsonLimits(
        max_depth=settings.json_max_depth, max_string_chars=settings.json_max_string_chars,
        max_array_items=settings.json_max_array_items))  # every write body: bounded read, strict parse
    app.add_middleware(WriteRateLimit, limit=settings.write_rate_limit)  # per API key, before the body is read
    app.add_middleware(RequestCounter)  # pure ASGI: request counts by route template, method and status

    for module in (enterprises, certificates, identifiers, verify, pages, health, persons, work_tickets, receivables):
        app.include_router(module.router)
    # standards bindings (issue 10): Handle REST API at /api/handles/…
    app.include_router(handle_routes.router)
    app.include_router(digital_link_routes.router)  # GS1 Digital Link resolver: /01/…, /00/…, /414/…
    app.include_router(epcis_rest_routes.router)  # EPCIS 2.0 REST binding: /capture, /events, /epcs, …
    app.include_router(bulk_routes.router)  # POST /v1/coils/certificates/batch
    app.include_router(epcis_routes.router)
    app.include_router(lineage_routes.router)
    app.include_router(network_routes.router)  # GET /v1/network
    app.include_router(dashboard.router)  # GET /dashboard: the operator's page (api/dashboard.py)
    app.include_router(audit_routes.router)
    app.include_router(warehouse_receipt_routes.router)  # /v1/warehouse-receipts (issue 15)
    app.include_router(price_index_routes.router)  # /v1/price-index: daily prices per grade (PriceIndex)
    app.include_router(sm2_key_routes.router)  # /v1/enterprises/{id}/sm2-key, /v1/persons/{id}/sm2-key
    return app


app = create_app()
