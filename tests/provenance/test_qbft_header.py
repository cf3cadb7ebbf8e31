"""QBFT extraData encoding, the two header hashes, seal recovery and reading eth_getBlockByNumber answers."""

from __future__ import annotations

import pytest
import rlp
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes

from provenance.qbft_header import (
    BFT_MIX_HASH,
    ExtraData,
    InvalidExtraData,
    Vote,
    block_hash_from_header_fields,
    block_hash_from_rpc_block,
    decode_extra_data,
    encode_extra_data,
    header_fields_from_rpc_block,
    quorum,
    recover_seal_signer,
    recover_seal_signers_from_rpc_block,
    seal_hash_from_header_fields,
)
from tests.ledger.helpers import SORTED_KEYS, VALIDATORS, seal

VANITY = bytes(range(32))
DIGEST = keccak(b"some header")
SEALS = tuple(seal(k, DIGEST) for k in SORTED_KEYS[:3])


def header_fields(extra: ExtraData) -> list:
    """A Shanghai header field list (17 items) with ``extra`` encoded in position 12."""
    return [
        b"\x01" * 32, b"\x02" * 32, VALIDATORS[0], b"\x03" * 32, b"\x04" * 32, b"\x05" * 32, b"\x00" * 256,
        0, 7, 30_000_000, 21_000, 1_700_000_123, encode_extra_data(extra), BFT_MIX_HASH, b"\x00" * 8,
        1_000_000_000, b"\x06" * 32,
    ]


def rpc_json(fields: list) -> dict:
    """An eth_getBlockByNumber-style JSON object (hex strings) of a header field list."""
    names = ["parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot", "logsBloom",
             "difficulty", "number", "gasLimit", "gasUsed", "timestamp", "extraData", "mixHash", "nonce",
             "baseFeePerGas", "withdrawalsRoot"]
    out = {}
    for name, value in zip(names, fields, strict=True):
        if isinstance(value, int):
            out[name] = hex(value)
        elif name == "miner":
            out[name] = to_checksum_address(value)
        else:
            out[name] = "0x" + value.hex()
    out["hash"] = "0x" + block_hash_from_header_fields(fields).hex()
    out["totalDifficulty"] = "0x0"
    return out


# ------------------------------------------------------------------ encode / decode
@pytest.mark.parametrize("vote", [None, Vote(b"\xaa" * 20, True), Vote(b"\xbb" * 20, False)])
@pytest.mark.parametrize("round_", [0, 1, 300])
def test_encode_decode_round_trip(vote, round_):
    extra = ExtraData(VANITY, VALIDATORS, vote, round_, SEALS)
    assert decode_extra_data(encode_extra_data(extra)) == extra


def test_vote_wire_form():
    add = rlp.decode(encode_extra_data(ExtraData(validators=VALIDATORS, vote=Vote(b"\xaa" * 20, True))))
    drop = rlp.decode(encode_extra_data(ExtraData(validators=VALIDATORS, vote=Vote(b"\xaa" * 20, False))))
    none = rlp.decode(encode_extra_data(ExtraData(validators=VALIDATORS)))
    assert add[2] == [b"\xaa" * 20, b"\xff"]
    assert drop[2] == [b"\xaa" * 20, b""]
    assert none[2] == []


def test_encode_without_round_or_seals():
    extra = ExtraData(VANITY, VALIDATORS, None, 5, SEALS)
    no_round = decode_extra_data(encode_extra_data(extra, include_round=False))
    assert (no_round.round, no_round.seals) == (0, ())
    no_seals = decode_extra_data(encode_extra_data(extra, include_seals=False))
    assert (no_seals.round, no_seals.seals) == (5, ())
    assert no_seals.validators == VALIDATORS and no_seals.vanity == VANITY


def test_encode_rejects_bad_vanity():
    with pytest.raises(InvalidExtraData, match="vanity"):
        encode_extra_data(ExtraData(vanity=b"\x00" * 31))


GOOD = [VANITY, list(VALIDATORS), [], 1, list(SEALS)]


