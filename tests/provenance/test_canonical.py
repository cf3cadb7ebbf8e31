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
