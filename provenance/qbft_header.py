"""QBFT header extraData and the two header hashes of a QBFT block.

Follows the EEA QBFT specification as implemented by Hyperledger Besu:

* ``extraData = RLP([vanity, validators, vote, round, commitSeals])`` where ``vanity`` is 32 bytes,
  ``validators`` a list of 20-byte addresses (the validator set *after* this block), ``vote`` is
  ``[]`` (no vote) or ``[address, 0xFF]`` (add) / ``[address, 0x]`` (drop), ``round`` an RLP scalar
  and ``commitSeals`` a list of 65-byte secp256k1 signatures ``r || s || v`` (``v`` in {0, 1}).
* The **block hash** is keccak256 of the RLP header whose extraData has round 0 and no seals, so
  the same block keeps its hash whatever round it was committed in and whoever sealed it.
* A **commit seal** signs keccak256 of the RLP header whose extraData keeps the round but has no
  seals.

This module is used on both sides: validators build and seal headers with it, and verifiers
(the API, an auditor's script) recompute both hashes from an ``eth_getBlockByNumber`` answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import rlp
from eth_keys import keys
from eth_keys.exceptions import BadSignature
from eth_utils import keccak, to_bytes, to_checksum_address

VANITY_LENGTH = 32
SEAL_LENGTH = 65
VOTE_ADD = b"\xff"
VOTE_DROP = b""
#: Besu's IBFT 2.0 / QBFT mixHash constant: the last 32 ASCII bytes of
#: "Istanbul practical byzantine fault tolerance".
BFT_MIX_HASH = bytes.fromhex("63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365")


def quorum(n: int) -> int:
    """Commit-seal quorum for ``n`` validators: ``(2n - 1) // 3 + 1`` (QBFT spec; = ⌈2n/3⌉)."""
    if n < 1:
        raise ValueError(f"validator count must be >= 1, got {n}")
    return (2 * n - 1) // 3 + 1


@dataclass(frozen=True)
class Vote:
    """A validator vote carried in a header: add (``True``) or drop (``False``) ``address``."""

    address: bytes
    add: bool


@dataclass(frozen=True)
class ExtraData:
    """Decoded QBFT extraData (see module docstring for the wire form)."""

    vanity: bytes = b"\x00" * VANITY_LENGTH
    validators: tuple[bytes, ...] = ()
    vote: Vote | None = None
    round: int = 0
    seals: tuple[bytes, ...] = field(default=())


class InvalidExtraData(ValueError):
    """extraData is not ``RLP([vanity32, [addr20…], vote, round, [seal65…]])``."""


def encode_extra_data(extra: ExtraData, *, include_round: bool = True, include_seals: bool = True) -> bytes:
    """Encode ``extra`` as RLP bytes.

    ``include_round=False`` writes round 0 and no seals (the form hashed for the block hash);
    ``include_seals=False`` keeps the round and writes an empty seal list (the form commit seals sign).
    """
    if len(extra.vanity) != VANITY_LENGTH:
        raise InvalidExtraData(f"vanity must be {VANITY_LENGTH} bytes, got {len(extra.vanity)}")
    vote: list[bytes] = [] if extra.vote is None else [
        extra.vote.address, VOTE_ADD if extra.vote.add else VOTE_DROP]
    round_ = extra.round if include_round else 0
    seals = list(extra.seals) if (include_round and include_seals) else []
    return rlp.encode([extra.vanity, list(extra.validators), vote, round_, seals])


def decode_extra_data(raw: bytes) -> ExtraData:
    """Decode QBFT extraData bytes; raises :class:`InvalidExtraData` naming what is wrong."""
    try:
        items = rlp.decode(bytes(raw))
    except Exception as exc:  # rlp raises several unrelated types
        raise InvalidExtraData(f"extraData is not valid RLP: {exc}") from exc
    if not isinstance(items, list) or len(items) != 5:
        raise InvalidExtraData(
            "extraData must be an RLP list of 5 items [vanity, validators, vote, round, seals]")
    vanity, validators, vote, round_raw, seals = items
    if not isinstance(vanity, bytes) or len(vanity) != VANITY_LENGTH:
        raise InvalidExtraData("extraData vanity must be 32 bytes")
    if not isinstance(validators, list) or any(not isinstance(v, bytes) or len(v) != 20 for v in validators):
        raise InvalidExtraData("extraData validators must be a list of 20-byte addresses")
    decoded_vote: Vote | None = None
    if not isinstance(vote, list) or len(vote) not in (0, 2):
        raise InvalidExtraData("extraData vote must be [] or [address, 0xFF|0x]")
    if vote:
        if not isinstance(vote[0], bytes) or len(vote[0]) != 20 or vote[1] not in (VOTE_ADD, VOTE_DROP):
            raise InvalidExtraData("extraData vote must be [address20, 0xFF] or [address20, 0x]")
        decoded_vote = Vote(vote[0], vote[1] == VOTE_ADD)
    if not isinstance(round_raw, bytes) or (round_raw[:1] == b"\x00"):
        raise InvalidExtraData("extraData round must be an RLP scalar")
    if not isinstance(seals, list) or any(not isinstance(s, bytes) or len(s) != SEAL_LENGTH for s in seals):
        raise InvalidExtraData("extraData commit seals must be a list of 65-byte signatures")
    return ExtraData(vanity, tuple(validators), decoded_vote, int.from_bytes(round_raw, "big"), tuple(seals))


