"""Every in-process cache is bounded (issue 12): LRU eviction, hit/miss metrics, sizes from settings."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api.caches import BoundedCache
from api.main import create_app
from api.qr import cached_qr
from api.security import KeyCache
from api.verification import SealCache
from tests.api.conftest import auth, make_settings, sample


def test_lru_bound_eviction_and_counts() -> None:
    cache: BoundedCache[int] = BoundedCache("test_lru", 3)
    for i in range(10):
        cache[i] = i
    assert len(cache) == 3 and 9 in cache and 0 not in cache
    assert cache.get(8) == 8  # hit; 8 is now most recently used
    cache[10] = 10  # evicts 7, the least recently used
    assert 7 not in cache and 8 in cache
    assert cache.get(0) is None
    assert (cache.hits, cache.misses) == (1, 1)
    with pytest.raises(ValueError):
        BoundedCache("bad", 0)


def test_qr_cache_stays_bounded_over_many_identifiers() -> None:
    """The resolver's QR cache: 500 distinct identifiers × 2 formats through a 50-entry cache."""
    cache: BoundedCache[bytes] = BoundedCache("test_qr", 50)
    for i in range(250):
        for fmt in ("png", "svg"):
            assert cached_qr(cache, f"https://trace.example/id/88.1.1%2Fcoil-{i}", fmt)
    assert len(cache) == 50


def test_seal_and_anchor_caches_are_bounded() -> None:
    seals = SealCache(verdicts=4, anchors=4)
    for i in range(100):
        seals.put((i, f"0x{i:064x}"), object())  # type: ignore[arg-type]
        seals.put_anchor(i.to_bytes(32, "big"), object())
    assert len(seals._data) == 4 and len(seals._anchors) == 4
    assert seals.get((99, f"0x{99:064x}")) is not None and seals.get((0, f"0x{0:064x}")) is None
    assert seals.anchor((99).to_bytes(32, "big")) is not None and seals.anchor(bytes(32)) is None


def test_key_cache_is_bounded() -> None:
    assert KeyCache(maxsize=8)._keys.maxsize == 8


def test_app_uses_settings_sizes_and_reports_metrics(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, qr_cache_entries=1, seal_cache_entries=7, anchor_cache_entries=9)
    with TestClient(create_app(settings)) as client:
        state = client.app.state.tl
        assert state.qr_cache.maxsize == 1
        assert state.seal_cache._data.maxsize == 7 and state.seal_cache._anchors.maxsize == 9
        ent = client.post("/v1/enterprises", json={"name": "Mill", "roles": ["manufacturer"]},
                          headers={"Authorization": "Bearer gov-token-for-tests"}).json()
        ident = client.post("/v1/coils/certificates", json=sample(), headers=auth(ent["api_key"])).json()["identifier"]
        q = quote(ident, safe="/")
        for path in ("qr.png", "qr.png", "qr.svg", "qr.png"):
            assert client.get(f"/v1/identifiers/{q}/{path}").status_code == 200
        assert len(state.qr_cache) == 1
        assert (state.qr_cache.hits, state.qr_cache.misses) == (1, 3)
        metrics = client.get("/metrics").text
        assert 'traceledger_cache_hits_total{cache="qr_images"}' in metrics
        assert 'traceledger_cache_evictions_total{cache="qr_images"}' in metrics


