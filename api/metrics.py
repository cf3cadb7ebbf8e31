"""Prometheus metrics (process-wide, registered once on import in the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "traceledger_http_requests_total",
    "HTTP requests by route template, method and status",
    ["route", "method", "status"],
)
RECORDS_INGESTED = Counter("traceledger_records_ingested_total", "Records accepted (201)", ["kind"])
BATCHES_ANCHORED = Counter("traceledger_batches_anchored_total", "Merkle batches final on chain")
ANCHOR_ERRORS = Counter("traceledger_anchoring_errors_total", "Anchoring attempts that failed")
ANCHOR_LATENCY = Histogram(
    "traceledger_anchoring_latency_seconds",
    "Seconds from record ingestion to its batch being final on chain",
    buckets=(0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120, 300, 600),
)
PENDING = Gauge("traceledger_pending_records", "Records ingested but not yet anchored")
