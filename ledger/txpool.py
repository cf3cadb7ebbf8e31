"""Pending transactions of a node, ordered per sender by nonce.

A proposer takes, for each sender, the run of consecutive nonces starting at the sender's account
nonce in the head state, while the block gas limit and a per-block count cap allow. Transactions
whose nonce fell below the account nonce (included in a block) are evicted after each commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from eth.abc import SignedTransactionAPI

#: Transactions per block at most (py-evm builds ~300-700 simple tx/s; keeps a block under ~1 s).
DEFAULT_MAX_BLOCK_TXS = 500
#: Pending transactions a node keeps at most; beyond it new ones are refused ("txpool is full").
DEFAULT_MAX_POOL = 20_000


class PoolFull(Exception):
    """The pool holds ``max_pool`` transactions already."""


@dataclass
class TxPool:
    """In-memory pool of signed, already validated transactions, keyed by ``(sender, nonce)``."""

    max_pool: int = DEFAULT_MAX_POOL
    by_sender: dict[bytes, dict[int, SignedTransactionAPI]] = field(default_factory=dict)
    by_hash: dict[bytes, SignedTransactionAPI] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.by_hash)

    def add(self, tx: SignedTransactionAPI) -> bool:
        """Add ``tx``; False if already known. A same-nonce transaction of the sender is replaced."""
        if tx.hash in self.by_hash:
            return False
        queue = self.by_sender.get(tx.sender, {})
        if len(self.by_hash) >= self.max_pool and tx.nonce not in queue:
            raise PoolFull(f"txpool is full ({self.max_pool} pending transactions)")
        queue = self.by_sender.setdefault(tx.sender, {})
        old = queue.get(tx.nonce)
        if old is not None:
            self.by_hash.pop(old.hash, None)
        queue[tx.nonce] = tx
        self.by_hash[tx.hash] = tx
        return True

    def next_nonce(self, sender: bytes, account_nonce: int) -> int:
        """The nonce a new transaction of ``sender`` should use, counting pending ones (``"pending"`` tag)."""
        queue = self.by_sender.get(sender, {})
        nonce = account_nonce
        while nonce in queue:
            nonce += 1
        return nonce

    def select(
        self, account_nonce: Callable[[bytes], int], gas_limit: int, max_txs: int = DEFAULT_MAX_BLOCK_TXS,
    ) -> list[SignedTransactionAPI]:
        """Executable transactions for the next block: per sender consecutive nonces, within gas and count."""
        chosen: list[SignedTransactionAPI] = []
        gas_left = gas_limit
        for sender, queue in list(self.by_sender.items()):
            nonce = account_nonce(sender)
            while nonce in queue and len(chosen) < max_txs:
                tx = queue[nonce]
                if tx.gas > gas_left:
                    break
                chosen.append(tx)
                gas_left -= tx.gas
                nonce += 1
            if len(chosen) >= max_txs:
                break
        return chosen

    def remove(self, tx: SignedTransactionAPI) -> None:
        """Forget ``tx`` (e.g. it cannot execute)."""
        self.by_hash.pop(tx.hash, None)
        queue = self.by_sender.get(tx.sender)
        if queue is not None and queue.get(tx.nonce) is tx:
            del queue[tx.nonce]
            if not queue:
                del self.by_sender[tx.sender]

    def evict_below(self, account_nonce: Callable[[bytes], int]) -> int:
        """Drop transactions whose nonce is below the sender's account nonce; returns how many."""
        dropped = 0
        for sender in list(self.by_sender):
            queue = self.by_sender[sender]
            floor = account_nonce(sender)
            for nonce in [n for n in queue if n < floor]:
                self.by_hash.pop(queue.pop(nonce).hash, None)
                dropped += 1
            if not queue:
                del self.by_sender[sender]
        return dropped
