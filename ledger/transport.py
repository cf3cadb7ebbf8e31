"""Encrypted, mutually authenticated peer links: Noise XX sessions bound to the node keys, framed messages,
heartbeats, per-peer send queues.

**Session.** Every TCP connection starts with a Noise handshake, pattern XX over X25519, ChaCha20-Poly1305
and SHA-256 (``Noise_XX_25519_ChaChaPoly_SHA256``, the Noise Protocol Framework rev. 34, implemented by the
``noiseprotocol`` package), prologue ``"traceledger/link/1" || chainId (8 bytes)``. Each Noise message on the
wire is ``uint16 big-endian length || message`` (Noise §3: at most 65,535 bytes). The Noise static keys are
made fresh by each process; they are bound to the node identity by the first transport message of each side,
a HANDSHAKE frame whose body is ``RLP([chainId, address20, unixTime, signature65, listenPort])``: the
signature is by the node's secp256k1 key over :func:`link_auth_digest`, i.e. ``keccak256("traceledger-link" ||
chainId(8) || role || handshakeHash(32) || address || unixTime(8))`` with role ``I`` (dialler) or ``R``
(listener). The handshake hash covers both static and both ephemeral keys (Noise §11.2, channel binding), so
a signature made for one session proves nothing in another: a relay that runs its own Noise sessions with
both ends cannot present their identities, and one that relays the bytes unchanged reads nothing and can
alter nothing (a changed byte fails the Poly1305 tag and the link is closed, counted ``link_tampered``).

Both ends refuse (close, counted ``handshake_refused``) a peer whose signature does not recover to a known
validator or observer address (``allowed``), is for another chain, or whose time differs from ours by more
than :data:`HANDSHAKE_MAX_AGE_S` seconds (keep validator clocks NTP-synchronised); the dialler also refuses a
listener that is not the node it dialled. A connection that does not start with a Noise first message of the
expected size (e.g. the old plain-TCP handshake) or does not finish the handshake within
:data:`HANDSHAKE_TIMEOUT_S` is closed.

**Frames.** Inside the session the byte stream carries frames ``uint32 big-endian length || kind (1 byte) ||
body``, split over as many Noise messages as needed. Consensus messages also carry their own signature by
their author (checked by the consensus core against the validator set of their height), so a relaying peer
cannot forge them.

**Links.** Each node dials every peer and keeps that outbound connection for sending; inbound connections
are for receiving. The dialler sends a PING every :data:`HEARTBEAT_INTERVAL_S`; the listener answers each
with a PONG on the same connection. A dialler that has heard no PONG for :data:`HEARTBEAT_TIMEOUT_S`, or
whose write does not drain within :data:`WRITE_TIMEOUT_S`, drops the link and redials; a listener that has
received nothing for :data:`HEARTBEAT_TIMEOUT_S` drops it too. So a silently dead link (a cable, a firewall
losing state, a frozen host) is replaced within a few seconds instead of waiting on TCP's retransmission
backoff. A peer that is down gets a bounded queue (oldest frames dropped) and is redialled with capped
exponential backoff (at most :data:`BACKOFF_MAX_S`, each connect attempt bounded by :data:`DIAL_TIMEOUT_S`);
``on_link_up(peer)`` runs when a link in either direction is authenticated (the node asks that peer for the
blocks it missed at once: the answer travels on the peer's outbound link, just re-established when the peer
dialled us). When an admitted node that is not in our peer list connects (a validator voted in, an
observer), we dial it back at its source host and advertised ``listenPort``, so new nodes need only know the
existing ones. Each inbound link is rate limited (token bucket of :data:`FLOOD_RATE` frames/s, burst
:data:`FLOOD_BURST`); excess frames are dropped and counted ``flood``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import rlp
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_utils import keccak
from noise.connection import Keypair, NoiseConnection

from provenance.qbft_header import recover_seal_signer

log = logging.getLogger("ledger.transport")

KIND_HANDSHAKE = 0x00
KIND_CONSENSUS = 0x01
KIND_TRANSACTION = 0x02
KIND_SYNC_REQUEST = 0x03
KIND_SYNC_RESPONSE = 0x04
#: Heartbeat request (dialler → listener) and answer (listener → dialler); handled by the transport itself.
KIND_PING = 0x05
KIND_PONG = 0x06

MAX_FRAME_BYTES = 16 * 1024 * 1024
#: Largest clock difference (seconds) between two nodes whose link is accepted.
HANDSHAKE_MAX_AGE_S = 300
#: Seconds a new connection has to complete the Noise handshake and the identity exchange.
HANDSHAKE_TIMEOUT_S = 3.0
#: Seconds a TCP connect may take before the dialler gives up and retries.
DIAL_TIMEOUT_S = 2.0
#: Seconds between two PINGs on an outbound link.
HEARTBEAT_INTERVAL_S = 1.0
#: Seconds without a PONG (dialler) or any frame (listener) after which a link is taken as dead.
HEARTBEAT_TIMEOUT_S = 4.0
#: Seconds a write may wait for the socket to drain before the link is taken as dead.
WRITE_TIMEOUT_S = 4.0
QUEUE_LIMIT = 5_000
BACKOFF_MAX_S = 1.0
#: Frames per second an inbound link may carry on average, and its burst (token bucket).
FLOOD_RATE = 2_000.0
FLOOD_BURST = 4_000.0

NOISE_PROTOCOL = b"Noise_XX_25519_ChaChaPoly_SHA256"
NOISE_PROLOGUE = b"traceledger/link/1"
#: Largest Noise message (Noise §3) and the plaintext one carries (16-byte Poly1305 tag).
NOISE_MAX_MESSAGE = 65535
NOISE_MAX_PLAINTEXT = NOISE_MAX_MESSAGE - 16
#: Size of the dialler's first Noise XX message: its ephemeral X25519 key and an empty payload.
NOISE_XX_FIRST_MESSAGE = 32
ROLE_DIALLER = b"I"
ROLE_LISTENER = b"R"

Handler = Callable[[bytes, int, bytes], Awaitable[None] | None]


class LinkRefused(Exception):
    """A connection was not admitted as a link; the message says why."""


class LinkTampered(Exception):
    """A Noise message on an established link failed its authentication tag (changed or forged bytes)."""


@dataclass(frozen=True)
class PeerAddress:
    """A peer's 20-byte node address and where it listens."""

    address: bytes
    host: str
    port: int


