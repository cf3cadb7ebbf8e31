"""The anchoring worker as its own OS process: ``python -m api.anchoring.service``.

Same settings (environment) as the API. It competes for the same database-wide anchoring lease as the
API processes (:mod:`api.anchoring.lease`), so running it beside API workers is always safe; run the API with
``TRACELEDGER_ANCHORING_ENABLED=false`` to leave anchoring to this process alone. Why: an API process
that also anchors shares one interpreter lock between request threads and the anchoring thread, so
under heavy ingest the batches wait for CPU; a process of its own gets its own share of the cores
(``traceledger bench`` uses this, see ``Stack(anchoring_process=True)``).

The chain-event indexer (:mod:`api.chain_index`) runs here too, writing while this process holds the lease.

Runs until SIGTERM / SIGINT; the current batch is finished first. Exit code 0 on a clean stop.
"""

from __future__ import annotations

import logging
import signal
import threading

from api.anchoring.lease import serialized
from api.anchoring.worker import AnchoringWorker
from api.bootstrap import ensure_service_enterprise
from api.db import init_db, make_engine
from api.main import build_chain, build_indexer
from api.security import KeyCache
from api.settings import Settings

log = logging.getLogger("traceledger.anchoring_service")


def run(settings: Settings, stop: threading.Event) -> None:
    """Anchor until ``stop`` is set (tables and the operator enterprise are created if missing)."""
    engine = make_engine(settings)
    serialized(engine, init_db, engine)
    serialized(engine, ensure_service_enterprise, engine, settings)
    chain = build_chain(settings)
    if chain is None:
        raise SystemExit("TRACELEDGER_RPC_URL (and the registry addresses) are required for anchoring")
    worker = AnchoringWorker(engine=engine, settings=settings, chain=chain, keys=KeyCache())
    worker.start()
    indexer = build_indexer(engine, settings, chain, worker)  # the chain-event index, while we hold the lease
    if indexer is not None:
        indexer.start()
    log.info("anchoring service started")
    try:
        stop.wait()
    finally:
        if indexer is not None:
            indexer.stop()
        worker.stop()
        engine.dispose()


def main() -> int:
    """Entry point: run with the environment's settings until SIGTERM / SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(Settings(), stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
