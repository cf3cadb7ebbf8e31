"""Real blocks sealed by Besu-family networks, verified by our codec and ``traceledger verify-block``.

The vectors (see ``besu_blocks/README.md``) were published by others; if our header codec, extraData
decoding or seal hashing differed from Besu's in any byte, the recomputed hash would not match the
served one and the commit seals would recover to strangers instead of the listed validators.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rlp
from eth_utils import to_checksum_address
from typer.testing import CliRunner

from provenance.qbft_header import (
    BASE_HEADER_FIELDS,
    IBFT2,
    QBFT,
    ExtraData,
    decode_extra_data,
    encode_extra_data,
    seal_hash_from_header_fields,
    validators_from_genesis,
    verify_sealed_block,
)

HERE = Path(__file__).parent / "besu_blocks"
IBFT2_BLOCK = HERE / "besu-ibft2-block-1.json"
KALEIDO_BLOCK = HERE / "kaleido-qbft-london-block-58866.json"
QBFT_7528 = HERE / "qbft-block-7528.rlp.hex"
IBFT2_VALIDATORS = ["0x27a97c9aaf04f18f3014c32e036dd0ac76da5f18", "0x93917cadbace5dfce132b991732c6cda9bcc5b8a",
                    "0x98c1334496614aed49d2e81526d089f7264fed9c", "0xce412f988377e31f4d0ff12d74df73b51c42d0ca"]
KALEIDO_VALIDATORS = ["0xef5880ec6b859b6949d88ddbd6ec18e96d0f14aa"]
QBFT_7528_VALIDATORS = ["0x647bfdd19655e51e69d35454ff3a92f8828e6302", "0xa5c8416b9d13417b45b45ada76408f39d1e504ef",
                        "0xb92e91f4dcc9d28503be521afa2a8fbf3c1acf60", "0xee3353e587cfa91625a1adaef308a726de3803d3"]
#: The commit-seal hash of block 7528 as its publishers computed it.
QBFT_7528_SEAL_HASH = "0x75ea184f58cd3f0ef89032a069df01f07ec524ef3a85cf6d3e424d62130c0a32"
_INTS = {"difficulty", "number", "gasLimit", "gasUsed", "timestamp"}


def _load(path: Path) -> dict:
    data = json.loads(path.read_text())
    return data.get("result", data)


def _block_from_rlp(path: Path) -> dict:
    """An eth_getBlockByNumber-shaped dict (no served hash) from a pre-London header's RLP."""
    fields = rlp.decode(bytes.fromhex(path.read_text().strip()))
    assert len(fields) == len(BASE_HEADER_FIELDS)
    out = {}
    for (name, _kind), value in zip(BASE_HEADER_FIELDS, fields, strict=True):
        out[name] = hex(int.from_bytes(value, "big")) if name in _INTS else "0x" + value.hex()
    return out


def test_besu_ibft2_pre_london_round_1_block_verifies():
    verdict = verify_sealed_block(_load(IBFT2_BLOCK), IBFT2_VALIDATORS)
    assert verdict.ok, verdict.problems
    assert (verdict.fork, verdict.consensus, verdict.round) == ("pre-London", IBFT2, 1)
    assert verdict.block_hash == verdict.served_hash == _load(IBFT2_BLOCK)["hash"]
    assert len(verdict.sealed_by) == 3 and set(verdict.sealed_by) < {to_checksum_address(v) for v in IBFT2_VALIDATORS}


def test_kaleido_qbft_london_block_verifies():
    verdict = verify_sealed_block(_load(KALEIDO_BLOCK), KALEIDO_VALIDATORS)
    assert verdict.ok, verdict.problems
    assert (verdict.fork, verdict.consensus, verdict.round) == ("London", QBFT, 0)
    assert verdict.block_hash == _load(KALEIDO_BLOCK)["hash"]
    assert verdict.sealed_by == (to_checksum_address(KALEIDO_VALIDATORS[0]),)


def test_besu_qbft_round_1_block_seal_hash_matches_the_published_one():
    block = _block_from_rlp(QBFT_7528)
    verdict = verify_sealed_block(block, QBFT_7528_VALIDATORS)
    assert verdict.ok, verdict.problems
    assert verdict.seal_hash == QBFT_7528_SEAL_HASH
    assert (verdict.number, verdict.consensus, verdict.round) == (7528, QBFT, 1)
    assert len(verdict.sealed_by) == 3


@pytest.mark.parametrize("field", ["gasUsed", "timestamp", "stateRoot", "miner"])
def test_a_changed_header_field_breaks_hash_and_seals(field):
    block = _load(IBFT2_BLOCK)
    value = block[field]
    block[field] = hex(int(value, 16) + 1) if field in _INTS else value[:-1] + ("0" if value[-1] != "0" else "1")
    verdict = verify_sealed_block(block, IBFT2_VALIDATORS)
    assert not verdict.ok
    assert any("block hash" in p for p in verdict.problems)
    assert verdict.sealed_by == ()  # the seals signed the original header: they recover to strangers


def test_claiming_another_round_invalidates_the_seals():
    block = _block_from_rlp(QBFT_7528)
    extra = decode_extra_data(bytes.fromhex(block["extraData"][2:]))
    forged = ExtraData(extra.vanity, extra.validators, extra.vote, 0, extra.seals, extra.consensus)
    block["extraData"] = "0x" + encode_extra_data(forged).hex()
    verdict = verify_sealed_block(block, QBFT_7528_VALIDATORS)
    assert not verdict.ok and verdict.sealed_by == ()


