"""The one ingest pipeline (api.ingest): device signatures on reposts, single/batch parity, the declared
problem shapes of the OpenAPI document and UTC ``Z`` timestamps."""

from __future__ import annotations

import copy
import hashlib
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from eth_account import Account
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator, ValidationError
from sqlmodel import Session, create_engine, select

from api.errors import CHAIN_REFUSAL_RESPONSES, install_handlers
from api.models import Enterprise, Record, utc_iso
from api.settings import Settings
from provenance.canonical import canonicalize
from provenance.errors import Issue
from provenance.signing import sign_record
from tests.api.conftest import PASSPHRASE, auth, create_enterprise, sample
from tests.api.test_epcis import _load_chain, _need_shared

URL = "/v1/coils/certificates"
IDENT = "88.1.1/HK52791-CNW24-118734"
HEADER = "X-Record-Signature"


def _key(settings: Settings, enterprise_id: int) -> bytes:
    engine = create_engine(settings.sqlalchemy_url)
    with Session(engine) as s:
        ent = s.get(Enterprise, enterprise_id)
        assert ent is not None
        key = bytes(Account.decrypt(ent.keystore, PASSPHRASE))
    engine.dispose()
    return key


def _sig(key: bytes, identifier: str, doc: dict[str, Any]) -> str:
    digest = hashlib.sha256(canonicalize(doc)).digest()
    return "0x" + sign_record(key, identifier, "coil_certificate", digest, 1337).hex()


def _stored(settings: Settings, identifier: str) -> Record:
    engine = create_engine(settings.sqlalchemy_url)
    with Session(engine) as s:
        rec = s.exec(select(Record).where(Record.identifier == identifier)).one()
    engine.dispose()
    return rec


# ------------------------------------------------------------------------------ signatures on reposts
def test_identical_repost_with_wrong_signature_is_refused(client: TestClient, settings: Settings,
                                                          manufacturer: dict[str, Any]) -> None:
    """A replayed certificate carrying someone else's signature must not be acknowledged (was 200)."""
    h = auth(manufacturer["api_key"])
    assert client.post(URL, json=sample(), headers=h).status_code == 201
    before = _stored(settings, IDENT)
    forged = _sig(Account.create().key, IDENT, sample())
    r = client.post(URL, json=sample(), headers={**h, HEADER: forged})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == [{"field": f"header.{HEADER}", "rule": "signer", "message": r.json()["detail"][0][
        "message"]}]
    assert client.post(URL, json=sample(), headers={**h, HEADER: "0x1234"}).json()["detail"][0]["rule"] == "length"
    # the mill's own device signature over the same document is an idempotent 200
    good = _sig(_key(settings, manufacturer["id"]), IDENT, sample())
    ok = client.post(URL, json=sample(), headers={**h, HEADER: good})
    assert ok.status_code == 200 and ok.json()["identifier"] == IDENT
    after = _stored(settings, IDENT)
    assert (after.signature, after.signed_by_client) == (before.signature, before.signed_by_client)


def test_repost_of_a_revision_checks_the_signature_under_its_own_identifier(
        client: TestClient, settings: Settings, manufacturer: dict[str, Any]) -> None:
    h = auth(manufacturer["api_key"])
    key = _key(settings, manufacturer["id"])
    assert client.post(URL, json=sample(), headers=h).status_code == 201
    corrected = copy.deepcopy(sample())
    corrected["Certificate"]["CommercialTransaction"]["A07"] = "KP-CORRECTED"
    assert client.post(URL, params={"supersedes": IDENT}, json=corrected, headers=h).status_code == 201
    # a signature over the base identifier does not cover the stored revision <coil>.r2
    wrong_id = client.post(URL, json=corrected, headers={**h, HEADER: _sig(key, IDENT, corrected)})
    assert wrong_id.status_code == 422 and wrong_id.json()["detail"][0]["field"] == f"header.{HEADER}"
    right = client.post(URL, json=corrected, headers={**h, HEADER: _sig(key, IDENT + ".r2", corrected)})
    assert right.status_code == 200 and right.json()["identifier"] == IDENT + ".r2"


def test_single_and_batch_refuse_the_same_forged_duplicate(client: TestClient, manufacturer: dict[str, Any]) -> None:
    h = auth(manufacturer["api_key"])
    assert client.post(URL, json=sample(), headers=h).status_code == 201
    forged = _sig(Account.create().key, IDENT, sample())
    single = client.post(URL, json=sample(), headers={**h, HEADER: forged})
    batch = client.post(URL + "/batch", json={"certificates": [{"document": sample(), "signature": forged}]},
                        headers=h)
    assert single.status_code == batch.status_code == 422
    assert single.json()["detail"][0]["rule"] == batch.json()["detail"][0]["rule"] == "signer"
    assert batch.json()["detail"][0]["field"] == "certificates[0].signature"


