"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing, inclusion and consistency proofs.

All hashes are 32 bytes: SHA-256 by default, or the hash a network's crypto profile names
(``hash_alg`` keyword: ``"sha-256"`` or ``"sm3"``, :mod:`provenance.crypto_profile`; the structure and the
domain separation are RFC 9162's under either). Domain separation follows RFC 9162 §2.1.1: a leaf hash is
``H(0x00 || entry)`` and an interior node is ``H(0x01 || left || right)``; the root of
the empty tree is ``H("")``. Trees are the left-heavy binary trees of §2.1.1 (the left
subtree of ``n`` leaves holds ``k`` leaves, ``k`` the largest power of two smaller than ``n``).

Project convention: the Merkle *leaf entry* of a record is its 32-byte record digest
(:func:`provenance.canonical.record_digest`), so its leaf hash is ``hash_leaf(record_digest)``.

Proof node lists are ordered bottom-up (from the leaf level towards the root), as produced by the
PATH and PROOF algorithms of RFC 9162 §2.1.3.1 and §2.1.4.1.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

from provenance.crypto_profile import HASH_SHA256, hash_function
from provenance.errors import InvalidProof, RootMismatch

__all__ = [
    "HASH_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "hash_empty",
    "hash_leaf",
    "hash_children",
    "record_leaf_hash",
    "root_from_leaf_hashes",
    "inclusion_proof",
    "root_from_inclusion_proof",
    "verify_inclusion",
    "consistency_proof",
    "verify_consistency",
]

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256 and SM3 alike)."""

LEAF_PREFIX = b"\x00"
"""Domain-separation byte prepended to a leaf entry before hashing (RFC 9162 §2.1.1)."""

NODE_PREFIX = b"\x01"
"""Domain-separation byte prepended to two child hashes before hashing (RFC 9162 §2.1.1)."""


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _hasher(hash_alg: str) -> Callable[[bytes], bytes]:
    """The tree's hash function; SHA-256 without a dictionary lookup on the default path.
    Raises :class:`provenance.crypto_profile.UnknownProfile` (a ValueError) for an unknown name."""
    return _sha256 if hash_alg == HASH_SHA256 else hash_function(hash_alg)


def hash_empty(hash_alg: str = HASH_SHA256) -> bytes:
    """Root hash of the empty tree, ``MTH({}) = H()`` (RFC 9162 §2.1.1). 32 bytes."""
    return _hasher(hash_alg)(b"")


def hash_leaf(entry: bytes, hash_alg: str = HASH_SHA256) -> bytes:
    """Leaf hash ``H(0x00 || entry)`` (RFC 9162 §2.1.1), ``H`` named by ``hash_alg`` (default SHA-256).

    Args:
        entry: the leaf input of any length; in this project the 32-byte record digest.
        hash_alg: ``"sha-256"`` or ``"sm3"`` (the network's crypto profile).

    Returns:
        32 bytes.
    """
    return _hasher(hash_alg)(LEAF_PREFIX + bytes(entry))


def hash_children(left: bytes, right: bytes, hash_alg: str = HASH_SHA256) -> bytes:
    """Interior node hash ``H(0x01 || left || right)`` (RFC 9162 §2.1.1). 32 bytes."""
    return _hasher(hash_alg)(NODE_PREFIX + bytes(left) + bytes(right))


def record_leaf_hash(digest: bytes, hash_alg: str = HASH_SHA256) -> bytes:
    """Leaf hash of a record given its 32-byte record digest (project convention).

    Raises:
        ValueError: ``digest`` is not 32 bytes.
    """
    _require_hash(digest, "record digest", ValueError)
    return hash_leaf(digest, hash_alg)


def _require_hash(value: object, what: str, exc: type[Exception]) -> None:
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, bytes | bytearray | memoryview) else type(value).__name__
        raise exc(f"{what} must be {HASH_SIZE} bytes, got {size}")


def _next_level(level: list[bytes], h: Callable[[bytes], bytes] = _sha256) -> list[bytes]:
    """Hash adjacent pairs; an unpaired last node is promoted unchanged. Equivalent to the
    recursive split at the largest power of two of RFC 9162 §2.1.1."""
    nxt = [h(NODE_PREFIX + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        nxt.append(level[-1])
    return nxt


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes], *, hash_alg: str = HASH_SHA256) -> bytes:
    """Merkle Tree Hash MTH(D[n]) over already-hashed leaves (RFC 9162 §2.1.1).

    Iterative, O(n) hashing and memory; suitable for 10**5 leaves and more.

    Args:
        leaf_hashes: the ``n`` leaf hashes (32 bytes each), in log order.

    Returns:
        The 32-byte root; :func:`hash_empty` when ``n == 0``.

    Raises:
        ValueError: a leaf hash is not 32 bytes.
    """
    level = [bytes(h) for h in leaf_hashes]
    for i, h in enumerate(level):
        _require_hash(h, f"leaf hash {i}", ValueError)
    if not level:
        return hash_empty(hash_alg)
    h = _hasher(hash_alg)
    while len(level) > 1:
        level = _next_level(level, h)
    return level[0]


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, *, hash_alg: str = HASH_SHA256) -> list[bytes]:
    """Audit path PATH(m, D[n]) for leaf ``index`` (RFC 9162 §2.1.3.1).

    Args:
        leaf_hashes: the ``n`` leaf hashes (32 bytes each) of the tree.
        index: zero-based leaf index ``m``, ``0 <= m < n``.

    Returns:
        The sibling hashes, bottom-up, each 32 bytes (empty for a one-leaf tree).

    Raises:
        ValueError: index out of range or a leaf hash is not 32 bytes.
    """
    level = [bytes(h) for h in leaf_hashes]
    for i, h in enumerate(level):
        _require_hash(h, f"leaf hash {i}", ValueError)
    if not 0 <= index < len(level):
        raise ValueError(f"leaf index {index} out of range for tree size {len(level)}")
    proof: list[bytes] = []
    i = index
    h = _hasher(hash_alg)
    while len(level) > 1:
        sibling = i ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        level = _next_level(level, h)
        i >>= 1
    return proof


def _inclusion_proof_size(index: int, tree_size: int) -> int:
    """Number of nodes the verifier of §2.1.3.2 consumes for (index, tree_size)."""
    fn, sn, count = index, tree_size - 1, 0
    while sn != 0:
        if fn & 1 == 0 and fn == sn:
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        fn >>= 1
        sn >>= 1
        count += 1
    return count


def root_from_inclusion_proof(leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], *,
                              hash_alg: str = HASH_SHA256) -> bytes:
    """Recompute the root from a leaf hash and its audit path (RFC 9162 §2.1.3.2 steps 1–4).

    Args:
        leaf_hash: 32-byte leaf hash (``hash_leaf(entry)``).
        index: zero-based leaf index.
        tree_size: number of leaves in the tree (>= 1).
        proof: audit path, bottom-up, 32 bytes per node (``None`` is treated as empty).

    Returns:
        The 32-byte root implied by the proof.

    Raises:
        InvalidProof: ``index >= tree_size`` or negative, wrong number of proof nodes
            (e.g. ``"wrong proof size 3, want 4"``), or a hash that is not 32 bytes.
    """
    path = list(proof or [])
    if index < 0 or tree_size < 0:
        raise InvalidProof(f"negative leaf index {index} or tree size {tree_size}")
    if index >= tree_size:
        raise InvalidProof(f"leaf index {index} out of range for tree size {tree_size}")
    _require_hash(leaf_hash, "leaf hash", InvalidProof)
    for i, node in enumerate(path):
        _require_hash(node, f"proof node {i}", InvalidProof)
    want = _inclusion_proof_size(index, tree_size)
    if len(path) != want:
        raise InvalidProof(f"wrong proof size {len(path)}, want {want}")
    fn, sn, r = index, tree_size - 1, bytes(leaf_hash)
    h = _hasher(hash_alg)
    for p in path:
        if sn == 0:  # unreachable after the size check; kept to mirror §2.1.3.2 step 4a
            raise InvalidProof("proof longer than the path to the root")
        if fn & 1 or fn == sn:
            r = h(NODE_PREFIX + p + r)
            if fn & 1 == 0:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = h(NODE_PREFIX + r + p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("proof shorter than the path to the root")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes, *, hash_alg: str = HASH_SHA256
) -> None:
    """Verify that ``leaf_hash`` sits at ``index`` in the tree of ``tree_size`` leaves whose root is
    ``root`` (RFC 9162 §2.1.3.2).

    Args:
        leaf_hash: 32-byte leaf hash. index: zero-based leaf index. tree_size: leaves in the tree.
        proof: audit path, bottom-up, 32 bytes per node. root: trusted root (32 bytes).
        hash_alg: the tree's hash (``"sha-256"`` default, ``"sm3"``), as the proof and the network declare it.

    Returns:
        None when the proof verifies.

    Raises:
        InvalidProof: malformed proof (see :func:`root_from_inclusion_proof`).
        RootMismatch: well-formed proof whose recomputed root differs from ``root``.
    """
    computed = root_from_inclusion_proof(leaf_hash, index, tree_size, proof, hash_alg=hash_alg)
    if not hmac.compare_digest(computed, bytes(root)):
        raise RootMismatch(expected=bytes(root), computed=computed)


def _largest_power_of_two_below(n: int) -> int:
    """Largest power of two ``k`` with ``k < n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, *, hash_alg: str = HASH_SHA256) -> list[bytes]:
    """Consistency proof PROOF(m, D[n]) between the first ``old_size`` leaves and the whole tree
    (RFC 9162 §2.1.4.1, algorithm SUBPROOF with b = true).

    Args:
        leaf_hashes: the ``n`` leaf hashes of the new tree (32 bytes each).
        old_size: ``m``, the size of the earlier tree, ``1 <= m <= n``.

    Returns:
        The proof nodes, each 32 bytes, bottom-up; empty when ``m == n``.

    Raises:
        ValueError: ``old_size`` outside ``1..n`` or a leaf hash is not 32 bytes.
    """
    leaves = [bytes(h) for h in leaf_hashes]
    for i, h in enumerate(leaves):
        _require_hash(h, f"leaf hash {i}", ValueError)
    n = len(leaves)
    if not 1 <= old_size <= n:
        raise ValueError(f"old size {old_size} out of range 1..{n}")
    m, lo, hi, complete = old_size, 0, n, True
    tail: list[bytes] = []  # SUBPROOF appends after recursing: collect then reverse
    while True:
        size = hi - lo
        if m == size:
            if not complete:
                tail.append(root_from_leaf_hashes(leaves[lo:hi], hash_alg=hash_alg))
            break
        k = _largest_power_of_two_below(size)
        if m <= k:
            tail.append(root_from_leaf_hashes(leaves[lo + k : hi], hash_alg=hash_alg))
            hi = lo + k
        else:
            tail.append(root_from_leaf_hashes(leaves[lo : lo + k], hash_alg=hash_alg))
            lo += k
            m -= k
            complete = False
    tail.reverse()
    return tail


