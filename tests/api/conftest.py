"""Fixtures: an API app on SQLite (tmp file) and on PostgreSQL (own schema; skipped if unreachable)."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel

import api.models  # noqa: F401  (tables on the metadata)
from api import migrations
from api.main import create_app
from api.settings import Settings

PG_BASE = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
GOV_TOKEN = "gov-token-for-tests"
PASSPHRASE = "test-passphrase"
SAMPLES = Path(__file__).resolve().parents[2] / "provenance" / "samples"


def sample(name: str = "s355mc_coil_nw24-118734") -> dict[str, Any]:
    """A valid EN 10168 coil certificate from provenance/samples."""
    return json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))


@contextmanager
def pg_schema(prefix: str) -> Iterator[str]:
    """URL of a fresh PostgreSQL schema named ``<prefix>_<random>`` (dropped on exit); skips if unreachable."""
    schema = f"{prefix}_{secrets.token_hex(4)}"
    try:
        admin = create_engine(PG_BASE, connect_args={"connect_timeout": 3})
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"PostgreSQL not reachable at {PG_BASE}: {type(exc).__name__}: {exc}")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL schema for this test run (dropped at the end)."""
    with pg_schema("tl_api_test") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Database URL for one backend; the schema is emptied and migrated to head (api.migrations) for each test."""
    if request.param == "sqlite":
        return f"sqlite:///{(tmp_path / 'api.db').as_posix()}"
    url = request.getfixturevalue("pg_schema_url")
    engine = create_engine(url)
    SQLModel.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    migrations.upgrade(engine)
    engine.dispose()
    return url


def make_settings(db_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Test settings: no chain, fixed chain id, cheap scrypt, worker off."""
    base: dict[str, Any] = {
        "database_url": db_url,
        "data_dir": tmp_path,
        "rpc_url": None,
        "admin_token": GOV_TOKEN,
        "admin_private_key": None,
        "enterprise_registry_address": None,
        "anchor_registry_address": None,
        "keystore_passphrase": PASSPHRASE,
        "keystore_scrypt_n": 2**4,
        "public_base_url": "https://trace.example",
        "anchoring_enabled": False,
        "chain_id": 1337,
        "environment": "development",
    }
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Settings for the parametrized database, without a chain."""
    return make_settings(db_url, tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """TestClient over a fresh app (lifespan run)."""
    with TestClient(create_app(settings)) as c:
        yield c


def gov() -> dict[str, str]:
    """Governance authorization header."""
    return {"Authorization": f"Bearer {GOV_TOKEN}"}


def create_enterprise(client: TestClient, roles: list[str] | None = None, **body: Any) -> dict[str, Any]:
    """POST /v1/enterprises and return the 201 body."""
    payload = {"name": "Nordstahl Walzwerk GmbH", "roles": roles or ["manufacturer"], **body}
    resp = client.post("/v1/enterprises", json=payload, headers=gov())
    assert resp.status_code == 201, resp.text
    return resp.json()


def auth(api_key: str) -> dict[str, str]:
    """Enterprise authorization header."""
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture
def manufacturer(client: TestClient) -> dict[str, Any]:
    """A manufacturer enterprise (201 body incl. api_key)."""
    return create_enterprise(client)


@pytest.fixture
def ingested(client: TestClient, manufacturer: dict[str, Any]) -> dict[str, Any]:
    """One ingested certificate (201 body)."""
    resp = client.post("/v1/coils/certificates", json=sample(), headers=auth(manufacturer["api_key"]))
    assert resp.status_code == 201, resp.text
    return resp.json()
