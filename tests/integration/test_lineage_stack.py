"""Lineage on a real 4-validator network: verification, offline bundle (and tampering), the /id page in
headless Chromium. One small generated chain (1 heat, ~60 events) keeps the module within ~2 minutes."""

from __future__ import annotations

import copy
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from api.cli.verify_bundle import Trust, load_trust, load_validators
from api.devnet import Stack
from provenance.bundle import verify_bundle
from provenance.epcis import canonical_epc
from provenance.supply_chain import generate
from provenance.work_tickets import sign_typed
from tests.phone_layout import PHONE, phone_layout

from .conftest import SHARED_DATA

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(shared_stack: Stack) -> Stack:
    """The session's shared 4-validator network (tests/conftest.py); its own enterprises;
    the one record it alters in the database is restored."""
    return shared_stack


def q(identifier: str) -> str:
    return quote(identifier, safe="")


@pytest.fixture(scope="module")
def loaded(stack: Stack, api: httpx.Client) -> dict[str, Any]:
    if not (SHARED_DATA / "epcis" / "EPCIS-JSON-Schema.json").is_file():
        pytest.skip(f"EPCIS schema not found under {SHARED_DATA} (../shared/data beside the project)")
    gov = {"Authorization": f"Bearer {stack.admin_token}"}
    ents = {}
    for role, roles in (("mill", ["manufacturer"]), ("service_center", ["supplier"]), ("stamping", ["supplier"]),
                        ("oem", ["core_enterprise"])):
        r = api.post("/v1/enterprises", headers=gov, json={"name": role, "roles": roles})
        assert r.status_code == 201, r.text
        ents[role] = r.json()
    chain = generate(heats=1, slabs_per_heat=1, slits_per_coil=2, blanks_per_slit=3, parts_per_assembly=3,
                     non_conformant_rate=0.2, mill_prefix=ents["mill"]["prefix"], seed=5)
    for cert in chain.certificates:
        r = api.post("/v1/coils/certificates", json=cert,
                     headers={"Authorization": f"Bearer {ents['mill']['api_key']}"})
        assert r.status_code == 201, r.text
    idents = []
    for role, doc in chain.documents:
        r = api.post("/v1/epcis/capture", json=doc, headers={"Authorization": f"Bearer {ents[role]['api_key']}"})
        assert r.status_code == 201, r.text
        idents += [e["identifier"] for e in r.json()["events"]]
    deadline = time.monotonic() + 120
    part = sorted(chain.truth.part_heat)[0]
    while time.monotonic() < deadline:
        body = api.get(f"/v1/verify/{q(part)}", params={"lineage": "upstream"}).json()
        if body["verified"]:
            break
        time.sleep(0.5)
    return {"chain": chain, "ents": ents, "part": part, "verify": body}


def test_lineage_verification_true_then_false_after_alteration(stack: Stack, api: httpx.Client,
                                                              loaded: dict[str, Any]) -> None:
    body = loaded["verify"]
    assert body["verified"] is True, body.get("first_failure")
    assert body["first_failure"] is None and body["records_checked"] >= 10
    truth = loaded["chain"].truth
    part = loaded["part"]
    heat_key = canonical_epc(truth.heats[truth.part_heat[part]])
    assert heat_key in {n["key"] for n in body["nodes"]}
    # measure p50 of a lineage verification (closing-note figure on this small chain)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        assert api.get(f"/v1/verify/{q(part)}", params={"lineage": "upstream"}).json()["verified"]
        times.append(time.perf_counter() - t)
    print(f"lineage verify p50 {sorted(times)[2] * 1000:.0f} ms for {body['records_checked']} records")
    # alter one record of the mother coil node (its inspection event) directly in the database
    coil = truth.part_coil[part]
    coil_node = next(n for n in body["nodes"] if n["identifier"] == coil)
    victim = next(r["identifier"] for r in coil_node["records"] if r["kind"] == "epcis_event")
    db = stack.data_dir / "api" / "api.db"
    with sqlite3.connect(db, timeout=30) as conn:
        (doc,) = conn.execute("SELECT document FROM records WHERE identifier = ?", (victim,)).fetchone()
        conn.execute("UPDATE records SET document = ? WHERE identifier = ?",
                     (doc.replace("conformant", "nonconformant", 1) if "conformant" in doc else doc + " ", victim))
    try:
        bad = api.get(f"/v1/verify/{q(part)}", params={"lineage": "upstream"}).json()
        assert bad["verified"] is False
        nearer = [n for n in bad["nodes"] if n["level"] < coil_node["level"]]
        assert all(n["verified"] for n in nearer)
        assert bad["first_failure"]["identifier"] == coil and bad["first_failure"]["record"] == victim
        assert bad["first_failure"]["check"] == "record_digest"
    finally:  # the network is shared with later modules
        with sqlite3.connect(db, timeout=30) as conn:
            conn.execute("UPDATE records SET document = ? WHERE identifier = ?", (doc, victim))


