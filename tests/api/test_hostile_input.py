"""Hostile request bodies: the strict JSON reader refuses them before any work (issue 12).

Before: a 500-deep EPCIS extension was stored (201) and ``GET /v1/epcis/events`` answered 500 from
then on; duplicate keys were accepted (last wins), a lone surrogate was echoed in a 422, a chunked
3 MiB certificate was accepted. Each case below refuses with the limit's name; the worst document that
is still accepted reads back through every read endpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from provenance.strict_json import JsonLimits, StrictJsonError, loads, nesting_depth
from tests.api.conftest import auth, sample

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "epcis"
DEPTH_LIMIT = 32
#: depth of an event's extension member inside the EPCISDocument: document{ epcisBody{ eventList[ event{
EVENT_DEPTH = 4


def nested(depth: int) -> Any:
    """``depth`` levels of objects: {"example:n": {"example:n": … "leaf"}}."""
    value: Any = "leaf"
    for _ in range(depth):
        value = {"example:n": value}
    return value


def epcis_doc(extension: Any, epc: str = "urn:epc:id:sgtin:0614141.107346.9001") -> dict[str, Any]:
    return {
        "@context": ["https://gs1.github.io/EPCIS/epcis-context-simple.jsonld", {"example": "http://ns.example.com/"}],
        "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2024-01-01T00:00:00Z",
        "epcisBody": {"eventList": [{
            "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "shipping", "disposition": "in_transit",
            "epcList": [epc], "eventTime": "2024-01-01T00:00:00Z", "eventTimeZoneOffset": "+00:00",
            "readPoint": {"id": "urn:epc:id:sgln:0614141.07346.1234"}, "example:deep": extension,
        }]},
    }


def _need_schema() -> None:
    if not (SHARED / "EPCIS-JSON-Schema.json").is_file():
        pytest.skip(f"shared EPCIS schema not found at {SHARED} (../shared/data beside the project)")


def refused(r: Any, status: int, rule: str) -> str:
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert detail[0]["field"] == "body" and detail[0]["rule"] == rule, detail
    return detail[0]["message"]


# ------------------------------------------------------------------ the reader itself
def test_nesting_depth_ignores_brackets_in_strings() -> None:
    assert nesting_depth(b'{"a": "[[[[{{{{", "b": [[1]]}') == 3
    assert nesting_depth(b'"\\"[[[["') == 0
    assert nesting_depth(b"[" * 100_000) == 100_000


@pytest.mark.parametrize(("raw", "rule"), [
    (b'{"a": 1, "a": 2}', "duplicate_keys"),
    (b'{"q": NaN}', "finite_numbers"),
    (b'{"q": -Infinity}', "finite_numbers"),
    (b'{"q": 1e999}', "finite_numbers"),
    (b'{"n": "\\ud800"}', "unicode"),
    (b'{"\\udfff": 1}', "unicode"),
    (b'{"n": "\xff"}', "unicode"),
    (b'{"n": ' + b"9" * 81 + b"}", "max_int_digits"),
    (b'{"s": "' + b"x" * 11 + b'"}', "max_string_chars"),
    (b"[" + b"1," * 10 + b"1]", "max_array_items"),
    (b"[" * 33 + b"]" * 33, "max_depth"),
    (b"{", "syntax"),
])
def test_strict_reader_refuses(raw: bytes, rule: str) -> None:
    with pytest.raises(StrictJsonError) as info:
        loads(raw, JsonLimits(max_depth=32, max_string_chars=10, max_array_items=10))
    assert info.value.limit == rule


def test_strict_reader_accepts_the_limits_exactly() -> None:
    limits = JsonLimits(max_depth=32, max_string_chars=10, max_array_items=10)
    assert loads(b"[" * 32 + b"]" * 32, limits) is not None
    raw = b'{"s": "' + b"x" * 10 + b'", "a": [1,2,3,4,5,6,7,8,9,10], "e": "\\ud83d\\ude00"}'
    assert loads(raw, limits)["e"] == "\U0001f600"  # a surrogate pair is fine


# ------------------------------------------------------------------ through the API
def test_stored_poison_epcis_is_refused(client: TestClient, manufacturer: dict[str, Any]) -> None:
    r = client.post("/v1/epcis/capture", json=epcis_doc(nested(500)), headers=auth(manufacturer["api_key"]))
    message = refused(r, 422, "max_depth")
    assert f"at most {DEPTH_LIMIT}" in message
    assert client.get("/v1/epcis/events", params={"perPage": 1}).status_code == 200


def test_stored_poison_work_ticket_is_refused(client: TestClient, manufacturer: dict[str, Any]) -> None:
    body = {"document": nested(500), "issuer": 1, "permitter": 2, "leader": 3, "crew": []}
    refused(client.post("/v1/work-tickets", json=body, headers=auth(manufacturer["api_key"])), 422, "max_depth")


def test_duplicate_keys_in_a_signed_certificate_are_refused(client: TestClient, manufacturer: dict[str, Any]) -> None:
    raw = json.dumps(sample())[:-1] + ', "Certificate": {}}'
    r = client.post("/v1/coils/certificates", content=raw.encode(),
                    headers={**auth(manufacturer["api_key"]), "content-type": "application/json"})
    assert "Certificate" in refused(r, 422, "duplicate_keys")


def test_lone_surrogate_is_refused_and_not_echoed(client: TestClient) -> None:
    r = client.post("/v1/enterprises", content=b'{"name": "\\ud800", "roles": ["manufacturer"]}',
                    headers={"Authorization": "Bearer x", "content-type": "application/json"})
    message = refused(r, 422, "unicode")
    assert "\ud800" not in r.text and "\\ud800" not in message


def test_nan_quantity_is_refused(client: TestClient, manufacturer: dict[str, Any]) -> None:
    raw = json.dumps(epcis_doc("x")).replace('"example:deep": "x"', '"quantityList": [{"epcClass": '
                                                                      '"urn:epc:class:lgtin:4012345.012345.998877", '
                                                                      '"quantity": NaN}]')
    r = client.post("/v1/epcis/capture", content=raw.encode(),
                    headers={**auth(manufacturer["api_key"]), "content-type": "application/json"})
    refused(r, 422, "finite_numbers")


def test_chunked_body_limit_counts_streamed_bytes(client: TestClient, manufacturer: dict[str, Any]) -> None:
    """A 3 MiB certificate sent chunked (no Content-Length) against the 2 MiB route limit."""
    def chunks():
        yield b'{"Certificate": {"pad": "'
        for _ in range(3 * 1024):
            yield b"x" * 1024
        yield b'"}}'

    r = client.post("/v1/coils/certificates", content=chunks(),
                    headers={**auth(manufacturer["api_key"]), "content-type": "application/json"})
    assert "2097152 bytes" in refused(r, 413, "max_body_bytes")


def test_default_body_limit_on_other_writes(client: TestClient) -> None:
    r = client.post("/v1/enterprises", content=b'{"name": "' + b"x" * (1024 * 1024) + b'"}',
                    headers={"Authorization": "Bearer x", "content-type": "application/json"})
    refused(r, 413, "max_body_bytes")


def test_worst_accepted_document_reads_back_everywhere(client: TestClient, manufacturer: dict[str, Any]) -> None:
    """The deepest, longest-string EPCIS event still accepted is served by every read endpoint."""
    _need_schema()
    worst = nested(DEPTH_LIMIT - EVENT_DEPTH)
    inner = worst
    while isinstance(inner["example:n"], dict):
        inner = inner["example:n"]
    inner["example:n"] = "\u00e9" * 65_536  # the longest string (non-ASCII)
    doc = epcis_doc(worst)
    assert nesting_depth(json.dumps(doc).encode()) == DEPTH_LIMIT
    too_deep = epcis_doc({"example:n": worst})
    refused(client.post("/v1/epcis/capture", json=too_deep, headers=auth(manufacturer["api_key"])), 422, "max_depth")

    r = client.post("/v1/epcis/capture", json=doc, headers=auth(manufacturer["api_key"]))
    assert r.status_code == 201, r.text
    identifier = r.json()["events"][0]["identifier"]
    q = quote(identifier, safe="")
    events = client.get("/v1/epcis/events", params={"perPage": 1})
    assert events.status_code == 200 and "example:deep" in events.text
    epc = quote("urn:epc:id:sgtin:0614141.107346.9001", safe="")
    for path in (f"/v1/identifiers/{q}", f"/v1/verify/{q}", f"/v1/lineage/{epc}",
                 f"/id/{q}", f"/v1/identifiers/{q}/qr.png", f"/v1/identifiers/{q}/qr.svg",
                 "/v1/epcis/events?perPage=50", f"/v1/verify/{epc}?lineage=upstream",
                 f"/v1/lineage/{epc}?direction=downstream", f"/v1/provenance/{epc}/bundle", f"/id/{epc}"):
        got = client.get(path)
        assert got.status_code == 200, (path, got.status_code, got.text[:300])
    as_json = client.get(f"/id/{q}", headers={"Accept": "application/json"})
    assert as_json.status_code == 200
