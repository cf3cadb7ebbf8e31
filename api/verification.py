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
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import defer
from sqlmodel import Session

from api.chain import ChainClient, ChainError, ChainUnavailable
from api.models import Batch, Enterprise, Record
from provenance.errors import InvalidProof, InvalidSignature
from provenance.merkle import hash_children, hash_leaf, verify_inclusion
from provenance.signing import recover_record_signer


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

    Built once per batch (2n SHA-256) from the leaf hashes; batch trees never change once persisted.
    """

    def __init__(self, leaves: list[bytes]) -> None:
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
            h = hash_children(self._build(a, a + k), self._build(a + k, b))
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

    def __init__(self) -> None:
        self._data: dict[tuple[int, str], SealVerdict] = {}
        self._anchors: dict[bytes, Any] = {}
        self._trees: dict[tuple[int, str], BatchTree] = {}
        self._lock = threading.Lock()

    def anchor(self, root: bytes) -> Any:
        """Cached ``AnchorInfo`` of a final root, or None."""
        with self._lock:
            return self._anchors.get(root)

    def put_anchor(self, root: bytes, info: Any) -> None:
        """Remember the on-chain anchor of a root (only call with a matching, final anchor)."""
        with self._lock:
            self._anchors[root] = info

    def tree(self, batch: Batch) -> BatchTree:
        """The cached :class:`BatchTree` of ``batch`` (built on first use; LRU of ``MAX_TREES``)."""
        key = (int(batch.id or 0), batch.root)
        with self._lock:
            tree = self._trees.pop(key, None)
            if tree is not None:
                self._trees[key] = tree  # most recently used last
                return tree
        tree = BatchTree([hash_leaf(_b(d)) for d in batch.leaf_digests])
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

    Never raises: transport errors give ``ok=False`` (not cached); a non-QBFT node (no
    ``qbft_*`` RPC, short extraData) gives a clean ``ok=False`` with the reason.
    """
    key = (block_number, block_hash.lower())
    cached = cache.get(key)
    if cached is not None:
        return cached
    try:
        from provenance.qbft_header import block_hash_from_rpc_block, quorum, recover_seal_signers_from_rpc_block
    except ImportError as exc:  # pragma: no cover - ledger/ not installed
        return SealVerdict(False, f"QBFT header support unavailable: {exc}")
    try:
        block = chain.raw_block(block_number)
    except (ChainUnavailable, ChainError) as exc:
        return SealVerdict(False, f"cannot fetch block {block_number}: {exc}")
    if not block:
        return SealVerdict(False, f"block {block_number} not found on chain")
    reported = str(block.get("hash", "")).lower()
    if reported != block_hash.lower():
        verdict = SealVerdict(False, f"block {block_number} has hash {reported}, expected {block_hash}")
        cache.put(key, verdict)
        return verdict
    try:
        recomputed = _hex(block_hash_from_rpc_block(block))
        signers = recover_seal_signers_from_rpc_block(block)
    except (ValueError, TypeError, KeyError) as exc:
        verdict = SealVerdict(False, f"not a QBFT block header: {exc}")
        cache.put(key, verdict)
        return verdict
    if recomputed != reported:
        verdict = SealVerdict(False, f"QBFT block hash recomputes to {recomputed}, node reports {reported}")
        cache.put(key, verdict)
        return verdict
    try:
        validators = chain.validators_at(block_number)
    except ChainUnavailable as exc:
        return SealVerdict(False, f"cannot read the validator set: {exc}")
    except ChainError as exc:
        return SealVerdict(False, f"validator set unavailable (not a QBFT node?): {exc}")
    valid = set(validators)
    distinct = set(signers)
    outsiders = sorted(distinct - valid)
    need = quorum(len(validators)) if validators else 1
    good = len(distinct & valid)
    if outsiders:
        verdict = SealVerdict(False, f"seals from non-validators: {', '.join(outsiders)}", good, validators)
    elif len(distinct) != len(signers):
        verdict = SealVerdict(False, "duplicate commit seals from the same validator", good, validators)
    elif good < need:
        verdict = SealVerdict(False, f"{good} distinct seals, quorum is {need} of {len(validators)}", good, validators)
    else:
        verdict = SealVerdict(True, f"{good} of {len(validators)} validators sealed (quorum {need})", good, validators)
    cache.put(key, verdict)
    return verdict


@lru_cache(maxsize=65536)
def _recover_cached(signature: bytes, identifier: str, kind: str, digest: bytes, chain_id: int) -> str:
    """:func:`recover_record_signer`, memoised: a pure function of its arguments (errors are not cached)."""
    return recover_record_signer(signature, identifier, kind, digest, chain_id)


