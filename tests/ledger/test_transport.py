"""Transport: authenticated loopback TCP links, frames, and refused handshakes."""

from __future__ import annotations

import asyncio
import time

import rlp
from eth_keys import keys
from eth_utils import keccak

from ledger.transport import (
    KIND_CONSENSUS,
    KIND_HANDSHAKE,
    KIND_TRANSACTION,
    PeerAddress,
    Transport,
    frame,
    handshake_digest,
)
from tests.ledger.helpers import CHAIN_ID, free_port

KEY_A = keys.PrivateKey(keccak(b"node-a"))
KEY_B = keys.PrivateKey(keccak(b"node-b"))
KEY_C = keys.PrivateKey(keccak(b"node-c"))
ADDR_A = KEY_A.public_key.to_canonical_address()
ADDR_B = KEY_B.public_key.to_canonical_address()
ADDR_C = KEY_C.public_key.to_canonical_address()
TIMEOUT = 5.0


def signer(key: keys.PrivateKey):
    return lambda digest: key.sign_msg_hash(digest).to_bytes()


class Recorder:
    """Collects frames and counters of one Transport and lets a test await them."""

    def __init__(self) -> None:
        self.frames: list[tuple[bytes, int, bytes]] = []
        self.counters: list[str] = []
        self.got_frame = asyncio.Event()
        self.got_counter = asyncio.Event()

    def on_frame(self, author: bytes, kind: int, body: bytes) -> None:
        self.frames.append((author, kind, body))
        self.got_frame.set()

    def on_counter(self, name: str) -> None:
        self.counters.append(name)
        self.got_counter.set()


def make_transport(key, port, peers, allowed, recorder, chain_id=CHAIN_ID) -> Transport:
    return Transport(
        chain_id=chain_id, address=key.public_key.to_canonical_address(), sign=signer(key), host="127.0.0.1",
        port=port, peers=peers, allowed=lambda: set(allowed), on_frame=recorder.on_frame,
        on_counter=recorder.on_counter,
    )


async def wait_for(predicate, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def test_frame_format():
    assert frame(KIND_CONSENSUS, b"abc") == b"\x00\x00\x00\x04\x01abc"
    assert frame(KIND_HANDSHAKE, b"") == b"\x00\x00\x00\x01\x00"


def test_two_transports_exchange_frames():
    async def scenario():
        port_a, port_b = free_port(), free_port()
        rec_a, rec_b = Recorder(), Recorder()
        a = make_transport(KEY_A, port_a, [PeerAddress(ADDR_B, "127.0.0.1", port_b)], {ADDR_B}, rec_a)
        b = make_transport(KEY_B, port_b, [PeerAddress(ADDR_A, "127.0.0.1", port_a)], {ADDR_A}, rec_b)
        await a.start()
        await b.start()
        try:
            a.send(ADDR_B, KIND_CONSENSUS, b"hello from a")
            b.broadcast(KIND_TRANSACTION, b"tx from b")
            await asyncio.wait_for(rec_b.got_frame.wait(), TIMEOUT)
            await asyncio.wait_for(rec_a.got_frame.wait(), TIMEOUT)
            assert rec_b.frames == [(ADDR_A, KIND_CONSENSUS, b"hello from a")]
            assert rec_a.frames == [(ADDR_B, KIND_TRANSACTION, b"tx from b")]
            # several frames keep their order; a large one arrives whole
            big = bytes(range(256)) * 4096
            for i in range(5):
                a.send(ADDR_B, KIND_CONSENSUS, b"m%d" % i)
            a.send(ADDR_B, KIND_TRANSACTION, big)
            await wait_for(lambda: len(rec_b.frames) == 7)
            assert [f[2] for f in rec_b.frames[1:6]] == [b"m%d" % i for i in range(5)]
            assert rec_b.frames[6] == (ADDR_A, KIND_TRANSACTION, big)
            assert a.connected_peers() == 1 and b.connected_peers() == 1
            assert "handshake_refused" not in rec_a.counters + rec_b.counters
            # sending to an unknown peer is a no-op
            a.send(ADDR_C, KIND_CONSENSUS, b"nobody")
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(scenario())


def test_dialler_not_allowed_is_refused():
    async def scenario():
        port_a, port_b = free_port(), free_port()
        rec_a, rec_b = Recorder(), Recorder()
        a = make_transport(KEY_A, port_a, [PeerAddress(ADDR_B, "127.0.0.1", port_b)], {ADDR_B}, rec_a)
        b = make_transport(KEY_B, port_b, [], {ADDR_C}, rec_b)  # B only admits C
        await b.start()
        await a.start()
        try:
            a.send(ADDR_B, KIND_CONSENSUS, b"let me in")
            await asyncio.wait_for(rec_b.got_counter.wait(), TIMEOUT)
            assert "handshake_refused" in rec_b.counters
            await asyncio.sleep(0.1)
            assert rec_b.frames == []
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(scenario())


async def _raw_dial(port: int, handshake_body: bytes, payload: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(frame(KIND_HANDSHAKE, handshake_body) + frame(KIND_CONSENSUS, payload))
    await writer.drain()
    # wait until the listener either closes the link or (accepted) keeps it open
    try:
        await asyncio.wait_for(reader.read(1), 0.5)
    except TimeoutError:
        pass
    writer.close()


def _handshake(signing_key, claimed: bytes, chain_id: int = CHAIN_ID, ts: int | None = None) -> bytes:
    ts = int(time.time()) if ts is None else ts
    sig = signing_key.sign_msg_hash(handshake_digest(chain_id, claimed, ts)).to_bytes()
    return rlp.encode([chain_id, claimed, ts, sig])


def _listener_scenario(handshake_body: bytes) -> tuple[list, list]:
    """Start B (admitting A), dial it by hand with ``handshake_body``, return B's frames and counters."""

    async def scenario():
        port_b = free_port()
        rec_b = Recorder()
        b = make_transport(KEY_B, port_b, [], {ADDR_A}, rec_b)
        await b.start()
        try:
            await _raw_dial(port_b, handshake_body, b"payload")
            await wait_for(lambda: rec_b.frames or rec_b.counters, timeout=2.0)
        finally:
            await b.stop()
        return rec_b.frames, rec_b.counters

    return asyncio.run(scenario())


def test_handshake_signed_correctly_by_hand_is_accepted():
    frames, counters = _listener_scenario(_handshake(KEY_A, ADDR_A))
    assert frames == [(ADDR_A, KIND_CONSENSUS, b"payload")]
    assert counters == []


def test_handshake_signed_by_other_key_is_refused():
    frames, counters = _listener_scenario(_handshake(KEY_C, ADDR_A))  # claims A, signed by C
    assert frames == []
    assert counters == ["handshake_refused"]


def test_handshake_for_other_chain_is_refused():
    frames, counters = _listener_scenario(_handshake(KEY_A, ADDR_A, chain_id=CHAIN_ID + 1))
    assert frames == [] and counters == ["handshake_refused"]


def test_stale_handshake_is_refused():
    frames, counters = _listener_scenario(_handshake(KEY_A, ADDR_A, ts=int(time.time()) - 3600))
    assert frames == [] and counters == ["handshake_refused"]


def test_garbage_handshake_is_refused():
    frames, counters = _listener_scenario(b"\x01\x02\x03")
    assert frames == [] and counters == ["handshake_refused"]
