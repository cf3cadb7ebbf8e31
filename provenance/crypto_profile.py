"""Crypto profiles: which hash and which record signature a network's record layer uses.

A network chooses its profile once, when it is created (``network.json`` ``crypto_profile``; ``GET
/v1/network``); every record digest, Merkle tree, proof and bundle of that network then uses it, and
every proof and bundle names it (``hash_alg``) so that a verifier selects the algorithms from what it
verifies and from the network it trusts, never by guessing.

* ``standard`` (the default, today's behaviour): record digest = SHA-256 (FIPS 180-4) of the RFC 8785
  canonical JSON; RFC 9162 Merkle trees with SHA-256; record signatures EIP-712 over secp256k1
  (:mod:`provenance.signing`).
* ``sm`` (Chinese national commercial cryptography): record digest = SM3 (GB/T 32905-2016) of the same
  RFC 8785 bytes; RFC 9162 Merkle trees with the same structure and domain separation
  (``SM3(0x00 ‖ entry)``, ``SM3(0x01 ‖ left ‖ right)``, empty tree ``SM3("")``); record signatures SM2
  (GB/T 32918.2-2016) over SM3 with the signer's ``Z`` value and the default user ID
  ``1234567812345678`` (GM/T 0009-2012 §10), encoded as DER ``SEQUENCE {r INTEGER, s INTEGER}``
  (GM/T 0009 §7.2) — what ``openssl pkeyutl -rawin -digest sm3 -pkeyopt distid:1234567812345678``
  makes and checks.

The chain underneath (QBFT commit seals, transactions, state tries) is secp256k1/keccak under both
profiles; the profile is about the record layer only.

Libraries, not home-made primitives: SM3 is OpenSSL's (``hashlib`` when the interpreter's OpenSSL has it,
else Tongsuo's through ``tongsuopy``); SM2 is Tongsuo's (``tongsuopy``, native; Tongsuo is the OpenSSL fork
maintained for the Chinese algorithms). The comparison of
candidates is in ``docs/crypto-profiles.md``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from provenance.errors import InvalidSignature

__all__ = [
    "STANDARD", "SM", "PROFILES", "HASH_SHA256", "HASH_SM3", "SIG_EIP712", "SIG_SM2", "SM2_DEFAULT_USER_ID",
    "CryptoProfile", "UnknownProfile", "get_profile", "profile_for_hash", "network_manifest_fields", "hash_function",
    "sm3", "parse_sm2_public_key", "sm2_generate_private_key", "sm2_public_key", "sm2_sign", "sm2_verify",
    "sm2_record_statement", "sign_record_sm2", "verify_record_sm2", "derive_sm2_record_key",
    "sm2_key_binding_statement",
]

STANDARD = "standard"
"""Profile name: SHA-256 record layer, EIP-712/secp256k1 record signatures (the default)."""
SM = "sm"
"""Profile name: SM3 record layer, SM2 record signatures (GB/T 32905, GB/T 32918, GM/T 0009)."""

HASH_SHA256 = "sha-256"
"""``hash_alg`` of the standard profile (the name of RFC 6920's registry and of RFC 9162 §2.1)."""
HASH_SM3 = "sm3"
"""``hash_alg`` of the sm profile."""

SIG_EIP712 = "eip712-secp256k1"
"""Record signature of the standard profile: 65-byte ``r‖s‖v`` over the EIP-712 ``Record`` hash."""
SIG_SM2 = "sm2-sm3"
"""Record signature of the sm profile: DER SM2 signature over :func:`sm2_record_statement`."""

SM2_DEFAULT_USER_ID = b"1234567812345678"
"""The default distinguishing identifier of GM/T 0009-2012 §10 (16 ASCII bytes, ENTL = 128 bits)."""

SM2_ORDER = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
"""Order ``n`` of the base point of the SM2 recommended curve (GB/T 32918.5-2017)."""

_MAX_DER_SIGNATURE = 72
"""Longest DER SM2 signature: 2 + 2 × (2 + 33) bytes."""


class UnknownProfile(ValueError):
    """A profile or ``hash_alg`` name that is not one of :data:`PROFILES`."""


@dataclass(frozen=True)
class CryptoProfile:
    """The algorithms of one profile.

    Attributes:
        name: ``"standard"`` or ``"sm"``.
        hash_alg: record digest and Merkle hash (``"sha-256"`` / ``"sm3"``), 32-byte output both.
        signature_alg: record signature scheme (``"eip712-secp256k1"`` / ``"sm2-sm3"``).
    """

    name: str
    hash_alg: str
    signature_alg: str

    def digest(self, data: bytes) -> bytes:
        """The profile's 32-byte hash of ``data``."""
        return hash_function(self.hash_alg)(data)


PROFILES: dict[str, CryptoProfile] = {
    STANDARD: CryptoProfile(STANDARD, HASH_SHA256, SIG_EIP712),
    SM: CryptoProfile(SM, HASH_SM3, SIG_SM2),
}


def get_profile(name: str | None) -> CryptoProfile:
    """The profile called ``name``; None or ``""`` is ``standard`` (networks created before profiles existed).

    Raises:
        UnknownProfile: any other name (the message lists the known ones).
    """
    if name is None or name == "":
        return PROFILES[STANDARD]
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise UnknownProfile(f"crypto profile must be one of {', '.join(PROFILES)}, got {name!r}"[:200]) from None


def network_manifest_fields(name: str | None) -> dict[str, str]:
    """What a network's manifest (``network.json``, a consortium genesis) records about its crypto profile:
    ``{"cryptoProfile", "hashAlg", "recordSignature"}``, e.g. ``{"cryptoProfile": "sm", "hashAlg": "sm3",
    "recordSignature": "sm2-sm3"}``. Readers take ``cryptoProfile`` (absent: ``standard``); the other two say it
    in plain words for a person reading the file.

    Raises:
        UnknownProfile: ``name`` is not a known profile.
    """
    p = get_profile(name)
    return {"cryptoProfile": p.name, "hashAlg": p.hash_alg, "recordSignature": p.signature_alg}


def profile_for_hash(hash_alg: str) -> CryptoProfile:
    """The profile whose record layer hashes with ``hash_alg``. Raises UnknownProfile."""
    for p in PROFILES.values():
        if p.hash_alg == hash_alg:
            return p
    raise UnknownProfile(f"hash_alg must be one of {', '.join(p.hash_alg for p in PROFILES.values())}, "
                         f"got {hash_alg!r}"[:200])


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _sm3_backend() -> Callable[[bytes], bytes]:
    try:
        hashlib.new("sm3", b"")
    except ValueError:
        from tongsuopy.crypto import hashes

        def _sm3_tongsuo(data: bytes) -> bytes:
            h = hashes.Hash(hashes.SM3())
            h.update(data)
            return bytes(h.finalize())
        return _sm3_tongsuo

    proto = hashlib.new("sm3")  # copying a fresh context skips OpenSSL's algorithm fetch: ~5x faster on 32 bytes

    def _sm3_hashlib(data: bytes) -> bytes:
        h = proto.copy()
        h.update(data)
        return h.digest()
    return _sm3_hashlib


sm3: Callable[[bytes], bytes] = _sm3_backend()
"""SM3 (GB/T 32905-2016) of a byte string: 32 bytes. OpenSSL's implementation (see the module docstring)."""

_HASHES: dict[str, Callable[[bytes], bytes]] = {HASH_SHA256: _sha256, HASH_SM3: sm3}


def hash_function(hash_alg: str) -> Callable[[bytes], bytes]:
    """The function ``bytes -> 32 bytes`` named by ``hash_alg`` (``"sha-256"`` or ``"sm3"``).

    Raises:
        UnknownProfile: another name.
    """
    try:
        return _HASHES[hash_alg]
    except (KeyError, TypeError):
        raise UnknownProfile(f"hash_alg must be one of {', '.join(_HASHES)}, got {hash_alg!r}"[:200]) from None


# ----------------------------------------------------------------------------------------------- SM2
def _tongsuo() -> tuple[object, object]:
    from tongsuopy.crypto import hashes as t_hashes
    from tongsuopy.crypto.asymciphers import ec as t_ec

    return t_ec, t_hashes


def sm2_generate_private_key() -> bytes:
    """A fresh SM2 private key ``d`` (32 bytes big-endian, 1 ≤ d ≤ n − 2), from Tongsuo's CSPRNG."""
    t_ec, _ = _tongsuo()
    key = t_ec.generate_private_key(t_ec.SM2())  # type: ignore[attr-defined]
    return int(key.private_numbers().private_value).to_bytes(32, "big")


@lru_cache(maxsize=256)
def _private_key(raw: bytes) -> object:
    t_ec, _ = _tongsuo()
    d = int.from_bytes(raw, "big")
    if not 1 <= d <= SM2_ORDER - 2:  # GB/T 32918.1 §6.1: d ∈ [1, n − 2]
        raise ValueError("SM2 private key must be in 1..n-2")
    return t_ec.derive_private_key(d, t_ec.SM2())  # type: ignore[attr-defined]


@lru_cache(maxsize=4096)
def _public_key(raw: bytes) -> object:
    t_ec, _ = _tongsuo()
    return t_ec.EllipticCurvePublicKey.from_encoded_point(t_ec.SM2(), raw)  # type: ignore[attr-defined]


def _check_private(private_key: bytes) -> bytes:
    if not isinstance(private_key, bytes | bytearray) or len(private_key) != 32:
        raise ValueError("SM2 private key must be 32 bytes")
    return bytes(private_key)


def sm2_public_key(private_key: bytes) -> bytes:
    """The 65-byte uncompressed public key ``04 ‖ x ‖ y`` (GB/T 32918.1 §4.2.9) of a 32-byte private key.

    Raises:
        ValueError: not 32 bytes or outside ``1..n-2``.
    """
    from tongsuopy.crypto import serialization

    key = _private_key(_check_private(private_key))
    return bytes(key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))


