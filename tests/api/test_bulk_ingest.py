"""Bulk ingest (certificate batches, large EPCIS documents), the anchoring lease, caches and /livez (no chain)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from api.anchoring.lease import AnchorLease
from api.db import make_engine
from api.epcis.models import EpcisEvent, EpcisObject, LineageEdge
from api.models import Record
from api.settings import Settings
from api.verification import BatchTree
from provenance.merkle import hash_leaf, inclusion_proof
from provenance.samples import load_samples
from provenance.signing import sign_record
from provenance.supply_chain import generate
from tests.api.conftest import auth, create_enterprise


def _count(client: TestClient, model: Any = Record) -> int:
    with Session(client.app.state.tl.engine) as s:
        return int(s.exec(select(func.count()).select_from(model)).one())


def _certs(n: int) -> list[dict[str, Any]]:
    docs = [doc for _, doc in load_samples()]
    out = []
    for i in range(n):
        doc = copy.deepcopy(docs[i % len(docs)])
        doc["Certificate"]["ProductDescription"]["B07"] = f"BULK-{i:05d}"
        out.append(doc)
    return out


def test_certificate_batch_stores_all_and_is_idempotent(client: TestClient, manufacturer: dict[str, Any]) -> None:
    docs = _certs(30)
    r = client.post("/v1/coils/certificates/batch", json={"certificates": docs}, headers=auth(manufacturer["api_key"]))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["count"] == 30 and body["created"] == 30 and body["duplicates"] == 0
    assert [x["index"] for x in body["records"]] == list(range(30))
    assert all(x["status"] == "pending" for x in body["records"])
    assert _count(client) == 30
    # the stored record is the same as a single POST would make (digest, signature, resolution)
    one = body["records"][7]
    got = client.get(f"/v1/identifiers/{one['identifier']}")
    assert got.status_code == 200 and got.json()["record_digest"] == one["record_digest"]
    # repost: everything is a duplicate → 200, nothing new
    r = client.post("/v1/coils/certificates/batch", json={"certificates": docs[:5] + docs[:1]},
                    headers=auth(manufacturer["api_key"]))
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 0 and {x["status"] for x in r.json()["records"]} == {"duplicate"}
    assert _count(client) == 30


def test_certificate_batch_invalid_item_names_field_and_stores_nothing(
        client: TestClient, manufacturer: dict[str, Any]) -> None:
    docs = _certs(4)
    docs[2]["Certificate"]["Inspection"][0]["TensileTest"]["C11"]["Value"] = 99999
    r = client.post("/v1/coils/certificates/batch", json={"certificates": docs}, headers=auth(manufacturer["api_key"]))
    assert r.status_code == 422, r.text
    fields = [d["field"] for d in r.json()["detail"]]
    assert any(f.startswith("certificates[2].Certificate.Inspection[0].TensileTest") for f in fields), fields
    assert _count(client) == 0
    for bad, field in (({"certificates": []}, "body.certificates"), ({"certificates": [1]}, "certificates[0]"),
                       ({"nope": 1}, "body.certificates")):
        r = client.post("/v1/coils/certificates/batch", json=bad, headers=auth(manufacturer["api_key"]))
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, r.text
    assert _count(client) == 0


def test_certificate_batch_device_signatures_and_conflicts(client: TestClient, settings: Settings) -> None:
    ent = create_enterprise(client)
    docs = _certs(3)
    wrong_key = b"\x11" * 32
    items: list[dict[str, Any]] = [{"document": docs[0], "signature": "0x" + "00" * 65}, {"document": docs[1]}]
    r = client.post("/v1/coils/certificates/batch", json={"certificates": items}, headers=auth(ent["api_key"]))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "certificates[0].signature", r.text
    # a well-formed signature by another key: refused naming the signer
    r = client.post("/v1/coils/certificates/batch", json={"certificates": [docs[0]]}, headers=auth(ent["api_key"]))
    assert r.status_code == 201
    ident, digest = r.json()["records"][0]["identifier"], r.json()["records"][0]["record_digest"]
    other = copy.deepcopy(docs[1])
    other["Certificate"]["ProductDescription"]["B07"] = "BULK-SIGNED"
    sig = sign_record(wrong_key, ident.split("/")[0] + "/x", "coil_certificate", bytes.fromhex(digest[2:]), 1337)
    r = client.post("/v1/coils/certificates/batch", json={"certificates": [{"document": other, "signature":
                                                                            "0x" + sig.hex()}]},
                    headers=auth(ent["api_key"]))
    assert r.status_code == 422 and r.json()["detail"][0]["rule"] == "signer", r.text
    # same coil, different certificate: 409, nothing of the batch stored
    changed = copy.deepcopy(docs[0])
    changed["Certificate"]["Inspection"][0]["TensileTest"]["C11"]["Value"] -= 1
    r = client.post("/v1/coils/certificates/batch", json={"certificates": [docs[2], changed]},
                    headers=auth(ent["api_key"]))
    assert r.status_code == 409, r.text
    assert r.json()["detail"][0]["field"] == "certificates[1]"
    assert _count(client) == 1
    # the same coil twice with different content in one batch: 422
    r = client.post("/v1/coils/certificates/batch", json={"certificates": [docs[2], {**docs[2], "X": 1}]},
                    headers=auth(ent["api_key"]))
    assert r.status_code == 422, r.text


def test_large_epcis_document_is_stored_in_one_transaction(client: TestClient,
                                                           manufacturer: dict[str, Any]) -> None:
    chain = generate(target_events=1500, mill_prefix=manufacturer["prefix"])
    events = [e for _, d in chain.documents for e in d["epcisBody"]["eventList"]]
    doc = copy.deepcopy(chain.documents[0][1])
    doc["epcisBody"] = {"eventList": events}
    r = client.post("/v1/epcis/capture", json=doc, headers=auth(manufacturer["api_key"]))
    assert r.status_code == 201, r.text[:500]
    body = r.json()
    assert body["captured"] == len(events) and body["duplicates"] == 0
    assert _count(client) == len(events) and _count(client, EpcisEvent) == len(events)
    assert _count(client, LineageEdge) > 0 and _count(client, EpcisObject) > 0
    # idempotent, and a bad event anywhere refuses the whole document naming its index
    assert client.post("/v1/epcis/capture", json=doc, headers=auth(manufacturer["api_key"])).status_code == 200
    bad = copy.deepcopy(doc)
    bad["epcisBody"]["eventList"].append(copy.deepcopy(events[0]))
    bad["epcisBody"]["eventList"][-1]["eventTime"] = "yesterday"
    r = client.post("/v1/epcis/capture", json=bad, headers=auth(manufacturer["api_key"]))
    assert r.status_code == 422 and r.json()["detail"][0]["event_index"] == len(events), r.text[:500]
    assert _count(client) == len(events)
    # the lineage graph of a part is intact
    part = next(iter(chain.truth.part_heat))
    lin = client.get("/v1/lineage/" + part.replace("/", "%2F").replace(":", "%3A"), params={"direction": "upstream"})
    assert lin.status_code == 200, lin.text[:300]
    assert any(n["kind"] != "instance" or n["key"].startswith("hdl:") for n in lin.json()["nodes"])


def test_anchoring_lease_is_exclusive(db_url: str, tmp_path: Any) -> None:
    settings = Settings(database_url=db_url, data_dir=tmp_path)
    e1, e2 = make_engine(settings), make_engine(settings)
    a, b = AnchorLease(e1), AnchorLease(e2)
    try:
        assert a.try_acquire() is True
        assert b.try_acquire() is False and b.held is False
        assert a.still_held() is True
        a.release()
        assert b.try_acquire() is True
        assert a.try_acquire() is False
    finally:
        a.release()
        b.release()
        e1.dispose()
        e2.dispose()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 31, 64, 100])
def test_batch_tree_proofs_match_rfc9162(size: int) -> None:
    leaves = [hash_leaf(i.to_bytes(32, "big")) for i in range(size)]
    tree = BatchTree(leaves)
    for i in range(size):
        assert tree.proof(i) == inclusion_proof(leaves, i)


def test_livez_and_healthz_leader(client: TestClient) -> None:
    r = client.get("/livez")
    assert r.status_code == 200 and r.text == "ok"
    anchoring = client.get("/healthz").json()["anchoring"]
    assert anchoring["leader"] is False and isinstance(anchoring["pid"], int)  # worker off in these tests
