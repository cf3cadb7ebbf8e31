"""Bank check (``GET /v1/receivables/{id}/check``) against the trivial ``GET /livez``: from the chain index and
from the chain alone, on one throwaway network (the API restarted with ``TRACELEDGER_CHAIN_INDEX_ENABLED``).

    .venv/bin/python scripts/measure_bank_check.py [--validators 1] [--seconds 15] [--clients 8]

Prints one JSON object: per mode ``rps``, ``p50_ms``, ``p95_ms``, ``ratio_to_trivial`` and the ``/livez``
figures measured right before it. ``bench_figures(api_url, token, api_key, seconds, clients)`` is the loop
alone, for ``traceledger bench`` (its report keys ``bank_check_rps`` / ``bank_check_p50_ms``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from api.devnet import Stack


def loop(url: str, headers: dict[str, str], seconds: float, clients: int) -> dict[str, float]:
    """``clients`` threads GET ``url`` for ``seconds``: requests/s, p50/p95 in ms, non-200 count, statuses."""
    times: list[float] = []
    failures = [0]
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                r = http.get(url, headers=headers)
                dt = time.perf_counter() - t0
                with lock:
                    times.append(dt)
                    failures[0] += r.status_code != 200
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    q = statistics.quantiles(times, n=20)
    return {"rps": round(len(times) / elapsed, 1), "p50_ms": round(statistics.median(times) * 1000, 1),
            "p95_ms": round(q[18] * 1000, 1), "requests": len(times), "failures": failures[0],
            "statuses": {str(k): v for k, v in sorted(statuses.items())}}


def bench_figures(api_url: str, token: int, api_key: str, seconds: float = 15, clients: int = 8) -> dict[str, Any]:
    """``/livez`` then ``/check`` of ``token`` with the bank's key: both figures and the ratio of the rates."""
    trivial = loop(f"{api_url}/livez", {}, seconds, clients)
    check = loop(f"{api_url}/v1/receivables/{token}/check", {"Authorization": f"Bearer {api_key}"}, seconds, clients)
    return {"trivial": trivial, "check": check, "ratio_to_trivial": round(check["rps"] / trivial["rps"], 3)}


def _prepare(api: httpx.Client, stack: Stack) -> tuple[int, str]:
    gov = {"Authorization": f"Bearer {stack.admin_token}"}

    def ent(name: str, roles: list[str]) -> dict[str, Any]:
        r = api.post("/v1/enterprises", headers=gov, json={"name": name, "roles": roles})
        r.raise_for_status()
        return r.json()

    core, t1, t2, mill, bank = (ent("Automaker", ["core_enterprise"]), ent("Tier-1", ["supplier"]),
                                ent("Tier-2", ["supplier"]), ent("Mill", ["manufacturer"]), ent("Bank", ["bank"]))
    auth = {e["name"]: {"Authorization": f"Bearer {e['api_key']}"} for e in (core, t1, t2, mill, bank)}
    block = api.get("/v1/network").json()
    maturity = int(time.time()) + 90 * 86_400 if block.get("block_number") is not None else int(time.time()) + 86_400
    r = api.post("/v1/receivables", headers=auth["Automaker"], json={
        "to_enterprise_id": t1["id"], "currency": "CNY", "amount": "1000000.00", "maturity": maturity,
        "invoice_digest": "0x" + "42" * 32})
    r.raise_for_status()
    token = r.json()["id"]
    for holder, to, amount in (("Tier-1", t2, "400000.00"), ("Tier-2", mill, "150000.00")):
        r = api.post(f"/v1/receivables/{token}/split", headers=auth[holder], json={"to_enterprise_id": to["id"],
                                                                                   "amount": amount})
        r.raise_for_status()
        token = r.json()["token_id"]
    r = api.post(f"/v1/receivables/{token}/approve", headers=auth["Mill"],
                 json={"operator_enterprise_id": bank["id"], "amount": "150000.00", "max_rate_bps": 900})
    r.raise_for_status()
    return token, bank["api_key"]


def main() -> int:
    """Entry point; see the module docstring."""
    p = argparse.ArgumentParser()
    p.add_argument("--validators", type=int, default=1)
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--profile", type=Path, default=None,
                   help="py-spy record the API process during the indexed check loop into this file (raw stacks)")
    p.add_argument("--index-only", action="store_true", help="skip the chain-only run")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(data_dir=Path(tmp), validators=args.validators, api_port=None, rpc_base_port=None,
                      p2p_base_port=None)
        try:
            stack.start()
            with httpx.Client(base_url=stack.api_url(), timeout=120) as api:
                token, key = _prepare(api, stack)
                deadline = time.monotonic() + 60
                while api.get(f"/v1/receivables/{token}/check", headers={"Authorization": f"Bearer {key}"}
                              ).json()["chain_facts"]["source"] != "index+chain":
                    if time.monotonic() > deadline:
                        raise SystemExit("the indexer did not catch up within 60 s")
                    time.sleep(0.5)
            spy = None
            if args.profile is not None and stack.api_proc is not None:
                spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                                        str(stack.api_proc.pid), "--format", "raw", "-o", str(args.profile), "-d",
                                        str(int(args.seconds * 2) + 2), "--subprocesses", "--nonblocking"])
            out = {"index": bench_figures(stack.api_url(), token, key, args.seconds, args.clients)}
            if spy is not None:
                spy.wait(120)
            out["index_sequential"] = loop(f"{stack.api_url()}/v1/receivables/{token}/check",
                                           {"Authorization": f"Bearer {key}"}, 5, 1)
            if args.index_only:
                print(json.dumps(out, indent=2))
                return 0
            stack.stop_api()
            stack.extra_env["TRACELEDGER_CHAIN_INDEX_ENABLED"] = "false"
            stack.start_api()
            out["chain"] = bench_figures(stack.api_url(), token, key, args.seconds, args.clients)
            out["validators"], out["clients"], out["seconds"] = args.validators, args.clients, args.seconds
            print(json.dumps(out, indent=2))
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
