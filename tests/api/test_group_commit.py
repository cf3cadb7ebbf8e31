"""Single certificate POSTs share durable commits (api/group_commit.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from api.group_commit import GroupCommitter, Write
from api.models import Record
from api.read_cache import ReadInvalidation
from api.settings import Settings
from tests.api.conftest import auth, sample

CERTS = "/v1/coils/certificates"


@pytest.fixture
def settings(db_url: str, tmp_path: Any) -> Settings:
    """Group commit on for both backends (unset, it is on for SQLite only: see test_default_by_backend)."""
    from tests.api.conftest import make_settings

    return make_settings(db_url, tmp_path, group_commit=True)


def state(c: TestClient) -> Any:
    return c.app.state.tl  # type: ignore[attr-defined]


def coil(i: int) -> dict[str, Any]:
    doc = copy.deepcopy(sample())
    doc["Certificate"]["ProductDescription"]["B07"] = f"GC-{i:04d}"
    return doc


def row_like(client: TestClient, manufacturer: dict[str, Any], identifier: str) -> dict[str, Any]:
    """A records row for ``identifier`` copied from a stored one (ids and identifiers differ)."""
    with Session(state(client).engine) as s:
        rec = s.execute(select(Record)).scalars().first()
        assert rec is not None
        out = {c.name: getattr(rec, c.name) for c in Record.__table__.columns if c.name != "id"}  # type: ignore[attr-defined]
    out["identifier"] = identifier
    return out


def count_records(settings: Settings) -> int:
    engine = create_engine(settings.sqlalchemy_url)  # a fresh connection: only committed rows are visible
    with engine.connect() as conn:
        n = int(conn.execute(select(func.count()).select_from(Record.__table__)).scalar_one())  # type: ignore[arg-type]
    engine.dispose()
    return n


def test_requests_waiting_during_a_commit_share_the_next_one(client: TestClient, settings: Settings,
                                                             manufacturer: dict[str, Any]) -> None:
    assert client.post(CERTS, json=coil(0), headers=auth(manufacturer["api_key"])).status_code == 201
    engine = state(client).engine
    committer = GroupCommitter(engine)
    release, entered = threading.Event(), threading.Event()
    first = [True]

    def hold_first_commit(conn: Any) -> None:
        if first[0]:
            first[0] = False
            entered.set()
            assert release.wait(30)

    event.listen(engine, "commit", hold_first_commit)
    try:
        with ThreadPoolExecutor(max_workers=9) as pool:
            lead = pool.submit(committer.submit, Write([row_like(client, manufacturer, "88.1.1/GC-LEAD")]))
            assert entered.wait(30)  # the first group is on its way to disk ...
            rest = [pool.submit(committer.submit, Write([row_like(client, manufacturer, f"88.1.1/GC-{i}")]))
                    for i in range(8)]
            while len(committer._queue) < 8:  # ... while eight more requests queue up
                threading.Event().wait(0.01)
            release.set()
            ids = [lead.result(30)] + [f.result(30) for f in rest]
    finally:
        event.remove(engine, "commit", hold_first_commit)
        committer.stop()
    assert committer.writes == 9 and committer.groups == 2  # nine requests, two durable commits
    assert len({i[0] for i in ids}) == 9
    assert count_records(settings) == 10  # every acknowledged row is committed


def test_a_conflicting_request_fails_alone(client: TestClient, settings: Settings,
                                           manufacturer: dict[str, Any]) -> None:
    assert client.post(CERTS, json=coil(0), headers=auth(manufacturer["api_key"])).status_code == 201
    with Session(state(client).engine) as s:
        ident = s.execute(select(Record.identifier)).scalars().one()  # type: ignore[call-overload]
    committer = GroupCommitter(state(client).engine)
    group = [Write([row_like(client, manufacturer, "88.1.1/OK-1")]), Write([row_like(client, manufacturer, ident)]),
             Write([row_like(client, manufacturer, "88.1.1/OK-2")])]
    committer._commit_group(group)  # the leader's step, on a group of three
    assert group[0].result() and group[2].result()
    with pytest.raises(IntegrityError):
        group[1].result()
    assert count_records(settings) == 3


def test_replacement_and_its_invalidation_commit_with_the_new_record(client: TestClient, settings: Settings,
                                                                      manufacturer: dict[str, Any]) -> None:
    h = auth(manufacturer["api_key"])
    first = client.post(CERTS, json=sample(), headers=h).json()["identifier"]
    corrected = copy.deepcopy(sample())
    corrected["Certificate"]["CommercialTransaction"]["A07"] = "KP-CORRECTED"
    r2 = client.post(CERTS, json=corrected, headers=h, params={"supersedes": first})
    assert r2.status_code == 201 and r2.json()["identifier"] == first + ".r2"
    assert state(client).commits.writes >= 2
    with Session(state(client).engine) as s:
        old = s.execute(select(Record).where(Record.identifier == first)).scalars().one()  # type: ignore[arg-type]
        assert old.superseded_by == first + ".r2"
        assert [r.identifier for r in s.execute(select(ReadInvalidation)).scalars()] == [first]


def test_concurrent_identical_posts_one_created_rest_idempotent(client: TestClient, settings: Settings,
                                                                 manufacturer: dict[str, Any]) -> None:
    h = auth(manufacturer["api_key"])
    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = sorted(pool.map(lambda _: client.post(CERTS, json=sample(), headers=h).status_code, range(6)))
    assert codes.count(201) == 1 and codes.count(200) == 5, codes
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda i: client.post(CERTS, json=coil(i), headers=h).status_code, range(8)))
    assert codes == [201] * 8
    assert count_records(settings) == 9


def test_no_keystore_decryption_per_request(client: TestClient, manufacturer: dict[str, Any],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import api.security as security

    calls = [0]
    real = security.Account.decrypt

    def counting(*args: Any, **kw: Any) -> Any:
        calls[0] += 1
        return real(*args, **kw)

    monkeypatch.setattr(security.Account, "decrypt", counting)
    h = auth(manufacturer["api_key"])
    for i in range(5):
        assert client.post(CERTS, json=coil(i), headers=h).status_code == 201
    assert calls[0] <= 1  # scrypt once per key per process, not per request


def test_stopped_committer_refuses_and_leadership_passes_on(client: TestClient, manufacturer: dict[str, Any]) -> None:
    assert client.post(CERTS, json=coil(0), headers=auth(manufacturer["api_key"])).status_code == 201
    committer = GroupCommitter(state(client).engine)
    assert committer.submit(Write([row_like(client, manufacturer, "88.1.1/ONE")]))
    assert committer._leading is False and committer._queue == []  # the last leader left nothing behind
    committer.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        committer.submit(Write([row_like(client, manufacturer, "88.1.1/TWO")]))


def test_group_commit_can_be_switched_off(db_url: str, tmp_path: Any) -> None:
    from api.main import create_app
    from tests.api.conftest import create_enterprise, make_settings

    with TestClient(create_app(make_settings(db_url, tmp_path, group_commit=False))) as c:
        assert state(c).commits is None  # each request commits its own transaction, as before
        ent = create_enterprise(c)
        assert c.post(CERTS, json=coil(1), headers=auth(ent["api_key"])).status_code == 201
        assert c.post(CERTS, json=coil(1), headers=auth(ent["api_key"])).status_code == 200


def test_default_by_backend(tmp_path: Any) -> None:
    from api.main import group_commit_wanted
    from tests.api.conftest import make_settings

    assert group_commit_wanted(make_settings(f"sqlite:///{tmp_path}/a.db", tmp_path)) is True
    assert group_commit_wanted(make_settings("postgresql+psycopg://u@h/db", tmp_path)) is False
    assert group_commit_wanted(make_settings("postgresql+psycopg://u@h/db", tmp_path, group_commit=True)) is True
