"""Enterprise signatures over record digests with EIP-712 typed structured data.

An enterprise (mill, processor, carrier) signs the statement "record ``identifier`` of ``kind``
has digest ``digest``" with its secp256k1 key. The statement is EIP-712 typed data so that
hardware wallets and signing devices display the fields instead of an opaque hash:

* domain (``EIP712Domain``): ``name = "TraceLedger"``, ``version = "1"``, ``chainId`` of the QBFT
  chain; no ``verifyingContract`` (the signature is not bound to one contract);
* primary type ``Record(string identifier,string kind,bytes32 digest)``.

The signed hash is ``keccak256(0x19 || 0x01 || domainSeparator || hashStruct(Record))`` (EIP-712
§"Specification of the eth_signTypedData JSON RPC"); the signature is 65 bytes ``r || s || v``
with ``v`` in {27, 28}.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import coincurve
from Crypto.Hash import keccak as _keccak_mod
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils import to_checksum_address

from provenance.errors import InvalidSignature

try:
    from sha3 import keccak_256 as _keccak_256  # safe-pysha3
except ImportError:  # pragma: no cover - pycryptodome is always there
    _keccak_256 = None

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "RECORD_TYPE",
    "record_typed_data",
    "sign_record",
    "recover_record_signer",
    "record_signing_hash",
]

DOMAIN_NAME = "TraceLedger"
DOMAIN_VERSION = "1"
RECORD_TYPE = "Record(string identifier,string kind,bytes32 digest)"
"""EIP-712 ``encodeType`` string of the primary type."""

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _check_digest(digest: bytes) -> bytes:
    if not isinstance(digest, bytes | bytearray):
        raise ValueError(f"digest must be 32 bytes, got {type(digest).__name__}")
    if len(digest) != 32:
        raise ValueError(f"digest must be 32 bytes, got {len(digest)}")
    return bytes(digest)


def record_typed_data(identifier: str, kind: str, digest: bytes, chain_id: int) -> dict[str, Any]:
    """Full EIP-712 typed-data document (``eth_signTypedData_v4`` JSON shape) for one record.

    Args:
        identifier: record identifier, e.g. ``"88.123.4567/H175508-C7282841"``.
        kind: record kind, e.g. ``"en10168-certificate"``.
        digest: 32-byte record digest (SHA-256 of the JCS bytes).
        chain_id: EIP-155 chain id of the ledger (positive int).

    Returns:
        ``{"types": {...}, "primaryType": "Record", "domain": {...}, "message": {...}}`` with
        ``message.digest`` as a ``"0x"``-prefixed 64-hex-digit string (JSON-serialisable).

    Raises:
        ValueError: digest not 32 bytes, chain id not a positive int, identifier/kind not str.
    """
    raw = _check_digest(digest)
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0:
        raise ValueError(f"chain_id must be a positive integer, got {chain_id!r}")
    if not isinstance(identifier, str) or not isinstance(kind, str):
        raise ValueError("identifier and kind must be strings")
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "Record": [
                {"name": "identifier", "type": "string"},
                {"name": "kind", "type": "string"},
                {"name": "digest", "type": "bytes32"},
            ],
        },
        "primaryType": "Record",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id},
        "message": {"identifier": identifier, "kind": kind, "digest": "0x" + raw.hex()},
    }


def _signable(identifier: str, kind: str, digest: bytes, chain_id: int) -> SignableMessage:
    return encode_typed_data(full_message=record_typed_data(identifier, kind, digest, chain_id))


def keccak(data: bytes) -> bytes:
    """Keccak-256 (the Ethereum hash): ``safe-pysha3`` (C, ~6 µs) when installed, else pycryptodome (~30 µs)."""
    if _keccak_256 is not None:
        return _keccak_256(data).digest()  # type: ignore[no-any-return]
    return _keccak_mod.new(digest_bits=256, data=data).digest()


@lru_cache(maxsize=64)
def _string_hash(text: str) -> bytes:
    """keccak256 of a short constant string (the record kinds): hashed once."""
    return keccak(text.encode("utf-8"))


@lru_cache(maxsize=256)
def _private_key(raw: bytes) -> coincurve.PrivateKey:
    return coincurve.PrivateKey(raw)


_DOMAIN_TYPEHASH = keccak(b"EIP712Domain(string name,string version,uint256 chainId)")
_RECORD_TYPEHASH = keccak(RECORD_TYPE.encode("ascii"))


@lru_cache(maxsize=64)
def _domain_separator(chain_id: int) -> bytes:
    return keccak(_DOMAIN_TYPEHASH + keccak(DOMAIN_NAME.encode()) + keccak(DOMAIN_VERSION.encode())
                  + chain_id.to_bytes(32, "big"))


@lru_cache(maxsize=4096)
def _checksum_address(raw20: bytes) -> str:
    return str(to_checksum_address(raw20))


def record_signing_hash(identifier: str, kind: str, digest: bytes, chain_id: int) -> bytes:
    """The 32-byte EIP-712 hash ``keccak256(0x1901 || domainSeparator || hashStruct(Record))`` that is signed.

    Computed directly (cached domain separator, three keccaks per record): the same bytes as
    ``encode_typed_data(record_typed_data(...))`` but ~20x cheaper, which matters for bulk ingest
    and lineage verification. Raises ValueError for a digest that is not 32 bytes.
    """
    struct = keccak(_RECORD_TYPEHASH + keccak(identifier.encode("utf-8")) + _string_hash(kind)
                    + _check_digest(digest))
    return keccak(b"\x19\x01" + _domain_separator(chain_id) + struct)


def sign_record(private_key: bytes, identifier: str, kind: str, digest: bytes, chain_id: int) -> bytes:
    """Sign a record statement with a secp256k1 private key (EIP-712).

    Args:
        private_key: 32-byte secp256k1 private key.
        identifier, kind, digest, chain_id: see :func:`record_typed_data`.

    Returns:
        65 bytes ``r (32) || s (32) || v (1)``, ``v`` in {27, 28}, low-s (EIP-2).

    Raises:
        ValueError: invalid key or arguments.
    """
    record_typed_data(identifier, kind, digest, chain_id)  # argument checks (ValueError)
    if not isinstance(private_key, bytes | bytearray) or len(private_key) != 32:
        raise ValueError("private key must be 32 bytes")
    try:
        sig = _private_key(bytes(private_key)).sign_recoverable(
            record_signing_hash(identifier, kind, digest, chain_id), hasher=None)
    except Exception as exc:  # noqa: BLE001 - coincurve raises ValueError variants for a bad key
        raise ValueError(f"invalid private key: {exc}") from exc
    return sig[:64] + bytes([sig[64] + 27])  # libsecp256k1 signatures are low-s (EIP-2)


def recover_record_signer(signature: bytes, identifier: str, kind: str, digest: bytes, chain_id: int) -> str:
    """Recover the EIP-55 checksum address that produced ``signature`` over the record statement.

    A signature over different fields (e.g. a tampered digest) recovers a *different* address;
    compare the result with the enterprise's registered address.

    Args:
        signature: 65 bytes ``r || s || v`` with ``v`` in {0, 1, 27, 28}.
        identifier, kind, digest, chain_id: see :func:`record_typed_data`.

    Returns:
        Checksum address, ``"0x"`` + 40 hex digits.

    Raises:
        InvalidSignature: wrong length, ``v`` not in {0, 1, 27, 28}, ``r``/``s`` zero or not
            below the curve order, ``s`` above n/2 (high-s, EIP-2), or no public key recoverable.
        ValueError: invalid record fields (see :func:`record_typed_data`).
    """
    record_typed_data(identifier, kind, digest, chain_id)  # argument checks (ValueError)
    return _recover(signature, record_signing_hash(identifier, kind, digest, chain_id))


def _recover(signature: bytes, msg_hash: bytes) -> str:
    """Signer of a 32-byte hash from a 65-byte ``r || s || v`` signature; refuses high-s (EIP-2)."""
    if not isinstance(signature, bytes | bytearray) or len(signature) != 65:
        size = len(signature) if isinstance(signature, bytes | bytearray) else type(signature).__name__
        raise InvalidSignature(f"signature must be 65 bytes r||s||v, got {size}")
    sig = bytes(signature)
    r, s, v = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    if v not in (0, 1, 27, 28):
        raise InvalidSignature(f"signature v must be 0, 1, 27 or 28, got {v}")
    if not (0 < r < _SECP256K1_N and 0 < s < _SECP256K1_N):
        raise InvalidSignature("signature r and s must be in 1..n-1 (secp256k1 order)")
    if s > _SECP256K1_N // 2:
        raise InvalidSignature("signature s is in the upper half of the curve order: high-s signatures are "
                               "malleable and refused (EIP-2); sign with a low-s signer (libsecp256k1 does)")
    v = v - 27 if v >= 27 else v
    try:
        pub = coincurve.PublicKey.from_signature_and_message(sig[:64] + bytes([v]), msg_hash, hasher=None)
    except Exception as exc:  # noqa: BLE001 - coincurve raises ValueError variants
        raise InvalidSignature(f"cannot recover signer: {exc}") from exc
    return _checksum_address(keccak(pub.format(compressed=False)[1:])[12:])
