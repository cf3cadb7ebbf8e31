"""Bank check of a warehouse receipt (``GET /v1/warehouse-receipts/{id}/check``): from the chain index (one
JSON-RPC batch) against the chain alone (a call per fact), A/B alternated on one throwaway network (the API
restarted with ``TRACELEDGER_CHAIN_INDEX_ENABLED`` true / false each round).

    .venv/bin/python scripts/measure_receipt_check.py [--validators 1] [--rounds 3] [--seconds 8] [--clients 1]

Prints one JSON object: per round and mode ``rps``, ``p50_ms``, ``p95_ms`` (``loop`` of
``scripts/measure_bank_check.py``) and per mode the median and range of ``p50_ms`` and ``rps`` over rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure_bank_check import loop  # noqa: E402

from api.cli.load_setup import setup_warehouse_receipts  # noqa: E402
from api.devnet import Stack  # noqa: E402


def _restart(stack: Stack, indexed: bool) -> None:
    stack.stop_api()
    stack.extra_env["TRACELEDGER_CHAIN_INDEX_ENABLED"] = "true" if indexed else "false"
    stack.start_api()


def main() -> int:
    """Entry point; see the module docstring."""
    p = argparse.ArgumentParser()
    p.add_argument("--validators", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--clients", type=int, default=1)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(data_dir=Path(tmp), validators=args.validators, api_port=None, rpc_base_port=None,
                      p2p_base_port=None)
        try:
            stack.start()
            with httpx.Client(base_url=stack.api_url(), timeout=120) as api:
                gov = {"Authorization": f"Bearer {stack.admin_token}"}
                bank = api.post("/v1/enterprises", headers=gov, json={"name": "Bench Bank", "roles": ["bank"]})
                bank.raise_for_status()
                key = bank.json()["api_key"]
                (rid,) = setup_warehouse_receipts(api, stack.admin_token or "", bank.json(), 1)
            url = f"/v1/warehouse-receipts/{rid}/check"
            headers = {"Authorization": f"Bearer {key}"}
            rounds: list[dict[str, Any]] = []
            for n in range(args.rounds):
                for mode in ("index", "chain") if n % 2 == 0 else ("chain", "index"):
                    _restart(stack, mode == "index")
                    want = "index+chain" if mode == "index" else "chain"
                    deadline = time.monotonic() + 90
                    with httpx.Client(base_url=stack.api_url(), timeout=120) as api:
                        while (got := api.get(url, headers=headers).json()["chain_facts"]["source"]) != want:
                            if time.monotonic() > deadline:
                                raise SystemExit(f"{mode}: answers came from {got}")
                            time.sleep(0.5)
                    loop(f"{stack.api_url()}{url}", headers, 2, args.clients)  # warm-up
                    rounds.append({"round": n, "mode": mode, **loop(f"{stack.api_url()}{url}", headers, args.seconds,
                                                                     args.clients)})
            summary = {}
            for mode in ("index", "chain"):
                mine = [r for r in rounds if r["mode"] == mode]
                summary[mode] = {k: {"median": statistics.median(r[k] for r in mine),
                                     "min": min(r[k] for r in mine), "max": max(r[k] for r in mine)}
                                 for k in ("p50_ms", "p95_ms", "rps")}
            print(json.dumps({"rounds": rounds, "summary": summary, "validators": args.validators,
                              "clients": args.clients, "seconds": args.seconds}, indent=2))
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