@dataclass(frozen=True)
class LinkIdentity:
    """What a node proves on each link: ``chain_id``, its 20-byte ``address``, ``sign(hash32) -> sig65`` with
    its secp256k1 key, the ``listen_port`` it advertises, and its Noise X25519 static private key (32 bytes)."""

    chain_id: int
    address: bytes
    sign: Callable[[bytes], bytes]
    listen_port: int
    static_key: bytes


def new_static_key() -> bytes:
    """A fresh X25519 private key (32 bytes) for one process's Noise sessions."""
    return X25519PrivateKey.generate().private_bytes_raw()


def link_auth_digest(chain_id: int, role: bytes, handshake_hash: bytes, address: bytes, timestamp: int) -> bytes:
    """The 32-byte hash a node signs to bind its key to one Noise session:
    ``keccak256("traceledger-link" || chainId(8) || role || handshakeHash || address || unixTime(8))``."""
    return keccak(b"traceledger-link" + chain_id.to_bytes(8, "big") + role + handshake_hash + address
                  + timestamp.to_bytes(8, "big"))


def frame(kind: int, body: bytes) -> bytes:
    """Length-prefixed frame bytes."""
    return struct.pack(">IB", len(body) + 1, kind) + body


class SecureLink:
    """One established Noise session over a TCP connection: frames in, frames out, encrypted.

    ``peer`` is the authenticated 20-byte address of the other end, ``listen_port`` the port it advertised.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, noise: NoiseConnection) -> None:
        self.reader = reader
        self.writer = writer
        self.noise = noise
        self.peer = b""
        self.listen_port: int | None = None
        self._plain = bytearray()

    def write(self, data: bytes) -> None:
        """Encrypt ``data`` (one or more whole frames) into Noise messages and queue them on the socket."""
        view = memoryview(data)
        for start in range(0, len(view), NOISE_MAX_PLAINTEXT):
            sealed = self.noise.encrypt(bytes(view[start:start + NOISE_MAX_PLAINTEXT]))
            self.writer.write(struct.pack(">H", len(sealed)) + sealed)

    async def drain(self, timeout: float = WRITE_TIMEOUT_S) -> None:
        """Wait until the socket took the queued bytes; TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            await self.writer.drain()

    async def _read_message(self) -> None:
        (length,) = struct.unpack(">H", await self.reader.readexactly(2))
        if length < 16:
            raise LinkTampered(f"Noise message of {length} bytes is shorter than its tag")
        sealed = await self.reader.readexactly(length)
        try:
            self._plain += self.noise.decrypt(sealed)
        except Exception as exc:  # InvalidTag (cryptography) or NoiseInvalidMessage
            raise LinkTampered(f"Noise message failed authentication: {type(exc).__name__}") from exc

    async def read_frame(self) -> tuple[int, bytes]:
        """The next frame ``(kind, body)``; raises LinkTampered, IncompleteReadError or ValueError (bad length)."""
        while len(self._plain) < 5:
            await self._read_message()
        length, kind = struct.unpack(">IB", self._plain[:5])
        if length < 1 or length > MAX_FRAME_BYTES:
            raise ValueError(f"frame length {length} out of range")
        while len(self._plain) < 4 + length:
            await self._read_message()
        body = bytes(self._plain[5:4 + length])
        del self._plain[:4 + length]
        return kind, body

    def close(self) -> None:
        """Close the TCP connection."""
        self.writer.close()


