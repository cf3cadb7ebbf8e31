"""Unit tests of QbftStateMachine fed with hand-crafted messages (no simulator network)."""

from __future__ import annotations

import random

import pytest
from eth_hash.auto import keccak

from ledger.consensus import (
    COMMIT,
    PREPARE,
    PROPOSAL,
    ROUND_CHANGE,
    BlockCommitted,
    Broadcast,
    Commit,
    CommitPayload,
    CreateBlock,
    Dropped,
    Evidence,
    MessageReceived,
    Prepare,
    PreparePayload,
    Proposal,
    ProposalPayload,
    QbftStateMachine,
    RoundChange,
    RoundChangePayload,
    RoundTimerExpired,
    Start,
    StartRoundTimer,
    address_of,
    decode_message,
    encode_message,
    make_signer,
)

from .sim import FakeChain, make_block, seal_hash, validator_key

KEYS = sorted((validator_key(i) for i in range(4)), key=address_of)
SIGNERS = [make_signer(k) for k in KEYS]
V = [address_of(k) for k in KEYS]
OUTSIDER = make_signer(keccak(b"outsider"))


def machine(i: int, height: int = 1) -> QbftStateMachine:
    m = QbftStateMachine(V[i], SIGNERS[i], FakeChain(V))
    m.handle(Start(height))
    return m


def proposal(i: int, round: int, block: bytes, rcs: tuple = (), prepares: tuple = (), height: int = 1) -> bytes:
    signed = _s(PROPOSAL, ProposalPayload(height, round, block), i)
    return encode_message(Proposal(signed, rcs, prepares))


def _s(code: int, payload: object, i: int):  # type: ignore[no-untyped-def]
    from ledger.consensus import sign_payload

    return sign_payload(code, payload, SIGNERS[i] if i >= 0 else OUTSIDER)  # type: ignore[arg-type]


def prepare(i: int, round: int, digest: bytes, height: int = 1) -> bytes:
    return encode_message(Prepare(_s(PREPARE, PreparePayload(height, round, digest), i)))


def commit(i: int, round: int, block: bytes, height: int = 1, seal_block: bytes | None = None) -> bytes:
    seal = SIGNERS[i](seal_hash(seal_block or block, round))
    return encode_message(Commit(_s(COMMIT, CommitPayload(height, round, keccak(block), seal), i)))


def round_change(i: int, round: int, height: int = 1) -> bytes:
    return encode_message(RoundChange(_s(ROUND_CHANGE, RoundChangePayload(height, round, None, None), i)))


def feed(m: QbftStateMachine, raw: bytes) -> list:
    return m.handle(MessageReceived(raw))


def drops(actions: list) -> list[Dropped]:
    return [a for a in actions if isinstance(a, Dropped)]


def broadcasts(actions: list) -> list:
    return [decode_message(a.raw) for a in actions if isinstance(a, Broadcast)]


BLOCK = make_block(1, V[0], b"tx")  # round-0 proposer of height 1 is V[0] (no previous proposer)


def test_start_emits_timer_and_create_block_for_proposer() -> None:
    m = QbftStateMachine(V[0], SIGNERS[0], FakeChain(V))
    assert m.handle(Start(1)) == [StartRoundTimer(1, 0, 1.0), CreateBlock(1, 0)]
    assert (m.height, m.round) == (1, 0)
    assert m.proposer(1, 0) == V[0] and m.proposer(1, 1) == V[1] and m.proposer(1, 5) == V[1]
    other = QbftStateMachine(V[1], SIGNERS[1], FakeChain(V))
    assert other.handle(Start(1)) == [StartRoundTimer(1, 0, 1.0)]
    assert m.handle(Start(1)) == []  # same height again: ignored


def test_normal_flow_single_node_view() -> None:
    m = machine(1)
    out = feed(m, proposal(0, 0, BLOCK))
    (prep,) = broadcasts(out)
    assert isinstance(prep, Prepare) and prep.signed.payload.digest == keccak(BLOCK)
    # prepares and commits arriving early for the accepted digest are counted
    feed(m, prepare(0, 0, keccak(BLOCK)))
    out = feed(m, prepare(2, 0, keccak(BLOCK)))
    (com,) = broadcasts(out)
    assert isinstance(com, Commit)
    feed(m, commit(0, 0, BLOCK))
    out = feed(m, commit(2, 0, BLOCK))
    (done,) = [a for a in out if isinstance(a, BlockCommitted)]
    assert done.height == 1 and done.digest == keccak(BLOCK) and len(done.seals) == 3
    assert feed(m, commit(3, 0, BLOCK)) == []  # height decided: late messages ignored
    assert m.handle(RoundTimerExpired(1, 0)) == []


