"""Named regression scenarios of issue 19 (each failed before its fix) in the pure simulator / state machine:

* ``rolling_restart``: n = 4, one validator down, validator 0 alone, validators 1 and 2 start 300 s later
  (capped timeouts kept their phase offset for ever: nothing finalized in 2 hours);
* ``poisoned_proposal``: a relay delivers a copy of every PROPOSAL with a junk justification first
  (the genuine one was then dropped as a "duplicate" and round 0 never committed);
* ``stranger_flood``: 40 throw-away keys x 256 copies filled the future-height buffer, after which an
  honest validator's next-height PREPARE was refused ("future buffer full").
"""

from __future__ import annotations

from eth_hash.auto import keccak

from ledger.consensus import (
    PREPARE,
    PROPOSAL,
    Dropped,
    Message,
    MessageReceived,
    Prepare,
    PreparePayload,
    Proposal,
    ProposalPayload,
    QbftConfig,
    QbftStateMachine,
    Start,
    decode_message,
    encode_message,
    make_signer,
    sign_payload,
)
from ledger.consensus.statemachine import MAX_BUFFERED_OUTSIDERS

from .sim import FakeChain, Sim, make_block
from .test_simulation import _check_commits
from .test_statemachine import SIGNERS, V, broadcasts, feed, machine, prepare, proposal, round_change

ROLLING_RESTART_DELAY_S = 300.0


def rolling_restart_sim(config: QbftConfig = QbftConfig()) -> Sim:
    """Validator 3 down for maintenance; 0 runs alone; 1 and 2 (re)start 300 s later; 10 ms links."""
    sim = Sim(4, down=[3], latency=0.01, config=config)
    sim.run(3, max_time=ROLLING_RESTART_DELAY_S + 7200.0,
            start_at={1: ROLLING_RESTART_DELAY_S, 2: ROLLING_RESTART_DELAY_S})
    return sim


def test_rolling_restart_converges_within_bounded_rounds() -> None:
    sim = rolling_restart_sim()  # default timeouts: 1 s doubling, capped at 60 s (as in node.json)
    _check_commits(sim, 3)
    first = sim.commits[0][1]
    assert first.round <= 2, f"height 1 decided in round {first.round}"
    commit_times = [t for t, a in sim.log[0] if a.__class__.__name__ == "BlockCommitted"]
    assert commit_times[0] <= ROLLING_RESTART_DELAY_S + 10.0, commit_times
    # validator 0 did not inflate its round while alone (Rule G): it waited in round 1
    assert max(m.round for i, m in sim.sent if i == 0 and m.height == 1) <= 2


def test_rolling_restart_converges_with_a_small_cap_too() -> None:
    sim = rolling_restart_sim(QbftConfig(request_timeout_s=1.0, max_round_timeout_s=4.0))
    _check_commits(sim, 3)
    assert sim.commits[0][1].round <= 2


def _poison(src: int, dst: int, msg: Message, raw: bytes) -> list[bytes]:
    """A Byzantine relay: forwards, before each PROPOSAL, a copy whose (unsigned) justification is junk."""
    if not isinstance(msg, Proposal):
        return []
    junk_rc = decode_message(round_change(3, msg.round + 1)).signed
    poisoned = Proposal(msg.signed, (junk_rc,), msg.prepare_justification)
    stripped = Proposal(msg.signed, (), ())
    copies = [encode_message(poisoned)]
    if msg.round > 0:
        copies.append(encode_message(stripped))
    return copies


def test_poisoned_proposal_copies_do_not_delay_round_0() -> None:
    sim = Sim(4, inject=_poison)
    sim.run(6)
    _check_commits(sim, 6)
    assert all(c.round == 0 for c in sim.commits[1].values())
    reasons = {a.reason for _, a in sim.log[1] if isinstance(a, Dropped)}
    assert "justification in a round-0 proposal" in reasons


def test_poisoned_copy_first_then_genuine_proposal_is_prepared() -> None:
    block = make_block(1, V[0], b"block")
    genuine = proposal(0, 0, block)
    junk = decode_message(round_change(2, 1)).signed
    poisoned = encode_message(Proposal(decode_message(genuine).signed, (junk,), ()))
    m = machine(1)
    assert [d.reason for d in feed(m, poisoned) if isinstance(d, Dropped)] == ["justification in a round-0 proposal"]
    replay = feed(m, poisoned)  # the same bad bytes again: refused without re-validation
    assert [d.reason for d in replay if isinstance(d, Dropped)][0].startswith("duplicate of a refused proposal")
    out = feed(m, genuine)
    (prep,) = broadcasts(out)
    assert isinstance(prep, Prepare) and prep.signed.payload.digest == keccak(block)
    assert [d.reason for d in feed(m, genuine) if isinstance(d, Dropped)] == ["duplicate"]


