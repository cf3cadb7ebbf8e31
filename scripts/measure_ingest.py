"""Run only the benchmark's bulk EPCIS ingest phase and say where the box's CPU went.

Starts the same stack as ``traceledger bench`` (4 validators, API with 2 uvicorn workers, the anchoring process,
PostgreSQL or SQLite; :class:`api.devnet.Stack`), registers one manufacturer and runs
:func:`api.cli.bench.measure_ingest` ``--rounds`` times (fresh events each round). For each round it prints
events/s, the anchoring latency percentiles and the CPU seconds every process on the box used between the
first request and the last answer (``/proc/<pid>/stat`` utime + stime, grouped: uvicorn workers, anchoring
process, validators, PostgreSQL backends, this client, everything else), plus the anchoring latency made of
commit → batch created → tx sent (batch row) → final (``batches.anchored_at``).

``--py-spy DIR``: also ``py-spy record`` (raw, idle included) each uvicorn worker and the anchoring process during
the first round's ingest, writing flame-graph text files to DIR.

Usage: ``.venv/bin/python scripts/measure_ingest.py --database postgresql --rounds 3``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from api.cli import bench
from api.cli.load_setup import enterprise
from api.devnet import Stack

TICK = os.sysconf("SC_CLK_TCK")


def _cpu_by_pid() -> dict[int, tuple[float, str, int]]:
    """``pid -> (CPU seconds so far, command line, parent pid)`` of every readable process."""
    out: dict[int, tuple[float, str, int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            cmd = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(name)] = ((int(fields[11]) + int(fields[12])) / TICK, cmd or stat.split()[1], int(fields[1]))
    return out


def _group(pid: int, cmd: str, stack: Stack, workers: set[int]) -> str:
    if pid == os.getpid():
        return "client (this script: httpx posts)"
    if pid in workers:
        return "uvicorn workers"
    if stack.api_proc is not None and pid == stack.api_proc.pid:
        return "uvicorn master"
    if stack.anchor_proc is not None and pid == stack.anchor_proc.pid:
        return "anchoring process"
    if any(p.pid == pid for p in stack.validator_procs.values()):
        return "validators"
    if cmd.startswith("postgres") or "postgres:" in cmd:
        return "postgresql (all backends on the box)"
    return "other (rest of the box)"


def _box_idle() -> tuple[float, float]:
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(parts) / TICK, (parts[3] + parts[4]) / TICK


def _anchor_breakdown(stack: Stack, first_id: int) -> dict[str, Any]:
    from sqlalchemy import text

    engine = bench.db_engine(stack)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT r.created_at, b.created_at, b.anchored_at FROM records r JOIN batches b ON b.id = r.batch_id "
            "WHERE r.id > :f AND r.status = 'anchored'"), {"f": first_id}).all()
        batches = conn.execute(text(
            "SELECT b.id, b.size, b.created_at, b.anchored_at, (SELECT MAX(r.created_at) FROM records r "
            "WHERE r.batch_id = b.id) FROM batches b WHERE b.id IN (SELECT DISTINCT batch_id "
            "FROM records WHERE id > :f)"), {"f": first_id}).all()
    engine.dispose()

    def aware(v: Any) -> Any:
        from datetime import UTC, datetime
        if isinstance(v, str):
            v = datetime.fromisoformat(v)
        return v if v.tzinfo else v.replace(tzinfo=UTC)

    wait = [(aware(b) - aware(a)).total_seconds() for a, b, _ in rows]
    chain = [(aware(c) - aware(b)).total_seconds() for _, b, c in rows]
    return {"commit_to_batch_p50_s": bench.pct(wait, 50), "commit_to_batch_p99_s": bench.pct(wait, 99),
            "batch_to_final_p50_s": bench.pct(chain, 50), "batch_to_final_p99_s": bench.pct(chain, 99),
            # per batch: id, records, newest record's write → batch created (its commit + pickup), batch → final
            "batches": [(int(i), int(s), round((aware(c) - aware(m)).total_seconds(), 2),
                         round((aware(a) - aware(c)).total_seconds(), 2)) for i, s, c, a, m in sorted(batches)
                        if a is not None]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    p.add_argument("--docs", type=int, default=8)
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--py-spy", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="write every round's figures here")
    args = p.parse_args()

    database, db_url, schema = bench.pick_database(args.database)
    data_dir = Path(tempfile.mkdtemp(prefix="tl-ingest-"))
    stack = Stack(data_dir=data_dir, validators=4, api_port=None, rpc_base_port=None, p2p_base_port=None,
                  database_url=db_url, api_workers=args.workers, anchoring_process=True,
                  extra_env={"TRACELEDGER_ANCHOR_MAX_BATCH": "50000", "TRACELEDGER_ANCHOR_INTERVAL_S": "0.5"})
    results = []
    try:
        try:
            stack.start()
        except RuntimeError:
            print((data_dir / "api.log").read_text(errors="replace")[-3000:], flush=True)
            raise
        assert stack.admin_token is not None and stack.api_proc is not None
        with httpx.Client(base_url=stack.api_url(), timeout=60) as c:
            mill = enterprise(c, stack.admin_token, "Ingest Mill", ["manufacturer"])
        time.sleep(3)
        for rnd in range(args.rounds):
            marks: dict[str, Any] = {}
            spies: list[subprocess.Popen[bytes]] = []
            real_log = bench.log

            def marking_log(msg: str, marks: dict[str, Any] = marks, spies: list[Any] = spies, rnd: int = rnd,
                            real_log: Any = real_log) -> None:
                if msg.startswith("ingest:") and "clients" in msg:
                    procs = _cpu_by_pid()
                    marks["before"], marks["box0"] = procs, _box_idle()
                    marks["workers"] = {pid for pid, (_, _, ppid) in procs.items() if ppid == stack.api_proc.pid}
                    if args.py_spy is not None and rnd == 0:
                        args.py_spy.mkdir(parents=True, exist_ok=True)
                        targets = [*marks["workers"], *([stack.anchor_proc.pid] if stack.anchor_proc else [])]
                        for pid in targets:
                            spies.append(subprocess.Popen(
                                [str(Path(".venv/bin/py-spy")), "record", "-p", str(pid), "-r", "50", "--idle",
                                 "-f", "raw", "-o", str(args.py_spy / f"pid{pid}.txt"), "-d", "120"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                    marks["t0"] = time.monotonic()
                elif msg.startswith("ingest:") and "acknowledged" in msg:
                    marks["wall"] = time.monotonic() - marks["t0"]
                    marks["after"], marks["box1"] = _cpu_by_pid(), _box_idle()
                    for s in spies:
                        s.send_signal(2)  # SIGINT: py-spy writes what it has
                real_log(msg)

            bench.log = marking_log
            engine = bench.db_engine(stack)
            with engine.connect() as conn:
                from sqlalchemy import text
                first_id = int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM records")).scalar() or 0)
            engine.dispose()
            try:
                ing = bench.measure_ingest(stack, mill["api_key"], mill["prefix"], docs=args.docs, events=args.events,
                                           concurrency=args.concurrency, anchor_timeout_s=180)
            finally:
                bench.log = real_log
                for s in spies:
                    s.wait(30)
            groups: dict[str, float] = {}
            for pid, (cpu, cmd, _) in marks["after"].items():
                before = marks["before"].get(pid, (0.0, "", 0))[0]
                g = _group(pid, cmd, stack, marks["workers"])
                groups[g] = groups.get(g, 0.0) + max(cpu - before, 0.0)
            total0, idle0 = marks["box0"]
            total1, idle1 = marks["box1"]
            busy = (total1 - total0) - (idle1 - idle0)
            events = ing["events_acknowledged"]
            row = {"round": rnd, "database": database, "events": events, "wall_s": round(marks["wall"], 2),
                   "events_per_s": round(ing["events_per_s"], 1), "failures": ing["failures"],
                   "anchor_p50_s": ing["anchoring"]["latency_p50_s"], "anchor_p99_s": ing["anchoring"]["latency_p99_s"],
                   "box_cpu_busy_s": round(busy, 2), "box_cpu_capacity_s": round(total1 - total0, 2),
                   "cpu_s": {k: round(v, 2) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
                   "cpu_us_per_event": {k: round(v / events * 1e6) for k, v in groups.items()} if events else {},
                   "anchoring": _anchor_breakdown(stack, first_id)}
            print(json.dumps(row, indent=1), flush=True)
            results.append(row)
    finally:
        stack.stop()
        if schema:
            bench.drop_schema(schema)
        shutil.rmtree(data_dir, ignore_errors=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