# Header fields of a Shanghai block, in RLP order, with their JSON-RPC names.
_RPC_HEADER_FIELDS: tuple[tuple[str, str], ...] = (
    ("parentHash", "hash"), ("sha3Uncles", "hash"), ("miner", "address"), ("stateRoot", "hash"),
    ("transactionsRoot", "hash"), ("receiptsRoot", "hash"), ("logsBloom", "bytes"),
    ("difficulty", "int"), ("number", "int"), ("gasLimit", "int"), ("gasUsed", "int"),
    ("timestamp", "int"), ("extraData", "bytes"), ("mixHash", "hash"), ("nonce", "bytes"),
    ("baseFeePerGas", "int"), ("withdrawalsRoot", "hash"),
)


def _field_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return to_bytes(hexstr=value)
    if hasattr(value, "hex") and callable(value.hex):  # HexBytes
        return bytes(value)
    raise ValueError(f"cannot read bytes from {value!r}")


def _field_int(value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value, 16)
    raise ValueError(f"cannot read an integer from {value!r}")


def header_fields_from_rpc_block(block: Mapping[str, Any]) -> list[Any]:
    """The RLP field list of a Shanghai header from an ``eth_getBlockByNumber`` result.

    Accepts raw JSON (hex strings) or web3.py's decoded form (HexBytes, ints).
    Raises ``ValueError`` naming a missing or malformed field.
    """
    fields: list[Any] = []
    for name, kind in _RPC_HEADER_FIELDS:
        if name not in block:
            raise ValueError(f"block is missing header field {name!r}")
        value = block[name]
        fields.append(_field_int(value) if kind == "int" else _field_bytes(value))
    return fields


def _hash_with_extra(fields: Sequence[Any], extra_raw: bytes) -> bytes:
    out = list(fields)
    out[12] = extra_raw
    return keccak(rlp.encode(out))


def block_hash_from_header_fields(fields: Sequence[Any]) -> bytes:
    """QBFT block hash (32 bytes): keccak of the header with round 0 and no seals in extraData."""
    extra = decode_extra_data(fields[12])
    return _hash_with_extra(fields, encode_extra_data(extra, include_round=False))


def seal_hash_from_header_fields(fields: Sequence[Any], round_: int | None = None) -> bytes:
    """The 32-byte hash a commit seal signs: header with round (``round_`` or extraData's), no seals."""
    extra = decode_extra_data(fields[12])
    if round_ is not None:
        extra = ExtraData(extra.vanity, extra.validators, extra.vote, round_, ())
    return _hash_with_extra(fields, encode_extra_data(extra, include_seals=False))


def recover_seal_signer(seal_hash: bytes, seal: bytes) -> bytes:
    """Recover the 20-byte address that produced a 65-byte commit seal; raises ``ValueError``."""
    if len(seal) != SEAL_LENGTH:
        raise ValueError(f"commit seal must be {SEAL_LENGTH} bytes, got {len(seal)}")
    v = seal[64]
    if v >= 27:
        v -= 27
    try:
        sig = keys.Signature(vrs=(v, int.from_bytes(seal[:32], "big"), int.from_bytes(seal[32:64], "big")))
        return sig.recover_public_key_from_msg_hash(seal_hash).to_canonical_address()
    except (BadSignature, ValueError) as exc:
        raise ValueError(f"commit seal does not recover: {exc}") from exc


def block_hash_from_rpc_block(block: Mapping[str, Any]) -> bytes:
    """Recompute the QBFT block hash (32 bytes) from an ``eth_getBlockByNumber`` answer."""
    return block_hash_from_header_fields(header_fields_from_rpc_block(block))


def recover_seal_signers_from_rpc_block(block: Mapping[str, Any]) -> list[str]:
    """Checksum addresses of every commit seal in a block's extraData, in seal order.

    Raises ``ValueError`` when the block or a seal is malformed.
    """
    fields = header_fields_from_rpc_block(block)
    extra = decode_extra_data(fields[12])
    digest = seal_hash_from_header_fields(fields)
    return [to_checksum_address(recover_seal_signer(digest, seal)) for seal in extra.seals]
