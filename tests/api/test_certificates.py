"""POST/GET /v1/coils/certificates."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from eth_account import Account
from fastapi.testclient import TestClient
from sqlmodel import Session, create_engine, select

from api.models import Enterprise, Record
from api.settings import Settings
from provenance.canonical import canonicalize
from provenance.signing import recover_record_signer, sign_record
from tests.api.conftest import PASSPHRASE, auth, create_enterprise, sample

URL = "/v1/coils/certificates"
IDENT = "88.1.1/HK52791-CNW24-118734"


def test_ingest_201_and_durable(client: TestClient, settings: Settings, manufacturer: dict[str, Any]) -> None:
    doc = sample()
    resp = client.post(URL, json=doc, headers=auth(manufacturer["api_key"]))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    digest = "0x" + hashlib.sha256(canonicalize(doc)).hexdigest()
    assert body == {"identifier": IDENT, "record_digest": digest, "status": "pending"}
    # durable: a brand-new engine/session sees the committed record
    engine = create_engine(settings.sqlalchemy_url)
    with Session(engine) as s:
        rec = s.exec(select(Record).where(Record.identifier == IDENT)).one()
        assert rec.document == canonicalize(doc).decode()
        assert rec.record_digest == digest and rec.status == "pending"
        signer = recover_record_signer(
            bytes.fromhex(rec.signature[2:]), IDENT, "coil_certificate", bytes.fromhex(digest[2:]), 1337
        )
        assert signer == manufacturer["address"]
    engine.dispose()
    got = client.get(f"{URL}/{IDENT}")
    assert got.status_code == 200 and got.json()["document"] == doc


def test_invalid_certificate_lists_field_paths(client: TestClient, manufacturer: dict[str, Any]) -> None:
    doc = sample()
    insp = doc["Certificate"]["Inspection"]
    first = insp[0] if isinstance(insp, list) else insp
    first["TensileTest"]["C11"]["Value"] = "high"
    del doc["Certificate"]["ProductDescription"]["B07"]
    resp = client.post(URL, json=doc, headers=auth(manufacturer["api_key"]))
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert all(set(d) == {"field", "rule", "message"} for d in detail)
    fields = {d["field"] for d in detail}
    assert any(f.startswith("Certificate.Inspection") and "C11" in f for f in fields), fields
    assert any("B07" in f for f in fields), fields


def test_malformed_and_non_object_body(client: TestClient, manufacturer: dict[str, Any]) -> None:
    headers = {**auth(manufacturer["api_key"]), "Content-Type": "application/json"}
    bad = client.post(URL, content=b'{"Certificate": ', headers=headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "body"
    arr = client.post(URL, json=[1, 2], headers=auth(manufacturer["api_key"]))
    assert arr.status_code == 422 and arr.json()["detail"][0]["field"] == "body"


def test_wrong_role_403_and_bad_key_401(client: TestClient) -> None:
    bank = create_enterprise(client, roles=["bank"], name="Bank")
    assert client.post(URL, json=sample(), headers=auth(bank["api_key"])).status_code == 403
    assert client.post(URL, json=sample(), headers=auth("tlk_wrong")).status_code == 401
    assert client.post(URL, json=sample()).status_code == 401


def test_duplicate_409_and_idempotent_200(client: TestClient, manufacturer: dict[str, Any]) -> None:
    h = auth(manufacturer["api_key"])
    first = client.post(URL, json=sample(), headers=h)
    assert first.status_code == 201
    again = client.post(URL, json=sample(), headers=h)
    assert again.status_code == 200 and again.json() == first.json()
    changed = copy.deepcopy(sample())
    changed["Certificate"]["CommercialTransaction"]["A07"] = "KP-OTHER"
    dup = client.post(URL, json=changed, headers=h)
    assert dup.status_code == 409
    assert IDENT in dup.json()["detail"]
    assert dup.headers["X-Current-Certificate"] == IDENT


def test_replacement_certificate_revisions(client: TestClient, manufacturer: dict[str, Any]) -> None:
    h = auth(manufacturer["api_key"])
    assert client.post(URL, json=sample(), headers=h).status_code == 201
    corrected = copy.deepcopy(sample())
    corrected["Certificate"]["CommercialTransaction"]["A07"] = "KP-CORRECTED"
    r2 = client.post(URL, params={"supersedes": IDENT}, json=corrected, headers=h)
    assert r2.status_code == 201, r2.text
    assert r2.json()["identifier"] == IDENT + ".r2"
    # the same corrected document again is idempotent, even without the query parameter
    again = client.post(URL, json=corrected, headers=h)
    assert again.status_code == 200 and again.json()["identifier"] == IDENT + ".r2"
    # the original posted again also answers with its own record
    assert client.post(URL, json=sample(), headers=h).json()["identifier"] == IDENT
    third = copy.deepcopy(sample())
    third["Certificate"]["CommercialTransaction"]["A07"] = "KP-THIRD"
    stale = client.post(URL, params={"supersedes": IDENT}, json=third, headers=h)
    assert stale.status_code == 409 and "query.supersedes" in stale.json()["detail"]
    assert client.post(URL, params={"supersedes": IDENT + ".r2"}, json=third, headers=h).json()["identifier"] == (
        IDENT + ".r3")
    base = client.get(f"/v1/identifiers/{IDENT}").json()
    assert base["superseded_by"] == IDENT + ".r2"
    assert {"type": "SUPERSEDED_BY"}.items() <= next(v for v in base["values"] if v["index"] == 6).items()
    newest = client.get(f"/v1/identifiers/{IDENT}.r3").json()
    assert newest["supersedes"] == IDENT + ".r2" and newest["superseded_by"] is None
    page = client.get(f"/id/{IDENT}")
    assert "superseded by" in page.text and f"{IDENT}.r2" in page.text


def test_supersedes_on_a_new_coil_is_422(client: TestClient, manufacturer: dict[str, Any]) -> None:
    r = client.post(URL, params={"supersedes": IDENT}, json=sample(), headers=auth(manufacturer["api_key"]))
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "query.supersedes"


def _enterprise_key(settings: Settings, enterprise_id: int) -> bytes:
    engine = create_engine(settings.sqlalchemy_url)
    with Session(engine) as s:
        ent = s.get(Enterprise, enterprise_id)
        assert ent is not None
        key = bytes(Account.decrypt(ent.keystore, PASSPHRASE))
    engine.dispose()
    return key


def test_client_signature_accepted(client: TestClient, settings: Settings, manufacturer: dict[str, Any]) -> None:
    doc = sample("dd13_coil_nw24-119052")
    digest = hashlib.sha256(canonicalize(doc)).digest()
    ident = "88.1.1/HK53016-CNW24-119052"
    sig = sign_record(_enterprise_key(settings, manufacturer["id"]), ident, "coil_certificate", digest, 1337)
    resp = client.post(URL, json=doc, headers={**auth(manufacturer["api_key"]), "X-Record-Signature": "0x" + sig.hex()})
    assert resp.status_code == 201, resp.text
    assert resp.json()["identifier"] == ident
    ver = client.get(f"/v1/verify/{ident}").json()
    assert next(c for c in ver["checks"] if c["name"] == "signature")["ok"] is True


def test_client_signature_refused(client: TestClient, manufacturer: dict[str, Any]) -> None:
    doc = sample("dd13_coil_nw24-119052")
    digest = hashlib.sha256(canonicalize(doc)).digest()
    other = Account.create()
    sig = sign_record(other.key, "88.1.1/HK53016-CNW24-119052", "coil_certificate", digest, 1337)
    h = auth(manufacturer["api_key"])
    resp = client.post(URL, json=doc, headers={**h, "X-Record-Signature": "0x" + sig.hex()})
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["field"] == "header.X-Record-Signature"
    short = client.post(URL, json=doc, headers={**h, "X-Record-Signature": "0x1234"})
    assert short.status_code == 422 and short.json()["detail"][0]["field"] == "header.X-Record-Signature"
    # nothing was stored
    assert client.get("/v1/identifiers/88.1.1/HK53016-CNW24-119052").status_code == 404


def test_oversized_body_413(client: TestClient, manufacturer: dict[str, Any]) -> None:
    big = b'{"x": "' + b"a" * (2 * 1024 * 1024 + 10) + b'"}'
    resp = client.post(URL, content=big, headers={**auth(manufacturer["api_key"]), "Content-Type": "application/json"})
    assert resp.status_code == 413
