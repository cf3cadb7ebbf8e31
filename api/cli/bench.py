"""``traceledger bench`` / ``make bench``: a reproducible throughput report of the whole system.

Starts a throwaway network (``--validators`` QBFT validator processes, the contracts) and the API
(``--workers`` uvicorn workers on PostgreSQL when reachable, else SQLite; one anchoring worker elected
through the database), prepares data (:mod:`api.cli.load_setup`), then measures:

1. **bulk EPCIS ingest**: ``--ingest-docs`` generated documents of ``--ingest-events`` events each,
   posted by ``--ingest-concurrency`` clients (documents generated before the clock starts);
   events/s = events acknowledged (201, committed) / wall seconds;
2. **anchoring** of those events, from the database: per record ``batch.anchored_at − record.created_at``
   (p50/p95/p99/max, seconds) and anchored records/s;
3. **locust suites** (``load/``) run headless one scenario at a time (``--duration`` s, ``--users`` users,
   no think time): ``GET /livez`` (the trivial ceiling, same run), single certificate POST, certificate
   batch POST, identifier resolution, QR PNG, single verify, upstream verify of a part with ~50 records,
   the bank's receivable check; requests/s and p50/p95/p99 per endpoint, failures with reasons; a scenario
   that completed fewer than ``--min-requests`` (20) requests runs again 4× longer (at most twice), and each
   figure is reported with the requests and seconds it rests on (``requests``, ``scenario_seconds``);
4. **micro-benchmarks** in this process: RFC 8785 canonical JSON, SHA-256, EIP-712 sign/recover
   (coincurve), EPCIS schema validation and GS1 event hash IDs per event, a 50,000-leaf Merkle root,
   an inclusion proof from a cached batch tree;

and writes ``bench/report.md`` and ``bench/report.json`` (keys ``ingest_events_per_s``,
``anchor_latency_p99_s``, ``post_certificate_rps``, ``post_certificate_p99_ms``, ``resolve_rps``, ``verify_rps``,
``verify_lineage50_p50_ms``, ``bank_check_rps``, ``bank_check_p50_ms``, ``trivial_rps``, ``ratios_to_trivial``
per scenario and ``endpoint_ratios_to_trivial`` per endpoint, plus everything else), with machine facts. Raw locust CSVs
go to ``bench/raw/``. The default run takes about 5–7 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import importlib.metadata
import json
import os
import platform
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]  # the checkout: load/ (locust suites) and bench/ (reports)
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

GOALS = {
    "ingest_events_per_s": (">=", 10_000, "bulk EPCIS ingest, events/s"),
    "anchor_latency_p99_s": ("<=", 3.0, "anchoring latency p99, s"),
    "post_certificate_rps": (">=", 1_000, "single certificate POST, req/s"),
    "post_certificate_p99_ms": ("<=", 100.0, "single certificate POST p99, ms"),
    "resolve_rps": (">=", 2_000, "identifier resolution, req/s"),
    "verify_lineage50_p50_ms": ("<=", 20.0, "verify lineage-50 p50, ms"),
    "bank_check_p50_ms": ("<=", 20.0, "bank receivable check p50, ms"),
}

#: A scenario's figures rest on at least this many completed requests: a run with fewer runs again, longer.
MIN_REQUESTS = 20
#: At most this many longer runs of a scenario that completed fewer than MIN_REQUESTS requests ...
RERUNS = 2
#: ... each this many times longer than the one before.
RERUN_FACTOR = 4

# name, locust file, tags, users (None = --users), key prefix in report.json
SCENARIOS: list[tuple[str, str, str, int | None]] = [
    ("trivial", "auditor.py", "trivial", None),
    ("post_certificate", "factory.py", "certificate", None),
    ("certificate_batch", "factory.py", "certificate_batch", 2),
    ("resolve", "auditor.py", "resolve", None),
    ("qr_png", "auditor.py", "qr", None),
    ("verify", "auditor.py", "verify", None),
    ("verify_lineage50", "auditor.py", "lineage", 2),  # a latency goal: few users, little queueing
    ("bank_check", "bank.py", "receivable", 4),
]


def log(msg: str) -> None:
    """Progress on stderr (the report goes to files)."""
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile ``p`` (0–100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_facts(database: str, db_url: str | None) -> dict[str, Any]:
    """Cores, CPU model, memory, Python, OS and the versions that matter for the figures."""
    cpu = ""
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), "")
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines()
                      if ln.startswith("MemTotal")))
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    facts: dict[str, Any] = {
        "cores": os.cpu_count(), "cpu": cpu, "memory": mem, "python": sys.version.split()[0],
        "platform": platform.platform(), "sqlite": sqlite3.sqlite_version,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    for dist in ("fastapi", "uvicorn", "uvloop", "httptools", "SQLAlchemy", "psycopg", "locust", "coincurve",
                 "py-evm", "web3", "fastjsonschema", "epcis-event-hash-generator"):
        facts[dist] = version(dist)
    if database == "postgresql" and db_url:
        try:
            from sqlalchemy import create_engine, text

            eng = create_engine(db_url)
            with eng.connect() as conn:
                facts["postgresql"] = conn.execute(text("SHOW server_version")).scalar()
            eng.dispose()
        except Exception as exc:  # noqa: BLE001
            facts["postgresql"] = f"unknown ({exc})"
    return facts


# ------------------------------------------------------------------------------------------- database
def pick_database(choice: str) -> tuple[str, str | None, str | None]:
    """``(backend, url, schema)``: a throwaway PostgreSQL schema when asked/reachable, else SQLite (url None)."""
    if choice == "sqlite":
        return "sqlite", None, None
    base = os.environ.get("TEST_POSTGRES_URL", PG_DEFAULT)
    schema = f"tl_bench_{secrets.token_hex(4)}"
    try:
        from sqlalchemy import create_engine, text

        eng = create_engine(base, connect_args={"connect_timeout": 3})
        with eng.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        eng.dispose()
    except Exception as exc:  # noqa: BLE001
        if choice == "postgresql":
            raise SystemExit(f"PostgreSQL not reachable at {base}: {exc}") from exc
        log(f"PostgreSQL not reachable ({type(exc).__name__}); using SQLite")
        return "sqlite", None, None
    return "postgresql", f"{base}?options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str) -> None:
    from sqlalchemy import create_engine, text

    eng = create_engine(os.environ.get("TEST_POSTGRES_URL", PG_DEFAULT))
    with eng.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    eng.dispose()


def db_engine(stack: Any) -> Any:
    from sqlalchemy import create_engine

    url = stack.database_url or f"sqlite:///{(stack.data_dir / 'api' / 'api.db').as_posix()}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url)


# ------------------------------------------------------------------------------------------- 1+2. ingest
def ingest_documents(count: int, events: int, prefix: str) -> list[dict[str, Any]]:
    """``count`` EPCIS documents of ``events`` events each, from the generator, unique per document."""
    from provenance.supply_chain import generate

    chain = generate(target_events=events * count + 200, mill_prefix=prefix, seed=11)
    all_events = [e for _, d in chain.documents for e in d["epcisBody"]["eventList"]]
    tag = secrets.token_hex(3)
    docs = []
    for i in range(count):
        evs = copy.deepcopy(all_events[i * events:(i + 1) * events])
        for ev in evs:  # a distinct read point per run: new GS1 event hashes, not duplicates of earlier runs
            ev["readPoint"] = {"id": f"urn:epc:id:sgln:4012345.00001.{tag}"}
        doc = copy.deepcopy(chain.documents[0][1])
        doc["epcisBody"] = {"eventList": evs}
        docs.append(doc)
    return docs


def measure_ingest(stack: Any, api_key: str, prefix: str, *, docs: int, events: int, concurrency: int,
                   anchor_timeout_s: float) -> dict[str, Any]:
    """Post bulk EPCIS documents concurrently; then wait for anchoring and read latencies from the database."""
    from sqlalchemy import text

    payloads = ingest_documents(docs, events, prefix)
    bodies = [json.dumps(d).encode() for d in payloads]
    engine = db_engine(stack)
    with engine.connect() as conn:
        first_id = int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM records")).scalar() or 0)
    lat: list[float] = []
    acked = [0]
    failures: list[str] = []
    lock = threading.Lock()
    queue = list(range(len(bodies)))

    def worker() -> None:
        with httpx.Client(base_url=stack.api_url(), timeout=300,
                          headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}) as c:
            while True:
                with lock:
                    if not queue:
                        return
                    i = queue.pop(0)
                t0 = time.perf_counter()
                r = c.post("/v1/epcis/capture", content=bodies[i])
                dt = time.perf_counter() - t0
                with lock:
                    if r.status_code == 201:
                        acked[0] += int(r.json()["captured"])
                        lat.append(dt)
                    else:
                        failures.append(f"{r.status_code}: {r.text[:200]}")

    log(f"ingest: {docs} EPCIS documents x {events} events, {concurrency} clients")
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    log(f"ingest: {acked[0]} events acknowledged in {wall:.1f} s; waiting for anchoring")
    deadline = time.monotonic() + anchor_timeout_s
    pending = -1
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            pending = int(conn.execute(text("SELECT COUNT(*) FROM records WHERE id > :f AND status <> 'anchored'"),
                                       {"f": first_id}).scalar() or 0)
        if pending == 0:
            break
        time.sleep(0.5)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT r.created_at, b.anchored_at, b.id FROM records r JOIN batches b ON b.id = r.batch_id "
            "WHERE r.id > :f AND r.status = 'anchored'"), {"f": first_id}).all()
    engine.dispose()

    def aware(v: Any) -> datetime:
        if isinstance(v, str):
            v = datetime.fromisoformat(v)
        return v if v.tzinfo else v.replace(tzinfo=UTC)

    anchor_lat = [(aware(b) - aware(a)).total_seconds() for a, b, _ in rows]
    span = ((max(aware(b) for _, b, _ in rows) - min(aware(a) for a, _, _ in rows)).total_seconds()
            if rows else 0.0)
    return {
        "documents": docs, "events_per_document": events, "concurrency": concurrency,
        "events_acknowledged": acked[0], "wall_s": round(wall, 3),
        "events_per_s": acked[0] / wall if wall > 0 else 0.0,
        "request_p50_s": pct(lat, 50), "request_max_s": max(lat) if lat else None,
        "failures": failures[:10],
        "anchoring": {
            "records_anchored": len(rows), "records_pending_at_end": pending, "batches": len({r[2] for r in rows}),
            "latency_p50_s": pct(anchor_lat, 50), "latency_p95_s": pct(anchor_lat, 95),
            "latency_p99_s": pct(anchor_lat, 99), "latency_max_s": max(anchor_lat) if anchor_lat else None,
            "anchored_records_per_s": len(rows) / span if span > 0 else None,
        },
    }


def measure_idle_anchoring(stack: Any, api_key: str, count: int = 20, spacing_s: float = 0.1,
                           timeout_s: float = 120.0) -> dict[str, Any]:
    """Anchoring latency without competing load: ``count`` single certificates ``spacing_s`` apart.

    Separates what the chain path costs (interval, transaction, QBFT block, receipt) from CPU contention
    during saturating ingest. Returns ``{records, latency_p50_s, latency_p99_s, latency_max_s}``.
    """
    from sqlalchemy import text

    from api.cli.load_setup import wait_anchored
    from provenance.samples import load_samples

    docs = [d for _, d in load_samples()]
    tag = secrets.token_hex(3).upper()
    idents = []
    with httpx.Client(base_url=stack.api_url(), timeout=60, headers={"Authorization": f"Bearer {api_key}"}) as c:
        for i in range(count):
            doc = copy.deepcopy(docs[i % len(docs)])
            doc["Certificate"]["ProductDescription"]["B07"] = f"IDLE{tag}-{i:03d}"
            r = c.post("/v1/coils/certificates", json=doc)
            if r.status_code == 201:
                idents.append(r.json()["identifier"])
            time.sleep(spacing_s)
        wait_anchored(c, idents, timeout_s)
    engine = db_engine(stack)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT r.created_at, b.anchored_at FROM records r JOIN batches b ON b.id = r.batch_id "
            "WHERE r.identifier LIKE :p"), {"p": f"%IDLE{tag}-%"}).all()
    engine.dispose()

    def aware(v: Any) -> datetime:
        v = datetime.fromisoformat(v) if isinstance(v, str) else v
        return v if v.tzinfo else v.replace(tzinfo=UTC)

    lat = [(aware(b) - aware(a)).total_seconds() for a, b in rows]
    return {"records": len(lat), "latency_p50_s": pct(lat, 50), "latency_p99_s": pct(lat, 99),
            "latency_max_s": max(lat) if lat else None}


# ------------------------------------------------------------------------------------------- 3. locust
def endpoint_stats(stats: Path, name: str, users: int) -> list[dict[str, Any]]:
    """Per-endpoint figures from locust's ``<prefix>_stats.csv`` (none when the file is absent). ``rps`` counts
    answered requests only: locust's requests/s times the share that did not fail (a 429 or a 5xx is not
    throughput); ``offered_rps`` is locust's own figure, failures included."""
    endpoints: list[dict[str, Any]] = []
    if not stats.is_file():
        return endpoints
    with stats.open() as fh:
        for row in csv.DictReader(fh):
            if row["Name"] == "Aggregated" or row["Type"] == "SKIP":  # a skipped suite is not an endpoint
                continue
            requests, failed = int(row["Request Count"]), int(row["Failure Count"])
            ok_share = (requests - failed) / requests if requests else 0.0
            endpoints.append({
                "scenario": name, "name": row["Name"], "method": row["Type"], "requests": requests,
                "failures": failed, "rps": round(float(row["Requests/s"]) * ok_share, 1),
                "offered_rps": float(row["Requests/s"]), "p50_ms": _num(row.get("50%")),
                "p95_ms": _num(row.get("95%")), "p99_ms": _num(row.get("99%")),
                "max_ms": _num(row.get("Max Response Time")), "users": users,
            })
    return endpoints


