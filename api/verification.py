"""End-to-end provenance verification of one record.

Chain of checks (each reported with ``name``, ``ok``, ``detail``):

1. ``record_digest`` -- SHA-256 of the stored RFC 8785 canonical document equals the stored digest.
2. ``signature`` -- the EIP-712 record signature recovers to the owner enterprise's address.
3. ``inclusion_proof`` -- the audit path from ``hash_leaf(digest)`` reproduces the batch root
   (RFC 9162 §2.1.3.2).
4. ``anchored_on_chain`` -- ``AnchorRegistry.getAnchor(root)`` shows the root, in the stored block,
   with a non-zero submitter and the batch size.
5. ``finality_seals`` -- the block's QBFT hash recomputes to ``block.hash`` and at least
   ``quorum(n)`` distinct commit seals recover to validators of that height (Besu's rule: the set in
   the block's own extraData, ``qbft_getValidatorsByBlockNumber(number)``).

A pending record stops after 2 with a failing ``anchored`` check ("pending anchoring").
Seal verdicts are cached per (block number, block hash): finalized QBFT blocks never change.

This module only fetches (database rows, JSON-RPC answers); every decision is a pure check of
:mod:`provenance.verify`, the same functions the offline bundle verifier calls.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import defer
from sqlmodel import Session

from api.caches import BoundedCache
from api.chain import ChainClient, ChainError, ChainUnavailable, with_retry
from api.models import Batch, Enterprise, Record
from api.read_cache import BatchRow, OwnerRow, RecordRow
from provenance.crypto_profile import HASH_SHA256, SIG_SM2, profile_for_hash
from provenance.merkle import hash_children, hash_leaf
from provenance.verify import (
    FINALITY_QBFT,
    Reason,
    Verdict,
    check_anchor_state,
    check_block_header,
    check_commit_seals,
    check_confirmations,
    check_inclusion,
    check_record_digest,
    check_record_signature,
    check_record_signature_sm2,
    parse_finality_model,
)


@dataclass
class Check:
    """One named verification step."""

    name: str
    ok: bool
    detail: str


@dataclass
class SealVerdict:
    """Cached outcome of the finality-seal check of one block."""

    ok: bool
    detail: str
    seals: int = 0
    validators: list[str] = field(default_factory=list)


class BatchTree:
    """All subtree hashes of one RFC 9162 batch tree, so each inclusion proof is O(log n) lookups.

    Built once per batch (2n hashes: SHA-256, or SM3 with ``hash_alg="sm3"``) from the leaf hashes; batch trees
    never change once persisted.
    """

    def __init__(self, leaves: list[bytes], hash_alg: str = HASH_SHA256) -> None:
        self.hash_alg = hash_alg
        self.size = len(leaves)
        self._leaves = leaves
        self._nodes: dict[tuple[int, int], bytes] = {}
        self.root = self._build(0, self.size) if leaves else b""

    @staticmethod
    def _split(n: int) -> int:
        k = 1
        while k << 1 < n:
            k <<= 1
        return k

    def _build(self, a: int, b: int) -> bytes:
        if b - a == 1:
            h = self._leaves[a]
        else:
            k = self._split(b - a)
            h = hash_children(self._build(a, a + k), self._build(a + k, b), self.hash_alg)
        self._nodes[(a, b)] = h
        return h

    def proof(self, index: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(index, D[0:size]) (raises IndexError out of range)."""
        if not 0 <= index < self.size:
            raise IndexError(f"leaf index {index} outside tree of size {self.size}")
        out: list[bytes] = []
        a, b = 0, self.size
        while b - a > 1:
            k = self._split(b - a)
            if index < a + k:
                out.append(self._nodes[(a + k, b)])
                b = a + k
            else:
                out.append(self._nodes[(a, a + k)])
                a = a + k
        out.reverse()
        return out


