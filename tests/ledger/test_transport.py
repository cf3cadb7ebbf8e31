"""Transport: encrypted, authenticated loopback links (Noise XX bound to the node keys), frames, refused
identities, plain-TCP clients, tampering relays and silently dead links."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time

import rlp
from cryptography.exceptions import InvalidTag
from eth_keys import keys
from eth_utils import keccak
from noise.connection import Keypair, NoiseConnection

from ledger.faults import LinkProxy
from ledger.transport import (
    KIND_CONSENSUS,
    KIND_HANDSHAKE,
    KIND_TRANSACTION,
    NOISE_PROLOGUE,
    NOISE_PROTOCOL,
    ROLE_DIALLER,
    PeerAddress,
    SecureLink,
    Transport,
    frame,
    link_auth_digest,
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


async def _noise_dial(port: int, identity_body, payload: bytes, chain_id: int = CHAIN_ID) -> bytes | None:
    """Dial ``port`` with a hand-made Noise XX initiator, send ``identity_body(handshake_hash)`` as the identity
    frame and a consensus frame with ``payload``; returns the listener's identity frame body (None if closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    noise = NoiseConnection.from_name(NOISE_PROTOCOL)
    noise.set_prologue(NOISE_PROLOGUE + chain_id.to_bytes(8, "big"))
    noise.set_keypair_from_private_bytes(Keypair.STATIC, bytes(range(1, 33)))
    noise.set_as_initiator()
    noise.start_handshake()
    answer = None
    try:
        for message in (noise.write_message(),):
            writer.write(struct.pack(">H", len(message)) + message)
        (n,) = struct.unpack(">H", await reader.readexactly(2))
        noise.read_message(await reader.readexactly(n))
        message = noise.write_message()
        writer.write(struct.pack(">H", len(message)) + message)
        link = SecureLink(reader, writer, noise)
        link.write(frame(KIND_HANDSHAKE, identity_body(noise.get_handshake_hash())))
        link.write(frame(KIND_CONSENSUS, payload))
        await link.drain()
        kind, answer = await asyncio.wait_for(link.read_frame(), 2.0)
        assert kind == KIND_HANDSHAKE
        await asyncio.wait_for(reader.read(1), 0.5)  # closed (refused) or kept open (accepted)
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, InvalidTag):
        pass
    finally:
        writer.close()
    return answer


def _identity(signing_key, claimed: bytes, chain_id: int = CHAIN_ID, ts: int | None = None, role=ROLE_DIALLER):
    def body(handshake_hash: bytes) -> bytes:
        stamp = int(time.time()) if ts is None else ts
        sig = signing_key.sign_msg_hash(link_auth_digest(chain_id, role, handshake_hash, claimed, stamp)).to_bytes()
        return rlp.encode([chain_id, claimed, stamp, sig])
    return body


def _listener_scenario(identity_body, chain_id: int = CHAIN_ID) -> tuple[list, list]:
    """Start B (admitting A), dial it by hand with ``identity_body``, return B's frames and counters."""

    async def scenario():
        port_b = free_port()
        rec_b = Recorder()
        b = make_transport(KEY_B, port_b, [], {ADDR_A}, rec_b)
        await b.start()
        try:
            await _noise_dial(port_b, identity_body, b"payload", chain_id)
            await wait_for(lambda: rec_b.frames or rec_b.counters, timeout=3.0)
        finally:
            await b.stop()
        return rec_b.frames, rec_b.counters

    return asyncio.run(scenario())


def test_identity_signed_correctly_by_hand_is_accepted():
    frames, counters = _listener_scenario(_identity(KEY_A, ADDR_A))
    assert frames == [(ADDR_A, KIND_CONSENSUS, b"payload")]
    assert counters == []


def test_identity_signed_by_other_key_is_refused():
    frames, counters = _listener_scenario(_identity(KEY_C, ADDR_A))  # claims A, signed by C
    assert frames == [] and counters == ["handshake_refused"]


def test_key_not_in_validator_set_is_refused():
    frames, counters = _listener_scenario(_identity(KEY_C, ADDR_C))  # a real key, but B admits only A
    assert frames == [] and counters == ["handshake_refused"]


def test_identity_for_other_chain_is_refused():
    frames, counters = _listener_scenario(_identity(KEY_A, ADDR_A, chain_id=CHAIN_ID + 1))
    assert frames == [] and counters == ["handshake_refused"]


def test_noise_session_for_other_chain_is_refused():
    # the chain id is in the Noise prologue: the handshake itself fails (the dialler cannot read message 2)
    async def scenario():
        port_b = free_port()
        rec_b = Recorder()
        b = make_transport(KEY_B, port_b, [], {ADDR_A}, rec_b)
        await b.start()
        try:
            answer = await _noise_dial(port_b, _identity(KEY_A, ADDR_A, chain_id=CHAIN_ID + 1), b"x", CHAIN_ID + 1)
            await asyncio.sleep(0.2)
        finally:
            await b.stop()
        return answer, rec_b.frames

    answer, frames = asyncio.run(scenario())
    assert answer is None and frames == []


def test_identity_signed_for_the_listener_role_is_refused():
    # a signature made as listener (role R) cannot be replayed as a dialler's identity
    frames, counters = _listener_scenario(_identity(KEY_A, ADDR_A, role=b"R"))
    assert frames == [] and counters == ["handshake_refused"]


def test_clock_skew_beyond_300_s_is_refused_and_within_is_accepted():
    frames, counters = _listener_scenario(_identity(KEY_A, ADDR_A, ts=int(time.time()) - 301 - 5))
    assert frames == [] and counters == ["handshake_refused"]
    frames, counters = _listener_scenario(_identity(KEY_A, ADDR_A, ts=int(time.time()) - 250))
    assert frames == [(ADDR_A, KIND_CONSENSUS, b"payload")] and counters == []


