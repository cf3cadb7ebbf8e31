"""Round-change robustness in the simulator: capped doubling timeouts while the network cannot decide,
rounds that do not inflate while no quorum is present (Rule G of the state machine), and a validator
that comes back joins the round the others are in instead of dragging them through rounds 1, 2, …
(no round-change storm)."""

from __future__ import annotations

import heapq

from ledger.consensus import QbftConfig, RoundChange, RoundFailed, Start, StartRoundTimer

from .sim import Sim


def advance(sim: Sim, until: float) -> None:
    """Deliver every queued event up to virtual time ``until`` (events for down nodes are lost)."""
    while sim._queue and sim._queue[0].time <= until:
        item = heapq.heappop(sim._queue)
        sim.now = item.time
        if item.node not in sim.down:
            sim.deliver(item.node, item.event)
    sim.now = until


def test_returning_validator_joins_the_current_round() -> None:
    config = QbftConfig(request_timeout_s=1.0, max_round_timeout_s=4.0)
    sim = Sim(4, down=[2, 3], config=config)
    sim.target = 1
    for i in (0, 1):
        sim.schedule(0.0, i, Start(1))
    advance(sim, 40.0)
    assert not any(sim.commits[i] for i in range(4)), "2 of 4 validators must not decide"
    # timeouts doubled from 1 s and stayed at the 4 s cap
    timers = [a.seconds for _, a in sim.log[0] if isinstance(a, StartRoundTimer)]
    assert timers[:4] == [1.0, 2.0, 4.0, 4.0] and max(timers) == 4.0
    stuck_round = sim.machines[0].round
    # Rule G: without a quorum of ROUND-CHANGEs for round 1 the two live validators stay in round 1
    # (re-sending their ROUND-CHANGE at every expiry) instead of inflating rounds on their own
    # (before issue 19 they reached round >= 8 here, a phase offset a returning validator never closed)
    assert stuck_round == 1
    assert sum(1 for i, m in sim.sent if i == 0 and isinstance(m, RoundChange) and m.round == 1) >= 8
    # every failed round was summarised with its proposer and who was missing
    failed = [a for _, a in sim.log[0] if isinstance(a, RoundFailed)]
    assert failed and all(set(f.missing) >= {sim.validators[2], sim.validators[3]} for f in failed)

    sim.down = {3}

    sim.schedule(0.0, 2, Start(1))
    advance(sim, 40.0 + 3 * config.max_round_timeout_s)
    assert all(1 in sim.commits[i] for i in (0, 1, 2)), "finalization must resume once 3 of 4 are up"
    sim.assert_agreement()
    decided_round = sim.commits[0][1].round
    assert decided_round >= stuck_round  # the others did not go back to low rounds
    # the returning validator's round changes target the live round, not rounds 1, 2, 3, … again
    rc_rounds = [m.round for i, m in sim.sent if i == 2 and isinstance(m, RoundChange)]
    assert all(r >= stuck_round for r in rc_rounds[1:]), rc_rounds
    assert len(rc_rounds) <= 3
