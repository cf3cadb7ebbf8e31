"""The one-pass ordered trie gives py-evm's (HexaryTrie) root and node set for every list size."""

from __future__ import annotations

import os
import random

import pytest
from eth.db.trie import _make_trie_root_and_nodes as pyevm_trie

from ledger.fasttrie import BLANK_ROOT, ordered_trie_root_and_nodes


@pytest.mark.parametrize("size", [0, 1, 2, 3, 15, 16, 17, 127, 128, 129, 130, 255, 256, 257, 300, 600])
def test_same_root_and_nodes_as_hexary_trie(size: int) -> None:
    rng = random.Random(size)
    items = tuple(os.urandom(rng.choice([1, 5, 20, 31, 32, 33, 100, 200])) for _ in range(size))
    root, nodes = ordered_trie_root_and_nodes(items)
    expected_root, expected_nodes = pyevm_trie(items)
    assert root == expected_root
    assert {k: v for k, v in nodes.items() if k != BLANK_ROOT} == {
        k: v for k, v in expected_nodes.items() if k != BLANK_ROOT}


def test_blank_root() -> None:
    assert ordered_trie_root_and_nodes(())[0] == BLANK_ROOT == pyevm_trie(())[0]