class SealCache:
    """Thread-safe caches of immutable chain facts: seal verdicts keyed by (block number, block hash),
    ``getAnchor`` answers for final roots, and batch trees (for O(log n) inclusion proofs).

    Finalized QBFT blocks never change, so neither do these; read paths then need no chain round trip
    after the first verification of a batch.
    """

    MAX_TREES = 32

    def __init__(self, verdicts: int = 100_000, anchors: int = 100_000, hash_alg: str = HASH_SHA256) -> None:
        #: the network's record hash (``"sha-256"`` / ``"sm3"``, its crypto profile): batch trees and record
        #: digests of this network are checked with it
        self.hash_alg = hash_alg
        self._data: BoundedCache[SealVerdict] = BoundedCache("seal_verdicts", verdicts)  # LRU, api/caches.py
        self._anchors: BoundedCache[Any] = BoundedCache("anchors", anchors)
        self._trees: dict[tuple[int, str], BatchTree] = {}
        #: SM2 keys bound on chain at a final block: (account, block number) → key (``sm`` networks)
        self._sm2_keys: BoundedCache[Any] = BoundedCache("sm2_keys", anchors)
        self._lock = threading.Lock()

    def anchor(self, root: bytes) -> Any:
        """Cached ``AnchorInfo`` of a final root, or None."""
        with self._lock:
            return self._anchors.get(root)

    def put_anchor(self, root: bytes, info: Any) -> None:
        """Remember the on-chain anchor of a root (only call with a matching, final anchor)."""
        with self._lock:
            self._anchors[root] = info

    def sm2_key(self, chain: Any, account: str, block: int) -> bytes | None:
        """``sm2PublicKeyOf(account)`` at the final ``block``, read once (a final block's state never changes).
        Raises ChainUnavailable / ChainError from the read."""
        key = (account.lower(), block)
        with self._lock:
            if key in self._sm2_keys:
                return self._sm2_keys[key]
        value = chain.sm2_public_key_of(account, block)
        with self._lock:
            self._sm2_keys[key] = value
        return value

    def tree(self, batch: Batch | BatchRow) -> BatchTree:
        """The cached :class:`BatchTree` of ``batch`` (built on first use; LRU of ``MAX_TREES``)."""
        key = (int(batch.id or 0), batch.root)
        with self._lock:
            tree = self._trees.pop(key, None)
            if tree is not None:
                self._trees[key] = tree  # most recently used last
                return tree
        tree = BatchTree([hash_leaf(_b(d), self.hash_alg) for d in batch.leaf_digests], self.hash_alg)
        with self._lock:
            self._trees[key] = tree
            while len(self._trees) > self.MAX_TREES:
                self._trees.pop(next(iter(self._trees)))
        return tree

    def get(self, key: tuple[int, str]) -> SealVerdict | None:
        """Cached verdict or None."""
        with self._lock:
            return self._data.get(key)

    def put(self, key: tuple[int, str], verdict: SealVerdict) -> None:
        """Store a definitive verdict."""
        with self._lock:
            self._data[key] = verdict


def _b(hex_str: str) -> bytes:
    return bytes.fromhex(hex_str[2:] if hex_str.startswith("0x") else hex_str)


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def check_finality_seals(chain: ChainClient, block_number: int, block_hash: str, cache: SealCache) -> SealVerdict:
    """Verify the QBFT commit seals of ``block_number`` (expected hash ``block_hash``).

    Fetches the block and the validator set of its parent height, then decides with
    :func:`provenance.verify.check_block_header` and :func:`provenance.verify.check_commit_seals`.
    Never raises: transport errors give ``ok=False`` (not cached); a non-QBFT node (no
    ``qbft_*`` RPC, short extraData) gives a clean ``ok=False`` with the reason.
    """
    key = (block_number, block_hash.lower())
    cached = cache.get(key)
    if cached is not None:
        return cached
    try:
        block = chain.raw_block(block_number)
    except (ChainUnavailable, ChainError) as exc:
        return SealVerdict(False, f"cannot fetch block {block_number}: {exc}")
    if not block:
        return SealVerdict(False, f"block {block_number} not found on chain")
    header = check_block_header(block, expected_hash=block_hash)
    if not header.ok:
        verdict = SealVerdict(False, header.detail)
        cache.put(key, verdict)
        return verdict
    try:
        validators = chain.validators_at(block_number)
    except ChainUnavailable as exc:
        return SealVerdict(False, f"cannot read the validator set: {exc}")
    except ChainError as exc:
        return SealVerdict(False, f"validator set unavailable (not a QBFT node?): {exc}")
    seals = check_commit_seals(block, validators)
    verdict = SealVerdict(seals.ok, seals.detail, int(seals.facts.get("good", 0)), list(validators))
    cache.put(key, verdict)
    return verdict