def test_round1_proposal_with_stripped_justification_first() -> None:
    """Round > 0: a stripped copy (no ROUND-CHANGE quorum) arrives first; the justified one still counts."""
    from ledger.consensus import BlockCreated, RoundTimerExpired

    proposer = machine(1)  # V[1] proposes (height 1, round 1)
    proposer.handle(RoundTimerExpired(1, 0))
    feed(proposer, round_change(0, 1))
    feed(proposer, round_change(3, 1))
    block = make_block(1, V[1], b"r1")
    genuine = broadcasts(proposer.handle(BlockCreated(1, 1, block)))[0]
    assert isinstance(genuine, Proposal)
    stripped = encode_message(Proposal(genuine.signed, (), ()))
    other = machine(2)
    assert [d.reason for d in feed(other, stripped) if isinstance(d, Dropped)] == [
        "round-change justification below quorum"]
    out = feed(other, encode_message(genuine))
    assert other.round == 1 and isinstance(broadcasts(out)[0], Prepare)


def test_strangers_cannot_make_a_validator_refuse_a_next_height_prepare() -> None:
    m = machine(1)
    strangers = [make_signer(keccak(b"stranger-%d" % k)) for k in range(40)]
    drops: dict[str, int] = {}
    for k, sign in enumerate(strangers):
        for copy in range(256):
            payload = PreparePayload(2, copy % 8, keccak(b"%d-%d" % (k, copy)))
            raw = encode_message(Prepare(sign_payload(PREPARE, payload, sign)))
            for a in m.handle(MessageReceived(raw)):
                assert isinstance(a, Dropped)
                drops[a.reason] = drops.get(a.reason, 0) + 1
    assert sum(drops.values()) == 40 * 256 - MAX_BUFFERED_OUTSIDERS
    assert set(drops) == {"future not a validator"}
    # the honest validator's next-height messages are still kept, and replayed at Start(2)
    block2 = make_block(2, V[1], b"h2")
    honest = prepare(2, 0, keccak(block2), height=2)
    assert m.handle(MessageReceived(honest)) == []
    assert m.handle(MessageReceived(honest)) == [Dropped("future duplicate", V[2])]
    assert feed(m, proposal(1, 0, block2, height=2)) == []
    chain = m._blocks  # type: ignore[attr-defined]
    chain.import_block(1, make_block(1, V[0], b"block"))
    out = m.handle(Start(2))
    assert [d for d in out if isinstance(d, Dropped) and d.author == V[2]] == []
    assert any(isinstance(b, Prepare) and b.author == V[1] for b in broadcasts(out))


def test_a_validator_flooding_future_heights_is_capped_per_height() -> None:
    m = machine(1)
    reasons = []
    for copy in range(200):
        raw = encode_message(Prepare(sign_payload(PREPARE, PreparePayload(2, copy, keccak(b"%d" % copy)), SIGNERS[3])))
        reasons += [a.reason for a in m.handle(MessageReceived(raw)) if isinstance(a, Dropped)]
    assert reasons and set(reasons) == {"future buffer full"}
    honest = prepare(2, 0, keccak(b"x"), height=2)
    assert m.handle(MessageReceived(honest)) == []


def test_buffer_before_first_start_uses_the_block_port_validators() -> None:
    m = QbftStateMachine(V[1], SIGNERS[1], FakeChain(V))
    stranger = make_signer(keccak(b"early stranger"))
    kept = 0
    for copy in range(20):
        raw = encode_message(Prepare(sign_payload(PREPARE, PreparePayload(1, copy, keccak(b"%d" % copy)), stranger)))
        kept += not m.handle(MessageReceived(raw))
    assert kept == 4  # MAX_BUFFERED_PER_OUTSIDER
    signed = sign_payload(PROPOSAL, ProposalPayload(1, 0, make_block(1, V[0], b"block")), SIGNERS[0])
    assert m.handle(MessageReceived(encode_message(Proposal(signed, (), ())))) == []
    out = m.handle(Start(1))
    assert any(isinstance(b, Prepare) for b in broadcasts(out))
