"""TxPool: per-sender nonce queues, block selection, replacement and eviction."""

from __future__ import annotations

import pytest

from ledger.txpool import PoolFull, TxPool
from tests.ledger.helpers import FUNDED, FUNDED_KEY, POOR, POOR_KEY, STRANGER_KEY, sign_tx


def nonces(txs):
    return [(tx.sender, tx.nonce) for tx in txs]


def fixed(nonce_by_sender: dict[bytes, int]):
    return lambda sender: nonce_by_sender.get(sender, 0)


def test_add_and_duplicate():
    pool = TxPool()
    tx = sign_tx(FUNDED_KEY, 0)
    assert pool.add(tx) is True
    assert pool.add(tx) is False
    assert len(pool) == 1
    assert pool.by_hash[tx.hash] is tx


def test_select_consecutive_nonces_only():
    pool = TxPool()
    for n in (0, 1, 3, 4):
        pool.add(sign_tx(FUNDED_KEY, n))
    assert nonces(pool.select(fixed({}), 10_000_000)) == [(FUNDED, 0), (FUNDED, 1)]
    # starting from the account nonce, not from the lowest pending one
    assert nonces(pool.select(fixed({FUNDED: 1}), 10_000_000)) == [(FUNDED, 1)]
    assert nonces(pool.select(fixed({FUNDED: 3}), 10_000_000)) == [(FUNDED, 3), (FUNDED, 4)]
    assert pool.select(fixed({FUNDED: 2}), 10_000_000) == []


def test_select_orders_by_nonce_whatever_the_arrival_order():
    pool = TxPool()
    for n in (2, 0, 1):
        pool.add(sign_tx(FUNDED_KEY, n))
    assert [tx.nonce for tx in pool.select(fixed({}), 10_000_000)] == [0, 1, 2]


def test_select_several_senders():
    pool = TxPool()
    for n in range(3):
        pool.add(sign_tx(FUNDED_KEY, n))
    for n in (5, 6):
        pool.add(sign_tx(POOR_KEY, n))
    chosen = pool.select(fixed({POOR: 5}), 10_000_000)
    assert sorted(nonces(chosen)) == sorted([(FUNDED, 0), (FUNDED, 1), (FUNDED, 2), (POOR, 5), (POOR, 6)])


def test_select_respects_gas_limit():
    pool = TxPool()
    for n in range(3):
        pool.add(sign_tx(FUNDED_KEY, n))
    assert len(pool.select(fixed({}), 21_000 * 3)) == 3
    assert len(pool.select(fixed({}), 21_000 * 3 - 1)) == 2
    assert len(pool.select(fixed({}), 21_000)) == 1
    assert pool.select(fixed({}), 20_999) == []


def test_select_gas_limit_stops_sender_but_not_others():
    pool = TxPool()
    pool.add(sign_tx(FUNDED_KEY, 0, gas=100_000))
    pool.add(sign_tx(POOR_KEY, 0))
    chosen = pool.select(fixed({}), 50_000)
    assert nonces(chosen) == [(POOR, 0)]
    assert sum(tx.gas for tx in chosen) <= 50_000


def test_select_respects_max_txs():
    pool = TxPool()
    for n in range(5):
        pool.add(sign_tx(FUNDED_KEY, n))
    for n in range(5):
        pool.add(sign_tx(POOR_KEY, n))
    assert len(pool.select(fixed({}), 10_000_000, max_txs=3)) == 3
    assert len(pool.select(fixed({}), 10_000_000, max_txs=7)) == 7
    assert len(pool.select(fixed({}), 10_000_000)) == 10
    # selection does not remove anything
    assert len(pool) == 10


def test_replacement_of_same_nonce():
    pool = TxPool()
    first = sign_tx(FUNDED_KEY, 0, value=1)
    second = sign_tx(FUNDED_KEY, 0, value=2)
    assert pool.add(first) and pool.add(second)
    assert len(pool) == 1
    assert first.hash not in pool.by_hash
    assert pool.by_hash[second.hash] is second
    assert [tx.hash for tx in pool.select(fixed({}), 10_000_000)] == [second.hash]


def test_next_nonce():
    pool = TxPool()
    assert pool.next_nonce(FUNDED, 0) == 0
    assert pool.next_nonce(FUNDED, 7) == 7
    for n in (0, 1, 3):
        pool.add(sign_tx(FUNDED_KEY, n))
    assert pool.next_nonce(FUNDED, 0) == 2
    assert pool.next_nonce(FUNDED, 3) == 4
    assert pool.next_nonce(FUNDED, 5) == 5
    assert pool.next_nonce(POOR, 4) == 4


def test_evict_below():
    pool = TxPool()
    for n in range(4):
        pool.add(sign_tx(FUNDED_KEY, n))
    pool.add(sign_tx(POOR_KEY, 0))
    assert pool.evict_below(fixed({FUNDED: 2, POOR: 1})) == 3
    assert len(pool) == 2
    assert sorted(pool.by_sender[FUNDED]) == [2, 3]
    assert POOR not in pool.by_sender
    assert {tx.nonce for tx in pool.by_hash.values()} == {2, 3}
    assert pool.evict_below(fixed({FUNDED: 2})) == 0
    assert pool.evict_below(fixed({FUNDED: 10})) == 2
    assert len(pool) == 0 and pool.by_sender == {}


def test_remove():
    pool = TxPool()
    a, b = sign_tx(FUNDED_KEY, 0), sign_tx(FUNDED_KEY, 1)
    pool.add(a)
    pool.add(b)
    pool.remove(a)
    assert len(pool) == 1 and a.hash not in pool.by_hash
    assert pool.select(fixed({}), 10_000_000) == []  # nonce 0 is gone: 1 is not executable
    pool.remove(b)
    assert len(pool) == 0 and pool.by_sender == {}
    pool.remove(b)  # removing an unknown transaction is harmless


def test_pool_full():
    pool = TxPool(max_pool=2)
    pool.add(sign_tx(FUNDED_KEY, 0))
    pool.add(sign_tx(POOR_KEY, 0))
    with pytest.raises(PoolFull, match="full"):
        pool.add(sign_tx(STRANGER_KEY, 0))
    assert len(pool) == 2
    # after space frees up, adding works again
    pool.evict_below(fixed({FUNDED: 1}))
    assert pool.add(sign_tx(STRANGER_KEY, 0))
    assert len(pool) == 2
