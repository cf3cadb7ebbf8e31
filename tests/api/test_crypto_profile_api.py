"""The network's crypto profile in the API and the launcher (issue 18), in process (eth-tester for the chain).

* an API of an `sm` network stores SM3 record digests, anchors SM3 Merkle roots and verifies them with SM3;
  its proofs say ``hash_alg``; ``GET /v1/network`` names the profile;
* an operator who restarts the same database under the other profile gets failing digest checks, never a pass;
* the profile is written once into ``network.json`` and a launcher asking an existing network for another one
  stops; an auditor's network file naming an unknown profile is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.cli.verify_bundle import load_trust
from api.devnet import Stack
from api.main import create_app
from api.models import Batch, Record
from ledger.network import init_network, load_network
from provenance.canonical import canonicalize
from provenance.crypto_profile import (
    UnknownProfile,
    derive_sm2_record_key,
    sign_record_sm2,
    sm2_generate_private_key,
    sm2_public_key,
    sm3,
    verify_record_sm2,
)
from provenance.merkle import hash_leaf, root_from_leaf_hashes
from tests.api.conftest import auth, create_enterprise, make_settings, sample
from tests.api.test_chain_anchoring import evm  # noqa: F401 - fixture

IDENT = "88.1.1/HK52791-CNW24-118734"


def _app(evm: Any, tmp_path: Path, profile: str) -> TestClient:  # noqa: F811
    chain, admin_key, addrs = evm
    settings = make_settings(f"sqlite:///{(tmp_path / 'api.db').as_posix()}", tmp_path, chain_id=None,
                             admin_private_key=admin_key, enterprise_registry_address=addrs["EnterpriseRegistry"],
                             anchor_registry_address=addrs["AnchorRegistry"], fund_wei=10**18,
                             anchoring_enabled=False, crypto_profile=profile)
    return TestClient(create_app(settings, chain=chain))


def _enterprise_keystore(state: Any, enterprise_id: int) -> str:
    from api.models import Enterprise

    with Session(state.engine) as s:
        ent = s.get(Enterprise, enterprise_id)
        assert ent is not None
        return ent.keystore


def test_sm_api_digests_anchors_and_verifies_with_sm3(evm: Any, tmp_path: Path) -> None:  # noqa: F811
    with _app(evm, tmp_path, "sm") as app:
        net = app.get("/v1/network").json()
        assert (net["crypto_profile"], net["hash_alg"], net["record_signature"]) == ("sm", "sm3", "sm2-sm3")
        ent = create_enterprise(app)
        doc = sample("s355mc_coil_nw24-118734")
        r = app.post("/v1/coils/certificates", json=doc, headers=auth(ent["api_key"]))
        assert r.status_code == 201, r.text
        assert r.json()["record_digest"] == "0x" + sm3(canonicalize(doc)).hex()
        assert r.json()["record_digest"] != "0x" + hashlib.sha256(canonicalize(doc)).hexdigest()
        for name in ("dd13_coil_nw24-119052", "s235jr_coil_nw24-120377"):
            r = app.post("/v1/coils/certificates", json=sample(name), headers=auth(ent["api_key"]))
            assert r.status_code == 201, r.text
        worker = app.app.state.tl.worker  # type: ignore[attr-defined]
        assert len(worker.run_once()) == 1 and worker.last_error is None
        with Session(app.app.state.tl.engine) as s:  # type: ignore[attr-defined]
            batch = s.exec(select(Batch)).one()
            digests = [r.record_digest for r in s.exec(select(Record).order_by(Record.id)).all()]
        leaves = [hash_leaf(bytes.fromhex(d[2:]), "sm3") for d in digests]
        assert batch.root == "0x" + root_from_leaf_hashes(leaves, hash_alg="sm3").hex()
        body = app.get(f"/v1/verify/{IDENT}").json()
        checks = {c["name"]: c for c in body["checks"]}
        for name in ("record_digest", "signature", "inclusion_proof", "anchored_on_chain"):
            assert checks[name]["ok"], checks[name]
        assert "SM3" in checks["record_digest"]["detail"] and body["proof"]["hash_alg"] == "sm3"
        assert "SM2 signature" in checks["signature"]["detail"]
        # SM2 record signatures: the API signed with the enterprise's SM2 key, bound on chain at registration
        state = app.app.state.tl  # type: ignore[attr-defined]
        account_key = state.keys.private_key(_enterprise_keystore(state, ent["id"]), state.settings.keystore_passphrase)
        assert state.chain.sm2_public_key_of(ent["address"]) == sm2_public_key(derive_sm2_record_key(account_key))
        with Session(state.engine) as s:
            stored = s.exec(select(Record).where(Record.identifier == IDENT)).one()
        verify_record_sm2(state.chain.sm2_public_key_of(ent["address"]), bytes.fromhex(stored.signature[2:]), IDENT,
                          stored.kind, bytes.fromhex(stored.record_digest[2:]), stored.chain_id)
        # a device key replaces it (the enterprise's own transaction); device signatures are checked against it
        device = sm2_generate_private_key()
        state.chain.set_sm2_public_key(account_key, sm2_public_key(device))
        doc2 = {**doc, "Certificate": {**doc["Certificate"], "ProductDescription": {
            **doc["Certificate"]["ProductDescription"], "B07": "NW24-999999"}}}
        digest2 = sm3(canonicalize(doc2))
        ident2 = IDENT.replace("118734", "999999")
        forged = sign_record_sm2(sm2_generate_private_key(), ident2, "coil_certificate", digest2, state.chain_id())
        for bad, rule in ((forged, "signer"), (bytes(65), "length")):
            r = app.post("/v1/coils/certificates", json=doc2, headers={**auth(ent["api_key"]),
                                                                       "X-Record-Signature": "0x" + bad.hex()})
            assert r.status_code == 422 and r.json()["detail"][0]["rule"] == rule, r.text
        good = sign_record_sm2(device, ident2, "coil_certificate", digest2, state.chain_id())
        r = app.post("/v1/coils/certificates", json=doc2, headers={**auth(ent["api_key"]),
                                                                   "X-Record-Signature": "0x" + good.hex()})
        assert r.status_code == 201 and r.json()["identifier"] == ident2, r.text
        assert len(worker.run_once()) == 1
        # each record verifies under the key bound at its own anchor block (before and after the rotation)
        for ident in (IDENT, ident2):
            body = app.get(f"/v1/verify/{ident}").json()
            sig = next(c for c in body["checks"] if c["name"] == "signature")
            assert sig["ok"], sig
    # the operator restarts the same database as a standard network: the SM3 records do not pass as SHA-256
    with _app(evm, tmp_path, "standard") as app:
        body = app.get(f"/v1/verify/{IDENT}").json()
        checks = {c["name"]: c for c in body["checks"]}
        assert body["verified"] is False
        assert not checks["record_digest"]["ok"] and not checks["inclusion_proof"]["ok"]


def test_profile_is_fixed_in_network_json(tmp_path: Path) -> None:
    spec = init_network(tmp_path / "n", validators=1, rpc_base_port=None, p2p_base_port=None, crypto_profile="sm")
    manifest = json.loads((tmp_path / "n" / "network.json").read_text())
    assert (manifest["cryptoProfile"], manifest["hashAlg"], manifest["recordSignature"]) == ("sm", "sm3", "sm2-sm3")
    assert spec.crypto_profile == "sm" and load_network(tmp_path / "n").crypto_profile == "sm"
    assert load_trust(str(tmp_path / "n" / "network.json")).crypto_profile == "sm"
    # an existing network keeps its profile: asking for another one stops the launcher
    with pytest.raises(ValueError, match="fixed when it is created"):
        Stack(data_dir=tmp_path / "n", validators=1, api_port=None, crypto_profile="standard").init()
    same = Stack(data_dir=tmp_path / "n", validators=1, api_port=None)
    same.init()
    assert same.api_env()["TRACELEDGER_CRYPTO_PROFILE"] == "sm"
    # networks written before profiles existed are standard
    old = init_network(tmp_path / "o", validators=1, rpc_base_port=None, p2p_base_port=None)
    raw = json.loads((tmp_path / "o" / "network.json").read_text())
    for k in ("cryptoProfile", "hashAlg", "recordSignature"):
        raw.pop(k)
    (tmp_path / "o" / "network.json").write_text(json.dumps(raw))
    assert old.crypto_profile == "standard" and load_network(tmp_path / "o").crypto_profile == "standard"
    with pytest.raises(UnknownProfile):
        init_network(tmp_path / "x", validators=1, rpc_base_port=None, p2p_base_port=None, crypto_profile="gm")
    raw["cryptoProfile"] = "gm"
    (tmp_path / "o" / "network.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="crypto profile"):
        load_trust(str(tmp_path / "o" / "network.json"))


def test_network_up_refuses_an_unknown_profile_before_anything_starts(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "api.cli.main", "network", "up", "--crypto-profile", "gm",
                           "--data-dir", str(tmp_path / "d")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--crypto-profile" in proc.stdout and "standard, sm" in proc.stdout
    assert not (tmp_path / "d" / "network.json").exists()
