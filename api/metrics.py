"""Prometheus metrics (process-wide, registered once on import in the default registry)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric

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


class _EventHashFallbacks:
    """Exports :data:`provenance.epcis.HASH_FALLBACKS` (the package fallback of the native EPCIS event hash)
    as counters ``traceledger_epcis_hash_fallback_{documents,events}_total`` and, per reason,
    ``traceledger_epcis_hash_fallback_reason_total{reason}``; read at scrape time, nothing to update."""

    def collect(self) -> Iterator[Metric]:
        from provenance.epcis import HASH_FALLBACKS

        snap = HASH_FALLBACKS.snapshot()
        yield CounterMetricFamily("traceledger_epcis_hash_fallback_documents",
                                  "EPCIS documents whose event hash IDs fell back to epcis-event-hash-generator",
                                  value=snap["documents"])
        yield CounterMetricFamily("traceledger_epcis_hash_fallback_events",
                                  "EPCIS events hashed by the epcis-event-hash-generator fallback",
                                  value=snap["events"])
        reasons = CounterMetricFamily("traceledger_epcis_hash_fallback_reason",
                                      "EPCIS documents that fell back, by the native path's reason", labels=["reason"])
        for reason, count in sorted(snap["reasons"].items()):
            reasons.add_metric([reason], count)
        yield reasons


REGISTRY.register(_EventHashFallbacks())
ANCHOR_IN_FLIGHT = Gauge("traceledger_anchor_transactions_in_flight",
                         "Anchor transactions sent and waiting for their receipt (pipelined anchoring)")
