"""RFC 9162 Merkle tree tests, driven by the transparency-dev vectors in ../shared/data/merkle."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from provenance import merkle
from provenance.canonical import record_digest
from provenance.errors import InvalidProof, RootMismatch

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def shared_dir(name: str) -> Path:
    """``../shared/data/<name>``; skip the calling test when it is absent."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"reference data {path} not present (expected ../shared/data/{name} beside the project)")
    return path


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def _probe_files(kind: str) -> list[Path]:
    base = SHARED_DATA / "merkle" / kind
    return sorted(base.rglob("*.json")) if base.is_dir() else []


def _probe_id(path: Path) -> str:
    return "/".join(path.parts[-2:])


def _go_function_body(text: str, name: str) -> str:
    start = text.index(f"func {name}()")
    end = text.find("\nfunc ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _constants() -> tuple[list[bytes], list[bytes]]:
    """Leaf inputs and roots of sizes 0..8 parsed from constants.go.txt."""
    text = (shared_dir("merkle") / "constants.go.txt").read_text(encoding="utf-8")
    leaves = [
        bytes.fromhex(h) for h in re.findall(r'hd\("([0-9a-f]*)"\)', _go_function_body(text, "LeafInputs"))
    ]
    empty = re.findall(r'hd\("([0-9a-f]*)"\)', _go_function_body(text, "EmptyRootHash"))[0]
    roots = []
    for match in re.finditer(r'EmptyRootHash\(\)|hd\("([0-9a-f]*)"\)', _go_function_body(text, "RootHashes")):
        roots.append(bytes.fromhex(empty if match.group(1) is None else match.group(1)))
    return leaves, roots


def test_vector_files_present() -> None:
    shared_dir("merkle")
    assert len(_probe_files("inclusion")) > 50
    assert len(_probe_files("consistency")) > 50


@pytest.mark.parametrize("path", _probe_files("inclusion"), ids=_probe_id)
def test_inclusion_vectors(path: Path) -> None:
    probe: dict[str, Any] = json.loads(path.read_text())
    args = (
        _b64(probe["leafHash"]),
        probe["leafIdx"],
        probe["treeSize"],
        [_b64(p) for p in probe["proof"] or []],
        _b64(probe["root"]),
    )
    if probe["wantErr"]:
        with pytest.raises(InvalidProof):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("path", _probe_files("consistency"), ids=_probe_id)
def test_consistency_vectors(path: Path) -> None:
    probe: dict[str, Any] = json.loads(path.read_text())
    args = (
        probe["size1"],
        probe["size2"],
        _b64(probe["root1"]),
        _b64(probe["root2"]),
        [_b64(p) for p in probe["proof"] or []],
    )
    if probe["wantErr"]:
        with pytest.raises(InvalidProof):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def test_roots_of_sizes_0_to_8_from_constants() -> None:
    leaves, roots = _constants()
    assert len(leaves) == 8 and len(roots) == 9
    hashes = [merkle.hash_leaf(x) for x in leaves]
    for size, want in enumerate(roots):
        assert merkle.root_from_leaf_hashes(hashes[:size]) == want, f"size {size}"
    assert merkle.hash_empty() == roots[0]


def test_generated_proofs_verify_for_all_small_trees() -> None:
    leaves, roots = _constants()
    hashes = [merkle.hash_leaf(x) for x in leaves]
    for size in range(1, 9):
        for index in range(size):
            proof = merkle.inclusion_proof(hashes[:size], index)
            merkle.verify_inclusion(hashes[index], index, size, proof, roots[size])
        for old in range(1, size + 1):
            proof = merkle.consistency_proof(hashes[:size], old)
            merkle.verify_consistency(old, size, roots[old], roots[size], proof)


def test_generated_proofs_verify_for_odd_larger_trees() -> None:
    hashes = [merkle.hash_leaf(i.to_bytes(4, "big")) for i in range(37)]
    for size in (5, 13, 31, 32, 33, 37):
        root = merkle.root_from_leaf_hashes(hashes[:size])
        for index in range(size):
            merkle.verify_inclusion(
                hashes[index], index, size, merkle.inclusion_proof(hashes[:size], index), root
            )
        for old in range(1, size + 1):
            old_root = merkle.root_from_leaf_hashes(hashes[:old])
            merkle.verify_consistency(old, size, old_root, root, merkle.consistency_proof(hashes[:size], old))


def test_prefixes_and_hash_shapes() -> None:
    assert merkle.LEAF_PREFIX == b"\x00" and merkle.NODE_PREFIX == b"\x01"
    assert merkle.hash_leaf(b"") == hashlib.sha256(b"\x00").digest()
    left, right = b"\x11" * 32, b"\x22" * 32
    assert merkle.hash_children(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


def test_record_leaf_hash_convention() -> None:
    digest = record_digest({"coil": "NW24-118734"})
    assert merkle.record_leaf_hash(digest) == merkle.hash_leaf(digest)
    with pytest.raises(ValueError):
        merkle.record_leaf_hash(b"short")


def test_wrong_proof_size_message_carries_numbers() -> None:
    hashes = [merkle.hash_leaf(bytes([i])) for i in range(16)]
    root = merkle.root_from_leaf_hashes(hashes)
    proof = merkle.inclusion_proof(hashes, 5)
    assert len(proof) == 4
    with pytest.raises(InvalidProof, match="wrong proof size 3, want 4"):
        merkle.verify_inclusion(hashes[5], 5, 16, proof[:3], root)
    cproof = merkle.consistency_proof(hashes, 3)
    with pytest.raises(InvalidProof, match=f"wrong proof size {len(cproof) + 1}, want {len(cproof)}"):
        merkle.verify_consistency(
            3, 16, merkle.root_from_leaf_hashes(hashes[:3]), root, [*cproof, b"\0" * 32]
        )


def test_root_mismatch_carries_expected_and_computed() -> None:
    hashes = [merkle.hash_leaf(bytes([i])) for i in range(6)]
    root = merkle.root_from_leaf_hashes(hashes)
    proof = merkle.inclusion_proof(hashes, 2)
    wrong_root = b"\x42" * 32
    with pytest.raises(RootMismatch) as info:
        merkle.verify_inclusion(hashes[2], 2, 6, proof, wrong_root)
    assert info.value.expected == wrong_root
    assert info.value.computed == root
    assert merkle.root_from_inclusion_proof(hashes[2], 2, 6, proof) == root


def test_index_out_of_range() -> None:
    hashes = [merkle.hash_leaf(bytes([i])) for i in range(3)]
    with pytest.raises(ValueError):
        merkle.inclusion_proof(hashes, 3)
    with pytest.raises(InvalidProof, match="out of range"):
        merkle.verify_inclusion(hashes[0], 3, 3, [], merkle.root_from_leaf_hashes(hashes))
    with pytest.raises(ValueError):
        merkle.consistency_proof(hashes, 0)


def test_hundred_thousand_leaves_is_linear_time() -> None:
    hashes = [merkle.hash_leaf(i.to_bytes(8, "big")) for i in range(100_000)]
    started = time.perf_counter()
    root = merkle.root_from_leaf_hashes(hashes)
    proof = merkle.inclusion_proof(hashes, 77_777)
    cproof = merkle.consistency_proof(hashes, 65_537)
    elapsed = time.perf_counter() - started
    assert len(proof) == 17
    merkle.verify_inclusion(hashes[77_777], 77_777, 100_000, proof, root)
    merkle.verify_consistency(65_537, 100_000, merkle.root_from_leaf_hashes(hashes[:65_537]), root, cproof)
    assert elapsed < 10