def _consistency_proof_size(old_size: int, new_size: int) -> int:
    """Number of nodes the verifier of §2.1.4.2 consumes for 0 < old_size < new_size."""
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    count = 1  # the seed node (omitted when old_size is a power of two, see below)
    while sn != 0:
        if fn & 1 == 0 and fn == sn:
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        fn >>= 1
        sn >>= 1
        count += 1
    if old_size & (old_size - 1) == 0:
        count -= 1  # the old root itself is the seed
    return count


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes], *,
    hash_alg: str = HASH_SHA256
) -> None:
    """Verify that the tree of ``new_size`` leaves with ``new_root`` extends the tree of ``old_size``
    leaves with ``old_root`` (RFC 9162 §2.1.4.2).

    Equal sizes need an empty proof and equal roots (for size 0 both must be :func:`hash_empty`).
    An old size of 0 with a larger new size is rejected: such a proof proves nothing.

    Args:
        old_size, new_size: leaf counts, ``old_size <= new_size``.
        old_root, new_root: trusted roots (32 bytes).
        proof: consistency proof nodes, 32 bytes each (``None`` is treated as empty).

    Returns:
        None when the proof verifies.

    Raises:
        InvalidProof: sizes out of order, old size 0, wrong number of nodes
            (``"wrong proof size 1, want 2"``), non-empty proof for equal sizes, bad node length.
        RootMismatch: well-formed proof, but the recomputed old or new root differs.
    """
    path = [bytes(p) for p in (proof or [])]
    if old_size < 0 or new_size < 0:
        raise InvalidProof(f"negative tree size ({old_size}, {new_size})")
    if new_size < old_size:
        raise InvalidProof(f"new tree size {new_size} is smaller than old tree size {old_size}")
    if old_size == new_size:
        if path:
            raise InvalidProof(f"wrong proof size {len(path)}, want 0 (tree sizes are equal)")
        if old_size == 0:
            empty = hash_empty(hash_alg)
            for what, root in (("old root", old_root), ("new root", new_root)):
                if not hmac.compare_digest(bytes(root), empty):
                    raise RootMismatch(expected=bytes(root), computed=empty, what=f"empty-tree {what}")
            return
        if not hmac.compare_digest(bytes(old_root), bytes(new_root)):
            raise RootMismatch(expected=bytes(new_root), computed=bytes(old_root))
        return
    if old_size == 0:
        raise InvalidProof("old tree size 0: a consistency proof from the empty tree proves nothing")
    for i, node in enumerate(path):
        _require_hash(node, f"proof node {i}", InvalidProof)
    want = _consistency_proof_size(old_size, new_size)
    if len(path) != want:
        raise InvalidProof(f"wrong proof size {len(path)}, want {want}")
    # §2.1.4.2 step 2: if old_size is a power of two, the old root is the first node.
    if old_size & (old_size - 1) == 0:
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    h = _hasher(hash_alg)
    for c in path[1:]:
        if sn == 0:  # unreachable after the size check; mirrors §2.1.4.2 step 6a
            raise InvalidProof("proof longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = h(NODE_PREFIX + c + fr)
            sr = h(NODE_PREFIX + c + sr)
            if fn & 1 == 0:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = h(NODE_PREFIX + sr + c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("proof shorter than the path to the root")
    if not hmac.compare_digest(fr, bytes(old_root)):
        raise RootMismatch(expected=bytes(old_root), computed=fr, what="old root")
    if not hmac.compare_digest(sr, bytes(new_root)):
        raise RootMismatch(expected=bytes(new_root), computed=sr, what="new root")
