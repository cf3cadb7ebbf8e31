"""Exceptions raised by the QBFT consensus core.

Every error the core raises or reports derives from :class:`ConsensusError`, so callers can catch one type.
The state machine itself never lets these escape from ``QbftStateMachine.handle``: a malformed or invalid
message becomes a ``Dropped`` action instead.
"""

from __future__ import annotations


class ConsensusError(Exception):
    """Base class of every consensus error."""


class InvalidMessage(ConsensusError):
    """A wire message is malformed: bad code byte, truncated/non-canonical RLP, wrong field types or
    lengths, or a signature from which no public key can be recovered."""


class InvalidBlock(ConsensusError):
    """Raised by ``BlockPort.validate_block`` when a proposed block fails validation (wrong parent, number,
    coinbase != proposer, failed execution...)."""
