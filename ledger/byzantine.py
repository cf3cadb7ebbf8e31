"""Debug Byzantine behaviour of a node, for the fault-injection harness (:mod:`ledger.faults`) only.

``--byzantine equivocate``: after every PROPOSAL / PREPARE / COMMIT the node broadcasts, it sends a
second, conflicting one signed by its key (same height, round and type, other digest or block).
``--byzantine garbage``: the same, and every 0.2 s it floods its peers with frames honest nodes must drop:
junk bytes, a PREPARE signed by an unknown key, a stale PREPARE, duplicates of its latest real message,
junk transactions and a junk sync request. Never enable in production.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

from ledger.chain import decode_block, encode_block
from ledger.consensus import (
    COMMIT,
    PREPARE,
    PROPOSAL,
    Commit,
    CommitPayload,
    InvalidMessage,
    Prepare,
    PreparePayload,
    Proposal,
    ProposalPayload,
    decode_message,
    encode_message,
    make_signer,
    sign_payload,
)

log = logging.getLogger("ledger.byzantine")

MODES = ("equivocate", "garbage")


class DebugByzantine:
    """Misbehaviour of one node.

    :param mode: ``"equivocate"`` or ``"garbage"`` (:data:`MODES`).
    :param name: node name for the log.
    :param address: the node's 20-byte address; ``sign(hash32) -> sig65`` its key.
    :param broadcast: ``broadcast(kind, body)`` to every peer; ``kinds``: frame kinds
        ``(consensus, transaction, sync request)``.
    :param position: ``() -> (height, round)`` being decided.
    """

    def __init__(
        self,
        mode: str,
        name: str,
        address: bytes,
        sign: Callable[[bytes], bytes],
        broadcast: Callable[[int, bytes], None],
        kinds: tuple[int, int, int],
        position: Callable[[], tuple[int, int]],
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown byzantine mode {mode!r}; expected one of {MODES}")
        self.mode = mode
        self.name = name
        self.address = address
        self.sign = sign
        self.broadcast = broadcast
        self.kind_consensus, self.kind_transaction, self.kind_sync_request = kinds
        self.position = position
        self.last_broadcast: bytes | None = None

    def after_broadcast(self, raw: bytes) -> None:
        """Called for every consensus message the node broadcast: remember it and equivocate."""
        self.last_broadcast = raw
        self.equivocate(raw)

    def equivocate(self, raw: bytes) -> None:
        """Send a second, conflicting signed message for the one just broadcast (same height, round, type)."""
        try:
            msg = decode_message(raw)
        except InvalidMessage:
            return
        if msg.author != self.address:
            return
        p = msg.signed.payload
        other = random.randbytes(32)
        if isinstance(msg, Prepare):
            twin: Any = Prepare(sign_payload(PREPARE, PreparePayload(p.height, p.round, other), self.sign))
        elif isinstance(msg, Commit):
            twin = Commit(sign_payload(COMMIT, CommitPayload(p.height, p.round, other, self.sign(other)), self.sign))
        elif isinstance(msg, Proposal):
            block = decode_block(p.block)
            altered = block.copy(header=block.header.copy(timestamp=block.header.timestamp + 1))
            payload = ProposalPayload(p.height, p.round, encode_block(altered))
            twin = Proposal(sign_payload(PROPOSAL, payload, self.sign), msg.round_change_justification,
                            msg.prepare_justification)
        else:
            return
        log.warning("%s: BYZANTINE: equivocating %s at height %d round %d", self.name, type(msg).__name__,
                    p.height, p.round)
        self.broadcast(self.kind_consensus, encode_message(twin))

    def garbage_frames(self) -> list[tuple[int, bytes]]:
        """One burst of frames honest nodes must drop (see the module docstring)."""
        stranger = make_signer(random.randbytes(32))
        height, round_ = self.position()
        frames = [(self.kind_consensus, random.randbytes(random.randint(1, 200))) for _ in range(20)]
        forged = PreparePayload(height, round_, random.randbytes(32))
        frames.append((self.kind_consensus, encode_message(Prepare(sign_payload(PREPARE, forged, stranger)))))
        stale = PreparePayload(max(1, height - 5), 0, random.randbytes(32))
        frames.append((self.kind_consensus, encode_message(Prepare(sign_payload(PREPARE, stale, self.sign)))))
        if self.last_broadcast is not None:
            frames.extend([(self.kind_consensus, self.last_broadcast)] * 3)  # duplicates of our latest message
        frames.extend((self.kind_transaction, random.randbytes(120)) for _ in range(5))
        frames.append((self.kind_sync_request, random.randbytes(7)))
        return frames

    async def run(self, stopping: asyncio.Event) -> None:
        """The ``garbage`` flood loop (returns at once in ``equivocate`` mode) until ``stopping`` is set."""
        if self.mode != "garbage":
            return
        while not stopping.is_set():
            await asyncio.sleep(0.2)
            for kind, body in self.garbage_frames():
                self.broadcast(kind, body)
