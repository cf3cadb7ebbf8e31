"""Canonical JSON encoding and record digests.

Records (certificates, events, tickets) are hashed over their RFC 8785 JSON Canonicalization
Scheme (JCS) serialisation, so that any two parties holding the same JSON value compute the same
32-byte digest regardless of key order, whitespace or number formatting: SHA-256 by default, SM3 on a
network of the ``sm`` crypto profile (``hash_alg``, :mod:`provenance.crypto_profile`). The digest is the
Merkle leaf entry of the record (see :mod:`provenance.merkle`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785

from provenance.crypto_profile import HASH_SHA256, hash_function
from provenance.errors import CanonicalizationError

__all__ = ["canonicalize", "record_digest", "digest_hex"]


def canonicalize(obj: Any) -> bytes:
    """Serialise a JSON value with the JSON Canonicalization Scheme (RFC 8785 §3.2).

    Args:
        obj: a JSON-compatible value (dict with str keys, list, str, int, float, bool, None).

    Returns:
        The canonical UTF-8 bytes: object members sorted by UTF-16 code units, no whitespace,
        numbers in ECMAScript shortest form (RFC 8785 §3.2.2.3).

    Raises:
        CanonicalizationError: NaN/infinity, an integer beyond ±2**53 (IEEE 754 double, RFC 8785
            §3.2.2.3), or a value of a non-JSON type.
    """
    fast = _fast_canonical(obj)
    if fast is not None:
        return fast
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        raise CanonicalizationError(f"cannot canonicalise value: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise CanonicalizationError(f"value is not JSON-serialisable: {exc}") from exc


_MAX_SAFE = 2**53
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"))


class _Unsure(Exception):
    """A value whose RFC 8785 form the fast path does not produce byte-identically."""


def _num(obj: Any) -> Any:
    if type(obj) is int:
        if -_MAX_SAFE <= obj <= _MAX_SAFE:
            return obj
        raise _Unsure
    if obj != obj or obj in (_INF, -_INF):
        raise _Unsure
    if obj.is_integer() and abs(obj) < 1e21:
        # ECMAScript Number::toString prints integral values without fraction or exponent
        if abs(obj) > _MAX_SAFE:
            raise _Unsure
        return int(obj)
    if 1e-4 <= abs(obj) < 1e15:
        return obj  # Python's repr = shortest round-trip digits in fixed notation, as ECMAScript
    raise _Unsure


_INF = float("inf")
_NUM = (int, float)
_LEAF = (str, bool, type(None))


def _plain(obj: Any) -> Any:
    """``obj`` with integral floats as ints; raises :class:`_Unsure` for anything json.dumps would not
    serialise exactly as RFC 8785 does (other exotic floats, big ints, non-BMP keys, non-JSON types)."""
    t = type(obj)
    if t is dict:
        out = {}
        for k, v in obj.items():
            if type(k) is not str or (not k.isascii() and any(ord(c) > 0xFFFF for c in k)):
                raise _Unsure  # UTF-16 vs code-point key order can differ only for astral characters
            tv = type(v)
            out[k] = v if tv is str or tv is bool or v is None else (_num(v) if tv in _NUM else _plain(v))
        return out
    if t is list or t is tuple:
        return [v if type(v) is str else _plain(v) for v in obj]
    if t in _LEAF:
        return obj
    if t in _NUM:
        return _num(obj)
    raise _Unsure


def _fast_canonical(obj: Any) -> bytes | None:
    """RFC 8785 bytes via the C JSON encoder when that is provably identical, else None.

    Identical because: keys sorted by code point = by UTF-16 code unit when no key has an astral
    character; strings escaped the same way (only ``"``, ``\\`` and controls, ``\\u00xx`` lowercase);
    integers within ±2**53 and integral floats printed as integers; other floats only in
    [1e-4, 1e15), where Python's shortest repr uses the same fixed notation as ECMAScript.
    """
    try:
        return _ENCODER.encode(_plain(obj)).encode("utf-8")
    except (_Unsure, ValueError, TypeError, RecursionError):
        return None


def record_digest(obj: Any, hash_alg: str = HASH_SHA256) -> bytes:
    """SHA-256 (FIPS 180-4; or SM3, GB/T 32905, with ``hash_alg="sm3"``) of the RFC 8785 canonical bytes of ``obj``.

    Returns:
        32 bytes. This is the Merkle *leaf entry* of the record; its leaf hash is
        ``merkle.hash_leaf(record_digest(obj))`` (RFC 9162 §2.1.1).

    Raises:
        CanonicalizationError: see :func:`canonicalize`.
        UnknownProfile: ``hash_alg`` is neither ``"sha-256"`` nor ``"sm3"``.
    """
    if hash_alg == HASH_SHA256:
        return hashlib.sha256(canonicalize(obj)).digest()
    return hash_function(hash_alg)(canonicalize(obj))


def digest_hex(obj: Any, hash_alg: str = HASH_SHA256) -> str:
    """:func:`record_digest` as a ``"0x"``-prefixed lowercase hex string (66 characters).

    Raises:
        CanonicalizationError: see :func:`canonicalize`.
    """
    return "0x" + record_digest(obj, hash_alg).hex()