def parse_sm2_public_key(value: bytes) -> bytes:
    """``value`` checked as an SM2 public key on the recommended curve: 65 bytes ``04 ‖ x ‖ y`` (or 33 compressed),
    returned uncompressed.

    Raises:
        ValueError: wrong length or prefix, or not a point of the curve (the message says which).
    """
    from tongsuopy.crypto import serialization

    if not isinstance(value, bytes | bytearray) or len(value) not in (33, 65) or value[0] not in (2, 3, 4) \
            or (len(value) == 65) != (value[0] == 4):
        raise ValueError("SM2 public key must be 65 bytes 04||x||y (or 33 bytes compressed)")
    try:
        key = _public_key(bytes(value))
    except ValueError as exc:
        raise ValueError(f"not a point of the SM2 curve: {exc}") from exc
    return bytes(key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))


def sm2_sign(private_key: bytes, message: bytes) -> bytes:
    """SM2 signature (GB/T 32918.2 §6.1) of ``message`` with the default user ID: ``e = SM3(Z_A ‖ M)``,
    ``Z_A = SM3(ENTL ‖ ID ‖ a ‖ b ‖ x_G ‖ y_G ‖ x_A ‖ y_A)``, ID = :data:`SM2_DEFAULT_USER_ID`.

    Returns:
        DER ``SEQUENCE {r, s}`` (GM/T 0009 §7.2), 70–72 bytes; a fresh random ``k`` per call.

    Raises:
        ValueError: a private key that is not 32 bytes or outside ``1..n-2``.
    """
    t_ec, t_hashes = _tongsuo()
    key = _private_key(_check_private(private_key))
    return bytes(key.sign(bytes(message), t_ec.ECDSA(t_hashes.SM3())))  # type: ignore[attr-defined]


