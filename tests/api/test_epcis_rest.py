"""EPCIS 2.0 REST binding (GS1 OpenAPI): capture → poll the job → query, paging, errors, client eventIDs."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from fastapi.testclient import TestClient

from provenance.epcis import canonical_epc
from tests.api.conftest import auth, create_enterprise

SCHEMA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "epcis" / "EPCIS-JSON-Schema.json"
SGTIN = "urn:epc:id:sgtin:4012345.011111.{}"
LGTIN = "urn:epc:class:lgtin:4012345.011111.K52000"
READ_POINT = "urn:epc:id:sgln:4012345.00001.0"


@pytest.fixture(autouse=True)
def _need_schema() -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"EPCIS JSON Schema not found at {SCHEMA} (../shared/data beside the project)")


def _event(i: int, **kw: Any) -> dict[str, Any]:
    ev = {"type": "ObjectEvent", "eventID": f"urn:uuid:{uuid.UUID(int=i + 1)}", "action": "OBSERVE",
          "bizStep": "inspecting", "disposition": "conformant", "eventTime": f"2026-03-02T06:0{i}:00Z",
          "eventTimeZoneOffset": "+00:00", "epcList": [SGTIN.format(f"P-{i}")], "readPoint": {"id": READ_POINT}}
    ev.update(kw)
    return ev


def _doc(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"], "type": "EPCISDocument",
            "schemaVersion": "2.0", "creationDate": "2026-03-02T06:00:00Z", "epcisBody": {"eventList": events}}


def _capture(client: TestClient, key: str, doc: dict[str, Any], behaviour: str | None = None) -> dict[str, Any]:
    headers = auth(key) | ({"GS1-Capture-Error-Behaviour": behaviour} if behaviour else {})
    r = client.post("/capture", json=doc, headers=headers)
    assert r.status_code == 202, r.text
    assert r.headers["GS1-EPCIS-Version"] == "2.0.0" and r.headers["GS1-CBV-Version"] == "2.0.0"
    location = r.headers["location"]
    assert location.startswith("/capture/")
    job = client.get(location, headers=auth(key))  # poll the job
    assert job.status_code == 200 and job.headers["GS1-EPCIS-Version"] == "2.0.0"
    body = job.json()
    assert body["running"] is False and body["captureID"] == location.rsplit("/", 1)[1]
    return body


def _events(r: Any) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    return r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]


def test_capture_poll_query_round_trip(client: TestClient, manufacturer: dict[str, Any]) -> None:
    key = manufacturer["api_key"]
    events = [_event(0, action="ADD"), _event(1), _event(2, epcList=[], quantityList=[
        {"epcClass": LGTIN, "quantity": 5}])]
    job = _capture(client, key, _doc(events))
    assert job["success"] is True and job["errors"] == [] and job["captureErrorBehaviour"] == "rollback"
    # the client's eventID is kept; the GS1 hash ID is returned beside it
    assert [e["eventID"] for e in job["events"]] == [e["eventID"] for e in events]
    assert all(e["eventHashID"].startswith("ni:///sha-256;") for e in job["events"])
    # each event became a signed record, pending anchoring like /v1 captures
    rec = client.get(f"/v1/identifiers/{job['events'][0]['identifier']}").json()
    assert rec["kind"] == "epcis_event" and rec["status"] == "pending"
    # EQ_eventID by the client's ID and by the hash ID
    one = _events(client.get("/events", params={"EQ_eventID": events[1]["eventID"]}))
    assert [e["eventID"] for e in one] == [events[1]["eventID"]]
    by_hash = _events(client.get("/events", params={"EQ_eventID": job["events"][1]["eventHashID"]}))
    assert [e["eventID"] for e in by_hash] == [events[1]["eventID"]]
    # EQ_action, MATCH_epcClass (and a GTIN pattern), pipe-delimited OR
    assert [e["eventID"] for e in _events(client.get("/events", params={"EQ_action": "ADD"}))] == [events[0]["eventID"]]
    assert [e["eventID"] for e in _events(client.get("/events", params={"MATCH_epcClass": LGTIN}))] == [
        events[2]["eventID"]]
    pattern = "urn:epc:idpat:sgtin:4012345.011111.*"
    assert len(_events(client.get("/events", params={"MATCH_epc": SGTIN.format("P-0") + "|" + SGTIN.format("P-1")})))\
        == 2
    assert len(_events(client.get("/events", params={"MATCH_epcClass": pattern}))) == 1
    assert _events(client.get("/events", params={"EQ_action": "DELETE"})) == []
    # an unknown parameter is refused, never ignored
    r = client.get("/events", params={"EQ_eventId": "x"})  # wrong case
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "epcisException:QueryParameterException" and "EQ_eventId" in r.json()["detail"]
    assert r.headers["GS1-EPCIS-Version"] == "2.0.0"
    for bad in ({"orderBy": "eventTime"}, {"EQ_action": "LOOK"}, {"perPage": "0"}, {"GE_recordTime": "soon"}):
        r = client.get("/events", params=bad)
        assert r.status_code == 400 and r.json()["type"] == "epcisException:QueryParameterException", bad
    # /events/{eventID} by either identifier
    for ident in (events[1]["eventID"], job["events"][1]["eventHashID"]):
        r = client.get("/events/" + quote(ident, safe=""))
        assert [e["eventID"] for e in _events(r)] == [events[1]["eventID"]]
        assert r.headers["TL-Event-Hash-ID"] == job["events"][1]["eventHashID"]
    assert client.get("/events/urn:uuid:nothing").json()["type"] == "epcisException:NoSuchResourceException"
    # /v1 stays, learns the three filters and no longer ignores an unknown parameter
    v1 = client.get("/v1/epcis/events", params={"EQ_eventID": events[1]["eventID"]}).json()
    assert [e["eventID"] for e in v1["epcisBody"]["queryResults"]["resultsBody"]["eventList"]] == [events[1]["eventID"]]
    v1 = client.get("/v1/epcis/events", params={"MATCH_epcClass": LGTIN, "EQ_action": "OBSERVE"}).json()
    assert len(v1["epcisBody"]["queryResults"]["resultsBody"]["eventList"]) == 1
    r = client.get("/v1/epcis/events", params={"EQ_eventId": "x"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "query.EQ_eventId"
    r = client.get("/v1/epcis/events", params={"EQ_action": "LOOK"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "query.EQ_action"


def test_paging_link_and_discovery(client: TestClient, manufacturer: dict[str, Any]) -> None:
    key = manufacturer["api_key"]
    _capture(client, key, _doc([_event(i) for i in range(3)]))
    r = client.get("/events", params={"perPage": 2, "EQ_bizStep": "inspecting"})
    assert len(_events(r)) == 2
    link = r.headers["link"]
    assert link.endswith('>; rel="next"') and r.headers["GS1-Next-Page-Token-Expires"].endswith("Z")
    nxt = urlsplit(link[1:link.index(">")])
    page2 = client.get(f"{nxt.path}?{nxt.query}")
    assert len(_events(page2)) == 1 and "link" not in page2.headers
    token = dict(p.split("=", 1) for p in nxt.query.split("&"))["nextPageToken"]
    # a page token cannot be replayed against another query, nor forged
    other = client.get("/events", params={"perPage": 2, "nextPageToken": token})
    assert other.status_code == 400 and other.json()["type"] == "epcisException:QueryParameterException"
    assert client.get("/events", params={"nextPageToken": "garbage"}).status_code == 400
    # discovery and per-vocabulary events
    assert client.get("/eventTypes").json()["member"] == sorted(
        ["AggregationEvent", "AssociationEvent", "ObjectEvent", "TransactionEvent", "TransformationEvent"])
    assert client.get("/eventTypes/ObjectEvent").json()["member"] == ["events"]
    assert len(_events(client.get("/eventTypes/ObjectEvent/events"))) == 3
    assert client.get("/eventTypes/CoilEvent").status_code == 404
    assert client.get("/bizSteps").json()["member"] == ["inspecting"]
    assert len(_events(client.get("/bizSteps/urn:epcglobal:cbv:bizstep:inspecting/events"))) == 3
    assert client.get("/dispositions").json()["member"] == ["conformant"]
    rp = canonical_epc(READ_POINT)
    assert client.get("/readPoints").json()["member"] == [rp]
    assert len(_events(client.get("/readPoints/" + quote(rp, safe="") + "/events"))) == 3
    epc = SGTIN.format("P-1")
    assert len(_events(client.get(f"/epcs/{quote(epc, safe='')}/events"))) == 1
    assert client.get(f"/epcs/{quote(epc, safe='')}").json()["member"] == ["events"]
    assert client.get("/epcs/" + quote(SGTIN.format("NOPE"), safe="")).status_code == 404
    r = client.get("/bizSteps/inspecting/events", params={"EQ_bizStep": "shipping"})
    assert r.status_code == 400  # the path already fixes EQ_bizStep
    opts = client.options("/capture")
    assert opts.status_code == 204 and int(opts.headers["GS1-EPCIS-Capture-Limit"]) >= 1000
    assert int(opts.headers["GS1-EPCIS-Capture-File-Size-Limit"]) == 16 * 1024 * 1024
    assert "POST" in opts.headers["allow"] and opts.headers["GS1-Capture-Error-Behaviour"] == "all"
    for path in ("/events", "/eventTypes/ObjectEvent/events", "/bizSteps", "/epcs/x/events"):
        opts = client.options(path)
        assert opts.status_code == 204 and "GET" in opts.headers["allow"] and opts.headers["GS1-EPCIS-Max"] == "2.0.0"
    # an EPCISQueryDocument (e.g. another repository's query answer) is captured too
    from api.routes.epcis_rest import query_document

    job = _capture(client, key, query_document([_event(7)]))
    assert job["success"] is True and job["events"][0]["eventID"] == _event(7)["eventID"]
    jobs = client.get("/capture", headers=auth(key))
    assert jobs.status_code == 200 and len(jobs.json()) == 2


def test_rollback_and_proceed(client: TestClient, manufacturer: dict[str, Any]) -> None:
    key = manufacturer["api_key"]
    good, bad = _event(0), _event(1, eventTime="yesterday")
    job = _capture(client, key, _doc([good, bad]))  # rollback: nothing stored
    assert job["success"] is False and job["events"] == []
    assert job["errors"][0]["type"] == "epcisException:ValidationException" and job["errors"][0]["eventIndex"] == 1
    assert _events(client.get("/events")) == []
    job = _capture(client, key, _doc([bad, good]), behaviour="proceed")  # proceed: the good one is kept
    assert job["success"] is False and [e["index"] for e in job["events"]] == [1]
    assert job["errors"][0]["eventIndex"] == 0
    assert [e["eventID"] for e in _events(client.get("/events"))] == [good["eventID"]]
    r = client.post("/capture", json=_doc([good]), headers=auth(key) | {"GS1-Capture-Error-Behaviour": "maybe"})
    assert r.status_code == 400 and r.json()["type"] == "epcisException:ValidationException"
    r = client.post("/capture", json=_doc([good] * 10_001), headers=auth(key))  # over GS1-EPCIS-Capture-Limit
    assert r.status_code == 413 and r.json()["type"] == "epcisException:CaptureLimitExceededException"
    r = client.post("/capture", json={"type": "EPCISMasterDataDocument"}, headers=auth(key))
    assert r.status_code == 400 and "EPCISDocument" in r.json()["detail"]


def test_post_event_and_dishonest_members(client: TestClient, manufacturer: dict[str, Any]) -> None:
    key = manufacturer["api_key"]
    ev = _event(0)
    r = client.post("/events", json=ev, headers=auth(key))
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/events/" + quote(ev["eventID"], safe="")
    assert client.get(r.headers["location"]).status_code == 200
    again = client.post("/events", json=ev, headers=auth(key))
    assert again.status_code == 409 and again.json()["type"] == "epcisException:ResourceAlreadyExistsException"
    # another member reuses that eventID for a different event: refused, the original stays the answer
    rival = create_enterprise(client, name="Rival Stahl AG")
    forged = copy.deepcopy(ev) | {"disposition": "non_conformant"}
    r = client.post("/events", json=forged, headers=auth(rival["api_key"]))
    assert r.status_code == 409 and "eventID" in r.json()["detail"]
    job = _capture(client, rival["api_key"], _doc([forged]))
    assert job["success"] is False and job["errors"][0]["type"] == "epcisException:ResourceAlreadyExistsException"
    only = _events(client.get("/events/" + quote(ev["eventID"], safe="")))
    assert [e["disposition"] for e in only] == ["conformant"]
    # a member cannot read another member's capture job; anonymous capture is refused as a problem
    assert client.get(f"/capture/{job['captureID']}", headers=auth(key)).status_code == 404
    r = client.post("/capture", json=_doc([_event(5)]))
    assert r.status_code == 401 and r.json()["type"] == "epcisException:SecurityException"
    assert r.headers["GS1-EPCIS-Version"] == "2.0.0"
    r = client.post("/capture", content=b"<epcis/>", headers=auth(key) | {"Content-Type": "application/xml"})
    assert r.status_code == 415 and r.json()["type"] == "epcisException:UnsupportedMediaTypeException"
    r = client.get("/events", headers={"GS1-EPCIS-Version": "1.2.0"})
    assert r.status_code == 406 and r.json()["type"] == "epcisException:NotAcceptableException"
    # the /v1 endpoints stay
    assert client.get("/v1/epcis/events").status_code == 200
