"""Transport: dial-back of admitted nodes that were not configured (new validators, observers) and the
per-link flood limit."""

from __future__ import annotations

import asyncio

import ledger.transport as transport_mod
from ledger.transport import KIND_CONSENSUS, PeerAddress
from tests.ledger.helpers import free_port
from tests.ledger.test_transport import (
    ADDR_A,
    ADDR_B,
    ADDR_C,
    KEY_A,
    KEY_B,
    TIMEOUT,
    Recorder,
    make_transport,
    wait_for,
)


def test_admitted_unconfigured_node_is_dialled_back() -> None:
    async def scenario() -> None:
        port_a, port_b = free_port(), free_port()
        rec_a, rec_b = Recorder(), Recorder()
        # A knows nobody but admits B; B knows A (a newcomer configured with the existing nodes)
        a = make_transport(KEY_A, port_a, [], {ADDR_B}, rec_a)
        b = make_transport(KEY_B, port_b, [PeerAddress(ADDR_A, "127.0.0.1", port_a)], {ADDR_A}, rec_b)
        await a.start()
        await b.start()
        try:
            b.send(ADDR_A, KIND_CONSENSUS, b"hello")
            await wait_for(lambda: ADDR_B in a.peers)
            assert a.peers[ADDR_B].port == port_b
            a.send(ADDR_B, KIND_CONSENSUS, b"welcome")
            await asyncio.wait_for(rec_b.got_frame.wait(), TIMEOUT)
            assert rec_b.frames == [(ADDR_A, KIND_CONSENSUS, b"welcome")]
            assert ADDR_C not in a.peers
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(scenario())


def test_flood_beyond_the_rate_limit_is_dropped_and_counted(monkeypatch) -> None:
    monkeypatch.setattr(transport_mod, "FLOOD_BURST", 50.0)
    monkeypatch.setattr(transport_mod, "FLOOD_RATE", 1.0)

    async def scenario() -> None:
        port_a, port_b = free_port(), free_port()
        rec_a, rec_b = Recorder(), Recorder()
        a = make_transport(KEY_A, port_a, [PeerAddress(ADDR_B, "127.0.0.1", port_b)], {ADDR_B}, rec_a)
        b = make_transport(KEY_B, port_b, [], {ADDR_A}, rec_b)
        await a.start()
        await b.start()
        try:
            for i in range(200):
                a.send(ADDR_B, KIND_CONSENSUS, b"%d" % i)
            await wait_for(lambda: len(rec_b.frames) + rec_b.counters.count("flood") >= 200)
            assert 50 <= len(rec_b.frames) <= 55
            assert rec_b.counters.count("flood") >= 145
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(scenario())