def sm2_verify(public_key: bytes, signature: bytes, message: bytes) -> None:
    """Check an SM2 signature (GB/T 32918.2 §7.1, default user ID) of ``message`` by ``public_key``.

    Args:
        public_key: 65 bytes ``04 ‖ x ‖ y`` (or 33 compressed). signature: DER ``SEQUENCE {r, s}``.

    Raises:
        InvalidSignature: a malformed key or signature, or a signature that does not verify.
    """
    from tongsuopy.crypto.exceptions import InvalidSignature as TongsuoInvalid

    t_ec, t_hashes = _tongsuo()
    if not isinstance(signature, bytes | bytearray) or not 8 <= len(signature) <= _MAX_DER_SIGNATURE \
            or signature[0] != 0x30:
        raise InvalidSignature("SM2 signature must be DER SEQUENCE {r, s} (8..72 bytes, GM/T 0009 §7.2)")
    try:
        key = _public_key(parse_sm2_public_key(public_key))
    except ValueError as exc:
        raise InvalidSignature(f"bad SM2 public key: {exc}") from exc
    try:
        key.verify(bytes(signature), bytes(message), t_ec.ECDSA(t_hashes.SM3()))  # type: ignore[attr-defined]
    except TongsuoInvalid as exc:
        raise InvalidSignature("SM2 signature does not verify") from exc
    except Exception as exc:  # noqa: BLE001 - Tongsuo raises assertion variants for undecodable DER
        raise InvalidSignature(f"SM2 signature does not verify: {type(exc).__name__}") from exc


