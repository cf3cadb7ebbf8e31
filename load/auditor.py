"""Auditor suite: resolves identifiers, fetches QR codes, verifies single records and whole lineages.

Run by hand::

    .venv/bin/locust -f load/auditor.py --headless -u 32 -r 16 -t 30s --host http://127.0.0.1:8000 \\
        --csv bench/auditor --only-summary

Tags: ``resolve``, ``qr``, ``verify``, ``lineage`` (upstream verify of a part with ~50 records),
``trivial`` (``GET /livez``, the ceiling of this machine). Auditors think between clicks (0.5–2 s)
unless ``TRACELEDGER_LOAD_RATE`` sets a rate; ``traceledger bench`` sets a high rate to find the ceiling.
"""

from __future__ import annotations

import random

from loadcommon import check, config, path_of, think_time
from locust import FastHttpUser, tag, task


class AuditorUser(FastHttpUser):
    """An auditor or customer checking what it holds (public endpoints, no API key)."""

    wait_time = think_time()
    weight = 2

    def on_start(self) -> None:
        cfg = config()
        self.identifiers: list[str] = list(cfg.get("identifiers") or [])
        self.parts: list[str] = list(cfg.get("lineage_parts") or [])
        if not self.identifiers:
            raise RuntimeError("load configuration lists no identifiers to resolve")

    def _get(self, path: str, name: str, params: dict[str, str] | None = None) -> None:
        url = path if not params else path + "?" + "&".join(f"{k}={v}" for k, v in params.items())
        with self.client.get(url, name=name, catch_response=True) as resp:
            check(resp, 200)

    @tag("resolve")
    @task(10)
    def resolve(self) -> None:
        self._get(f"/v1/identifiers/{path_of(random.choice(self.identifiers))}", "GET /v1/identifiers/[id]")

    @tag("qr")
    @task(3)
    def qr(self) -> None:
        self._get(f"/v1/identifiers/{path_of(random.choice(self.identifiers))}/qr.png",
                  "GET /v1/identifiers/[id]/qr.png")

    @tag("verify")
    @task(5)
    def verify(self) -> None:
        self._get(f"/v1/verify/{path_of(random.choice(self.identifiers))}", "GET /v1/verify/[id]")

    @tag("lineage")
    @task(2)
    def verify_lineage(self) -> None:
        if not self.parts:
            return
        self._get(f"/v1/verify/{path_of(random.choice(self.parts))}", "GET /v1/verify/[part]?lineage=upstream",
                  {"lineage": "upstream"})

    @tag("trivial")
    @task(1)
    def livez(self) -> None:
        self._get("/livez", "GET /livez")
