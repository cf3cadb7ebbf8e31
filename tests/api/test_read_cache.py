"""Resolution, Handle values, ``/id`` data, QR and verdicts served from immutable facts (api/read_cache.py).

Each test is an attack on the cache: a stale answer after a replacement, a pending record served as final,
a verdict served for another identifier, a fill racing an invalidation, another process's replacement.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine, select

from api.main import create_app
from api.models import Batch, Record
from api.read_cache import (
    ALL,
    RESOLUTION,
    VERIFY,
    CachedView,
    ReadCache,
    etag_of,
    make_view,
    not_modified,
)
from api.settings import Settings
from api.verification import SealVerdict
from provenance.merkle import hash_leaf, root_from_leaf_hashes
from tests.api.conftest import auth, create_enterprise, make_settings, sample

IDENT = "88.1.1/HK52791-CNW24-118734"
OTHER = "88.1.1/HK53016-CNW24-119052"
CERTS = "/v1/coils/certificates"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """No background poll during a test: polls are called explicitly, and query counts stay exact."""
    return make_settings(db_url, tmp_path, read_cache_poll_s=3600)


@contextmanager
def record_queries(engine: Engine) -> Iterator[list[str]]:
    """SQL statements that touch the ``records`` table while the block runs."""
    seen: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "records" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def state(c: TestClient) -> Any:
    return c.app.state.tl  # type: ignore[attr-defined]


def anchor_all(db_url: str) -> None:
    """Put every unbatched record into one final batch (what the worker does, without a chain)."""
    engine = create_engine(db_url)
    with Session(engine) as s:
        recs = list(s.exec(select(Record).where(Record.batch_id == None).order_by(Record.id)).all())  # noqa: E711
        digests = [r.record_digest for r in recs]
        root = root_from_leaf_hashes([hash_leaf(bytes.fromhex(d[2:])) for d in digests])
        batch = Batch(root="0x" + root.hex(), size=len(recs), leaf_digests=digests, status="final",
                      tx_hash="0x" + "ab" * 32, block_number=7, block_hash="0x" + "cd" * 32)
        s.add(batch)
        s.flush()
        for i, r in enumerate(recs):
            r.batch_id, r.leaf_index, r.status = batch.id, i, "anchored"
            s.add(r)
        s.commit()
    engine.dispose()


def post(client: TestClient, key: str, doc: dict[str, Any], **params: str) -> dict[str, Any]:
    r = client.post(CERTS, json=doc, headers=auth(key), params=params)
    assert r.status_code == 201, r.text
    return r.json()


def corrected() -> dict[str, Any]:
    doc = copy.deepcopy(sample())
    doc["Certificate"]["CommercialTransaction"]["A07"] = "KP-CORRECTED"
    return doc


# ----------------------------------------------------------------------------------- resolution
def test_anchored_resolution_is_served_from_memory_with_etag_and_304(client: TestClient, settings: Settings,
                                                                     manufacturer: dict[str, Any]) -> None:
    post(client, manufacturer["api_key"], sample())
    anchor_all(settings.sqlalchemy_url)
    engine = state(client).engine
    with record_queries(engine) as miss:
        first = client.get(f"/v1/identifiers/{IDENT}")
    assert first.status_code == 200 and first.json()["status"] == "anchored"
    assert len(miss) == 1, miss  # one Core query: record + owner + batch
    etag = first.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert first.headers["Cache-Control"] == "public, no-cache"
    with record_queries(engine) as hit:
        again = client.get(f"/v1/identifiers/{IDENT}")
        cond = client.get(f"/v1/identifiers/{IDENT}", headers={"If-None-Match": etag})
        weak = client.get(f"/v1/identifiers/{IDENT}", headers={"If-None-Match": f'"x", W/{etag}'})
    assert hit == []  # no database round trip on a hit
    assert again.content == first.content and again.headers["ETag"] == etag
    assert cond.status_code == 304 and cond.content == b"" and cond.headers["ETag"] == etag
    assert weak.status_code == 304
    assert client.get(f"/v1/identifiers/{IDENT}", headers={"If-None-Match": '"other"'}).status_code == 200


def test_pending_record_is_not_cached_as_final(client: TestClient, settings: Settings,
                                               manufacturer: dict[str, Any]) -> None:
    post(client, manufacturer["api_key"], sample())
    pending = client.get(f"/v1/identifiers/{IDENT}")
    assert pending.json()["status"] == "pending"
    assert state(client).reads.get(RESOLUTION, IDENT) is None
    anchor_all(settings.sqlalchemy_url)  # pending -> anchored, behind this process's back
    now = client.get(f"/v1/identifiers/{IDENT}")
    assert now.json()["status"] == "anchored"
    assert any(v["type"] == "ANCHOR" for v in now.json()["values"])
    assert now.headers["ETag"] != pending.headers["ETag"]
    assert client.get(f"/v1/identifiers/{IDENT}", headers={"If-None-Match": pending.headers["ETag"]}).status_code == 200


def test_never_another_identifiers_answer(client: TestClient, settings: Settings,
                                          manufacturer: dict[str, Any]) -> None:
    post(client, manufacturer["api_key"], sample())
    post(client, manufacturer["api_key"], sample("dd13_coil_nw24-119052"))
    anchor_all(settings.sqlalchemy_url)
    a = client.get(f"/v1/identifiers/{IDENT}")
    b = client.get(f"/v1/identifiers/{OTHER}")
    assert a.json()["identifier"] == IDENT and b.json()["identifier"] == OTHER
    assert a.headers["ETag"] != b.headers["ETag"]
    # A's tag presented for B is not a match
    assert client.get(f"/v1/identifiers/{OTHER}", headers={"If-None-Match": a.headers["ETag"]}).status_code == 200
    # an entry stored under the wrong key is never handed out
    reads = state(client).reads
    stray = make_view(RESOLUTION, IDENT, "x", {"identifier": IDENT})
    reads._views[(RESOLUTION, OTHER)] = stray
    assert reads.get(RESOLUTION, OTHER) is None
    assert client.get(f"/v1/identifiers/{OTHER}").json()["identifier"] == OTHER
    # the tag covers view and identifier: equal bodies under two identifiers get different tags
    assert etag_of(RESOLUTION, IDENT, b"{}") != etag_of(RESOLUTION, OTHER, b"{}")
    assert etag_of(RESOLUTION, IDENT, b"{}") != etag_of(VERIFY, IDENT, b"{}")


def test_replacement_invalidates_every_view(client: TestClient, settings: Settings,
                                            manufacturer: dict[str, Any]) -> None:
    key = manufacturer["api_key"]
    post(client, key, sample())
    anchor_all(settings.sqlalchemy_url)
    res = client.get(f"/v1/identifiers/{IDENT}")
    handle = client.get(f"/api/handles/{IDENT}")
    page = client.get(f"/id/{IDENT}", headers={"Accept": "application/json"})
    assert res.json()["superseded_by"] is None and handle.status_code == 200 and page.status_code == 200
    assert state(client).reads.get(RESOLUTION, IDENT) is not None
    post(client, key, corrected(), supersedes=IDENT)
    res2 = client.get(f"/v1/identifiers/{IDENT}")
    assert res2.json()["superseded_by"] == IDENT + ".r2"
    assert res2.headers["ETag"] != res.headers["ETag"]
    assert client.get(f"/v1/identifiers/{IDENT}", headers={"If-None-Match": res.headers["ETag"]}).status_code == 200
    values = {v["type"]: v["data"]["value"] for v in client.get(f"/api/handles/{IDENT}").json()["values"]}
    assert values["SUPERSEDED_BY"] == IDENT + ".r2"
    page2 = client.get(f"/id/{IDENT}", headers={"Accept": "application/json"}).json()
    assert page2["resolution"]["superseded_by"] == IDENT + ".r2"
    html = client.get(f"/id/{IDENT}").text
    assert "superseded by" in html


def test_replacement_in_another_process_reaches_this_cache(client: TestClient, settings: Settings,
                                                           manufacturer: dict[str, Any]) -> None:
    post(client, manufacturer["api_key"], sample())
    anchor_all(settings.sqlalchemy_url)
    assert client.get(f"/v1/identifiers/{IDENT}").json()["superseded_by"] is None
    assert state(client).reads.get(RESOLUTION, IDENT) is not None
    with TestClient(create_app(settings)) as other:  # a second API process on the same database
        post(other, manufacturer["api_key"], corrected(), supersedes=IDENT)
    reads = state(client).reads
    assert reads.poll(state(client).engine) >= 1  # the poller thread's step
    assert reads.get(RESOLUTION, IDENT) is None
    assert client.get(f"/v1/identifiers/{IDENT}").json()["superseded_by"] == IDENT + ".r2"
    assert reads.poll(state(client).engine) == 0  # each invalidation applied once


def test_fill_racing_an_invalidation_is_discarded() -> None:
    reads = ReadCache(maxsize=10)
    epoch = reads.epoch()  # a fill reads the database ...
    reads.invalidate(IDENT)  # ... while a replacement commits
    view = make_view(RESOLUTION, IDENT, "anchored|0xab|0|-", {"identifier": IDENT})
    assert reads.put(view, epoch) is False and reads.get(RESOLUTION, IDENT) is None
    assert reads.put(view, reads.epoch()) is True and reads.get(RESOLUTION, IDENT) is view


def test_entries_expire_and_poll_failure_clears(monkeypatch: pytest.MonkeyPatch) -> None:
    import api.read_cache as rc

    reads = ReadCache(maxsize=10, ttl_s=60)
    now = [1000.0]
    monkeypatch.setattr(rc.time, "monotonic", lambda: now[0])
    reads.put(make_view(RESOLUTION, IDENT, "r", {}), reads.epoch())
    assert reads.get(RESOLUTION, IDENT) is not None
    now[0] += 61  # a row changed by hand in the database is seen again after the TTL
    assert reads.get(RESOLUTION, IDENT) is None
    reads.put(make_view(RESOLUTION, IDENT, "r", {}), reads.epoch())
    reads.clear()  # what the poller does when it cannot read read_invalidations
    assert len(reads) == 0


def test_if_none_match_rules() -> None:
    tag = '"abc"'
    assert not_modified('"abc"', tag) and not_modified('W/"abc"', tag) and not_modified("*", tag)
    assert not_modified('"x", "abc"', tag)
    assert not not_modified(None, tag) and not not_modified('"abcd"', tag) and not not_modified("abc", tag)


def test_unknown_and_malformed_are_not_cached(client: TestClient) -> None:
    assert client.get("/v1/identifiers/88.1.1/NOPE").status_code == 404
    assert client.get("/v1/identifiers/not-an-identifier").status_code == 422
    assert client.get("/v1/identifiers/88.1.1/NOPE/qr.png").status_code == 404
    assert len(state(client).reads) == 0


def test_qr_etag_and_304(client: TestClient, settings: Settings, manufacturer: dict[str, Any]) -> None:
    post(client, manufacturer["api_key"], sample())
    first = client.get(f"/v1/identifiers/{IDENT}/qr.png")
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert "immutable" in first.headers["Cache-Control"]
    with record_queries(state(client).engine) as hit:
        cond = client.get(f"/v1/identifiers/{IDENT}/qr.png", headers={"If-None-Match": first.headers["ETag"]})
    assert cond.status_code == 304 and hit == []
    svg = client.get(f"/v1/identifiers/{IDENT}/qr.svg")
    assert svg.headers["ETag"] != first.headers["ETag"]


# ----------------------------------------------------------------------------------- verdicts
def test_unverified_verdict_is_recomputed(client: TestClient, settings: Settings,
                                          manufacturer: dict[str, Any]) -> None:
    """Without a chain the verdict is not verified: never cached, every request reads the record again."""
    post(client, manufacturer["api_key"], sample())
    anchor_all(settings.sqlalchemy_url)
    assert client.get(f"/v1/verify/{IDENT}").json()["verified"] is False
    with record_queries(state(client).engine) as q:
        body = client.get(f"/v1/verify/{IDENT}")
    assert body.json()["verified"] is False and len(q) == 1
    assert state(client).reads.get(VERIFY, IDENT) is None
    assert body.headers["ETag"]


eth_tester = pytest.importorskip("eth_tester")


@pytest.fixture
def chain_client(tmp_path: Path) -> Iterator[TestClient]:
    """An app on eth-tester (real EVM, contracts deployed), anchoring run by hand."""
    from web3 import EthereumTesterProvider, Web3

    from api.chain import ChainClient, deploy_contracts_with

    backend = eth_tester.PyEVMBackend()
    w3 = Web3(EthereumTesterProvider(eth_tester.EthereumTester(backend)))
    admin_key = str(backend.account_keys[0])
    addrs = deploy_contracts_with(ChainClient(w3), admin_key)
    chain = ChainClient(w3, enterprise_registry=addrs["EnterpriseRegistry"], anchor_registry=addrs["AnchorRegistry"])
    settings = make_settings(f"sqlite:///{(tmp_path / 'api.db').as_posix()}", tmp_path, chain_id=None,
                             admin_private_key=admin_key, enterprise_registry_address=addrs["EnterpriseRegistry"],
                             anchor_registry_address=addrs["AnchorRegistry"], fund_wei=10**18,
                             read_cache_poll_s=3600)
    with TestClient(create_app(settings, chain=chain)) as c:
        yield c


def _anchor_with_seals(c: TestClient) -> None:
    """Anchor on the EVM; eth-tester blocks carry no QBFT seals, so the seal verdict of the block is put in
    the seal cache as a QBFT network would have given it (only the chain's edge is stood in for)."""
    st = state(c)
    assert len(st.worker.run_once()) == 1
    with Session(st.engine) as s:
        batch = s.exec(select(Batch).order_by(Batch.id.desc())).first()  # type: ignore[union-attr]
        assert batch is not None and batch.block_number is not None and batch.block_hash is not None
        st.seal_cache.put((batch.block_number, batch.block_hash.lower()),
                          SealVerdict(True, "4 of 4 commit seals (stand-in)", 4, []))


def test_verified_verdict_cached_until_replacement(chain_client: TestClient) -> None:
    ent = create_enterprise(chain_client)
    post(chain_client, ent["api_key"], sample())
    pending = chain_client.get(f"/v1/verify/{IDENT}").json()
    assert pending["verified"] is False and state(chain_client).reads.get(VERIFY, IDENT) is None
    _anchor_with_seals(chain_client)
    assert _invalidations(state(chain_client).engine) == []  # the worker's anchoring fired no trigger
    first = chain_client.get(f"/v1/verify/{IDENT}")
    assert first.json()["verified"] is True, first.json()
    assert state(chain_client).reads.get(VERIFY, IDENT) is not None
    with record_queries(state(chain_client).engine) as hit:
        cond = chain_client.get(f"/v1/verify/{IDENT}", headers={"If-None-Match": first.headers["ETag"]})
        again = chain_client.get(f"/v1/verify/{IDENT}")
    # a verdict hit costs no database round trip (rows changed behind the API's back: triggers, tests below)
    assert hit == [], hit
    assert cond.status_code == 304 and again.content == first.content
    # the /id JSON is served from the same facts
    page = chain_client.get(f"/id/{IDENT}", headers={"Accept": "application/json"}).json()
    assert page["verification"]["verified"] is True
    # a replacement: the old certificate's verdict now names its successor
    post(chain_client, ent["api_key"], corrected(), supersedes=IDENT)
    after = chain_client.get(f"/v1/verify/{IDENT}")
    assert after.json()["superseded_by"] == IDENT + ".r2"
    assert after.headers["ETag"] != first.headers["ETag"]
    page2 = chain_client.get(f"/id/{IDENT}", headers={"Accept": "application/json"}).json()
    assert page2["verification"]["superseded_by"] == IDENT + ".r2"
    # the replacement itself is pending: verified False, not cached
    r2 = chain_client.get(f"/v1/verify/{IDENT}.r2").json()
    assert r2["verified"] is False and state(chain_client).reads.get(VERIFY, IDENT + ".r2") is None


def test_verdict_not_cached_outside_qbft_finality(chain_client: TestClient) -> None:
    ent = create_enterprise(chain_client)
    post(chain_client, ent["api_key"], sample())
    _anchor_with_seals(chain_client)
    state(chain_client).chain.finality = "confirmations:1"
    body = chain_client.get(f"/v1/verify/{IDENT}").json()
    assert body["finality_model"] == "confirmations:1"
    assert state(chain_client).reads.get(VERIFY, IDENT) is None


def test_cached_view_type_is_frozen() -> None:
    view = CachedView(RESOLUTION, IDENT, "r", b"{}", '"t"')
    with pytest.raises(AttributeError):
        view.identifier = OTHER  # type: ignore[misc]


def test_cache_is_bounded_and_sized_by_settings(db_url: str, tmp_path: Path) -> None:
    reads = ReadCache(maxsize=3)
    for i in range(10):
        reads.put(make_view(RESOLUTION, f"88.1.1/C{i}", "r", {"i": i}), reads.epoch())
    assert len(reads) == 3 and reads.get(RESOLUTION, "88.1.1/C9") is not None
    assert reads.get(RESOLUTION, "88.1.1/C0") is None  # least recently used went first
    assert reads.get(RESOLUTION, "88.1.1/C9").data is None  # an entry holds its bytes, not the dict as well
    with TestClient(create_app(make_settings(db_url, tmp_path, read_cache_entries=5, read_cache_poll_s=3600))) as c:
        assert state(c).reads._views.maxsize == 5


def test_a_row_changed_behind_the_api_is_verified_afresh_not_served_from_the_cache(chain_client: TestClient) -> None:
    """Someone with database access rewrites an anchored, verified (cached) record: the database's trigger
    records an invalidation, and after the next poll (what the poller thread runs every
    ``TRACELEDGER_READ_CACHE_POLL_S``) the verify sees the stored bytes and fails; restoring the row makes
    it verify again."""
    ent = create_enterprise(chain_client)
    post(chain_client, ent["api_key"], sample())
    _anchor_with_seals(chain_client)
    assert chain_client.get(f"/v1/verify/{IDENT}").json()["verified"] is True
    reads = state(chain_client).reads
    assert reads.get(VERIFY, IDENT) is not None
    engine = state(chain_client).engine
    with engine.begin() as conn:
        (document,) = conn.execute(text("SELECT document FROM records WHERE identifier = :i"), {"i": IDENT}).one()
        conn.execute(text("UPDATE records SET document = :d WHERE identifier = :i"),
                     {"d": document.replace("S355MC", "S235JR"), "i": IDENT})
    assert reads.poll(engine) == 1 and reads.get(VERIFY, IDENT) is None
    tampered = chain_client.get(f"/v1/verify/{IDENT}").json()
    assert tampered["verified"] is False
    assert {c["name"]: c["ok"] for c in tampered["checks"]}["record_digest"] is False
    with engine.begin() as conn:
        conn.execute(text("UPDATE records SET document = :d WHERE identifier = :i"), {"d": document, "i": IDENT})
    assert chain_client.get(f"/v1/verify/{IDENT}").json()["verified"] is True


# ----------------------------------------------------------------------------------- changes behind the API's back
def _anchored_rows(engine: Engine) -> tuple[str, int, int]:
    """One enterprise, a final batch and an anchored record in it, plus a pending record (raw rows, no API):
    ``(identifier, batch id, enterprise id)`` of the anchored one."""
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO enterprises (name, roles, prefix, address, api_key_hash, keystore, active, is_service, "
            "registered_on_chain, created_at) VALUES ('Mill', '[]', '88.1.1', :a, :k, '{}', true, false, true, "
            ":t)"), {"a": "0x" + "11" * 20, "k": "ab" * 32, "t": "2026-11-30 12:00:00"})
        ent = conn.execute(text("SELECT id FROM enterprises")).scalar_one()
        conn.execute(text(
            "INSERT INTO batches (root, size, leaf_digests, metadata_digest, tx_hash, block_number, block_hash, "
            "status, attempts, created_at) VALUES (:r, 2, '[]', :m, :x, 7, :h, 'final', 0, :t)"),
            {"r": "0x" + "aa" * 32, "m": "0x" + "00" * 32, "x": "0x" + "ab" * 32, "h": "0x" + "cd" * 32,
             "t": "2026-11-30 12:00:00"})
        batch = conn.execute(text("SELECT id FROM batches")).scalar_one()
        for i, (ident, status, bid) in enumerate(((IDENT, "anchored", batch), (OTHER, "pending", None))):
            conn.execute(text(
                "INSERT INTO records (identifier, kind, enterprise_id, document, record_digest, signature, signer, "
                "signed_by_client, chain_id, status, batch_id, leaf_index, created_at) VALUES (:i, 'coil', :e, "
                "'{}', :d, :s, :a, false, 1, :st, :b, :l, :t)"),
                {"i": ident, "e": ent, "d": "0x" + "00" * 32, "s": "0x" + "00" * 65, "a": "0x" + "11" * 20,
                 "st": status, "b": bid, "l": i if bid else None, "t": "2026-11-30 12:00:00"})
    return IDENT, batch, ent


