"""Factory suite: a steel mill posting coil certificates and EPCIS capture documents, single and bulk.

Run by hand (the API running, ``python -m api.cli.load_setup`` done)::

    .venv/bin/locust -f load/factory.py --headless -u 16 -r 8 -t 30s --host http://127.0.0.1:8000 \\
        --csv bench/factory --only-summary

Tags select one kind of request: ``certificate`` (single POST), ``certificate_batch``,
``epcis`` (a 25-event document), ``epcis_bulk`` (``TRACELEDGER_LOAD_EPCIS_EVENTS`` events, default 2000).
"""

from __future__ import annotations

import os
from typing import Any

from loadcommon import certificate, check, config, epcis_document, wait_time
from locust import FastHttpUser, tag, task


class FactoryUser(FastHttpUser):
    """A mill's integration: posts what the plant produces as fast as it is produced."""

    wait_time = wait_time()
    weight = 3

    def on_start(self) -> None:
        cfg = config()
        self.headers = {"Authorization": f"Bearer {cfg['factory']['api_key']}"}
        self.prefix = cfg["factory"]["prefix"]
        self.bulk_events = int(os.environ.get("TRACELEDGER_LOAD_EPCIS_EVENTS", "2000"))
        self.batch = int(os.environ.get("TRACELEDGER_LOAD_BATCH", "200"))

    def _post(self, path: str, body: Any, name: str) -> None:
        with self.client.post(path, json=body, headers=self.headers, name=name, catch_response=True) as resp:
            check(resp, 201)

    @tag("certificate")
    @task(10)
    def post_certificate(self) -> None:
        self._post("/v1/coils/certificates", certificate(), "POST /v1/coils/certificates")

    @tag("certificate_batch")
    @task(1)
    def post_certificate_batch(self) -> None:
        body = {"certificates": [certificate() for _ in range(self.batch)]}
        self._post("/v1/coils/certificates/batch", body, f"POST /v1/coils/certificates/batch ({self.batch})")

    @tag("epcis")
    @task(3)
    def capture_small(self) -> None:
        self._post("/v1/epcis/capture", epcis_document(25, mill_prefix=self.prefix), "POST /v1/epcis/capture (25)")

    @tag("epcis_bulk")
    @task(1)
    def capture_bulk(self) -> None:
        doc = epcis_document(self.bulk_events, mill_prefix=self.prefix)
        n = len(doc["epcisBody"]["eventList"])
        self._post("/v1/epcis/capture", doc, f"POST /v1/epcis/capture ({n})")