async def _write_noise(writer: asyncio.StreamWriter, message: bytes) -> None:
    writer.write(struct.pack(">H", len(message)) + message)
    await writer.drain()


async def _read_noise(reader: asyncio.StreamReader, expected_length: int | None = None) -> bytes:
    (length,) = struct.unpack(">H", await reader.readexactly(2))
    if expected_length is not None and length != expected_length:
        raise LinkRefused(f"not a Noise XX first message ({length} bytes; a plain or foreign protocol?)")
    return await reader.readexactly(length)


def _identity_frame(me: LinkIdentity, role: bytes, handshake_hash: bytes) -> bytes:
    ts = int(time.time())
    sig = me.sign(link_auth_digest(me.chain_id, role, handshake_hash, me.address, ts))
    return frame(KIND_HANDSHAKE, rlp.encode([me.chain_id, me.address, ts, sig, me.listen_port]))


def check_identity(
    body: bytes, *, chain_id: int, role: bytes, handshake_hash: bytes, allowed: set[bytes], own: bytes,
    now: float | None = None,
) -> tuple[bytes, int | None]:
    """The peer's ``(address, listenPort | None)`` from its HANDSHAKE frame body, or LinkRefused naming why.

    Checks: well-formed RLP ``[chainId, address20, unixTime, sig65(, listenPort)]``, our chain, time within
    :data:`HANDSHAKE_MAX_AGE_S` of ``now``, the signature over :func:`link_auth_digest` (with the peer's
    ``role`` and this session's ``handshake_hash``) recovers to the address, and the address is ``allowed``
    and not our own.
    """
    try:
        items = rlp.decode(body)
        if not isinstance(items, list) or len(items) not in (4, 5):
            raise ValueError("wrong item count")
        chain_raw, address, ts_raw, sig = items[:4]
        peer_chain = int.from_bytes(chain_raw, "big")
        ts = int.from_bytes(ts_raw, "big")
        port = int.from_bytes(items[4], "big") if len(items) == 5 else None
        if len(address) != 20:
            raise ValueError("address is not 20 bytes")
    except Exception as exc:
        raise LinkRefused(f"malformed identity: {exc}") from exc
    if peer_chain != chain_id:
        raise LinkRefused(f"identity for chain {peer_chain}, not {chain_id}")
    skew = abs((time.time() if now is None else now) - ts)
    if skew > HANDSHAKE_MAX_AGE_S:
        raise LinkRefused(f"clock skew {skew:.0f} s exceeds {HANDSHAKE_MAX_AGE_S} s")
    try:
        signer = recover_seal_signer(link_auth_digest(chain_id, role, handshake_hash, address, ts), sig)
    except Exception as exc:
        raise LinkRefused(f"bad identity signature: {exc}") from exc
    if signer != address:
        raise LinkRefused(f"identity 0x{bytes(address).hex()} signed by another key")
    if address == own or address not in allowed:
        raise LinkRefused(f"node 0x{bytes(address).hex()} is not in the validator set or allowlist")
    return bytes(address), port


