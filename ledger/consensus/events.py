"""Inputs (events) and outputs (actions) of the QBFT state machine. All are frozen dataclasses.

The node feeds events to ``QbftStateMachine.handle`` and executes the returned actions in order.
"""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Start:
    """Begin consensus for ``height`` at round 0. Sent at startup (height = head + 1) and after the node
    imported the block of a ``BlockCommitted`` (or any block obtained by sync). Lower or equal heights than
    the current one are ignored."""

    height: int


@dataclass(frozen=True)
class MessageReceived:
    """A raw wire message (1 code byte + RLP) received from a peer."""

    raw: bytes


@dataclass(frozen=True)
class BlockCreated:
    """Answer to :class:`CreateBlock`: the encoded block the node built for (height, round)."""

    height: int
    round: int
    block: bytes


@dataclass(frozen=True)
class RoundTimerExpired:
    """The timer started by :class:`StartRoundTimer` for (height, round, attempt) fired. Stale timers (another
    height, round or attempt) are ignored. ``attempt`` counts the timer restarts within one round while the
    node waits for a quorum to reach it (see the module docstring of :mod:`ledger.consensus.statemachine`)."""

    height: int
    round: int
    attempt: int = 0


@dataclass(frozen=True)
class Restore:
    """Feed once at process start, before the first :class:`Start`, with the last ``record`` of a
    :class:`PersistRoundState` this validator wrote. It takes effect at ``Start(height)`` of the recorded
    height: the node resumes in the recorded round, keeps its prepared certificate (carried in its
    ROUND-CHANGEs) and never PREPAREs another block in a round it already voted in. A record for another
    height, or one that does not decode, is ignored."""

    record: bytes


Event = Start | MessageReceived | BlockCreated | RoundTimerExpired | Restore

# -------------------------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Broadcast:
    """Send ``raw`` (1 code byte + RLP) to every other validator. The state machine already processed its
    own copy; the transport must not loop it back (a looped-back copy is dropped as a duplicate)."""

    raw: bytes


@dataclass(frozen=True)
class CreateBlock:
    """We are the proposer of (height, round) and no prepared block must be re-proposed: build a new block
    on the current head (respecting the block period, coinbase = our address) and feed ``BlockCreated``."""

    height: int
    round: int


@dataclass(frozen=True)
class StartRoundTimer:
    """(Re)start the round timer: after ``seconds`` feed ``RoundTimerExpired(height, round, attempt)``. A new
    timer supersedes older ones (older ones may still fire; they are ignored)."""

    height: int
    round: int
    seconds: float
    attempt: int = 0


@dataclass(frozen=True)
class BlockCommitted:
    """Block ``height`` is final. ``digest`` is its 32-byte digest, ``seals`` the 65-byte commit seals
    (r||s||v over ``seal_hash(block, round)``) ordered by the signers' order in ``validators(height)``;
    at least a quorum. Emitted exactly once per height; import the block (with round and seals in its
    header) and then feed ``Start(height + 1)``."""

    height: int
    round: int
    block: bytes
    digest: bytes
    seals: tuple[bytes, ...]


@dataclass(frozen=True)
class Dropped:
    """A message was refused (bad encoding/signature, not a validator, wrong height/round, duplicate,
    invalid block or justification...). ``author`` is the 20-byte signer when known. Metrics/logging only."""

    reason: str
    author: bytes | None


@dataclass(frozen=True)
class Evidence:
    """Equivocation: ``first`` and ``second`` are two raw messages signed by the same validator for the same
    height, round and type with different contents. ``kind`` is "proposal", "prepare" or "commit"."""

    kind: str
    first: bytes
    second: bytes


@dataclass(frozen=True)
class RoundFailed:
    """Summary of a round timer that expired without a decision (the round is left, or, while no quorum
    reached it yet, kept and its ROUND-CHANGE re-sent): its proposer and the validators (excluding us)
    from which no valid message of that round was received."""

    height: int
    round: int
    proposer: bytes
    missing: tuple[bytes, ...]


@dataclass(frozen=True)
class PersistRoundState:
    """Write ``record`` durably (write, fsync, atomic rename) **before** executing the next action: it is
    emitted before every ROUND-CHANGE for a new round, every PREPARE and every COMMIT this validator sends,
    so that after a crash it can be fed back as :class:`Restore` and the validator never contradicts a vote
    it sent (the prepared certificate is what makes QBFT safe across round changes). ``record`` is opaque:
    RLP ``[height, round, [[round, digest32], ...], [] | [prepared_round, block, [prepare messages]]]``."""

    height: int
    record: bytes


Action = (
    PersistRoundState | Broadcast | CreateBlock | StartRoundTimer | BlockCommitted | Dropped | Evidence | RoundFailed
)
