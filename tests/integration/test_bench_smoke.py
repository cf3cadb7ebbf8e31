"""``traceledger bench`` end to end with tiny settings: the locust suites run headless and the report is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.cli.bench import main as bench_main

pytestmark = pytest.mark.integration

KEYS = ("ingest_events_per_s", "anchor_latency_p99_s", "post_certificate_rps", "post_certificate_p99_ms",
        "resolve_rps", "verify_lineage50_p50_ms", "trivial_rps")


def test_bench_writes_report_with_required_keys(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    code = bench_main(["--validators", "1", "--database", "sqlite", "--workers", "2", "--duration", "2",
                       "--users", "4", "--ingest-docs", "1", "--ingest-events", "200", "--ingest-concurrency", "1",
                       "--certificates", "20", "--receivables", "0", "--micro-seconds", "0.05",
                       "--scenarios", "trivial,post_certificate,resolve,verify,verify_lineage50,bank_check",
                       "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    # what a 2-second smoke run on a loaded machine can promise: every scenario that ran completed requests
    # (a starved one ran again, longer) and each figure is a number resting on them, never None
    requests = report["headline"]["requests"]
    for scenario in ("trivial", "post_certificate", "resolve", "verify", "verify_lineage50"):
        assert requests[scenario] >= 1, (scenario, requests, report["headline"]["scenario_seconds"])
    for key in KEYS:
        assert isinstance(report[key], int | float), (key, report[key], requests)
    assert isinstance(report["verify_rps"], int | float)
    assert "bank_check_rps" in report and "bank_check_p50_ms" in report  # None here: the bank suite skipped
    ratios = report["headline"]["endpoint_ratios_to_trivial"]
    assert "verify GET GET /v1/verify/[id]" in ratios and all("ratio_to_trivial" in e for e in report["endpoints"])
    assert report["ingest"]["events_acknowledged"] == 200
    assert report["ingest"]["anchoring"]["records_pending_at_end"] == 0
    assert report["machine"]["cores"] and report["machine"]["python"]
    assert report["headline"]["verify_lineage50_records"] == 50
    names = {e["name"] for e in report["endpoints"]}
    assert {"GET /livez", "POST /v1/coils/certificates", "GET /v1/identifiers/[id]"} <= names
    assert all(e["failures"] == 0 for e in report["endpoints"]), report["endpoints"]
    # the bank suite had no tokens: it skipped with its reason instead of failing requests
    bank = next(r for r in report["locust"] if r["scenario"] == "bank_check")
    assert any("skipped" in (f["name"] or "") for f in bank["failures"]), bank
    md = (out / "report.md").read_text()
    assert "| `trivial_rps` |" in md and "## Machine" in md and "What limits each figure" in md
