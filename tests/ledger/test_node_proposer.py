"""The proposer's block size control (build budget, back-off after a slow round) and pre-building the
round-0 block while waiting for the block period."""

from __future__ import annotations

import asyncio

import pytest

from ledger.consensus import Proposal, RoundFailed, Start, decode_message
from ledger.node import MIN_BLOCK_TXS, Node
from ledger.transport import KIND_CONSENSUS
from tests.ledger.helpers import FUNDED_KEY, KEY_BY_ADDRESS, VALIDATORS, free_port, make_genesis, sign_tx

A, B = VALIDATORS[0], VALIDATORS[1]


@pytest.fixture
def node(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("0x" + KEY_BY_ADDRESS[A].to_bytes().hex())
    config = {
        "name": "validator-1", "data_dir": str(tmp_path / "data"), "key_file": str(key_file),
        "genesis": make_genesis().to_json(), "p2p": {"host": "127.0.0.1", "port": free_port()},
        "rpc": {"host": "127.0.0.1", "port": free_port()}, "peers": [], "observers": [],
        "permissioning": {"registry": None}, "request_timeout_s": 2.0,
    }
    built = Node(config)
    yield built
    built.ledger.close()


def test_block_cap_follows_measured_speed_and_backs_off_after_a_slow_round(node: Node) -> None:
    assert node.build_budget_s == pytest.approx(0.5)  # 25 % of the 2 s request timeout
    node._s_per_tx = 0.002
    assert node.block_tx_cap() == 250
    node._learn_build_speed(200, 0.2)  # 1 ms per transaction measured
    assert node.block_tx_cap() > 250
    before = node._s_per_tx

    async def fail(proposer_missing: bool) -> None:
        missing = (B,) if proposer_missing else ()
        node._do(RoundFailed(1, 0, B, missing))

    asyncio.run(fail(proposer_missing=True))  # a dead proposer says nothing about execution speed
    assert node._s_per_tx == before
    asyncio.run(fail(proposer_missing=False))  # proposer alive, round failed: validation too slow
    assert node._s_per_tx == pytest.approx(before * 1.5)
    node._s_per_tx = 1.0
    assert node.block_tx_cap() == MIN_BLOCK_TXS


def test_round0_block_is_prebuilt_and_proposed_at_round_start(node: Node) -> None:
    tx = sign_tx(FUNDED_KEY, 0)
    node.pool.add(tx)
    sent: list[bytes] = []
    node.transport.broadcast = lambda kind, body: sent.append(body) if kind == KIND_CONSENSUS else None

    async def scenario() -> None:
        node._prebuild(1, node.ledger.head.hash)
        assert node._prebuilt is not None
        prebuilt = node._prebuilt[2]
        assert [t.hash for t in prebuilt.transactions] == [tx.hash]
        assert prebuilt.header.timestamp >= node.ledger.head.timestamp + 1
        node.feed(Start(1))
        await asyncio.sleep(0.05)  # CreateBlock runs on the next loop iteration
        proposals = [m for m in map(decode_message, sent) if isinstance(m, Proposal)]
        assert len(proposals) == 1
        assert node.ledger.block_digest(proposals[0].signed.payload.block) == prebuilt.hash
        assert node._prebuilt is None

    asyncio.run(scenario())


def test_round_state_is_written_durably_and_restored_after_a_restart(node: Node, tmp_path) -> None:
    """PersistRoundState is on disk before the next action runs; a restarted node resumes that round."""
    from ledger.consensus import Broadcast, PersistRoundState, QbftStateMachine, RoundTimerExpired, make_signer
    from ledger.node import ROUND_STATE_FILE

    other = QbftStateMachine(A, make_signer(KEY_BY_ADDRESS[A].to_bytes()), node.ledger)
    other.handle(Start(1))
    out = other.handle(RoundTimerExpired(1, 0))  # round 1: the record says so
    record = next(a.record for a in out if isinstance(a, PersistRoundState))
    sent: list[bytes] = []
    node.transport.broadcast = lambda kind, body: sent.append(body)

    async def persist_then_send() -> None:
        for action in out:
            if isinstance(action, Broadcast):
                assert (tmp_path / "data" / ROUND_STATE_FILE).read_bytes() == record  # written before sending
            node._do(action)

    asyncio.run(persist_then_send())
    assert sent
    node.ledger.close()
    restarted = Node(node.config)
    try:
        async def start() -> None:
            restarted.feed(Start(1))

        asyncio.run(start())
        assert restarted.sm.height == 1 and restarted.sm.round == 1
    finally:
        restarted.ledger.close()  # the fixture closes the first node's ledger again (closing twice is harmless)


def test_a_failed_round_state_write_sends_nothing_but_keeps_the_timer(node: Node, monkeypatch) -> None:
    from ledger.consensus import RoundTimerExpired

    sent: list[bytes] = []
    node.transport.broadcast = lambda kind, body: sent.append(body)

    def disk_full(path, data):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("ledger.node.write_durably", disk_full)
    timers: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        original = loop.call_later
        loop.call_later = lambda delay, *args: timers.append(delay) or original(delay, *args)  # type: ignore
        node.feed(Start(1))
        node.feed(RoundTimerExpired(1, 0))  # would send a ROUND-CHANGE for round 1 after persisting

    asyncio.run(scenario())
    assert node.sm.round == 1 and sent == [] and len(timers) >= 2
