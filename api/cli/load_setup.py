"""Prepare a running API for the locust suites in ``load/`` and write their configuration JSON.

Usage::

    .venv/bin/python -m api.cli.load_setup --api http://127.0.0.1:8000 --admin-token TOKEN \\
        [--certificates 500] [--out bench/load-config.json]

Registers a mill (manufacturer), posts ``--certificates`` coil certificates through the batch endpoint,
captures a generated steel→parts supply chain whose welded sub-frame has ~50 upstream records
(:func:`provenance.supply_chain.generate` with ``lineage_fan_in=16``), waits until everything is anchored,
and — when the API has receivables — registers a core enterprise, a supplier and a bank, confirms one
payable per ``--receivables`` and lets the supplier ask the bank to finance it (ERC-3525 allowance), so
the bank suite has tokens it may check; with warehouse receipts (issue 15) it also pledges one coil
receipt per ``--receivables`` to that bank (``bank.warehouse_receipts``). Any step of the receivables
story that fails is reported in ``bank_skip_reason`` and the bank suite then skips cleanly.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from provenance.samples import load_samples

LINEAGE_FAN_IN = 16


def _ok(resp: httpx.Response, *codes: int) -> dict[str, Any]:
    if resp.status_code not in codes:
        raise RuntimeError(f"{resp.request.method} {resp.request.url.path}: {resp.status_code} {resp.text[:300]}")
    return resp.json()


def wait_anchored(client: httpx.Client, identifiers: list[str], timeout_s: float = 180.0) -> float:
    """Poll resolution records until every identifier is anchored; returns the seconds waited.

    Raises TimeoutError naming how many are still pending."""
    t0 = time.monotonic()
    pending = list(dict.fromkeys(identifiers))
    i = 0
    while i < len(pending):  # records are anchored in id order: walk forward, waiting where one is pending
        r = client.get(f"/v1/identifiers/{quote(pending[i], safe='/')}")
        if r.status_code == 200 and r.json().get("status") == "anchored":
            i += 1
            continue
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"{len(pending) - i} records not anchored within {timeout_s:.0f} s (e.g. {pending[i]})")
        time.sleep(0.3)
    return time.monotonic() - t0


def enterprise(client: httpx.Client, admin_token: str, name: str, roles: list[str]) -> dict[str, Any]:
    """Register an enterprise (201 body with ``api_key``)."""
    return _ok(client.post("/v1/enterprises", headers={"Authorization": f"Bearer {admin_token}"},
                           json={"name": name, "roles": roles}), 201)


def setup_receivables(client: httpx.Client, admin_token: str, count: int) -> dict[str, Any]:
    """Core enterprise → supplier payables, each offered to a bank; returns ``{api_key, receivables}``."""
    core = enterprise(client, admin_token, "Load Test Auto Works", ["core_enterprise"])
    supplier = enterprise(client, admin_token, "Load Test Pressings", ["supplier"])
    bank = enterprise(client, admin_token, "Load Test Bank", ["bank"])
    maturity = int((datetime.now(UTC) + timedelta(days=90)).timestamp())
    tokens = []
    for i in range(count):
        body = {"to_enterprise_id": supplier["id"], "currency": "CNY", "amount": "150000.00", "maturity": maturity,
                "invoice": {"number": f"INV-LOAD-{secrets.token_hex(4)}-{i}", "amount": "150000.00"}}
        rec = _ok(client.post("/v1/receivables", json=body,
                              headers={"Authorization": f"Bearer {core['api_key']}"}), 201)
        token = int(rec.get("token_id") or rec.get("id"))
        _ok(client.post(f"/v1/receivables/{token}/approve", json={"operator_enterprise_id": bank["id"],
                                                                  "amount": "150000.00", "max_rate_bps": 500},
                        headers={"Authorization": f"Bearer {supplier['api_key']}"}), 200, 201)
        tokens.append(token)
    check = client.get(f"/v1/receivables/{tokens[0]}/check", headers={"Authorization": f"Bearer {bank['api_key']}"})
    _ok(check, 200)
    out: dict[str, Any] = {"api_key": bank["api_key"], "receivables": tokens, "warehouse_receipts": [],
                           "warehouse_receipts_skip_reason": None}
    try:
        out["warehouse_receipts"] = setup_warehouse_receipts(client, admin_token, bank, count)
    except Exception as exc:  # noqa: BLE001 - the bank suite then checks receivables only
        out["warehouse_receipts_skip_reason"] = f"warehouse receipts set-up failed: {exc}"[:500]
    return out


def setup_warehouse_receipts(client: httpx.Client, admin_token: str, bank: dict[str, Any], count: int) -> list[int]:
    """Issue 15: ``count`` warehouse receipts of one S355MC coil each, received at a warehouse (EPCIS
    ``receiving``), issued to a trader and pledged to ``bank``; returns the receipt ids."""
    from api.cli.demo import WAREHOUSE_LOCATION, _receiving_document

    mill = enterprise(client, admin_token, "Load Test Coil Mill", ["manufacturer"])
    warehouse = enterprise(client, admin_token, "Load Test Warehouse", ["warehouse"])
    trader = enterprise(client, admin_token, "Load Test Steel Trader", ["supplier"])
    sample = next(doc for name, doc in load_samples() if name.startswith("s355mc"))
    tag = secrets.token_hex(3).upper()
    coils = []
    for i in range(count):
        doc = json.loads(json.dumps(sample))
        doc["Certificate"]["ProductDescription"]["B07"] = f"WR{tag}-{i:04d}"
        coils.append(_ok(client.post("/v1/coils/certificates", json=doc,
                                     headers={"Authorization": f"Bearer {mill['api_key']}"}), 201)["identifier"])
    _ok(client.post("/v1/epcis/capture", json=_receiving_document(coils, WAREHOUSE_LOCATION),
                    headers={"Authorization": f"Bearer {warehouse['api_key']}"}), 201)
    maturity = int((datetime.now(UTC) + timedelta(days=90)).timestamp())
    receipts = []
    for coil in coils:
        body = {"depositor_enterprise_id": trader["id"], "location": WAREHOUSE_LOCATION,
                "storage_until": maturity, "coils": [{"identifier": coil}]}
        rid = int(_ok(client.post("/v1/warehouse-receipts", json=body,
                                  headers={"Authorization": f"Bearer {warehouse['api_key']}"}), 201)["id"])
        _ok(client.post(f"/v1/warehouse-receipts/{rid}/pledge", json={
            "bank_enterprise_id": bank["id"], "amount": "50000.00", "currency": "CNY", "maturity": maturity},
            headers={"Authorization": f"Bearer {trader['api_key']}"}), 200)
        receipts.append(rid)
    return receipts


def prepare(api_url: str, admin_token: str, *, certificates: int = 500, receivables: int = 2,
            timeout_s: float = 180.0) -> dict[str, Any]:
    """Load data for the suites (see the module doc); returns the configuration dict."""
    from provenance.supply_chain import generate

    with httpx.Client(base_url=api_url, timeout=120) as client:
        mill = enterprise(client, admin_token, "Load Test Steel Mill", ["manufacturer"])
        auth = {"Authorization": f"Bearer {mill['api_key']}"}
        samples = [doc for _, doc in load_samples()]
        identifiers: list[str] = []
        tag = secrets.token_hex(3).upper()
        for start in range(0, certificates, 500):
            docs = []
            for i in range(start, min(start + 500, certificates)):
                doc = json.loads(json.dumps(samples[i % len(samples)]))
                doc["Certificate"]["ProductDescription"]["B07"] = f"LS{tag}-{i:06d}"
                docs.append(doc)
            body = _ok(client.post("/v1/coils/certificates/batch", json={"certificates": docs}, headers=auth), 201)
            identifiers += [r["identifier"] for r in body["records"]]
        chain = generate(heats=1, mill_prefix=mill["prefix"], lineage_fan_in=LINEAGE_FAN_IN)
        _ok(client.post("/v1/coils/certificates/batch", json={"certificates": chain.certificates}, headers=auth),
            200, 201)
        for _, doc in chain.documents:
            _ok(client.post("/v1/epcis/capture", json=doc, headers=auth), 200, 201)
        assert chain.truth.deep_part is not None
        wait_anchored(client, identifiers, timeout_s)
        lineage = _ok(client.get(f"/v1/verify/{quote(chain.truth.deep_part, safe='')}",
                                 params={"lineage": "upstream"}), 200)
        deadline = time.monotonic() + timeout_s
        while not lineage["verified"] and time.monotonic() < deadline:
            time.sleep(0.5)
            lineage = _ok(client.get(f"/v1/verify/{quote(chain.truth.deep_part, safe='')}",
                                     params={"lineage": "upstream"}), 200)
        cfg: dict[str, Any] = {
            "api": api_url, "factory": {"api_key": mill["api_key"], "prefix": mill["prefix"]},
            "identifiers": identifiers, "lineage_parts": [chain.truth.deep_part],
            "lineage_records": lineage["records_checked"], "lineage_verified": lineage["verified"],
            "bank": None, "bank_skip_reason": None,
        }
        if receivables > 0:
            try:
                cfg["bank"] = setup_receivables(client, admin_token, receivables)
            except Exception as exc:  # noqa: BLE001 - the bank suite then skips with this reason
                cfg["bank_skip_reason"] = f"receivables set-up failed: {exc}"[:500]
        else:
            cfg["bank_skip_reason"] = "no receivables requested (--receivables 0)"
    return cfg


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (see the module doc)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--api", required=True, help="API base URL")
    ap.add_argument("--admin-token", required=True, help="governance token (TRACELEDGER_ADMIN_TOKEN)")
    ap.add_argument("--certificates", type=int, default=500)
    ap.add_argument("--receivables", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/load-config.json"))
    args = ap.parse_args(argv)
    cfg = prepare(args.api, args.admin_token, certificates=args.certificates, receivables=args.receivables)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(cfg, indent=1))
    print(f"wrote {args.out}: {len(cfg['identifiers'])} identifiers, lineage part with {cfg['lineage_records']} "
          f"records, bank: {'yes' if cfg['bank'] else cfg['bank_skip_reason']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