async def open_link(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, me: LinkIdentity, *, dialler: bool,
    allowed: set[bytes], expected: bytes | None = None,
) -> SecureLink:
    """Run the Noise XX handshake and the identity exchange on a fresh connection; returns the link.

    ``dialler`` is True on the side that connected. ``expected`` (dialler) is the address it meant to reach.
    Raises LinkRefused (or IncompleteReadError / OSError when the other end goes away); the caller closes.
    """
    noise = NoiseConnection.from_name(NOISE_PROTOCOL)
    noise.set_prologue(NOISE_PROLOGUE + me.chain_id.to_bytes(8, "big"))
    noise.set_keypair_from_private_bytes(Keypair.STATIC, me.static_key)
    link = SecureLink(reader, writer, noise)
    try:
        if dialler:
            noise.set_as_initiator()
            noise.start_handshake()
            await _write_noise(writer, noise.write_message())  # -> e
            noise.read_message(await _read_noise(reader))  # <- e, ee, s, es
            message3 = noise.write_message()  # -> s, se
            writer.write(struct.pack(">H", len(message3)) + message3)
        else:
            noise.set_as_responder()
            noise.start_handshake()
            noise.read_message(await _read_noise(reader, NOISE_XX_FIRST_MESSAGE))
            await _write_noise(writer, noise.write_message())
            noise.read_message(await _read_noise(reader))
    except LinkRefused:
        raise
    except (asyncio.IncompleteReadError, ConnectionError, OSError):
        raise
    except Exception as exc:  # noise's own errors, InvalidTag on a wrong prologue
        raise LinkRefused(f"Noise handshake failed: {type(exc).__name__}: {exc}") from exc
    hh = noise.get_handshake_hash()
    own_role, peer_role = (ROLE_DIALLER, ROLE_LISTENER) if dialler else (ROLE_LISTENER, ROLE_DIALLER)
    link.write(_identity_frame(me, own_role, hh))
    await link.drain()
    try:
        kind, body = await link.read_frame()
    except LinkTampered as exc:
        raise LinkRefused(str(exc)) from exc
    if kind != KIND_HANDSHAKE:
        raise LinkRefused(f"first frame is kind {kind}, not an identity")
    link.peer, link.listen_port = check_identity(
        body, chain_id=me.chain_id, role=peer_role, handshake_hash=hh, allowed=allowed, own=me.address)
    if expected is not None and link.peer != expected:
        raise LinkRefused(f"dialled 0x{expected.hex()} but 0x{link.peer.hex()} answered")
    return link