def test_garbage_identity_is_refused():
    frames, counters = _listener_scenario(lambda hh: b"\x01\x02\x03")
    assert frames == [] and counters == ["handshake_refused"]


def _old_plain_handshake(key, address: bytes) -> bytes:
    """The pre-Noise wire handshake: a plain frame with RLP([chainId, address, time, sig, port])."""
    ts = int(time.time())
    digest = keccak(b"traceledger-handshake" + CHAIN_ID.to_bytes(8, "big") + address + ts.to_bytes(8, "big"))
    body = rlp.encode([CHAIN_ID, address, ts, key.sign_msg_hash(digest).to_bytes(), 30303])
    return frame(KIND_HANDSHAKE, body) + frame(KIND_CONSENSUS, b"plain payload")


def test_old_plain_tcp_client_is_disconnected_and_the_node_stays_healthy():
    async def scenario():
        port_a, port_b = free_port(), free_port()
        rec_a, rec_b = Recorder(), Recorder()
        b = make_transport(KEY_B, port_b, [], {ADDR_A}, rec_b)
        await b.start()
        try:
            # a validator key B admits, speaking the old plain protocol, is closed without being heard
            reader, writer = await asyncio.open_connection("127.0.0.1", port_b)
            writer.write(_old_plain_handshake(KEY_A, ADDR_A))
            await writer.drain()
            assert await asyncio.wait_for(reader.read(1), TIMEOUT) == b""
            writer.close()
            await wait_for(lambda: rec_b.counters == ["handshake_refused"])
            assert rec_b.frames == []
            # B still admits an encrypted peer afterwards
            a = make_transport(KEY_A, port_a, [PeerAddress(ADDR_B, "127.0.0.1", port_b)], {ADDR_B}, rec_a)
            await a.start()
            try:
                a.send(ADDR_B, KIND_CONSENSUS, b"encrypted")
                await wait_for(lambda: rec_b.frames == [(ADDR_A, KIND_CONSENSUS, b"encrypted")])
            finally:
                await a.stop()
        finally:
            await b.stop()

    asyncio.run(scenario())


def test_listener_with_another_identity_than_dialled_is_refused():
    async def scenario():
        port_a, port_c = free_port(), free_port()
        rec_a, rec_c = Recorder(), Recorder()
        # A believes B listens on C's port; C is admitted by A, but it is not B
        a = make_transport(KEY_A, port_a, [PeerAddress(ADDR_B, "127.0.0.1", port_c)], {ADDR_B, ADDR_C}, rec_a)
        c = make_transport(KEY_C, port_c, [], {ADDR_A}, rec_c)
        await c.start()
        await a.start()
        try:
            a.send(ADDR_B, KIND_CONSENSUS, b"for B only")
            await wait_for(lambda: "handshake_refused" in rec_a.counters, timeout=15.0)
            # C, admitted by A, may dial A back and get a link of its own; no link ever counts as B's
            assert not a.is_connected(ADDR_B)
            await asyncio.sleep(0.2)
            assert all(f[2] != b"for B only" for f in rec_c.frames)
        finally:
            await a.stop()
            await c.stop()

    asyncio.run(scenario())


class TamperingRelay(LinkProxy):
    """A relay in the middle of A → B that records what passes and can flip one byte of the next chunk."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        super().__init__("mitm", listen_port, target_port)
        self.seen = bytearray()
        self.flip_next = False

    async def _pump(self, reader, writer, epoch: int = 0) -> None:
        towards_b = writer.get_extra_info("peername")[1] == self.target_port
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                self.seen += chunk
                if towards_b and self.flip_next and len(chunk) > 2:
                    self.flip_next = False
                    chunk = chunk[:-1] + bytes([chunk[-1] ^ 0x01])
                writer.write(chunk)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            writer.close()


def test_relay_in_the_middle_reads_nothing_and_a_flipped_byte_closes_the_link():
    async def scenario():
        port_a, port_b, port_relay = free_port(), free_port(), free_port()
        rec_a, rec_b = Recorder(), Recorder()
        relay = TamperingRelay(port_relay, port_b)
        await relay.start()
        a = make_transport(KEY_A, port_a, [PeerAddress(ADDR_B, "127.0.0.1", port_relay)], {ADDR_B}, rec_a)
        b = make_transport(KEY_B, port_b, [], {ADDR_A}, rec_b)
        await b.start()
        await a.start()
        try:
            secret = b"coil HK52791 certificate digest " * 4
            a.send(ADDR_B, KIND_CONSENSUS, secret)
            await wait_for(lambda: len(rec_b.frames) == 1)
            assert rec_b.frames == [(ADDR_A, KIND_CONSENSUS, secret)]
            assert b"coil HK52791" not in relay.seen and ADDR_A not in relay.seen  # encrypted, identity too
            relay.flip_next = True
            a.send(ADDR_B, KIND_CONSENSUS, b"altered in flight")
            await wait_for(lambda: "link_tampered" in rec_b.counters)
            assert all(f[2] != b"altered in flight" and b"altered" not in f[2] for f in rec_b.frames)
            # the dialler notices the closed link and comes back on a fresh session (a frame written into the
            # dying link is lost, as on any dropped link: send until one arrives)
            for _ in range(30):
                a.send(ADDR_B, KIND_CONSENSUS, b"after")
                with contextlib.suppress(AssertionError):
                    await wait_for(lambda: rec_b.frames[-1][2] == b"after", timeout=1.0)
                    break
            assert rec_b.frames[-1][2] == b"after"
        finally:
            await a.stop()
            await b.stop()
            await relay.close()

    asyncio.run(scenario())
