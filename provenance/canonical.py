"""Canonical JSON encoding and record digests.

Records (certificates, events, tickets) are hashed over their RFC 8785 JSON Canonicalization
Scheme (JCS) serialisation, so that any two parties holding the same JSON value compute the same
32-byte SHA-256 digest regardless of key order, whitespace or number formatting. The digest is the
Merkle leaf entry of the record (see :mod:`provenance.merkle`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

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
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        raise CanonicalizationError(f"cannot canonicalise value: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise CanonicalizationError(f"value is not JSON-serialisable: {exc}") from exc


def record_digest(obj: Any) -> bytes:
    """SHA-256 (FIPS 180-4) of the RFC 8785 canonical bytes of ``obj``.

    Returns:
        32 bytes. This is the Merkle *leaf entry* of the record; its leaf hash is
        ``merkle.hash_leaf(record_digest(obj))`` (RFC 9162 §2.1.1).

    Raises:
        CanonicalizationError: see :func:`canonicalize`.
    """
    return hashlib.sha256(canonicalize(obj)).digest()


def digest_hex(obj: Any) -> str:
    """:func:`record_digest` as a ``"0x"``-prefixed lowercase hex string (66 characters).

    Raises:
        CanonicalizationError: see :func:`canonicalize`.
    """
    return "0x" + record_digest(obj).hex()
