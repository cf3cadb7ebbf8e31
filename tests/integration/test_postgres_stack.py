"""The whole path on PostgreSQL: validators + API process with DATABASE_URL pointing at a fresh schema."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from api.devnet import Stack
from provenance.samples import load_samples
from tests.api.conftest import pg_schema

from .conftest import wait_anchored

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with pg_schema("tl_stack_test") as url:
        yield url


def test_anchor_and_verify_on_postgresql(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> None:
    stack = Stack(data_dir=tmp_path_factory.mktemp("pg-network"), validators=1, api_port=None, rpc_base_port=None,
                  p2p_base_port=None, database_url=pg_url)
    with stack, httpx.Client(base_url=stack.api_url(), timeout=60) as api:
        assert not (stack.data_dir / "api" / "api.db").exists()  # really on PostgreSQL
        r = api.post("/v1/enterprises", headers={"Authorization": f"Bearer {stack.admin_token}"},
                     json={"name": "PG Mill", "roles": ["manufacturer"]})
        assert r.status_code == 201, r.text
        key = r.json()["api_key"]
        identifiers = []
        for _, doc in load_samples():
            r = api.post("/v1/coils/certificates", json=doc, headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 201, r.text
            identifiers.append(r.json()["identifier"])
        wait_anchored(api, identifiers)
        for identifier in identifiers:
            body = api.get(f"/v1/verify/{quote(identifier, safe='/')}").json()
            assert body["verified"] is True, body
            assert body["anchor"]["seals"] == 1 and len(body["anchor"]["validators"]) == 1