def _invalidations(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT identifier FROM read_invalidations ORDER BY id")).scalars())


CHANGES = {
    "record document": "UPDATE records SET document = '{\"x\": 1}' WHERE status = 'anchored'",
    "record leaf index": "UPDATE records SET leaf_index = 5 WHERE status = 'anchored'",
    "record demoted to pending": "UPDATE records SET status = 'pending' WHERE status = 'anchored'",
    "record deleted": "DELETE FROM records WHERE status = 'anchored'",
    "batch root": "UPDATE batches SET root = '0x" + "bb" * 32 + "'",
    "batch block hash": "UPDATE batches SET block_hash = '0x" + "ee" * 32 + "'",
    "batch deleted": "DELETE FROM batches",  # SQLite without PRAGMA foreign_keys (PostgreSQL refuses: FK)
    "owner address": "UPDATE enterprises SET address = '0x" + "22" * 20 + "'",
    "owner prefix": "UPDATE enterprises SET prefix = '88.9.9'",
    "owner name": "UPDATE enterprises SET name = 'Other Mill'",
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_raw_sql_change_in_another_connection_invalidates_within_the_poll_interval(
    db_url: str, tmp_path: Path, change: str
) -> None:
    """An UPDATE/DELETE made with raw SQL on its own connection (not through the API) of a row a cached answer
    depends on: the trigger writes ``read_invalidations`` in that transaction, the poller thread drops the
    answer within ``poll_s`` (SQLite and PostgreSQL)."""
    from api.db import init_db, make_engine

    if change == "batch deleted" and not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL enforces the records -> batches foreign key: a referenced batch is not deleted")
    engine = make_engine(make_settings(db_url, tmp_path))
    init_db(engine)
    ident, _, _ = _anchored_rows(engine)
    poll_s = 0.2
    reads = ReadCache(poll_s=poll_s)
    reads.start_poller(engine)
    try:
        for view in (VERIFY, RESOLUTION):
            assert reads.put(make_view(view, ident, "r1", {"verified": True}), reads.epoch())
        other = create_engine(db_url)  # another pool, another connection: behind this process's back
        with other.begin() as conn:
            conn.execute(text(CHANGES[change]))
        other.dispose()
        changed = time.monotonic()
        while reads.get(VERIFY, ident) is not None and time.monotonic() - changed < 10:
            time.sleep(0.01)
        elapsed = time.monotonic() - changed
        assert reads.get(VERIFY, ident) is None and reads.get(RESOLUTION, ident) is None
        assert elapsed < poll_s + 2.0, elapsed  # one poll interval, plus slack for a loaded machine
        assert ident in _invalidations(engine)
    finally:
        reads.stop()
        engine.dispose()


def test_the_anchoring_workers_own_updates_write_no_invalidation(db_url: str, tmp_path: Path) -> None:
    """Pending records and non-final batches are filtered in the triggers' WHEN clause: anchoring (batch
    assignment, status to anchored, batch to final) and an owner's api key / activity write nothing."""
    from api.db import init_db, make_engine

    engine = make_engine(make_settings(db_url, tmp_path))
    init_db(engine)
    _, batch, ent = _anchored_rows(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE batches SET status = 'submitted' WHERE id = :b"), {"b": batch})
    assert _invalidations(engine) == [IDENT]  # a final batch changed: its record
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM read_invalidations"))
        conn.execute(text("UPDATE records SET batch_id = :b, leaf_index = 1 WHERE status = 'pending'"), {"b": batch})
        conn.execute(text("UPDATE batches SET status = 'final', block_number = 8 WHERE id = :b"), {"b": batch})
        conn.execute(text("UPDATE records SET status = 'anchored' WHERE identifier = :i"), {"i": OTHER})
        conn.execute(text("UPDATE enterprises SET api_key_hash = :k, active = false WHERE id = :e"),
                     {"k": "cd" * 32, "e": ent})
    assert _invalidations(engine) == []
    engine.dispose()


@pytest.mark.postgres
def test_truncate_on_postgresql_clears_every_answer(tmp_path: Path) -> None:
    from api.db import init_db, make_engine
    from tests.api.conftest import pg_schema

    with pg_schema("tl_truncate") as url:
        engine = make_engine(make_settings(url, tmp_path))
        init_db(engine)
        ident, _, _ = _anchored_rows(engine)
        reads = ReadCache(poll_s=3600)
        reads.poll(engine)
        assert reads.put(make_view(RESOLUTION, OTHER, "r1", {}), reads.epoch())
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE records CASCADE"))
        assert reads.poll(engine) == 1 and len(reads) == 0
        assert _invalidations(engine) == [ALL]
        engine.dispose()
