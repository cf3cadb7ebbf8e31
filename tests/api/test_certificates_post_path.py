"""The hot path of ``POST /v1/coils/certificates`` (first certificate of a coil), on SQLite and PostgreSQL.

One thread hop (an async route), the body the strict JSON reader already parsed, and for a new coil one
``INSERT … ON CONFLICT DO NOTHING RETURNING id`` then the commit — no SELECT on ``records`` first. The unique
constraint answers "is this coil new?": a coil taken meanwhile still gets its 409 (or 200 when identical), and
nothing of the losing request is kept.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, func, select
from sqlmodel import Session

from api import ingest
from api.models import Record
from api.routes import certificates
from api.settings import Settings
from tests.api.conftest import auth, make_settings, sample

URL = "/v1/coils/certificates"


@pytest.fixture
def settings(db_url: str, tmp_path: Any) -> Settings:
    """Group commit off on both backends: the direct INSERT … RETURNING path (group commit: test_group_commit)."""
    return make_settings(db_url, tmp_path, group_commit=False)


def coil(number: str) -> dict[str, Any]:
    doc = copy.deepcopy(sample())
    doc["Certificate"]["ProductDescription"]["B07"] = number
    return doc


def stored(settings: Settings) -> list[tuple[str, str]]:
    engine = create_engine(settings.sqlalchemy_url)  # a fresh connection: committed rows only
    with engine.connect() as conn:
        rows = conn.execute(select(Record.identifier, Record.record_digest).order_by(Record.id)).all()  # type: ignore[call-overload]
    engine.dispose()
    return [(r[0], r[1]) for r in rows]


def test_new_coil_is_one_insert_returning_and_no_select_on_records(client: TestClient, settings: Settings,
                                                                   manufacturer: dict[str, Any]) -> None:
    statements: list[str] = []
    engine = client.app.state.tl.engine  # type: ignore[attr-defined]

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()).lower())

    event.listen(engine, "before_cursor_execute", seen)
    try:
        r = client.post(URL, json=coil("HOT-0001"), headers=auth(manufacturer["api_key"]))
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert r.status_code == 201, r.text
    on_records = [s for s in statements if " records" in s and "read_invalidations" not in s]
    assert len(on_records) == 1 and on_records[0].startswith("insert into records"), on_records
    assert "on conflict" in on_records[0] and "returning" in on_records[0]
    assert not [s for s in statements if s.startswith("select") and "from records" in s]
    assert [i for i, _ in stored(settings)] == [r.json()["identifier"]]  # committed before the 201


def test_identical_repost_200_and_different_409_through_the_constraint(client: TestClient, settings: Settings,
                                                                       manufacturer: dict[str, Any]) -> None:
    h = auth(manufacturer["api_key"])
    first = client.post(URL, json=coil("HOT-0002"), headers=h)
    again = client.post(URL, json=coil("HOT-0002"), headers=h)
    changed = coil("HOT-0002")
    changed["Certificate"]["CommercialTransaction"]["A07"] = "KP-OTHER"
    other = client.post(URL, json=changed, headers=h)
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json() == first.json()
    assert other.headers["X-Current-Certificate"] == first.json()["identifier"]
    assert stored(settings) == [(first.json()["identifier"], first.json()["record_digest"])]


def test_coil_taken_between_validation_and_insert_is_409_and_nothing_half_written(
        client: TestClient, settings: Settings, manufacturer: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A concurrent request commits another certificate for the same coil just before this one inserts."""
    h = auth(manufacturer["api_key"])
    rival = coil("HOT-0003")
    rival["Certificate"]["CommercialTransaction"]["A07"] = "KP-RIVAL"
    original = ingest._insert_if_new
    raced: list[dict[str, Any]] = []

    def racing_insert(session: Session, row: dict[str, Any]) -> int | None:
        if not raced:
            raced.append(row)
            engine = create_engine(settings.sqlalchemy_url)
            with engine.begin() as conn:  # the rival's row, committed in its own transaction
                conn.execute(Record.__table__.insert().values(  # type: ignore[attr-defined]
                    {**row, "record_digest": "0x" + "ab" * 32, "document": "{}"}))
            engine.dispose()
        return original(session, row)

    monkeypatch.setattr(ingest, "_insert_if_new", racing_insert)
    r = client.post(URL, json=coil("HOT-0003"), headers=h)
    assert r.status_code == 409, r.text
    assert "already holds a different certificate" in r.text
    assert stored(settings) == [(raced[0]["identifier"], "0x" + "ab" * 32)]  # only the rival's row


