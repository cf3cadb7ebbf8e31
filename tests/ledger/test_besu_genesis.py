"""`traceledger network export-genesis`: our genesis as a Besu QBFT genesis file."""

from __future__ import annotations

import json

import pytest
from eth_utils import to_checksum_address
from typer.testing import CliRunner

from ledger.besu_genesis import besu_genesis
from ledger.chain import GenesisConfig
from ledger.network import init_network
from provenance.qbft_header import BFT_MIX_HASH, decode_extra_data, validators_from_genesis


def _genesis() -> GenesisConfig:
    return GenesisConfig(chain_id=1337, validators=(b"\x02" * 20, b"\x01" * 20), alloc={b"\x03" * 20: 10**21},
                         timestamp=1_700_000_000, epoch_length=100)


def test_besu_genesis_fields():
    doc = besu_genesis(_genesis(), block_period_s=1.0, request_timeout_s=2.0)
    assert doc["config"]["chainId"] == 1337
    assert doc["config"]["qbft"] == {"blockperiodseconds": 1, "epochlength": 100, "requesttimeoutseconds": 2}
    assert doc["config"]["londonBlock"] == 0 and doc["config"]["shanghaiTime"] == 0
    assert doc["difficulty"] == "0x1" and doc["mixHash"] == "0x" + BFT_MIX_HASH.hex()
    extra = decode_extra_data(bytes.fromhex(doc["extraData"][2:]))
    assert extra.validators == (b"\x01" * 20, b"\x02" * 20) and extra.round == 0 and not extra.seals
    assert extra.vote is None and extra.consensus == "qbft"
    assert doc["alloc"] == {"03" * 20: {"balance": hex(10**21)}}
    assert doc["timestamp"] == hex(1_700_000_000) and doc["baseFeePerGas"] == hex(10**9)


def test_besu_timings_are_whole_seconds():
    doc = besu_genesis(_genesis(), block_period_s=0.5, request_timeout_s=1.2)
    assert doc["config"]["qbft"]["blockperiodseconds"] == 1
    assert doc["config"]["qbft"]["requesttimeoutseconds"] == 2
    with pytest.raises(ValueError, match="positive"):
        besu_genesis(_genesis(), block_period_s=0, request_timeout_s=1)


def test_export_genesis_command(tmp_path):
    from api.cli.main import app

    spec = init_network(tmp_path / "net", validators=4, rpc_base_port=None, p2p_base_port=None)
    out = tmp_path / "besu-genesis.json"
    result = CliRunner().invoke(app, ["network", "export-genesis", "--data-dir", str(tmp_path / "net"),
                                      "--out", str(out)], terminal_width=200)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["config"]["chainId"] == spec.chain_id
    assert sorted(validators_from_genesis(doc)) == sorted(to_checksum_address(v.address) for v in spec.validators)
    assert spec.admin_address.lower()[2:] in doc["alloc"]


def test_export_genesis_without_a_network_is_a_usage_error(tmp_path):
    from api.cli.main import app

    result = CliRunner().invoke(app, ["network", "export-genesis", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "network.json" in result.output