def _with(index: int, value) -> bytes:
    items = list(GOOD)
    items[index] = value
    return rlp.encode(items)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"\xf8", "not valid RLP"),
        (b"\xc3\x80\x80", "not valid RLP"),  # truncated list (3 bytes claimed, 2 present)
        (rlp.encode(GOOD) + b"\x00", "not valid RLP"),  # trailing bytes
        (b"\x81\x05", "not valid RLP"),  # non-canonical single byte
        (rlp.encode(b"just bytes"), "5 items"),
        (rlp.encode(GOOD[:4]), "5 items"),
        (_with(0, b"\x00" * 31), "vanity"),
        (_with(0, [b"\x00" * 32]), "vanity"),
        (_with(1, [VALIDATORS[0], b"\x01" * 19]), "validators"),
        (_with(1, b"\x01" * 20), "validators"),
        (_with(2, [VALIDATORS[0], b"\x01"]), "vote"),
        (_with(2, [VALIDATORS[0]]), "vote"),
        (_with(2, [b"\x01" * 19, b"\xff"]), "vote"),
        (_with(3, b"\x00\x01"), "round"),
        (_with(3, b"\x00"), "round"),
        (_with(3, []), "round"),
        (_with(4, [SEALS[0], SEALS[1][:64]]), "seals"),
        (_with(4, SEALS[0]), "seals"),
    ],
    ids=[
        "truncated", "truncated-list", "trailing-bytes", "non-canonical", "not-a-list", "4-items",
        "31-byte-vanity", "list-vanity", "19-byte-validator", "validators-not-list", "bad-vote-flag",
        "vote-1-item", "vote-19-byte-address", "leading-zero-round", "zero-byte-round", "list-round",
        "64-byte-seal", "seals-not-list",
    ],
)
def test_decode_rejects(raw, needle):
    with pytest.raises(InvalidExtraData, match=needle):
        decode_extra_data(raw)


def test_decode_accepts_reference_form():
    extra = decode_extra_data(rlp.encode(GOOD))
    assert extra == ExtraData(VANITY, VALIDATORS, None, 1, SEALS)


def test_decode_ignores_trailing_items_like_besu():
    """Besu's decodeRaw ends with leaveListLenient: items after the seals are ignored, and the
    canonical re-encoding (what the hashes use) drops them."""
    extra = decode_extra_data(rlp.encode(GOOD + [b"", [b"x"]]))
    assert extra == ExtraData(VANITY, VALIDATORS, None, 1, SEALS)
    assert encode_extra_data(extra) == rlp.encode(GOOD)


def test_decode_reads_drop_vote_written_as_zero_byte():
    """Besu writes a drop vote as 0x (writeNull) but reads 0x00 too (readByte → DROP_BYTE_VALUE)."""
    for flag in (b"", b"\x00"):
        extra = decode_extra_data(_with(2, [VALIDATORS[0], flag]))
        assert extra.vote == Vote(VALIDATORS[0], False)
        # hashed forms always write Besu's own encoding of the vote
        assert rlp.decode(encode_extra_data(extra))[2] == [VALIDATORS[0], b""]


def test_decode_rejects_round_wider_than_besu_int():
    with pytest.raises(InvalidExtraData, match="round"):
        decode_extra_data(_with(3, 2**32))


def test_quorum():
    assert [quorum(n) for n in range(1, 11)] == [1, 2, 2, 3, 4, 4, 5, 6, 6, 7]
    with pytest.raises(ValueError):
        quorum(0)


# ------------------------------------------------------------------ hashes
def test_block_hash_ignores_round_and_seals():
    plain = header_fields(ExtraData(VANITY, VALIDATORS))
    sealed = header_fields(ExtraData(VANITY, VALIDATORS, None, 4, SEALS))
    other_seals = header_fields(ExtraData(VANITY, VALIDATORS, None, 9, SEALS[:1]))
    expected = keccak(rlp.encode(plain))
    assert block_hash_from_header_fields(plain) == expected
    assert block_hash_from_header_fields(sealed) == expected
    assert block_hash_from_header_fields(other_seals) == expected


def test_block_hash_changes_with_validators_vanity_vote_and_header():
    base = block_hash_from_header_fields(header_fields(ExtraData(VANITY, VALIDATORS)))
    assert block_hash_from_header_fields(header_fields(ExtraData(VANITY, VALIDATORS[:3]))) != base
    assert block_hash_from_header_fields(header_fields(ExtraData(b"\x09" * 32, VALIDATORS))) != base
    assert block_hash_from_header_fields(
        header_fields(ExtraData(VANITY, VALIDATORS, Vote(b"\xaa" * 20, True)))) != base
    fields = header_fields(ExtraData(VANITY, VALIDATORS))
    fields[3] = b"\x33" * 32  # state root
    assert block_hash_from_header_fields(fields) != base


def test_seal_hash_depends_on_round_not_seals():
    r1 = header_fields(ExtraData(VANITY, VALIDATORS, None, 1))
    r1_sealed = header_fields(ExtraData(VANITY, VALIDATORS, None, 1, SEALS))
    r2 = header_fields(ExtraData(VANITY, VALIDATORS, None, 2))
    h1 = seal_hash_from_header_fields(r1)
    assert h1 == seal_hash_from_header_fields(r1_sealed)
    assert h1 != seal_hash_from_header_fields(r2)
    # an explicit round overrides the one in extraData
    assert seal_hash_from_header_fields(r2, round_=1) == h1
    # round 0 with no seals: seal hash equals block hash
    r0 = header_fields(ExtraData(VANITY, VALIDATORS))
    assert seal_hash_from_header_fields(r0) == block_hash_from_header_fields(r0)
    assert h1 != block_hash_from_header_fields(r1)