def sm2_record_statement(identifier: str, kind: str, digest: bytes, chain_id: int) -> bytes:
    """The message an SM2 record signature covers: the RFC 8785 canonical JSON of
    ``{"chainId", "digest": "0x…", "domain": "TraceLedger", "identifier", "kind", "version": "1"}``.

    The same fields as the EIP-712 ``Record`` of :mod:`provenance.signing` (domain, version, chain id,
    identifier, kind, digest), as readable bytes any SM2 tool can sign (``openssl pkeyutl -rawin``).

    Raises:
        ValueError: digest not 32 bytes, chain id not a positive integer, identifier/kind not strings.
    """
    from provenance.canonical import canonicalize

    if not isinstance(digest, bytes | bytearray) or len(digest) != 32:
        raise ValueError("digest must be 32 bytes")
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0:
        raise ValueError(f"chain_id must be a positive integer, got {chain_id!r}")
    if not isinstance(identifier, str) or not isinstance(kind, str):
        raise ValueError("identifier and kind must be strings")
    return canonicalize({"chainId": chain_id, "digest": "0x" + bytes(digest).hex(), "domain": "TraceLedger",
                         "identifier": identifier, "kind": kind, "version": "1"})


def derive_sm2_record_key(account_key: bytes) -> bytes:
    """The SM2 record key of an account whose 32-byte secp256k1 key the API keeps in its keystore:
    ``d = SM3("TraceLedger SM2 record key v1" ‖ account_key) mod (n − 2) + 1`` (so ``1 ≤ d ≤ n − 2``).

    One secret in the keystore gives both keys (no second keystore column); the price, stated in
    ``docs/crypto-profiles.md``: whoever holds the account key holds the SM2 key too. Device-held SM2 keys are
    bound on chain with ``EnterpriseRegistry.setSm2PublicKey`` instead.

    Raises:
        ValueError: ``account_key`` is not 32 bytes.
    """
    if not isinstance(account_key, bytes | bytearray) or len(account_key) != 32:
        raise ValueError("account key must be 32 bytes")
    e = int.from_bytes(sm3(b"TraceLedger SM2 record key v1" + bytes(account_key)), "big")
    return (e % (SM2_ORDER - 2) + 1).to_bytes(32, "big")


def sign_record_sm2(private_key: bytes, identifier: str, kind: str, digest: bytes, chain_id: int) -> bytes:
    """SM2 signature (DER) of :func:`sm2_record_statement`. Raises ValueError on a bad key or field."""
    return sm2_sign(private_key, sm2_record_statement(identifier, kind, digest, chain_id))


def verify_record_sm2(public_key: bytes, signature: bytes, identifier: str, kind: str, digest: bytes,
                      chain_id: int) -> None:
    """Check an SM2 record signature by ``public_key``.

    Raises:
        InvalidSignature: malformed or not verifying. ValueError: bad record fields.
    """
    sm2_verify(public_key, signature, sm2_record_statement(identifier, kind, digest, chain_id))


def sm2_key_binding_statement(account: str, chain_id: int, registry: str) -> bytes:
    """The challenge an SM2 key holder signs to prove possession before the key is bound to ``account``
    (``PUT /v1/enterprises/{id}/sm2-key``, ``PUT /v1/persons/{id}/sm2-key``): the RFC 8785 canonical JSON of
    ``{"account": "0x…" (lower case), "chainId", "domain": "TraceLedger", "purpose": "bind SM2 public key",
    "registry": "0x…" (the EnterpriseRegistry, lower case), "version": "1"}``.

    A proof made for one account, chain or registry does not verify for another, so nobody binds a key whose
    private half they do not hold, nor replays someone's proof onto their own account.

    Raises:
        ValueError: ``account``/``registry`` not 0x + 40 hex digits, chain id not a positive integer.
    """
    from provenance.canonical import canonicalize

    for name, value in (("account", account), ("registry", registry)):
        if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x") \
                or any(c not in "0123456789abcdefABCDEF" for c in value[2:]):
            raise ValueError(f"{name} must be 0x + 40 hex digits")
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0:
        raise ValueError(f"chain_id must be a positive integer, got {chain_id!r}")
    return canonicalize({"account": account.lower(), "chainId": chain_id, "domain": "TraceLedger",
                         "purpose": "bind SM2 public key", "registry": registry.lower(), "version": "1"})
