"""Benchmark the spine: a throwaway n-validator network + contracts + API, measured end to end.

Usage::

    python scripts/bench_spine.py [--validators 4] [--certificates 300] [--concurrency 8] [--repeats 3]
                                  [--json out.json] [--keep-data]

Measures, on one freshly started stack (free ports, temporary data directory):

1. blocks/s of the idle network over a 10 s window (``eth_blockNumber`` delta / seconds) and the
   configured block period;
2. ``POST /v1/coils/certificates`` throughput and latency p50/p95/p99 with ``--concurrency`` threads
   (one ``httpx.Client`` each), ``--certificates`` unique certificates per repeat, median of ``--repeats``;
3. anchoring latency (201 → status ``anchored``, every pending identifier polled every 0.1 s through
   ``GET /v1/identifiers/...``, concurrently with the posting) and anchored records/s;
4. ``GET /v1/verify/...`` latency for 50 anchored identifiers, first call and repeat (cached) call;
5. the ceiling of a trivial endpoint (``GET /healthz``, same concurrency, 5 s) and the POST/healthz ratio;
6. machine facts.

Prints a Markdown table on stdout (progress bars go to stderr) and optionally writes JSON.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ledger.network import rpc
from provenance.samples import load_samples
from scripts.stack import Stack

BLOCK_WINDOW_S = 10.0
HEALTHZ_WINDOW_S = 5.0
POLL_INTERVAL_S = 0.1
ANCHOR_TIMEOUT_S = 180.0
VERIFY_SAMPLE = 50

console = Console(stderr=True)


# ---------------------------------------------------------------------------- helpers
def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0–100) with linear interpolation between closest ranks; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return ordered[lo]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def path_of(identifier: str) -> str:
    return quote(identifier, safe="/")


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_facts() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "py-evm": version("py-evm"),
        "web3": version("web3"),
        "fastapi": version("fastapi"),
        "uvicorn": version("uvicorn"),
        "httpx": version("httpx"),
    }


def make_certificates(templates: list[dict[str, Any]], start: int, count: int) -> list[dict[str, Any]]:
    """``count`` unique certificates: the samples in turn, coil number (B07) ``BENCH<start + i>``."""
    docs = []
    for i in range(count):
        doc = copy.deepcopy(templates[i % len(templates)])
        doc["Certificate"]["ProductDescription"]["B07"] = f"BENCH{start + i:06d}"
        docs.append(doc)
    return docs


def progress() -> Progress:
    return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


# ---------------------------------------------------------------------------- 1. blocks/s
def measure_blocks(stack: Stack, window_s: float) -> dict[str, Any]:
    assert stack.spec is not None
    url = stack.spec.rpc_urls[0]
    start_block = int(rpc(url, "eth_blockNumber"), 16)
    t0 = time.monotonic()
    with progress() as bar:
        task = bar.add_task("idle network (blocks/s)", total=int(window_s))
        while (elapsed := time.monotonic() - t0) < window_s:
            time.sleep(min(0.5, window_s - elapsed))
            bar.update(task, completed=min(int(time.monotonic() - t0), int(window_s)))
    end_block = int(rpc(url, "eth_blockNumber"), 16)
    elapsed = time.monotonic() - t0
    return {
        "block_period_s": stack.block_period_s,
        "window_s": round(elapsed, 3),
        "start_block": start_block,
        "end_block": end_block,
        "blocks_per_s": (end_block - start_block) / elapsed,
    }


# ---------------------------------------------------------------------------- 2+3. POST + anchoring
class AnchorPoller(threading.Thread):
    """Polls every pending identifier every ``POLL_INTERVAL_S`` until each one is anchored."""

    def __init__(self, base_url: str, on_anchored: Any) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.on_anchored = on_anchored
        self.lock = threading.Lock()
        self.pending: dict[str, tuple[float, float]] = {}  # identifier -> (monotonic, wall) time of its 201
        self.anchored_at: dict[str, float] = {}
        self.latencies: list[float] = []  # 201 -> first poll that saw "anchored"
        self.server_latencies: list[float] = []  # 201 -> the batch's anchored_at (server clock, same host)
        self.sweeps: list[float] = []  # duration of each sweep (the measurement's resolution)
        self.requests = 0
        self.errors = 0
        self.posting_done = threading.Event()
        self.deadline: float | None = None

    def add(self, identifier: str, t_created: float, t_created_wall: float) -> None:
        with self.lock:
            self.pending[identifier] = (t_created, t_created_wall)

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            while True:
                with self.lock:
                    snapshot = list(self.pending.items())
                if not snapshot and self.posting_done.is_set():
                    return
                if self.deadline is not None and time.monotonic() > self.deadline:
                    return
                t_sweep = time.monotonic()
                for identifier, (t_created, t_created_wall) in snapshot:
                    try:
                        r = client.get(f"/v1/identifiers/{path_of(identifier)}")
                    except httpx.HTTPError:
                        self.errors += 1
                        continue
                    self.requests += 1
                    body = r.json() if r.status_code == 200 else {}
                    if body.get("status") == "anchored":
                        now = time.monotonic()
                        server = anchor_time(body)
                        with self.lock:
                            del self.pending[identifier]
                            self.anchored_at[identifier] = now
                            self.latencies.append(now - t_created)
                            if server is not None:
                                self.server_latencies.append(server - t_created_wall)
                        self.on_anchored()
                    elif r.status_code != 200:
                        self.errors += 1
                if snapshot:
                    self.sweeps.append(time.monotonic() - t_sweep)
                time.sleep(POLL_INTERVAL_S)


def anchor_time(resolution: dict[str, Any]) -> float | None:
    """The ANCHOR value's timestamp (the batch's ``anchored_at``) as a POSIX time, if present."""
    for value in resolution.get("values", []):
        if value.get("type") == "ANCHOR" and value.get("timestamp"):
            dt = datetime.fromisoformat(value["timestamp"])
            return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    return None


def run_repeat(stack: Stack, api_key: str, docs: list[dict[str, Any]], concurrency: int, label: str) -> dict[str, Any]:
    base_url = stack.api_url()
    headers = {"Authorization": f"Bearer {api_key}"}
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    next_index = 0

    with progress() as bar:
        post_task = bar.add_task(f"{label} POST certificates", total=len(docs))
        anchor_task = bar.add_task(f"{label} waiting for anchoring", total=len(docs))
        poller = AnchorPoller(base_url, lambda: bar.advance(anchor_task))

        def worker() -> None:
            nonlocal next_index
            with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
                while True:
                    with lock:
                        if next_index >= len(docs):
                            return
                        doc = docs[next_index]
                        next_index += 1
                    t0 = time.monotonic()
                    try:
                        r = client.post("/v1/coils/certificates", json=doc)
                    except httpx.HTTPError as exc:
                        with lock:
                            failures.append(f"{type(exc).__name__}: {exc}")
                        bar.advance(post_task)
                        continue
                    t1, t1_wall = time.monotonic(), time.time()
                    if r.status_code == 201:
                        poller.add(r.json()["identifier"], t1, t1_wall)
                        with lock:
                            latencies.append(t1 - t0)
                    else:
                        with lock:
                            failures.append(f"{r.status_code}: {r.text[:200]}")
                    bar.advance(post_task)

        poller.start()
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
        t_start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t_posted = time.monotonic()
        poller.deadline = t_posted + ANCHOR_TIMEOUT_S
        poller.posting_done.set()
        poller.join()

    if failures:
        console.print(f"[red]{len(failures)} POSTs failed, first: {failures[0]}")
    post_wall = t_posted - t_start
    last_anchor = max(poller.anchored_at.values(), default=math.nan)
    anchored = len(poller.anchored_at)
    return {
        "certificates": len(docs),
        "created": len(latencies),
        "post_failures": len(failures),
        "post_wall_s": post_wall,
        "post_per_s": len(latencies) / post_wall if post_wall > 0 else math.nan,
        "post_p50_ms": percentile(latencies, 50) * 1000,
        "post_p95_ms": percentile(latencies, 95) * 1000,
        "post_p99_ms": percentile(latencies, 99) * 1000,
        "anchored": anchored,
        "not_anchored": len(poller.pending),
        "anchor_p50_s": percentile(poller.latencies, 50),
        "anchor_p95_s": percentile(poller.latencies, 95),
        "anchor_p99_s": percentile(poller.latencies, 99),
        "anchor_max_s": max(poller.latencies, default=math.nan),
        "anchor_server_p50_s": percentile(poller.server_latencies, 50),
        "anchor_server_p95_s": percentile(poller.server_latencies, 95),
        "anchor_server_p99_s": percentile(poller.server_latencies, 99),
        "anchored_per_s": anchored / (last_anchor - t_start) if anchored else math.nan,
        "run_wall_s": last_anchor - t_start if anchored else math.nan,
        "poll_requests": poller.requests,
        "poll_errors": poller.errors,
        "poll_sweep_p50_s": percentile(poller.sweeps, 50),
        "poll_sweep_max_s": max(poller.sweeps, default=math.nan),
        "identifiers": list(poller.anchored_at),
    }


# ---------------------------------------------------------------------------- 4. verify
def measure_verify(stack: Stack, identifiers: list[str]) -> dict[str, Any]:
    first: list[float] = []
    repeat: list[float] = []
    not_verified = 0
    with httpx.Client(base_url=stack.api_url(), timeout=60) as client, progress() as bar:
        task = bar.add_task("GET /v1/verify (first+repeat)", total=2 * len(identifiers))
        for bucket in (first, repeat):
            for identifier in identifiers:
                t0 = time.monotonic()
                r = client.get(f"/v1/verify/{path_of(identifier)}")
                bucket.append(time.monotonic() - t0)
                if r.status_code != 200 or r.json().get("verified") is not True:
                    not_verified += 1
                bar.advance(task)
    return {
        "identifiers": len(identifiers),
        "not_verified": not_verified,
        "first_p50_ms": percentile(first, 50) * 1000,
        "first_p95_ms": percentile(first, 95) * 1000,
        "repeat_p50_ms": percentile(repeat, 50) * 1000,
        "repeat_p95_ms": percentile(repeat, 95) * 1000,
    }


# ---------------------------------------------------------------------------- 5. healthz ceiling
def measure_healthz(stack: Stack, concurrency: int, window_s: float) -> dict[str, Any]:
    counts = [0] * concurrency
    errors = [0] * concurrency
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    stop_at = time.monotonic() + window_s

    def worker(i: int) -> None:
        with httpx.Client(base_url=stack.api_url(), timeout=30) as client:
            while time.monotonic() < stop_at:
                t0 = time.monotonic()
                try:
                    ok = client.get("/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies[i].append(time.monotonic() - t0)
                if ok:
                    counts[i] += 1
                else:
                    errors[i] += 1

    t_start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    with progress() as bar:
        task = bar.add_task("GET /healthz ceiling", total=int(window_s))
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(0.25)
            bar.update(task, completed=min(int(time.monotonic() - t_start), int(window_s)))
        for t in threads:
            t.join()
    wall = time.monotonic() - t_start
    flat = [x for xs in latencies for x in xs]
    return {
        "window_s": wall,
        "requests": sum(counts),
        "errors": sum(errors),
        "per_s": sum(counts) / wall,
        "p50_ms": percentile(flat, 50) * 1000,
        "p95_ms": percentile(flat, 95) * 1000,
    }


# ---------------------------------------------------------------------------- report
def fmt(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def median_of(repeats: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in repeats if not (isinstance(r[key], float) and math.isnan(r[key]))]
    return statistics.median(values) if values else math.nan


def markdown(result: dict[str, Any]) -> str:
    args, m, b, v, h = result["args"], result["machine"], result["blocks"], result["verify"], result["healthz"]
    s = result["summary"]
    reps = result["repeats"]
    per_rep = ", ".join(fmt(r["post_per_s"]) for r in reps)
    rows = [
        ("Validators / API workers", f"{args['validators']} / 1"),
        ("Block period (configured)", f"{fmt(b['block_period_s'], 2)} s"),
        ("Blocks/s (idle, eth_blockNumber)",
         f"{fmt(b['blocks_per_s'], 2)} ({b['end_block'] - b['start_block']} blocks in {fmt(b['window_s'], 1)} s)"),
        ("Certificates × repeats, concurrency",
         f"{args['certificates']} × {args['repeats']}, {args['concurrency']} threads"),
        ("POST certificates/s (median of repeats)", f"{fmt(s['post_per_s'])} (repeats: {per_rep})"),
        ("POST latency p50 / p95 / p99",
         f"{fmt(s['post_p50_ms'])} / {fmt(s['post_p95_ms'])} / {fmt(s['post_p99_ms'])} ms"),
        ("POST failures (all repeats)", str(sum(r["post_failures"] for r in reps))),
        ("Anchoring latency p50 / p95 / p99 (201 → poll sees anchored)",
         f"{fmt(s['anchor_p50_s'], 2)} / {fmt(s['anchor_p95_s'], 2)} / {fmt(s['anchor_p99_s'], 2)} s"),
        ("Anchoring latency p50 / p95 / p99 (201 → server anchored_at)",
         " / ".join(fmt(s[f"anchor_server_p{p}_s"], 2) for p in (50, 95, 99)) + " s"),
        ("Anchored records/s (first POST → last anchored)", fmt(s["anchored_per_s"])),
        ("Not anchored within timeout (all repeats)", str(sum(r["not_anchored"] for r in reps))),
        ("Anchor poll sweep p50 / max (poll resolution)",
         f"{fmt(s['poll_sweep_p50_s'], 2)} / {fmt(s['poll_sweep_max_s'], 2)} s + {POLL_INTERVAL_S} s sleep"),
        (f"Verify first call p50 / p95 (n={v['identifiers']})",
         f"{fmt(v['first_p50_ms'])} / {fmt(v['first_p95_ms'])} ms"),
        ("Verify repeat (cached) p50 / p95", f"{fmt(v['repeat_p50_ms'])} / {fmt(v['repeat_p95_ms'])} ms"),
        ("Verify answers not verified", str(v["not_verified"])),
        (f"GET /healthz ceiling ({args['concurrency']} threads, {fmt(h['window_s'], 1)} s; DB + 1 RPC)",
         f"{fmt(h['per_s'])} req/s (p50 {fmt(h['p50_ms'])} ms, errors {h['errors']})"),
        ("POST / healthz ratio (POST measured with the anchor poller running)",
         f"{fmt(s['post_to_healthz_ratio'] * 100)} %"),
        ("Cores", str(m["cores"])),
        ("Python", f"{m['implementation']} {m['python']}"),
        ("Platform", m["platform"]),
        ("py-evm / web3 / fastapi", f"{m['py-evm']} / {m['web3']} / {m['fastapi']}"),
    ]
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    lines = [f"| {'Metric':<{width}} | {'Value':<{vwidth}} |", f"|{'-' * (width + 2)}|{'-' * (vwidth + 2)}|"]
    lines += [f"| {k:<{width}} | {val:<{vwidth}} |" for k, val in rows]
    return "\n".join(lines)


def json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--validators", type=int, default=4)
    p.add_argument("--certificates", type=int, default=300, help="unique certificates posted per repeat")
    p.add_argument("--concurrency", type=int, default=8, help="posting threads (one httpx.Client each)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path, default=None, help="write the full result as JSON here")
    p.add_argument("--keep-data", action="store_true", help="keep the temporary data directory (logs, DBs)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-spine-"))
    stack = Stack(data_dir=data_dir, validators=args.validators, api_port=None, rpc_base_port=None,
                  p2p_base_port=None)
    result: dict[str, Any] = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                              "machine": machine_facts()}
    try:
        t0 = time.monotonic()
        with console.status(f"starting {args.validators} validators + contracts + API in {data_dir} ..."):
            stack.start()
        result["startup_s"] = time.monotonic() - t0
        console.print(f"stack up in {result['startup_s']:.1f} s: API {stack.api_url()}")

        result["blocks"] = measure_blocks(stack, BLOCK_WINDOW_S)

        with httpx.Client(base_url=stack.api_url(), timeout=120) as api:
            with console.status("registering the bench mill (on-chain) ..."):
                r = api.post("/v1/enterprises", headers={"Authorization": f"Bearer {stack.admin_token}"},
                             json={"name": "Bench Walzwerk GmbH", "roles": ["manufacturer"]})
            if r.status_code != 201:
                raise RuntimeError(f"registering the mill failed: {r.status_code} {r.text}")
            api_key = r.json()["api_key"]

        templates = [doc for _, doc in load_samples()]
        # warm-up (not measured): the first certificates load keys, compile paths and start the worker
        run_repeat(stack, api_key, make_certificates(templates, 900_000, len(templates)), 1, "warm-up")

        repeats = []
        for i in range(args.repeats):
            docs = make_certificates(templates, i * args.certificates, args.certificates)
            repeats.append(run_repeat(stack, api_key, docs, args.concurrency, f"run {i + 1}/{args.repeats}"))
        anchored_ids = [x for rep in repeats for x in rep["identifiers"]]

        result["verify"] = measure_verify(stack, anchored_ids[:VERIFY_SAMPLE])
        result["healthz"] = measure_healthz(stack, args.concurrency, HEALTHZ_WINDOW_S)

        result["repeats"] = [{k: v for k, v in rep.items() if k != "identifiers"} for rep in repeats]
        keys = ["post_per_s", "post_p50_ms", "post_p95_ms", "post_p99_ms", "anchor_p50_s", "anchor_p95_s",
                "anchor_p99_s", "anchor_server_p50_s", "anchor_server_p95_s", "anchor_server_p99_s", "anchored_per_s",
                "poll_sweep_p50_s", "poll_sweep_max_s"]
        summary = {k: median_of(result["repeats"], k) for k in keys}
        summary["post_to_healthz_ratio"] = (summary["post_per_s"] / result["healthz"]["per_s"]
                                            if result["healthz"]["per_s"] else math.nan)
        result["summary"] = summary

        print()
        print(markdown(result))
        if args.json is not None:
            args.json.write_text(json.dumps(json_safe(result), indent=2) + "\n")
            console.print(f"wrote {args.json}")
    finally:
        with console.status("stopping the stack ..."):
            stack.stop()
        if args.keep_data:
            console.print(f"data kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