def test_commits_before_proposal_are_kept() -> None:
    m = machine(1)
    for i in (0, 2, 3):
        assert feed(m, commit(i, 0, BLOCK)) == []
    out = feed(m, proposal(0, 0, BLOCK))
    assert [a for a in out if isinstance(a, BlockCommitted)]


def test_invalid_commit_seal_not_counted() -> None:
    m = machine(1)
    feed(m, proposal(0, 0, BLOCK))
    out = feed(m, commit(0, 0, BLOCK, seal_block=b"other"))
    assert [(d.reason, d.author) for d in drops(out)] == [("invalid commit seal", V[0])]
    feed(m, commit(2, 0, BLOCK))
    out = feed(m, commit(3, 0, BLOCK))
    assert not [a for a in out if isinstance(a, BlockCommitted)]  # only 2 valid seals of 3 needed


def test_garbage_and_invalid_messages_are_dropped_never_raise() -> None:
    m = machine(1)
    rng = random.Random(1)
    garbage = [b"", b"\x12", b"\x12\xc0", b"\x99\xc0"] + [rng.randbytes(rng.randrange(1, 300)) for _ in range(200)]
    for raw in garbage:
        out = feed(m, raw)
        assert len(out) == 1 and isinstance(out[0], Dropped) and out[0].author is None
    # invalid signature: tamper with r of a valid PREPARE
    raw = bytearray(prepare(2, 0, keccak(BLOCK)))
    raw[-40] ^= 0xFF
    out = feed(m, bytes(raw))
    assert len(out) == 1 and isinstance(out[0], Dropped) and out[0].author != V[2]
    # non-validator author
    out = feed(m, encode_message(Prepare(_s(PREPARE, PreparePayload(1, 0, keccak(BLOCK)), -1))))
    assert [d.reason for d in drops(out)] == ["not a validator"]
    # wrong heights
    assert [d.reason for d in drops(feed(m, prepare(2, 0, keccak(BLOCK), height=0)))] == ["old height"]
    far = prepare(2, 0, keccak(BLOCK), height=50)
    assert [d.reason for d in drops(feed(m, far))] == ["height too far ahead"]
    # proposal from a validator that is not the proposer, and an invalid block
    assert [d.reason for d in drops(feed(m, proposal(2, 0, make_block(1, V[2], b"x"))))] == [
        "not the proposer of this round"
    ]
    out = feed(m, proposal(0, 0, make_block(1, V[0], b"invalid")))
    assert len(drops(out)) == 1 and drops(out)[0].reason.startswith("invalid block")
    # mutated valid messages: never an exception, only Dropped/no-op
    for base in (proposal(0, 0, BLOCK), commit(2, 0, BLOCK), round_change(3, 1)):
        for pos in range(len(base)):
            mutated = base[:pos] + bytes([base[pos] ^ 0x01]) + base[pos + 1 :]
            for a in machine(1).handle(MessageReceived(mutated)):
                assert isinstance(a, Dropped | Broadcast | Evidence)


def test_duplicate_is_dropped() -> None:
    m = machine(1)
    raw = prepare(2, 0, keccak(BLOCK))
    assert feed(m, raw) == []
    assert [d.reason for d in drops(feed(m, raw))] == ["duplicate"]


def test_equivocating_proposal_yields_evidence() -> None:
    m = machine(1)
    first = proposal(0, 0, BLOCK)
    second = proposal(0, 0, make_block(1, V[0], b"other"))
    feed(m, first)
    out = feed(m, second)
    assert Evidence("proposal", first, second) in out
    assert len(broadcasts(out)) == 0  # no second PREPARE


def test_equivocating_commit_and_prepare_yield_evidence() -> None:
    m = machine(1)
    c1, c2 = commit(2, 0, BLOCK), commit(2, 0, make_block(1, V[0], b"other"))
    feed(m, c1)
    assert Evidence("commit", c1, c2) in feed(m, c2)
    p1, p2 = prepare(3, 0, keccak(b"a")), prepare(3, 0, keccak(b"b"))
    feed(m, p1)
    assert Evidence("prepare", p1, p2) in feed(m, p2)


def test_timer_expiry_round_change() -> None:
    m = machine(1)
    out = m.handle(RoundTimerExpired(1, 0))
    assert out[0].__class__.__name__ == "RoundFailed" and out[0].proposer == V[0]
    assert StartRoundTimer(1, 1, 2.0) in out
    (rc,) = broadcasts(out)
    assert isinstance(rc, RoundChange) and rc.round == 1 and rc.signed.payload.prepared_round is None
    assert m.round == 1
    assert m.handle(RoundTimerExpired(1, 0)) == []  # stale timer