# ------------------------------------------------------------------ seals
@pytest.mark.parametrize("v_offset", [0, 27])
def test_recover_seal_signer_round_trip(v_offset):
    for key in SORTED_KEYS:
        sig = bytearray(seal(key, DIGEST))
        sig[64] += v_offset
        assert recover_seal_signer(DIGEST, bytes(sig)) == key.public_key.to_canonical_address()


def test_recover_seal_signer_other_digest_gives_other_address():
    assert recover_seal_signer(keccak(b"other"), SEALS[0]) != VALIDATORS[0]
    assert recover_seal_signer(keccak(b"other"), SEALS[0]) not in VALIDATORS


@pytest.mark.parametrize("bad", [b"", SEALS[0][:64], SEALS[0] + b"\x00"])
def test_recover_seal_signer_wrong_length(bad):
    with pytest.raises(ValueError, match="65 bytes"):
        recover_seal_signer(DIGEST, bad)


@pytest.mark.parametrize("bad", [b"\x00" * 65, b"\x11" * 64 + b"\x05", b"\xff" * 64 + b"\x00"])
def test_recover_seal_signer_garbage_is_value_error(bad):
    with pytest.raises(ValueError):
        recover_seal_signer(DIGEST, bad)


# ------------------------------------------------------------------ eth_getBlockByNumber answers
def _sealed_block_json(round_: int = 2) -> tuple[dict, list]:
    unsealed = header_fields(ExtraData(VANITY, VALIDATORS, None, round_))
    digest = seal_hash_from_header_fields(unsealed)
    seals = tuple(seal(k, digest) for k in SORTED_KEYS[1:])
    fields = header_fields(ExtraData(VANITY, VALIDATORS, None, round_, seals))
    return rpc_json(fields), fields


def test_header_fields_from_hex_json():
    block, fields = _sealed_block_json()
    assert header_fields_from_rpc_block(block) == fields
    assert block_hash_from_rpc_block(block) == keccak(rlp.encode(header_fields(ExtraData(VANITY, VALIDATORS))))
    assert recover_seal_signers_from_rpc_block(block) == [
        to_checksum_address(k.public_key.to_canonical_address()) for k in SORTED_KEYS[1:]]


def test_header_fields_from_web3_style():
    block, fields = _sealed_block_json()
    web3_block = {}
    for name, value in block.items():
        if name == "miner":
            web3_block[name] = value
        elif name in ("difficulty", "number", "gasLimit", "gasUsed", "timestamp", "baseFeePerGas"):
            web3_block[name] = int(value, 16)
        else:
            web3_block[name] = HexBytes(value)
    assert header_fields_from_rpc_block(web3_block) == fields
    assert block_hash_from_rpc_block(web3_block) == block_hash_from_rpc_block(block)
    assert recover_seal_signers_from_rpc_block(web3_block) == recover_seal_signers_from_rpc_block(block)


@pytest.mark.parametrize("missing", ["mixHash", "nonce", "extraData", "number"])
def test_header_fields_names_missing_field(missing):
    block, _ = _sealed_block_json()
    del block[missing]
    with pytest.raises(ValueError, match=missing):
        header_fields_from_rpc_block(block)


def test_header_fields_of_a_london_block_without_withdrawals():
    block, fields = _sealed_block_json()
    del block["withdrawalsRoot"]
    assert header_fields_from_rpc_block(block) == fields[:-1]


def test_header_fields_refuse_a_gap_between_fork_fields():
    block, _ = _sealed_block_json()
    del block["withdrawalsRoot"]
    block["blobGasUsed"] = "0x0"
    with pytest.raises(ValueError, match="withdrawalsRoot"):
        header_fields_from_rpc_block(block)


def test_header_fields_of_cancun_and_prague_blocks_are_hashed_whole():
    block, fields = _sealed_block_json()
    cancun = dict(block, blobGasUsed="0x20000", excessBlobGas="0x0", parentBeaconBlockRoot="0x" + "11" * 32)
    prague = dict(cancun, requestsHash="0x" + "22" * 32)
    assert header_fields_from_rpc_block(cancun) == fields + [0x20000, 0, b"\x11" * 32]
    assert header_fields_from_rpc_block(prague)[-1] == b"\x22" * 32
    assert len({block_hash_from_rpc_block(b) for b in (block, cancun, prague)}) == 3


def test_header_fields_rejects_malformed_value():
    block, _ = _sealed_block_json()
    block["gasUsed"] = 1.5
    with pytest.raises(ValueError):
        header_fields_from_rpc_block(block)


def test_recover_signers_tampered_extra_fails_or_changes():
    block, fields = _sealed_block_json(round_=2)
    # claim round 3 while the seals signed round 2: the recovered signers are no longer the validators
    extra = decode_extra_data(fields[12])
    block["extraData"] = "0x" + encode_extra_data(
        ExtraData(extra.vanity, extra.validators, None, 3, extra.seals)).hex()
    signers = recover_seal_signers_from_rpc_block(block)
    assert len(signers) == 3
    assert not set(signers) & {to_checksum_address(v) for v in VALIDATORS}
