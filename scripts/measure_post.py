"""Single certificate POST against the trivial ``GET /livez``, A/B between source trees, API only (no validators).

    .venv/bin/python scripts/measure_post.py --tree old=/tmp/old-checkout --tree new=. [--rounds 3] [--seconds 15]
        [--users 32] [--workers 2] [--database postgresql|sqlite] [--env new:TRACELEDGER_GROUP_COMMIT=true]

Each tree gets its own PostgreSQL database (``createdb``, dropped at the end) or SQLite file and its own uvicorn
(``--workers`` processes, ``TRACELEDGER_CHAIN_ID`` fixed, anchoring off: the POST path does not need the chain).
Rounds alternate the trees (A B, then B A, …); each measurement is one headless locust run of ``load/auditor.py
--tags trivial`` then ``load/factory.py --tags certificate`` against that tree's server, the other server idle.
Prints one JSON line per measurement and a summary: medians and ranges of req/s, ratio to trivial, p50/p99.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"
TOKEN = "measure-post-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One uvicorn over one source tree and its own database."""

    def __init__(self, name: str, tree: Path, database: str, workers: int, env: dict[str, str], tmp: Path) -> None:
        self.name, self.tree, self.workers = name, tree.resolve(), workers
        self.port = free_port()
        self.dir = tmp / name
        self.dir.mkdir(parents=True)
        self.db = f"tl_post_{name}_{secrets.token_hex(3)}" if database == "postgresql" else None
        if self.db:
            subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", self.db], check=True)
            url = PG + self.db
        else:
            url = f"sqlite:///{self.dir / 'api.db'}"
        self.env = dict(os.environ, DATABASE_URL=url, TRACELEDGER_ADMIN_TOKEN=TOKEN, TRACELEDGER_CHAIN_ID="1337",
                        TRACELEDGER_ANCHORING_ENABLED="false", TRACELEDGER_DATA_DIR=str(self.dir),
                        TRACELEDGER_KEYSTORE_SCRYPT_N="16", PYTHONPATH=str(self.tree), **env)
        self.env.pop("TRACELEDGER_RPC_URL", None)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.dir / "api.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                                      "--port", str(self.port), "--workers", str(self.workers), "--log-level",
                                      "warning"], cwd=self.tree, env=self.env, stdout=log, stderr=log,
                                     start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/livez", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise RuntimeError(f"{self.name}: API did not start, see {self.dir / 'api.log'}")
        r = httpx.post(self.url + "/v1/enterprises", headers={"Authorization": f"Bearer {TOKEN}"},
                       json={"name": "Nordstahl Walzwerk GmbH", "roles": ["manufacturer"]}, timeout=60)
        r.raise_for_status()
        body = r.json()
        (self.dir / "load-config.json").write_text(json.dumps({
            "api": self.url, "factory": {"api_key": body["api_key"], "prefix": body["prefix"]},
            "identifiers": ["88.1.1/X"], "lineage_parts": [], "bank": None}))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.db:
            subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", self.db], check=False)


def api_cpu(server: Server) -> float:
    """CPU seconds (user + system) used so far by the server's uvicorn processes."""
    assert server.proc is not None
    root = psutil.Process(server.proc.pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def pg_cpu(server: Server) -> tuple[float, set[int]]:
    """CPU seconds of the PostgreSQL backends connected to the server's database now (0 on SQLite)."""
    if not server.db:
        return 0.0, set()
    sql = f"select pid from pg_stat_activity where datname = '{server.db}' and pid <> pg_backend_pid()"
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", server.db, "-Atc", sql],
                         capture_output=True, text=True, check=False).stdout.split()
    total, pids = 0.0, set()
    for pid in map(int, out):
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
            pids.add(pid)
        except psutil.NoSuchProcess:
            pass
    return total, pids


def backend_cpu(pids: set[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def locust(server: Server, locustfile: str, tags: str, users: int, seconds: int) -> dict[str, Any]:
    prefix = server.dir / f"{tags}-{time.monotonic_ns()}"
    env = dict(os.environ, TRACELEDGER_LOAD_CONFIG=str(server.dir / "load-config.json"), TRACELEDGER_LOAD_RATE="max")
    api0 = api_cpu(server)
    pg0, pids0 = pg_cpu(server)
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "load" / locustfile), "--headless", "-u",
                    str(users), "-r", str(users), "-t", f"{seconds}s", "--host", server.url, "--tags", tags, "--csv",
                    str(prefix), "--only-summary", "--stop-timeout", "10", "--exit-code-on-error", "0",
                    "--loglevel", "WARNING"], cwd=ROOT, env=env, capture_output=True, timeout=seconds + 120)
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    api1 = api_cpu(server)
    _, pids1 = pg_cpu(server)
    pg1 = backend_cpu(pids0 | pids1)
    with Path(f"{prefix}_stats.csv").open() as fh:
        row = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    n = max(int(row["Request Count"]), 1)
    client = (kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime)
    return {"rps": float(row["Requests/s"]), "p50": float(row["50%"]), "p99": float(row["99%"]),
            "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
            "api_us": round((api1 - api0) / n * 1e6), "pg_us": round((pg1 - pg0) / n * 1e6),
            "locust_us": round(client / n * 1e6)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tree", action="append", required=True, help="name=path of a source tree (repeat)")
    p.add_argument("--env", action="append", default=[], help="name:KEY=VALUE extra environment of one tree")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--users", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    args = p.parse_args()
    extra: dict[str, dict[str, str]] = {}
    for item in args.env:
        name, kv = item.split(":", 1)
        k, v = kv.split("=", 1)
        extra.setdefault(name, {})[k] = v
    tmp = Path(tempfile.mkdtemp(prefix="tl-post-"))
    servers = [Server(n, Path(t), args.database, args.workers, extra.get(n, {}), tmp)
               for n, t in (s.split("=", 1) for s in args.tree)]
    results: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
    try:
        for s in servers:
            s.start()
        for r in range(args.rounds):
            for s in (servers if r % 2 == 0 else servers[::-1]):
                triv = locust(s, "auditor.py", "trivial", args.users, args.seconds)
                post = locust(s, "factory.py", "certificate", args.users, args.seconds)
                m = {"tree": s.name, "round": r, "trivial_rps": triv["rps"], "post_rps": post["rps"],
                     "ratio": round(post["rps"] / triv["rps"], 4) if triv["rps"] else None,
                     "p50_ms": post["p50"], "p99_ms": post["p99"], "failures": post["failures"],
                     "requests": post["requests"], "api_us": post["api_us"], "pg_us": post["pg_us"],
                     "locust_us": post["locust_us"], "trivial_api_us": triv["api_us"],
                     "trivial_locust_us": triv["locust_us"]}
                results[s.name].append(m)
                print(json.dumps(m), flush=True)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for name, ms in results.items():
        if not ms:
            continue
        summary = {"tree": name}
        for k in ("trivial_rps", "post_rps", "ratio", "p50_ms", "p99_ms", "api_us", "pg_us", "locust_us",
                  "trivial_api_us", "trivial_locust_us"):
            vals = [m[k] for m in ms if m[k] is not None]
            summary[k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
        summary["failures"] = sum(m["failures"] for m in ms)
        print("SUMMARY " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
