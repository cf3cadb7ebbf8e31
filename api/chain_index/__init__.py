"""Chain facts indexed for banks and tickets: the final blocks' ReceivableToken and WorkTicket events in tables.

* :mod:`api.chain_index.indexer` -- :class:`ChainIndexer`: follows final blocks (QBFT, or
  ``confirmations:N``), resumes from its cursor, writes each log once; runs beside the anchoring worker.
* :mod:`api.chain_index.handlers` -- one handler per (contract, event) in :data:`INDEXED_CONTRACTS`.
* :mod:`api.chain_index.models` -- the cursor, the indexed logs and the fact tables.
* :mod:`api.chain_index.reads` -- what the routes read: token chains and ticket histories, and the
  bank check's one-round-trip confirmation on chain.
"""

from api.chain_index.handlers import INDEXED_CONTRACTS, ChainEvent, IndexedContract, IndexInconsistent
from api.chain_index.indexer import ChainIndexer, IndexHalted, apply_events, final_head

__all__ = [
    "INDEXED_CONTRACTS",
    "ChainEvent",
    "ChainIndexer",
    "IndexHalted",
    "IndexInconsistent",
    "IndexedContract",
    "apply_events",
    "final_head",
]
