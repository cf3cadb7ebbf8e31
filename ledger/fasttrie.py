"""Fast Merkle-Patricia root of an ordered list (transactions, receipts, withdrawals of a block).

Every block build and every block import computes the transactions root and the receipts root:
the trie keyed by ``rlp(index)`` whose values are the items' encodings (Yellow Paper eq. 31–33,
Appendix D). py-evm does it with ``trie.HexaryTrie`` one insertion at a time (each insertion
re-encodes and re-hashes the path), about a quarter of the block time for a few hundred
transactions. All keys are known up front, so the trie can be built bottom-up in one pass over the
sorted keys (the idea of go-ethereum's ``StackTrie``): every node is encoded and hashed once.

:func:`ordered_trie_root_and_nodes` returns exactly what py-evm's ``make_trie_root_and_nodes``
returns: the 32-byte root and ``{keccak(node): rlp(node)}`` of every node stored by hash (the root
and every node whose encoding is ≥ 32 bytes), so py-evm can persist and later read the tries.
:func:`install` makes py-evm use it (tests compare both on many sizes).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import rlp
from eth_utils import keccak

BLANK_ROOT = keccak(rlp.encode(b""))


def _nibbles(key: bytes) -> tuple[int, ...]:
    out: list[int] = []
    for byte in key:
        out.append(byte >> 4)
        out.append(byte & 0x0F)
    return tuple(out)


def _hex_prefix(nibbles: Sequence[int], leaf: bool) -> bytes:
    """Hex-prefix encoding (Yellow Paper Appendix C) of a nibble path."""
    flag = 2 if leaf else 0
    if len(nibbles) % 2:
        packed = [flag + 1, *nibbles]
    else:
        packed = [flag, 0, *nibbles]
    return bytes(packed[i] * 16 + packed[i + 1] for i in range(0, len(packed), 2))


def _build(items: list[tuple[tuple[int, ...], bytes]], depth: int, nodes: dict[bytes, bytes]) -> Any:
    """The node (as an RLP-ready structure) for ``items`` sharing their first ``depth`` nibbles."""
    if len(items) == 1:
        path, value = items[0]
        return [_hex_prefix(path[depth:], True), value]
    first, last = items[0][0], items[-1][0]  # sorted: the common prefix of all is that of first and last
    common = 0
    limit = min(len(first), len(last)) - depth
    while common < limit and first[depth + common] == last[depth + common]:
        common += 1
    if common:
        child = _build(items, depth + common, nodes)
        return [_hex_prefix(first[depth:depth + common], False), _ref(child, nodes)]
    branch: list[Any] = [b""] * 17
    start = 0
    if len(items[0][0]) == depth:  # a key ends here: its value sits in the branch
        branch[16] = items[0][1]
        start = 1
    i = start
    while i < len(items):
        nibble = items[i][0][depth]
        j = i + 1
        while j < len(items) and items[j][0][depth] == nibble:
            j += 1
        branch[nibble] = _ref(_build(items[i:j], depth + 1, nodes), nodes)
        i = j
    return branch


def _ref(node: Any, nodes: dict[bytes, bytes]) -> Any:
    encoded = rlp.encode(node)
    if len(encoded) < 32:
        return node  # embedded in its parent
    digest = keccak(encoded)
    nodes[digest] = encoded
    return digest


def ordered_trie_root_and_nodes(encoded_items: Sequence[bytes]) -> tuple[bytes, dict[bytes, bytes]]:
    """Root (32 bytes) and hashed nodes of the trie ``{rlp(i): encoded_items[i]}``; see module docstring."""
    if not encoded_items:
        return BLANK_ROOT, {BLANK_ROOT: rlp.encode(b"")}
    items = sorted((_nibbles(rlp.encode(i)), bytes(v)) for i, v in enumerate(encoded_items))
    nodes: dict[bytes, bytes] = {}
    root = rlp.encode(_build(items, 0, nodes))
    digest = keccak(root)
    nodes[digest] = root
    return digest, nodes


@functools.lru_cache(128)
def _cached(items: tuple[bytes, ...]) -> tuple[bytes, dict[bytes, bytes]]:
    return ordered_trie_root_and_nodes(items)


def make_trie_root_and_nodes(items: Sequence[Any]) -> tuple[bytes, dict[bytes, bytes]]:
    """Drop-in replacement of ``eth.db.trie.make_trie_root_and_nodes`` (items with ``.encode()``)."""
    return _cached(tuple(item.encode() for item in items))


def install() -> None:
    """Make py-evm's block building, import and persistence use :func:`make_trie_root_and_nodes`."""
    import eth.db.chain
    import eth.db.trie
    import eth.vm.base

    for module in (eth.db.trie, eth.db.chain, eth.vm.base):
        module.make_trie_root_and_nodes = make_trie_root_and_nodes  # type: ignore[attr-defined]
