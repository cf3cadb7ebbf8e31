"""Catch-up sync: a validator or observer that is behind fetches finalized blocks from a peer.

Wire format (transport frame kinds ``KIND_SYNC_REQUEST`` / ``KIND_SYNC_RESPONSE``):

* request: ``RLP([start, count])`` -- the first block number wanted and how many (at most :data:`SYNC_BATCH`);
* response: ``RLP([[block, round, [seal, ...]], ...])`` -- consecutive finalized blocks (RLP Shanghai blocks
  as stored, extraData without round and seals), each with its commit round and 65-byte commit seals.

Each block is imported through :meth:`ledger.chain.Ledger.import_sealed`: its seals must hold a quorum of
distinct validators of its height, and it must pass :meth:`ledger.chain.Ledger.check_block`, the same
validity rule a PROPOSAL passes (one function on both paths). A malformed response or item, or a block
refused, never raises out of :meth:`CatchUpSync.import_response`: the batch stops there, the blocks already
imported stay (and the node's follow-up -- restart consensus at the new head -- runs), and the sending
peer is **penalised**: it is not asked again, and its responses are ignored, for
:data:`PENALTY_S` seconds (``qbft_sync_penalties_total{reason}``). Responses from peers we did not ask
within :data:`REQUEST_TTL_S` are dropped (``unsolicited sync response``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import rlp
from eth_utils import to_checksum_address
from prometheus_client import CollectorRegistry, Counter

from ledger.chain import Ledger, decode_block, encode_block
from ledger.consensus import InvalidMessage, decode_message

log = logging.getLogger("ledger.sync")

#: Blocks a peer sends per sync response.
SYNC_BATCH = 64
#: Seconds a peer that sent a malformed or invalid sync response is neither asked nor listened to.
PENALTY_S = 60.0
#: Seconds a sync request stays open: a response from a peer asked longer ago (or never) is dropped.
REQUEST_TTL_S = 10.0
#: Least seconds between two sync requests.
MIN_REQUEST_INTERVAL_S = 0.5


class SyncTransport(Protocol):
    """What sync needs from the transport: the connected peers and one-peer sends."""

    peers: Any  # mapping or set of connected peer addresses (20 bytes)

    def send(self, peer: bytes, kind: int, body: bytes) -> None:
        """Queue one frame of ``kind`` with ``body`` for ``peer`` (20-byte address)."""


class CatchUpSync:
    """Requests, answers and imports catch-up batches for one node.

    :param name: node name for the log.
    :param ledger: the node's chain.
    :param transport: sends frames (``send(peer, kind, body)``, ``peers``).
    :param request_kind: frame kind of requests; ``response_kind``: of responses.
    :param on_imported: called once with the number of blocks imported from a response (>= 1).
    :param on_dropped: called with a reason label for every refused frame (the node's drop metric).
    :param metrics: Prometheus registry for ``qbft_sync_penalties_total``.
    :param clock: monotonic seconds.
    """

    def __init__(
        self,
        name: str,
        ledger: Ledger,
        transport: SyncTransport,
        *,
        request_kind: int,
        response_kind: int,
        on_imported: Callable[[int], None],
        on_dropped: Callable[[str], None],
        metrics: CollectorRegistry,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.ledger = ledger
        self.transport = transport
        self.request_kind = request_kind
        self.response_kind = response_kind
        self.on_imported = on_imported
        self.on_dropped = on_dropped
        self.clock = clock
        self._last_request = -1e9
        self._asked: dict[bytes, float] = {}
        self.penalised: dict[bytes, float] = {}
        self.m_penalties = Counter("qbft_sync_penalties", "Peers penalised for bad sync responses", ["reason"],
                                   registry=metrics)

    # ------------------------------------------------------------------ requests
    def maybe_sync_from(self, author: bytes, body: bytes) -> None:
        """A consensus frame from ``author``: when it is about a height beyond head + 1, ask that peer."""
        try:
            msg = decode_message(body)
        except InvalidMessage:
            return
        if msg.signed.payload.height > self.ledger.height + 1:
            self.request(author)

    def usable(self, peer: bytes) -> bool:
        """False while ``peer`` serves a penalty."""
        until = self.penalised.get(peer)
        if until is None:
            return True
        if until <= self.clock():
            del self.penalised[peer]
            return True
        return False

    def request(self, peer: bytes | None = None, *, force: bool = False) -> None:
        """Ask ``peer`` (default: a random connected, unpenalised peer) for up to :data:`SYNC_BATCH` blocks
        after our head; at most one request per :data:`MIN_REQUEST_INTERVAL_S` unless ``force``."""
        now = self.clock()
        if not force and now - self._last_request < MIN_REQUEST_INTERVAL_S:
            return
        if peer is None or not self.usable(peer):
            candidates = [p for p in list(self.transport.peers) if self.usable(p)]
            if not candidates:
                return
            peer = random.choice(candidates)
        self._last_request = now
        self._asked[peer] = now
        self.transport.send(peer, self.request_kind, rlp.encode([self.ledger.height + 1, SYNC_BATCH]))

    # ------------------------------------------------------------------ answering
    def answer(self, author: bytes, body: bytes) -> None:
        """Send ``author`` the finalized blocks it asked for (a malformed request is counted and ignored)."""
        try:
            start_raw, count_raw = rlp.decode(body)
            start = int.from_bytes(start_raw, "big")
            count = min(int.from_bytes(count_raw, "big"), SYNC_BATCH)
        except Exception:
            self.on_dropped("bad sync request")
            return
        items = []
        for number in range(max(start, 1), min(start + count, self.ledger.height + 1)):
            header = self.ledger.header_at(number)
            record = self.ledger.seal_record(header.hash)
            if record is None:
                break
            block = self.ledger.chain.get_block_by_header(header)
            items.append([encode_block(block), record.round, list(record.seals)])
        self.transport.send(author, self.response_kind, rlp.encode(items))

    # ------------------------------------------------------------------ importing
    def penalise(self, peer: bytes, reason: str) -> None:
        """Stop asking and hearing ``peer`` for :data:`PENALTY_S` seconds; counted by ``reason``."""
        self.penalised[peer] = self.clock() + PENALTY_S
        self._asked.pop(peer, None)
        self.m_penalties.labels(reason).inc()
        self.on_dropped(reason)
        log.warning("%s: sync peer %s penalised for %.0f s: %s", self.name, to_checksum_address(peer),
                    PENALTY_S, reason)

    def import_response(self, author: bytes, body: bytes) -> int:
        """Import a sync response from ``author``; returns the number of blocks imported. Never raises:
        every refusal stops the batch and penalises ``author`` (see the module docstring)."""
        if not self.usable(author):
            self.on_dropped("sync response from penalised peer")
            return 0
        asked = self._asked.get(author)
        if asked is None or self.clock() - asked > REQUEST_TTL_S:
            self.on_dropped("unsolicited sync response")
            return 0
        del self._asked[author]
        imported = 0
        full = False
        try:
            imported, full = self._import_items(author, body)
        except Exception as exc:  # last line of defence: nothing a peer sends may escape
            log.exception("%s: unexpected error importing a sync response", self.name)
            self.penalise(author, f"bad synced block: {type(exc).__name__}")
        if imported:
            log.info("%s: caught up %d blocks to height %d", self.name, imported, self.ledger.height)
            self.on_imported(imported)
            if full:
                self.request(force=True)
        return imported

    def _import_items(self, author: bytes, body: bytes) -> tuple[int, bool]:
        try:
            items = rlp.decode(body)
        except Exception:
            self.penalise(author, "bad sync response")
            return 0, False
        if not isinstance(items, list):
            self.penalise(author, "bad sync response")
            return 0, False
        imported = 0
        for item in items:
            parsed = _parse_item(item)
            if parsed is None:
                self.penalise(author, "malformed synced item")
                break
            block_raw, round_, seals = parsed
            try:
                number = decode_block(block_raw).number
            except Exception:
                self.penalise(author, "malformed synced item")
                break
            if number <= self.ledger.height:
                continue
            if number != self.ledger.height + 1:
                self.penalise(author, "synced blocks out of order")
                break
            try:
                self.ledger.import_sealed(block_raw, round_, seals)
            except Exception as exc:  # InvalidBlock, or whatever py-evm raises on a hostile block
                log.warning("%s: refused synced block %d from %s: %s", self.name, number,
                            to_checksum_address(author), exc)
                self.penalise(author, "bad synced block")
                break
            imported += 1
        return imported, len(items) >= SYNC_BATCH and imported > 0


def _parse_item(item: Any) -> tuple[bytes, int, list[bytes]] | None:
    """``(block, round, seals)`` of a well-shaped response item, else ``None``."""
    if not isinstance(item, list) or len(item) != 3:
        return None
    block_raw, round_raw, seals = item
    if not isinstance(block_raw, bytes) or not isinstance(round_raw, bytes) or len(round_raw) > 8:
        return None
    if not isinstance(seals, list) or not all(isinstance(s, bytes) and len(s) == 65 for s in seals):
        return None
    return block_raw, int.from_bytes(round_raw, "big"), seals
