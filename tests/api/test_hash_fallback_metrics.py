"""The package fallback of the native EPCIS event hash is visible in the API's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import generate_latest

import api.metrics  # noqa: F401 - registers the collector
from provenance.epcis import HASH_FALLBACKS, event_hash_ids


def _value(name: str) -> float:
    for line in generate_latest().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def test_fallback_events_are_counted_in_metrics() -> None:
    before = _value("traceledger_epcis_hash_fallback_events_total")
    assert before == HASH_FALLBACKS.snapshot()["events"]
    event = {"type": "ObjectEvent", "eventTime": "2026-05-01T08:00:00.000Z", "eventTimeZoneOffset": "+00:00",
             "epcList": ["urn:epc:id:sgtin:4012345.011111.1"], "action": "OBSERVE", "bizStep": "shipping",
             "@id": "_:b0"}  # a JSON-LD keyword inside an event: the native path leaves it to the package
    event_hash_ids({"@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
                    "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-05-01T08:00:00Z",
                    "epcisBody": {"eventList": [event]}})
    assert _value("traceledger_epcis_hash_fallback_events_total") == HASH_FALLBACKS.snapshot()["events"]
    assert HASH_FALLBACKS.snapshot()["events"] == before + 1
