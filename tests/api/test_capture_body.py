"""``POST /v1/epcis/capture`` parses its body once: the strict JSON reader's value is the document (no second
``json.loads`` by FastAPI); empty and non-JSON bodies are still 422 naming ``body``, after the API key check."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

import provenance.strict_json
from provenance.supply_chain import generate
from tests.api.conftest import auth


def _doc(prefix: str) -> dict[str, Any]:
    chain = generate(target_events=30, mill_prefix=prefix, seed=9)
    doc = copy.deepcopy(chain.documents[0][1])
    doc["epcisBody"] = {"eventList": [e for _, d in chain.documents for e in d["epcisBody"]["eventList"]][:30]}
    return doc


def test_capture_body_is_parsed_once(client: TestClient, manufacturer: dict[str, Any],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    strict = provenance.strict_json.loads

    def counting(raw: Any, limits: Any = None) -> Any:
        calls.append(len(raw))
        return strict(raw, limits)

    async def never(self: Request) -> Any:
        raise AssertionError("the capture body was parsed a second time")

    monkeypatch.setattr(provenance.strict_json, "loads", counting)
    monkeypatch.setattr(Request, "json", never)
    doc = _doc(manufacturer["prefix"])
    r = client.post("/v1/epcis/capture", json=doc, headers=auth(manufacturer["api_key"]))
    assert r.status_code == 201, r.text[:300]
    assert r.json()["captured"] == len(doc["epcisBody"]["eventList"])
    assert len(calls) == 1  # the reader's parse, and no other


def test_empty_and_foreign_bodies_are_422_after_the_key_check(client: TestClient,
                                                             manufacturer: dict[str, Any]) -> None:
    assert client.post("/v1/epcis/capture", content=b"", headers={"content-type": "application/json"}
                       ).status_code == 401
    r = client.post("/v1/epcis/capture", content=b"", headers={**auth(manufacturer["api_key"]),
                                                                "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body", r.text
    r = client.post("/v1/epcis/capture", content=b"<EPCISDocument/>", headers={**auth(manufacturer["api_key"]),
                                                                                "content-type": "application/xml"})
    assert r.status_code in (415, 422) and "body" in r.text, r.text