def test_body_is_the_strict_readers_value_and_not_json_is_422(client: TestClient,
                                                              manufacturer: dict[str, Any]) -> None:
    h = auth(manufacturer["api_key"])
    text = client.post(URL, content=b"not a certificate", headers={**h, "Content-Type": "text/plain"})
    assert text.status_code == 422 and text.json()["detail"][0]["field"] == "body"
    empty = client.post(URL, content=b"", headers={**h, "Content-Type": "application/json"})
    assert empty.status_code == 422 and empty.json()["detail"][0]["rule"] == "missing"
    scalar = client.post(URL, content=b"17", headers={**h, "Content-Type": "application/json"})
    assert scalar.status_code == 422 and scalar.json()["detail"][0]["rule"] == "type"
    assert client.post(URL, content=b"[]", headers={"Content-Type": "application/json"}).status_code == 401
    assert asyncio.iscoroutinefunction(certificates.ingest_certificate)  # no thread hop before the one it makes


def test_openapi_still_documents_the_certificate_body(client: TestClient) -> None:
    op = client.get("/openapi.json").json()["paths"][URL]["post"]
    media = op["requestBody"]["content"]["application/json"]
    assert op["requestBody"]["required"] is True and media["schema"]["type"] == "object"
    assert "example" in media["examples"]
    assert {p["name"] for p in op["parameters"]} == {"X-Record-Signature", "supersedes"}
    assert {"201", "200", "422"} <= set(op["responses"])


def test_stored_count_matches_answers_under_concurrency(client: TestClient, settings: Settings,
                                                        manufacturer: dict[str, Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    h = auth(manufacturer["api_key"])
    docs = [coil(f"HOT-1{i % 6:03d}") for i in range(24)]  # 6 coils, each posted 4 times at once
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda d: client.post(URL, json=d, headers=h).status_code, docs))
    assert sorted(codes).count(201) == 6 and sorted(codes).count(200) == 18, codes
    engine = create_engine(settings.sqlalchemy_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Record.__table__)).scalar_one() == 6  # type: ignore[arg-type]
    engine.dispose()


def test_body_is_parsed_once(client: TestClient, manufacturer: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.requests import Request

    import api.json_reader
    from provenance import strict_json

    calls: list[int] = []
    real = strict_json.loads

    def counting(raw: bytes, limits: Any = None) -> Any:
        calls.append(len(raw))
        return real(raw, limits)

    async def no_second_parse(self: Request) -> Any:
        raise AssertionError("the route parsed the body again")

    monkeypatch.setattr(api.json_reader.strict_json, "loads", counting)
    monkeypatch.setattr(Request, "json", no_second_parse)
    r = client.post(URL, json=coil("HOT-0004"), headers=auth(manufacturer["api_key"]))
    assert r.status_code == 201, r.text
    assert len(calls) == 1


def test_postgresql_pool_keeps_20_and_bursts_to_30(tmp_path: Any) -> None:
    """README "PostgreSQL settings": 20 connections kept once a load needed them, 10 overflow, 30 at most."""
    from api.db import make_engine

    engine = make_engine(make_settings("postgresql+psycopg://postgres@127.0.0.1:5432/test", tmp_path))
    try:
        assert engine.pool.size() == 20  # type: ignore[attr-defined]
        assert engine.pool._max_overflow == 10  # type: ignore[attr-defined]
    finally:
        engine.dispose()