def run_locust(name: str, locustfile: str, tags: str, users: int, duration_s: int, host: str, config_path: Path,
               raw_dir: Path) -> dict[str, Any]:
    """One headless locust run; returns per-endpoint stats and failures parsed from its CSV files."""
    prefix = raw_dir / name
    env = dict(os.environ, TRACELEDGER_LOAD_CONFIG=str(config_path), TRACELEDGER_LOAD_RATE="max")
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "load" / locustfile), "--headless", "-u", str(users),
           "-r", str(users), "-t", f"{duration_s}s", "--host", host, "--tags", tags, "--csv", str(prefix),
           "--only-summary", "--stop-timeout", "10", "--exit-code-on-error", "0", "--loglevel", "WARNING"]
    log(f"locust {name}: {users} users, {duration_s} s ({locustfile} --tags {tags})")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=duration_s + 120)
    (raw_dir / f"{name}.log").write_text(proc.stdout + proc.stderr)
    endpoints = endpoint_stats(Path(f"{prefix}_stats.csv"), name, users)
    failures: list[dict[str, Any]] = []
    fcsv = Path(f"{prefix}_failures.csv")
    if fcsv.is_file():
        with fcsv.open() as fh:
            for row in csv.DictReader(fh):
                failures.append({"name": row.get("Name"), "error": row.get("Error"),
                                 "occurrences": int(row.get("Occurrences") or 0)})
    if proc.returncode != 0 and not endpoints:
        failures.append({"name": name, "error": f"locust exited {proc.returncode}: {proc.stderr[-300:]}",
                         "occurrences": 1})
    return {"scenario": name, "endpoints": endpoints, "failures": failures}


