"""The execution layer of a validator: py-evm's Shanghai VM with QBFT headers on durable storage.

A QBFT block is an ordinary Shanghai block (difficulty 0, nonce 0, mixHash = Besu's BFT constant,
coinbase = proposer) whose extraData is ``RLP([vanity, validators, vote, round, seals])``
(:mod:`provenance.qbft_header`). py-evm stores and links blocks by ``keccak(rlp(header))``; we give it
each header with round 0 and no seals in extraData, so py-evm's own block hash **is** the QBFT block
hash (which excludes round and seals). The round and commit seals of each finalized block are
stored beside it under ``qbft-seal:<hash>`` and merged back into extraData when the block is served
over JSON-RPC or to a syncing peer.

Blocks are built in one batch with ``apply_all_transactions`` (py-evm's ``mine_all`` path), never
with ``apply_transaction`` in a loop, which re-hashes the block per transaction.

Block validity (:meth:`Ledger.check_block`) is **one** function for a PROPOSAL handed to consensus and
for a sealed block from catch-up sync, so a Byzantine proposer cannot slip a block past either path:
position (number, parent), extraData (round 0 and no seals in the proposed form, validators = tally,
no vote in an epoch block), mixHash, coinbase (the round's proposer; for a sealed block of round r one of
the proposers of rounds 0..r, since a prepared block re-proposed in a later round keeps the coinbase of
the round it was built in), timestamp (>= parent + block period, Besu's
``BlockPeriodValidationRule`` / ``TimestampMoreRecentThanParent``, and <= local clock +
:data:`MAX_FUTURE_BLOCK_S`), gas limit within parent ± parent/1024, no withdrawals (this chain has no
beacon chain: an empty list and the empty withdrawals root), every transaction with our EIP-155 chain id
and a sender permitted **at the parent state** (the rule of the txpool's ``-32007`` admission check:
:meth:`Ledger.is_permitted_sender`), then full re-execution compared with the header (state, receipts,
transactions roots, gas used).

Validator governance (EEA QBFT spec "block header validator selection", Besu's
``BftValidatorsValidationRule`` and vote tallying): a proposer may put one vote in its block's
extraData (``[address, 0xFF]`` add, ``[address, 0x]`` drop). The votes cast since the last epoch
block are tallied (one vote per voter and candidate, a later vote replacing an earlier one); when
more than half of the current validators voted the same way for a candidate, the change takes effect
**from the next block**: block N's extraData lists the validators of block N — the set after the
votes of blocks up to N − 1 — and N's commit seals are checked against exactly that list, as Besu
writes and checks it. So validators(N) = extraData(N).validators = tally after block N − 1. Epoch
blocks (number % epoch length == 0) carry no vote and reset the tally. Every validator recomputes
the list from the tally and refuses a proposal whose extraData validators differ
(:meth:`Ledger.expected_validators`).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rlp
from eth import constants
from eth._utils.headers import compute_gas_limit_bounds
from eth.abc import AtomicDatabaseAPI, BlockAPI, BlockHeaderAPI, SignedTransactionAPI
from eth.chains.base import Chain
from eth.db.atomic import AtomicDB
from eth.vm.forks.shanghai import ShanghaiVM
from eth.vm.forks.shanghai.blocks import ShanghaiBlock
from eth.vm.spoof import SpoofTransaction
from eth_utils import ValidationError, keccak, to_canonical_address
from trie import HexaryTrie

from ledger import fasttrie
from ledger.consensus.errors import InvalidBlock
from ledger.consensus.statemachine import proposer_for
from ledger.storage import LmdbAtomicDB
from provenance.qbft_header import (
    BFT_MIX_HASH,
    ExtraData,
    Vote,
    decode_extra_data,
    encode_extra_data,
    quorum,
    recover_seal_signer,
)

log = logging.getLogger("ledger.chain")
fasttrie.install()  # one-pass transactions/receipts roots (same results as py-evm's HexaryTrie, faster)

#: Header extraData limit for our VM: QBFT extraData holds the validator list and up to n seals.
EXTRA_DATA_MAX_BYTES = 64 * 1024
#: How far (seconds) a block's timestamp may run ahead of this validator's clock. Honest proposers never
#: date a block after their own clock (they wait for ``parent.timestamp + block period``), so this only
#: absorbs clock skew between validators (keep them NTP-synchronised); Besu's BFT header rules allow 1 s too.
MAX_FUTURE_BLOCK_S = 1
#: ``isPermittedSender(address)`` selector of EnterpriseRegistry: enterprises, their anchoring accounts
#: and active persons.
IS_PERMITTED_SENDER = keccak(b"isPermittedSender(address)")[:4]
#: ``isActiveAnchorer(address)`` selector (registries deployed before persons existed).
IS_ACTIVE_ANCHORER = keccak(b"isActiveAnchorer(address)")[:4]
#: Permissioning verdicts kept in memory, keyed by (registry storage root at the parent, sender).
PERMIT_CACHE_SIZE = 10_000
SEAL_KEY_PREFIX = b"qbft-seal:"
#: Besu's default QBFT ``epochlength`` (blocks): votes are discarded at every multiple of it.
DEFAULT_EPOCH_LENGTH = 30_000
#: Vote tallies kept in memory (by block hash); older ones are recomputed from headers on demand.
TALLY_CACHE_SIZE = 256
GENESIS_KEY = b"traceledger-genesis-hash"


class QbftShanghaiVM(ShanghaiVM):
    """Shanghai execution with QBFT headers: long extraData, seals checked by consensus, not PoW."""

    extra_data_max_bytes = EXTRA_DATA_MAX_BYTES

    def validate_seal(self, header: BlockHeaderAPI) -> None:
        """Commit seals are checked by :meth:`Ledger.verify_seals` before a block is persisted."""

    def validate_seal_extension(self, header: BlockHeaderAPI, parents: Iterable[BlockHeaderAPI]) -> None:
        """No PoW seal extension in QBFT."""


@dataclass(frozen=True)
class GenesisConfig:
    """Everything that fixes a chain's genesis block (identical on every node of a network).

    ``alloc`` maps 20-byte addresses to balances in wei; ``validators`` are 20-byte addresses;
    ``timestamp`` is UNIX seconds; ``gas_limit`` in gas; ``base_fee`` in wei; ``epoch_length`` in
    blocks (votes reset at every multiple of it; Besu ``qbft.epochlength``, default 30000). The epoch
    length is not part of the genesis header but every node of a network must use the same one.
    """

    chain_id: int
    validators: tuple[bytes, ...]
    alloc: dict[bytes, int]
    timestamp: int
    gas_limit: int = 60_000_000
    base_fee: int = 1_000_000_000
    epoch_length: int = DEFAULT_EPOCH_LENGTH

    def to_json(self) -> dict[str, Any]:
        """The JSON form stored in ``node.json`` (``chainId``, ``validators`` hex, ``alloc`` wei as decimal strings,
        ``timestamp``, ``gasLimit``, ``baseFeePerGas``, ``epochLength``).
        """
        return {
            "chainId": self.chain_id,
            "validators": ["0x" + v.hex() for v in self.validators],
            "alloc": {"0x" + a.hex(): str(b) for a, b in self.alloc.items()},
            "timestamp": self.timestamp,
            "gasLimit": self.gas_limit,
            "baseFeePerGas": self.base_fee,
            "epochLength": self.epoch_length,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenesisConfig:
        """Inverse of :meth:`to_json`; validators sorted. Raises KeyError / ValueError on a malformed document."""
        return cls(
            chain_id=int(data["chainId"]),
            validators=tuple(sorted(to_canonical_address(v) for v in data["validators"])),
            alloc={to_canonical_address(a): int(b) for a, b in data["alloc"].items()},
            timestamp=int(data["timestamp"]),
            gas_limit=int(data.get("gasLimit", 60_000_000)),
            base_fee=int(data.get("baseFeePerGas", 1_000_000_000)),
            epoch_length=int(data.get("epochLength", DEFAULT_EPOCH_LENGTH)),
        )


def chain_class_for(chain_id: int) -> type[Chain]:
    """A py-evm ``Chain`` subclass running :class:`QbftShanghaiVM` from block 0 with ``chain_id``."""
    return type("QbftChain", (Chain,), {"vm_configuration": ((0, QbftShanghaiVM),), "chain_id": chain_id})


#: Recently decoded blocks by their RLP bytes: consensus asks for the digest, the seal hash, validation
#: and commit of the same proposed block, and decoding a block of hundreds of transactions costs ~10 ms.
_DECODED: OrderedDict[bytes, BlockAPI] = OrderedDict()
DECODED_CACHE_BLOCKS = 8


def decode_block(encoded: bytes) -> BlockAPI:
    """Decode an RLP Shanghai block; raises :class:`InvalidBlock` on malformed bytes (small LRU cache)."""
    encoded = bytes(encoded)
    cached = _DECODED.get(encoded)
    if cached is not None:
        _DECODED.move_to_end(encoded)
        return cached
    try:
        block = rlp.decode(encoded, sedes=ShanghaiBlock)
    except Exception as exc:  # rlp raises many types
        raise InvalidBlock(f"block is not a valid RLP Shanghai block: {exc}") from exc
    _DECODED[encoded] = block
    while len(_DECODED) > DECODED_CACHE_BLOCKS:
        _DECODED.popitem(last=False)
    return block


def encode_block(block: BlockAPI) -> bytes:
    """RLP bytes of a block (as sent in PROPOSAL messages and to syncing peers)."""
    return rlp.encode(block)


@dataclass(frozen=True)
class VoteTally:
    """Validator set after a block and the votes cast since the last epoch block.

    ``validators``: sorted 20-byte addresses (= that block's extraData validators).
    ``votes``: ``{(voter, candidate): add}`` -- the latest vote of each voter about each candidate.
    """

    validators: tuple[bytes, ...]
    votes: dict[tuple[bytes, bytes], bool]

    def is_meaningful(self, vote: Vote) -> bool:
        """True when ``vote`` would change the set: add a non-validator or drop a validator."""
        return (vote.address in self.validators) != vote.add

    def count(self, candidate: bytes, add: bool) -> int:
        """Distinct voters currently voting ``add`` for ``candidate``."""
        return sum(1 for (_, c), a in self.votes.items() if c == candidate and a == add)


def apply_vote(tally: VoteTally, number: int, proposer: bytes, vote: Vote | None, epoch_length: int) -> VoteTally:
    """The tally after block ``number`` proposed by ``proposer`` carrying ``vote`` on top of ``tally``.

    Rules (Clique EIP-225 / Besu QBFT vote tallying): an epoch block resets all votes; a vote counts
    only when its proposer is a validator and it is meaningful (see :meth:`VoteTally.is_meaningful`);
    more than half of the validators (``n // 2 + 1``) voting the same way applies the change, after
    which every vote about the candidate (and, for a drop, every vote *by* it) is discarded. The last
    validator is never dropped. Pure function; raises nothing.
    """
    if number % epoch_length == 0:
        return VoteTally(tally.validators, {})
    if vote is None or proposer not in tally.validators or not tally.is_meaningful(vote):
        return tally
    votes = dict(tally.votes)
    votes[(proposer, vote.address)] = vote.add
    current = VoteTally(tally.validators, votes)
    if current.count(vote.address, vote.add) <= len(tally.validators) // 2:
        return current
    if vote.add:
        validators = tuple(sorted((*tally.validators, vote.address)))
    elif len(tally.validators) > 1:
        validators = tuple(v for v in tally.validators if v != vote.address)
    else:
        return current
    kept = {k: a for k, a in votes.items() if k[1] != vote.address and (vote.add or k[0] != vote.address)}
    return VoteTally(validators, kept)


@dataclass(frozen=True)
class SealRecord:
    """Round and commit seals (65-byte signatures) of a finalized block."""

    round: int
    seals: tuple[bytes, ...]


class Ledger:
    """One validator's chain: genesis, block building, validation, commit, and reads.

    Implements the consensus :class:`ledger.consensus.ports.BlockPort` (``validators``,
    ``previous_proposer``, ``validate_block``, ``block_digest``, ``seal_hash``).
    """

    def __init__(
        self,
        data_dir: str | Path,
        genesis: GenesisConfig,
        *,
        block_period_s: float = 1.0,
        registry: bytes | None = None,
        target_gas_limit: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open (or create) the chain in ``data_dir/chain``.

        :param block_period_s: the network's block period (seconds); a block's timestamp must be at least
            ``max(1, int(block_period_s))`` seconds after its parent's.
        :param registry: 20-byte EnterpriseRegistry address for account permissioning, or ``None`` (then
            only genesis accounts may send transactions).
        :param target_gas_limit: gas limit our proposers steer toward by at most parent/1024 per block
            (Besu ``targetGasLimit``); default the genesis gas limit.
        :param clock: UNIX time in seconds (tests inject a fixed clock).
        :raises RuntimeError: ``data_dir`` holds another chain.
        """
        self.genesis = genesis
        self.block_period_s = float(block_period_s)
        self.registry = bytes(registry) if registry is not None else None
        self.target_gas_limit = int(target_gas_limit if target_gas_limit is not None else genesis.gas_limit)
        self.clock = clock
        self._permit_cache: dict[tuple[bytes, bytes], bool] = {}
        self.db = LmdbAtomicDB(Path(data_dir) / "chain")
        self.chain_class = chain_class_for(genesis.chain_id)
        # The genesis header (as in Ethereum) does not commit to the chain id, so both are stored.
        expected = self._create_genesis(AtomicDB()).get_canonical_block_hash(0) + genesis.chain_id.to_bytes(8, "big")
        try:
            stored = self.db[GENESIS_KEY]
        except KeyError:
            stored = None
        if stored is None:
            self.chain = self._create_genesis(self.db)
            self.db[GENESIS_KEY] = expected
        elif stored != expected:
            raise RuntimeError(
                f"data directory {data_dir} holds another chain (genesis 0x{stored[:32].hex()}, chain id "
                f"{int.from_bytes(stored[32:], 'big')}); this configuration has genesis 0x{expected[:32].hex()}, "
                f"chain id {genesis.chain_id}")
        else:
            self.chain = self.chain_class(self.db)
        self._executed: dict[bytes, BlockAPI] = {}
        self._validators_cache: dict[int, tuple[bytes, ...]] = {}
        self._tally_cache: dict[bytes, VoteTally] = {}
        #: optional ``tx_lookup(hash) -> transaction | None`` (the node's txpool): a proposed block's
        #: transactions already admitted keep their recovered senders instead of recovering them again
        self.tx_lookup: Callable[[bytes], SignedTransactionAPI | None] | None = None

    @property
    def epoch_length(self) -> int:
        """Blocks per epoch (votes reset at every multiple)."""
        return self.genesis.epoch_length

    # ---------------------------------------------------------------- genesis
    def _create_genesis(self, db: AtomicDatabaseAPI) -> Chain:
        g = self.genesis
        extra = encode_extra_data(ExtraData(validators=tuple(sorted(g.validators))), include_round=False)
        params = {
            "coinbase": constants.ZERO_ADDRESS,
            "difficulty": 0,
            "gas_limit": g.gas_limit,
            "timestamp": g.timestamp,
            "extra_data": extra,
            "nonce": constants.POST_MERGE_NONCE,
            "mix_hash": BFT_MIX_HASH,
            "base_fee_per_gas": g.base_fee,
            "withdrawals_root": constants.BLANK_ROOT_HASH,
        }
        state = {a: {"balance": b, "nonce": 0, "code": b"", "storage": {}} for a, b in g.alloc.items()}
        return self.chain_class.from_genesis(db, params, state)

    @property
    def genesis_hash(self) -> bytes:
        """Hash of block 0 (32 bytes): every node of a network must have the same."""
        return self.chain.get_canonical_block_hash(0)

    # ---------------------------------------------------------------- reads
    @property
    def head(self) -> BlockHeaderAPI:
        """Header of the latest stored (final) block."""
        return self.chain.get_canonical_head()

    @property
    def height(self) -> int:
        """Number of the latest stored block."""
        return self.head.block_number

    def header_at(self, number: int) -> BlockHeaderAPI:
        """Canonical header of block ``number``; raises py-evm's ``HeaderNotFound`` beyond the head."""
        return self.chain.get_canonical_block_header_by_number(number)

    def validators(self, height: int) -> tuple[bytes, ...]:
        """Validators (sorted 20-byte addresses) sealing block ``height``: the set after the votes of
        blocks up to ``height - 1`` (= block ``height``'s own extraData list once it exists, Besu's rule).

        Raises py-evm's ``HeaderNotFound`` when block ``height - 1`` is not stored.
        """
        cached = self._validators_cache.get(height)
        if cached is None:
            parent = self.header_at(height - 1)
            cached = tuple(sorted(self.tally_at(parent).validators))
            self._validators_cache[height] = cached
        return cached

    def tally_at(self, header: BlockHeaderAPI) -> VoteTally:
        """The :class:`VoteTally` after the stored block ``header`` (walks back to the epoch block at most)."""
        cached = self._tally_cache.get(header.hash)
        if cached is not None:
            return cached
        chain: list[BlockHeaderAPI] = []
        cursor = header
        tally: VoteTally | None = None
        while True:
            cached = self._tally_cache.get(cursor.hash)
            if cached is not None:
                tally = cached
                break
            if cursor.block_number % self.epoch_length == 0:  # epoch block or genesis: no votes
                tally = VoteTally(tuple(sorted(decode_extra_data(cursor.extra_data).validators)), {})
                break
            chain.append(cursor)
            cursor = self.chain.get_block_header_by_hash(cursor.parent_hash)
        for h in reversed(chain):
            tally = apply_vote(tally, h.block_number, bytes(h.coinbase), decode_extra_data(h.extra_data).vote,
                               self.epoch_length)
        if len(self._tally_cache) >= TALLY_CACHE_SIZE:
            self._tally_cache.clear()
        self._tally_cache[header.hash] = tally
        return tally

    def expected_validators(self, parent: BlockHeaderAPI) -> tuple[bytes, ...]:
        """extraData validators (sorted 20-byte addresses) every child of ``parent`` must carry: the set after
        ``parent``'s votes (Besu's ``BftValidatorsValidationRule``); the child's own vote counts from its child on."""
        return self.tally_at(parent).validators

    def previous_proposer(self, height: int) -> bytes | None:
        """Coinbase (proposer) of block ``height - 1`` (20 bytes), or None for heights 0 and 1: the start of QBFT's
        proposer rotation.
        """
        if height <= 1:
            return None
        return bytes(self.header_at(height - 1).coinbase)

    def seal_record(self, block_hash: bytes) -> SealRecord | None:
        """Round and commit seals stored for the final block ``block_hash``, or None when unknown."""
        try:
            raw = self.db[SEAL_KEY_PREFIX + block_hash]
        except KeyError:
            return None
        round_raw, seals = rlp.decode(raw)
        return SealRecord(int.from_bytes(round_raw, "big"), tuple(seals))

    def full_extra_data(self, header: BlockHeaderAPI) -> bytes:
        """extraData as QBFT defines it for a finalized block: with its round and commit seals."""
        record = self.seal_record(header.hash)
        extra = decode_extra_data(header.extra_data)
        if record is None:
            return header.extra_data
        full = ExtraData(extra.vanity, extra.validators, extra.vote, record.round, record.seals)
        return encode_extra_data(full)

    def sealed_header_fields(self, header: BlockHeaderAPI) -> list[Any]:
        """Header RLP fields with the full (sealed) extraData, as peers and verifiers see them."""
        fields = list(rlp.decode(rlp.encode(header)))
        fields[12] = self.full_extra_data(header)
        return fields

    def proposers_for(self, height: int, round: int) -> frozenset[bytes]:
        """Coinbases a block sealed in ``round`` of ``height`` may carry: the proposers of rounds 0..round
        (a prepared block re-proposed in a later round keeps the coinbase of the round it was built in);
        for round 0 exactly the round-0 proposer."""
        validators = self.validators(height)
        prev = self.previous_proposer(height)
        return frozenset(proposer_for(validators, prev, r) for r in range(min(round, len(validators) - 1) + 1))

    # ---------------------------------------------------------------- permissioning
    def check_chain_id(self, tx: SignedTransactionAPI) -> str | None:
        """``None`` when ``tx`` carries this chain's id (typed, or legacy with EIP-155), else the reason."""
        chain_id = getattr(tx, "chain_id", None)
        if chain_id is None:
            return f"no chain id (legacy transaction without EIP-155): this chain is {self.genesis.chain_id}"
        if chain_id != self.genesis.chain_id:
            return f"chain id {chain_id}: this chain is {self.genesis.chain_id}"
        return None

    def is_permitted_sender(self, sender: bytes, parent: BlockHeaderAPI | None = None) -> bool:
        """Account permissioning, the one rule of the txpool admission (JSON-RPC ``-32007``) and of block
        validity: a genesis account, or ``EnterpriseRegistry.isPermittedSender(sender)`` (or, for registries
        without it, ``isActiveAnchorer``) returning true in the state after ``parent`` (default: the head).
        Without a registry only genesis accounts are permitted. Cached per (registry storage root, sender)."""
        if sender in self.genesis.alloc:
            return True
        if self.registry is None:
            return False
        parent = parent if parent is not None else self.head
        key = (self._registry_storage_root(parent), bytes(sender))
        cached = self._permit_cache.get(key)
        if cached is not None:
            return cached
        permitted = False
        for selector in (IS_PERMITTED_SENDER, IS_ACTIVE_ANCHORER):
            output = self._static_call(parent, self.registry, selector + b"\x00" * 12 + bytes(sender))
            permitted = output is not None and len(output) >= 32 and int.from_bytes(output[:32], "big") == 1
            if permitted:
                break
        if len(self._permit_cache) >= PERMIT_CACHE_SIZE:
            self._permit_cache.clear()
        self._permit_cache[key] = permitted
        return permitted

    def _registry_storage_root(self, at: BlockHeaderAPI) -> bytes:
        """Storage root of the registry account in the state after ``at`` (32 bytes): permissioning verdicts
        depend on nothing else, so they stay cached until a block writes to the registry. Falls back to
        the block hash when the account cannot be read."""
        assert self.registry is not None
        try:
            account = HexaryTrie(self.chain.chaindb.db, at.state_root)[keccak(self.registry)]
            return bytes(rlp.decode(account)[2]) if account else constants.BLANK_ROOT_HASH
        except Exception:  # missing trie node (pruned/partial state): be conservative
            return at.hash

    def _static_call(self, at: BlockHeaderAPI, to: bytes, data: bytes) -> bytes | None:
        """Output of a gas-free call in the state after ``at``; ``None`` when it reverts or fails."""
        zero = b"\x00" * 20
        try:
            vm = self.chain.get_vm(at)
            unsigned = vm.create_unsigned_transaction(
                nonce=vm.state.get_nonce(zero), gas_price=0, gas=at.gas_limit, to=to, value=0, data=data)
            with vm.in_costless_state() as state:
                computation = state.costless_execute_transaction(SpoofTransaction(unsigned, from_=zero))
        except Exception:  # py-evm raises its own types for a missing state or a broken call
            return None
        return None if computation.is_error else bytes(computation.output)

    def transaction_violation(self, tx: SignedTransactionAPI, parent: BlockHeaderAPI) -> str | None:
        """``None`` when ``tx`` may be included in a child of ``parent`` as far as chain id and account
        permissioning go, else the reason (nonce, balance and gas are checked by execution)."""
        reason = self.check_chain_id(tx)
        if reason is not None:
            return reason
        try:
            sender = tx.sender
        except Exception as exc:  # invalid signature
            return f"sender cannot be recovered: {exc}"
        if not self.is_permitted_sender(sender, parent):
            return f"sender 0x{bytes(sender).hex()} is not permitted to transact"
        return None

    # ---------------------------------------------------------------- building
    @property
    def min_block_gap_s(self) -> int:
        """Least timestamp difference (seconds) between a block and its parent: ``max(1, int(period))``."""
        return max(1, int(self.block_period_s))

    def next_gas_limit(self, parent_gas_limit: int) -> int:
        """Gas limit of our next block: one step from the parent's toward :attr:`target_gas_limit`, at most
        what py-evm's bound ``parent ± (parent // 1024 − 1)`` allows (Besu ``TargetingGasLimitCalculator``),
        so a Byzantine proposer's steps are undone by the honest ones."""
        low, high = compute_gas_limit_bounds(parent_gas_limit)
        return min(high, max(low, self.target_gas_limit))

    def new_header(self, proposer: bytes, timestamp: int | None = None, vote: Vote | None = None) -> BlockHeaderAPI:
        """Header of the next block by ``proposer``; ``vote`` goes into extraData (dropped in an epoch block).
        The timestamp is at least parent + :attr:`min_block_gap_s`; the gas limit :meth:`next_gas_limit`."""
        parent = self.head
        ts = max(parent.timestamp + self.min_block_gap_s, int(timestamp if timestamp is not None else self.clock()))
        if (parent.block_number + 1) % self.epoch_length == 0:
            vote = None
        validators = self.expected_validators(parent)
        extra = encode_extra_data(ExtraData(validators=validators, vote=vote), include_round=False)
        return self.chain.create_header_from_parent(
            parent, coinbase=proposer, timestamp=ts, extra_data=extra, mix_hash=BFT_MIX_HASH,
            gas_limit=self.next_gas_limit(parent.gas_limit),
        )

    def build_block(
        self, transactions: Sequence[SignedTransactionAPI], proposer: bytes, timestamp: int | None = None,
        vote: Vote | None = None,
    ) -> BlockAPI:
        """Execute ``transactions`` in one batch on top of the head and return the unsealed block.

        ``vote`` (optional) is the proposer's validator vote for the header; the extraData validator
        list is the current set with the tally (including this vote) applied.

        The block is not persisted (only its state trie nodes are); it becomes part of the chain
        when :meth:`commit` is called with a quorum of seals. Raises whatever py-evm raises for an
        invalid transaction (the caller filters the pool beforehand).
        """
        header = self.new_header(proposer, timestamp, vote)
        vm = self.chain.get_vm(header)
        new_header, receipts, _ = vm.apply_all_transactions(list(transactions), header)
        block = vm.set_block_transactions_and_withdrawals(
            vm.get_block(), new_header, list(transactions), receipts, withdrawals=(),
        )
        result = vm.mine_block(block)
        built = result.block
        self._executed[built.hash] = built
        return built

    # ---------------------------------------------------------------- BlockPort
    def block_digest(self, block: bytes) -> bytes:
        """The QBFT block hash (32 bytes) of an RLP-encoded block: what PREPARE and PROPOSAL messages name."""
        return decode_block(block).hash

    def seal_hash(self, block: bytes, round: int) -> bytes:
        """The 32-byte hash commit seals of ``raw_block`` in ``round`` sign (header with the round, no seals)."""
        decoded = decode_block(block)
        extra = decode_extra_data(decoded.header.extra_data)
        fields = list(rlp.decode(rlp.encode(decoded.header)))
        fields[12] = encode_extra_data(
            ExtraData(extra.vanity, extra.validators, extra.vote, round, ()), include_seals=False)
        return keccak(rlp.encode(fields))

    def validate_block(self, height: int, proposer: bytes, block: bytes) -> bytes:
        """Fully check a proposed block (:meth:`check_block` with ``{proposer}`` as the only allowed
        coinbase) and execute it; returns its 32-byte hash. Raises InvalidBlock."""
        decoded = decode_block(block)
        if decoded.number != height:
            raise InvalidBlock(f"block number {decoded.number}, expected {height}")
        self.check_block(decoded, frozenset({bytes(proposer)}))
        return decoded.hash

    def check_block(self, decoded: BlockAPI, proposers: frozenset[bytes]) -> BlockAPI:
        """THE block validity rule, identical for a PROPOSAL and a synced sealed block (module docstring):
        header, body, then re-execution on top of the canonical head. ``proposers``: the allowed coinbases
        (:meth:`proposers_for` on the sync path). Returns the executed block; raises InvalidBlock naming
        the rule."""
        self._check_header(decoded, proposers)
        self._check_body(decoded)
        executed = self._executed.get(decoded.hash)
        return executed if executed is not None else self._execute(decoded)

    def _check_header(self, decoded: BlockAPI, proposers: frozenset[bytes]) -> None:
        header = decoded.header
        head = self.head
        if header.block_number != head.block_number + 1:
            raise InvalidBlock(f"block number {header.block_number}, expected {head.block_number + 1}")
        if header.parent_hash != head.hash:
            raise InvalidBlock("block does not extend the canonical head")
        if bytes(header.coinbase) not in proposers:
            raise InvalidBlock(f"coinbase 0x{bytes(header.coinbase).hex()} is not the round's proposer")
        try:
            extra = decode_extra_data(header.extra_data)
        except ValueError as exc:
            raise InvalidBlock(str(exc)) from exc
        if extra.round != 0 or extra.seals:
            raise InvalidBlock("proposed block must carry round 0 and no seals in extraData")
        height = header.block_number
        if extra.vote is not None and height % self.epoch_length == 0:
            raise InvalidBlock(f"epoch block {height} must not carry a validator vote")
        expected = self.expected_validators(head)
        if tuple(extra.validators) != expected:
            raise InvalidBlock("extraData validators differ from the validator set after applying the vote tally")
        earliest = head.timestamp + self.min_block_gap_s
        if header.timestamp < earliest:
            raise InvalidBlock(f"block timestamp {header.timestamp} is before parent timestamp {head.timestamp} "
                               f"+ block period {self.min_block_gap_s} s")
        if header.timestamp > self.clock() + MAX_FUTURE_BLOCK_S:
            raise InvalidBlock(f"block timestamp {header.timestamp} is too far in the future "
                               f"(more than {MAX_FUTURE_BLOCK_S} s after this validator's clock)")
        if header.mix_hash != BFT_MIX_HASH:
            raise InvalidBlock("mixHash is not the BFT constant")
        low, high = compute_gas_limit_bounds(head.gas_limit)
        if not low <= header.gas_limit <= high:
            raise InvalidBlock(f"gas limit {header.gas_limit} outside [{low}, {high}] (parent ± parent/1024)")

    def _check_body(self, decoded: BlockAPI) -> None:
        """No withdrawals; every transaction with our chain id and a sender permitted at the parent state."""
        if getattr(decoded, "withdrawals", ()) or decoded.header.withdrawals_root != constants.BLANK_ROOT_HASH:
            raise InvalidBlock("withdrawals are not allowed on this chain (the list must be empty)")
        parent = self.head
        known = self.tx_lookup
        for index, tx in enumerate(decoded.transactions):
            pooled = known(tx.hash) if known is not None else None
            reason = self.transaction_violation(pooled if pooled is not None else tx, parent)
            if reason is not None:
                raise InvalidBlock(f"transaction {index} (0x{tx.hash.hex()}): {reason}")

    def _execute(self, decoded: BlockAPI) -> BlockAPI:
        if self.tx_lookup is not None and decoded.transactions:
            known = [self.tx_lookup(tx.hash) for tx in decoded.transactions]
            if any(k is not None for k in known):
                decoded = decoded.copy(transactions=[k if k is not None else tx
                                                     for k, tx in zip(known, decoded.transactions, strict=True)])
        try:
            parent = self.chain.get_block_header_by_hash(decoded.header.parent_hash)
            base = self.chain.create_header_from_parent(parent)
            vm = self.chain.get_vm(base.copy(gas_used=decoded.header.gas_used))
            result = vm.import_block(decoded)
            executed = result.block
            if executed.header != decoded.header:  # covers state, receipts and transactions roots
                raise InvalidBlock(
                    "re-executing the block gives a different header (state root, receipts or gas)")
        except InvalidBlock:
            raise
        except (ValidationError, ValueError, KeyError) as exc:
            raise InvalidBlock(f"block does not execute: {exc}") from exc
        self._executed[executed.hash] = executed
        return executed

    # ---------------------------------------------------------------- commit / import
    def verify_seals(self, block: BlockAPI, round: int, seals: Sequence[bytes]) -> None:
        """Check that ``seals`` hold a quorum of distinct current validators; raises InvalidBlock."""
        if block.number != self.height + 1:
            raise InvalidBlock(f"block number {block.number}, expected {self.height + 1}")
        validators = set(self.validators(block.number))
        digest = self.seal_hash(encode_block(block), round)
        signers: set[bytes] = set()
        for seal in seals:
            try:
                signer = recover_seal_signer(digest, bytes(seal))
            except (ValueError, TypeError) as exc:
                raise InvalidBlock(f"malformed commit seal: {exc}") from exc
            if signer not in validators:
                raise InvalidBlock(f"seal by non-validator 0x{signer.hex()}")
            signers.add(signer)
        if len(signers) < quorum(len(validators)):
            raise InvalidBlock(f"{len(signers)} distinct seals, quorum is {quorum(len(validators))}")

    def commit(self, block: bytes, round: int, seals: Sequence[bytes]) -> BlockAPI:
        """Persist a block that consensus finalized, with its round and commit seals."""
        decoded = decode_block(block)
        executed = self._executed.pop(decoded.hash, None)
        if executed is None:
            executed = self.check_block(decoded, self.proposers_for(decoded.number, round))
            self._executed.pop(decoded.hash, None)
        self.db.put_many({SEAL_KEY_PREFIX + executed.hash: rlp.encode([round, list(seals)])})
        self.chain.chaindb.persist_block(executed)
        self._executed.clear()
        return executed

    def import_sealed(self, block: bytes, round: int, seals: Sequence[bytes]) -> BlockAPI:
        """Import a finalized block from a peer (catch-up): seals checked (a quorum of distinct validators
        over the header with ``round``), then :meth:`check_block` with the proposers of rounds 0..round as
        allowed coinbases, then persisted. Raises InvalidBlock (nothing is stored then)."""
        decoded = decode_block(block)
        if round < 0:
            raise InvalidBlock(f"negative round {round}")
        self.verify_seals(decoded, round, seals)
        self.check_block(decoded, self.proposers_for(decoded.number, round))
        return self.commit(block, round, seals)

    def close(self) -> None:
        """Close the chain database (LMDB); the Ledger is unusable afterwards."""
        self.db.close()
