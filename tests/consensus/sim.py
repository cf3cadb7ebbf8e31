"""Deterministic in-process QBFT simulator: n state machines, a fake block port, a message bus with
per-link drop rules and a virtual clock firing round timers in time order. No sockets, no real time."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import rlp
from eth_hash.auto import keccak

from ledger.consensus import (
    Action,
    BlockCommitted,
    BlockCreated,
    Broadcast,
    CreateBlock,
    Event,
    InvalidBlock,
    Message,
    MessageReceived,
    PersistRoundState,
    QbftConfig,
    QbftStateMachine,
    RoundTimerExpired,
    Start,
    StartRoundTimer,
    address_of,
    decode_message,
    make_signer,
)


def validator_key(i: int) -> bytes:
    """Deterministic 32-byte private key of test validator ``i``."""
    return keccak(b"validator-%d" % i)


def make_block(height: int, proposer: bytes, payload: bytes) -> bytes:
    """Fake encoded block: RLP ``[height, proposer(20), payload]``."""
    return rlp.encode([height, proposer, payload])


def block_proposer(block: bytes) -> bytes:
    return rlp.decode(block)[1]


def seal_hash(block: bytes, round: int) -> bytes:
    return keccak(block + round.to_bytes(8, "big"))


class FakeChain:
    """BlockPort over a list of imported fake blocks; digest = keccak(block)."""

    def __init__(self, validators: Sequence[bytes]) -> None:
        self._validators = sorted(validators)
        self.blocks: list[bytes] = []  # blocks[h - 1] is block h

    @property
    def head(self) -> int:
        return len(self.blocks)

    def validators(self, height: int) -> Sequence[bytes]:
        return list(self._validators)

    def previous_proposer(self, height: int) -> bytes | None:
        if height <= 1 or height - 1 > self.head:
            return None
        return block_proposer(self.blocks[height - 2])

    def validate_block(self, height: int, proposer: bytes, block: bytes) -> bytes:
        try:
            fields = rlp.decode(block)
        except Exception as exc:
            raise InvalidBlock(f"undecodable: {exc}") from exc
        if not isinstance(fields, list) or len(fields) != 3:
            raise InvalidBlock("bad shape")
        if int.from_bytes(fields[0], "big") != height or height != self.head + 1:
            raise InvalidBlock("wrong number")
        if fields[1] != proposer:
            raise InvalidBlock("coinbase is not the proposer")
        if fields[2] == b"invalid":
            raise InvalidBlock("execution failed")
        return keccak(block)

    def block_digest(self, block: bytes) -> bytes:
        return keccak(block)

    def seal_hash(self, block: bytes, round: int) -> bytes:
        return seal_hash(block, round)

    def import_block(self, height: int, block: bytes) -> None:
        assert height == self.head + 1
        self.blocks.append(block)


DropRule = Callable[[int, int, Message], bool]
InjectRule = Callable[[int, int, Message, bytes], list[bytes]]
"""``inject(src, dst, msg, raw)`` -> raw messages a relay delivers to ``dst`` just *before* the genuine one."""


@dataclass(frozen=True)
class _Wake:
    """Simulator-internal event: the node starts (is no longer down) and gets ``Start(1)``."""


@dataclass(order=True)
class _Item:
    time: float
    seq: int
    node: int = field(compare=False)
    event: Event | _Wake = field(compare=False)


class Sim:
    """n validators indexed in ascending address order (node i has address ``validators[i]``)."""

    def __init__(
        self,
        n: int,
        *,
        down: Sequence[int] = (),
        drop: DropRule | None = None,
        latency: float = 0.01,
        jitter: float = 0.0,
        loss: float = 0.0,
        seed: int = 0,
        config: QbftConfig = QbftConfig(),
        inject: InjectRule | None = None,
    ) -> None:
        keys = sorted((validator_key(i) for i in range(n)), key=address_of)
        self.keys = keys
        self.validators = [address_of(k) for k in keys]
        self.chains = [FakeChain(self.validators) for _ in range(n)]
        self.machines = [
            QbftStateMachine(self.validators[i], make_signer(keys[i]), self.chains[i], config) for i in range(n)
        ]
        self.down = set(down)
        self.drop = drop
        self.inject = inject
        self.latency = latency
        self.jitter = jitter
        self.loss = loss
        self.rng = random.Random(seed)
        self.now = 0.0
        self._seq = 0
        self._queue: list[_Item] = []
        self.commits: list[dict[int, BlockCommitted]] = [{} for _ in range(n)]
        self.log: list[list[tuple[float, Action]]] = [[] for _ in range(n)]
        self.sent: list[tuple[int, Message]] = []
        self.target = 0
        self.persisted: dict[int, bytes] = {}

    @property
    def n(self) -> int:
        return len(self.machines)

    def schedule(self, delay: float, node: int, event: Event) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Item(self.now + delay, self._seq, node, event))

    def _execute(self, i: int, actions: list[Action]) -> None:
        for a in actions:
            self.log[i].append((self.now, a))
            if isinstance(a, Broadcast):
                msg = decode_message(a.raw)
                self.sent.append((i, msg))
                for j in range(self.n):
                    if j == i or (self.drop is not None and self.drop(i, j, msg)):
                        continue
                    if self.loss and self.rng.random() < self.loss:
                        continue
                    delay = self.latency + (self.rng.random() * self.jitter if self.jitter else 0.0)
                    if self.inject is not None:
                        for forged in self.inject(i, j, msg, a.raw):
                            self.schedule(delay, j, MessageReceived(forged))
                    self.schedule(delay, j, MessageReceived(a.raw))
            elif isinstance(a, PersistRoundState):
                self.persisted[i] = a.record
            elif isinstance(a, StartRoundTimer):
                self.schedule(a.seconds, i, RoundTimerExpired(a.height, a.round, a.attempt))
            elif isinstance(a, CreateBlock):
                block = make_block(a.height, self.validators[i], b"payload h=%d r=%d" % (a.height, a.round))
                self.schedule(0.0, i, BlockCreated(a.height, a.round, block))
            elif isinstance(a, BlockCommitted):
                assert a.height not in self.commits[i], "BlockCommitted emitted twice for a height"
                self.commits[i][a.height] = a
                self.chains[i].import_block(a.height, a.block)
                if a.height < self.target:
                    self.schedule(0.0, i, Start(a.height + 1))

    def deliver(self, i: int, event: Event) -> list[Action]:
        actions = self.machines[i].handle(event)
        self._execute(i, actions)
        return actions

    def live(self) -> list[int]:
        return [i for i in range(self.n) if i not in self.down]

    def run(self, heights: int, max_time: float = 10_000.0, start_at: dict[int, float] | None = None) -> None:
        """Start every live node at height 1 (node ``i`` at virtual time ``start_at[i]``, default 0; a node
        is down, losing what is sent to it, until it starts) and run until all live nodes committed
        ``heights`` blocks, the queue is empty or the virtual clock passes ``max_time``."""
        self.target = heights
        late = dict(start_at or {})
        for i in self.live():
            if late.get(i, 0.0) <= 0.0:
                self.schedule(0.0, i, Start(1))
        pending = sorted((t, i) for i, t in late.items() if t > 0.0 and i not in self.down)
        self.down |= {i for _, i in pending}
        for t, i in pending:
            self.schedule(t, i, _Wake())
        while self._queue:
            if all(heights in self.commits[i] for i in self.live()):
                return
            item = heapq.heappop(self._queue)
            if item.time > max_time:
                return
            self.now = item.time
            if isinstance(item.event, _Wake):
                self.down.discard(item.node)
                self.deliver(item.node, Start(1))
                continue
            if item.node in self.down:
                continue
            self.deliver(item.node, item.event)

    def assert_agreement(self) -> None:
        """Safety: no two validators committed different digests at the same height."""
        by_height: dict[int, set[bytes]] = {}
        for commits in self.commits:
            for h, c in commits.items():
                by_height.setdefault(h, set()).add(c.digest)
        for h, digests in by_height.items():
            assert len(digests) == 1, f"conflicting commits at height {h}"
