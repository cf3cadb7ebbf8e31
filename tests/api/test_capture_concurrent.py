"""Two concurrent EPCIS captures that share EPCs (the same coil, other events) both succeed; a concurrent true
duplicate (same GS1 event hash) is stored once. Real database, both backends, two request threads."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

import api.epcis.capture as capture_mod
from api.epcis.models import EpcisEvent, EpcisEventEpc, EpcisObject
from api.models import Record
from provenance.supply_chain import generate
from tests.api.conftest import auth


def _documents(prefix: str, events: int = 60) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two documents of the same events at two read points: distinct event hashes, the same EPCs."""
    chain = generate(target_events=events, mill_prefix=prefix, seed=5)
    evs = [e for _, d in chain.documents for e in d["epcisBody"]["eventList"]][:events]
    docs = []
    for point in ("urn:epc:id:sgln:4012345.00001.a", "urn:epc:id:sgln:4012345.00001.b"):
        doc = copy.deepcopy(chain.documents[0][1])
        doc["epcisBody"] = {"eventList": copy.deepcopy(evs)}
        for ev in doc["epcisBody"]["eventList"]:
            ev["readPoint"] = {"id": point}
        docs.append(doc)
    return docs[0], docs[1]


def _count(client: TestClient, model: Any) -> int:
    with Session(client.app.state.tl.engine) as s:
        return int(s.exec(select(func.count()).select_from(model)).one())


def _post_together(client: TestClient, api_key: str, docs: list[dict[str, Any]],
                   monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Post ``docs`` from one thread each; every request holds its written, uncommitted rows until all have
    written theirs (or 2 s passed: on PostgreSQL the second waits on the first's uncommitted unique keys, on
    SQLite on its write lock), so both read what is stored before either commits."""
    barrier = threading.Barrier(len(docs), timeout=2)
    store = capture_mod.capture_document

    def store_then_wait(*args: Any, **kwargs: Any) -> Any:
        result = store(*args, **kwargs)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return result

    monkeypatch.setattr(capture_mod, "capture_document", store_then_wait)
    answers: list[Any] = [None] * len(docs)

    def post(i: int) -> None:
        answers[i] = client.post("/v1/epcis/capture", json=docs[i], headers=auth(api_key))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(docs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return answers


def test_concurrent_captures_sharing_epcs_both_succeed(client: TestClient, manufacturer: dict[str, Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _documents(manufacturer["prefix"])
    ra, rb = _post_together(client, manufacturer["api_key"], [a, b], monkeypatch)
    assert ra.status_code == 201, ra.text[:300]
    assert rb.status_code == 201, rb.text[:300]
    n = len(a["epcisBody"]["eventList"])
    assert ra.json()["captured"] == n and rb.json()["captured"] == n
    assert _count(client, Record) == 2 * n and _count(client, EpcisEvent) == 2 * n
    # one identifier mapping per EPC, and every EPC reference of both documents has one
    with Session(client.app.state.tl.engine) as s:
        referenced = set(s.exec(select(EpcisEventEpc.epc)).all())
        keys = list(s.exec(select(EpcisObject.key)).all())
    assert len(keys) == len(set(keys)) and referenced <= set(keys) and referenced


def test_concurrent_true_duplicate_is_stored_once(client: TestClient, manufacturer: dict[str, Any],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    a, _ = _documents(manufacturer["prefix"], events=20)
    r1, r2 = _post_together(client, manufacturer["api_key"], [a, copy.deepcopy(a)], monkeypatch)
    n = len(a["epcisBody"]["eventList"])
    # the loser's insert clashes with the winner's records (PostgreSQL) or it saw them (SQLite's write lock):
    # either way it answers 200 with every event a duplicate of the winner's
    assert sorted([r1.status_code, r2.status_code]) == [200, 201], (r1.text[:300], r2.text[:300])
    loser = r1 if r1.status_code == 200 else r2
    assert loser.json()["duplicates"] == n and loser.json()["captured"] == 0
    assert _count(client, Record) == n and _count(client, EpcisEvent) == n
    monkeypatch.undo()
    again = client.post("/v1/epcis/capture", json=a, headers=auth(manufacturer["api_key"]))
    assert again.status_code == 200 and again.json()["duplicates"] == n


def test_concurrent_true_duplicate_through_capture_jobs_is_stored_once(
        client: TestClient, manufacturer: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The EPCIS 2.0 REST binding's capture job (``POST /capture``, run by :func:`api.capture_jobs.capture`) gets
    the same one retry: of two jobs capturing the same events at once, one stores them and the other finds them
    stored (duplicates) instead of failing with a 409 'concurrent capture'."""
    import api.capture_jobs as jobs_mod
    from api.models import Enterprise
    from api.routes.epcis import load_schema

    a, _ = _documents(manufacturer["prefix"], events=20)
    state = client.app.state.tl
    barrier = threading.Barrier(2, timeout=2)
    store = jobs_mod.capture_document

    def store_then_wait(*args: Any, **kwargs: Any) -> Any:
        result = store(*args, **kwargs)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return result

    monkeypatch.setattr(jobs_mod, "capture_document", store_then_wait)
    outcomes: list[Any] = [None, None]

    def run(i: int) -> None:
        with Session(state.engine, expire_on_commit=False) as s:
            ent = s.get(Enterprise, manufacturer["id"])
            try:
                outcomes[i] = jobs_mod.capture(s, state=state, enterprise=ent, doc=copy.deepcopy(a),
                                               schema=load_schema())
            except Exception as exc:  # noqa: BLE001 - the assertion below names it
                outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    n = len(a["epcisBody"]["eventList"])
    assert all(isinstance(o, tuple) for o in outcomes), outcomes
    assert sorted(created for _, created in outcomes) == [0, n]
    assert _count(client, Record) == n and _count(client, EpcisEvent) == n
