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

Decoding is as lenient as Besu's ``QbftExtraDataCodec.decodeRaw`` and no more: items after the
fifth are ignored (``leaveListLenient``), a drop vote may be written ``0x`` (what Besu writes) or
``0x00`` (what Besu's ``readByte`` also reads), the round is a canonical RLP scalar of at most 4
bytes (``readIntScalar``); the vanity must be 32 bytes (Besu's ``BftVanityDataValidationRule``) and
every seal 65 bytes. Hashes always re-encode the decoded fields canonically, as Besu does, so an
ignored trailing item or a ``0x00`` drop vote does not change the block hash.

Besu's IBFT 2.0 (``Ibft2ExtraDataCodec``) differs only in extraData: the absent vote is the empty
string, the round is a fixed 4-byte string, and the hashed forms leave items out instead of writing
them empty (block hash over ``[vanity, validators, vote]``, commit seals over ``[vanity, validators,
vote, round]``). :func:`decode_extra_data` detects it (``ExtraData.consensus``) so that blocks of
either protocol hash and verify like Besu's.

Headers of any fork are read from JSON-RPC: the 15 pre-London fields, then whichever of
``baseFeePerGas`` (London), ``withdrawalsRoot`` (Shanghai), ``blobGasUsed``, ``excessBlobGas``,
``parentBeaconBlockRoot`` (Cancun) and ``requestsHash`` (Prague) are present, in that order; a
later field without the earlier ones is refused.

This module is used on both sides: validators build and seal headers with it, and verifiers
(the API, the offline bundle, ``traceledger verify-block``) recompute both hashes from an
``eth_getBlockByNumber`` answer.
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
#: Besu's ``DROP_BYTE_VALUE``: a drop vote read with ``readByte`` (Besu itself writes ``VOTE_DROP``).
VOTE_DROP_BYTE = b"\x00"
#: The largest round Besu's ``readIntScalar`` reads (a Java ``int``).
MAX_ROUND = 2**31 - 1
QBFT = "qbft"
IBFT2 = "ibft2"
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
    #: ``"qbft"`` or ``"ibft2"``: which of Besu's two BFT extraData layouts this was decoded from.
    consensus: str = QBFT


class InvalidExtraData(ValueError):
    """extraData is not ``RLP([vanity32, [addr20…], vote, round, [seal65…]])``."""


def encode_extra_data(extra: ExtraData, *, include_round: bool = True, include_seals: bool = True) -> bytes:
    """Encode ``extra`` as RLP bytes in its protocol's layout (``extra.consensus``).

    QBFT: ``include_round=False`` writes round 0 and no seals (the form hashed for the block hash);
    ``include_seals=False`` keeps the round and writes an empty seal list (the form commit seals sign).
    IBFT 2.0: the same two forms leave the items out (``[vanity, validators, vote]`` and ``[vanity,
    validators, vote, round]``). Raises :class:`InvalidExtraData` for a vanity that is not 32 bytes.
    """
    if len(extra.vanity) != VANITY_LENGTH:
        raise InvalidExtraData(f"vanity must be {VANITY_LENGTH} bytes, got {len(extra.vanity)}")
    seals = list(extra.seals) if (include_round and include_seals) else []
    if extra.consensus == IBFT2:
        vote_item: Any = b"" if extra.vote is None else [
            extra.vote.address, VOTE_ADD if extra.vote.add else VOTE_DROP_BYTE]
        items: list[Any] = [extra.vanity, list(extra.validators), vote_item]
        if include_round:
            items.append(extra.round.to_bytes(4, "big"))
            if include_seals:
                items.append(seals)
        return rlp.encode(items)
    vote: list[bytes] = [] if extra.vote is None else [
        extra.vote.address, VOTE_ADD if extra.vote.add else VOTE_DROP]
    round_ = extra.round if include_round else 0
    return rlp.encode([extra.vanity, list(extra.validators), vote, round_, seals])


def _decode_vote(vote: Any) -> Vote | None:
    if vote == [] or vote == b"":
        return None
    if not isinstance(vote, list) or len(vote) != 2:
        raise InvalidExtraData("extraData vote must be [] or [address, 0xFF|0x|0x00]")
    if not isinstance(vote[0], bytes) or len(vote[0]) != 20 or vote[1] not in (VOTE_ADD, VOTE_DROP, VOTE_DROP_BYTE):
        raise InvalidExtraData("extraData vote must be [address20, 0xFF] (add) or [address20, 0x|0x00] (drop)")
    return Vote(vote[0], vote[1] == VOTE_ADD)


def decode_extra_data(raw: bytes) -> ExtraData:
    """Decode QBFT (or Besu IBFT 2.0) extraData bytes; raises :class:`InvalidExtraData` naming what is wrong.

    Lenient exactly where Besu's decoder is (see the module docstring): trailing items after the
    seals are ignored, a drop vote may be ``0x`` or ``0x00``. The layout is IBFT 2.0 when the vote
    item is a byte string and the round a 4-byte string, QBFT otherwise.
    """
    try:
        items = rlp.decode(bytes(raw))
    except Exception as exc:  # rlp raises several unrelated types
        raise InvalidExtraData(f"extraData is not valid RLP: {exc}") from exc
    if not isinstance(items, list) or len(items) < 5:
        raise InvalidExtraData(
            "extraData must be an RLP list of 5 items [vanity, validators, vote, round, seals]")
    vanity, validators, vote, round_raw, seals = items[:5]
    if not isinstance(vanity, bytes) or len(vanity) != VANITY_LENGTH:
        raise InvalidExtraData("extraData vanity must be 32 bytes")
    if not isinstance(validators, list) or any(not isinstance(v, bytes) or len(v) != 20 for v in validators):
        raise InvalidExtraData("extraData validators must be a list of 20-byte addresses")
    consensus = IBFT2 if (isinstance(vote, bytes) and isinstance(round_raw, bytes) and len(round_raw) == 4) else QBFT
    if consensus == QBFT and isinstance(vote, bytes):
        raise InvalidExtraData("extraData vote must be [] or [address, 0xFF|0x|0x00]")
    decoded_vote = _decode_vote(vote)
    if consensus == QBFT and (not isinstance(round_raw, bytes) or round_raw[:1] == b"\x00" or len(round_raw) > 4):
        raise InvalidExtraData("extraData round must be an RLP scalar of at most 4 bytes")
    round_ = int.from_bytes(round_raw, "big")
    if round_ > MAX_ROUND:
        raise InvalidExtraData(f"extraData round {round_} exceeds {MAX_ROUND}")
    if not isinstance(seals, list) or any(not isinstance(s, bytes) or len(s) != SEAL_LENGTH for s in seals):
        raise InvalidExtraData("extraData commit seals must be a list of 65-byte signatures")
    return ExtraData(vanity, tuple(validators), decoded_vote, round_, tuple(seals), consensus)


#: The 15 header fields every fork has, in RLP order, with their JSON-RPC names and kinds.
BASE_HEADER_FIELDS: tuple[tuple[str, str], ...] = (
    ("parentHash", "hash"), ("sha3Uncles", "hash"), ("miner", "address"), ("stateRoot", "hash"),
    ("transactionsRoot", "hash"), ("receiptsRoot", "hash"), ("logsBloom", "bytes"),
    ("difficulty", "int"), ("number", "int"), ("gasLimit", "int"), ("gasUsed", "int"),
    ("timestamp", "int"), ("extraData", "bytes"), ("mixHash", "hash"), ("nonce", "bytes"),
)
#: Fields later forks append, in RLP order, with the fork that added them.
FORK_HEADER_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("baseFeePerGas", "int", "London"), ("withdrawalsRoot", "hash", "Shanghai"),
    ("blobGasUsed", "int", "Cancun"), ("excessBlobGas", "int", "Cancun"),
    ("parentBeaconBlockRoot", "hash", "Cancun"), ("requestsHash", "hash", "Prague"),
)
EXTRA_DATA_INDEX = 12


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
    """The RLP field list of a header of any fork from an ``eth_getBlockByNumber`` result.

    The 15 base fields are required; the fork fields present are appended in order (see
    :data:`FORK_HEADER_FIELDS`). Accepts raw JSON (hex strings) or web3.py's decoded form (HexBytes,
    ints). Raises ``ValueError`` naming a missing or malformed field, or a fork field that is present
    while an earlier one is missing.
    """
    fields: list[Any] = []
    for name, kind in BASE_HEADER_FIELDS:
        if name not in block or block[name] is None:
            raise ValueError(f"block is missing header field {name!r}")
        fields.append(_read_field(name, kind, block[name]))
    present = [(name, kind, fork) for name, kind, fork in FORK_HEADER_FIELDS if block.get(name) is not None]
    expected = FORK_HEADER_FIELDS[: len(present)]
    if [p[0] for p in present] != [e[0] for e in expected]:
        missing = next(e for e, p in zip(expected, present, strict=True) if e[0] != p[0])
        raise ValueError(
            f"block is missing header field {missing[0]!r} ({missing[2]}) although later fields are present")
    for name, kind, _fork in present:
        fields.append(_read_field(name, kind, block[name]))
    return fields


def header_fork(block: Mapping[str, Any]) -> str:
    """The newest fork whose header fields ``block`` carries: ``"pre-London"``, ``"London"`` … ``"Prague"``."""
    fork = "pre-London"
    for name, _kind, added_in in FORK_HEADER_FIELDS:
        if block.get(name) is not None:
            fork = added_in
    return fork


def _read_field(name: str, kind: str, value: Any) -> Any:
    try:
        return _field_int(value) if kind == "int" else _field_bytes(value)
    except ValueError as exc:
        raise ValueError(f"header field {name!r}: {exc}") from exc


def _hash_with_extra(fields: Sequence[Any], extra_raw: bytes) -> bytes:
    out = list(fields)
    out[EXTRA_DATA_INDEX] = extra_raw
    return keccak(rlp.encode(out))


def block_hash_from_header_fields(fields: Sequence[Any]) -> bytes:
    """QBFT block hash (32 bytes): keccak of the header with round 0 and no seals in extraData."""
    extra = decode_extra_data(fields[EXTRA_DATA_INDEX])
    return _hash_with_extra(fields, encode_extra_data(extra, include_round=False))


def seal_hash_from_header_fields(fields: Sequence[Any], round_: int | None = None) -> bytes:
    """The 32-byte hash a commit seal signs: header with round (``round_`` or extraData's), no seals."""
    extra = decode_extra_data(fields[EXTRA_DATA_INDEX])
    if round_ is not None:
        extra = ExtraData(extra.vanity, extra.validators, extra.vote, round_, (), extra.consensus)
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
    extra = decode_extra_data(fields[EXTRA_DATA_INDEX])
    digest = seal_hash_from_header_fields(fields)
    return [to_checksum_address(recover_seal_signer(digest, seal)) for seal in extra.seals]


def validators_from_genesis(genesis: Mapping[str, Any]) -> list[str]:
    """Trusted validator addresses (checksum) from a genesis document.

    Accepts a Besu genesis (``extraData`` holding QBFT or IBFT 2.0 extraData, possibly under a
    top-level ``genesis`` key as in Besu's ``generate-blockchain-config`` input), TraceLedger's
    ``network.json`` / genesis (``validators``: addresses or ``{address}`` objects). Raises
    ``ValueError`` when none of these is present or an address is malformed.
    """
    doc: Mapping[str, Any] = genesis
    if isinstance(doc.get("genesis"), Mapping):
        doc = doc["genesis"]
    if isinstance(doc.get("validators"), list) and doc["validators"]:
        raw = [v["address"] if isinstance(v, Mapping) else v for v in doc["validators"]]
        return [to_checksum_address(a if str(a).startswith("0x") else "0x" + str(a)) for a in raw]
    if isinstance(doc.get("extraData"), str):
        extra = decode_extra_data(_field_bytes(doc["extraData"]))
        if not extra.validators:
            raise ValueError("genesis extraData names no validators")
        return [to_checksum_address(v) for v in extra.validators]
    raise ValueError("genesis has neither a 'validators' list nor QBFT 'extraData'")


@dataclass(frozen=True)
class SealCheck:
    """One commit seal of a block: who signed it (checksum address, ``None`` if unrecoverable) and the verdict."""

    index: int
    signer: str | None
    verdict: str  # "validator", "not a validator", "duplicate", "unrecoverable"


@dataclass(frozen=True)
class SealedBlockVerdict:
    """What :func:`verify_sealed_block` proved about one block; ``ok`` only when ``problems`` is empty."""

    number: int
    fork: str
    consensus: str
    round: int
    block_hash: str
    served_hash: str | None
    seal_hash: str
    quorum: int
    validators: tuple[str, ...]
    extra_validators: tuple[str, ...]
    seals: tuple[SealCheck, ...]
    problems: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def sealed_by(self) -> tuple[str, ...]:
        """Distinct validators whose seals verified, in seal order."""
        return tuple(s.signer for s in self.seals if s.verdict == "validator" and s.signer)


def verify_sealed_block(block: Mapping[str, Any], validators: Sequence[str]) -> SealedBlockVerdict:
    """Check one ``eth_getBlockByNumber`` answer against the trusted validator set of its height.

    Recomputes the block hash (compared with the served ``hash`` when present) and the commit-seal
    hash, recovers every seal, and requires ``quorum(len(validators))`` distinct signers from
    ``validators`` (Besu's ``BftCommitSealsValidationRule``). A difference between the trusted set
    and the set the block's extraData names is reported in ``notes`` (the extraData set is the
    block's own claim, never trusted). Raises ``ValueError`` only for a block that cannot be read
    (missing or malformed header fields, undecodable extraData).
    """
    fields = header_fields_from_rpc_block(block)
    extra = decode_extra_data(fields[EXTRA_DATA_INDEX])
    trusted = tuple(to_checksum_address(v) for v in validators)
    if not trusted:
        raise ValueError("no trusted validators given")
    computed = block_hash_from_header_fields(fields)
    digest = seal_hash_from_header_fields(fields)
    served = block.get("hash")
    served_hex = None if served is None else "0x" + _field_bytes(served).hex()
    problems: list[str] = []
    notes: list[str] = []
    if served_hex is not None and served_hex != "0x" + computed.hex():
        problems.append(f"block hash: served {served_hex}, recomputed 0x{computed.hex()}")
    seen: set[str] = set()
    checks: list[SealCheck] = []
    trusted_set = set(trusted)
    for i, seal in enumerate(extra.seals):
        try:
            signer = to_checksum_address(recover_seal_signer(digest, seal))
        except ValueError:
            checks.append(SealCheck(i, None, "unrecoverable"))
            continue
        if signer not in trusted_set:
            verdict = "not a validator"
        elif signer in seen:
            verdict = "duplicate"
        else:
            verdict = "validator"
            seen.add(signer)
        checks.append(SealCheck(i, signer, verdict))
    need = quorum(len(trusted))
    if len(seen) < need:
        problems.append(f"commit seals: {len(seen)} distinct validators sealed, quorum of {len(trusted)} is {need}")
    for c in checks:
        if c.verdict != "validator":
            problems.append(f"seal {c.index}: {c.verdict}" + (f" ({c.signer})" if c.signer else ""))
    extra_set = tuple(to_checksum_address(v) for v in extra.validators)
    if set(extra_set) != trusted_set:
        notes.append("the block's extraData names a different validator set than the trusted one "
                     f"({len(extra_set)} vs {len(trusted)} validators)")
    return SealedBlockVerdict(
        number=fields[8], fork=header_fork(block), consensus=extra.consensus, round=extra.round,
        block_hash="0x" + computed.hex(), served_hash=served_hex, seal_hash="0x" + digest.hex(), quorum=need,
        validators=trusted, extra_validators=extra_set, seals=tuple(checks), problems=tuple(problems),
        notes=tuple(notes))


def faulty_tolerance(n: int) -> int:
    """``f = (n - 1) // 3``: how many of ``n`` validators may be Byzantine while QBFT stays safe."""
    if n < 1:
        raise ValueError(f"validator count must be >= 1, got {n}")
    return (n - 1) // 3


class UntrustedValidatorChange(ValueError):
    """A block offered as a validator-set change is not vouched for by the trusted set."""


def advance_trusted_validators(trusted: Sequence[str], block: Mapping[str, Any]) -> tuple[str, ...]:
    """Move trust from ``trusted`` (the validator set of some earlier height) to the set ``block`` lists.

    Besu's rule makes every block's extraData list the validators that seal it, so a later block
    proves its own set once we know that enough of the *trusted* set stands behind it (the skipping
    verification of BFT light clients, with trust level 1/3):

    * its hash recomputes and its commit seals recover to at least ``quorum(|S'|)`` distinct members of
      its own list ``S'`` (the block is final under ``S'``), and
    * at least ``f(|S|) + 1`` distinct members of the trusted set ``S`` sealed it, so at least one
      honest validator of ``S`` — which seals only canonical blocks — vouches for it.

    Sound as long as the trusted set kept more than two thirds honest validators up to that block
    (QBFT's own assumption). Returns ``S'`` (checksum addresses, sorted); raises
    :class:`UntrustedValidatorChange` naming the shortfall, ``ValueError`` for an unreadable block.
    """
    fields = header_fields_from_rpc_block(block)
    extra = decode_extra_data(fields[EXTRA_DATA_INDEX])
    listed = tuple(sorted(to_checksum_address(v) for v in extra.validators))
    if not listed:
        raise UntrustedValidatorChange(f"block {fields[8]} lists no validators")
    served = block.get("hash")
    computed = block_hash_from_header_fields(fields)
    if served is not None and _field_bytes(served) != computed:
        raise UntrustedValidatorChange(f"block {fields[8]}: hash does not recompute")
    digest = seal_hash_from_header_fields(fields)
    signers: set[str] = set()
    for seal in extra.seals:
        try:
            signers.add(to_checksum_address(recover_seal_signer(digest, seal)))
        except ValueError as exc:
            raise UntrustedValidatorChange(f"block {fields[8]}: a commit seal does not recover") from exc
    own = signers & set(listed)
    if len(own) < quorum(len(listed)):
        raise UntrustedValidatorChange(
            f"block {fields[8]}: {len(own)} of its {len(listed)} listed validators sealed it, quorum is "
            f"{quorum(len(listed))}")
    trusted_set = {to_checksum_address(v) for v in trusted}
    vouching = signers & trusted_set
    need = faulty_tolerance(len(trusted_set)) + 1
    if len(vouching) < need:
        raise UntrustedValidatorChange(
            f"block {fields[8]}: {len(vouching)} validators of the trusted set sealed it, {need} needed "
            "(more than a third) to trust its new validator list")
    return listed
