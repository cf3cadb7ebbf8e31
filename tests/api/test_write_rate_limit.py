"""Per-API-key write rate limits (issue 12): 429 with Retry-After, per key, before any work; reads free."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.main import create_app
from tests.api.conftest import auth, create_enterprise, make_settings, sample


def test_writes_limited_per_key(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, write_rate_limit="3/minute")
    with TestClient(create_app(settings)) as client:
        a = create_enterprise(client)  # the governance token's 1st write
        b = create_enterprise(client, name="Second Mill GmbH", prefix="88.1.2")
        codes = [client.post("/v1/coils/certificates", json=sample(), headers=auth(a["api_key"])).status_code
                 for _ in range(4)]
        assert codes == [201, 200, 200, 429]
        r = client.post("/v1/coils/certificates", json=sample(), headers=auth(a["api_key"]))
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
        assert r.json()["detail"][0]["rule"] == "write_rate_limit"
        # another key is not affected, reads are not limited
        assert client.post("/v1/coils/certificates", json=sample(), headers=auth(b["api_key"])).status_code == 201
        assert all(client.get(f"/v1/enterprises/{a['id']}").status_code == 200 for _ in range(10))


def test_refused_before_the_body_is_read(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, write_rate_limit="1/minute")
    with TestClient(create_app(settings)) as client:
        headers: dict[str, Any] = {"Authorization": "Bearer nobody", "content-type": "application/json"}
        assert client.post("/v1/enterprises", content=b"{}", headers=headers).status_code in (401, 403)
        r = client.post("/v1/enterprises", content=b'{"nested": ' * 100 + b"1" + b"}" * 100, headers=headers)
        assert r.status_code == 429  # not 422 max_depth: the limit comes first


def test_empty_limit_disables(db_url: str, tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(db_url, tmp_path, write_rate_limit=""))) as client:
        codes = {client.post("/v1/enterprises", json={}, headers={"Authorization": "Bearer x"}).status_code
                 for _ in range(20)}
        assert codes <= {401, 403}
