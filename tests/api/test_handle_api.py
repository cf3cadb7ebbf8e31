"""``/api/handles``: the Handle.net proxy REST API, checked with pyhandle (a client nobody here wrote)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient
from pyhandle.client.resthandleclient import RESTHandleClient
from pyhandle.handleexceptions import HandleNotFoundException

from api.settings import Settings
from tests.api.conftest import auth, create_enterprise, sample
from tests.api.live_server import serve

Z_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
def live(settings: Settings) -> Iterator[str]:
    """The API under uvicorn on a free loopback port (pyhandle speaks HTTP through requests)."""
    with serve(settings) as url:
        yield url


def _post_certificate(base: str) -> tuple[str, dict[str, Any]]:
    with httpx.Client(base_url=base, timeout=10) as c:
        ent = create_enterprise(c)  # type: ignore[arg-type]  # same calls as a TestClient
        r = c.post("/v1/coils/certificates", json=sample(), headers=auth(ent["api_key"]))
        assert r.status_code == 201, r.text
        return r.json()["identifier"], ent


def test_pyhandle_resolves_url_and_reports_unknown_handles(live: str) -> None:
    identifier, ent = _post_certificate(live)
    client = RESTHandleClient.instantiate_for_read_access(live)
    # the URL value a Handle client follows is our /id page of that identifier
    url = client.get_value_from_handle(identifier, "URL")
    assert url == f"https://trace.example/id/{identifier}"
    record = client.retrieve_handle_record_json(identifier)
    assert record["responseCode"] == 1 and record["handle"] == identifier
    by_type = {v["type"]: v for v in record["values"]}
    assert by_type["RECORD_DIGEST"]["data"] == {"format": "string", "value": by_type["RECORD_DIGEST"]["data"]["value"]}
    assert re.fullmatch(r"0x[0-9a-f]{64}", by_type["RECORD_DIGEST"]["data"]["value"])
    assert by_type["OWNER"]["data"]["value"] == ent["prefix"]
    admin = by_type["HS_ADMIN"]
    assert admin["index"] == 100 and admin["data"]["format"] == "admin"
    assert admin["data"]["value"] == {"handle": f"0.NA/{ent['prefix']}", "index": 200, "permissions": "011111110011"}
    for v in record["values"]:
        assert Z_TIME.fullmatch(v["timestamp"]) and v["ttl"] == 86400
        assert v["data"]["format"] in ("string", "admin")
    # pyhandle's simple dict view works on our values too
    assert client.retrieve_handle_record(identifier)["STATUS"] == "pending"
    # unknown handle under a real prefix: HandleNotFoundException (HTTP 404, responseCode 100)
    with pytest.raises(HandleNotFoundException):
        client.get_value_from_handle(f"{ent['prefix']}/NO-SUCH-COIL", "URL")
    assert client.retrieve_handle_record(f"{ent['prefix']}/NO-SUCH-COIL") is None
    # index filter through pyhandle's own parameter
    only = client.retrieve_handle_record_json(identifier, indices=[1, 100])
    assert sorted(v["index"] for v in only["values"]) == [1, 100]


def test_filters_codes_and_ignored_options(client: TestClient, ingested: dict[str, Any]) -> None:
    ident = ingested["identifier"]
    path = f"/api/handles/{ident}"
    r = client.get(path, params=[("type", "URL"), ("type", "HS_ADMIN")])
    assert r.status_code == 200 and [v["type"] for v in r.json()["values"]] == ["URL", "HS_ADMIN"]
    r = client.get(path, params=[("index", "2"), ("type", "URL")])  # union of index and type
    assert sorted(v["index"] for v in r.json()["values"]) == [1, 2]
    r = client.get(path, params={"type": "NOPE"})
    assert r.status_code == 200 and r.json() == {"responseCode": 200, "handle": ident, "values": []}
    r = client.get(path, params={"index": "x"})
    assert r.status_code == 400 and r.json()["responseCode"] == 2 and "index" in r.json()["message"]
    # auth / publicOnly ignored, pretty indents, hdl: prefix tolerated, URL-encoded handle accepted
    plain = client.get(path).json()
    assert client.get(path, params={"auth": "true", "publicOnly": "false"}).json() == plain
    pretty = client.get(path + "?pretty")
    assert pretty.text.startswith("{\n") and json.loads(pretty.text) == plain
    assert client.get(f"/api/handles/hdl:{ident}").json() == plain
    assert client.get("/api/handles/" + quote(ident, safe="")).json() == plain
    # unknown / malformed / foreign prefix
    r = client.get("/api/handles/88.1.1/NO-SUCH")
    assert r.status_code == 404 and r.json()["responseCode"] == 100 and r.json()["handle"] == "88.1.1/NO-SUCH"
    r = client.get("/api/handles/88.01.1/x")
    assert r.status_code == 400 and r.json()["responseCode"] == 102
    r = client.get("/api/handles/10.1000/182")
    assert r.status_code == 400 and r.json()["responseCode"] == 301
    # the /v1 look-alike stays
    assert client.get(f"/v1/identifiers/{ident}").json()["identifier"] == ident


def test_anchor_value_once_anchored(client: TestClient, ingested: dict[str, Any], settings: Settings) -> None:
    """A dishonest operator cannot show an anchor that is not in the database: ANCHOR appears only when
    the record's batch says so, and its JSON names that batch's root."""
    from sqlmodel import Session, create_engine, select

    from api.models import Batch, Record

    ident = ingested["identifier"]
    assert "ANCHOR" not in {v["type"] for v in client.get(f"/api/handles/{ident}").json()["values"]}
    engine = create_engine(settings.database_url)
    with Session(engine) as s:
        rec = s.exec(select(Record).where(Record.identifier == ident)).one()
        batch = Batch(root="0x" + "ab" * 32, size=1, leaf_digests=[rec.record_digest], tx_hash="0x" + "cd" * 32,
                      block_number=7, block_hash="0x" + "ef" * 32, status="anchored")
        s.add(batch)
        s.flush()
        rec.batch_id, rec.leaf_index, rec.status = batch.id, 0, "anchored"
        s.add(rec)
        s.commit()
    engine.dispose()
    values = {v["type"]: v for v in client.get(f"/api/handles/{ident}").json()["values"]}
    anchor = json.loads(values["ANCHOR"]["data"]["value"])
    assert anchor["root"] == "0x" + "ab" * 32 and anchor["block_number"] == 7 and anchor["leaf_index"] == 0
    assert values["STATUS"]["data"]["value"] == "anchored"
