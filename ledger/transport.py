"""TCP transport between nodes: authenticated connections, framed messages, per-peer send queues.

Wire format: every frame is ``uint32 big-endian length || kind (1 byte) || body``. The first frame on
a connection is a HANDSHAKE whose body is ``RLP([chainId, address20, unixTime, signature65, listenPort])``
(``listenPort`` optional, so 4-item handshakes stay valid); the
signature is by the dialling node's key over ``keccak256("traceledger-handshake" || chainId(8 bytes) ||
address || unixTime(8 bytes))``. The listener refuses (closes) a connection whose handshake does not
recover to a known validator or observer address, is for another chain, or is older than
:data:`HANDSHAKE_MAX_AGE_S`. Consensus messages carry their own signature by their author (checked by
the consensus core against the validator set of their height), so a relaying peer cannot forge them.

Each node dials every peer and keeps that outbound connection for sending; inbound connections are
for receiving. A peer that is down gets a bounded queue (oldest frames dropped) and is redialled with
capped exponential backoff. When an admitted node that is not in our peer list connects (a validator
voted in, an observer), we dial it back at its source host and advertised ``listenPort``, so new nodes
need only know the existing ones. Each inbound link is rate limited (token bucket of
:data:`FLOOD_RATE` frames/s, burst :data:`FLOOD_BURST`); excess frames are dropped and counted ``flood``.
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
from eth_utils import keccak

from provenance.qbft_header import recover_seal_signer

log = logging.getLogger("ledger.transport")

KIND_HANDSHAKE = 0x00
KIND_CONSENSUS = 0x01
KIND_TRANSACTION = 0x02
KIND_SYNC_REQUEST = 0x03
KIND_SYNC_RESPONSE = 0x04

MAX_FRAME_BYTES = 16 * 1024 * 1024
HANDSHAKE_MAX_AGE_S = 300
QUEUE_LIMIT = 5_000
BACKOFF_MAX_S = 2.0
#: Frames per second an inbound link may carry on average, and its burst (token bucket).
FLOOD_RATE = 2_000.0
FLOOD_BURST = 4_000.0

Handler = Callable[[bytes, int, bytes], Awaitable[None] | None]


@dataclass(frozen=True)
class PeerAddress:
    """A peer's 20-byte node address and where it listens."""

    address: bytes
    host: str
    port: int


def handshake_digest(chain_id: int, address: bytes, timestamp: int) -> bytes:
    """The 32-byte hash a node signs to prove its key when it dials a peer."""
    return keccak(b"traceledger-handshake" + chain_id.to_bytes(8, "big") + address + timestamp.to_bytes(8, "big"))


def frame(kind: int, body: bytes) -> bytes:
    """Length-prefixed frame bytes."""
    return struct.pack(">IB", len(body) + 1, kind) + body


class Transport:
    """Authenticated TCP links to every peer; calls ``on_frame(author, kind, body)`` for each frame received.

    ``allowed`` returns the set of addresses that may connect (validators and observers), checked at
    handshake time. ``sign(hash32) -> sig65`` signs with this node's key.
    """

    def __init__(
        self, *, chain_id: int, address: bytes, sign: Callable[[bytes], bytes], host: str, port: int,
        peers: list[PeerAddress], allowed: Callable[[], set[bytes]], on_frame: Handler,
        on_counter: Callable[[str], None] | None = None, advertise_port: int | None = None,
    ) -> None:
        self.chain_id = chain_id
        #: the port peers dial us back at (the handshake's ``listenPort``; differs from ``port`` behind NAT)
        self.advertise_port = advertise_port or port
        self.address = address
        self.sign = sign
        self.host = host
        self.port = port
        self.peers = {p.address: p for p in peers if p.address != address}
        self.allowed = allowed
        self.on_frame = on_frame
        self.on_counter = on_counter or (lambda name: None)
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
        for task in self._tasks + list(self._dialers.values()) + list(self._readers):
            task.cancel()
        if self._server is not None:
            self._server.close()
        for task in self._tasks + list(self._dialers.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

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
        queue = self._queues[peer.address]
        while True:
            try:
                reader, writer = await asyncio.open_connection(peer.host, peer.port)
            except OSError:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = 0.05
            try:
                ts = int(time.time())
                sig = self.sign(handshake_digest(self.chain_id, self.address, ts))
                hello = rlp.encode([self.chain_id, self.address, ts, sig, self.advertise_port])
                writer.write(frame(KIND_HANDSHAKE, hello))
                await writer.drain()
                self._connected.add(peer.address)
                reader_task = asyncio.create_task(self._watch_close(reader))
                while not reader_task.done():
                    get = asyncio.create_task(queue.get())
                    done, _ = await asyncio.wait({get, reader_task}, return_when=asyncio.FIRST_COMPLETED)
                    if get not in done:
                        get.cancel()
                        break
                    data = get.result()
                    writer.write(data)
                    # coalesce whatever else is queued before draining
                    while not queue.empty():
                        writer.write(queue.get_nowait())
                    await writer.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                self._connected.discard(peer.address)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            await asyncio.sleep(backoff)

    @staticmethod
    async def _watch_close(reader: asyncio.StreamReader) -> None:
        # the peer never writes on our outbound link; EOF (or a reset) means it went away
        with contextlib.suppress(OSError, ConnectionError):
            while await reader.read(4096):
                pass

    # ------------------------------------------------------------ receiving
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._readers.add(task)
        try:
            kind, body = await self._read_frame(reader)
            author = self._check_handshake(kind, body)
            if author is None:
                self.on_counter("handshake_refused")
                return
            if author not in self.peers:
                port = self._advertised_port(body)
                peername = writer.get_extra_info("peername")
                if port and peername:
                    self.add_peer(PeerAddress(author, str(peername[0]), port))
            tokens, last = FLOOD_BURST, time.monotonic()
            while True:
                kind, body = await self._read_frame(reader)
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
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError, asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                self._readers.discard(task)
            writer.close()

    async def _read_frame(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        header = await reader.readexactly(5)
        length, kind = struct.unpack(">IB", header)
        if length < 1 or length > MAX_FRAME_BYTES:
            raise ValueError(f"frame length {length} out of range")
        return kind, await reader.readexactly(length - 1)

    @staticmethod
    def _advertised_port(body: bytes) -> int | None:
        try:
            items = rlp.decode(body)
            return int.from_bytes(items[4], "big") if len(items) == 5 else None
        except Exception:
            return None

    def _check_handshake(self, kind: int, body: bytes) -> bytes | None:
        if kind != KIND_HANDSHAKE:
            return None
        try:
            items = rlp.decode(body)
            if len(items) not in (4, 5):
                return None
            chain_id_raw, address, ts_raw, sig = items[:4]
            chain_id = int.from_bytes(chain_id_raw, "big")
            ts = int.from_bytes(ts_raw, "big")
            if chain_id != self.chain_id or abs(time.time() - ts) > HANDSHAKE_MAX_AGE_S:
                return None
            signer = recover_seal_signer(handshake_digest(chain_id, address, ts), sig)
        except Exception:
            return None
        if signer != address or address not in self.allowed():
            log.warning("refused connection from unknown node 0x%s", bytes(address).hex())
            return None
        return address