def _validators(stack: Stack) -> str:
    assert stack.spec is not None
    return ",".join(v.address for v in stack.spec.validators)


def _network_file(stack: Stack) -> str:
    """The auditor's trust file: network.json (validators and registry addresses) of `traceledger network up`."""
    assert stack.spec is not None
    return str(stack.spec.data_dir / "network.json")


def _verify(bundle: dict[str, Any], trust: Trust, validators: list[str] | None = None) -> list[Any]:
    return verify_bundle(bundle, validators or trust.validators, anchor_registry=trust.anchor_registry,
                         enterprise_registry=trust.enterprise_registry)


BUNDLE_CACHE = Path(os.environ.get("TRACELEDGER_BUNDLE_CACHE",
                                   Path(__file__).resolve().parents[2] / ".pytest_cache" / "traceledger-bundles"))


def cache_bundle(name: str, bundle: dict[str, Any], trust: Trust) -> None:
    """Keep a generated bundle (and its trust roots) as a test-time artifact for tests/provenance's mutation suite."""
    BUNDLE_CACHE.mkdir(parents=True, exist_ok=True)
    (BUNDLE_CACHE / f"{name}.json").write_text(json.dumps({
        "bundle": bundle, "validators": trust.validators, "anchor_registry": trust.anchor_registry,
        "enterprise_registry": trust.enterprise_registry}))


