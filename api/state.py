"""Per-app runtime state (engine, chain client, caches, worker), kept on ``app.state.tl``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from api.anchoring import AnchoringWorker
from api.caches import BoundedCache
from api.chain import ChainClient, ChainUnavailable
from api.group_commit import GroupCommitter
from api.read_cache import ReadCache
from api.security import KeyCache
from api.settings import Settings
from api.verification import SealCache


@dataclass
class AppState:
    """Everything a request handler needs besides its DB session."""

    settings: Settings
    engine: Engine
    chain: ChainClient | None
    keys: KeyCache
    seal_cache: SealCache
    worker: AnchoringWorker
    qr_cache: BoundedCache[bytes] = field(default_factory=lambda: BoundedCache("qr_images", 10_000))
    reads: ReadCache = field(default_factory=ReadCache)
    commits: GroupCommitter | None = None  # single-record writes share one durable commit (api/group_commit.py)
    bootstrap_error: str | None = None
    #: the chain-event indexer (api.chain_index.ChainIndexer) when the chain and an indexed contract are set
    indexer: Any = None
    _chain_id: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def chain_id(self) -> int:
        """EIP-155 chain id for EIP-712 domains: ``settings.chain_id`` or the RPC's (cached).

        Raises ChainUnavailable when neither is available.
        """
        if self.settings.chain_id is not None:
            return self.settings.chain_id
        with self._lock:
            if self._chain_id is None:
                if self.chain is None:
                    raise ChainUnavailable("chain id unknown: set TRACELEDGER_CHAIN_ID or TRACELEDGER_RPC_URL")
                self._chain_id = self.chain.chain_id()
            return self._chain_id
