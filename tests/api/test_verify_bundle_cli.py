"""``traceledger verify-bundle`` on a cached real bundle: trust from a network file, the printed proven lineage,
exit codes, and the ``--rpc`` cross-check (answers fed through a stand-in for the JSON-RPC call)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from api.cli import verify_bundle as vb
from api.cli.main import app
from provenance.verify import Reason
from tests.provenance.test_bundle_mutations import load


def network_file(tmp_path: Path, art: dict[str, Any], **contracts: str | None) -> Path:
    path = tmp_path / "network.json"
    regs = {"AnchorRegistry": art["anchor_registry"], "EnterpriseRegistry": art["enterprise_registry"]} | contracts
    path.write_text(json.dumps({"validators": [{"address": a} for a in art["validators"]],
                                "contracts": {k: v for k, v in regs.items() if v}}))
    return path


def run(tmp_path: Path, bundle: dict[str, Any], trust: Path, *extra: str) -> Any:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    return CliRunner().invoke(app, ["verify-bundle", str(path), "--validators", str(trust), *extra],
                              env={"COLUMNS": "300"})


def test_cli_prints_the_proven_lineage_and_owners(tmp_path: Path) -> None:
    art = load("part")
    out = run(tmp_path, art["bundle"], network_file(tmp_path, art))
    assert out.exit_code == 0, out.output[-3000:]
    assert "BUNDLE VERIFIED" in out.output and "completeness is NOT proven" in out.output
    assert "lineage proven from the signed events" in out.output and art["bundle"]["key"] in out.output
    assert "(active owner, proven from sealed state)" in out.output


def test_cli_without_registries_refuses_and_bad_input_exits_2(tmp_path: Path) -> None:
    art = load("certificate")
    out = run(tmp_path, art["bundle"], network_file(tmp_path, art, AnchorRegistry=None, EnterpriseRegistry=None))
    assert out.exit_code == 1 and "no AnchorRegistry address from the auditor" in out.output
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    res = CliRunner().invoke(app, ["verify-bundle", str(bad), "--validators", str(network_file(tmp_path, art))])
    assert res.exit_code == 2


def test_rpc_cross_check_names_a_different_block_and_a_failed_receipt(monkeypatch: pytest.MonkeyPatch) -> None:
    art = load("certificate")
    bundle = art["bundle"]
    blocks = {b["number"]: b for b in bundle["blocks"]}
    receipts = {rc["transactionHash"]: {**rc, "blockHash": b["hash"]} for b in bundle["blocks"] for rc in b["receipts"]}
    served: dict[str, Any] = {"blocks": blocks, "receipts": receipts}

    def fake_rpc(url: str, method: str, params: list[Any]) -> Any:
        if method == "eth_getBlockByNumber":
            return served["blocks"].get(params[0])
        return served["receipts"].get(params[0])

    monkeypatch.setattr(vb, "_rpc", fake_rpc)
    assert all(c.ok for c in vb.rpc_cross_check(bundle, "http://validator")), vb.rpc_cross_check(bundle, "x")
    # the validator serves another block at that height, and the anchor transaction as reverted
    other = copy.deepcopy(blocks)
    first = next(iter(other))
    other[first]["stateRoot"] = "0x" + "00" * 32
    served["blocks"] = other
    tx = bundle["anchors"][0]["tx_hash"]
    served["receipts"] = {**receipts, tx: {**receipts[tx], "status": "0x0"}}
    bad = {c.place: c for c in vb.rpc_cross_check(bundle, "http://validator") if not c.ok}
    assert bad["anchors[0].receipt (rpc)"].reason is Reason.RECEIPT_INVALID
    assert any(p.endswith(".hash (rpc)") and c.reason is Reason.HEADER_MISMATCH for p, c in bad.items())
