"""SM2 keys bound through the API and SM2-signed work-ticket steps (issue 18), in process (eth-tester chain).

* ``PUT /v1/persons/{id}/sm2-key`` / ``PUT /v1/enterprises/{id}/sm2-key``: the key holder proves possession over a
  statement binding the account, chain id and registry; a wrong proof, a proof made for another account, a key
  that is no curve point and another enterprise's account are refused; GET returns the key bound on chain;
* a step carrying the person's SM2 signature is verified against the key bound on chain, recorded on chain and
  its evidence stored as a record, anchored in the next batch and verifiable offline; a forged signature,
  another person's key, a person without a key and a signature replayed onto another ticket or position are
  refused with 422 ``sm2_signature``; history and verify name the algorithm of every step.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.main import create_app
from api.models import Record
from api.workflows.models import Person
from provenance.canonical import canonicalize
from provenance.crypto_profile import (
    sm2_generate_private_key,
    sm2_key_binding_statement,
    sm2_public_key,
    sm2_sign,
    sm3,
)
from provenance.errors import InvalidSignature
from provenance.work_tickets import sign_typed, sm2_step_statement, verify_sm2_step_evidence
from tests.api.conftest import auth, create_enterprise, make_settings
from tests.api.test_chain_anchoring import evm  # noqa: F401 - fixture


@pytest.fixture
def sm_app(evm: Any, tmp_path: Path) -> Any:  # noqa: F811
    chain, admin_key, addrs = evm
    settings = make_settings(f"sqlite:///{(tmp_path / 'api.db').as_posix()}", tmp_path, chain_id=None,
                             admin_private_key=admin_key, enterprise_registry_address=addrs["EnterpriseRegistry"],
                             anchor_registry_address=addrs["AnchorRegistry"], work_ticket_address=addrs["WorkTicket"],
                             fund_wei=10**21, anchoring_enabled=False, crypto_profile="sm")
    with TestClient(create_app(settings, chain=chain)) as client:
        yield client


def _person(app: TestClient, ent: dict, name: str, roles: list[str]) -> dict:
    r = app.post("/v1/persons", headers=auth(ent["api_key"]), json={"name": name, "roles": roles})
    assert r.status_code == 201, r.text
    return r.json()


def _binding(app: TestClient, path: str, key: bytes, account: str | None = None) -> dict[str, str]:
    """Body of PUT …/sm2-key: the public key and its SM2 signature over the binding statement of ``account``
    (default: the statement the GET names for ``path``)."""
    statement = app.get(path).json()["binding_statement"].encode()
    if account is not None:
        state = app.app.state.tl  # type: ignore[attr-defined]
        statement = sm2_key_binding_statement(account, state.chain_id(), state.settings.enterprise_registry_address)
    return {"public_key": "0x" + sm2_public_key(key).hex(), "signature": "0x" + sm2_sign(key, statement).hex()}


def test_sm2_keys_bound_with_proof_of_possession(sm_app: TestClient) -> None:
    grid = create_enterprise(sm_app, name="State Grid Xinzhuang Substation")
    other = create_enterprise(sm_app, name="Huadian Maintenance Contractor")
    officer = _person(sm_app, grid, "Li Na", ["permitting_officer"])
    stranger = _person(sm_app, other, "Zhao Lei", ["crew_member"])
    path = f"/v1/persons/{officer['id']}/sm2-key"
    before = sm_app.get(path).json()
    assert before["sm2_public_key"] is None and before["account"] == officer["address"]
    assert json.loads(before["binding_statement"])["account"] == officer["address"].lower()
    key = sm2_generate_private_key()
    # a proof by another key, a proof made for another account, a public key that is no point of the curve
    other_proof = _binding(sm_app, path, sm2_generate_private_key())["signature"]
    forged = {**_binding(sm_app, path, key), "signature": other_proof}
    for body, field in ((forged, "signature"), (_binding(sm_app, path, key, account=stranger["address"]), "signature"),
                        ({**_binding(sm_app, path, key), "public_key": "0x04" + "11" * 64}, "public_key")):
        r = sm_app.put(path, headers=auth(grid["api_key"]), json=body)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, r.text
    # another enterprise cannot bind keys to this enterprise's person, nor to the enterprise's account
    r = sm_app.put(path, headers=auth(other["api_key"]), json=_binding(sm_app, path, key))
    assert r.status_code == 403, r.text
    ent_path = f"/v1/enterprises/{grid['id']}/sm2-key"
    r = sm_app.put(ent_path, headers=auth(other["api_key"]), json=_binding(sm_app, ent_path, key))
    assert r.status_code == 403, r.text
    assert sm_app.get(path).json()["sm2_public_key"] is None  # nothing was sent
    r = sm_app.put(path, headers=auth(grid["api_key"]), json=_binding(sm_app, path, key))
    assert r.status_code == 200, r.text
    assert r.json()["sm2_public_key"] == "0x" + sm2_public_key(key).hex() and r.json()["tx_hash"].startswith("0x")
    assert sm_app.get(path).json()["sm2_public_key"] == "0x" + sm2_public_key(key).hex()
    # the enterprise binds a device key to its own account
    device = sm2_generate_private_key()
    r = sm_app.put(ent_path, headers=auth(grid["api_key"]), json=_binding(sm_app, ent_path, device))
    assert r.status_code == 200, r.text
    assert sm_app.get(ent_path).json()["sm2_public_key"] == "0x" + sm2_public_key(device).hex()


def test_sm2_signed_steps_accepted_forged_and_replayed(sm_app: TestClient) -> None:
    state = sm_app.app.state.tl  # type: ignore[attr-defined]
    grid = create_enterprise(sm_app, name="State Grid Xinzhuang Substation")
    h = auth(grid["api_key"])
    issuer = _person(sm_app, grid, "Wang Wei", ["ticket_issuer"])
    permitter = _person(sm_app, grid, "Li Na", ["permitting_officer"])
    leader = _person(sm_app, grid, "Zhang Qiang", ["person_in_charge"])
    crew = _person(sm_app, grid, "Chen Gang", ["crew_member"])
    keys = {p["id"]: sm2_generate_private_key() for p in (permitter, leader)}
    for pid, key in keys.items():
        path = f"/v1/persons/{pid}/sm2-key"
        assert sm_app.put(path, headers=h, json=_binding(sm_app, path, key)).status_code == 200

    start = datetime.fromtimestamp(state.chain.w3.eth.get_block("latest")["timestamp"], UTC)
    document = {"equipment": f"{grid['prefix']}/XZ-110kV-T1", "work_content": "Replace the bushing of T1",
                "safety_measures": ["Open breaker 101"], "planned_start": start.isoformat(),
                "planned_end": (start + timedelta(hours=10)).isoformat()}
    ticket_body = {"document": document, "issuer": issuer["id"], "permitter": permitter["id"],
                   "leader": leader["id"], "crew": [crew["id"]]}
    tickets = []
    for _ in range(2):
        r = sm_app.post("/v1/work-tickets", headers=h, json=ticket_body)
        assert r.status_code == 201, r.text
        tickets.append(r.json()["id"])
    tid, other_tid = tickets

    step = {"action": "permit", "person_id": permitter["id"]}
    r = sm_app.post(f"/v1/work-tickets/{tid}/sm2-statement", headers=h, json=step)
    assert r.status_code == 200, r.text
    statement = r.json()["statement"]
    assert r.json()["step"] == 1 and statement["ticketId"] == tid and statement["domain"] == "TraceLedger"
    assert statement["chainId"] == state.chain_id() and statement["person"] == permitter["address"].lower()
    message = r.json()["message"].encode()
    assert message == canonicalize(statement)

    def post(sig: bytes, person: dict = permitter, action: str = "permit", ticket: int = tid) -> Any:
        return sm_app.post(f"/v1/work-tickets/{ticket}/steps", headers=h,
                           json={"action": action, "person_id": person["id"], "sm2_signature": "0x" + sig.hex()})

    good = sm2_sign(keys[permitter["id"]], message)
    forged = bytearray(good)
    forged[-1] ^= 1
    by_other = sm2_sign(keys[leader["id"]], message)  # another person's bound key over the right statement
    wrong_position = sm2_sign(keys[permitter["id"]], canonicalize({**statement, "step": 2}))
    for bad in (bytes(forged), by_other, wrong_position):
        r = post(bad)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "sm2_signature", r.text
    r = post(good, ticket=other_tid)  # replayed onto another ticket
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "sm2_signature", r.text
    r = post(sm2_sign(keys[permitter["id"]], canonicalize({**statement, "chainId": statement["chainId"] + 1})))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "sm2_signature", r.text  # another network
    assert sm_app.get(f"/v1/work-tickets/{tid}").json()["status"] == "issued"  # none of them reached the chain

    r = post(good)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "permitted" and r.json()["signed_with"] == "sm2-sm3"
    evidence_id = r.json()["evidence"]
    assert evidence_id == f"{grid['prefix']}/wt-{tid}-step-1"
    r = post(good, action="terminate")  # the same signature for a later step
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "sm2_signature", r.text

    # a person with no SM2 key bound: a clear 422 before anything is sent
    brief = sm_app.post(f"/v1/work-tickets/{tid}/steps", headers=h,
                        json={"action": "brief", "person_id": leader["id"]})
    assert brief.status_code == 201, brief.text  # the leader's own account, no device signature
    crew_stmt = sm_app.post(f"/v1/work-tickets/{tid}/sm2-statement", headers=h,
                            json={"action": "acknowledge", "person_id": crew["id"]}).json()
    r = post(sm2_sign(sm2_generate_private_key(), crew_stmt["message"].encode()), person=crew, action="acknowledge")
    assert r.status_code == 422 and r.json()["detail"][0]["rule"] == "sm2-key-not-bound", r.text
    assert "no SM2 public key bound" in r.json()["detail"][0]["message"]

    # the crew member signs EIP-712 instead (relayed by the enterprise)
    typed = sm_app.post(f"/v1/work-tickets/{tid}/typed-data", headers=h,
                        json={"action": "acknowledge", "person_id": crew["id"]}).json()
    with Session(state.engine) as s:
        crew_keystore = s.get(Person, crew["id"]).keystore
    eip712 = sign_typed(state.keys.private_key(crew_keystore, state.settings.keystore_passphrase), typed)
    r = sm_app.post(f"/v1/work-tickets/{tid}/steps", headers=h,
                    json={"action": "acknowledge", "person_id": crew["id"], "signature": "0x" + eip712.hex(),
                          "deadline": typed["message"]["deadline"]})
    assert r.status_code == 201, r.text

    # a correctly signed step the contract refuses (terminate before end_work) leaves no evidence behind
    term = sm_app.post(f"/v1/work-tickets/{tid}/sm2-statement", headers=h,
                       json={"action": "terminate", "person_id": permitter["id"]}).json()
    r = post(sm2_sign(keys[permitter["id"]], term["message"].encode()), action="terminate")
    assert r.status_code == 409, r.text
    with Session(state.engine) as s:
        assert s.exec(select(Record).where(Record.identifier == f"{grid['prefix']}/wt-{tid}-step-4")).first() is None

    history = sm_app.get(f"/v1/work-tickets/{tid}").json()["history"]
    assert [(s["action"], s["signed_with"]) for s in history] == [
        ("issue", "secp256k1-transaction"), ("permit", "sm2-sm3"), ("brief", "secp256k1-transaction"),
        ("acknowledge", "eip712-secp256k1")]
    assert history[1]["evidence"] == evidence_id and "evidence" not in history[0]
    verify = sm_app.get(f"/v1/work-tickets/{tid}/verify").json()
    checks = {c["name"]: c for c in verify["checks"]}
    assert verify["verified"] is True and checks["sm2_step_signatures"]["ok"], verify
    assert checks["sm2_step_signatures"]["detail"].startswith("1 SM2-signed steps")

    # the evidence is a record: SM3 digest, anchored in the next batch, verified like any record
    with Session(state.engine) as s:
        rec = s.exec(select(Record).where(Record.identifier == evidence_id)).one()
    assert rec.kind == "work_ticket_step" and rec.record_digest == "0x" + sm3(rec.document.encode()).hex()
    assert len(state.worker.run_once()) == 1 and state.worker.last_error is None
    body = sm_app.get(f"/v1/verify/{evidence_id}").json()
    record_checks = {c["name"]: c for c in body["checks"]}  # eth-tester has no QBFT seals: the other checks
    for name in ("record_digest", "signature", "inclusion_proof", "anchored_on_chain"):
        assert record_checks[name]["ok"], record_checks[name]
    assert body["proof"]["hash_alg"] == "sm3"
    # offline: the auditor re-checks the person's SM2 signature from the evidence alone
    evidence = json.loads(rec.document)
    assert verify_sm2_step_evidence(evidence) == statement
    assert evidence["sm2_public_key"] == "0x" + sm2_public_key(keys[permitter["id"]]).hex()
    tampered = {**evidence, "statement": {**statement, "person": leader["address"].lower()}}
    with pytest.raises(InvalidSignature):
        verify_sm2_step_evidence(tampered)

    # an operator who edits the stored evidence (another key that also verifies) fails the ticket's verify
    impostor = sm2_generate_private_key()
    fake = {**evidence, "sm2_public_key": "0x" + sm2_public_key(impostor).hex(),
            "sm2_signature": "0x" + sm2_sign(impostor, canonicalize(statement)).hex()}
    with Session(state.engine) as s:
        row = s.exec(select(Record).where(Record.identifier == evidence_id)).one()
        row.document = canonicalize(fake).decode()
        s.add(row)
        s.commit()
    verify = sm_app.get(f"/v1/work-tickets/{tid}/verify").json()
    check = next(c for c in verify["checks"] if c["name"] == "sm2_step_signatures")
    assert verify["verified"] is False and "not the one bound" in check["detail"], check
    record_checks = {c["name"]: c for c in sm_app.get(f"/v1/verify/{evidence_id}").json()["checks"]}
    assert record_checks["record_digest"]["ok"] is False  # and the anchored record digest no longer matches


def test_step_statement_binds_ticket_position_chain_and_contract() -> None:
    base = {"chain_id": 1337, "contract": "0x" + "ab" * 20, "ticket_id": 7, "step": 3, "action": "acknowledge",
            "person": "0x" + "CD" * 20}
    stmt = sm2_step_statement(**base)
    assert stmt["person"] == "0x" + "cd" * 20 and stmt["kind"] == "work_ticket_step" and stmt["plannedEnd"] == 0
    for change in ({"chain_id": 1338}, {"contract": "0x" + "ac" * 20}, {"ticket_id": 8}, {"step": 4},
                   {"action": "brief"}, {"person": "0x" + "ce" * 20}):
        assert canonicalize(sm2_step_statement(**{**base, **change})) != canonicalize(stmt), change
    for bad in ({"action": "issue"}, {"step": -1}, {"chain_id": 0}, {"ticket_id": True}):
        with pytest.raises(ValueError):
            sm2_step_statement(**{**base, **bad})