def scenario_requests(run: dict[str, Any]) -> int:
    """Requests a locust run completed (answered, failed ones included), over all its endpoints."""
    return sum(e["requests"] for e in run["endpoints"])


def scenario_skipped(run: dict[str, Any]) -> bool:
    """True when the suite skipped itself with a reason (e.g. the bank suite without tokens)."""
    return any("skipped" in (f["name"] or "") for f in run["failures"])


def measure_scenario(name: str, locustfile: str, tags: str, users: int, duration_s: int, host: str,
                     config_path: Path, raw_dir: Path, *, min_requests: int = MIN_REQUESTS,
                     reruns: int = RERUNS) -> dict[str, Any]:
    """:func:`run_locust` for ``duration_s`` seconds; a run that completed fewer than ``min_requests`` requests
    (a short run on a starved machine) runs again ``RERUN_FACTOR`` times longer, at most ``reruns`` times, so a
    figure never rests on nothing. Returns the last run's dict with ``duration_s`` (its seconds),
    ``attempts`` and ``requests`` (completed requests its figures come from)."""
    duration = duration_s
    for attempt in range(1, reruns + 2):
        run = run_locust(name, locustfile, tags, users, duration, host, config_path, raw_dir)
        done = scenario_requests(run)
        run.update(duration_s=duration, attempts=attempt, requests=done)
        if done >= min_requests or scenario_skipped(run) or attempt > reruns:
            return run
        log(f"locust {name}: {done} requests completed in {duration} s (fewer than {min_requests}): "
            f"again for {duration * RERUN_FACTOR} s")
        duration *= RERUN_FACTOR
    raise AssertionError("unreachable")


