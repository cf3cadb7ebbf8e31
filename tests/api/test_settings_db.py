"""Settings parsing and database durability settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import text

from api.db import init_db, make_engine
from api.settings import DEV_PASSPHRASE, Settings
from tests.api.conftest import auth, make_settings


def test_database_url_defaults_and_normalisation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("TRACELEDGER_DATA_DIR", str(tmp_path))
    assert Settings().sqlalchemy_url == f"sqlite:///{tmp_path.as_posix()}/api.db"
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h:5432/db")
    assert Settings().sqlalchemy_url == "postgresql+psycopg://u@h:5432/db"
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://x.example/")
    monkeypatch.setenv("TRACELEDGER_ANCHOR_MAX_BATCH", "17")
    s = Settings()
    assert s.public_base_url == "https://x.example" and s.anchor_max_batch == 17


def test_default_passphrase_refused_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACELEDGER_KEYSTORE_PASSPHRASE", raising=False)
    monkeypatch.setenv("TRACELEDGER_ENV", "production")
    with pytest.raises(ValidationError, match="TRACELEDGER_KEYSTORE_PASSPHRASE"):
        Settings()
    monkeypatch.setenv("TRACELEDGER_KEYSTORE_PASSPHRASE", "a real secret")
    assert Settings().keystore_passphrase != DEV_PASSPHRASE


def test_sqlite_wal_and_full_sync(tmp_path: Path) -> None:
    engine = make_engine(make_settings(f"sqlite:///{(tmp_path / 'sub' / 'x.db').as_posix()}", tmp_path))
    init_db(engine)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    engine.dispose()


def test_nan_is_refused_not_500(client: TestClient, manufacturer: dict) -> None:
    from tests.api.conftest import sample

    raw = __import__("json").dumps(sample()).replace('"B08": 1', '"B08": NaN')
    resp = client.post(
        "/v1/coils/certificates",
        content=raw.encode(),
        headers={**auth(manufacturer["api_key"]), "Content-Type": "application/json"},
    )
    assert resp.status_code == 422, resp.text
