"""Identifier resolution, QR codes and the /id page."""

from __future__ import annotations

import io
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

IDENT = "88.1.1/HK52791-CNW24-118734"


def test_resolution_shape(client: TestClient, ingested: dict[str, Any], manufacturer: dict[str, Any]) -> None:
    resp = client.get(f"/v1/identifiers/{IDENT}")
    assert resp.status_code == 200
    body = resp.json()
    assert body["identifier"] == IDENT and body["status"] == "pending"
    assert body["record_digest"] == ingested["record_digest"]
    assert body["owner"] == {
        "id": manufacturer["id"],
        "name": manufacturer["name"],
        "prefix": "88.1.1",
        "address": manufacturer["address"],
    }
    by_index = {v["index"]: v for v in body["values"]}
    assert by_index[1]["type"] == "URL" and by_index[1]["data"]["value"] == f"https://trace.example/id/{IDENT}"
    assert by_index[2]["data"]["value"] == ingested["record_digest"]
    assert by_index[3]["type"] == "OWNER"
    assert 4 not in by_index  # not anchored yet
    assert by_index[100]["data"]["value"]["address"] == manufacturer["address"]
    assert all(v["timestamp"] for v in body["values"])
    assert set(body["links"]) == {"self", "qr_png", "qr_svg", "page", "verify"}


def test_unknown_and_malformed(client: TestClient, ingested: dict[str, Any]) -> None:
    missing = client.get("/v1/identifiers/88.1.1/NOPE")
    assert missing.status_code == 404 and "88.1.1/NOPE" in missing.json()["detail"]
    bad = client.get("/v1/identifiers/99.1/x y")
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["field"] == "path.identifier"
    assert client.get("/v1/identifiers/88.1.1").status_code == 422
    assert client.get("/v1/identifiers/88.1.1/NOPE/qr.png").status_code == 404


def test_qr_png_and_svg(client: TestClient, ingested: dict[str, Any]) -> None:
    png = client.get(f"/v1/identifiers/{IDENT}/qr.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    img = Image.open(io.BytesIO(png.content))
    assert img.format == "PNG" and img.size[0] == img.size[1] > 100
    svg = client.get(f"/v1/identifiers/{IDENT}/qr.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.content.lstrip().startswith(b"<svg") or b"<svg" in svg.content[:200]
    again = client.get(f"/v1/identifiers/{IDENT}/qr.png")
    assert again.content == png.content
    state = client.app.state.tl  # type: ignore[attr-defined]
    assert (f"https://trace.example/id/{IDENT}", "png") in state.qr_cache


def test_id_page_html_and_json(client: TestClient, ingested: dict[str, Any]) -> None:
    page = client.get(f"/id/{IDENT}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for needle in ("NW24-118734", "S355MC", "K52791", "Nordstahl Walzwerk GmbH", "pending anchoring", "qr.svg"):
        assert needle in html, needle
    assert "✗" in html and "✓" in html
    js = client.get(f"/id/{IDENT}", headers={"Accept": "application/json"})
    assert js.status_code == 200 and js.headers["content-type"] == "application/json"
    data = js.json()
    assert data["summary"]["grade"] == "S355MC"
    assert data["verification"]["verified"] is False
    assert data["resolution"]["identifier"] == IDENT


def test_id_page_escapes_html(client: TestClient, manufacturer: dict[str, Any]) -> None:
    from tests.api.conftest import auth, sample

    doc = sample()
    doc["Certificate"]["ProductDescription"]["B01"] = "<script>alert(1)</script>"
    resp = client.post("/v1/coils/certificates", json=doc, headers=auth(manufacturer["api_key"]))
    assert resp.status_code == 201, resp.text
    html = client.get(f"/id/{IDENT}").text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


def test_healthz_and_metrics(client: TestClient, ingested: dict[str, Any]) -> None:
    h = client.get("/healthz")
    assert h.status_code == 200
    body = h.json()
    assert body["db"]["ok"] is True and body["pending"] == 1
    assert body["rpc"]["configured"] is False
    assert body["anchoring"]["enabled"] is False
    m = client.get("/metrics")
    assert m.status_code == 200
    assert "traceledger_records_ingested_total" in m.text
    assert 'route="/v1/coils/certificates"' in m.text