def _confirmations(chain: ChainClient, block_number: int, block_hash: str, required: int) -> Verdict:
    """:func:`provenance.verify.check_confirmations` with the head and the canonical hash read from ``chain``."""
    try:
        head = with_retry(lambda: chain.w3.eth.block_number, what="eth_blockNumber", attempts=1)
        block = chain.rpc("eth_getBlockByNumber", [hex(block_number), False])
    except (ChainUnavailable, ChainError) as exc:
        return Verdict("finality_confirmations", False, f"cannot read the chain: {exc}", Reason.NOT_ANCHORED)
    canonical = block.get("hash") if isinstance(block, dict) else None
    return check_confirmations(block_number, block_hash, canonical, head, required)


def _sm2_owner_keys(chain: ChainClient | None, owner: Enterprise | None, record: Record, session: Session,
                    batches: dict[int, Batch] | None, cache: SealCache) -> list[bytes] | None:
    """The SM2 key the owner had bound on chain at the record's anchor block (latest while pending); None when the
    chain cannot say (the signature check then fails as unproven, never passes)."""
    if chain is None or owner is None:
        return None
    block: int | str = "latest"
    if record.batch_id is not None:
        batch = (batches or {}).get(record.batch_id) or session.get(Batch, record.batch_id,
                                                                   options=[defer(Batch.leaf_digests)])  # type: ignore[arg-type]
        if batch is not None and batch.block_number is not None:
            block = batch.block_number
    try:
        key = (cache.sm2_key(chain, owner.address, block) if isinstance(block, int)
               else chain.sm2_public_key_of(owner.address, block))
    except (ChainUnavailable, ChainError):
        return None
    except Exception:  # noqa: BLE001 - e.g. a registry without the SM2 functions (older deployment)
        return None
    return [key] if key is not None else []


def _check(v: Verdict, name: str | None = None) -> Check:
    return Check(name or v.check, v.ok, v.detail)