class Transport:
    """Encrypted, authenticated TCP links to every peer; calls ``on_frame(author, kind, body)`` for each frame
    received (heartbeats excepted).

    ``allowed`` returns the set of addresses that may connect (validators and observers), checked at
    handshake time. ``sign(hash32) -> sig65`` signs with this node's key. ``on_counter(name)`` counts refusals
    (``handshake_refused``, ``link_tampered``, ``flood``, ``send_queue_overflow``) and link events
    (``link_dead``: heartbeat or write timeout). ``on_link_up(peer)`` runs when a link with ``peer`` comes up.
    """

    def __init__(
        self, *, chain_id: int, address: bytes, sign: Callable[[bytes], bytes], host: str, port: int,
        peers: list[PeerAddress], allowed: Callable[[], set[bytes]], on_frame: Handler,
        on_counter: Callable[[str], None] | None = None, on_link_up: Callable[[bytes], None] | None = None,
        advertise_port: int | None = None,
    ) -> None:
        self.chain_id = chain_id
        #: the port peers dial us back at (the identity's ``listenPort``; differs from ``port`` behind NAT)
        self.advertise_port = advertise_port or port
        self.address = address
        self.sign = sign
        self.host = host
        self.port = port
        self.peers = {p.address: p for p in peers if p.address != address}
        self.allowed = allowed
        self.on_frame = on_frame
        self.on_counter = on_counter or (lambda name: None)
        self.on_link_up = on_link_up or (lambda peer: None)
        self.identity = LinkIdentity(chain_id, address, sign, self.advertise_port, new_static_key())
        self._queues: dict[bytes, asyncio.Queue[bytes]] = {a: asyncio.Queue() for a in self.peers}
        self._connected: set[bytes] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._dialers: dict[bytes, asyncio.Task[None]] = {}
        self._server: asyncio.base_events.Server | None = None
        self._readers: set[asyncio.Task[None]] = set()
        self._running = False

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Listen for peers on ``host:port`` and start dialling every known peer (reconnecting with backoff)."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self._running = True
        for peer in self.peers.values():
            self._dialers[peer.address] = asyncio.create_task(self._dial_loop(peer))

    def add_peer(self, peer: PeerAddress) -> bool:
        """Start sending to ``peer`` (no-op, False, when it is us or already known)."""
        if peer.address == self.address or peer.address in self.peers:
            return False
        self.peers[peer.address] = peer
        self._queues[peer.address] = asyncio.Queue()
        if self._running:
            self._dialers[peer.address] = asyncio.create_task(self._dial_loop(peer))
        log.info("added peer 0x%s at %s:%d", peer.address.hex(), peer.host, peer.port)
        return True

    def remove_peer(self, address: bytes) -> bool:
        """Stop dialling and sending to ``address`` (its queued frames are dropped); False when unknown.
        An admitted node may still connect in (and is then dialled back)."""
        if self.peers.pop(address, None) is None:
            return False
        self._queues.pop(address, None)
        task = self._dialers.pop(address, None)
        if task is not None:
            task.cancel()
        self._connected.discard(address)
        log.info("removed peer 0x%s", address.hex())
        return True

    def is_connected(self, address: bytes) -> bool:
        """Whether our outbound link to ``address`` is up."""
        return address in self._connected

    async def stop(self) -> None:
        """Cancel every dial and reader task and stop listening; queued frames are dropped."""
        self._running = False
        dialers = list(self._dialers.values())
        for task in self._tasks + dialers + list(self._readers):
            task.cancel()
        if self._server is not None:
            self._server.close()
        if self._tasks or dialers:
            await asyncio.wait(self._tasks + dialers, timeout=5.0)

    def connected_peers(self) -> int:
        """How many peers have a live, authenticated connection now."""
        return len(self._connected)

    # ------------------------------------------------------------ sending
    def send(self, peer: bytes, kind: int, body: bytes) -> None:
        """Queue a frame for ``peer``; when its queue is full the oldest frame is dropped."""
        queue = self._queues.get(peer)
        if queue is None:
            return
        if queue.qsize() >= QUEUE_LIMIT:
            queue.get_nowait()
            self.on_counter("send_queue_overflow")
        queue.put_nowait(frame(kind, body))

    def broadcast(self, kind: int, body: bytes) -> None:
        """Queue a frame for every peer."""
        for peer in self.peers:
            self.send(peer, kind, body)

    async def _dial_loop(self, peer: PeerAddress) -> None:
        backoff = 0.05
        while self._running:
            try:
                async with asyncio.timeout(DIAL_TIMEOUT_S):
                    reader, writer = await asyncio.open_connection(peer.host, peer.port)
            except (OSError, TimeoutError):
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            link: SecureLink | None = None
            try:
                async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                    link = await open_link(reader, writer, self.identity, dialler=True, allowed=self.allowed(),
                                           expected=peer.address)
            except LinkRefused as exc:
                self.on_counter("handshake_refused")
                log.warning("link to 0x%s at %s:%d refused: %s", peer.address.hex(), peer.host, peer.port, exc)
            except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
                pass
            if link is None:
                writer.close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = 0.05
            self._connected.add(peer.address)
            self._link_up(peer.address)
            try:
                await self._send_loop(peer, link)
            except (OSError, ConnectionError):
                pass
            finally:
                self._connected.discard(peer.address)
                link.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            await asyncio.sleep(backoff)

    def _link_up(self, peer: bytes) -> None:
        try:
            self.on_link_up(peer)
        except Exception:  # a callback must not kill the link
            log.exception("on_link_up failed for 0x%s", peer.hex())

    async def _send_loop(self, peer: PeerAddress, link: SecureLink) -> None:
        """Send queued frames and heartbeats until the link fails or its heartbeat stops."""
        queue = self._queues[peer.address]
        last_pong = [time.monotonic()]
        reader_task = asyncio.create_task(self._read_pongs(link, last_pong))
        next_ping = 0.0
        try:
            while not reader_task.done():
                now = time.monotonic()
                if now - last_pong[0] > HEARTBEAT_TIMEOUT_S:
                    self._link_dead(peer.address, f"no heartbeat answer for {now - last_pong[0]:.1f} s")
                    return
                if now >= next_ping:
                    link.write(frame(KIND_PING, struct.pack(">d", now)))
                    next_ping = now + HEARTBEAT_INTERVAL_S
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({get, reader_task}, timeout=max(0.0, next_ping - time.monotonic()),
                                             return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    chunks = [get.result()]
                    while not queue.empty():  # coalesce whatever else is queued before draining
                        chunks.append(queue.get_nowait())
                    link.write(b"".join(chunks))
                else:
                    get.cancel()
                try:
                    await link.drain()
                except TimeoutError:
                    self._link_dead(peer.address, f"write did not drain within {WRITE_TIMEOUT_S} s")
                    return
        finally:
            reader_task.cancel()

    def _link_dead(self, peer: bytes, why: str) -> None:
        self.on_counter("link_dead")
        log.warning("link to 0x%s dropped: %s", peer.hex(), why)

    async def _read_pongs(self, link: SecureLink, last_pong: list[float]) -> None:
        # the listener writes only PONGs on our outbound link; EOF, a reset or a bad tag ends the link
        with contextlib.suppress(OSError, ConnectionError, asyncio.IncompleteReadError, LinkTampered, ValueError):
            while True:
                kind, _ = await link.read_frame()
                if kind == KIND_PONG:
                    last_pong[0] = time.monotonic()

    # ------------------------------------------------------------ receiving
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._readers.add(task)
        try:
            try:
                async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                    link = await open_link(reader, writer, self.identity, dialler=False, allowed=self.allowed())
            except (LinkRefused, TimeoutError) as exc:
                self.on_counter("handshake_refused")
                log.warning("refused connection from %s: %s", writer.get_extra_info("peername"),
                            exc if str(exc) else "handshake timed out")
                return
            author = link.peer
            if author not in self.peers and link.listen_port:
                peername = writer.get_extra_info("peername")
                if peername:
                    self.add_peer(PeerAddress(author, str(peername[0]), link.listen_port))
            self._link_up(author)
            await self._receive_loop(link)
        except LinkTampered as exc:
            self.on_counter("link_tampered")
            log.warning("closed a link: %s", exc)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError, TimeoutError,
                asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                self._readers.discard(task)
            writer.close()

    async def _receive_loop(self, link: SecureLink) -> None:
        author = link.peer
        tokens, last = FLOOD_BURST, time.monotonic()
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT_TIMEOUT_S):
                    kind, body = await link.read_frame()
            except TimeoutError:
                self.on_counter("link_dead")
                log.warning("inbound link from 0x%s dropped: silent for %.0f s", author.hex(), HEARTBEAT_TIMEOUT_S)
                return
            if kind == KIND_PING:
                link.write(frame(KIND_PONG, body[:8]))
                await link.drain()
                continue
            now = time.monotonic()
            tokens = min(FLOOD_BURST, tokens + (now - last) * FLOOD_RATE)
            last = now
            if tokens < 1.0:
                self.on_counter("flood")
                continue
            tokens -= 1.0
            try:
                result = self.on_frame(author, kind, body)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # a bad frame must not kill the link
                log.exception("handler failed for frame kind %d from 0x%s", kind, author.hex())
