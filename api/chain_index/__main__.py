"""``python -m api.chain_index [--once [--until BLOCK]]``: the chain indexer alone, with the environment's settings.

Without ``--once`` it follows the chain until SIGTERM / SIGINT (the batch in progress is finished or, after
kill -9, redone from the cursor at the next start). Exit 0 on a clean stop, 1 when the index halted.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from api.anchoring.lease import serialized
from api.chain_index.indexer import ChainIndexer, IndexHalted
from api.db import init_db, make_engine
from api.main import build_chain
from api.settings import Settings


def main(argv: list[str] | None = None) -> int:
    """Entry point; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m api.chain_index")
    parser.add_argument("--once", action="store_true", help="index up to the final head, then exit")
    parser.add_argument("--until", type=int, default=None, help="with --once: stop at this block")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    engine = make_engine(settings)
    serialized(engine, init_db, engine)
    chain = build_chain(settings)
    if chain is None:
        print("TRACELEDGER_RPC_URL is required", file=sys.stderr)
        return 2
    indexer = ChainIndexer(engine=engine, settings=settings, chain=chain)
    if args.once:
        try:
            print(indexer.run_once(until=args.until))
        except IndexHalted as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: indexer.stop())
    indexer.start()
    while indexer.alive:
        indexer._stop.wait(1.0)  # noqa: SLF001 - the signal handler sets it
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
