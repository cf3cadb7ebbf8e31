"""GS1 Digital Link resolver and QR content, checked with GS1's digital-link.js toolkit (npm) as outside validator."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api.qr import qr_content, render_qr
from provenance.digital_link import digital_link_for_key
from provenance.epcis import canonical_epc, gs1_check_digit
from tests.api.conftest import auth

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT.parent / "shared" / "data" / "epcis" / "EPCIS-JSON-Schema.json"
NODE = shutil.which("node")
SGTIN = "urn:epc:id:sgtin:4012345.011111.P-77"  # GTIN 04012345111118, serial P-77
LGTIN = "urn:epc:class:lgtin:4012345.011111.K52000"  # same GTIN, lot (heat) K52000
GTIN = "04012345111118"


def _doc() -> dict[str, Any]:
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-03-02T06:00:00Z",
        "epcisBody": {"eventList": [
            {"type": "ObjectEvent", "action": "OBSERVE", "bizStep": "inspecting", "disposition": "conformant",
             "eventTime": "2026-03-02T06:00:00Z", "eventTimeZoneOffset": "+00:00", "epcList": [SGTIN],
             "quantityList": [{"epcClass": LGTIN, "quantity": 3}],
             "readPoint": {"id": "urn:epc:id:sgln:4012345.00001.0"}},
        ]},
    }


@pytest.fixture
def captured(client: TestClient, manufacturer: dict[str, Any]) -> dict[str, Any]:
    if not SCHEMA.is_file():
        pytest.skip(f"EPCIS JSON Schema not found at {SCHEMA} (../shared/data beside the project)")
    r = client.post("/v1/epcis/capture", json=_doc(), headers=auth(manufacturer["api_key"]))
    assert r.status_code == 201, r.text
    return manufacturer


def test_resolver_redirects_linkset_and_errors(client: TestClient, captured: dict[str, Any]) -> None:
    ident = f"{captured['prefix']}/01.{GTIN}.21.P-77"
    r = client.get(f"/01/{GTIN}/21/P-77?17=261231", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == f"https://trace.example/id/{ident}"
    assert 'rel="linkset"' in r.headers["link"] and r.headers["access-control-allow-origin"] == "*"
    assert client.head(f"/01/{GTIN}/21/P-77", follow_redirects=False).status_code == 307
    # a requested link type
    r = client.get(f"/01/{GTIN}/21/P-77?linkType=gs1:traceability", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"].endswith(f"/v1/lineage/{ident}?direction=upstream")
    # linkset by linkType=all and by Accept
    for kw in ({"params": {"linkType": "all"}}, {"headers": {"Accept": "application/linkset+json"}}):
        r = client.get(f"/01/{GTIN}/21/P-77", **kw)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/linkset+json")
        ctx = r.json()["linkset"][0]
        assert ctx["anchor"] == f"https://trace.example/01/{GTIN}/21/P-77"
        for term in ("pip", "traceability", "certificationInfo", "epcis", "defaultLink"):
            assert ctx[f"https://gs1.org/voc/{term}"][0]["href"].startswith("https://trace.example/"), term
        epcis = ctx["https://gs1.org/voc/epcis"][0]["href"]
        assert epcis.endswith("/epcs/" + quote(canonical_epc(SGTIN), safe="") + "/events")
    # the lot resolves to the LGTIN object
    lot_ident = f"{captured['prefix']}/01.{GTIN}.10.K52000"
    assert client.get(f"/01/{GTIN}/10/K52000", follow_redirects=False).headers["location"].endswith(lot_ident)
    # a counterfeiter prints an unknown serial on the genuine lot's label: no redirect to the lot's verified
    # page, a 404 that only names the lot as related
    fake = client.get(f"/01/{GTIN}/10/K52000/21/FAKE-1", follow_redirects=False)
    assert fake.status_code == 404 and "serial is not known" in fake.json()["detail"]
    assert fake.json()["related"] == f"https://trace.example/id/{lot_ident}"
    # the serial alone still resolves when lot and serial are both given
    assert client.get(f"/01/{GTIN}/10/K52000/21/P-77", follow_redirects=False).status_code == 307
    # unknown GTIN → 404 problem; bad check digit → 400 problem
    other = "0401234522222" + gs1_check_digit("0401234522222")
    r = client.get(f"/01/{other}/21/1", follow_redirects=False)
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 404 and other in r.json()["detail"]
    r = client.get(f"/01/{GTIN[:-1]}9/21/P-77", follow_redirects=False)
    assert r.status_code == 400 and "check digit" in r.json()["detail"]
    desc = client.get("/.well-known/gs1resolver").json()
    assert desc["resolverRoot"] == "https://trace.example" and "01" in desc["supportedPrimaryKeys"]
    assert client.options(f"/01/{GTIN}").status_code == 204


def test_qr_encodes_digital_link_for_gs1_objects_and_id_for_coils(client: TestClient, captured: dict[str, Any],
                                                                 ingested: dict[str, Any]) -> None:
    ident = f"{captured['prefix']}/01.{GTIN}.21.P-77"
    want = f"https://trace.example/01/{GTIN}/21/P-77"
    assert qr_content("https://trace.example", ident, canonical_epc(SGTIN)) == want
    svg = client.get(f"/v1/identifiers/{ident}/qr.svg")
    assert svg.status_code == 200 and svg.content == render_qr(want, "svg")
    page = client.get(f"/id/{ident}")  # the part's page shows that QR code
    assert page.status_code == 200 and f'src="https://trace.example/v1/identifiers/{ident}/qr.svg"' in page.text
    coil = ingested["identifier"]
    svg = client.get(f"/v1/identifiers/{coil}/qr.svg")
    assert svg.content == render_qr(f"https://trace.example/id/{coil}", "svg")
    assert client.get(f"/v1/identifiers/{captured['prefix']}/nothing/qr.svg").status_code == 404


@pytest.mark.skipif(NODE is None or not (ROOT / "node_modules" / "digital-link.js").is_dir(),
                    reason="node or node_modules/digital-link.js missing (npm ci installs GS1's digital-link.js)")
def test_emitted_uris_pass_gs1_digital_link_js(client: TestClient, captured: dict[str, Any]) -> None:
    """Every Digital Link URI we emit (QR content, linkset anchors) is valid for GS1's own toolkit,
    and a URI with a forged check digit is not: the outside validator really checks."""
    keys = [canonical_epc(SGTIN), canonical_epc(LGTIN), canonical_epc("urn:epc:id:sscc:4012345.0000000001"),
            canonical_epc("urn:epc:id:sgln:4012345.00001.7"), canonical_epc("urn:epc:id:sgtin:4012345.011111.A%2FB")]
    uris = [digital_link_for_key(k, "https://trace.example") for k in keys]
    assert all(uris)
    anchor = client.get(f"/01/{GTIN}/21/P-77", params={"linkType": "all"}).json()["linkset"][0]["anchor"]
    uris.append(anchor)
    forged = uris[0].replace(GTIN, GTIN[:-1] + "9")
    script = ("const {DigitalLink}=require('digital-link.js');"
              "const out={};for(const u of JSON.parse(process.argv[1])){out[u]=DigitalLink(u).isValid();}"
              "console.log(JSON.stringify(out));")
    proc = subprocess.run([NODE, "-e", script, json.dumps([*uris, forged])], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    verdicts = json.loads(proc.stdout)
    assert {u: verdicts[u] for u in uris} == {u: True for u in uris}
    assert verdicts[forged] is False


def test_resolver_serves_captured_objects_from_memory(client: TestClient, captured: dict[str, Any]) -> None:
    """A captured serial's answer is kept (objects are insert-only); a lot that falls back to its GTIN is not:
    once that lot is captured it must resolve to itself. Linksets carry a strong ETag (304)."""
    from sqlalchemy import event

    from api.read_cache import DIGITAL_LINK

    reads = client.app.state.tl.reads  # type: ignore[attr-defined]
    first = client.get(f"/01/{GTIN}/21/P-77", follow_redirects=False)
    engine = client.app.state.tl.engine  # type: ignore[attr-defined]
    seen: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        again = client.get(f"/01/{GTIN}/21/P-77", follow_redirects=False)
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    assert seen == [] and again.headers["location"] == first.headers["location"]
    ls = client.get(f"/01/{GTIN}/21/P-77", params={"linkType": "linkset"})
    assert ls.status_code == 200 and ls.headers["ETag"].startswith('"')
    cond = client.get(f"/01/{GTIN}/21/P-77", params={"linkType": "linkset"},
                      headers={"If-None-Match": ls.headers["ETag"]})
    assert cond.status_code == 304
    # a lot never captured falls back to the GTIN's object: not kept, the lot may be captured later
    fallback = client.get(f"/01/{GTIN}/10/NEVER-SEEN", follow_redirects=False)
    if fallback.status_code == 307:
        assert reads.get(DIGITAL_LINK, canonical_epc("urn:epc:class:lgtin:4012345.011111.NEVER-SEEN")) is None
