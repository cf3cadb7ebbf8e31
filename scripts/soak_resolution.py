#!/usr/bin/env python3
"""Soak the API's read paths with many distinct identifiers and report resident memory (issue 12).

    .venv/bin/python scripts/soak_resolution.py [--records 100000] [--duration 600] [--every 10000]

Creates a throwaway SQLite database with one enterprise and ``--records`` stored certificates (rows written
directly: the soak is about reads), then, through the real application (in process, ASGI), resolves each
identifier (``GET /v1/identifiers/{id}``) and fetches its QR code (``…/qr.png``) until every identifier was
served or ``--duration`` seconds passed. Prints the process's resident memory (VmRSS, MiB) every ``--every``
identifiers: with bounded caches (``TRACELEDGER_QR_CACHE_ENTRIES``, default 10,000) the curve is flat after
warm-up; an unbounded cache grows by about 1.4 KB per identifier.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from urllib.parse import quote


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--duration", type=float, default=600.0, help="seconds at most")
    ap.add_argument("--every", type=int, default=10_000, help="print memory every N identifiers")
    args = ap.parse_args(argv)

    from fastapi.testclient import TestClient
    from sqlalchemy import insert

    from api.main import create_app
    from api.models import Record, utcnow
    from api.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="traceledger-soak-"))
    settings = Settings(database_url=f"sqlite:///{tmp / 'soak.db'}", data_dir=tmp, rpc_url=None,
                        admin_token="soak", keystore_scrypt_n=16, anchoring_enabled=False, chain_id=1337,
                        public_base_url="https://trace.example")
    with TestClient(create_app(settings)) as client:
        ent = client.post("/v1/enterprises", headers={"Authorization": "Bearer soak"},
                          json={"name": "Soak Mill", "roles": ["manufacturer"]}).json()
        engine = client.app.state.tl.engine  # type: ignore[attr-defined]
        doc, now = json.dumps({"soak": True}), utcnow()
        with engine.begin() as conn:
            for start in range(0, args.records, 5_000):
                conn.execute(insert(Record), [
                    {"identifier": f"{ent['prefix']}/SOAK-{i:07d}", "kind": "coil_certificate",
                     "enterprise_id": ent["id"], "document": doc, "record_digest": "0x" + "11" * 32,
                     "signature": "0x" + "22" * 65, "signer": ent["address"], "chain_id": 1337, "created_at": now}
                    for i in range(start, min(start + 5_000, args.records))])
        print(f"{args.records} records stored; serving (RSS {rss_mib():.1f} MiB)", flush=True)
        print("identifiers served | RSS MiB | seconds")
        t0 = time.monotonic()
        served = 0
        for i in range(args.records):
            if time.monotonic() - t0 > args.duration:
                break
            path = quote(f"{ent['prefix']}/SOAK-{i:07d}", safe="/")
            assert client.get(f"/v1/identifiers/{path}").status_code == 200
            assert client.get(f"/v1/identifiers/{path}/qr.png").status_code == 200
            served += 1
            if served % args.every == 0:
                print(f"{served:>18} | {rss_mib():7.1f} | {time.monotonic() - t0:7.0f}", flush=True)
        print(f"{served:>18} | {rss_mib():7.1f} | {time.monotonic() - t0:7.0f}  (end)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
