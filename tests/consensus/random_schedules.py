"""Seeded random schedules over the pure QBFT state machine: an adversarial network before a stabilisation
time (GST), skewed and early timers, crash-restarts and up to f Byzantine validators; then checks
agreement, commit-seal validity and liveness after GST (issue 19).

One schedule = one seed: :func:`draw_schedule` picks n (4 or 7), the faulty validators and their
behaviours, the network's misbehaviour before GST, timer skews and restarts; :func:`run_schedule` runs it
in virtual time and returns a :class:`Outcome`. Fault model: at most f validators are Byzantine (or
silent); honest validators may in addition crash and restart (``crash_restart``; one of them beyond f in
some schedules), losing their memory but restoring the ``PersistRoundState`` record they wrote, as the
node does from ``qbft-round-state.rlp``. Messages between honest validators may be dropped, duplicated,
delayed (heavy-tailed) and partitioned before GST, and arrive within ``DELTA_S`` after it. A validator
that is behind catches up by "sync": it imports finalized blocks from a reachable honest peer after
checking their commit seals (as ``ledger.sync`` does), then starts the next height.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from dataclasses import dataclass, field

from eth_hash.auto import keccak

from ledger.consensus import (
    COMMIT,
    PREPARE,
    PROPOSAL,
    ROUND_CHANGE,
    Action,
    BlockCommitted,
    BlockCreated,
    Broadcast,
    Commit,
    CommitPayload,
    CreateBlock,
    Dropped,
    Event,
    InvalidMessage,
    Message,
    MessageReceived,
    PersistRoundState,
    Prepare,
    PreparePayload,
    Proposal,
    ProposalPayload,
    QbftConfig,
    QbftStateMachine,
    Restore,
    RoundChange,
    RoundChangePayload,
    RoundTimerExpired,
    Start,
    StartRoundTimer,
    address_of,
    decode_message,
    encode_message,
    make_signer,
    max_faulty,
    quorum,
    recover_address,
    sign_payload,
)

from .sim import FakeChain, make_block, seal_hash, validator_key

DELTA_S = 0.05
"""Largest message delay after GST (seconds)."""
BLOCK_PERIOD_S = 1.0
"""A validator starts the next height this long after committing (the node waits for the block period)."""
SYNC_BATCH = 64
"""Blocks a catch-up sync imports at once (as ``ledger.sync``)."""
BEHAVIOURS = ("silent", "equivocate", "forge_round_change", "replay", "poison_proposals", "bad_seals",
              "stranger_flood", "crash_restart")
"""What a faulty validator does (``crash_restart`` is an honest validator that crashes and restarts)."""


@dataclass(frozen=True)
class Schedule:
    """Everything one randomized run does; drawn from a seed by :func:`draw_schedule`."""

    seed: int
    n: int
    faulty: dict[int, str]
    gst: float
    drop: float
    duplicate: float
    partition_every: float
    heavy_tail: bool
    skews: tuple[float, ...]
    request_timeout: float
    cap: float
    restart_at: float
    restart_down: float
    heights_after_gst: int = 3
    late_start: dict[int, float] = field(default_factory=dict)
    strangers: int = 8
    name: str = "random"


@dataclass
class Outcome:
    """Result of one run: violations found (empty when all checks hold) and the decision rounds of heights
    first decided after GST."""

    schedule: Schedule
    violations: list[str]
    rounds_after_gst: list[int]
    heights: int
    events: int
    honest_drops: Counter[str] = field(default_factory=Counter)
    """Reasons honest validators gave for refusing messages *signed by honest validators* (should stay benign:
    duplicates, old heights/rounds; never a full future buffer)."""


def draw_schedule(seed: int, gsts: tuple[float, ...] = (0.0, 5.0, 30.0, 120.0, 400.0)) -> Schedule:
    """A random schedule (fault model in the module docstring); GST drawn from ``gsts`` (seconds)."""
    rng = random.Random(seed)
    n = rng.choice((4, 4, 7))
    f = max_faulty(n)
    count = rng.randint(0, f)
    chosen = rng.sample(range(n), count)
    faulty = {i: rng.choice(BEHAVIOURS) for i in chosen}
    spare = [i for i in range(n) if i not in faulty]
    if rng.random() < 0.25 and len(spare) >= 2:  # one more honest validator crash-restarts (beyond f)
        faulty[rng.choice(spare)] = "crash_restart"
    gst = rng.choice(gsts)
    late = {}
    if rng.random() < 0.3:  # honest validators starting late (the rolling-restart family)
        for i in rng.sample([i for i in range(n) if i not in faulty], rng.randint(1, n - count - 1)):
            late[i] = rng.uniform(0.0, max(gst, 10.0) + 300.0 * rng.random())
    return Schedule(
        seed=seed, n=n, faulty=faulty, gst=gst,
        drop=rng.choice((0.0, 0.1, 0.3, 0.6)), duplicate=rng.choice((0.0, 0.1, 0.3)),
        partition_every=rng.choice((0.0, 0.0, 7.0, 20.0)), heavy_tail=rng.random() < 0.5,
        skews=tuple(rng.choice((1.0, 1.0, 0.5, 0.8, 1.3, 2.0)) for _ in range(n)),
        request_timeout=rng.choice((0.5, 1.0, 2.0)), cap=rng.choice((4.0, 8.0, 60.0)),
        restart_at=rng.uniform(0.0, gst + 20.0), restart_down=rng.uniform(0.1, 30.0), late_start=late,
    )


@dataclass(order=True)
class _Item:
    time: float
    seq: int
    node: int = field(compare=False)
    kind: str = field(compare=False)
    payload: object = field(compare=False)


class ScheduleRun:
    """Runs one :class:`Schedule` in virtual time."""

    def __init__(self, schedule: Schedule) -> None:
        s = self.s = schedule
        self.rng = random.Random(schedule.seed * 7919 + 1)
        keys = sorted((validator_key(i) for i in range(s.n)), key=address_of)
        self.keys = keys
        self.validators = [address_of(k) for k in keys]
        self.signers = [make_signer(k) for k in keys]
        self.config = QbftConfig(request_timeout_s=s.request_timeout, max_round_timeout_s=s.cap)
        self.chains = [FakeChain(self.validators) for _ in range(s.n)]
        self.certs: list[dict[int, BlockCommitted]] = [{} for _ in range(s.n)]
        self.machines = [self._machine(i) for i in range(s.n)]
        self.down: set[int] = set()
        self.now = 0.0
        self.queue: list[_Item] = []
        self.seq = 0
        self.events = 0
        self.seen: list[bytes] = []
        self.first_commit: dict[int, tuple[float, int]] = {}
        self.violations: list[str] = []
        self.partition: set[int] = set()
        self.strangers = [make_signer(keccak(b"stranger-%d" % k)) for k in range(schedule.strangers)]
        self.honest_drops: Counter[str] = Counter()
        self.persisted: dict[int, bytes] = {}
        self.poisoner = next((i for i, b in schedule.faulty.items() if b == "poison_proposals"), None)

    # ------------------------------------------------------------------ helpers
    def _machine(self, i: int) -> QbftStateMachine:
        return QbftStateMachine(self.validators[i], self.signers[i], self.chains[i], self.config)

    @property
    def honest(self) -> list[int]:
        return [i for i in range(self.s.n) if self.s.faulty.get(i) in (None, "crash_restart")]

    def schedule(self, delay: float, node: int, kind: str, payload: object = None) -> None:
        self.seq += 1
        heapq.heappush(self.queue, _Item(self.now + max(0.0, delay), self.seq, node, kind, payload))

    def _delay(self) -> float:
        if self.now >= self.s.gst:
            return self.rng.uniform(0.001, DELTA_S)
        if self.s.heavy_tail:
            return min(60.0, 0.01 * self.rng.paretovariate(1.2))
        return self.rng.uniform(0.001, 0.5)

    def _link_ok(self, src: int, dst: int) -> bool:
        if self.now >= self.s.gst:
            return True
        if self.partition and ((src in self.partition) != (dst in self.partition)):
            return False
        return self.rng.random() >= self.s.drop

    def send(self, src: int, dst: int, raw: bytes) -> None:
        if dst == src or not self._link_ok(src, dst):
            return
        delay = self._delay()
        if self.poisoner is not None and src != self.poisoner and dst != self.poisoner:
            poisoned = self._poisoned_copy(raw)
            if poisoned is not None:  # the relay sits on the path: its copy arrives first
                self.schedule(delay / 2, dst, "msg", poisoned)
        self.schedule(delay, dst, "msg", raw)
        if self.now < self.s.gst and self.rng.random() < self.s.duplicate:
            self.schedule(self._delay(), dst, "msg", raw)

    def broadcast(self, src: int, raw: bytes) -> None:
        for j in range(self.s.n):
            self.send(src, j, raw)

    # ------------------------------------------------------------------ actions
    def execute(self, i: int, actions: list[Action]) -> None:
        behaviour = self.s.faulty.get(i)
        for a in actions:
            if isinstance(a, Dropped):
                if i in self.honest and a.author is not None and a.author in self.validators:
                    if self.validators.index(a.author) in self.honest:
                        self.honest_drops[a.reason.split(":")[0]] += 1
            elif isinstance(a, Broadcast):
                self.seen.append(a.raw)
                self._outgoing(i, behaviour, a.raw)
            elif isinstance(a, PersistRoundState):
                self.persisted[i] = a.record  # durable: survives the crash below
            elif isinstance(a, StartRoundTimer):
                self.schedule(a.seconds * self.s.skews[i], i, "event", RoundTimerExpired(a.height, a.round, a.attempt))
            elif isinstance(a, CreateBlock):
                block = make_block(a.height, self.validators[i], b"h=%d r=%d n=%d" % (a.height, a.round, i))
                self.schedule(0.0, i, "event", BlockCreated(a.height, a.round, block))
            elif isinstance(a, BlockCommitted):
                self._committed(i, a)

    def _committed(self, i: int, a: BlockCommitted) -> None:
        if a.height != self.chains[i].head + 1:
            self.violations.append(f"node {i} committed height {a.height} on head {self.chains[i].head}")
            return
        self._check_seals(a)
        self.chains[i].import_block(a.height, a.block)
        self.certs[i][a.height] = a
        if i in self.honest:
            first = self.first_commit.get(a.height)
            if first is None:
                self.first_commit[a.height] = (self.now, a.round)
        self.schedule(BLOCK_PERIOD_S, i, "event", Start(a.height + 1))

    def _check_seals(self, a: BlockCommitted) -> None:
        digest = seal_hash(a.block, a.round)
        try:
            signers = [recover_address(digest, s) for s in a.seals]
        except InvalidMessage:
            self.violations.append(f"unrecoverable commit seal at height {a.height}")
            return
        if len(set(signers)) != len(signers) or len(signers) < quorum(self.s.n):
            self.violations.append(
                f"seals at height {a.height}: {len(set(signers))} distinct, quorum {quorum(self.s.n)}")
        if not all(s in self.validators for s in signers):
            self.violations.append(f"seal by a non-validator at height {a.height}")

    # ------------------------------------------------------------------ Byzantine behaviours
    def _outgoing(self, i: int, behaviour: str | None, raw: bytes) -> None:
        if behaviour == "silent":
            return
        if behaviour in (None, "crash_restart", "poison_proposals", "stranger_flood", "replay"):
            self.broadcast(i, raw)
            if behaviour == "replay" and self.seen:
                for _ in range(3):
                    self.broadcast(i, self.rng.choice(self.seen))
            if behaviour == "stranger_flood":
                self._stranger_flood(i, decode_message(raw))
            return
        msg = decode_message(raw)
        if behaviour == "equivocate":
            twin = self._twin(i, msg)
            for j in range(self.s.n):  # different validators get different versions
                self.send(i, j, raw if (twin is None or self.rng.random() < 0.5) else twin)
        elif behaviour == "forge_round_change":
            self.broadcast(i, raw)
            jump = msg.round + self.rng.randint(1, 5)
            forged = RoundChange(sign_payload(ROUND_CHANGE, RoundChangePayload(msg.height, jump, None, None),
                                              self.signers[i]))
            self.broadcast(i, encode_message(forged))
        elif behaviour == "bad_seals":
            if isinstance(msg, Commit):
                p = msg.signed.payload
                bad = CommitPayload(p.height, p.round, p.digest, self.signers[i](keccak(b"wrong" + p.digest)))
                raw = encode_message(Commit(sign_payload(COMMIT, bad, self.signers[i])))
            self.broadcast(i, raw)

    def _twin(self, i: int, msg: Message) -> bytes | None:
        p = msg.signed.payload
        other = keccak(self.rng.randbytes(8))
        if isinstance(msg, Prepare):
            payload = PreparePayload(p.height, p.round, other)
            return encode_message(Prepare(sign_payload(PREPARE, payload, self.signers[i])))
        if isinstance(msg, Commit):
            seal = self.signers[i](other)
            return encode_message(Commit(sign_payload(COMMIT, CommitPayload(p.height, p.round, other, seal),
                                                      self.signers[i])))
        if isinstance(msg, Proposal):
            block = make_block(p.height, self.validators[i], b"twin %d" % self.rng.randint(0, 1 << 30))
            signed = sign_payload(PROPOSAL, ProposalPayload(p.height, p.round, block), self.signers[i])
            return encode_message(Proposal(signed, msg.round_change_justification, msg.prepare_justification))
        return None

    def _stranger_flood(self, i: int, msg: Message) -> None:
        for k, sign in enumerate(self.strangers):
            height = msg.height + self.rng.randint(1, 10)
            payload = PreparePayload(height, k % 3, keccak(b"%d" % self.rng.randint(0, 1 << 30)))
            self.broadcast(i, encode_message(Prepare(sign_payload(PREPARE, payload, sign))))

    def _poisoned_copy(self, raw: bytes) -> bytes | None:
        """What a poisoning relay forwards ahead of a PROPOSAL: the same signed payload with a junk (round 0)
        or stripped (round > 0) justification, which the proposer's signature does not cover."""
        if raw[0] != PROPOSAL:
            return None
        msg = decode_message(raw)
        assert isinstance(msg, Proposal) and self.poisoner is not None
        if msg.round == 0:
            junk = sign_payload(ROUND_CHANGE, RoundChangePayload(msg.height, 1, None, None),
                                self.signers[self.poisoner])
            return encode_message(Proposal(msg.signed, (junk,), ()))
        return encode_message(Proposal(msg.signed, (), ()))

    # ------------------------------------------------------------------ sync
    def _sync(self, i: int) -> None:
        """Catch-up: import up to :data:`SYNC_BATCH` finalized blocks from a reachable honest peer that is
        ahead (each block's commit seals checked), then start the next height."""
        head = self.chains[i].head
        for j in self.honest:
            if j == i or j in self.down or self.chains[j].head <= head + 0 or not self._link_ok(j, i):
                continue
            if self.chains[j].head == head + 1 and self.machines[i].height == head + 1 and self.rng.random() < 0.5:
                continue  # one block behind: usually consensus itself finishes the height
            for h in range(head + 1, min(self.chains[j].head, head + SYNC_BATCH) + 1):
                cert = self.certs[j][h]
                self._check_seals(cert)
                self.chains[i].import_block(cert.height, cert.block)
                self.certs[i][cert.height] = cert
            self.execute(i, self.machines[i].handle(Start(self.chains[i].head + 1)))
            return

    # ------------------------------------------------------------------ run
    def run(self, max_time: float = 2400.0) -> Outcome:
        s = self.s
        for i in range(s.n):
            start = s.late_start.get(i, 0.0)
            if start > 0:
                self.down.add(i)
            self.schedule(start, i, "boot")
        for i, b in s.faulty.items():
            if b == "crash_restart":
                self.schedule(s.restart_at, i, "crash")
        if s.partition_every:
            self.schedule(s.partition_every, -1, "repartition")
        self.schedule(1.0, -1, "sync")
        target: int | None = None
        while self.queue:
            item = heapq.heappop(self.queue)
            if item.time > max_time:
                break
            self.now = item.time
            self.events += 1
            if target is None and self.now >= s.gst:
                target = max(c.head for c in self.chains) + s.heights_after_gst
            if target is not None and all(self.chains[i].head >= target for i in self.honest):
                break
            if item.kind == "repartition":
                self.partition = set(self.rng.sample(range(s.n), self.rng.randint(1, s.n - 1)))
                if self.now < s.gst:
                    self.schedule(s.partition_every, -1, "repartition")
                else:
                    self.partition = set()
                continue
            if item.kind == "sync":
                for i in range(s.n):
                    if i not in self.down:
                        self._sync(i)
                self.schedule(1.0, -1, "sync")
                continue
            i = item.node
            if item.kind == "boot":
                self.down.discard(i)
                self.execute(i, self.machines[i].handle(Start(self.chains[i].head + 1)))
                continue
            if item.kind == "crash":
                self.down.add(i)
                self.machines[i] = self._machine(i)  # in-memory state lost; the chain and the record survive
                if i in self.persisted:
                    self.machines[i].handle(Restore(self.persisted[i]))
                self.schedule(s.restart_down, i, "boot")
                continue
            if i in self.down:
                continue
            if item.kind == "msg":
                raw = item.payload
                assert isinstance(raw, bytes)
                event: Event = MessageReceived(raw)
            else:
                event = item.payload  # type: ignore[assignment]
            self.execute(i, self.machines[i].handle(event))
        return self._outcome(target)

    def _outcome(self, target: int | None) -> Outcome:
        for h in range(1, max(c.head for c in self.chains) + 1):
            digests = {keccak(c.blocks[h - 1]) for k, c in enumerate(self.chains) if k in self.honest and c.head >= h}
            if len(digests) > 1:
                self.violations.append(f"agreement: {len(digests)} different blocks at height {h}")
        if target is None:
            self.violations.append("never reached GST")
        else:
            behind = [i for i in self.honest if self.chains[i].head < target]
            if behind:
                heads = [self.chains[i].head for i in range(self.s.n)]
                self.violations.append(f"liveness: honest {behind} below height {target} (heads {heads})")
        rounds = [r for h, (t, r) in sorted(self.first_commit.items()) if t >= self.s.gst]
        if self.honest_drops.get("future buffer full") or self.honest_drops.get("future not a validator"):
            self.violations.append(f"an honest validator's future message was refused: {dict(self.honest_drops)}")
        return Outcome(self.s, self.violations, rounds, max(c.head for c in self.chains), self.events,
                       self.honest_drops)


