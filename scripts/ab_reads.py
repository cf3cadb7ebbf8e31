"""A/B of the read paths issue 14 measures (lineage-50 verify, the bank check, ``GET /v1/receivables/{id}``):
two API servers -- the code in checkout A and in checkout B -- against one network and one database, alternated.

    .venv/bin/python scripts/ab_reads.py setup --dir /tmp/ab/run [--database postgresql+psycopg://…]
    .venv/bin/python scripts/ab_reads.py serve --dir /tmp/ab/run --name a --code /tmp/ab/old --port 18101
    .venv/bin/python scripts/ab_reads.py serve --dir /tmp/ab/run --name b --code . --port 18102
    .venv/bin/python scripts/ab_reads.py ab --dir /tmp/ab/run --urls http://127.0.0.1:18101,http://127.0.0.1:18102 \\
        --rounds 3 --seconds 8

``setup`` starts a network (4 validators) and a leader API (anchoring + chain indexer), prepares the bench's data
(:func:`api.cli.load_setup.prepare`) and a 3-hop receivable offered to a bank, writes ``<dir>/config.json``
and keeps running until killed. ``serve`` starts one more API (2 uvicorn workers, anchoring off) from ``--code``
with the same environment. ``ab`` runs, per round and per server in alternating order, the lineage verify (2
clients), the bank check of the bench's tokens (4 clients), of the 3-hop token (4 clients) and
``GET /v1/receivables/{id}`` of the 3-hop token (4 clients), and prints per server and figure the median over
rounds with the spread (min–max).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx


def loop(urls: list[str], headers: dict[str, str], seconds: float, clients: int,
         params: dict[str, str] | None = None) -> dict[str, float]:
    """``clients`` threads GET ``urls`` round robin for ``seconds``: requests/s, p50/p95 (ms), non-200 count."""
    times: list[float] = []
    failures = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(offset: int) -> None:
        i = offset
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                r = http.get(urls[i % len(urls)], headers=headers, params=params)
                dt = time.perf_counter() - t0
                i += 1
                with lock:
                    times.append(dt)
                    failures[0] += r.status_code != 200

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    q = statistics.quantiles(times, n=20) if len(times) > 1 else [0.0] * 19
    return {"rps": len(times) / elapsed, "p50_ms": statistics.median(times) * 1000, "p95_ms": q[18] * 1000,
            "failures": failures[0]}


def setup(args: argparse.Namespace) -> int:
    from api.cli.load_setup import prepare
    from api.devnet import Stack
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from measure_bank_check import _prepare

    run = Path(args.dir)
    run.mkdir(parents=True, exist_ok=True)
    stack = Stack(data_dir=run / "data", validators=args.validators, api_port=None, rpc_base_port=None,
                  p2p_base_port=None, database_url=args.database, api_workers=1)
    stack.start()
    try:
        cfg = prepare(stack.api_url(), stack.admin_token or "", certificates=20, receivables=2)
        with httpx.Client(base_url=stack.api_url(), timeout=120) as api:
            token, key = _prepare(api, stack)
            deadline = time.monotonic() + 90
            while api.get(f"/v1/receivables/{token}/check", headers={"Authorization": f"Bearer {key}"}
                          ).json()["chain_facts"]["source"] != "index+chain":
                if time.monotonic() > deadline:
                    raise SystemExit("the indexer did not catch up within 90 s")
                time.sleep(0.5)
        env = stack.api_env()
        env["TRACELEDGER_ANCHORING_ENABLED"] = "false"
        (run / "config.json").write_text(json.dumps({"load": cfg, "hop3": {"token": token, "api_key": key},
                                                     "env": env, "leader": stack.api_url()}, indent=1))
        print("ready", flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
    finally:
        stack.stop()
    return 0


def serve(args: argparse.Namespace) -> int:
    run = Path(args.dir)
    env = json.loads((run / "config.json").read_text())["env"]
    env["PYTHONPATH"] = str(Path(args.code).resolve())
    log = open(run / f"api-{args.name}.log", "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port",
                             str(args.port), "--workers", str(args.workers), "--log-level", "warning"],
                            cwd=args.code, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (run / f"api-{args.name}.pid").write_text(str(proc.pid))
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{args.port}/livez", timeout=2).status_code == 200:
                print(proc.pid)
                return 0
        except httpx.HTTPError:
            time.sleep(0.2)
    return 1


def ab(args: argparse.Namespace) -> int:
    cfg = json.loads((Path(args.dir) / "config.json").read_text())
    load, hop3 = cfg["load"], cfg["hop3"]
    bank = load["bank"]
    servers = args.urls.split(",")
    figures: dict[str, dict[str, list[dict[str, float]]]] = {s: {} for s in servers}
    scenarios = {
        "lineage50": lambda u: loop([f"{u}/v1/verify/{quote(p, safe='')}" for p in load["lineage_parts"]], {},
                                    args.seconds, 2, {"lineage": "upstream"}),
        "check_bench": lambda u: loop([f"{u}/v1/receivables/{t}/check" for t in bank["receivables"]],
                                      {"Authorization": f"Bearer {bank['api_key']}"}, args.seconds, 4),
        "check_3hop": lambda u: loop([f"{u}/v1/receivables/{hop3['token']}/check"],
                                     {"Authorization": f"Bearer {hop3['api_key']}"}, args.seconds, 4),
        "view_3hop": lambda u: loop([f"{u}/v1/receivables/{hop3['token']}"],
                                    {"Authorization": f"Bearer {hop3['api_key']}"}, args.seconds, 4),
        "check_1client": lambda u: loop([f"{u}/v1/receivables/{t}/check" for t in bank["receivables"]],
                                        {"Authorization": f"Bearer {bank['api_key']}"}, args.seconds, 1),
    }
    wanted = args.scenarios.split(",") if args.scenarios else list(scenarios)
    for r in range(args.rounds):
        order = servers if r % 2 == 0 else list(reversed(servers))
        for name in wanted:
            for s in order:
                res = scenarios[name](s)
                figures[s].setdefault(name, []).append(res)
                print(f"round {r} {name:13s} {s}: {res['rps']:7.1f}/s p50 {res['p50_ms']:6.1f} ms "
                      f"p95 {res['p95_ms']:6.1f} ms fail {res['failures']}", flush=True)
    print("\nmedians over rounds (min–max):")
    for name in wanted:
        for s in servers:
            rows = figures[s][name]

            def span(k: str, rows: list[dict[str, float]] = rows) -> str:
                v = [x[k] for x in rows]
                return f"{statistics.median(v):.1f} ({min(v):.1f}–{max(v):.1f})"
            print(f"{name:13s} {s}: rps {span('rps')}  p50 {span('p50_ms')} ms  p95 {span('p95_ms')} ms")
    return 0


def main() -> int:
    """Entry point; see the module docstring."""
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--dir", required=True)
    s.add_argument("--validators", type=int, default=4)
    s.add_argument("--database", default=None)
    v = sub.add_parser("serve")
    v.add_argument("--dir", required=True)
    v.add_argument("--name", required=True)
    v.add_argument("--code", required=True)
    v.add_argument("--port", type=int, required=True)
    v.add_argument("--workers", type=int, default=2)
    a = sub.add_parser("ab")
    a.add_argument("--dir", required=True)
    a.add_argument("--urls", required=True)
    a.add_argument("--rounds", type=int, default=3)
    a.add_argument("--seconds", type=float, default=8)
    a.add_argument("--scenarios", default="")
    args = p.parse_args()
    return {"setup": setup, "serve": serve, "ab": ab}[args.cmd](args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
