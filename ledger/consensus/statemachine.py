"""QBFT consensus state machine (EEA QBFT specification, Hyperledger Besu behaviour).

Pure and deterministic: no I/O, threads, clocks or randomness. ``handle(event)`` consumes one input
event and returns the actions the node must execute, in order. Messages we send are processed locally
(our own copy) before ``handle`` returns, so ``Broadcast`` must go to the *other* validators only.

Per height the machine runs rounds 0, 1, ...:

* round start: ``StartRoundTimer``; the proposer of round 0 asks for a block (``CreateBlock``); the
  proposer of round r > 0 proposes once it holds a quorum of ROUND-CHANGE messages for r, re-proposing
  the block of the highest prepared certificate among them, or asking for a new block when none is prepared;
* PROPOSAL (valid, from the round's proposer, justified for r > 0) -> broadcast PREPARE(digest);
* quorum of PREPAREs for the accepted digest -> prepared certificate, broadcast COMMIT with the commit seal;
* quorum of COMMITs with valid seals -> ``BlockCommitted`` (once per height);
* round timer expiry -> ``RoundFailed`` then ROUND-CHANGE to round + 1 (carrying the prepared certificate);
* f + 1 ROUND-CHANGEs for higher rounds -> jump to the highest round that f + 1 validators reached
  (Besu "round change at a higher round when f+1 received");
* a justified PROPOSAL for a higher round of the current height moves us to that round;
* a ROUND-CHANGE for a round *below* ours (a validator that was down or partitioned and restarts at
  round 0) is answered, once per author and round, by re-broadcasting our own ROUND-CHANGE for the
  current round: with f + 1 such answers the returning validator jumps straight to the current round
  instead of walking through rounds 1, 2, … (no round-change storm, no reset of the others).

Round synchronisation (why rounds converge from any phase offset)
-----------------------------------------------------------------
Capped doubling timeouts alone do not synchronise rounds: two groups whose rounds run at the cap keep
their phase offset for ever (n = 4, one validator down, validator 0 alone for 300 s, then validators 1
and 2 start: 0 is rounds ahead, 1 and 2 are only two, and the f + 1 jump needs f + 1 = 2 authors
*ahead* of them). The QBFT / IBFT liveness argument (Moniz, "The Istanbul BFT Consensus Algorithm",
arXiv:2002.03613, Algorithm 3 and the liveness lemmas of §4; EEA QBFT specification v1, "round change":
``roundTimeout(r) = requestTimeout · 2^r``) relies on timeouts that grow without bound so that
eventually every honest node spends long enough in a common round. We keep the operator's cap and add
the quorum-gated round exit of Tendermint (Buchman, Kwon, Milošević, "The latest gossip on BFT
consensus", arXiv:1807.04938, Algorithm 1 lines 47 and 55: a round timeout is only started once
2f + 1 messages of that round were seen; f + 1 messages of a higher round make a node join it):

* **Rule G (gated exit).** When the timer of round r > 0 expires, the node moves to r + 1 only if it
  holds valid ROUND-CHANGEs for rounds >= r from a quorum of distinct validators (its own included).
  Otherwise it *stays* in r, re-broadcasts its ROUND-CHANGE for r (retransmission after the network
  stabilises) and restarts the timer with the next doubled timeout (``attempt`` + 1, still capped).
  Round 0 is left unconditionally (nobody sends a ROUND-CHANGE for round 0).
* **Rule J (f + 1 jump).** ROUND-CHANGEs for rounds above ours from f + 1 distinct validators move us
  to the highest round that f + 1 of them reached (at least one honest validator is there).
* **Rule E (echo).** A ROUND-CHANGE for a round <= ours is answered, once per author and round, by
  re-broadcasting our own ROUND-CHANGE for our round.

Claim: after the network stabilises (GST; every message between honest nodes delivered within Δ), all
honest validators are in the same round within a bounded number of rounds, so the first honest
proposer's round with a long enough timeout decides. Proof sketch, h honest validators (h >= quorum
because at most f are faulty), their rounds sorted r_1 >= r_2 >= … >= r_h:

1. *Bounded lead.* An honest node enters r + 1 by timeout only with a quorum at >= r, which holds at
   least quorum − f >= f + 1 honest nodes at >= r (quorum intersection, :mod:`.config`); by a jump or
   a justified proposal only when f + 1 (resp. a quorum of) validators, so at least one honest one, sent
   a ROUND-CHANGE for >= that round. Hence r_1 <= r_{f+1} + 1: no minority of honest nodes, even helped
   by f Byzantine ones, runs ahead by more than one round, however long it is alone (validator 0 above
   stays in round 1 instead of climbing to round 9).
2. *Catch-up.* After GST + Δ every honest node holds the latest ROUND-CHANGE of every other (Rule G
   re-sends it at every expiry, Rule E answers laggards), so by Rule J every honest node is at >= r_{f+1}.
3. *Progress.* The >= f + 1 honest nodes at the lowest round r now hold ROUND-CHANGEs for >= r from all
   h >= quorum honest nodes, so their timers move them on (Rule G is satisfied); they entered r within
   Δ of each other (one broadcast), so they leave it together. The nodes one round ahead wait (Rule G
   fails for them) until the others arrive. So within one round all honest nodes share a round and
   advance in lock-step, each new round's timer doubling (up to the cap).
4. *Decision.* Among any f + 1 consecutive rounds one has an honest proposer; once the (capped)
   timeout exceeds the time to build, validate and exchange three message delays, that round decides.

Prepared state across restarts
------------------------------
Before every ROUND-CHANGE for a new round, every PREPARE and every COMMIT it sends, a validator emits
``PersistRoundState`` (the node writes it with fsync before sending); fed back as ``Restore`` after a
crash, the validator resumes in that round with its prepared certificate and never PREPAREs a second
block in a round it voted in. Without it, two validators prepared on block X that restart within one
height (beyond f) forget X, and a later round may finalize Y at a height where X was finalized.

Safety does not depend on timers at all (only on quorum intersection and the justification rules), so
Rule G cannot break agreement; it only stops rounds from inflating while a quorum is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import rlp

from .config import QbftConfig, max_faulty, quorum
from .errors import InvalidMessage
from .events import (
    Action,
    BlockCommitted,
    BlockCreated,
    Broadcast,
    CreateBlock,
    Dropped,
    Event,
    Evidence,
    MessageReceived,
    PersistRoundState,
    Restore,
    RoundFailed,
    RoundTimerExpired,
    Start,
    StartRoundTimer,
)
from .messages import (
    COMMIT,
    PREPARE,
    PROPOSAL,
    ROUND_CHANGE,
    Commit,
    CommitPayload,
    Message,
    Prepare,
    PreparePayload,
    Proposal,
    ProposalPayload,
    RoundChange,
    RoundChangePayload,
    SignedPayload,
    decode_message,
    encode_message,
    recover_address,
    sign_payload,
)
from .ports import BlockPort

FUTURE_HEIGHTS = 10
"""Messages for heights ``height + 1 .. height + FUTURE_HEIGHTS`` are buffered and replayed on ``Start``."""
MAX_FUTURE_ROUNDS = 100
"""Messages for rounds beyond ``round + MAX_FUTURE_ROUNDS`` are dropped (bounds memory)."""
MAX_BUFFERED = 10_000
"""Maximum number of buffered future-height messages (all heights together)."""
MAX_BUFFERED_PER_AUTHOR = 256
"""Maximum number of buffered future-height messages per author (one spammer cannot fill the buffer)."""
MAX_BUFFERED_PER_AUTHOR_HEIGHT = 64
"""Maximum number of buffered messages per author and future height (16 rounds of 4 message types)."""
MAX_BUFFERED_OUTSIDERS = 64
"""Buffered future-height messages, all authors together, from signers outside the current validator set
(a validator voted in by the block being decided may speak first); strangers cannot take more."""
MAX_BUFFERED_PER_OUTSIDER = 4
"""Buffered future-height messages per signer outside the current validator set."""
MAX_REJECTED_PROPOSALS = 16
"""Rejected PROPOSAL messages (whole raw bytes) remembered per round, so a replayed bad copy costs nothing."""


class _Reject(Exception):
    """Internal: a message failed validation; the text is the ``Dropped`` reason."""


@dataclass
class _Accepted:
    """The accepted PROPOSAL of a round: its block, 32-byte digest and the 32-byte hash commit seals sign."""

    block: bytes
    digest: bytes
    seal_hash: bytes


@dataclass
class _RoundState:
    """Messages and progress of one round of the current height (keyed by author address)."""

    proposals: dict[bytes, tuple[Proposal, bytes]] = field(default_factory=dict)
    rejected: dict[bytes, str] = field(default_factory=dict)
    invalid_payloads: dict[bytes, str] = field(default_factory=dict)
    prepares: dict[bytes, tuple[Prepare, bytes]] = field(default_factory=dict)
    commits: dict[bytes, tuple[Commit, bytes]] = field(default_factory=dict)
    round_changes: dict[bytes, tuple[RoundChange, bytes]] = field(default_factory=dict)
    seal_ok: dict[bytes, bool] = field(default_factory=dict)
    heard: set[bytes] = field(default_factory=set)
    accepted: _Accepted | None = None
    prepared: bool = False
    proposed: bool = False
    create_justification: tuple[SignedPayload[RoundChangePayload], ...] | None = None
    own_round_change: bytes | None = None
    hinted: set[bytes] = field(default_factory=set)


@dataclass(frozen=True)
class _PreparedCertificate:
    """Our latest prepared certificate: round, block, 32-byte digest and the quorum of PREPAREs."""

    round: int
    block: bytes
    digest: bytes
    prepares: tuple[SignedPayload[PreparePayload], ...]


class QbftStateMachine:
    """QBFT consensus for one validator (or a passive observer when ``address`` is not a validator).

    :param address: our 20-byte address.
    :param sign: ``sign(hash32) -> sig65`` (r||s||v, v in {0, 1}) with our key.
    :param blocks: the node's :class:`BlockPort`.
    :param config: timeouts.
    """

    def __init__(
        self,
        address: bytes,
        sign: Callable[[bytes], bytes],
        blocks: BlockPort,
        config: QbftConfig = QbftConfig(),
    ) -> None:
        if len(address) != 20:
            raise ValueError("address must be 20 bytes")
        self._address = bytes(address)
        self._sign = sign
        self._blocks = blocks
        self._config = config
        self._started = False
        self._height = 0
        self._round = 0
        self._validators: tuple[bytes, ...] = ()
        self._index: dict[bytes, int] = {}
        self._prev_proposer: bytes | None = None
        self._rounds: dict[int, _RoundState] = {}
        self._prepared: _PreparedCertificate | None = None
        self._committed = False
        self._attempt = 0
        self._voted: dict[int, bytes] = {}
        self._restore: _Restored | None = None
        self._future: dict[int, dict[bytes, Message]] = {}
        self._buffered = 0
        self._buffered_by: dict[bytes, int] = {}
        self._buffered_by_height: dict[tuple[bytes, int], int] = {}
        self._buffered_outsiders = 0
        self._members_cache: dict[int, frozenset[bytes]] = {}

    # ------------------------------------------------------------------------------------ properties

    @property
    def address(self) -> bytes:
        """Our 20-byte address."""
        return self._address

    @property
    def height(self) -> int:
        """Height being decided (0 before the first ``Start``)."""
        return self._height

    @property
    def round(self) -> int:
        """Current round of the current height."""
        return self._round

    @property
    def committed(self) -> bool:
        """True once ``BlockCommitted`` was emitted for the current height (until the next ``Start``)."""
        return self._committed

    def proposer(self, height: int, round: int) -> bytes:
        """Proposer of (height, round), Besu round-robin: with validators sorted ascending and ``prev`` the
        proposer of block ``height - 1``: ``validators[(index(prev) + 1 + round) % n]`` when ``prev`` is a
        validator, else ``validators[round % n]``."""
        if self._started and height == self._height:
            validators, prev = self._validators, self._prev_proposer
        else:
            validators, prev = tuple(self._blocks.validators(height)), self._blocks.previous_proposer(height)
        return _proposer(validators, prev, round)

    # ---------------------------------------------------------------------------------------- events

    def handle(self, event: Event) -> list[Action]:
        """Process one input event; return the actions to execute, in order."""
        out: list[Action] = []
        if isinstance(event, MessageReceived):
            try:
                msg = decode_message(event.raw)
            except InvalidMessage as exc:
                out.append(Dropped(f"invalid message: {exc}", None))
                return out
            self._route(msg, bytes(event.raw), out)
        elif isinstance(event, Start):
            self._on_start(event.height, out)
        elif isinstance(event, Restore):
            self._restore = _decode_restore(event.record)
        elif isinstance(event, BlockCreated):
            self._on_block_created(event, out)
        elif isinstance(event, RoundTimerExpired):
            if (
                self._started
                and not self._committed
                and (event.height, event.round, event.attempt) == (self._height, self._round, self._attempt)
            ):
                self._on_round_timeout(out)
        else:
            raise TypeError(f"unknown event {event!r}")
        return out

    def _on_start(self, height: int, out: list[Action]) -> None:
        if height < 1 or (self._started and height <= self._height):
            return
        self._started = True
        self._height = height
        self._round = 0
        self._validators = tuple(bytes(v) for v in self._blocks.validators(height))
        self._index = {v: i for i, v in enumerate(self._validators)}
        self._prev_proposer = self._blocks.previous_proposer(height)
        self._rounds = {}
        self._prepared = None
        self._committed = False
        self._attempt = 0
        self._voted = {}
        restored, self._restore = self._restore, None
        resume = restored is not None and restored.height == height and self._is_validator
        if resume and restored is not None:  # after a crash: our votes, certificate and round of this height
            self._voted = dict(restored.voted)
            self._prepared = restored.prepared
            self._round = restored.round
        self._start_round(out)
        if resume and self._round > 0:  # re-announce the round we were in, with our prepared certificate
            self._send_round_change(self._round, out)
        replay = self._future.pop(height, {})
        for h in [h for h in self._future if h < height or h > height + FUTURE_HEIGHTS]:
            del self._future[h]
        self._members_cache = {h: m for h, m in self._members_cache.items() if h > height}
        self._recount_buffer()
        for raw, msg in replay.items():
            if self._committed:
                break
            self._on_message(msg, raw, out)

    def _recount_buffer(self) -> None:
        self._buffered = 0
        self._buffered_by = {}
        self._buffered_by_height = {}
        self._buffered_outsiders = 0
        for h, pending in self._future.items():
            for m in pending.values():
                self._count_buffered(m.author, h, self._is_plausible_validator(m.author, h))

    def _count_buffered(self, author: bytes, height: int, member: bool) -> None:
        self._buffered += 1
        self._buffered_by[author] = self._buffered_by.get(author, 0) + 1
        key = (author, height)
        self._buffered_by_height[key] = self._buffered_by_height.get(key, 0) + 1
        if not member:
            self._buffered_outsiders += 1

    def _is_plausible_validator(self, author: bytes, height: int) -> bool:
        """True when ``author`` is a validator of the current height or, before the first ``Start``, of
        ``height`` as far as the block port knows it (validator sets change by at most one vote per block,
        so the current set is the plausible next one; a newly added validator is an outsider here)."""
        if self._started:
            return author in self._index
        members = self._members_cache.get(height)
        if members is None:
            try:
                members = frozenset(bytes(v) for v in self._blocks.validators(height))
            except Exception:  # height beyond what the node knows: treat every author as an outsider
                members = frozenset()
            self._members_cache[height] = members
        return author in members

    def _on_block_created(self, event: BlockCreated, out: list[Action]) -> None:
        if not self._started or self._committed or (event.height, event.round) != (self._height, self._round):
            return
        rs = self._rs(self._round)
        if rs.create_justification is None or rs.proposed:
            return
        self._send_proposal(event.block, rs.create_justification, (), out)

    # ---------------------------------------------------------------------------------- message intake

    def _route(self, msg: Message, raw: bytes, out: list[Action]) -> None:
        h = msg.height
        if self._started and h < self._height:
            out.append(Dropped("old height", msg.author))
            return
        if not self._started or h > self._height:
            self._buffer_future(msg, raw, out)
            return
        if self._committed:
            return  # late message for the height we already decided
        self._on_message(msg, raw, out)

    def _buffer_future(self, msg: Message, raw: bytes, out: list[Action]) -> None:
        """Keep a future-height message for replay at its ``Start``: authenticated (the author is recovered
        from the signature), de-duplicated on the whole message, capped per author and height, per author,
        overall, and with a small shared allowance for signers outside the validator set, so strangers
        with throw-away keys cannot crowd out a validator's next-height messages. Every refusal is a
        ``Dropped`` whose reason starts with ``future`` (counted by the node's metrics)."""
        h, author = msg.height, msg.author
        if self._started and h > self._height + FUTURE_HEIGHTS:
            out.append(Dropped("height too far ahead", author))
            return
        pending = self._future.get(h)
        if pending is not None and raw in pending:
            out.append(Dropped("future duplicate", author))
            return
        member = self._is_plausible_validator(author, h)
        if not member and (
            self._buffered_outsiders >= MAX_BUFFERED_OUTSIDERS
            or self._buffered_by.get(author, 0) >= MAX_BUFFERED_PER_OUTSIDER
        ):
            out.append(Dropped("future not a validator", author))
            return
        if (
            self._buffered >= MAX_BUFFERED
            or self._buffered_by.get(author, 0) >= MAX_BUFFERED_PER_AUTHOR
            or self._buffered_by_height.get((author, h), 0) >= MAX_BUFFERED_PER_AUTHOR_HEIGHT
        ):
            out.append(Dropped("future buffer full", author))
            return
        self._future.setdefault(h, {})[raw] = msg
        self._count_buffered(author, h, member)

    def _on_message(self, msg: Message, raw: bytes, out: list[Action]) -> None:
        """Process a message for the current, undecided height."""
        author = msg.author
        if author not in self._index:
            out.append(Dropped("not a validator", author))
            return
        if msg.round > self._round + MAX_FUTURE_ROUNDS:
            out.append(Dropped("round too far ahead", author))
            return
        try:
            if isinstance(msg, Proposal):
                self._on_proposal(msg, raw, out)
            elif isinstance(msg, Prepare):
                self._on_prepare(msg, raw, out)
            elif isinstance(msg, Commit):
                self._on_commit(msg, raw, out)
            else:
                self._on_round_change(msg, raw, out)
        except _Reject as exc:
            out.append(Dropped(str(exc), author))

    def _claim_slot(
        self,
        store: dict[bytes, tuple[Message, bytes]],
        msg: Message,
        raw: bytes,
        kind: str,
        out: list[Action],
    ) -> None:
        """Record ``msg`` as the author's message of this type and round; raise _Reject for a duplicate
        (same payload) or a conflicting one (different payload: equivocation -> ``Evidence``)."""
        previous = store.get(msg.author)
        if previous is None:
            store[msg.author] = (msg, raw)
            return
        if previous[0].signed.payload == msg.signed.payload:
            raise _Reject("duplicate")
        if kind != "round-change":
            out.append(Evidence(kind, previous[1], raw))
        raise _Reject(f"equivocating {kind}")

    # ------------------------------------------------------------------------------------- PROPOSAL

    def _on_proposal(self, msg: Proposal, raw: bytes, out: list[Action]) -> None:
        """Validate, then claim: the proposer's slot of the round is taken only by a PROPOSAL whose block
        and justification verified. The justification is not covered by the proposer's signature, so a
        relay may forward a copy with a stripped or junk justification; such a copy is refused (and
        remembered by its whole bytes) without hiding the genuine proposal that arrives after it.
        Duplicates are recognised on the whole message or, once a valid proposal is held, on its signed
        payload; a different signed payload from the proposer is equivocation (``Evidence``)."""
        r, author = msg.round, msg.author
        if author != _proposer(self._validators, self._prev_proposer, r):
            raise _Reject("not the proposer of this round")
        rs = self._rs(r)
        previous = rs.proposals.get(author)
        if previous is not None:
            if previous[1] == raw or previous[0].signed.payload == msg.signed.payload:
                raise _Reject("duplicate")
            out.append(Evidence("proposal", previous[1], raw))
            raise _Reject("equivocating proposal")
        if raw in rs.rejected:
            raise _Reject(f"duplicate of a refused proposal: {rs.rejected[raw]}")
        if r < self._round:
            raise _Reject("proposal for an old round")
        try:
            digest = self._validate_proposal(msg, rs)
        except _Reject as exc:
            if len(rs.rejected) < MAX_REJECTED_PROPOSALS:
                rs.rejected[raw] = str(exc)
            raise
        voted = self._voted.get(r)
        if voted is not None and voted != digest:
            raise _Reject("already voted for another block in this round (before a restart)")
        rs.proposals[author] = (msg, raw)
        rs.heard.add(author)
        if r > self._round:  # justified by a quorum of ROUND-CHANGEs: follow it (QBFT spec, Besu)
            self._move_to_round(r, out, send_round_change=False)
        block = msg.signed.payload.block
        rs.accepted = _Accepted(block, digest, self._blocks.seal_hash(block, r))
        if self._is_validator:
            self._voted[r] = digest
            self._persist(out)
            payload = PreparePayload(self._height, r, digest)
            self._send(Prepare(sign_payload(PREPARE, payload, self._sign)), out)
        self._check_prepared(out)
        self._check_committed(r, out)

    def _validate_proposal(self, msg: Proposal, rs: _RoundState) -> bytes:
        """The 32-byte digest of a valid proposal of the current height; raises _Reject. A block found
        invalid is remembered by its signed payload, so re-justified copies are not executed again."""
        payload_key = msg.signed.payload.block
        cached = rs.invalid_payloads.get(payload_key)
        if cached is not None:
            raise _Reject(cached)
        if msg.round == 0:
            if msg.round_change_justification or msg.prepare_justification:
                raise _Reject("justification in a round-0 proposal")
            try:
                return self._validate_new_block(msg.author, payload_key)
            except _Reject as exc:
                if len(rs.invalid_payloads) < MAX_REJECTED_PROPOSALS:
                    rs.invalid_payloads[payload_key] = str(exc)
                raise
        return self._validate_justified_proposal(msg)

    def _validate_new_block(self, proposer: bytes, block: bytes) -> bytes:
        try:
            if proposer == self._address:  # our own block: built by the node, no need to execute it twice
                digest = self._blocks.block_digest(block)
            else:
                digest = self._blocks.validate_block(self._height, proposer, block)
        except Exception as exc:  # InvalidBlock, or anything the node's validation raises on a hostile block
            raise _Reject(f"invalid block: {exc}") from exc
        if len(digest) != 32:
            raise _Reject("invalid block: digest is not 32 bytes")
        return bytes(digest)

    def _validate_justified_proposal(self, msg: Proposal) -> bytes:
        """QBFT round > 0 proposal justification: a quorum of ROUND-CHANGEs for (height, round) from
        distinct validators; if any is prepared, the block must have the digest of the highest prepared
        round, proven by a quorum of PREPAREs; otherwise the block must be a valid new block."""
        h, r = msg.height, msg.round
        authors: set[bytes] = set()
        prepared: list[RoundChangePayload] = []
        for s in msg.round_change_justification:
            p = s.payload
            if (p.height, p.round) != (h, r):
                raise _Reject("round-change justification for another height or round")
            if s.author not in self._index:
                raise _Reject("round-change justification from a non-validator")
            if s.author in authors:
                raise _Reject("round-change justification with duplicate author")
            authors.add(s.author)
            if p.prepared_round is not None:
                if p.prepared_round >= r:
                    raise _Reject("round-change justification prepared in a non-earlier round")
                prepared.append(p)
        if len(authors) < self._quorum:
            raise _Reject("round-change justification below quorum")
        block = msg.signed.payload.block
        if not prepared:
            if msg.prepare_justification:
                raise _Reject("prepare justification without prepared round change")
            return self._validate_new_block(msg.author, block)
        best = max(p.prepared_round for p in prepared if p.prepared_round is not None)
        digests = {p.prepared_digest for p in prepared if p.prepared_round == best}
        if len(digests) != 1:
            raise _Reject("conflicting prepared certificates in round-change justification")
        expected = digests.pop()
        assert expected is not None
        self._check_prepare_quorum(msg.prepare_justification, best, expected)
        try:
            digest = bytes(self._blocks.block_digest(block))
        except Exception as exc:
            raise _Reject(f"invalid block: {exc}") from exc
        if digest != expected:
            raise _Reject("re-proposed block does not match the highest prepared digest")
        return digest

    def _check_prepare_quorum(
        self, prepares: Sequence[SignedPayload[PreparePayload]], prepared_round: int, digest: bytes
    ) -> None:
        authors: set[bytes] = set()
        for s in prepares:
            p = s.payload
            if (p.height, p.round, p.digest) != (self._height, prepared_round, digest):
                raise _Reject("prepare justification for another height, round or digest")
            if s.author not in self._index:
                raise _Reject("prepare justification from a non-validator")
            if s.author in authors:
                raise _Reject("prepare justification with duplicate author")
            authors.add(s.author)
        if len(authors) < self._quorum:
            raise _Reject("prepare justification below quorum")

    # ------------------------------------------------------------------------------ PREPARE / COMMIT

    def _on_prepare(self, msg: Prepare, raw: bytes, out: list[Action]) -> None:
        rs = self._rs(msg.round)
        rs.heard.add(msg.author)
        self._claim_slot(rs.prepares, msg, raw, "prepare", out)  # type: ignore[arg-type]
        if msg.round == self._round:
            self._check_prepared(out)

    def _check_prepared(self, out: list[Action]) -> None:
        r = self._round
        rs = self._rs(r)
        acc = rs.accepted
        if self._committed or acc is None or rs.prepared:
            return
        matching = [m.signed for m, _ in rs.prepares.values() if m.signed.payload.digest == acc.digest]
        if len(matching) < self._quorum:
            return
        rs.prepared = True
        matching.sort(key=lambda s: self._index[s.author])
        self._prepared = _PreparedCertificate(r, acc.block, acc.digest, tuple(matching))
        if self._is_validator:
            self._persist(out)
            seal = self._sign(acc.seal_hash)
            payload = CommitPayload(self._height, r, acc.digest, seal)
            self._send(Commit(sign_payload(COMMIT, payload, self._sign)), out)

    def _on_commit(self, msg: Commit, raw: bytes, out: list[Action]) -> None:
        rs = self._rs(msg.round)
        rs.heard.add(msg.author)
        self._claim_slot(rs.commits, msg, raw, "commit", out)  # type: ignore[arg-type]
        if msg.round <= self._round:
            self._check_committed(msg.round, out)

    def _check_committed(self, r: int, out: list[Action]) -> None:
        """Decide when a quorum of COMMITs with valid seals matches the accepted proposal of round ``r``
        (any round <= current: a commit quorum is final whatever round we are in)."""
        rs = self._rs(r)
        acc = rs.accepted
        if self._committed or acc is None:
            return
        signers: list[tuple[int, bytes]] = []
        for author, (m, _) in rs.commits.items():
            p = m.signed.payload
            if p.digest != acc.digest:
                continue
            ok = rs.seal_ok.get(author)
            if ok is None:
                try:
                    ok = recover_address(acc.seal_hash, p.commit_seal) == author
                except InvalidMessage:
                    ok = False
                rs.seal_ok[author] = ok
                if not ok:
                    out.append(Dropped("invalid commit seal", author))
            if ok:
                signers.append((self._index[author], p.commit_seal))
        if len(signers) < self._quorum:
            return
        signers.sort()
        self._committed = True
        out.append(BlockCommitted(self._height, r, acc.block, acc.digest, tuple(s for _, s in signers)))

    # ---------------------------------------------------------------------------------- ROUND-CHANGE

    def _on_round_change(self, msg: RoundChange, raw: bytes, out: list[Action]) -> None:
        r, p = msg.round, msg.signed.payload
        if r == 0:
            raise _Reject("round change to round 0")
        if r < self._round:
            self._hint_current_round(msg.author, out)
            raise _Reject("round change for an old round")
        if r == self._round:
            self._hint_current_round(msg.author, out)  # Rule E: it may lack ours (sent before it listened)
        rs = self._rs(r)
        rs.heard.add(msg.author)
        previous = rs.round_changes.get(msg.author)
        if previous is not None:
            raise _Reject("duplicate" if previous[0].signed.payload == p else "conflicting round change")
        if p.prepared_round is None:
            if msg.prepared_block is not None or msg.prepare_justification:
                raise _Reject("prepared data in an unprepared round change")
        else:
            if p.prepared_round >= r:
                raise _Reject("round change prepared in a non-earlier round")
            if msg.prepared_block is None:
                raise _Reject("prepared round change without its block")
            try:
                digest = bytes(self._blocks.block_digest(msg.prepared_block))
            except Exception as exc:
                raise _Reject(f"invalid prepared block: {exc}") from exc
            if digest != p.prepared_digest:
                raise _Reject("prepared block does not match the prepared digest")
            self._check_prepare_quorum(msg.prepare_justification, p.prepared_round, digest)
        rs.round_changes[msg.author] = (msg, raw)
        if r > self._round:
            self._check_round_jump(out)
        else:
            self._check_propose(out)

    def _quorum_reached(self, r: int) -> bool:
        """Rule G: valid ROUND-CHANGEs for rounds >= ``r`` from a quorum of distinct validators are held."""
        authors: set[bytes] = set()
        for rr, rs in self._rounds.items():
            if rr >= r:
                authors.update(rs.round_changes)
        return len(authors) >= self._quorum

    def _on_round_timeout(self, out: list[Action]) -> None:
        """Round timer of the current round expired: leave it (round 0, or a quorum reached it), or stay,
        re-send our ROUND-CHANGE and wait with the next doubled timeout (see "Round synchronisation")."""
        r = self._round
        if r == 0 or self._quorum_reached(r):
            self._move_to_round(r + 1, out, send_round_change=True)
            return
        rs = self._rs(r)
        out.append(
            RoundFailed(
                self._height,
                r,
                _proposer(self._validators, self._prev_proposer, r),
                tuple(v for v in self._validators if v != self._address and v not in rs.heard),
            )
        )
        self._attempt += 1
        seconds = self._config.round_timeout(min(r + self._attempt, 64))
        out.append(StartRoundTimer(self._height, r, seconds, self._attempt))
        if rs.own_round_change is not None:
            out.append(Broadcast(rs.own_round_change))

    def _hint_current_round(self, author: bytes, out: list[Action]) -> None:
        """Re-broadcast our ROUND-CHANGE for the current round to help a lagging validator catch up
        (at most once per lagging author and round)."""
        rs = self._rs(self._round)
        if rs.own_round_change is None or author in rs.hinted or author == self._address:
            return
        rs.hinted.add(author)
        out.append(Broadcast(rs.own_round_change))

    def _check_round_jump(self, out: list[Action]) -> None:
        """With f + 1 validators at rounds above ours, at least one honest validator is there: jump to the
        highest round that f + 1 distinct validators reached (Besu ``RoundChangeManager`` f+1 rule)."""
        highest: dict[bytes, int] = {}
        for r, rs in self._rounds.items():
            if r > self._round:
                for author in rs.round_changes:
                    highest[author] = max(highest.get(author, 0), r)
        f1 = max_faulty(len(self._validators)) + 1
        if len(highest) < f1:
            return
        target = sorted(highest.values(), reverse=True)[f1 - 1]
        if target > self._round:
            self._move_to_round(target, out, send_round_change=True)

    def _check_propose(self, out: list[Action]) -> None:
        """As proposer of round r > 0 holding a quorum of ROUND-CHANGEs for r: re-propose the block of the
        highest prepared certificate among them, or ask the node for a new block."""
        r = self._round
        if r == 0 or self._committed or not self._is_validator:
            return
        if _proposer(self._validators, self._prev_proposer, r) != self._address:
            return
        rs = self._rs(r)
        if rs.proposed or rs.create_justification is not None or len(rs.round_changes) < self._quorum:
            return
        rcs = sorted((m for m, _ in rs.round_changes.values()), key=lambda m: self._index[m.author])
        justification = tuple(m.signed for m in rcs)
        best: RoundChange | None = None
        for m in rcs:
            pr = m.signed.payload.prepared_round
            if pr is not None and (best is None or pr > (best.signed.payload.prepared_round or 0)):
                best = m
        if best is not None and best.prepared_block is not None:
            self._send_proposal(best.prepared_block, justification, best.prepare_justification, out)
        else:
            rs.create_justification = justification
            out.append(CreateBlock(self._height, r))

    # ---------------------------------------------------------------------------------------- rounds

    def _start_round(self, out: list[Action]) -> None:
        r = self._round
        out.append(StartRoundTimer(self._height, r, self._config.round_timeout(r)))
        if not self._is_validator or _proposer(self._validators, self._prev_proposer, r) != self._address:
            return
        if r == 0:
            rs = self._rs(0)
            if rs.create_justification is None and not rs.proposed:
                rs.create_justification = ()
                out.append(CreateBlock(self._height, 0))
        else:
            self._check_propose(out)

    def _move_to_round(self, new_round: int, out: list[Action], *, send_round_change: bool) -> None:
        old = self._rs(self._round)
        out.append(
            RoundFailed(
                self._height,
                self._round,
                _proposer(self._validators, self._prev_proposer, self._round),
                tuple(v for v in self._validators if v != self._address and v not in old.heard),
            )
        )
        self._round = new_round
        self._attempt = 0
        for r in [r for r in self._rounds if r < new_round - 1 and self._rounds[r].accepted is None]:
            del self._rounds[r]  # nothing left to decide there
        if self._is_validator:
            self._persist(out)  # before any message of the new round (our proposal, PREPARE or ROUND-CHANGE)
        self._start_round(out)
        if send_round_change and self._is_validator:
            self._send_round_change(new_round, out)

    def _send_round_change(self, r: int, out: list[Action]) -> None:
        """Broadcast our ROUND-CHANGE for round ``r`` carrying our prepared certificate, if any."""
        cert = self._prepared
        payload = RoundChangePayload(
            self._height,
            r,
            None if cert is None else cert.round,
            None if cert is None else cert.digest,
        )
        signed = sign_payload(ROUND_CHANGE, payload, self._sign)
        rc = RoundChange(signed) if cert is None else RoundChange(signed, cert.block, cert.prepares)
        self._rs(r).own_round_change = encode_message(rc)
        self._send(rc, out)

    def _persist(self, out: list[Action]) -> None:
        """Emit ``PersistRoundState`` with our round, votes and prepared certificate of this height."""
        cert = self._prepared
        encoded_cert: list[object] = []
        if cert is not None:
            encoded_cert = [cert.round, cert.block, [encode_message(Prepare(p)) for p in cert.prepares]]
        voted = [[r, d] for r, d in sorted(self._voted.items())]
        record = rlp.encode([self._height, self._round, voted, encoded_cert])
        out.append(PersistRoundState(self._height, record))

    # --------------------------------------------------------------------------------------- sending

    def _send_proposal(
        self,
        block: bytes,
        round_changes: tuple[SignedPayload[RoundChangePayload], ...],
        prepares: tuple[SignedPayload[PreparePayload], ...],
        out: list[Action],
    ) -> None:
        rs = self._rs(self._round)
        rs.proposed = True
        signed = sign_payload(PROPOSAL, ProposalPayload(self._height, self._round, block), self._sign)
        self._send(Proposal(signed, round_changes, prepares), out)

    def _send(self, msg: Message, out: list[Action]) -> None:
        """Broadcast ``msg`` to the other validators and process our own copy."""
        raw = encode_message(msg)
        out.append(Broadcast(raw))
        self._on_message(msg, raw, out)

    # --------------------------------------------------------------------------------------- helpers

    @property
    def _is_validator(self) -> bool:
        return self._address in self._index

    @property
    def _quorum(self) -> int:
        return quorum(len(self._validators))

    def _rs(self, r: int) -> _RoundState:
        rs = self._rounds.get(r)
        if rs is None:
            rs = self._rounds[r] = _RoundState()
        return rs


@dataclass(frozen=True)
class _Restored:
    """A decoded ``Restore`` record."""

    height: int
    round: int
    voted: dict[int, bytes]
    prepared: _PreparedCertificate | None


def _decode_restore(record: bytes) -> _Restored | None:
    """Decode a ``PersistRoundState`` record; ``None`` when it is malformed (then nothing is restored)."""
    try:
        height_raw, round_raw, voted_raw, cert_raw = rlp.decode(record)
        voted = {int.from_bytes(r, "big"): bytes(d) for r, d in voted_raw}
        prepared = None
        if cert_raw:
            pr_raw, block, prepares_raw = cert_raw
            prepares = []
            for raw in prepares_raw:
                msg = decode_message(raw)
                if not isinstance(msg, Prepare):
                    return None
                prepares.append(msg.signed)
            digest = prepares[0].payload.digest if prepares else b""
            prepared = _PreparedCertificate(int.from_bytes(pr_raw, "big"), bytes(block), digest, tuple(prepares))
        return _Restored(int.from_bytes(height_raw, "big"), int.from_bytes(round_raw, "big"), voted, prepared)
    except (ValueError, TypeError, InvalidMessage, rlp.exceptions.DecodingError):
        return None


def proposer_for(validators: Sequence[bytes], prev: bytes | None, round: int) -> bytes:
    """Proposer (20 bytes) of a round, Besu round-robin: ``validators`` sorted ascending, ``prev`` the
    proposer (coinbase) of the parent block or ``None`` after genesis; raises ValueError on an empty set."""
    return _proposer(validators, prev, round)


def _proposer(validators: Sequence[bytes], prev: bytes | None, round: int) -> bytes:
    n = len(validators)
    if n == 0:
        raise ValueError("empty validator set")
    if prev is not None and prev in validators:
        return validators[(list(validators).index(prev) + 1 + round) % n]
    return validators[round % n]
