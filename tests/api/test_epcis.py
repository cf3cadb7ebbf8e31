"""EPCIS 2.0 capture, query, identifier mapping and lineage through the API (no chain)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.epcis.models import EpcisEvent
from api.models import Record
from provenance.epcis import canonical_epc
from provenance.supply_chain import bad_heat_event, generate
from tests.api.conftest import auth, create_enterprise

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "epcis"
SCHEMA_INVALID = {
    "WithSensorData_SensorDataExample12": "schemaVersion",
    "WithSensorData_SensorDataExample17": "schemaVersion",
    "WithFullCombinationOfFields_object_event_all_possible_fields": "epcisBody.eventList[0].ilmd",
    "Example-TransactionEvents-2020_07_03y": "epcisBody.eventList[1].destinationList",
}


def _need_shared() -> None:
    if not (SHARED / "EPCIS-JSON-Schema.json").is_file():
        pytest.skip(f"shared EPCIS examples/schema not found at {SHARED} (../shared/data beside the project)")


def _q(identifier: str) -> str:
    return quote(identifier, safe="")


def test_capture_all_shared_examples(client: TestClient, manufacturer: dict[str, Any]) -> None:
    _need_shared()
    files = sorted(SHARED.glob("*.jsonld"))
    assert len(files) >= 40
    accepted = 0
    for path in files:
        doc = json.loads(path.read_text())
        r = client.post("/v1/epcis/capture", json=doc, headers=auth(manufacturer["api_key"]))
        if path.stem in SCHEMA_INVALID:
            assert r.status_code == 422, (path.stem, r.text)
            fields = [d["field"] for d in r.json()["detail"]]
            assert SCHEMA_INVALID[path.stem] in fields, (path.stem, r.json())
            continue
        assert r.status_code in (200, 201), (path.stem, r.text)
        body = r.json()
        n = len(doc["epcisBody"].get("eventList") or [doc["epcisBody"].get("event")])
        assert len(body["eventIDs"]) == n
        assert all(e.startswith("ni:///sha-256;") and e.endswith("?ver=CBV2.0") for e in body["eventIDs"])
        accepted += 1
    assert accepted == len(files) - 4
    # the ILMD refusal says why
    doc = json.loads((SHARED / "WithFullCombinationOfFields_object_event_all_possible_fields.jsonld").read_text())
    detail = client.post("/v1/epcis/capture", json=doc, headers=auth(manufacturer["api_key"])).json()["detail"]
    assert any(d["event_index"] == 0 and "ILMD" in d["message"] for d in detail)


def test_capture_idempotent_and_refuses_whole_document(client: TestClient, settings: Any,
                                                        manufacturer: dict[str, Any]) -> None:
    _need_shared()
    doc = json.loads((SHARED / "Example_9.6.1-ObjectEvent.jsonld").read_text())
    h = auth(manufacturer["api_key"])
    first = client.post("/v1/epcis/capture", json=doc, headers=h)
    assert first.status_code == 201 and first.json()["captured"] == 2
    again = client.post("/v1/epcis/capture", json=doc, headers=h)
    assert again.status_code == 200 and again.json()["duplicates"] == 2
    assert again.json()["eventIDs"] == first.json()["eventIDs"]
    # a document with one bad event (index 1) is refused whole: nothing stored
    bad = json.loads((SHARED / "Example_9.6.2-ObjectEvent.jsonld").read_text())
    good_event = bad["epcisBody"]["eventList"][0]
    broken = dict(good_event, eventTime="yesterday")
    broken.pop("action", None)
    bad["epcisBody"]["eventList"] = [good_event, broken]
    r = client.post("/v1/epcis/capture", json=bad, headers=h)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert {d.get("event_index") for d in detail} == {1}
    assert any(d["field"].startswith("epcisBody.eventList[1]") for d in detail)
    from sqlmodel import create_engine

    engine = create_engine(settings.sqlalchemy_url)
    with Session(engine) as s:
        assert len(s.exec(select(EpcisEvent)).all()) == 2
    engine.dispose()
    # malformed GS1 key: named by field and index
    doc2 = json.loads((SHARED / "Example_9.6.2-ObjectEvent.jsonld").read_text())
    doc2["epcisBody"]["eventList"][0]["epcList"] = ["urn:epc:id:sgtin:123.45.6"]
    r = client.post("/v1/epcis/capture", json=doc2, headers=h)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "epcisBody.eventList[0].epcList[0]"
    assert client.post("/v1/epcis/capture", json=[1, 2], headers=h).status_code == 422
    assert client.post("/v1/epcis/capture", json=doc).status_code == 401


def test_error_declaration_retracts_and_links(client: TestClient, manufacturer: dict[str, Any]) -> None:
    _need_shared()
    h = auth(manufacturer["api_key"])
    doc = json.loads((SHARED / "WithErrorDeclaration_ErrorDeclarationAndCorrectiveEvent.jsonld").read_text())
    original = json.loads(json.dumps(doc))
    original["epcisBody"]["eventList"] = [dict(doc["epcisBody"]["eventList"][0])]
    original["epcisBody"]["eventList"][0].pop("errorDeclaration")
    r0 = client.post("/v1/epcis/capture", json=original, headers=h)
    assert r0.status_code == 201
    r = client.post("/v1/epcis/capture", json=doc, headers=h)
    assert r.status_code == 201, r.text
    events = r.json()["events"]
    assert events[0]["status"] == "error_declaration" and events[0]["retracted"] is True
    assert events[0]["eventID"] == r0.json()["eventIDs"][0]  # errorDeclaration is not part of the hash
    found = client.get("/v1/epcis/events", params={"eventType": "TransformationEvent"}).json()
    evs = found["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    retracted = [e for e in evs if e["eventID"] == "urn:uuid:374d95fc-9457-4a51-bd6a-0bba133845a8"]
    assert retracted and retracted[0]["errorDeclaration"]["correctiveEventIDs"] == [
        "urn:uuid:404d95fc-9457-4a51-bd6a-0bba133845a8"]


def _load_chain(client: TestClient, heats: int = 2) -> tuple[Any, dict[str, dict[str, Any]]]:
    ents = {"mill": create_enterprise(client, name="Mill", roles=["manufacturer"])}
    for role in ("service_center", "stamping", "oem"):
        ents[role] = create_enterprise(client, name=role, roles=["supplier"])
    chain = generate(heats=heats, slabs_per_heat=1, slits_per_coil=2, blanks_per_slit=2, parts_per_assembly=2,
                     non_conformant_rate=0.3, mill_prefix=ents["mill"]["prefix"], seed=3)
    for cert in chain.certificates:
        r = client.post("/v1/coils/certificates", json=cert, headers=auth(ents["mill"]["api_key"]))
        assert r.status_code == 201, r.text
    for role, doc in chain.documents:
        r = client.post("/v1/epcis/capture", json=doc, headers=auth(ents[role]["api_key"]))
        assert r.status_code == 201, r.text
    return chain, ents


def test_lineage_on_generated_chain(client: TestClient) -> None:
    _need_shared()
    chain, ents = _load_chain(client)
    truth = chain.truth
    part = sorted(truth.part_heat)[0]
    heat = truth.part_heat[part]
    # upstream from the part's GS1 Digital Link URI reaches its coil certificate and its heat
    up = client.get(f"/v1/lineage/{_q(part)}", params={"direction": "upstream"})
    assert up.status_code == 200, up.text
    keys = {n["key"] for n in up.json()["nodes"]}
    assert canonical_epc(truth.heats[heat]) in keys
    coil = truth.part_coil[part]
    cert_nodes = [n for n in up.json()["nodes"] if n["certificate"]]
    assert [n["identifier"] for n in cert_nodes] == [coil]
    assert cert_nodes[0]["certificate"]["summary"]["heat"] == heat
    assert all(e["event"]["type"] == "TransformationEvent" for e in up.json()["edges"])
    # the same node by its 88.x.y identifier, by SGTIN URN and by URL-encoded Digital Link
    ident = up.json()["identifier"]
    assert ident.startswith(ents["stamping"]["prefix"] + "/01.")
    urn = next(n["epc"] for n in up.json()["nodes"] if n["key"] == canonical_epc(part))
    for form in (ident, urn, part):
        r = client.get(f"/v1/lineage/{_q(form)}")
        assert r.status_code == 200 and r.json()["root"] == canonical_epc(part), form
    # depth bounds the walk
    assert {n["level"] for n in client.get(f"/v1/lineage/{_q(part)}", params={"depth": 1}).json()["nodes"]} == {0, 1}
    # downstream from the heat (as an LGTIN class URN) = recall list, equal to the ground truth
    r = client.post("/v1/epcis/capture", json=bad_heat_event(truth.heats[heat]),
                    headers=auth(ents["mill"]["api_key"]))
    assert r.status_code == 201
    down = client.get(f"/v1/lineage/{_q(truth.heats[heat])}", params={"direction": "downstream"}).json()
    recall = {n["key"] for n in down["recall"]}
    expected = truth.downstream[heat]
    assert {canonical_epc(p) for p in expected["parts"]} <= recall
    assert {canonical_epc(a) for a in expected["assemblies"]} <= recall
    assert {"hdl:" + c for c in expected["coils"]} <= recall
    everything = {canonical_epc(x) if not x.startswith("88.") else "hdl:" + x
                  for kind in expected.values() for x in kind}
    assert recall == everything
    other_heat = next(h for h in truth.heats if h != heat)
    assert not {canonical_epc(p) for p in truth.downstream[other_heat]["parts"]} & recall
    root = next(n for n in down["nodes"] if n["level"] == 0)
    assert root["non_conformant"] is True
    flagged = {n["key"] for n in down["recall"] if n["non_conformant"]}
    assert flagged == {canonical_epc(p) for p in truth.non_conformant_parts if truth.part_heat[p] == heat}
    # errors
    assert client.get("/v1/lineage/not-an-id").status_code == 422
    assert client.get(f"/v1/lineage/{_q('urn:epc:id:sgtin:4012345.000009.404')}").status_code == 404
    assert client.get(f"/v1/lineage/{_q(part)}", params={"direction": "sideways"}).status_code == 422


def test_query_parameters_and_paging(client: TestClient) -> None:
    _need_shared()
    chain, _ = _load_chain(client, heats=1)
    part = sorted(chain.truth.part_heat)[0]

    def q(**params: Any) -> dict[str, Any]:
        r = client.get("/v1/epcis/events", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def evs(body: dict[str, Any]) -> list[dict[str, Any]]:
        return body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]

    assert {e["type"] for e in evs(q(eventType="AggregationEvent"))} == {"AggregationEvent"}
    ships = evs(q(EQ_bizStep="https://ref.gs1.org/cbv/BizStep-shipping"))
    assert ships and all(e["bizStep"] == "shipping" for e in ships)
    assert all(e["disposition"] == "non_conformant" for e in evs(q(EQ_disposition="non_conformant")))
    by_epc = evs(q(MATCH_epc=part))
    # MATCH_epc covers epcList and childEPCs (EPCIS 2.0 §8.2.7.1): inspection, shipping, receiving, assembling
    assert {e["bizStep"] for e in by_epc} == {"inspecting", "shipping", "receiving", "assembling"}
    any_epc = evs(q(MATCH_anyEPC=part))
    assert len(any_epc) == len(by_epc) + 1  # + the stamping TransformationEvent (outputEPCList)
    assert evs(q(GE_eventTime="2030-01-01T00:00:00Z")) == []
    assert len(evs(q(LT_eventTime="2026-03-02T06:30:00+00:00"))) == 2
    assert all(e.get("bizLocation") for e in evs(q(EQ_bizLocation="urn:epc:id:sgln:4045678.00001.0")))
    # paging walks every event exactly once
    seen: list[str] = []
    token = None
    while True:
        body = q(perPage=7, **({"nextPageToken": token} if token else {}))
        seen += [e["eventID"] for e in evs(body)]
        token = body["nextPageToken"]
        if not token:
            break
    assert len(seen) == len(set(seen)) == chain.event_count
    bad = client.get("/v1/epcis/events", params={"GE_eventTime": "soon"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "query.GE_eventTime"
    assert client.get("/v1/epcis/events", params={"nextPageToken": "zzz"}).status_code == 422


def test_lineage_verification_without_chain_names_first_node(client: TestClient, settings: Any) -> None:
    _need_shared()
    chain, _ = _load_chain(client, heats=1)
    part = sorted(chain.truth.part_heat)[0]
    body = client.get(f"/v1/verify/{_q(part)}", params={"lineage": "upstream"}).json()
    assert body["verified"] is False  # nothing anchored without a chain
    assert body["first_failure"]["key"] == canonical_epc(part) and body["first_failure"]["check"] == "anchored"
    assert body["records_checked"] >= 10
    page = client.get(f"/id/{_q(part)}")
    assert page.status_code == 200 and "Timeline" in page.text and chain.truth.part_heat[part] in page.text
    coil = chain.truth.part_coil[part]
    coil_page = client.get(f"/id/{coil}")
    assert coil_page.status_code == 200 and 'id="lineage"' in coil_page.text
    with Session(client.app.state.tl.engine) as s:  # type: ignore[attr-defined]
        assert s.exec(select(Record).where(Record.kind == "epcis_event")).first() is not None
