"""GET /v1/verify on pending records and on locally built batches (no chain)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, create_engine, select

from api.models import Batch, Record
from api.settings import Settings
from provenance.merkle import hash_leaf, root_from_leaf_hashes, verify_inclusion
from tests.api.conftest import auth, sample

IDENT = "88.1.1/HK52791-CNW24-118734"


def names(body: dict[str, Any]) -> dict[str, bool]:
    return {c["name"]: c["ok"] for c in body["checks"]}


def test_verify_pending(client: TestClient, ingested: dict[str, Any]) -> None:
    body = client.get(f"/v1/verify/{IDENT}").json()
    assert body["verified"] is False
    assert [c["name"] for c in body["checks"]] == ["record_digest", "signature", "anchored"]
    assert names(body) == {"record_digest": True, "signature": True, "anchored": False}
    assert body["checks"][2]["detail"] == "pending anchoring"
    assert body["proof"] is None and body["anchor"] is None
    assert client.get("/v1/verify/88.1.1/UNKNOWN").status_code == 404


def _batch_all(settings: Settings) -> None:
    """Build a batch of all records locally (like the worker would, but without the chain)."""
    engine = create_engine(settings.sqlalchemy_url)
    with Session(engine) as s:
        recs = list(s.exec(select(Record).order_by(Record.id)).all())
        digests = [r.record_digest for r in recs]
        root = root_from_leaf_hashes([hash_leaf(bytes.fromhex(d[2:])) for d in digests])
        batch = Batch(
            root="0x" + root.hex(),
            size=len(recs),
            leaf_digests=digests,
            status="final",
            tx_hash="0x" + "ab" * 32,
            block_number=7,
            block_hash="0x" + "cd" * 32,
        )
        s.add(batch)
        s.flush()
        for i, r in enumerate(recs):
            r.batch_id, r.leaf_index, r.status = batch.id, i, "anchored"
            s.add(r)
        s.commit()
    engine.dispose()


def _ingest_three(client: TestClient, manufacturer: dict[str, Any]) -> None:
    for name in ("s355mc_coil_nw24-118734", "dd13_coil_nw24-119052", "s235jr_coil_nw24-120377"):
        r = client.post("/v1/coils/certificates", json=sample(name), headers=auth(manufacturer["api_key"]))
        assert r.status_code == 201, r.text


def test_verify_local_batch_inclusion_ok(client: TestClient, settings: Settings, manufacturer: dict[str, Any]) -> None:
    _ingest_three(client, manufacturer)
    _batch_all(settings)
    body = client.get(f"/v1/verify/{IDENT}").json()
    assert [c["name"] for c in body["checks"]] == [
        "record_digest",
        "signature",
        "inclusion_proof",
        "anchored_on_chain",
        "finality_seals",
    ]
    ok = names(body)
    assert ok["record_digest"] and ok["signature"] and ok["inclusion_proof"]
    assert not ok["anchored_on_chain"] and not ok["finality_seals"]  # no chain configured
    assert body["verified"] is False
    proof = body["proof"]
    assert proof["tree_size"] == 3 and proof["leaf_index"] == 0 and len(proof["path"]) == 2
    verify_inclusion(
        hash_leaf(bytes.fromhex(body["record_digest"][2:])),
        proof["leaf_index"],
        proof["tree_size"],
        [bytes.fromhex(p[2:]) for p in proof["path"]],
        bytes.fromhex(proof["root"][2:]),
    )
    assert body["anchor"]["block_number"] == 7
    res = client.get(f"/v1/identifiers/{IDENT}").json()
    assert any(v["type"] == "ANCHOR" for v in res["values"])


def test_tampered_document_fails_record_digest(
    client: TestClient, settings: Settings, manufacturer: dict[str, Any]
) -> None:
    _ingest_three(client, manufacturer)
    _batch_all(settings)
    engine = create_engine(settings.sqlalchemy_url)
    with Session(engine) as s:
        rec = s.exec(select(Record).where(Record.identifier == IDENT)).one()
        rec.document = rec.document.replace("S355MC", "S700MC")
        s.add(rec)
        s.commit()
    engine.dispose()
    body = client.get(f"/v1/verify/{IDENT}").json()
    assert body["verified"] is False
    assert names(body)["record_digest"] is False
    failing = [c for c in body["checks"] if c["name"] == "record_digest"][0]
    assert "stored digest" in failing["detail"]


def test_tampered_proof_fails_inclusion(client: TestClient, settings: Settings, manufacturer: dict[str, Any]) -> None:
    _ingest_three(client, manufacturer)
    _batch_all(settings)
    engine = create_engine(settings.sqlalchemy_url)
    with Session(engine) as s:
        batch = s.exec(select(Batch)).one()
        leaves = list(batch.leaf_digests)
        leaves[2] = "0x" + "00" * 32  # a sibling leaf changed: the audit path no longer reaches the root
        batch.leaf_digests = leaves
        s.add(batch)
        s.commit()
    engine.dispose()
    body = client.get(f"/v1/verify/{IDENT}").json()
    ok = names(body)
    assert ok["record_digest"] is True and ok["inclusion_proof"] is False
    assert body["verified"] is False
