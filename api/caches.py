"""Bounded in-process caches with hit/miss/eviction metrics (cachetools LRU behind a lock).

Every cache of the API process is one of these, so a resolver serving millions of identifiers keeps
a flat resident size: at most ``maxsize`` entries, least recently used evicted first. Sizes come from
settings (``TRACELEDGER_QR_CACHE_ENTRIES``, ``TRACELEDGER_SEAL_CACHE_ENTRIES``,
``TRACELEDGER_ANCHOR_CACHE_ENTRIES``, ``TRACELEDGER_KEY_CACHE_ENTRIES``).

Prometheus (``GET /metrics``): ``traceledger_cache_hits_total{cache}``,
``traceledger_cache_misses_total{cache}``, ``traceledger_cache_evictions_total{cache}``,
``traceledger_cache_entries{cache}``.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from cachetools import LRUCache
from prometheus_client import Counter, Gauge

HITS = Counter("traceledger_cache_hits_total", "In-process cache hits", ["cache"])
MISSES = Counter("traceledger_cache_misses_total", "In-process cache misses", ["cache"])
EVICTIONS = Counter("traceledger_cache_evictions_total", "In-process cache evictions (LRU)", ["cache"])
ENTRIES = Gauge("traceledger_cache_entries", "In-process cache entries", ["cache"])

V = TypeVar("V")


class _LRU(LRUCache):  # type: ignore[type-arg]
    def __init__(self, maxsize: int, on_evict: Any) -> None:
        super().__init__(maxsize)
        self._on_evict = on_evict

    def popitem(self) -> tuple[Any, Any]:
        item = super().popitem()
        self._on_evict()
        return item


class BoundedCache(Generic[V]):
    """Thread-safe LRU map of at most ``maxsize`` entries, named ``name`` in the metrics.

    Dict-like subset: ``get(key, default)``, ``cache[key] = value``, ``key in cache``, ``len(cache)``,
    ``pop(key, default)``, ``clear()``. ``get`` counts a hit or a miss.
    """

    def __init__(self, name: str, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"cache {name}: maxsize must be >= 1, got {maxsize}")
        self.name = name
        self.maxsize = maxsize
        self._hits = HITS.labels(name)
        self._misses = MISSES.labels(name)
        self._evictions = EVICTIONS.labels(name)
        self._entries = ENTRIES.labels(name)
        self._data = _LRU(maxsize, self._evictions.inc)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, default: Any = None) -> V | Any:
        """The cached value (now most recently used) or ``default``."""
        with self._lock:
            try:
                value = self._data[key]
            except KeyError:
                self.misses += 1
                self._misses.inc()
                return default
            self.hits += 1
            self._hits.inc()
            return value

    def __setitem__(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._entries.set(len(self._data))

    def __getitem__(self, key: Hashable) -> V:
        with self._lock:
            return self._data[key]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def pop(self, key: Hashable, default: Any = None) -> V | Any:
        with self._lock:
            value = self._data.pop(key, default)
            self._entries.set(len(self._data))
            return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._entries.set(0)