def test_another_members_key_cannot_sign_for_the_mill(client: TestClient, settings: Settings,
                                                      manufacturer: dict[str, Any]) -> None:
    """A member signing with its own registered key under the mill's identifier is refused."""
    other = create_enterprise(client, name="Other Mill", roles=["manufacturer"])
    forged = _sig(_key(settings, other["id"]), IDENT, sample())
    r = client.post(URL, json=sample(), headers={**auth(manufacturer["api_key"]), HEADER: forged})
    assert r.status_code == 422 and other["address"] in r.json()["detail"][0]["message"]
    assert client.get(f"/v1/identifiers/{IDENT}").status_code == 404


def test_replayed_mill_signatures_are_refused(client: TestClient, settings: Settings,
                                             manufacturer: dict[str, Any]) -> None:
    """Genuine mill signatures taken from elsewhere (another certificate, another chain) do not carry over."""
    h = auth(manufacturer["api_key"])
    key = _key(settings, manufacturer["id"])
    a, b = sample(), sample("dd13_coil_nw24-119052")
    b_ident = "88.1.1/HK53016-CNW24-119052"
    sig_a = _sig(key, IDENT, a)
    other_chain = "0x" + sign_record(key, b_ident, "coil_certificate", hashlib.sha256(canonicalize(b)).digest(),
                                     1).hex()
    for forged in (sig_a, other_chain):
        r = client.post(URL, json=b, headers={**h, HEADER: forged})
        assert r.status_code == 422 and r.json()["detail"][0]["rule"] == "signer", r.text
    batch = client.post(URL + "/batch", json={"certificates": [{"document": a, "signature": sig_a},
                                                               {"document": b, "signature": sig_a}]}, headers=h)
    assert batch.status_code == 422
    assert [d["field"] for d in batch.json()["detail"]] == ["certificates[1].signature"]
    assert client.get(f"/v1/identifiers/{IDENT}").status_code == 404  # all or nothing: a was not stored either


# ------------------------------------------------------------------------------ the Issue type
def test_issue_json_form_and_mapping_access() -> None:
    plain = Issue("Certificate.ProductDescription.B07", "schema.required", "missing")
    assert plain.as_dict() == {"field": "Certificate.ProductDescription.B07", "rule": "schema.required",
                               "message": "missing"}
    ev = Issue("eventTime", "date-time", "no offset", 3).at("epcisBody.eventList[3].")
    assert ev.as_dict()["field"] == "epcisBody.eventList[3].eventTime" and ev.as_dict()["event_index"] == 3
    assert ev["rule"] == "date-time" and Issue.coerce(ev.as_dict()) == ev
    with pytest.raises(KeyError):
        plain["loc"]


# ------------------------------------------------------------------------------ OpenAPI tells the truth
def _schema_validator(doc: dict[str, Any], name: str) -> Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return Draft202012Validator(schema)


