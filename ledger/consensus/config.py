"""QBFT parameters: quorum sizes and round timeouts.

Quorum follows the EEA QBFT specification / Besu ``BftHelpers.calculateRequiredValidatorQuorum``:
``ceil(2n/3)`` written as ``(2n - 1) // 3 + 1``, so any two quorums intersect in at least ``f + 1``
validators where ``f = (n - 1) // 3`` is the number of Byzantine validators tolerated.
"""

from __future__ import annotations

from dataclasses import dataclass

from provenance.qbft_header import quorum  # the one quorum() of the repo (re-exported here)

__all__ = ["QbftConfig", "max_faulty", "quorum"]


def max_faulty(n: int) -> int:
    """Maximum number ``f`` of Byzantine validators tolerated among ``n`` validators: ``(n - 1) // 3``."""
    if n < 1:
        raise ValueError(f"validator count must be >= 1, got {n}")
    return (n - 1) // 3


@dataclass(frozen=True)
class QbftConfig:
    """Timing configuration of the consensus core (seconds).

    ``request_timeout_s`` is the round-0 timeout; each later round doubles it (Besu
    ``RoundTimer``: ``requestTimeout * 2^round``), capped at ``max_round_timeout_s``. The cap does not
    cost liveness: rounds are kept in step by the quorum-gated round exit of the state machine (see
    "Round synchronisation" in :mod:`ledger.consensus.statemachine`), not by ever-growing timeouts.
    """

    request_timeout_s: float = 1.0
    max_round_timeout_s: float = 60.0

    def round_timeout(self, round: int) -> float:
        """Timeout in seconds of ``round`` (>= 0).

        ``min(request_timeout_s * 2**round, max_round_timeout_s)``.
        """
        if round < 0:
            raise ValueError(f"round must be >= 0, got {round}")
        if round >= 64:  # avoid huge integers; 2**64 * any positive timeout exceeds any sane cap
            return self.max_round_timeout_s
        return min(self.request_timeout_s * (2**round), self.max_round_timeout_s)