def test_a_duplicated_seal_is_counted_once():
    block = _block_from_rlp(QBFT_7528)
    extra = decode_extra_data(bytes.fromhex(block["extraData"][2:]))
    doubled = ExtraData(extra.vanity, extra.validators, extra.vote, extra.round, (extra.seals[0],) * 3, extra.consensus)
    block["extraData"] = "0x" + encode_extra_data(doubled).hex()
    verdict = verify_sealed_block(block, QBFT_7528_VALIDATORS)
    assert not verdict.ok
    assert [s.verdict for s in verdict.seals] == ["validator", "duplicate", "duplicate"]
    assert any("quorum" in p for p in verdict.problems)


def test_the_blocks_own_validator_list_is_not_trusted():
    """A block sealed by keys it names itself proves nothing: seals count only against the trusted set."""
    strangers = ["0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20, "0x" + "44" * 20]
    verdict = verify_sealed_block(_load(IBFT2_BLOCK), strangers)
    assert not verdict.ok
    assert [s.verdict for s in verdict.seals] == ["not a validator"] * 3
    assert verdict.notes  # the extraData set differs from the trusted set


def test_seal_hash_differs_between_ibft2_and_qbft_layouts():
    block = _load(IBFT2_BLOCK)
    from provenance.qbft_header import header_fields_from_rpc_block

    fields = header_fields_from_rpc_block(block)
    extra = decode_extra_data(fields[12])
    as_qbft = list(fields)
    as_qbft[12] = encode_extra_data(ExtraData(extra.vanity, extra.validators, extra.vote, extra.round, extra.seals))
    assert seal_hash_from_header_fields(as_qbft) != seal_hash_from_header_fields(fields)


def test_validators_from_besu_genesis_and_network_json():
    besu_genesis = {"config": {"chainId": 1337, "qbft": {"blockperiodseconds": 1}},
                    "extraData": "0x" + encode_extra_data(ExtraData(validators=tuple(
                        bytes.fromhex(v[2:]) for v in QBFT_7528_VALIDATORS))).hex()}
    assert validators_from_genesis(besu_genesis) == [to_checksum_address(v) for v in QBFT_7528_VALIDATORS]
    network = {"validators": [{"address": v} for v in IBFT2_VALIDATORS]}
    assert validators_from_genesis(network) == [to_checksum_address(v) for v in IBFT2_VALIDATORS]
    with pytest.raises(ValueError, match="validators"):
        validators_from_genesis({"config": {}})


# ------------------------------------------------------------------ traceledger verify-block
def _cli(*args: str, stdin: str | None = None):
    from api.cli.main import app

    return CliRunner().invoke(app, ["verify-block", *args], input=stdin, terminal_width=200)


def test_cli_verifies_a_real_besu_block():
    result = _cli(str(IBFT2_BLOCK), "--validators", ",".join(IBFT2_VALIDATORS))
    assert result.exit_code == 0, result.output
    assert "VERIFIED" in result.output and "consensus ibft2" in result.output and "round 1" in result.output


def test_cli_reads_stdin_and_a_genesis(tmp_path):
    genesis = tmp_path / "genesis.json"
    genesis.write_text(json.dumps({"validators": KALEIDO_VALIDATORS}))
    result = _cli("-", "--genesis", str(genesis), stdin=KALEIDO_BLOCK.read_text())
    assert result.exit_code == 0, result.output
    assert "matches the served hash" in result.output


def test_cli_exit_1_names_the_failure(tmp_path):
    block = _load(KALEIDO_BLOCK)
    block["gasUsed"] = "0x1"
    path = tmp_path / "b.json"
    path.write_text(json.dumps(block))
    result = _cli(str(path), "--validators", KALEIDO_VALIDATORS[0])
    assert result.exit_code == 1
    assert "FAILED block hash" in result.output and "not a validator" in result.output


def test_cli_exit_2_on_unreadable_input(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"number": "0x1"}))
    assert _cli(str(path), "--validators", KALEIDO_VALIDATORS[0]).exit_code == 2
    assert _cli(str(KALEIDO_BLOCK)).exit_code == 2  # neither --validators nor --genesis
    assert _cli(str(KALEIDO_BLOCK), "--validators", "0x12").exit_code == 2


def test_besu_codec_known_raw_encoding():
    """The raw encoding in Besu's QbftExtraDataCodecTest (vanity 0x01…0x20, validators 0x…01 and
    0x…02, an add vote for 0x…01, round 0xFEDCBA, seals (r=1, s=10, v=0) and (r=10, s=1, v=0))."""
    raw = bytes.fromhex(
        "f8f0a00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20ea940000000000000000"
        "000000000000000000000001940000000000000000000000000000000000000002d7940000000000000000"
        "00000000000000000000000181ff83fedcbaf886b841000000000000000000000000000000000000000000"
        "0000000000000000000001000000000000000000000000000000000000000000000000000000000000000a"
        "00b841000000000000000000000000000000000000000000000000000000000000000a0000000000000000"
        "00000000000000000000000000000000000000000000000100")
    addr1, addr2 = (1).to_bytes(20, "big"), (2).to_bytes(20, "big")

    def seal(r: int, s: int) -> bytes:
        return r.to_bytes(32, "big") + s.to_bytes(32, "big") + b"\x00"

    extra = decode_extra_data(raw)
    from provenance.qbft_header import Vote

    assert extra == ExtraData(bytes(range(1, 33)), (addr1, addr2), Vote(addr1, True), 0xFEDCBA,
                              (seal(1, 10), seal(10, 1)))
    assert encode_extra_data(extra) == raw