def test_openapi_declares_the_real_422_and_problem_shapes(client: TestClient, manufacturer: dict[str, Any]) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    ops = [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]
    with_input = [(p, m, op) for p, m, op in ops if op.get("parameters") or op.get("requestBody")]
    assert len(with_input) >= 10
    for path, method, op in with_input:
        assert op["responses"]["422"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ValidationProblem"}, (method, path)
    for path, method, op in ops:
        assert op["responses"]["default"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"}, (method, path)
    validation, problem = _schema_validator(doc, "ValidationProblem"), _schema_validator(doc, "Problem")
    h = auth(manufacturer["api_key"])
    broken = sample()
    broken["Certificate"]["Inspection"][0]["TensileTest"]["C11"]["Value"] = "high"
    answers_422 = [
        client.post(URL, content=b"{not json", headers={**h, "Content-Type": "application/json"}),  # FastAPI
        client.post(URL, json=broken, headers=h),  # domain (EN 10168)
        client.post(URL, json=sample(), headers={**h, HEADER: "0x12"}),  # signature header
        client.post(URL + "/batch", json={"certificates": []}, headers=h),  # batch shape
        client.get("/v1/lineage/not-an-id"),  # path identifier
    ]
    for r in answers_422:
        assert r.status_code == 422, r.text
        validation.validate(r.json())  # raises if the body does not match what the document declares
        assert "loc" not in r.text
    assert client.post(URL, json=sample(), headers=h).status_code == 201
    changed = sample()
    changed["Certificate"]["CommercialTransaction"]["A07"] = "KP-OTHER"
    others = [client.post(URL, json=changed, headers=h),  # 409 message
              client.post(URL + "/batch", json={"certificates": [changed]}, headers=h),  # 409 issue list
              client.get(f"{URL}/88.1.1/NOPE"), client.post(URL, json=sample())]  # 404, 401
    assert [r.status_code for r in others] == [409, 409, 404, 401]
    for r in others:
        problem.validate(r.json())
    with pytest.raises(ValidationError, match="'field' is a required property"):  # FastAPI's default shape
        validation.validate({"detail": [{"loc": ["body"], "msg": "x", "type": "y"}]})


# ------------------------------------------------------------------------------ timestamps: UTC with Z
Z_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def _is_utc_z(value: Any) -> bool:
    if not (isinstance(value, str) and Z_TIME.match(value)):
        return False
    return abs((datetime.now(UTC) - datetime.fromisoformat(value)).total_seconds()) < 3600 * 24 * 3650


def test_timestamps_are_utc_with_z(client: TestClient, manufacturer: dict[str, Any], ingested: dict[str, Any]) -> None:
    ent = client.get(f"/v1/enterprises/{manufacturer['id']}")
    assert ent.status_code == 200 and _is_utc_z(ent.json()["created_at"]), ent.json()
    created = datetime.fromisoformat(ent.json()["created_at"])
    assert abs((datetime.now(UTC) - created).total_seconds()) < 600  # really UTC, not local wall time
    res = client.get(f"/v1/identifiers/{ingested['identifier']}").json()
    assert res["values"] and all(_is_utc_z(v["timestamp"]) for v in res["values"]), res["values"]
    assert _is_utc_z(client.get("/v1/epcis/events").json()["creationDate"])
    assert utc_iso(datetime(2026, 3, 1, 8, 0)) == "2026-03-01T08:00:00.000000Z"
    # fixed width: string order is time order (a whole second sorts before its fractions)
    assert sorted([utc_iso(datetime(2026, 3, 1, 8, 0, 0, 500000)), utc_iso(datetime(2026, 3, 1, 8, 0))])[0] == (
        "2026-03-01T08:00:00.000000Z")


def test_lineage_event_times_are_utc_with_z(client: TestClient) -> None:
    _need_shared()
    chain, _ = _load_chain(client, heats=1)
    part = sorted(chain.truth.part_heat)[0]
    up = client.get(f"/v1/lineage/{quote(part, safe='')}").json()
    times = [r["eventTime"] for n in up["nodes"] for r in n["records"]]
    assert times and all(Z_TIME.match(t) for t in times), times
    # the query's next page is announced in the body and in a Link header (EPCIS 2.0 REST binding)
    page = client.get("/v1/epcis/events", params={"perPage": 2, "eventType": "ObjectEvent"})
    token = page.json()["nextPageToken"]
    assert token and page.headers["Link"].endswith('>; rel="next"') and f"nextPageToken={token}" in page.headers["Link"]
    nxt = client.get(page.headers["Link"][1:].split(">;", 1)[0])

    def ids(r: Any) -> list[str]:
        return [e["eventID"] for e in r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]]

    assert nxt.status_code == 200 and ids(nxt) and not set(ids(nxt)) & set(ids(page))


def test_a_route_declared_422_is_kept_and_resolvable() -> None:
    """Routers that may answer a chain refusal as 422 declare it; the document keeps their shape."""
    app = FastAPI()
    install_handlers(app)

    @app.post("/step", responses=CHAIN_REFUSAL_RESPONSES)
    def step(body: dict[str, Any]) -> dict[str, Any]:
        return body

    @app.get("/plain/{n}")
    def plain(n: int) -> int:
        return n

    doc = app.openapi()
    step_422 = doc["paths"]["/step"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert step_422 == {"anyOf": [{"$ref": "#/components/schemas/ValidationProblem"},
                                  {"$ref": "#/components/schemas/ChainRefusal"}]}
    plain_422 = doc["paths"]["/plain/{n}"]["get"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert plain_422 == {"$ref": "#/components/schemas/ValidationProblem"}
    refusal = {"detail": {"reason": "SamePerson", "message": "issue refused by the chain: SamePerson"}}
    _schema_validator(doc, "ChainRefusal").validate(refusal)
    with TestClient(app) as c:
        r = c.get("/plain/x")
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "path.n"
    _schema_validator(doc, "ValidationProblem").validate(r.json())
