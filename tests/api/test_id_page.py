"""``/id/{identifier}``: JSON for EPC URNs and Digital Link URIs, units only on numbers, a page that fits a phone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from api.routes.pages import render_page
from api.settings import Settings
from provenance.epcis import canonical_epc
from provenance.supply_chain import generate
from tests.api.conftest import auth, create_enterprise, sample
from tests.api.live_server import serve
from tests.phone_layout import CHROMIUM, PHONE, phone_layout

SCHEMA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "epcis" / "EPCIS-JSON-Schema.json"
JSON = {"Accept": "application/json"}


def _load(client: Any) -> tuple[Any, dict[str, dict[str, Any]]]:
    if not SCHEMA.is_file():
        pytest.skip(f"EPCIS JSON Schema not found at {SCHEMA} (../shared/data beside the project)")
    ents = {"mill": create_enterprise(client, name="Mill", roles=["manufacturer"])}
    for role in ("service_center", "stamping", "oem"):
        ents[role] = create_enterprise(client, name=role, roles=["supplier"])
    chain = generate(heats=1, slabs_per_heat=1, slits_per_coil=2, blanks_per_slit=2, parts_per_assembly=2,
                     non_conformant_rate=0.3, mill_prefix=ents["mill"]["prefix"], seed=3)
    for cert in chain.certificates:
        assert client.post("/v1/coils/certificates", json=cert, headers=auth(ents["mill"]["api_key"])).status_code \
            == 201
    for role, doc in chain.documents:
        r = client.post("/v1/epcis/capture", json=doc, headers=auth(ents[role]["api_key"]))
        assert r.status_code == 201, r.text
    return chain, ents


def test_json_for_epc_urn_and_digital_link(client: TestClient) -> None:
    chain, _ = _load(client)
    dl = sorted(chain.truth.part_heat)[0]  # a stamped part, as its GS1 Digital Link URI
    by_dl = client.get("/id/" + quote(dl, safe=""), headers=JSON)
    assert by_dl.status_code == 200, by_dl.text
    body = by_dl.json()
    assert body["epc"] == dl and body["identifier"].endswith(".21." + dl.rsplit("/", 1)[1])
    assert body["digital_link"] == "https://trace.example" + dl.removeprefix("https://id.gs1.org")
    assert body["lineage"]["direction"] == "upstream" and len(body["lineage"]["nodes"]) > 3
    assert "verified" in body["verification"]
    assert client.get("/id/" + body["identifier"], headers=JSON).json()["epc"] == dl
    # an upstream blank by its EPC URN, as the service centre captured it (the Handle API serves that spelling)
    urns = {}
    for n in body["lineage"]["nodes"]:
        got = client.get(f"/api/handles/{n['identifier']}", params={"type": "EPC_URN"}).json().get("values")
        if got:
            urns[n["identifier"]] = got[0]["data"]["value"]
    ident, urn = next((i, u) for i, u in urns.items() if u.startswith("urn:epc:id:sgtin:"))
    by_urn = client.get("/id/" + quote(urn, safe=""), headers=JSON)
    assert by_urn.status_code == 200 and by_urn.json()["identifier"] == ident
    assert by_urn.json()["epc"] == canonical_epc(urn)
    # a mother coil named by its hdl: key gives its certificate record JSON
    coil_ident = next(n["identifier"] for n in body["lineage"]["nodes"] if n["certificate"])
    coil = client.get("/id/" + quote("hdl:" + coil_ident, safe=""), headers=JSON)
    assert coil.status_code == 200 and coil.json()["summary"]["coil"], coil.text
    # garbage is a 422, an unknown part a 404
    assert client.get("/id/urn:epc:id:sgtin:4012345.000009.404", headers=JSON).status_code == 404
    assert client.get("/id/" + quote("https://id.gs1.org/01/123", safe=""), headers=JSON).status_code == 422


def test_units_only_on_numeric_values() -> None:
    data = {
        "identifier": "88.1.1/C-1",
        "summary": {"dimensions": {"Form": "Coil", "Width": 1500, "WallThickness": 4.0, "Unit": "mm"},
                    "mass": {"kind": "actual", "value": None, "unit": "kg"},
                    "mechanical_properties": [{"box": "C11", "name": "ReH", "value": 412, "unit": "MPa"},
                                              {"box": "C40", "name": "Impact", "value": "passed", "unit": "J"}],
                    "chemical_composition": [{"box": "C71", "symbol": "C", "actual": "0.062", "unit": "%"}]},
        "resolution": {"values": [], "links": {"qr_svg": "/q.svg", "verify": "/v", "self": "/s"},
                       "record_digest": "0x" + "ab" * 32},
        "verification": {"verified": False, "checks": []},
    }
    html = render_page(data)
    assert "Form Coil," in html and "Coil mm" not in html
    assert "Width 1500 mm" in html and "WallThickness 4.0 mm" in html
    assert "kg" not in html  # no mass value: no unit either
    assert re.search(r"<td>412</td><td>MPa</td>", html)
    assert re.search(r"<td>passed</td><td></td>", html) and ">J<" not in html
    assert re.search(r"<td>0.062</td><td>%</td>", html)


@pytest.fixture
def live(settings: Settings) -> Iterator[str]:
    with serve(settings) as url:
        yield url


@pytest.mark.skipif(CHROMIUM is None, reason="Debian 'chromium' not installed (apt-get install -y chromium)")
def test_pages_fit_a_phone(live: str, tmp_path: Path) -> None:
    """The coil page and a part's lineage page at 390 px: nothing reaches past the viewport."""
    with httpx.Client(base_url=live, timeout=30) as c:
        chain, ents = _load(c)
        coil = c.post("/v1/coils/certificates", json=sample(), headers=auth(ents["mill"]["api_key"])).json()
    part = sorted(chain.truth.part_heat)[0]
    for path in (f"/id/{coil['identifier']}", "/id/" + quote(part, safe="")):
        got = phone_layout(live + path, tmp_path / "profile")
        assert got["clientWidth"] == PHONE["width"], got
        assert got["scrollWidth"] <= PHONE["width"], (path, got)
