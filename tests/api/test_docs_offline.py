"""Docs on an air-gapped plant network: Swagger UI and ReDoc from the API itself; the public base URL setting."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings, loopback_base_url_warning


@pytest.fixture()
def client(tmp_path: Path) -> TestClient:
    app = create_app(Settings(data_dir=tmp_path, anchoring_enabled=False, bootstrap_enabled=False))
    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_assets_of_the_api_itself(client: TestClient, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', r.text) + re.findall(r"url: '([^']+)'", r.text)
    assert urls, r.text
    outside = [u for u in urls if re.match(r"(https?:)?//", u)]
    assert not outside, f"{page} loads {outside} from outside the API"
    assert "fonts.googleapis" not in r.text and "cdn.jsdelivr" not in r.text
    # a third-party URL inside a bundle (ReDoc's logo on cdn.redoc.ly) is blocked by the page's policy
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "img-src 'self' data:" in r.headers["content-security-policy"]
    for url in urls:
        if url.startswith("/static-offline-docs/"):
            asset = client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 1000, url


def test_swagger_bundle_is_the_real_swagger_ui(client: TestClient) -> None:
    js = client.get("/static-offline-docs/swagger-ui-bundle.js")
    assert js.status_code == 200 and b"SwaggerUIBundle" in js.content and len(js.content) > 500_000


def test_public_base_url_reads_the_new_name_first_and_the_old_one_as_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACELEDGER_PUBLIC_BASE_URL", raising=False)
    monkeypatch.setenv("PUBLIC_BASE_URL", "http://10.20.0.5:8000/")
    assert Settings().public_base_url == "http://10.20.0.5:8000"
    monkeypatch.setenv("TRACELEDGER_PUBLIC_BASE_URL", "https://trace.plant.example")
    assert Settings().public_base_url == "https://trace.plant.example"


@pytest.mark.parametrize(("url", "warns"), [
    ("http://127.0.0.1:8000", True), ("http://localhost:8000", True), ("http://[::1]:8000", True),
    ("http://127.0.1.1", True), ("http://10.20.0.5:8000", False), ("https://trace.plant.example", False),
])
def test_loopback_base_url_is_warned_about(url: str, warns: bool) -> None:
    warning = loopback_base_url_warning(Settings(public_base_url=url).public_base_url)
    assert (warning is not None) == warns
    if warns:
        assert "TRACELEDGER_PUBLIC_BASE_URL" in warning and url.rstrip("/") in warning


def test_the_warning_is_logged_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(data_dir=tmp_path, anchoring_enabled=False, bootstrap_enabled=False))
    with caplog.at_level(logging.WARNING, logger="api.main"), TestClient(app):
        pass
    assert any("TRACELEDGER_PUBLIC_BASE_URL is http://127.0.0.1:8000" in r.getMessage() for r in caplog.records)
