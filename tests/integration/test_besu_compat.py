"""Our own chain through the Besu-facing tools: `traceledger verify-block`, `network export-genesis`, /v1/network."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from api.devnet import Stack
from ledger.network import rpc
from provenance.qbft_header import validators_from_genesis

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(shared_stack: Stack) -> Stack:
    """The session's shared 4-validator network (tests/conftest.py); this module only reads it."""
    return shared_stack


def _cli(*args: str):
    from api.cli.main import app

    return CliRunner().invoke(app, list(args), terminal_width=200)


def test_network_endpoint_lists_validators_and_rpc_urls(stack: Stack, api: httpx.Client) -> None:
    body = api.get("/v1/network").json()
    assert body["chain_id"] == stack.spec.chain_id and body["error"] is None
    assert sorted(body["rpc_urls"]) == sorted(stack.spec.rpc_urls)
    assert sorted(v.lower() for v in body["validators"]) == sorted(v.address.lower() for v in stack.spec.validators)
    assert body["contracts"]["AnchorRegistry"] == stack.spec.anchor_registry


def test_verify_block_on_our_chain_with_genesis_and_rpc(stack: Stack, tmp_path) -> None:
    url = stack.spec.rpc_urls[0]
    number = int(rpc(url, "eth_blockNumber"), 16)
    block = rpc(url, "eth_getBlockByNumber", [hex(number), False])
    path = tmp_path / "block.json"
    path.write_text(json.dumps(block))
    network = str(stack.spec.data_dir / "network.json")
    ok = _cli("verify-block", str(path), "--genesis", network, "--rpc", stack.spec.rpc_urls[1])
    assert ok.exit_code == 0, ok.output
    assert "VERIFIED" in ok.output and "serves the same block hash" in ok.output
    # a block whose state root was changed after sealing no longer verifies
    block["stateRoot"] = "0x" + "00" * 32
    path.write_text(json.dumps(block))
    bad = _cli("verify-block", str(path), "--genesis", network)
    assert bad.exit_code == 1 and "FAILED block hash" in bad.output


def test_export_genesis_names_the_running_validators(stack: Stack, tmp_path) -> None:
    out = tmp_path / "besu.json"
    result = _cli("network", "export-genesis", "--data-dir", str(stack.spec.data_dir), "--out", str(out))
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["config"]["chainId"] == stack.spec.chain_id
    assert sorted(a.lower() for a in validators_from_genesis(doc)) == sorted(
        v.address.lower() for v in stack.spec.validators)
