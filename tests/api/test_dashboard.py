"""``/dashboard`` without a chain: database figures, a clear line about the chain, safe HTML."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.dashboard import bar_chart, ingest_and_anchoring, last_seals, render
from api.models import Batch, Record


def test_dashboard_counts_ingest_and_backlog(client: TestClient, ingested: dict[str, Any],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACELEDGER_RPC_URLS", raising=False)
    monkeypatch.delenv("TRACELEDGER_RPC_URL", raising=False)
    data = client.get("/dashboard", params={"format": "json"}).json()
    db = data["database"]
    assert db["pending"] >= 1 and sum(p["records"] for p in db["per_minute"]) >= 1
    assert len(db["per_minute"]) == 60 and db["per_minute"][-1]["records"] >= 1  # this minute
    assert "no chain configured" in data["chain_error"]
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<section id="anchoring">' in page.text and "<svg" in page.text and "http" not in page.text.split(
        "<body>")[1].replace('href="?format=json"', "")
    assert client.get("/dashboard", params={"format": "xml"}).status_code == 422


def test_latency_is_measured_from_record_commit_to_batch_receipt(client: TestClient, ingested: dict[str, Any]
                                                                ) -> None:
    engine = client.app.state.tl.engine
    now = datetime.now(UTC)
    with Session(engine) as s:
        batch = Batch(root="0x" + "11" * 32, size=1, status="final", block_number=7, anchored_at=now)
        s.add(batch)
        s.commit()
        rec = s.exec(select(Record)).first()
        assert rec is not None
        rec.batch_id = batch.id
        rec.created_at = now - timedelta(seconds=3)
        s.add(rec)
        s.commit()
        db = ingest_and_anchoring(s)
    assert db["latency_s"]["n"] == 1 and 2.9 <= db["latency_s"]["max"] <= 4.1
    assert db["last_batch"]["block_number"] == 7


def test_a_validator_missing_from_recent_seals_shows_no_last_seal() -> None:
    blocks = [{"number": 9, "validators": ["0xA", "0xB", "0xC"], "signers": ["0xA", "0xB"]},
              {"number": 8, "validators": ["0xA", "0xB", "0xC"], "signers": ["0xa", "0xC"]}]
    assert last_seals(blocks) == [{"address": "0xA", "last_sealed_block": 9, "sealed_recent": 2},
                                  {"address": "0xB", "last_sealed_block": 9, "sealed_recent": 1},
                                  {"address": "0xC", "last_sealed_block": 8, "sealed_recent": 1}]


def test_render_escapes_what_validators_report() -> None:
    db = {"pending": 0, "unbatched": 0, "last_batch": None, "batches_last_hour": 0,
          "latency_s": {"p50": None, "p95": None, "max": None, "n": 0},
          "per_minute": [{"minute": "10:00", "records": 0, "by_kind": {}}],
          "latency_per_minute": [{"minute": "10:00", "max_s": 0}]}
    data = {"generated_at": "2026-11-30T12:00:00", "chain_error": None, "blocks": [], "validators": [],
            "endpoints": [{"url": "http://v1", "ok": False, "height": None, "peers": None, "round": None,
                           "error": "<script>alert(1)</script>"}], "database": db}
    page = render(data)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert bar_chart([0, 2], ["a", "b"], "s", "t").count("<rect") == 2
