"""Durable key-value storage for py-evm: an ``AtomicDatabaseAPI`` on LMDB.

py-evm ships only an in-memory backend. Each validator keeps its chain (headers, bodies,
receipts, state trie nodes, and our commit seals) in one LMDB environment in its data directory.
Every ``atomic_batch`` is one LMDB write transaction, committed with ``fsync`` before it returns,
so a block that py-evm persisted survives a crash (SIGKILL, power loss) as a whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lmdb
from eth.abc import AtomicWriteBatchAPI
from eth.db.atomic import AtomicDBWriteBatch
from eth.db.backends.base import BaseAtomicDB

#: Upper bound of the memory map (bytes); LMDB files are sparse, so this reserves address space only.
DEFAULT_MAP_SIZE = 64 * 1024**3


class LmdbAtomicDB(BaseAtomicDB):
    """py-evm ``AtomicDatabaseAPI`` stored in an LMDB environment at ``path`` (a directory).

    Keys and values are ``bytes``. Reads see committed data; a missing key raises ``KeyError``.
    Opening the same directory from two processes at once is refused by LMDB's lock file semantics
    only for writers racing; one node process owns one data directory.
    """

    def __init__(self, path: str | Path, map_size: int = DEFAULT_MAP_SIZE) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        self._env = lmdb.open(str(path), map_size=map_size, sync=True, metasync=True, max_dbs=0)

    def close(self) -> None:
        """Close the environment (flushes nothing: every commit was already synced)."""
        self._env.close()

    def __getitem__(self, key: bytes) -> bytes:
        with self._env.begin(buffers=False) as txn:
            value = txn.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        with self._env.begin(write=True) as txn:
            txn.put(key, value)

    def __delitem__(self, key: bytes) -> None:
        with self._env.begin(write=True) as txn:
            if not txn.delete(key):
                raise KeyError(key)

    def _exists(self, key: bytes) -> bool:
        with self._env.begin() as txn:
            return txn.get(key) is not None

    @contextmanager
    def atomic_batch(self) -> Iterator[AtomicWriteBatchAPI]:
        """Collect writes in memory; commit them in one synced LMDB transaction unless the body raises."""
        batch = AtomicDBWriteBatch(self)
        try:
            yield batch
            diff = batch._diff()
            with self._env.begin(write=True) as txn:
                for key in diff.deleted_keys():
                    txn.delete(key)
                for key, value in diff.pending_items():
                    txn.put(key, value)
        finally:
            batch._track_diff = None
            batch._write_target_db = None

    def put_many(self, items: dict[bytes, bytes]) -> None:
        """Write several keys in one synced transaction (used for commit seals next to a block)."""
        with self._env.begin(write=True) as txn:
            for key, value in items.items():
                txn.put(key, value)
