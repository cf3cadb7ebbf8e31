"""Crash safety of bulk ingest and the one-anchoring-worker election, on real processes.

(a) SIGKILL of the API process (which also runs the anchoring worker) while clients post certificate
    batches and bulk EPCIS documents: after a restart every acknowledged record is anchored and verifies.
(a') the same with pipelined anchoring in its own process: the API **and** the anchoring process are
    SIGKILLed while anchor transactions are in flight; after a restart every acknowledged record is
    anchored, every batch is final and each root was anchored exactly once on chain.
(b) PostgreSQL with two uvicorn workers: exactly one process holds the anchoring lease (PostgreSQL's
    ``pg_locks`` and ``/healthz`` agree); after SIGKILL of that worker another process takes over and
    new records are still anchored.
"""

from __future__ import annotations

import copy
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from api.anchoring.lease import advisory_key
from api.chain import ChainClient
from api.devnet import Stack
from provenance.samples import load_samples
from provenance.supply_chain import generate
from tests.api.conftest import pg_schema

from .conftest import path_of, wait_anchored

pytestmark = pytest.mark.integration


def _certs(tag: str, start: int, n: int) -> list[dict[str, Any]]:
    docs = [d for _, d in load_samples()]
    out = []
    for i in range(start, start + n):
        d = copy.deepcopy(docs[i % len(docs)])
        d["Certificate"]["ProductDescription"]["B07"] = f"{tag}-{i:06d}"
        out.append(d)
    return out


def _register(api: httpx.Client, stack: Stack, name: str) -> dict[str, Any]:
    r = api.post("/v1/enterprises", headers={"Authorization": f"Bearer {stack.admin_token}"},
                 json={"name": name, "roles": ["manufacturer"]})
    assert r.status_code == 201, r.text
    return r.json()


