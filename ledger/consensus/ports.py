"""The block port: what the consensus core needs from the chain (implemented by the node over py-evm)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class BlockPort(Protocol):
    """Chain access used by :class:`~ledger.consensus.statemachine.QbftStateMachine`.

    All addresses are 20-byte canonical addresses; all digests/hashes are 32 bytes. Calls must be
    deterministic for a given chain state; the state machine calls them synchronously from ``handle``.
    """

    def validators(self, height: int) -> Sequence[bytes]:
        """Validator addresses (20 bytes each), sorted ascending, that decide block ``height``."""
        ...

    def previous_proposer(self, height: int) -> bytes | None:
        """Proposer (coinbase, 20 bytes) of block ``height - 1``; ``None`` when ``height - 1`` is genesis."""
        ...

    def validate_block(self, height: int, proposer: bytes, block: bytes) -> bytes:
        """Fully validate the encoded ``block`` proposed for ``height`` by ``proposer`` (parent, number,
        coinbase == proposer, execution) and return its 32-byte digest (block hash excluding round and
        commit seals). Raises :class:`~ledger.consensus.errors.InvalidBlock`."""
        ...

    def block_digest(self, block: bytes) -> bytes:
        """32-byte digest of an encoded block, without validation (used for re-proposed prepared blocks)."""
        ...

    def seal_hash(self, block: bytes, round: int) -> bytes:
        """32-byte hash signed by a commit seal: the block header including ``round``, excluding seals."""
        ...
