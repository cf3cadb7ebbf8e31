"""A network created with the `sm` crypto profile (issue 18): SM3 record digests and Merkle trees end to end.

One validator (the profile concerns the record layer, not consensus) started as `traceledger network up
--crypto-profile sm` does (:class:`api.devnet.Stack`); it ingests the shared EN 10168 and EPCIS samples
(``../shared/data``), verifies them online, its bundle verifies offline with `traceledger verify-bundle`, and a
record digest equals ``openssl dgst -sm3`` of its canonical JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from api.devnet import Stack
from provenance.bundle import prove_bundle
from provenance.crypto_profile import sign_record_sm2, sm2_generate_private_key, sm3
from provenance.registry_state import sm2_key_slots
from provenance.verify import Reason

from .conftest import SHARED_DATA

pytestmark = pytest.mark.integration


def q(identifier: str) -> str:
    return quote(identifier, safe="")


@pytest.fixture(scope="module")
def sm_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not (SHARED_DATA / "epcis" / "EPCIS-JSON-Schema.json").is_file():
        pytest.skip(f"shared samples not found under {SHARED_DATA} (../shared/data beside the project)")
    s = Stack(data_dir=tmp_path_factory.mktemp("sm-network"), validators=1, api_port=None, rpc_base_port=None,
              p2p_base_port=None, crypto_profile="sm")
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _wait_anchored(api: httpx.Client, identifier: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while api.get(f"/v1/identifiers/{q(identifier)}").json()["status"] != "anchored":
        assert time.monotonic() < deadline, f"{identifier} not anchored within {timeout_s:.0f} s"
        time.sleep(0.3)


def test_sm_network_ingests_the_shared_samples_and_verifies_them_online_and_offline(sm_stack: Stack,
                                                                                     tmp_path: Path) -> None:
    assert sm_stack.spec is not None
    network_file = sm_stack.spec.data_dir / "network.json"
    manifest = json.loads(network_file.read_text())
    assert (manifest["cryptoProfile"], manifest["hashAlg"], manifest["recordSignature"]) == ("sm", "sm3", "sm2-sm3")
    with httpx.Client(base_url=sm_stack.api_url(), timeout=60) as api:
        net = api.get("/v1/network").json()
        assert (net["crypto_profile"], net["hash_alg"]) == ("sm", "sm3"), net
        gov = {"Authorization": f"Bearer {sm_stack.admin_token}"}
        mill = api.post("/v1/enterprises", headers=gov, json={"name": "Mill", "roles": ["manufacturer"]}).json()
        key = {"Authorization": f"Bearer {mill['api_key']}"}
        certs, refused, first_of = [], [], {}
        copies: list[tuple[str, str]] = []  # (original, copy) identifiers of byte-identical documents
        for path in sorted((SHARED_DATA / "en10168").glob("valid_certificate_*.json")):
            # valid_certificate_5 and _6 are the same document: the copy, posted by another mill once the original
            # is anchored, has the same single-leaf Merkle root; it must get an anchor of its own (a block after its
            # mill's registration, where its owner and SM2 key are proven), never the original's
            original = first_of.get(path.read_bytes())
            if original is not None:
                _wait_anchored(api, original)
            # samples share coil numbers: one mill each, so that every sample is a first certificate of its coil
            mill_i = api.post("/v1/enterprises", headers=gov, json={"name": f"Mill {path.stem}",
                                                                    "roles": ["manufacturer"]}).json()
            r = api.post("/v1/coils/certificates", json=json.loads(path.read_text()),
                         headers={"Authorization": f"Bearer {mill_i['api_key']}"})
            (certs if r.status_code == 201 else refused).append(r.json().get("identifier") or (path.name, r.text))
            if r.status_code == 201:
                if original is not None:
                    copies.append((original, r.json()["identifier"]))
                first_of.setdefault(path.read_bytes(), r.json()["identifier"])
        assert len(certs) >= 4, refused  # five distinct "valid" samples; the shared README: one of six fails
        assert len(copies) == 1, (copies, refused)  # valid_certificate_6 under another mill
        events = []
        for name in ("Example_9.6.1-ObjectEvent.jsonld", "Example_9.6.3-AggregationEvent.jsonld",
                     "Example_9.6.4-TransformationEvent.jsonld"):
            r = api.post("/v1/epcis/capture", json=json.loads((SHARED_DATA / "epcis" / name).read_text()), headers=key)
            assert r.status_code == 201, (name, r.text)
            events += [e["identifier"] for e in r.json()["events"]]
        deadline = time.monotonic() + 180
        pending = set(certs + events)
        while pending and time.monotonic() < deadline:
            for ident in sorted(pending):
                body = api.get(f"/v1/verify/{q(ident)}").json()
                if body["verified"]:
                    pending.discard(ident)
            time.sleep(0.5)
        assert not pending, [(i, [c for c in api.get(f"/v1/verify/{q(i)}").json()["checks"] if not c["ok"]])
                             for i in sorted(pending)[:2]]
        body = api.get(f"/v1/verify/{q(certs[0])}").json()
        assert body["proof"]["hash_alg"] == "sm3"
        assert any(c["name"] == "record_digest" and "SM3" in c["detail"] for c in body["checks"]), body["checks"]
        bundle = api.get(f"/v1/provenance/{q(certs[0])}/bundle").json()
        copy_bundles = []
        for original, copied in copies:
            blocks = [api.get(f"/v1/verify/{q(i)}").json()["anchor"]["block_number"] for i in (original, copied)]
            assert blocks[0] < blocks[1], (original, copied, blocks)  # the original stays the earliest anchor
            copy_bundles.append(api.get(f"/v1/provenance/{q(copied)}/bundle").json())
    assert bundle["crypto_profile"] == "sm" and bundle["hash_alg"] == "sm3"
    record = next(r for r in bundle["records"] if r["identifier"] == certs[0])
    assert record["proof"]["hash_alg"] == "sm3"
    assert record["record_digest"] == "0x" + sm3(record["document"].encode()).hex()
    openssl = shutil.which("openssl")
    if openssl:  # OpenSSL 3 as the independent SM3 (the unit tests skip with the reason when it lacks SM3)
        (tmp_path / "doc.json").write_text(record["document"], encoding="utf-8")
        out = subprocess.run([openssl, "dgst", "-sm3", "-r", str(tmp_path / "doc.json")], capture_output=True,
                             text=True)
        if out.returncode == 0:
            assert "0x" + out.stdout.split()[0] == record["record_digest"]
    # offline: the CLI takes the algorithm from the auditor's network.json
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    cli = [sys.executable, "-m", "api.cli.main", "verify-bundle", str(tmp_path / "bundle.json"),
           "--validators", str(network_file)]
    proc = subprocess.run(cli, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0 and "BUNDLE VERIFIED" in proc.stdout, proc.stdout + proc.stderr
    # the same bundle for an auditor of a standard network, or with its algorithm relabelled, is refused
    spec = sm_stack.spec
    trust = dict(validators=[v.address for v in spec.validators], anchor_registry=spec.anchor_registry,
                 enterprise_registry=spec.enterprise_registry)
    assert prove_bundle(bundle, **trust, crypto_profile="sm").verified
    for copy_bundle in copy_bundles:  # the copier's record: its owner and SM2 key proven at its own anchor block
        assert prove_bundle(copy_bundle, **trust, crypto_profile="sm").verified
    wrong = prove_bundle(bundle, **trust, crypto_profile="standard")
    assert not wrong.verified and wrong.checks[0].place == "hash_alg"
    relabelled = {**bundle, "hash_alg": "sha-256"}
    assert not prove_bundle(relabelled, **trust, crypto_profile="sm").verified
    unlabelled_proof = json.loads(json.dumps(bundle))
    next(r for r in unlabelled_proof["records"] if r["proof"])["proof"].pop("hash_alg")
    bad = [c for c in prove_bundle(unlabelled_proof, **trust, crypto_profile="sm").checks if not c.ok]
    assert bad and bad[0].place.endswith(".proof") and "hash_alg" in bad[0].detail
    # SM2 record signatures, offline: the key the owner had bound at the anchor block, from the EIP-1186 proof
    report = prove_bundle(bundle, **trust, crypto_profile="sm")
    sig = next(c for c in report.checks if c.place.endswith(".signature"))
    assert sig.ok and "SM2 signature" in sig.detail, sig
    i = bundle["records"].index(record)
    forged = json.loads(json.dumps(bundle))
    forged["records"][i]["signature"] = "0x" + sign_record_sm2(
        sm2_generate_private_key(), record["identifier"], record["kind"], bytes.fromhex(record["record_digest"][2:]),
        record["chain_id"]).hex()
    bad = [c for c in prove_bundle(forged, **trust, crypto_profile="sm").checks if not c.ok]
    assert bad and bad[0].place == f"records[{i}].signature" and bad[0].reason is Reason.WRONG_SIGNER, bad
    stripped = json.loads(json.dumps(bundle))  # the SM2 key slots left out of the state proofs: nothing proves a key
    for rp in stripped["registry_proofs"]:
        rp["proof"]["storageProof"] = [p for p in rp["proof"]["storageProof"]
                                       if int(p["key"], 16) not in sm2_key_slots(sig_owner(rp))]
    bad = [c for c in prove_bundle(stripped, **trust, crypto_profile="sm").checks if not c.ok]
    assert bad and bad[0].place == f"records[{i}].signature" and bad[0].reason is Reason.OWNER_UNPROVEN, bad


def sig_owner(registry_proof: dict) -> str:
    """The owner account an EnterpriseRegistry proof names (its first slot: the prefix's owner)."""
    return "0x" + int(registry_proof["proof"]["storageProof"][0]["value"], 16).to_bytes(20, "big").hex()


def test_sm2_signed_work_ticket_step_on_the_sm_network(sm_stack: Stack) -> None:
    """A person binds its device's SM2 key through the API; a permit signed with it is recorded on the real chain,
    its evidence record is anchored and verifies (seals included); a forged signature is 422 ``sm2_signature``."""
    from datetime import UTC, datetime, timedelta

    from provenance.crypto_profile import sm2_public_key, sm2_sign

    with httpx.Client(base_url=sm_stack.api_url(), timeout=60) as api:
        gov = {"Authorization": f"Bearer {sm_stack.admin_token}"}
        grid = api.post("/v1/enterprises", headers=gov, json={"name": "Grid", "roles": ["manufacturer"]}).json()
        h = {"Authorization": f"Bearer {grid['api_key']}"}
        people = {}
        for role in ("ticket_issuer", "permitting_officer", "person_in_charge", "crew_member"):
            r = api.post("/v1/persons", headers=h, json={"name": role, "roles": [role]})
            assert r.status_code == 201, r.text
            people[role] = r.json()
        device = sm2_generate_private_key()
        path = f"/v1/persons/{people['permitting_officer']['id']}/sm2-key"
        statement = api.get(path).json()["binding_statement"].encode()
        r = api.put(path, headers=h, json={"public_key": "0x" + sm2_public_key(device).hex(),
                                           "signature": "0x" + sm2_sign(device, statement).hex()})
        assert r.status_code == 200 and r.json()["sm2_public_key"] == "0x" + sm2_public_key(device).hex(), r.text
        start = datetime.now(UTC).replace(microsecond=0)
        document = {"equipment": f"{grid['prefix']}/T1", "work_content": "Replace the bushing of T1",
                    "safety_measures": ["Open breaker 101"], "planned_start": start.isoformat(),
                    "planned_end": (start + timedelta(hours=8)).isoformat()}
        r = api.post("/v1/work-tickets", headers=h, json={
            "document": document, "issuer": people["ticket_issuer"]["id"],
            "permitter": people["permitting_officer"]["id"], "leader": people["person_in_charge"]["id"],
            "crew": [people["crew_member"]["id"]]})
        assert r.status_code == 201, r.text
        tid = r.json()["id"]
        step = {"action": "permit", "person_id": people["permitting_officer"]["id"]}
        message = api.post(f"/v1/work-tickets/{tid}/sm2-statement", headers=h, json=step).json()["message"].encode()
        good = sm2_sign(device, message)
        r = api.post(f"/v1/work-tickets/{tid}/steps", headers=h,
                     json={**step, "sm2_signature": "0x" + sm2_sign(sm2_generate_private_key(), message).hex()})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "sm2_signature", r.text
        r = api.post(f"/v1/work-tickets/{tid}/steps", headers=h, json={**step, "sm2_signature": "0x" + good.hex()})
        assert r.status_code == 201 and r.json()["status"] == "permitted", r.text
        evidence = r.json()["evidence"]
        deadline = time.monotonic() + 180
        while not (body := api.get(f"/v1/verify/{q(evidence)}").json())["verified"] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert body["verified"], [c for c in body["checks"] if not c["ok"]]
        verify = api.get(f"/v1/work-tickets/{tid}/verify").json()
        assert verify["verified"], verify["checks"]
        history = api.get(f"/v1/work-tickets/{tid}").json()["history"]
        assert [s["signed_with"] for s in history] == ["secp256k1-transaction", "sm2-sm3"]