def test_sigkill_during_bulk_ingest_keeps_every_acknowledged_record(tmp_path_factory: pytest.TempPathFactory) -> None:
    stack = Stack(data_dir=tmp_path_factory.mktemp("kill-network"), validators=1, api_port=None,
                  rpc_base_port=None, p2p_base_port=None)
    with stack, httpx.Client(base_url=stack.api_url(), timeout=60) as api:
        mill = _register(api, stack, "Crash Test Mill")
        auth = {"Authorization": f"Bearer {mill['api_key']}"}
        chain = generate(target_events=2000, mill_prefix=mill["prefix"])
        epcis_docs = [d for _, d in chain.documents]
        acknowledged: list[str] = []
        stop = threading.Event()
        lock = threading.Lock()

        def poster() -> None:
            i = 0
            with httpx.Client(base_url=stack.api_url(), timeout=60, headers=auth) as c:
                while not stop.is_set():
                    try:
                        if i % 2 == 0:
                            r = c.post("/v1/coils/certificates/batch", json={"certificates": _certs("K", i * 50, 50)})
                            got = [x["identifier"] for x in r.json()["records"]] if r.status_code == 201 else []
                        else:
                            r = c.post("/v1/epcis/capture", json=epcis_docs[(i // 2) % len(epcis_docs)])
                            got = [x["identifier"] for x in r.json()["events"]] if r.status_code == 201 else []
                    except httpx.HTTPError:
                        return  # the API died under us: this request was never acknowledged
                    with lock:
                        acknowledged.extend(got)
                    i += 1

        t = threading.Thread(target=poster, daemon=True)
        t.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with lock:
                if len(acknowledged) >= 400:
                    break
            time.sleep(0.05)
        stack.stop_api(sig=signal.SIGKILL)  # mid-run: batches in flight, anchoring worker killed with it
        stop.set()
        t.join(30)
        with lock:
            acked = list(dict.fromkeys(acknowledged))
        assert len(acked) >= 400, "the API acknowledged too little before the kill"
        stack.start_api()
        wait_anchored(api, acked, timeout=150)
        for ident in (acked[0], acked[len(acked) // 2], acked[-1]):
            body = api.get(f"/v1/verify/{path_of(ident)}").json()
            assert body["verified"] is True, body


def _db_count(db: Path, sql: str, params: tuple[Any, ...] = ()) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return int(conn.execute(sql, params).fetchone()[0])


def test_sigkill_of_api_and_anchoring_process_mid_pipeline(tmp_path_factory: pytest.TempPathFactory) -> None:
    stack = Stack(data_dir=tmp_path_factory.mktemp("kill-pipeline"), validators=1, api_port=None,
                  rpc_base_port=None, p2p_base_port=None, anchoring_process=True,
                  extra_env={"TRACELEDGER_ANCHOR_INTERVAL_S": "0.2", "TRACELEDGER_ANCHOR_MAX_BATCH": "150",
                             "TRACELEDGER_ANCHOR_PIPELINE_DEPTH": "4"})
    with stack, httpx.Client(base_url=stack.api_url(), timeout=60) as api:
        db = stack.data_dir / "api" / "api.db"
        mill = _register(api, stack, "Pipeline Crash Mill")
        auth = {"Authorization": f"Bearer {mill['api_key']}"}
        epcis_docs = [d for _, d in generate(target_events=2000, mill_prefix=mill["prefix"]).documents]
        acknowledged: list[str] = []
        stop = threading.Event()
        lock = threading.Lock()

        def poster() -> None:
            i = 0
            with httpx.Client(base_url=stack.api_url(), timeout=60, headers=auth) as c:
                while not stop.is_set():
                    try:
                        if i % 2 == 0:
                            r = c.post("/v1/coils/certificates/batch", json={"certificates": _certs("P", i * 20, 20)})
                            got = [x["identifier"] for x in r.json()["records"]] if r.status_code == 201 else []
                        else:
                            r = c.post("/v1/epcis/capture", json=epcis_docs[(i // 2) % len(epcis_docs)])
                            got = [x["identifier"] for x in r.json()["events"]] if r.status_code == 201 else []
                    except httpx.HTTPError:
                        return  # the API died under us: this request was never acknowledged
                    with lock:
                        acknowledged.extend(got)
                    i += 1

        t = threading.Thread(target=poster, daemon=True)
        t.start()
        # kill once records are acknowledged and an anchor tx is in flight (hash stored, batch not final)
        in_flight = 0
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with lock:
                enough = len(acknowledged) >= 300
            in_flight = _db_count(db, "SELECT count(*) FROM batches WHERE status = 'submitted' AND tx_hash IS NOT NULL")
            if enough and in_flight:
                break
            time.sleep(0.05)
        assert stack.anchor_proc is not None
        stack.anchor_proc.send_signal(signal.SIGKILL)
        stack.anchor_proc.wait(10)
        stack.stop_api(sig=signal.SIGKILL)
        stop.set()
        t.join(30)
        assert in_flight >= 1, "no anchor transaction was in flight when the processes were killed"
        with lock:
            acked = list(dict.fromkeys(acknowledged))
        assert len(acked) >= 300, "the API acknowledged too little before the kill"
        stack.start_api()
        stack.start_anchoring()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if _db_count(db, "SELECT count(*) FROM records WHERE status <> 'anchored'") == 0:
                break
            time.sleep(0.5)
        with sqlite3.connect(db, timeout=30) as conn:
            anchored = {row[0] for row in conn.execute("SELECT identifier FROM records WHERE status = 'anchored'")}
            roots = [row[0] for row in conn.execute("SELECT root FROM batches")]
            unfinished = conn.execute("SELECT count(*) FROM batches WHERE status <> 'final'").fetchone()[0]
        assert not [i for i in acked if i not in anchored], "acknowledged records lost or never anchored"
        assert unfinished == 0 and len(roots) == len(set(roots))
        assert stack.spec is not None
        chain = ChainClient.from_url(stack.spec.rpc_urls[0], enterprise_registry=stack.spec.enterprise_registry,
                                     anchor_registry=stack.spec.anchor_registry)
        # one on-chain anchor per batch: no root was anchored twice (a second anchor of a root by the same
        # enterprise reverts, so the count of successful anchors equals the count of batches exactly)
        assert chain.anchor_registry.functions.anchorCount().call() == len(roots)
        for ident in (acked[0], acked[len(acked) // 2], acked[-1]):
            body = api.get(f"/v1/verify/{path_of(ident)}").json()
            assert body["verified"] is True, body


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with pg_schema("tl_scaleout") as url:
        yield url


def _lease_holders(pg_url: str) -> int:
    """Sessions holding the anchoring advisory lock of this schema, according to PostgreSQL."""
    schema = pg_url.rsplit("search_path%3D", 1)[1]
    key = advisory_key(schema) & 0xFFFFFFFFFFFFFFFF
    eng = create_engine(pg_url)
    try:
        with eng.connect() as conn:
            return int(conn.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1"),
                {"hi": key >> 32, "lo": key & 0xFFFFFFFF}).scalar())
    finally:
        eng.dispose()


def _leaders(api: httpx.Client, tries: int = 60) -> tuple[set[int], set[int]]:
    """(pids seen, pids claiming the lease) over fresh connections to the worker pool."""
    pids: set[int] = set()
    leaders: set[int] = set()
    for _ in range(tries):
        with httpx.Client(base_url=str(api.base_url), timeout=10) as fresh:
            a = fresh.get("/healthz").json()["anchoring"]
        pids.add(a["pid"])
        if a["leader"]:
            leaders.add(a["pid"])
        if len(pids) >= 2 and leaders:
            break
    return pids, leaders


@pytest.mark.postgres
def test_two_workers_on_postgresql_elect_exactly_one_anchoring_worker(
        tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> None:
    stack = Stack(data_dir=tmp_path_factory.mktemp("pg-workers"), validators=1, api_port=None, rpc_base_port=None,
                  p2p_base_port=None, database_url=pg_url, api_workers=2)
    with stack, httpx.Client(base_url=stack.api_url(), timeout=60) as api:
        mill = _register(api, stack, "Two Worker Mill")
        auth = {"Authorization": f"Bearer {mill['api_key']}"}
        deadline = time.monotonic() + 30
        while _lease_holders(pg_url) != 1 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert _lease_holders(pg_url) == 1
        pids, leaders = _leaders(api)
        assert len(leaders) == 1, (pids, leaders)
        r = api.post("/v1/coils/certificates/batch", json={"certificates": _certs("PG", 0, 40)}, headers=auth)
        assert r.status_code == 201, r.text
        first = [x["identifier"] for x in r.json()["records"]]
        wait_anchored(api, first)
        # every record is in exactly one batch, anchored once
        eng = create_engine(pg_url)
        with eng.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM records WHERE status <> 'anchored'")).scalar() == 0
            assert conn.execute(text("SELECT count(*) FROM batches WHERE status <> 'final'")).scalar() == 0
        # kill the anchoring worker process: another process takes the lease, nothing acknowledged is lost
        (leader,) = leaders
        os.kill(leader, signal.SIGKILL)
        r = None
        for _ in range(50):
            try:
                r = api.post("/v1/coils/certificates/batch", json={"certificates": _certs("PG", 40, 40)},
                             headers=auth)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert r is not None and r.status_code == 201, r and r.text
        second = [x["identifier"] for x in r.json()["records"]]
        wait_anchored(api, second, timeout=120)
        assert _lease_holders(pg_url) == 1
        _, leaders_after = _leaders(api)
        assert len(leaders_after) == 1 and leaders_after != {leader}
        with eng.connect() as conn:
            roots = conn.execute(text("SELECT root FROM batches")).scalars().all()
            assert len(roots) == len(set(roots))
        eng.dispose()


def test_stand_alone_anchoring_process_anchors_for_the_api(tmp_path_factory: pytest.TempPathFactory) -> None:
    """``python -m api.anchoring.service`` holds the lease; the API workers (anchoring disabled) only ingest."""
    stack = Stack(data_dir=tmp_path_factory.mktemp("anchor-proc"), validators=1, api_port=None, rpc_base_port=None,
                  p2p_base_port=None, api_workers=2, anchoring_process=True)
    with stack, httpx.Client(base_url=stack.api_url(), timeout=60) as api:
        assert stack.anchor_proc is not None and stack.anchor_proc.poll() is None
        mill = _register(api, stack, "Service Mill")
        r = api.post("/v1/coils/certificates/batch", json={"certificates": _certs("SV", 0, 30)},
                     headers={"Authorization": f"Bearer {mill['api_key']}"})
        assert r.status_code == 201, r.text
        idents = [x["identifier"] for x in r.json()["records"]]
        wait_anchored(api, idents)
        pids, leaders = _leaders(api, tries=20)
        assert leaders == set() and stack.anchor_proc.pid not in pids  # the API processes do not anchor
        assert api.get(f"/v1/verify/{path_of(idents[-1])}").json()["verified"] is True
