"""QBFT wire messages: payloads, signed payloads and full messages, RLP-encoded and secp256k1-signed.

Layout (EEA QBFT spec, Besu ``qbft.messagewrappers``):

* message codes (Besu ``QbftV1``): PROPOSAL = 0x12, PREPARE = 0x13, COMMIT = 0x14, ROUND_CHANGE = 0x15;
* wire form: ``code (1 byte) || rlp(message)``;
* payload RLP lists (ints are canonical big-endian, at most 8 bytes):

  - PROPOSAL:     ``[height, round, block]``                  (block: opaque encoded block)
  - PREPARE:      ``[height, round, digest(32)]``
  - COMMIT:       ``[height, round, digest(32), commit_seal(65)]``
  - ROUND-CHANGE: ``[height, round, []]`` or ``[height, round, [prepared_round, prepared_digest(32)]]``

* signed payload: ``[payload, signature(65)]``; the signature (r||s||v, v in {0, 1}) is over
  ``keccak256(code || rlp(payload))`` and the author is the address recovered from it;
* messages:

  - Proposal:    ``[signed, [signed round-change payloads...], [signed prepare payloads...]]``
  - Prepare:     ``[signed]``
  - Commit:      ``[signed]``
  - RoundChange: ``[signed, [] | [prepared_block], [signed prepare payloads...]]``
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Generic, TypeVar

import rlp
from eth_hash.auto import keccak
from eth_keys import keys

from .errors import InvalidMessage

PROPOSAL = 0x12
PREPARE = 0x13
COMMIT = 0x14
ROUND_CHANGE = 0x15

DIGEST_LEN = 32
SIGNATURE_LEN = 65
ADDRESS_LEN = 20
_MAX_INT_BYTES = 8

Signer = Callable[[bytes], bytes]


# ------------------------------------------------------------------------------------------ payloads


@dataclass(frozen=True)
class ProposalPayload:
    """PROPOSAL payload: ``block`` is the opaque encoded block proposed for (height, round)."""

    CODE: ClassVar[int] = PROPOSAL
    height: int
    round: int
    block: bytes

    def to_rlp_list(self) -> list[Any]:
        """RLP list form ``[height, round, block digest (32 bytes)]`` that the author signs."""
        return [self.height, self.round, self.block]


@dataclass(frozen=True)
class PreparePayload:
    """PREPARE payload: ``digest`` (32 bytes) of the accepted proposed block."""

    CODE: ClassVar[int] = PREPARE
    height: int
    round: int
    digest: bytes

    def to_rlp_list(self) -> list[Any]:
        """RLP list form ``[height, round, block digest (32 bytes)]`` that the author signs."""
        return [self.height, self.round, self.digest]


@dataclass(frozen=True)
class CommitPayload:
    """COMMIT payload: ``digest`` (32 bytes) and ``commit_seal`` (65 bytes, r||s||v over
    ``BlockPort.seal_hash(block, round)``)."""

    CODE: ClassVar[int] = COMMIT
    height: int
    round: int
    digest: bytes
    commit_seal: bytes

    def to_rlp_list(self) -> list[Any]:
        """RLP list form ``[height, round, block digest (32 bytes), commit seal (65 bytes)]`` that the author signs."""
        return [self.height, self.round, self.digest, self.commit_seal]


@dataclass(frozen=True)
class RoundChangePayload:
    """ROUND-CHANGE payload for target ``round``; ``prepared_round``/``prepared_digest`` (32 bytes) are
    both set (the sender's prepared certificate) or both ``None``."""

    CODE: ClassVar[int] = ROUND_CHANGE
    height: int
    round: int
    prepared_round: int | None
    prepared_digest: bytes | None

    def to_rlp_list(self) -> list[Any]:
        """RLP list form ``[height, round, prepared round or empty, prepared digest or empty]`` that the author signs.
        """
        if self.prepared_round is None or self.prepared_digest is None:
            return [self.height, self.round, []]
        return [self.height, self.round, [self.prepared_round, self.prepared_digest]]


Payload = ProposalPayload | PreparePayload | CommitPayload | RoundChangePayload
P = TypeVar("P", ProposalPayload, PreparePayload, CommitPayload, RoundChangePayload)


def signing_hash(code: int, payload: Payload) -> bytes:
    """32-byte hash a payload signature covers: ``keccak256(code byte || rlp(payload))``."""
    return keccak(bytes([code]) + rlp.encode(payload.to_rlp_list()))


@dataclass(frozen=True)
class SignedPayload(Generic[P]):
    """A payload with its author's 65-byte secp256k1 signature (r||s||v, v in {0, 1})."""

    payload: P
    signature: bytes

    @property
    def code(self) -> int:
        """Message code of the payload (PROPOSAL, PREPARE, COMMIT or ROUND-CHANGE)."""
        return self.payload.CODE

    @property
    def height(self) -> int:
        """Block height (sequence number) the payload is about."""
        return self.payload.height

    @property
    def round(self) -> int:
        """Round number the payload is about."""
        return self.payload.round

    @cached_property
    def author(self) -> bytes:
        """20-byte address recovered from the signature (cached). Raises InvalidMessage if unrecoverable."""
        return recover_address(signing_hash(self.payload.CODE, self.payload), self.signature)

    def to_rlp_list(self) -> list[Any]:
        """RLP list form ``[payload list, signature (65 bytes)]``."""
        return [self.payload.to_rlp_list(), self.signature]


def sign_payload(code: int, payload: P, sign: Signer) -> SignedPayload[P]:
    """Sign ``payload`` as message type ``code`` with ``sign(hash32) -> sig65``."""
    if code != payload.CODE:
        raise ValueError(f"code 0x{code:02x} does not match payload {type(payload).__name__}")
    signature = sign(signing_hash(code, payload))
    if len(signature) != SIGNATURE_LEN:
        raise ValueError("signer must return a 65-byte signature")
    return SignedPayload(payload, signature)


def make_signer(private_key: bytes) -> Signer:
    """Signer over a 32-byte secp256k1 private key: ``sign(hash32) -> r||s||v`` (65 bytes, v in {0, 1})."""
    key = keys.PrivateKey(private_key)

    def sign(message_hash: bytes) -> bytes:
        return key.sign_msg_hash(message_hash).to_bytes()

    return sign


def address_of(private_key: bytes) -> bytes:
    """20-byte address of a 32-byte private key."""
    return keys.PrivateKey(private_key).public_key.to_canonical_address()


def recover_address(message_hash: bytes, signature: bytes) -> bytes:
    """20-byte address that produced the 65-byte ``signature`` over the 32-byte ``message_hash``.

    Raises :class:`InvalidMessage` for a malformed or unrecoverable signature.
    """
    if len(message_hash) != DIGEST_LEN:
        raise InvalidMessage("message hash must be 32 bytes")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_LEN:
        raise InvalidMessage("signature must be 65 bytes")
    try:
        sig = keys.Signature(signature_bytes=signature)
        return sig.recover_public_key_from_msg_hash(message_hash).to_canonical_address()
    except Exception as exc:  # eth_keys raises BadSignature / ValidationError / ValueError
        raise InvalidMessage(f"unrecoverable signature: {exc}") from exc


# ------------------------------------------------------------------------------------------ messages


class _SignedMessage:
    """Shared accessors of the four message types: height, round and author of the signed payload."""

    signed: SignedPayload[Any]

    @property
    def height(self) -> int:
        return self.signed.payload.height

    @property
    def round(self) -> int:
        return self.signed.payload.round

    @property
    def author(self) -> bytes:
        return self.signed.author


@dataclass(frozen=True)
class Proposal(_SignedMessage):
    """PROPOSAL. For round > 0 ``round_change_justification`` holds a quorum of signed ROUND-CHANGE payloads
    for (height, round); if one of them is prepared, ``prepare_justification`` holds a quorum of PREPAREs
    for the highest prepared round and digest (which the proposed block must match)."""

    CODE: ClassVar[int] = PROPOSAL
    signed: SignedPayload[ProposalPayload]
    round_change_justification: tuple[SignedPayload[RoundChangePayload], ...] = ()
    prepare_justification: tuple[SignedPayload[PreparePayload], ...] = ()

    def to_rlp_list(self) -> list[Any]:
        """RLP list form ``[signed payload, block RLP, round-change justification, prepare justification]``."""
        return [
            self.signed.to_rlp_list(),
            [s.to_rlp_list() for s in self.round_change_justification],
            [s.to_rlp_list() for s in self.prepare_justification],
        ]


@dataclass(frozen=True)
class Prepare(_SignedMessage):
    """PREPARE for the digest of the accepted proposal."""

    CODE: ClassVar[int] = PREPARE
    signed: SignedPayload[PreparePayload]

    def to_rlp_list(self) -> list[Any]:
        """RLP list form of the signed PREPARE payload."""
        return [self.signed.to_rlp_list()]


@dataclass(frozen=True)
class Commit(_SignedMessage):
    """COMMIT carrying the author's commit seal."""

    CODE: ClassVar[int] = COMMIT
    signed: SignedPayload[CommitPayload]

    def to_rlp_list(self) -> list[Any]:
        """RLP list form of the signed COMMIT payload."""
        return [self.signed.to_rlp_list()]


@dataclass(frozen=True)
class RoundChange(_SignedMessage):
    """ROUND-CHANGE to ``signed.payload.round``. When the payload is prepared, ``prepared_block`` is the
    prepared block and ``prepare_justification`` the quorum of PREPAREs proving the prepared certificate."""

    CODE: ClassVar[int] = ROUND_CHANGE
    signed: SignedPayload[RoundChangePayload]
    prepared_block: bytes | None = None
    prepare_justification: tuple[SignedPayload[PreparePayload], ...] = ()

    def to_rlp_list(self) -> list[Any]:
        """RLP list form ``[signed payload, prepared block RLP or empty, prepare justification]``."""
        block = [] if self.prepared_block is None else [self.prepared_block]
        return [self.signed.to_rlp_list(), block, [s.to_rlp_list() for s in self.prepare_justification]]


Message = Proposal | Prepare | Commit | RoundChange


def encode_message(msg: Message) -> bytes:
    """Wire form: 1 code byte followed by the RLP of the message."""
    return bytes([msg.CODE]) + rlp.encode(msg.to_rlp_list())


# ------------------------------------------------------------------------------------------ decoding


def _bytes(item: Any, what: str, length: int | None = None) -> bytes:
    if not isinstance(item, bytes):
        raise InvalidMessage(f"{what}: expected bytes")
    if length is not None and len(item) != length:
        raise InvalidMessage(f"{what}: expected {length} bytes, got {len(item)}")
    return item


def _int(item: Any, what: str) -> int:
    raw = _bytes(item, what)
    if len(raw) > _MAX_INT_BYTES:
        raise InvalidMessage(f"{what}: integer too large")
    if raw[:1] == b"\x00":
        raise InvalidMessage(f"{what}: non-canonical integer")
    return int.from_bytes(raw, "big")


def _list(item: Any, what: str, length: int | None = None) -> list[Any]:
    if not isinstance(item, list):
        raise InvalidMessage(f"{what}: expected list")
    if length is not None and len(item) != length:
        raise InvalidMessage(f"{what}: expected {length} items, got {len(item)}")
    return item


def _payload(code: int, item: Any) -> Payload:
    if code == PROPOSAL:
        f = _list(item, "proposal payload", 3)
        return ProposalPayload(_int(f[0], "height"), _int(f[1], "round"), _bytes(f[2], "block"))
    if code == PREPARE:
        f = _list(item, "prepare payload", 3)
        return PreparePayload(_int(f[0], "height"), _int(f[1], "round"), _bytes(f[2], "digest", DIGEST_LEN))
    if code == COMMIT:
        f = _list(item, "commit payload", 4)
        return CommitPayload(
            _int(f[0], "height"),
            _int(f[1], "round"),
            _bytes(f[2], "digest", DIGEST_LEN),
            _bytes(f[3], "commit seal", SIGNATURE_LEN),
        )
    if code == ROUND_CHANGE:
        f = _list(item, "round-change payload", 3)
        prepared = _list(f[2], "prepared certificate")
        if not prepared:
            return RoundChangePayload(_int(f[0], "height"), _int(f[1], "round"), None, None)
        _list(prepared, "prepared certificate", 2)
        return RoundChangePayload(
            _int(f[0], "height"),
            _int(f[1], "round"),
            _int(prepared[0], "prepared round"),
            _bytes(prepared[1], "prepared digest", DIGEST_LEN),
        )
    raise InvalidMessage(f"unknown message code 0x{code:02x}")


def _signed(code: int, item: Any) -> SignedPayload[Any]:
    f = _list(item, "signed payload", 2)
    signed: SignedPayload[Any] = SignedPayload(_payload(code, f[0]), _bytes(f[1], "signature", SIGNATURE_LEN))
    _ = signed.author  # recover eagerly: an unrecoverable signature is a malformed message
    return signed


def _signed_list(code: int, item: Any, what: str) -> tuple[SignedPayload[Any], ...]:
    return tuple(_signed(code, x) for x in _list(item, what))


def _decode(raw: bytes) -> Message:
    if not isinstance(raw, bytes | bytearray) or len(raw) < 2:
        raise InvalidMessage("message too short")
    code = raw[0]
    try:
        body = rlp.decode(bytes(raw[1:]), strict=True)
    except rlp.exceptions.RLPException as exc:
        raise InvalidMessage(f"bad RLP: {exc}") from exc
    if code == PROPOSAL:
        f = _list(body, "proposal", 3)
        return Proposal(
            _signed(PROPOSAL, f[0]),
            _signed_list(ROUND_CHANGE, f[1], "round-change justification"),
            _signed_list(PREPARE, f[2], "prepare justification"),
        )
    if code == PREPARE:
        return Prepare(_signed(PREPARE, _list(body, "prepare", 1)[0]))
    if code == COMMIT:
        return Commit(_signed(COMMIT, _list(body, "commit", 1)[0]))
    if code == ROUND_CHANGE:
        f = _list(body, "round change", 3)
        signed = _signed(ROUND_CHANGE, f[0])
        block_field = _list(f[1], "prepared block")
        if len(block_field) > 1:
            raise InvalidMessage("prepared block: expected at most one item")
        block = _bytes(block_field[0], "prepared block") if block_field else None
        prepares = _signed_list(PREPARE, f[2], "prepare justification")
        return RoundChange(signed, block, prepares)
    raise InvalidMessage(f"unknown message code 0x{code:02x}")


def decode_message(raw: bytes) -> Message:
    """Decode a wire message (1 code byte + RLP) and recover every signature in it.

    Raises :class:`InvalidMessage` on any malformation and never any other exception type.
    """
    try:
        return _decode(raw)
    except InvalidMessage:
        raise
    except Exception as exc:  # defensive: anything unexpected in third-party decoding is a bad message
        raise InvalidMessage(f"malformed message: {type(exc).__name__}: {exc}") from exc