def _num(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------------------- 4. micro
def micro_benchmarks(seconds: float = 1.0) -> dict[str, Any]:
    """Per-operation costs in this process (µs per operation, operations/s)."""
    from api.routes.epcis import load_schema
    from api.verification import BatchTree
    from provenance.canonical import canonicalize
    from provenance.crypto_profile import (
        sign_record_sm2,
        sm2_generate_private_key,
        sm2_public_key,
        sm3,
        verify_record_sm2,
    )
    from provenance.epcis import event_hash_ids, validate_document
    from provenance.merkle import hash_leaf, root_from_leaf_hashes
    from provenance.samples import load_samples
    from provenance.signing import recover_record_signer, sign_record
    from provenance.supply_chain import generate

    cert = load_samples()[0][1]
    key = hashlib.sha256(b"bench").digest()
    digest = hashlib.sha256(b"x").digest()
    sig = sign_record(key, "88.1.1/HX-C1", "coil_certificate", digest, 1337)
    chain = generate(target_events=500, seed=3)
    evs = [e for _, d in chain.documents for e in d["epcisBody"]["eventList"]][:500]
    doc = copy.deepcopy(chain.documents[0][1])
    doc["epcisBody"] = {"eventList": evs}
    leaves = [hash_leaf(i.to_bytes(32, "big")) for i in range(50_000)]
    tree = BatchTree(leaves[:10_000])
    sm3_leaves = [hash_leaf(i.to_bytes(32, "big"), "sm3") for i in range(50_000)]
    sm2_key = sm2_generate_private_key()
    sm2_pub = sm2_public_key(sm2_key)
    sm2_sig = sign_record_sm2(sm2_key, "88.1.1/HX-C1", "coil_certificate", digest, 1337)
    try:
        schema: dict[str, Any] | None = load_schema()
    except Exception:  # noqa: BLE001 - no shared schema: skip the EPCIS rows
        schema = None
    cases: list[tuple[str, Any, int]] = [
        ("canonical JSON (RFC 8785) of a certificate", lambda: canonicalize(cert), 1),
        ("SHA-256 of a certificate's canonical JSON", lambda: hashlib.sha256(canonicalize(cert)).digest(), 1),
        ("EIP-712 record signature (coincurve)", lambda: sign_record(key, "88.1.1/HX-C1", "coil_certificate",
                                                                     digest, 1337), 1),
        ("EIP-712 signer recovery (coincurve)", lambda: recover_record_signer(sig, "88.1.1/HX-C1",
                                                                             "coil_certificate", digest, 1337), 1),
        ("GS1 event hash ID, per event (500-event document)", lambda: event_hash_ids(doc), len(evs)),
        ("Merkle root of 50,000 leaves (per leaf)", lambda: root_from_leaf_hashes(leaves), len(leaves)),
        ("inclusion proof from a cached 10,000-leaf tree", lambda: tree.proof(4321), 1),
        # crypto profile `sm` (issue 18) beside the standard rows above: same inputs, national algorithms
        ("SM3 of a certificate's canonical JSON", lambda: sm3(canonicalize(cert)), 1),
        ("SM2 record signature (Tongsuo)", lambda: sign_record_sm2(sm2_key, "88.1.1/HX-C1", "coil_certificate",
                                                                   digest, 1337), 1),
        ("SM2 record signature verification (Tongsuo)", lambda: verify_record_sm2(
            sm2_pub, sm2_sig, "88.1.1/HX-C1", "coil_certificate", digest, 1337), 1),
        ("Merkle root of 50,000 leaves, SM3 (per leaf)", lambda: root_from_leaf_hashes(sm3_leaves, hash_alg="sm3"),
         len(sm3_leaves)),
    ]
    if schema is not None:
        cases.insert(4, ("EPCIS schema validation, per event (500-event document)",
                         lambda: validate_document(doc, schema), len(evs)))
    out = {}
    for name, fn, per in cases:
        fn()  # warm-up (compiles, caches)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            fn()
            n += 1
        dt = (time.perf_counter() - t0) / (n * per)
        out[name] = {"us_per_op": dt * 1e6, "ops_per_s": 1 / dt}
    from ledger.bench_links import link_benchmarks

    out.update(link_benchmarks(seconds))  # encrypted peer links: set-up and per-frame sealing
    return out


# ------------------------------------------------------------------------------------------- report
def summarize(ingest: dict[str, Any], runs: list[dict[str, Any]], lineage_records: int | None) -> dict[str, Any]:
    """The headline keys of report.json from the raw measurements."""
    by: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run["endpoints"]:
            by[run["scenario"]] = max(run["endpoints"], key=lambda e: e["requests"])
        elif not scenario_skipped(run):  # it ran and completed nothing, even longer: 0 req/s, no latency sample
            by[run["scenario"]] = {"rps": 0.0, "requests": 0}

    def g(scn: str, key: str) -> float | None:
        return by.get(scn, {}).get(key)

    trivial = g("trivial", "rps")
    out: dict[str, Any] = {
        "ingest_events_per_s": round(ingest["events_per_s"], 1),
        "anchor_latency_p99_s": ingest["anchoring"]["latency_p99_s"],
        "anchor_latency_p50_s": ingest["anchoring"]["latency_p50_s"],
        "anchored_records_per_s": ingest["anchoring"]["anchored_records_per_s"],
        "anchor_latency_idle_p99_s": (ingest.get("anchoring_idle") or {}).get("latency_p99_s"),
        "post_certificate_rps": g("post_certificate", "rps"),
        "post_certificate_p99_ms": g("post_certificate", "p99_ms"),
        "resolve_rps": g("resolve", "rps"),
        "verify_rps": g("verify", "rps"),
        "verify_lineage50_p50_ms": g("verify_lineage50", "p50_ms"),
        "verify_lineage50_records": lineage_records,
        "bank_check_rps": g("bank_check", "rps"),
        "bank_check_p50_ms": g("bank_check", "p50_ms"),
        "trivial_rps": trivial,
        # the completed requests and seconds each scenario's figures come from (see measure_scenario)
        "requests": {run["scenario"]: scenario_requests(run) for run in runs},
        "scenario_seconds": {run["scenario"]: run.get("duration_s") for run in runs},
    }
    out["ratios_to_trivial"] = {
        scn: round(e["rps"] / trivial, 3) for scn, e in by.items() if trivial and scn != "trivial" and e["rps"]
    }
    # every endpoint of every scenario (a scenario may call several), "<scenario> <method> <name>": ratio
    out["endpoint_ratios_to_trivial"] = {
        f"{e['scenario']} {e['method']} {e['name']}": round(e["rps"] / trivial, 3)
        for run in runs for e in run["endpoints"] if trivial and e["rps"]
    }
    for run in runs:
        for e in run["endpoints"]:
            e["ratio_to_trivial"] = round(e["rps"] / trivial, 3) if trivial and e["rps"] else None
    return out


def fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def markdown(report: dict[str, Any]) -> str:
    """report.md: headline table with goals, per-endpoint table, anchoring, micro-benchmarks, machine."""
    h = report["headline"]
    cfg = report["config"]
    lines = [
        "# TraceLedger benchmark report", "",
        f"Generated {report['generated_at']} by `{report['command']}` in {report['duration_s']:.0f} s.", "",
        f"Set-up: {cfg['validators']} QBFT validator processes (block period {cfg['block_period_s']} s), API with "
        f"{cfg['api_workers']} uvicorn workers on **{cfg['database']}**, anchoring worker "
        f"{'in its own process' if cfg.get('anchoring') == 'process' else 'inside the API workers'} (one elected "
        f"through the database), a batch every {cfg.get('anchor_interval_s')} s of up to {cfg['anchor_max_batch']} "
        f"records; "
        f"locust {cfg['locust_users']} users "
        f"per scenario for {cfg['locust_duration_s']} s without think time, on the same machine as everything else; "
        "the per-key write rate limit is off for the run and req/s counts answered requests only (failures "
        "apart).",
        "", "## Headline (`bench/report.json`)", "",
        "| key | value | goal | met | ratio to trivial | requests in s |", "|---|---:|---:|:---:|---:|---:|",
    ]
    ratio_of = {"post_certificate_rps": "post_certificate", "resolve_rps": "resolve", "verify_rps": "verify",
                "bank_check_rps": "bank_check"}
    scenario_of = {**ratio_of, "post_certificate_p99_ms": "post_certificate", "trivial_rps": "trivial",
                   "verify_lineage50_p50_ms": "verify_lineage50", "bank_check_p50_ms": "bank_check"}
    requests, seconds = h.get("requests", {}), h.get("scenario_seconds", {})
    for key in ("ingest_events_per_s", "anchor_latency_p99_s", "post_certificate_rps", "post_certificate_p99_ms",
                "resolve_rps", "verify_rps", "verify_lineage50_p50_ms", "bank_check_rps", "bank_check_p50_ms",
                "trivial_rps"):
        goal = GOALS.get(key)
        val = h.get(key)
        met = "" if goal is None or val is None else ("yes" if (val >= goal[1] if goal[0] == ">=" else val <= goal[1])
                                                      else "no")
        ratio = h["ratios_to_trivial"].get(ratio_of.get(key, ""), None)
        scn = scenario_of.get(key, "")
        basis = f"{requests[scn]:,} in {seconds.get(scn) or '?'} s" if scn in requests else ""
        lines.append(f"| `{key}` | {fmt(val, 2 if 'latency' in key else 1)} | "
                     f"{goal[0] + ' ' + fmt(goal[1]) if goal else '(ceiling)'} | {met} | {fmt(ratio, 3)} | {basis} |")
    lines += ["", "## Endpoints (locust, headless)", "",
              "| scenario | endpoint | users | requests | failures | req/s | p50 ms | p95 ms | p99 ms "
              "| ratio to trivial |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    trivial = h.get("trivial_rps")
    for run in report["locust"]:
        for e in run["endpoints"]:
            ratio = e["rps"] / trivial if trivial and e["rps"] else None
            lines.append(f"| {run['scenario']} | `{e['name']}` | {e['users']} | {e['requests']:,} | "
                         f"{e['failures']:,} | {fmt(e['rps'])} | {fmt(e['p50_ms'], 0)} | {fmt(e['p95_ms'], 0)} | "
                         f"{fmt(e['p99_ms'], 0)} | {fmt(ratio, 3)} |")
        if not run["endpoints"]:
            lines.append(f"| {run['scenario']} | (no request completed in {run.get('duration_s', '?')} s) "
                         "| | | | | | | | |")
    fails = [(r["scenario"], f) for r in report["locust"] for f in r["failures"]]
    if fails:
        lines += ["", "Failures (reason as reported by locust):", ""]
        lines += [f"* {scn} — `{f['name']}` × {f['occurrences']}: {f['error']}" for scn, f in fails[:20]]
    ing = report["ingest"]
    a = ing["anchoring"]
    lines += ["", "## Bulk EPCIS ingest and anchoring", "",
              f"{ing['documents']} documents × {ing['events_per_document']} events, {ing['concurrency']} clients: "
              f"{ing['events_acknowledged']:,} events acknowledged (committed) in {ing['wall_s']} s = "
              f"**{fmt(ing['events_per_s'])} events/s**; request p50 {fmt(ing['request_p50_s'], 2)} s.", "",
              f"Anchoring: {a['records_anchored']:,} records in {a['batches']} batches, "
              f"{fmt(a['anchored_records_per_s'])} records/s; latency (ingest commit → batch final on chain) "
              f"p50 {fmt(a['latency_p50_s'], 2)} s, p95 {fmt(a['latency_p95_s'], 2)} s, "
              f"p99 {fmt(a['latency_p99_s'], 2)} s, max {fmt(a['latency_max_s'], 2)} s; "
              f"pending at the end: {a['records_pending_at_end']}.", ""]
    idle = ing.get("anchoring_idle")
    if idle:
        lines += [f"Without competing load ({idle['records']} single certificates 0.1 s apart): anchoring latency "
                  f"p50 {fmt(idle['latency_p50_s'], 2)} s, p99 {fmt(idle['latency_p99_s'], 2)} s, "
                  f"max {fmt(idle['latency_max_s'], 2)} s (`anchor_latency_idle_p99_s`).", ""]
    if ing["failures"]:
        lines += ["Ingest failures: " + "; ".join(ing["failures"]), ""]
    lines += ["## Micro-benchmarks (one core, in the benchmark process)", "", "| operation | µs | per second |",
              "|---|---:|---:|"]
    for name, m in report["micro"].items():
        lines.append(f"| {name} | {fmt(m['us_per_op'], 2)} | {fmt(m['ops_per_s'], 0)} |")
    lines += ["", "## What limits each figure", ""]
    lines += [f"* {x}" for x in report["limits"]]
    lines += ["", "## Machine", "", "| fact | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report["machine"].items()]
    lines += ["", "## How to read this", "",
              "* *req/s* is what the API served while locust ran on the same cores; *ratio to trivial* divides it by "
              "`GET /livez` (no database, no chain) in the same run — the share of this machine's HTTP ceiling an "
              "endpoint reaches. Anchoring latency is measured in the database from each record's commit to its "
              "batch's receipt.",
              "* The machine is shared and noisy: compare ratios across runs rather than absolute numbers.",
              "* Raw locust CSVs and logs are in `bench/raw/`; rerun with `make bench` or `traceledger bench --help`.",
              ""]
    return "\n".join(lines)


def limits(headline: dict[str, Any], micro: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """Plain statements of what bounds each headline figure, from the measured costs."""
    def us(key: str) -> float | None:
        for name, m in micro.items():
            if name.startswith(key):
                return m["us_per_op"]
        return None

    hash_us, val_us, sign_us = us("GS1 event hash"), us("EPCIS schema"), us("EIP-712 record signature")
    out = [
        f"ingest_events_per_s: CPU per event — GS1 JSON Schema validation ≈ {fmt(val_us, 0)} µs (fastjsonschema, "
        f"per event type), native GS1 event hash ID ≈ {fmt(hash_us, 0)} µs, EIP-712 signature ≈ {fmt(sign_us, 0)} "
        "µs, then EPC canonicalisation, RFC 8785 record bytes and the row writes (COPY / executemany); "
        f"{cfg['api_workers']} workers on {headline.get('cores', 2)} cores shared with the client, the validators "
        "and the anchoring process. 10,000 events/s needs about 100 µs of a core per event all included, or more "
        "cores.",
        "anchor_latency_p99_s: record commit → next batch (the interval shrinks with the backlog) → its anchor "
        "transaction (pipelined: several in flight, one gas estimate) → the QBFT block that includes it → the "
        "receipt; see the idle figure. During saturating ingest the validators get little CPU, blocks come late and "
        "every step of the anchoring cycle stretches. The chain never bounds records/s (one transaction per batch).",
        "post_certificate_rps / p99: one durable commit per request on PostgreSQL (group commit, "
        "api/group_commit.py, is on for SQLite only: measured slower on PostgreSQL); per request remain EN 10168 "
        "validation (compiled schema), canonical JSON, SHA-256, the "
        "EIP-712 signature (~0.5 ms), the API-key lookup (ORM), the body parsed twice (strict reader, then FastAPI) "
        "and the thread-pool hop; locust shares the 2 cores.",
        "resolve_rps / verify_rps / qr_png: an anchored record's answer (and a verified verdict) is served from the "
        "in-process read cache (api/read_cache.py): no database round trip, no thread-pool hop; what remains is the "
        "ASGI stack that GET /livez also pays, route matching over every router and the ETag comparison (pyinstrument: "
        "the endpoint's own code is a few per cent of a hit). A miss is one Core query (+ the checks for a verdict).",
        "verify_lineage50_p50_ms: the lineage edges come in one recursive query, the node details in three Core "
        "queries (objects with their naming events, events joined with their records, certificates; no ORM), the 50 "
        "records with owners and batches in one Core query, then 50 record checks from cached seals, anchors and "
        "batch trees; what remains is seven database round trips (with node resolution and the session's "
        "rollback) and ~10 ms of CPU per request.",
        "trivial_rps: uvicorn (uvloop + httptools) + Starlette with the request-counting middleware, and locust "
        "generating the load on the same cores.",
    ]
    return out


# ------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="traceledger bench", description=__doc__.splitlines()[0])
    p.add_argument("--validators", type=int, default=4)
    p.add_argument("--workers", type=int, default=2, help="uvicorn workers of the API")
    p.add_argument("--database", choices=("auto", "postgresql", "sqlite"), default="auto")
    p.add_argument("--anchoring", choices=("process", "in-api"), default="process",
                   help="anchoring worker in its own process (default) or inside the API workers (lease-elected)")
    p.add_argument("--anchor-interval", type=float, default=0.5,
                   help="TRACELEDGER_ANCHOR_INTERVAL_S of the anchoring worker (seconds between batches)")
    p.add_argument("--users", type=int, default=32, help="locust users per scenario")
    p.add_argument("--duration", type=int, default=15, help="seconds per locust scenario")
    p.add_argument("--min-requests", type=int, default=MIN_REQUESTS,
                   help=f"a scenario that completed fewer requests runs again {RERUN_FACTOR}x longer "
                        f"(at most {RERUNS} times)")
    p.add_argument("--ingest-docs", type=int, default=8)
    p.add_argument("--ingest-events", type=int, default=2000)
    p.add_argument("--ingest-concurrency", type=int, default=4)
    p.add_argument("--certificates", type=int, default=500, help="certificates prepared for the auditor suite")
    p.add_argument("--receivables", type=int, default=2, help="receivable tokens prepared for the bank suite")
    p.add_argument("--scenarios", default=",".join(s[0] for s in SCENARIOS),
                   help="comma-separated subset of " + ",".join(s[0] for s in SCENARIOS))
    p.add_argument("--micro-seconds", type=float, default=1.0, help="seconds per micro-benchmark")
    p.add_argument("--crypto-profile", choices=("standard", "sm"), default="standard",
                   help="record-layer cryptography of the network (sm: SM3 digests and trees, SM2 signatures)")
    p.add_argument("--out", type=Path, default=ROOT / "bench")
    p.add_argument("--keep-data", action="store_true", help="keep the temporary network/API data directory")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module doc); exit code 0 when the report was written."""
    from api.cli.load_setup import prepare
    from api.devnet import Stack

    args = parse_args(argv)
    started = time.monotonic()
    out: Path = args.out
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    database, db_url, schema = pick_database(args.database)
    data_dir = Path(tempfile.mkdtemp(prefix="tl-bench-"))
    anchor_max_batch = 50_000
    stack = Stack(data_dir=data_dir, validators=args.validators, api_port=None, rpc_base_port=None,
                  p2p_base_port=None, database_url=db_url, api_workers=args.workers,
                  anchoring_process=args.anchoring == "process", crypto_profile=args.crypto_profile,
                  extra_env={"TRACELEDGER_ANCHOR_MAX_BATCH": str(anchor_max_batch),
                             # the per-key write limit (300/s by default) would cap the POST suite, not the API
                             "TRACELEDGER_WRITE_RATE_LIMIT": "",
                             "TRACELEDGER_ANCHOR_INTERVAL_S": str(args.anchor_interval)})
    facts = machine_facts(database, db_url)
    try:
        log(f"starting {args.validators} validators + API ({args.workers} workers, {database}) in {data_dir}")
        stack.start()
        assert stack.admin_token is not None
        log("preparing data for the suites")
        cfg = prepare(stack.api_url(), stack.admin_token, certificates=args.certificates,
                      receivables=args.receivables)
        config_path = raw / "load-config.json"
        config_path.write_text(json.dumps(cfg, indent=1))
        if cfg.get("bank_skip_reason"):
            log(f"bank suite will skip: {cfg['bank_skip_reason']}")
        wanted = {s.strip() for s in args.scenarios.split(",") if s.strip()}
        runs = []
        for name, locustfile, tags, users in SCENARIOS:
            if name in wanted:
                runs.append(measure_scenario(name, locustfile, tags, users or args.users, args.duration,
                                             stack.api_url(), config_path, raw, min_requests=args.min_requests))
        ingest = measure_ingest(stack, cfg["factory"]["api_key"], cfg["factory"]["prefix"], docs=args.ingest_docs,
                                events=args.ingest_events, concurrency=args.ingest_concurrency,
                                anchor_timeout_s=180.0)
        log("anchoring latency without competing load")
        ingest["anchoring_idle"] = measure_idle_anchoring(stack, cfg["factory"]["api_key"])
        leaders = {}
        for _ in range(40):  # a fresh connection each time: any worker may answer
            a = httpx.get(stack.api_url() + "/healthz", timeout=10).json().get("anchoring", {})
            leaders[a.get("pid")] = a.get("leader")
    finally:
        stack.stop()
        if schema:
            drop_schema(schema)
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    log("micro-benchmarks")
    micro = micro_benchmarks(args.micro_seconds)
    headline = summarize(ingest, runs, cfg.get("lineage_records"))
    config_out = {"validators": args.validators, "block_period_s": stack.block_period_s, "api_workers": args.workers,
                  "database": database, "anchor_max_batch": anchor_max_batch, "locust_users": args.users,
                  "anchoring": args.anchoring, "anchor_interval_s": args.anchor_interval,
                  "locust_duration_s": args.duration, "anchoring_leaders_seen": leaders,
                  "bank_skip_reason": cfg.get("bank_skip_reason"), "crypto_profile": args.crypto_profile}
    report = {
        **{k: headline[k] for k in headline if k != "ratios_to_trivial"},
        "headline": headline,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "traceledger bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "duration_s": time.monotonic() - started,
        "config": config_out, "machine": facts, "ingest": ingest, "locust": runs, "micro": micro,
        "endpoints": [e for r in runs for e in r["endpoints"]],
    }
    report["limits"] = limits(headline, micro, config_out)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "report.md").write_text(markdown(report))
    log(f"wrote {out / 'report.md'} and {out / 'report.json'} in {report['duration_s']:.0f} s")
    print(markdown(report).split("## Endpoints")[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