def verify_record(
    session: Session, record: Record, *, chain: ChainClient | None, seal_cache: SealCache,
    owner: Enterprise | None = None, batches: dict[int, Batch] | None = None,
) -> dict[str, Any]:
    """Run every check for ``record``; returns the ``GET /v1/verify`` body.

    Shape: ``{identifier, verified, checks: [{name, ok, detail}], record_digest,
    proof: {root, leaf_index, tree_size, path} | None,
    anchor: {block_number, block_hash, tx_hash, seals, validators} | None}``.
    """
    checks: list[Check] = []
    if owner is None or owner.id != record.enterprise_id:
        owner = session.get(Enterprise, record.enterprise_id)

    # 1. record digest
    recomputed = hashlib.sha256(record.document.encode("utf-8")).digest()
    stored_ok = _hex(recomputed) == record.record_digest.lower()
    checks.append(
        Check(
            "record_digest",
            stored_ok,
            "SHA-256 of the canonical document matches"
            if stored_ok
            else f"document hashes to {_hex(recomputed)}, stored digest is {record.record_digest}",
        )
    )

    # 2. signature
    try:
        signer = _recover_cached(
            _b(record.signature), record.identifier, record.kind, _b(record.record_digest), record.chain_id
        )
        if owner is None:
            checks.append(Check("signature", False, "owner enterprise not found"))
        elif signer.lower() == owner.address.lower():
            checks.append(Check("signature", True, f"EIP-712 signature by owner {owner.address}"))
        else:
            checks.append(Check("signature", False, f"signature recovers to {signer}, owner is {owner.address}"))
    except (InvalidSignature, ValueError) as exc:
        checks.append(Check("signature", False, f"invalid signature: {exc}"))

    proof_out: dict[str, Any] | None = None
    anchor_out: dict[str, Any] | None = None
    # the leaf list (up to tens of thousands of digests) is loaded only when the batch tree is not cached
    # (Session.get with options always queries, and the identity map holds objects weakly: callers verifying
    # many records pass ``batches`` to keep each batch for the whole request)
    batch: Batch | None = None
    if record.batch_id is not None:
        batch = batches.get(record.batch_id) if batches is not None else None
        if batch is None:
            batch = session.get(Batch, record.batch_id, options=[defer(Batch.leaf_digests)])  # type: ignore[arg-type]
            if batches is not None and batch is not None:
                batches[record.batch_id] = batch
    if record.status != "anchored" or batch is None or record.leaf_index is None:
        checks.append(Check("anchored", False, "pending anchoring"))
    else:
        # 3. inclusion proof
        try:
            tree = seal_cache.tree(batch)
            if tree.size != batch.size:
                raise InvalidProof(f"batch lists {tree.size} leaves but its size is {batch.size}")
            path = tree.proof(record.leaf_index)
            proof_out = {
                "root": batch.root,
                "leaf_index": record.leaf_index,
                "tree_size": batch.size,
                "path": [_hex(p) for p in path],
            }
            verify_inclusion(hash_leaf(recomputed), record.leaf_index, batch.size, path, _b(batch.root))
            checks.append(
                Check(
                    "inclusion_proof",
                    True,
                    f"leaf {record.leaf_index} of {batch.size} reproduces root {batch.root} (RFC 9162 §2.1.3.2)",
                )
            )
        except (InvalidProof, ValueError, IndexError) as exc:
            checks.append(Check("inclusion_proof", False, f"{type(exc).__name__}: {exc}"))

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
                if info is None:
                    info = chain.get_anchor(root_b)
                    if (info is not None and info.block_number == batch.block_number and info.size == batch.size
                            and int(info.submitter, 16) != 0):
                        seal_cache.put_anchor(root_b, info)  # final under QBFT: never changes
                if info is None:
                    checks.append(Check("anchored_on_chain", False, f"root {batch.root} is not anchored on chain"))
                elif info.block_number != batch.block_number:
                    checks.append(
                        Check(
                            "anchored_on_chain",
                            False,
                            f"root anchored in block {info.block_number}, stored block is {batch.block_number}",
                        )
                    )
                elif int(info.submitter, 16) == 0:
                    checks.append(Check("anchored_on_chain", False, "anchor has a zero submitter"))
                elif info.size != batch.size:
                    checks.append(
                        Check("anchored_on_chain", False, f"anchored size {info.size}, batch size {batch.size}")
                    )
                else:
                    checks.append(
                        Check(
                            "anchored_on_chain",
                            True,
                            f"root anchored in block {info.block_number} by {info.submitter}",
                        )
                    )
            except (ChainUnavailable, ChainError) as exc:
                checks.append(Check("anchored_on_chain", False, str(exc)))
            except Exception as exc:  # noqa: BLE001 - e.g. no contract code at the address
                checks.append(Check("anchored_on_chain", False, f"{type(exc).__name__}: {exc}"))
            # 5. finality seals
            if batch.block_number is None or not batch.block_hash:
                checks.append(Check("finality_seals", False, "batch has no block recorded"))
            else:
                verdict = check_finality_seals(chain, batch.block_number, batch.block_hash, seal_cache)
                anchor_out["seals"] = verdict.seals
                anchor_out["validators"] = verdict.validators
                checks.append(Check("finality_seals", verdict.ok, verdict.detail))

    return {
        "identifier": record.identifier,
        "verified": all(c.ok for c in checks),
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        "record_digest": record.record_digest,
        "superseded_by": record.superseded_by,
        "proof": proof_out,
        "anchor": anchor_out,
    }
