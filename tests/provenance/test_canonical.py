from __future__ import annotations

import hashlib

import pytest

from provenance.canonical import canonicalize, digest_hex, record_digest
from provenance.errors import CanonicalizationError, ProvenanceError


def test_canonical_bytes_sort_keys_and_strip_whitespace() -> None:
    assert canonicalize({"b": 1, "a": [1.0, "x", None, True]}) == b'{"a":[1,"x",null,true],"b":1}'


def test_canonical_numbers_follow_ecmascript_form() -> None:
    assert canonicalize([1e21, 0.1, -0.0, 100.0]) == b"[1e+21,0.1,0,100]"


def test_key_order_does_not_change_digest() -> None:
    assert record_digest({"x": 1, "y": {"b": 2, "a": 3}}) == record_digest({"y": {"a": 3, "b": 2}, "x": 1})


def test_digest_is_sha256_of_canonical_bytes() -> None:
    obj = {"coil": "NW24-118734", "Rm": 497}
    digest = record_digest(obj)
    assert len(digest) == 32
    assert digest == hashlib.sha256(canonicalize(obj)).digest()
    assert digest_hex(obj) == "0x" + digest.hex()
    assert len(digest_hex(obj)) == 66


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 2**64, {1: "non-string key"}])
def test_non_json_values_raise(bad: object) -> None:
    with pytest.raises(CanonicalizationError) as info:
        canonicalize(bad)
    assert isinstance(info.value, ProvenanceError)
    assert isinstance(info.value, ValueError)


def test_fast_path_is_byte_identical_to_rfc8785() -> None:
    """The C-encoder fast path either returns exactly rfc8785's bytes or declines (None)."""
    import random

    import rfc8785

    from provenance.canonical import _fast_canonical
    from provenance.samples import load_samples

    for _, doc in load_samples():
        assert _fast_canonical(doc) == rfc8785.dumps(doc)
    rng = random.Random(5)
    keys = ["a", "b", "é", "\u00ff", "A", "\ue000", "k\n", "😀x", ""]
    specials = [0.1, 1e-4, 1e-5, 123.456, 1e14 + 0.5, 5e-324, 1e300, -0.0, 2.5e15, 2.0**53, 2.0**60, 1e21]

    def value(depth: int = 0) -> object:
        r = rng.random()
        if depth < 3 and r < 0.2:
            return {rng.choice(keys) + str(rng.randint(0, 3)): value(depth + 1) for _ in range(rng.randint(0, 4))}
        if depth < 3 and r < 0.35:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return rng.choice([
            rng.uniform(-1e6, 1e6), float(rng.randint(-10**6, 10**6)), rng.choice(specials),
            rng.randint(-2**60, 2**60), rng.randint(-1000, 1000), rng.random() * 10 ** rng.randint(-8, 20),
            "".join(rng.choice("ab\"\\\x00\x1f\x7f\u2028é€😀\t\n") for _ in range(rng.randint(0, 6))),
            True, False, None,
        ])

    fast = 0
    for _ in range(5000):
        v = value()
        got = _fast_canonical(v)
        if got is not None:
            fast += 1
            assert got == rfc8785.dumps(v), v
    assert fast > 2500