def run_schedule(schedule: Schedule, max_time: float | None = None) -> Outcome:
    """Run ``schedule``; liveness is required within GST + 1,800 virtual seconds (default)."""
    return ScheduleRun(schedule).run(max_time if max_time is not None else schedule.gst + 1800.0)


def summarize(outcomes: list[Outcome]) -> str:
    """Human-readable table: schedules, behaviours tried, decision rounds after GST, violations."""
    behaviours = Counter(b for o in outcomes for b in o.schedule.faulty.values())
    rounds = Counter(min(r, 5) for o in outcomes for r in o.rounds_after_gst)
    failed = [o for o in outcomes if o.violations]
    lines = [
        f"schedules run: {len(outcomes)} (n=4: {sum(o.schedule.n == 4 for o in outcomes)}, "
        f"n=7: {sum(o.schedule.n == 7 for o in outcomes)}); events: {sum(o.events for o in outcomes)}",
        "behaviours tried: " + ", ".join(f"{b} {c}" for b, c in sorted(behaviours.items()))
        + f"; all-honest runs {sum(not o.schedule.faulty for o in outcomes)}",
        "decision rounds after GST: " + ", ".join(
            f"{'>=5' if r == 5 else r}: {c}" for r, c in sorted(rounds.items())),
        "honest messages refused by honest validators: "
        + ", ".join(f"{r} {c}" for r, c in Counter(sum((o.honest_drops for o in outcomes), Counter())).most_common(6)),
        f"violations: {len(failed)}" + "".join(f"\n  seed {o.schedule.seed}: {o.violations}" for o in failed[:5]),
    ]
    return "\n".join(lines)


