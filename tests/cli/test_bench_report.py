"""``traceledger bench`` report keys: verify and bank figures, and every endpoint's ratio to ``GET /livez``."""

from __future__ import annotations

from typing import Any

from api.cli.bench import markdown, summarize


def _ep(scenario: str, name: str, rps: float, p50: float, method: str = "GET") -> dict[str, Any]:
    return {"scenario": scenario, "name": name, "method": method, "requests": int(rps * 10), "failures": 0,
            "rps": rps, "p50_ms": p50, "p95_ms": p50 * 2, "p99_ms": p50 * 3, "max_ms": p50 * 4, "users": 4}


def _runs() -> list[dict[str, Any]]:
    return [
        {"scenario": "trivial", "endpoints": [_ep("trivial", "GET /livez", 2000.0, 5)], "failures": []},
        {"scenario": "verify", "endpoints": [_ep("verify", "GET /v1/verify/[id]", 1000.0, 9)], "failures": []},
        {"scenario": "bank_check", "endpoints": [_ep("bank_check", "GET /v1/receivables/[id]/check", 400.0, 12)],
         "failures": []},
        {"scenario": "post_certificate", "endpoints": [
            _ep("post_certificate", "POST /v1/coils/certificates", 500.0, 20, "POST"),
            _ep("post_certificate", "GET /v1/identifiers/[id]", 100.0, 3)], "failures": []},
    ]


def _ingest() -> dict[str, Any]:
    return {"events_per_s": 1.0, "documents": 1, "events_per_document": 1, "concurrency": 1, "events_acknowledged": 1,
            "wall_s": 1, "request_p50_s": 0.1, "failures": [],
            "anchoring": {"latency_p99_s": 1.0, "latency_p50_s": 0.5, "anchored_records_per_s": 1.0,
                          "latency_p95_s": 0.9, "latency_max_s": 1.0, "records_anchored": 1, "batches": 1,
                          "records_pending_at_end": 0}}


def test_report_has_verify_bank_and_every_endpoint_ratio() -> None:
    runs = _runs()
    h = summarize(_ingest(), runs, 50)
    assert h["verify_rps"] == 1000.0 and h["bank_check_rps"] == 400.0 and h["bank_check_p50_ms"] == 12
    assert h["ratios_to_trivial"]["verify"] == 0.5 and h["ratios_to_trivial"]["bank_check"] == 0.2
    ratios = h["endpoint_ratios_to_trivial"]
    assert ratios["post_certificate POST POST /v1/coils/certificates"] == 0.25
    assert ratios["post_certificate GET GET /v1/identifiers/[id]"] == 0.05  # the second endpoint of a scenario
    assert all(e["ratio_to_trivial"] is not None for r in runs for e in r["endpoints"])
    report = {"headline": h, "config": {"validators": 1, "block_period_s": 1, "api_workers": 1, "database": "sqlite",
                                        "anchor_max_batch": 1, "locust_users": 1, "locust_duration_s": 1},
              "generated_at": "now", "command": "bench", "duration_s": 1.0, "locust": runs, "ingest": _ingest(),
              "micro": {}, "limits": [], "machine": {}}
    md = markdown(report)
    assert "`bank_check_p50_ms` | 12" in md and "`verify_rps` | 1,000.0" in md


def test_a_scenario_too_short_to_complete_a_request_runs_again_longer(monkeypatch: Any, tmp_path: Any) -> None:
    """A 2-second run on a starved machine that completed nothing (the smoke test's post_certificate under load)
    runs again 4x longer; the figure comes from that run, with its request count and seconds — never None."""
    from api.cli import bench

    calls: list[int] = []

    def fake_run(name: str, locustfile: str, tags: str, users: int, duration_s: int, *rest: Any) -> dict[str, Any]:
        calls.append(duration_s)
        if duration_s < 8:  # nothing completed in the short run: locust writes no endpoint row at all
            return {"scenario": name, "endpoints": [], "failures": []}
        return {"scenario": name, "endpoints": [_ep(name, "POST /v1/coils/certificates", 3.0, 900, "POST")],
                "failures": []}

    monkeypatch.setattr(bench, "run_locust", fake_run)
    run = bench.measure_scenario("post_certificate", "factory.py", "certificate", 4, 2, "http://x", tmp_path,
                                 tmp_path)
    assert calls == [2, 8] and run["duration_s"] == 8 and run["attempts"] == 2 and run["requests"] == 30
    h = summarize(_ingest(), [run], None)
    assert h["post_certificate_rps"] == 3.0 and h["post_certificate_p99_ms"] == 2700
    assert h["requests"] == {"post_certificate": 30} and h["scenario_seconds"] == {"post_certificate": 8}

    # a self-skipping suite is not rerun; one that never completes anything (2 + 8 + 32 s) reports 0 req/s
    def nothing_completed(failures: list[dict[str, Any]]) -> Any:
        def fake(name: str, locustfile: str, tags: str, users: int, duration_s: int, *rest: Any) -> dict[str, Any]:
            calls.append(duration_s)
            return {"scenario": name, "endpoints": [], "failures": failures}
        return fake

    calls.clear()
    monkeypatch.setattr(bench, "run_locust", nothing_completed([{"name": "bank suite skipped", "error": "no tokens",
                                                                 "occurrences": 1}]))
    skipped = bench.measure_scenario("bank_check", "bank.py", "receivable", 4, 2, "http://x", tmp_path, tmp_path)
    assert calls == [2] and skipped["requests"] == 0
    calls.clear()
    monkeypatch.setattr(bench, "run_locust", nothing_completed([]))
    starved = bench.measure_scenario("verify", "auditor.py", "verify", 4, 2, "http://x", tmp_path, tmp_path)
    assert calls == [2, 8, 32]
    h = summarize(_ingest(), [starved, skipped], None)
    assert h["verify_rps"] == 0.0 and h["bank_check_rps"] is None  # skipped: no figure, its reason is reported


def test_failed_requests_are_not_throughput(tmp_path: Any) -> None:
    """A POST suite that hit 429s reports only the answered requests per second (the SQLite bench once counted
    5,501 refusals of 12,659 requests as throughput)."""
    from api.cli.bench import endpoint_stats

    stats = tmp_path / "post_stats.csv"
    stats.write_text("Type,Name,Request Count,Failure Count,Requests/s,50%,95%,99%,Max Response Time\n"
                     "POST,/v1/coils/certificates,1000,400,100.0,20,80,120,300\n"
                     "GET,/livez,500,0,50.0,3,8,11,20\n"
                     ",Aggregated,1500,400,150.0,10,40,100,300\n")
    rows = endpoint_stats(stats, "post_certificate", 32)
    assert [(r["name"], r["rps"], r["offered_rps"], r["failures"]) for r in rows] == [
        ("/v1/coils/certificates", 60.0, 100.0, 400), ("/livez", 50.0, 50.0, 0)]
    assert endpoint_stats(tmp_path / "absent.csv", "x", 1) == []