def test_bundle_verifies_offline_and_tampering_is_named(stack: Stack, api: httpx.Client, loaded: dict[str, Any],
                                                        tmp_path: Path) -> None:
    assert loaded["verify"]["verified"] is True
    bundle = api.get(f"/v1/provenance/{q(loaded['part'])}/bundle").json()
    assert bundle["records"] and bundle["blocks"] and bundle["anchors"]
    assert any(r["kind"] == "coil_certificate" for r in bundle["records"])
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    # the CLI, offline, with the validator addresses; then with --rpc cross-check
    env = {**os.environ, "COLUMNS": "200"}
    cli = [sys.executable, "-m", "api.cli.main", "verify-bundle", str(path), "--validators", _network_file(stack)]
    proc = subprocess.run(cli, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BUNDLE VERIFIED" in proc.stdout
    assert stack.spec is not None
    proc = subprocess.run([*cli, "--rpc", stack.spec.rpc_urls[1]], capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 0 and "(rpc)" in proc.stdout, proc.stdout

    assert "completeness is NOT proven" in proc.stdout and "(active owner, proven from sealed state)" in proc.stdout
    trust = load_trust(_network_file(stack))
    trusted = load_validators(_validators(stack))
    assert trusted == trust.validators
    cache_bundle("part", bundle, trust)

    def first_failure(b: dict[str, Any]) -> str:
        bad = [c for c in _verify(b, trust) if not c.ok]
        assert bad, "tampered bundle still verifies"
        return bad[0].place

    def tampered(mutate: Any) -> dict[str, Any]:
        b = copy.deepcopy(bundle)
        mutate(b)
        return b

    i_cert = next(i for i, r in enumerate(bundle["records"]) if r["kind"] == "coil_certificate")
    i_ev = next(i for i, r in enumerate(bundle["records"]) if r["kind"] == "epcis_event")

    def flip(text: str, at: int) -> str:
        return text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1:]

    assert first_failure(tampered(lambda b: b["records"][i_cert].update(
        document=b["records"][i_cert]["document"].replace("S355", "S235", 1)
        if "S355" in b["records"][i_cert]["document"] else b["records"][i_cert]["document"] + " "))) \
        == f"records[{i_cert}].document"
    assert first_failure(tampered(lambda b: b["records"][i_ev].update(
        signature=flip(b["records"][i_ev]["signature"], 10)))) == f"records[{i_ev}].signature"
    assert first_failure(tampered(lambda b: b["records"][i_ev]["proof"].update(
        leaf_index=b["records"][i_ev]["proof"]["leaf_index"] + 1))) == f"records[{i_ev}].proof"
    with_path = next(i for i, r in enumerate(bundle["records"]) if r["proof"] and r["proof"]["path"])
    assert first_failure(tampered(lambda b: b["records"][with_path]["proof"]["path"].__setitem__(
        0, flip(b["records"][with_path]["proof"]["path"][0], 5)))) == f"records[{with_path}].proof"
    assert first_failure(tampered(lambda b: b["blocks"][0].update(
        stateRoot=flip(b["blocks"][0]["stateRoot"], 7)))) == "blocks[0].header"
    assert first_failure(tampered(lambda b: b["blocks"][0].update(
        extraData=flip(b["blocks"][0]["extraData"], len(b["blocks"][0]["extraData"]) - 6)))).startswith("blocks[0]")
    assert first_failure(tampered(lambda b: b["blocks"][0]["transactions"][0].update(
        input=flip(b["blocks"][0]["transactions"][0]["input"], 12)))).startswith("blocks[0]")
    assert first_failure(tampered(lambda b: b["anchors"][0].update(
        root=flip(b["anchors"][0]["root"], 9)))) == "anchors[0]"
    # a wrong validator set fails on the seals
    bad = [c for c in _verify(bundle, trust, load_validators("0x" + "11" * 20)) if not c.ok]
    assert bad and bad[0].place == "blocks[0].extraData.commitSeals"
    # tampered file through the CLI: exit 1 naming the place
    path.write_text(json.dumps(tampered(lambda b: b["records"][i_ev].update(record_digest="0x" + "00" * 32))))
    proc = subprocess.run(cli, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1 and f"records[{i_ev}].document" in proc.stdout


def _block_with_receipts(rpc_url: str, number: int) -> dict[str, Any]:
    def call(method: str, params: list[Any]) -> Any:
        return httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                          timeout=30).json()["result"]

    raw = call("eth_getBlockByNumber", [hex(number), True])
    block = {k: raw[k] for k in ("parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot",
                                 "logsBloom", "difficulty", "number", "gasLimit", "gasUsed", "timestamp", "extraData",
                                 "mixHash", "nonce", "baseFeePerGas", "withdrawalsRoot", "hash", "transactions")}
    block["receipts"] = []
    for tx in block["transactions"]:
        rc = call("eth_getTransactionReceipt", [tx["hash"]])
        block["receipts"].append({k: rc[k] for k in ("transactionHash", "transactionIndex", "status",
                                                     "cumulativeGasUsed", "logsBloom", "type")}
                                 | {"logs": [{k: lg[k] for k in ("address", "topics", "data")} for lg in rc["logs"]]})
    return block


def test_forged_certificate_with_a_members_key_and_a_reverted_anchor_is_refused(
        stack: Stack, api: httpx.Client, loaded: dict[str, Any], tmp_path: Path) -> None:
    """Issue 20's critical attack: a person of *another* enterprise re-signs the mill's certificate with changed
    values under the mill's identifier, "anchors" it with a transaction that reverted (status 0) and claims the
    mill's prefix in the bundle. Refused offline, with and without --rpc, naming why."""
    import hashlib

    from eth_account import Account

    from api.chain import ChainClient, ChainError
    from provenance.merkle import hash_leaf
    from provenance.signing import sign_record
    from provenance.verify import ANCHOR_SELECTOR, Reason

    assert stack.spec is not None
    trust = load_trust(_network_file(stack))
    coil = loaded["chain"].truth.part_coil[loaded["part"]]
    honest = api.get(f"/v1/provenance/{q(coil)}/bundle").json()
    assert honest["records"][0]["kind"] == "coil_certificate"
    assert all(c.ok for c in _verify(honest, trust)), [c for c in _verify(honest, trust) if not c.ok][:3]
    cache_bundle("certificate", honest, trust)
    # the rival enterprise registers a person whose key the attacker holds; the admin funds its gas
    gov = {"Authorization": f"Bearer {stack.admin_token}"}
    rival = api.post("/v1/enterprises", headers=gov, json={"name": "rival", "roles": ["supplier"]}).json()
    attacker = Account.create()
    person = {"name": "Mallory", "roles": ["crew_member"], "address": attacker.address}
    rival_auth = {"Authorization": f"Bearer {rival['api_key']}"}
    typed = api.post("/v1/persons/typed-data", headers=rival_auth, json=person).json()  # the device proves its key
    signature = "0x" + sign_typed(bytes(attacker.key), typed).hex()
    r = api.post("/v1/persons", headers=rival_auth,
                 json={**person, "signature": signature, "deadline": typed["message"]["deadline"]})
    assert r.status_code == 201, r.text
    chain = ChainClient.from_url(stack.spec.rpc_urls[0], enterprise_registry=trust.enterprise_registry,
                                 anchor_registry=trust.anchor_registry)
    chain.transfer(stack.spec.admin_key(), attacker.address, 10**18)
    forged = copy.deepcopy(honest)
    rec = forged["records"][0]
    doc = json.loads(rec["document"])
    text = rec["document"]
    changed = text.replace('"Value":"0.', '"Value":"9.', 1) if '"Value":"0.' in text else text.replace("S", "X", 1)
    assert changed != text and json.loads(changed) != doc
    digest = hashlib.sha256(changed.encode()).digest()
    rec.update(document=changed, record_digest="0x" + digest.hex(), signer=attacker.address,
               signature="0x" + sign_record(bytes(attacker.key), rec["identifier"], rec["kind"], digest,
                                            rec["chain_id"]).hex(),
               enterprise={**rec["enterprise"], "address": attacker.address})
    root = hash_leaf(digest)
    rec["proof"] = {"root": "0x" + root.hex(), "leaf_index": 0, "tree_size": 1, "path": []}
    meta = b"\x11" * 32
    sent: list[str] = []
    with pytest.raises(ChainError, match="reverted"):  # NotActiveAnchorer: a person is not an anchoring account
        chain.send(bytes(attacker.key), to=trust.anchor_registry, gas=300_000, on_sent=sent.append,
                   data="0x" + (ANCHOR_SELECTOR + root + (1).to_bytes(32, "big") + meta).hex())
    receipt = chain.rpc("eth_getTransactionReceipt", [sent[0]])
    assert int(receipt["status"], 16) == 0
    number = int(receipt["blockNumber"], 16)
    block = _block_with_receipts(stack.spec.rpc_urls[0], number)
    forged["anchors"] = [{"root": "0x" + root.hex(), "size": 1, "metadata_digest": "0x" + meta.hex(),
                          "tx_hash": sent[0], "block_number": number,
                          "block_hash": block["hash"], "anchor_registry": trust.anchor_registry}]
    forged["blocks"] = [b for b in forged["blocks"] if int(b["number"], 16) != number] + [block]
    checks = _verify(forged, trust)
    bad = {c.place: c for c in checks if not c.ok}
    assert bad["anchors[0].receipt"].reason is Reason.RECEIPT_INVALID and "status 0" in bad["anchors[0].receipt"].detail
    assert bad["records[0].proof"].reason is Reason.NOT_ANCHORED
    # the mill's state proofs kept (the honest bundle's): the signer is named as not the owner
    assert bad["records[0].signature"].reason is Reason.WRONG_SIGNER, bad["records[0].signature"]
    # state proofs dropped, the bundle's own claim only: the owner is unproven, whatever the claim says
    no_proofs = {**forged, "registry_proofs": []}
    bad = {c.place: c for c in _verify(no_proofs, trust) if not c.ok}
    assert bad["records[0].signature"].reason is Reason.OWNER_UNPROVEN
    # a state proof at the reverted block: still the mill's account, not the attacker's
    forged["registry_proofs"] = forged["registry_proofs"] + [
        {**e, "block_number": number, "proof": chain.rpc("eth_getProof", [trust.enterprise_registry, [
            x["key"] for x in e["proof"]["storageProof"]], hex(number)])} for e in honest["registry_proofs"][:1]]
    bad = {c.place: c for c in _verify(forged, trust) if not c.ok}
    assert bad["records[0].signature"].reason is Reason.WRONG_SIGNER
    assert not any(p.startswith("registry_proofs") for p in bad)
    # the CLI, offline and with --rpc
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged))
    cli = [sys.executable, "-m", "api.cli.main", "verify-bundle", str(path), "--validators", _network_file(stack)]
    env = {**os.environ, "COLUMNS": "250"}
    for extra in ([], ["--rpc", stack.spec.rpc_urls[2]]):
        proc = subprocess.run([*cli, *extra], capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 1, proc.stdout
        assert "BUNDLE NOT VERIFIED" in proc.stdout and "status 0" in proc.stdout, proc.stdout
        assert "owner is" in proc.stdout, proc.stdout
    assert "anchors[0].receipt (rpc)" in proc.stdout
    # the auditor without registry addresses: anchors and owners are refused, never read from the bundle
    no_registry = Trust(trust.validators)
    bad = {c.place: c for c in _verify(honest, no_registry) if not c.ok}
    assert bad["anchors[0]"].reason is Reason.NO_REGISTRY
    assert bad["records[0].signature"].reason is Reason.OWNER_UNPROVEN


def test_mutation_campaign_on_fresh_bundles(stack: Stack, api: httpx.Client, loaded: dict[str, Any]) -> None:
    """Issue 20's mutation suite in CI: every JSON leaf and structure of a fresh part bundle and certificate bundle,
    typed mutations and semantic attacks; an accepted mutant not on the commented harmless list fails."""
    from tests.provenance.test_bundle_mutations import campaign

    trust = load_trust(_network_file(stack))
    coil = loaded["chain"].truth.part_coil[loaded["part"]]
    arts = {}
    for name, ident in (("part", loaded["part"]), ("certificate", coil)):
        bundle = api.get(f"/v1/provenance/{q(ident)}/bundle").json()
        cache_bundle(name, bundle, trust)
        arts[name] = {"bundle": bundle, "validators": trust.validators, "anchor_registry": trust.anchor_registry,
                      "enterprise_registry": trust.enterprise_registry}
    typed, semantic = campaign(arts["part"], arts["certificate"])
    print(f"mutation campaign: typed {typed.line()}; semantic {semantic.line()}")
    assert typed.findings == [], typed.findings[:20]
    assert semantic.findings == [], semantic.findings
    assert typed.refused > 1000 and semantic.refused >= 10


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian 'chromium' not installed (apt-get install -y chromium)")
def test_part_page_in_headless_chromium(stack: Stack, loaded: dict[str, Any], tmp_path: Path) -> None:
    assert CHROMIUM is not None
    truth = loaded["chain"].truth
    part = loaded["part"]
    url = f"{stack.api_url()}/id/{q(part)}"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}", "--window-size=390,1600"]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert '<section id="lineage">' in html
    timeline = html.split('<ol class="timeline">', 1)[1].split("</ol>", 1)[0]
    assert truth.part_coil[part] in timeline  # the upstream mother coil
    heat = truth.part_heat[part]
    assert f"lot {heat}" in timeline  # the heat (LGTIN lot)
    assert "✓ verified" in html
    shot = tmp_path / "part.png"
    proc = subprocess.run([*base, f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.is_file() and shot.stat().st_size > 5000, proc.stderr[-2000:]
    # it fits a phone: at 390 CSS px nothing reaches past the viewport (long hex values wrap)
    layout = phone_layout(url, tmp_path / "phone-profile")
    assert layout["clientWidth"] == PHONE["width"] and layout["scrollWidth"] <= PHONE["width"], layout
    keep = os.environ.get("TRACELEDGER_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "part-page.png")
