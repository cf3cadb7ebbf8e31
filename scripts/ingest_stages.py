"""CPU microseconds per event of each stage of ``POST /v1/epcis/capture``, in one process, no chain.

Posts the benchmark's documents (:func:`api.cli.bench.ingest_documents`: ``--docs`` × ``--events`` events, new
GS1 event hashes each) one at a time through the whole ASGI app (``TestClient``: the strict JSON reader,
FastAPI, the route, the database) on a private PostgreSQL schema (or SQLite file), and times each stage with
``time.process_time`` (exclusive: a stage's time excludes the stages it calls). Requests run one after another,
so the process's CPU is the request's. Prints one JSON object: ``us_per_event`` by stage, ``total``, and
``wall_us_per_event``.

Usage: ``.venv/bin/python scripts/ingest_stages.py --database postgresql --docs 4``. Run from another source
tree with ``PYTHONPATH=<tree>`` to compare versions (stages that tree lacks are skipped).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

STAGES = [  # (module, attribute path, label): wrapped in place where they exist
    ("provenance.strict_json", "loads", "parse: strict JSON reader"),
    ("starlette.requests", "Request.json", "parse: FastAPI body (json.loads)"),
    ("provenance.epcis", "validate_document", "schema validation"),
    ("api.epcis.capture", "validate_document", "schema validation"),
    ("api.epcis.capture", "event_hash_ids", "event hash IDs"),
    ("api.epcis.capture", "event_epcs", "EPC references"),
    ("api.epcis.capture", "parse_time", "event time"),
    ("api.epcis.capture", "_stored_events", "db: read stored hashes"),
    ("api.epcis.capture", "prepare", "canonical JSON + digest"),
    ("api.ingest.RecordSigner", "sign", "EIP-712 signature"),
    ("api.epcis.capture", "record_row", "rows: record"),
    ("api.epcis.capture", "_event_row", "rows: event"),
    ("api.epcis.capture", "lineage_links", "rows: lineage"),
    ("api.epcis.capture", "_object_row", "rows: objects"),
    ("api.epcis.capture", "persist", "db: records COPY"),
    ("api.epcis.capture", "copy_rows", "db: events/EPCs/edges COPY"),
    ("api.epcis.capture", "insert_new_rows", "db: objects insert"),
    ("api.epcis.capture", "_write", "db: other writes"),
    ("api.epcis.capture", "capture_document", "capture: rest"),
    ("sqlalchemy.orm.Session", "commit", "db: commit"),
    ("api.routes.epcis", "capture", "route: rest"),
]

_local = threading.local()
totals: dict[str, float] = {}


def _timed(fn: Any, label: str) -> Any:
    def enter() -> None:
        stack = getattr(_local, "stack", None)
        if stack is None:
            stack = _local.stack = []
        stack.append(0.0)

    def leave(t0: float) -> None:
        spent = time.process_time() - t0
        stack = _local.stack
        children = stack.pop()
        totals[label] = totals.get(label, 0.0) + spent - children
        if stack:
            stack[-1] += spent

    if _is_async(fn):
        @functools.wraps(fn)
        async def awrapper(*a: Any, **k: Any) -> Any:
            enter()
            t0 = time.process_time()
            try:
                return await fn(*a, **k)
            finally:
                leave(t0)
        return awrapper

    @functools.wraps(fn)
    def wrapper(*a: Any, **k: Any) -> Any:
        enter()
        t0 = time.process_time()
        try:
            return fn(*a, **k)
        finally:
            leave(t0)
    return wrapper


def _is_async(fn: Any) -> bool:
    import inspect
    return inspect.iscoroutinefunction(fn)


def _install() -> None:
    for module, attr, label in STAGES:
        parts = attr.split(".")
        try:
            owner: Any = importlib.import_module(module)
        except ImportError:
            mod, cls = module.rsplit(".", 1)
            owner = getattr(importlib.import_module(mod), cls)
        for p in parts[:-1]:
            owner = getattr(owner, p)
        if hasattr(owner, parts[-1]):
            setattr(owner, parts[-1], _timed(getattr(owner, parts[-1]), label))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    p.add_argument("--docs", type=int, default=4)
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--warm", type=int, default=1, help="documents posted before timing starts")
    p.add_argument("--gc-unfreeze", action="store_true",
                   help="gc.unfreeze() after the warm-up (undo the app's start-up gc.freeze(), for comparison)")
    args = p.parse_args()

    from sqlalchemy import create_engine, text

    tmp = Path(tempfile.mkdtemp(prefix="tl-stages-"))
    schema = None
    if args.database == "postgresql":
        base = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
        schema = f"tl_stages_{secrets.token_hex(4)}"
        admin = create_engine(base)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{base}?options=-csearch_path%3D{schema}"
    else:
        url = f"sqlite:///{tmp / 'api.db'}"
    try:
        _install()
        from fastapi.testclient import TestClient

        from api.cli.bench import ingest_documents
        from api.main import create_app
        from api.settings import Settings

        settings = Settings(database_url=url, data_dir=tmp, rpc_url=None, admin_token="stages-admin",
                            admin_private_key=None, enterprise_registry_address=None, anchor_registry_address=None,
                            keystore_passphrase="stages-passphrase", keystore_scrypt_n=2**4,
                            public_base_url="https://trace.example", anchoring_enabled=False, chain_id=1337,
                            environment="development")
        with TestClient(create_app(settings)) as client:
            ent = client.post("/v1/enterprises", json={"name": "Stage Mill", "roles": ["manufacturer"]},
                              headers={"Authorization": "Bearer stages-admin"}).json()
            headers = {"Authorization": f"Bearer {ent['api_key']}", "Content-Type": "application/json"}
            bodies = [json.dumps(d).encode() for d in ingest_documents(args.docs + args.warm, args.events,
                                                                       ent["prefix"])]
            for body in bodies[:args.warm]:
                assert client.post("/v1/epcis/capture", content=body, headers=headers).status_code == 201
            if args.gc_unfreeze:
                import gc
                gc.unfreeze()
            totals.clear()
            events = 0
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for body in bodies[args.warm:]:
                r = client.post("/v1/epcis/capture", content=body, headers=headers)
                assert r.status_code == 201, r.text[:300]
                events += r.json()["captured"]
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        staged = sum(totals.values())
        out = {"database": args.database, "events": events,
               "us_per_event": {k: round(v / events * 1e6, 1)
                                for k, v in sorted(totals.items(), key=lambda kv: -kv[1])},
               "unstaged (ASGI, client, middleware)": round((cpu - staged) / events * 1e6, 1),
               "total_cpu_us_per_event": round(cpu / events * 1e6, 1),
               "wall_us_per_event": round(wall / events * 1e6, 1)}
        print(json.dumps(out, indent=1))
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
        if schema:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
