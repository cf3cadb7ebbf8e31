"""Prepared state across restarts (issue 19): two validators prepared on block X restart within one
height. Without the persisted round state they forget X and a later round finalizes Y although X was
finalized elsewhere (two faults, beyond f = 1); with ``PersistRoundState`` / ``Restore`` they resume with
their prepared certificate and X is the only block of that height."""

from __future__ import annotations

import heapq

from eth_hash.auto import keccak

from ledger.consensus import (
    Commit,
    Message,
    PersistRoundState,
    Prepare,
    QbftStateMachine,
    Restore,
    RoundTimerExpired,
    Start,
    make_signer,
)

from .sim import FakeChain, Sim, block_proposer, make_block
from .test_statemachine import BLOCK, SIGNERS, V, broadcasts, feed, machine, prepare, proposal


def advance(sim: Sim, until: float) -> None:
    while sim._queue and sim._queue[0].time <= until:
        item = heapq.heappop(sim._queue)
        sim.now = item.time
        if item.node not in sim.down:
            sim.deliver(item.node, item.event)
    sim.now = until


def two_prepared_validators_restart(persist: bool) -> Sim:
    # round 0 of height 1: validator 3 hears nothing; COMMITs reach validator 0 only, so 0 finalizes X
    # while 1 and 2 are prepared (and committed) on X without knowing it was finalized
    def drop(src: int, dst: int, msg: Message) -> bool:
        if msg.height != 1 or msg.round != 0:
            return False
        return dst == 3 or src == 3 or (isinstance(msg, Commit) and dst != 0)

    sim = Sim(4, drop=drop)
    sim.target = 1
    for i in range(4):
        sim.schedule(0.0, i, Start(1))
    advance(sim, 0.5)
    assert 1 in sim.commits[0] and not sim.commits[1] and not sim.commits[2]
    for i in (1, 2):  # crash and restart within the height: memory lost
        sim.machines[i] = QbftStateMachine(sim.validators[i], make_signer(sim.keys[i]), sim.chains[i])
        if persist:
            sim.machines[i].handle(Restore(sim.persisted[i]))
        sim.schedule(0.1, i, Start(1))
    advance(sim, 120.0)
    return sim


def test_without_persisted_state_a_second_block_is_finalized() -> None:
    """The hazard an operator must avoid when persistence is lost (what issue 19 observed)."""
    sim = two_prepared_validators_restart(persist=False)
    x = sim.commits[0][1].digest
    others = {sim.commits[i][1].digest for i in (1, 2, 3) if 1 in sim.commits[i]}
    assert others and others != {x}


def test_persisted_prepared_state_keeps_the_finalized_block() -> None:
    sim = two_prepared_validators_restart(persist=True)
    sim.assert_agreement()
    x = sim.commits[0][1]
    assert all(sim.commits[i][1].digest == x.digest for i in (1, 2, 3)), "1, 2, 3 finalize X too"
    assert block_proposer(sim.commits[3][1].block) == sim.validators[0]  # X, re-proposed in a later round
    assert sim.commits[3][1].round > 0


def test_record_written_before_prepare_and_commit_and_round_change() -> None:
    m = machine(1)
    out = feed(m, proposal(0, 0, BLOCK))
    kinds = [type(a).__name__ for a in out]
    assert kinds.index("PersistRoundState") < kinds.index("Broadcast")  # before our PREPARE
    out = feed(m, prepare(0, 0, keccak_block())) + feed(m, prepare(2, 0, keccak_block()))
    persist = [i for i, a in enumerate(out) if isinstance(a, PersistRoundState)]
    commits = [i for i, a in enumerate(out) if type(a).__name__ == "Broadcast" and isinstance(
        broadcasts([a])[0], Commit)]
    assert persist and commits and persist[0] < commits[0]
    out = m.handle(RoundTimerExpired(1, 0))
    kinds = [type(a).__name__ for a in out]
    assert kinds.index("PersistRoundState") < kinds.index("Broadcast")  # before our ROUND-CHANGE


def keccak_block() -> bytes:
    return keccak(BLOCK)


def test_restored_validator_refuses_a_second_block_in_a_round_it_voted_in() -> None:
    m = machine(1)
    records = [a.record for a in feed(m, proposal(0, 0, BLOCK)) if isinstance(a, PersistRoundState)]
    fresh = machine_with_restore(1, records[-1])  # the process restarted: only the record survived
    other = make_block(1, V[0], b"equivocated")  # the round-0 proposer equivocates after the restart
    out = feed(fresh, proposal(0, 0, other))
    assert [getattr(a, "reason", "") for a in out if type(a).__name__ == "Dropped"] == [
        "already voted for another block in this round (before a restart)"]
    out = feed(fresh, proposal(0, 0, BLOCK))  # the block it voted for: the same PREPARE again
    assert isinstance(broadcasts(out)[0], Prepare)


def machine_with_restore(i: int, record: bytes) -> QbftStateMachine:
    m = QbftStateMachine(V[i], SIGNERS[i], FakeChain(V))
    m.handle(Restore(record))
    m.handle(Start(1))
    return m


def test_garbage_record_is_ignored() -> None:
    m = machine_with_restore(1, b"\x01\x02garbage")
    assert m.round == 0 and m.height == 1