def test_f_plus_one_round_change_jump() -> None:
    m = machine(0)
    assert feed(m, round_change(2, 3)) == []
    assert m.round == 0
    out = feed(m, round_change(3, 3))
    assert m.round == 3
    assert StartRoundTimer(1, 3, 8.0) in out
    (rc,) = broadcasts(out)
    assert isinstance(rc, RoundChange) and rc.round == 3 and rc.author == V[0]


def test_round_change_quorum_makes_proposer_create_block_and_propose() -> None:
    # proposer of (1, 1) is V[1]
    m = machine(1)
    m.handle(RoundTimerExpired(1, 0))
    feed(m, round_change(0, 1))
    out = feed(m, round_change(3, 1))
    assert CreateBlock(1, 1) in out
    block = make_block(1, V[1], b"r1")
    from ledger.consensus import BlockCreated

    out = m.handle(BlockCreated(1, 1, block))
    msgs = broadcasts(out)
    prop = msgs[0]
    assert isinstance(prop, Proposal) and prop.round == 1 and len(prop.round_change_justification) == 3
    assert isinstance(msgs[1], Prepare)
    # another validator accepts it (moving to round 1 since the proposal is justified)
    other = machine(2)
    out = feed(other, encode_message(prop))
    assert other.round == 1 and [isinstance(x, Prepare) for x in broadcasts(out)] == [True]


def test_unjustified_round1_proposal_is_dropped() -> None:
    m = machine(2)
    block = make_block(1, V[1], b"r1")
    rcs = tuple(decode_message(round_change(i, 1)).signed for i in (0, 1))  # below quorum
    out = feed(m, proposal(1, 1, block, rcs))
    assert [d.reason for d in drops(out)] == ["round-change justification below quorum"]


def _prepared_rc(i: int, round: int, block: bytes, prepared_round: int) -> RoundChange:
    d = keccak(block)
    prepares = tuple(_s(PREPARE, PreparePayload(1, prepared_round, d), j) for j in (0, 1, 2))
    return RoundChange(_s(ROUND_CHANGE, RoundChangePayload(1, round, prepared_round, d), i), block, prepares)


def test_new_block_rejected_when_justification_is_prepared() -> None:
    m = machine(3)
    prepared = _prepared_rc(0, 1, BLOCK, 0)
    rcs = (prepared.signed,) + tuple(decode_message(round_change(i, 1)).signed for i in (1, 2))
    new_block = make_block(1, V[1], b"r1")
    out = feed(m, proposal(1, 1, new_block, rcs, prepared.prepare_justification))
    assert [d.reason for d in drops(out)] == ["re-proposed block does not match the highest prepared digest"]
    out = feed(machine(3), proposal(1, 1, BLOCK, rcs, prepared.prepare_justification))
    assert not drops(out) and isinstance(broadcasts(out)[0], Prepare)
    # prepared round change without a valid prepare quorum is refused
    bad = RoundChange(prepared.signed, BLOCK, prepared.prepare_justification[:2])
    reasons = [d.reason for d in drops(feed(machine(3), encode_message(bad)))]
    assert reasons == ["prepare justification below quorum"]


def test_future_height_messages_buffered_and_replayed() -> None:
    m = machine(1)
    block2 = make_block(2, V[1], b"h2")  # after V[0] proposed block 1, V[1] proposes height 2
    assert feed(m, proposal(1, 0, block2, height=2)) == []
    chain = m._blocks  # type: ignore[attr-defined]
    chain.import_block(1, BLOCK)
    out = m.handle(Start(2))
    assert isinstance(broadcasts(out)[0], Prepare)


def test_single_validator_commits_alone() -> None:
    key = validator_key(0)
    chain = FakeChain([address_of(key)])
    m = QbftStateMachine(address_of(key), make_signer(key), chain)
    out = m.handle(Start(1))
    assert CreateBlock(1, 0) in out
    from ledger.consensus import BlockCreated

    block = make_block(1, address_of(key), b"solo")
    out = m.handle(BlockCreated(1, 0, block))
    (done,) = [a for a in out if isinstance(a, BlockCommitted)]
    assert done.digest == keccak(block) and len(done.seals) == 1


@pytest.mark.parametrize("n", [1, 4])
def test_not_a_validator_is_passive(n: int) -> None:
    key = keccak(b"observer")
    m = QbftStateMachine(address_of(key), make_signer(key), FakeChain(V[:n]))
    out = m.handle(Start(1))
    assert out == [StartRoundTimer(1, 0, 1.0)]