def verify_record(
    session: Session | None, record: Record | RecordRow, *, chain: ChainClient | None, seal_cache: SealCache,
    owner: Enterprise | OwnerRow | None = None, batches: dict[int, Batch] | dict[int, BatchRow] | None = None,
) -> dict[str, Any]:
    """Run every check for ``record``; returns the ``GET /v1/verify`` body.

    ``owner`` and the record's batch in ``batches`` when the caller read them (ORM objects or the rows of
    :func:`api.read_cache.load_facts`); ``session`` reads whatever is missing.

    Shape: ``{identifier, verified, checks: [{name, ok, detail}], record_digest,
    proof: {root, leaf_index, tree_size, path} | None,
    anchor: {block_number, block_hash, tx_hash, seals, validators} | None}``.
    """
    checks: list[Check] = []
    if owner is None or owner.id != record.enterprise_id:
        assert session is not None, "verify_record without the owner row needs a session"
        owner = session.get(Enterprise, record.enterprise_id)

    # 1. record digest
    hash_alg = seal_cache.hash_alg
    digest_v = check_record_digest(record.document, record.record_digest, hash_alg)
    checks.append(_check(digest_v))
    recomputed: bytes = digest_v.facts["digest"]

    # 2. signature (over the stored digest; the owner is the enterprise holding the record's prefix)
    try:
        stored_digest = _b(record.record_digest)
    except ValueError:
        stored_digest = recomputed
    if profile_for_hash(hash_alg).signature_alg == SIG_SM2:
        checks.append(_check(check_record_signature_sm2(
            record.signature, record.identifier, record.kind, stored_digest, record.chain_id,
            owner_keys=_sm2_owner_keys(chain, owner, record, session, batches, seal_cache))))
    else:
        checks.append(_check(check_record_signature(
            record.signature, record.identifier, record.kind, stored_digest, record.chain_id,
            owners=[owner.address] if owner is not None else None)))

    proof_out: dict[str, Any] | None = None
    anchor_out: dict[str, Any] | None = None
    # the leaf list (up to tens of thousands of digests) is loaded only when the batch tree is not cached
    # (Session.get with options always queries, and the identity map holds objects weakly: callers verifying
    # many records pass ``batches`` to keep each batch for the whole request)
    batch: Batch | BatchRow | None = None
    if record.batch_id is not None:
        batch = batches.get(record.batch_id) if batches is not None else None
        if batch is None:
            assert session is not None, "verify_record without the batch row needs a session"
            batch = session.get(Batch, record.batch_id, options=[defer(Batch.leaf_digests)])  # type: ignore[arg-type]
            if batches is not None and batch is not None:
                batches[record.batch_id] = batch
    if record.status != "anchored" or batch is None or record.leaf_index is None:
        checks.append(Check("anchored", False, "pending anchoring"))
    else:
        # 3. inclusion proof
        tree = seal_cache.tree(batch)
        if tree.size != batch.size:
            checks.append(Check("inclusion_proof", False,
                                f"InvalidProof: batch lists {tree.size} leaves but its size is {batch.size}"))
        else:
            try:
                path = tree.proof(record.leaf_index)
            except IndexError as exc:
                checks.append(Check("inclusion_proof", False, f"IndexError: {exc}"))
            else:
                proof_out = {"root": batch.root, "leaf_index": record.leaf_index, "tree_size": batch.size,
                             "path": [_hex(p) for p in path], "hash_alg": hash_alg}
                checks.append(_check(check_inclusion(recomputed, record.leaf_index, batch.size, path, batch.root,
                                                     hash_alg)))

        anchor_out = {
            "block_number": batch.block_number,
            "block_hash": batch.block_hash,
            "tx_hash": batch.tx_hash,
            "seals": 0,
            "validators": [],
        }
        # 4. anchored on chain
        if chain is None:
            checks.append(Check("anchored_on_chain", False, "chain not configured"))
            checks.append(Check("finality_seals", False, "chain not configured"))
        else:
            try:
                root_b = _b(batch.root)
                info = seal_cache.anchor(root_b)
                if info is None:  # the anchor of the enterprise that sent this batch, never a front-runner's
                    info = (chain.get_anchor_by(batch.submitter, root_b) if batch.submitter
                            else chain.get_anchor(root_b))
                verdict = check_anchor_state(
                    anchored_block=info.block_number if info else None, submitter=info.submitter if info else None,
                    anchored_size=info.size if info else None, block_number=batch.block_number, tree_size=batch.size)
                if verdict.ok:
                    seal_cache.put_anchor(root_b, info)  # final under QBFT: never changes
                checks.append(_check(verdict) if info is not None else
                              Check("anchored_on_chain", False, f"root {batch.root} is not anchored on chain"))
            except (ChainUnavailable, ChainError) as exc:
                checks.append(Check("anchored_on_chain", False, str(exc)))
            except Exception as exc:  # noqa: BLE001 - e.g. no contract code at the address
                checks.append(Check("anchored_on_chain", False, f"{type(exc).__name__}: {exc}"))
            # 5. finality: commit seals (qbft) or confirmations on the canonical chain (confirmations:N)
            model, required = parse_finality_model(getattr(chain, "finality", FINALITY_QBFT))
            if batch.block_number is None or not batch.block_hash:
                checks.append(Check("finality_seals" if model == FINALITY_QBFT else "finality_confirmations",
                                    False, "batch has no block recorded"))
            elif model == FINALITY_QBFT:
                seal = check_finality_seals(chain, batch.block_number, batch.block_hash, seal_cache)
                anchor_out["seals"] = seal.seals
                anchor_out["validators"] = seal.validators
                checks.append(Check("finality_seals", seal.ok, seal.detail))
            else:
                checks.append(_check(_confirmations(chain, batch.block_number, batch.block_hash, required)))

    return {
        "identifier": record.identifier,
        "verified": all(c.ok for c in checks),
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        "record_digest": record.record_digest,
        "finality_model": getattr(chain, "finality", FINALITY_QBFT) if chain is not None else FINALITY_QBFT,
        "superseded_by": record.superseded_by,
        "proof": proof_out,
        "anchor": anchor_out,
    }