def named_scenarios() -> dict[str, Schedule]:
    """The issue-19 bugs as schedules. ``rolling_restart`` (nothing finalized) and ``poisoned_proposal``
    (every height decided in round 3 instead of 0) failed before the fix; ``stranger_flood`` did not fill
    the old buffer at this rate (its exact 40 x 256 form is the unit test in ``test_issue19_regressions``)."""
    base = dict(drop=0.0, duplicate=0.0, partition_every=0.0, heavy_tail=False, request_timeout=1.0, cap=60.0,
                restart_at=0.0, restart_down=0.0)
    return {
        "rolling_restart": Schedule(seed=1901, n=4, faulty={3: "silent"}, gst=0.0, skews=(1.0,) * 4,
                                    late_start={1: 300.0, 2: 300.0}, name="rolling_restart", **base),
        "poisoned_proposal": Schedule(seed=1902, n=4, faulty={3: "poison_proposals"}, gst=0.0, skews=(1.0,) * 4,
                                      heights_after_gst=8, name="poisoned_proposal", **base),
        "stranger_flood": Schedule(seed=1903, n=4, faulty={3: "stranger_flood"}, gst=0.0, skews=(1.0,) * 4,
                                   heights_after_gst=6, strangers=40, name="stranger_flood", **base),
        "equivocating_proposer_with_skewed_timers": Schedule(
            seed=1904, n=4, faulty={0: "equivocate"}, gst=20.0, skews=(1.0, 0.5, 2.0, 1.3), name="equivocation",
            **{**base, "drop": 0.2}),
    }
