"""The API on a chain without QBFT seals (ganache, an independent EVM node from npm) under the finality model
``confirmations:N`` (issue 11): a certificate verifies ``verified: true`` without pretending to have seals, and
its bundle verifies with ``traceledger verify-bundle --finality confirmations:N --rpc``."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.chain import ChainClient, deploy_contracts
from api.main import create_app
from ledger.network import free_port
from tests.api.conftest import auth, gov, make_settings, sample

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GANACHE = ROOT / "node_modules" / ".bin" / "ganache"
IDENT = "88.1.1/HK52791-CNW24-118734"
FINALITY = "confirmations:2"


@pytest.fixture(scope="module")
def ganache() -> Iterator[tuple[str, str]]:
    """A ganache node (shanghai, instant mining) on a free loopback port; yields (RPC URL, funded admin key)."""
    if not GANACHE.exists() or shutil.which("node") is None:
        pytest.skip("ganache (npm devDependency) or node is not installed: run `make install`")
    admin = Account.create()
    port = free_port()
    proc = subprocess.Popen([str(GANACHE), "--server.host", "127.0.0.1", "--server.port", str(port),
                             "--chain.hardfork", "shanghai", "--chain.chainId", "1339", "--logging.quiet",
                             "--wallet.accounts", f"0x{bytes(admin.key).hex()},{hex(100 * 10**18)}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("ganache did not start")
        yield url, "0x" + bytes(admin.key).hex()
    finally:
        proc.terminate()
        proc.wait(10)


def _mine(url: str) -> None:
    httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []}, timeout=10)


def test_certificate_verifies_under_confirmations_and_its_bundle_too(ganache, tmp_path) -> None:
    url, admin_key = ganache
    addrs = deploy_contracts(url, admin_key)
    chain = ChainClient.from_url(url, enterprise_registry=addrs["EnterpriseRegistry"],
                                 anchor_registry=addrs["AnchorRegistry"])
    chain.finality = FINALITY
    settings = make_settings(f"sqlite:///{(tmp_path / 'api.db').as_posix()}", tmp_path, chain_id=None, rpc_url=url,
                             admin_private_key=admin_key, enterprise_registry_address=addrs["EnterpriseRegistry"],
                             anchor_registry_address=addrs["AnchorRegistry"], finality=FINALITY,
                             fund_wei=None)
    with TestClient(create_app(settings, chain=chain)) as client:
        assert client.get("/healthz").status_code == 200  # funding fitted the 100-ether admin (no 1,000 ether)
        assert client.get("/v1/network").json()["finality_model"] == FINALITY
        mill = client.post("/v1/enterprises", headers=gov(),
                           json={"name": "Nordstahl Walzwerk GmbH", "roles": ["manufacturer"]}).json()
        assert client.post("/v1/coils/certificates", json=sample(), headers=auth(mill["api_key"])).status_code == 201
        assert len(client.app.state.tl.worker.run_once()) == 1  # type: ignore[attr-defined]
        path = quote(IDENT, safe="/")
        early = client.get(f"/v1/verify/{path}").json()
        checks = {c["name"]: c for c in early["checks"]}
        assert "finality_seals" not in checks  # a chain without seals never pretends to have them
        assert not checks["finality_confirmations"]["ok"] and "1 of the 2" in checks["finality_confirmations"]["detail"]
        _mine(url)
        body = client.get(f"/v1/verify/{path}").json()
        assert body["verified"] is True, body["checks"]
        assert body["finality_model"] == FINALITY
        assert {c["name"] for c in body["checks"]} >= {"record_digest", "signature", "inclusion_proof",
                                                        "anchored_on_chain", "finality_confirmations"}
        bundle = client.get(f"/v1/provenance/{path}/bundle").json()
    file = tmp_path / "bundle.json"
    file.write_text(json.dumps(bundle))
    from api.cli.main import app

    registries = ["--anchor-registry", addrs["AnchorRegistry"], "--enterprise-registry", addrs["EnterpriseRegistry"]]
    offline = CliRunner().invoke(app, ["verify-bundle", str(file), "--finality", FINALITY, *registries],
                                 terminal_width=200)
    assert offline.exit_code == 1 and "not proven final or canonical offline" in offline.output, offline.output
    online = CliRunner().invoke(app, ["verify-bundle", str(file), "--finality", FINALITY, "--rpc", url, *registries],
                                terminal_width=200)
    assert online.exit_code == 0, online.output
    assert "BUNDLE VERIFIED" in online.output and "confirmations" in online.output
    # the inclusion proof stands on its own: a changed digest is refused whatever the finality model
    bundle["records"][0]["record_digest"] = "0x" + "00" * 32
    file.write_text(json.dumps(bundle))
    forged = CliRunner().invoke(app, ["verify-bundle", str(file), "--finality", FINALITY, "--rpc", url, *registries],
                                terminal_width=200)
    assert forged.exit_code == 1
