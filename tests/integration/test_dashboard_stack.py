"""``/dashboard`` on the session's shared live 4-validator network, rendered in headless Chromium at desktop and
phone width."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from api.devnet import Stack

from .conftest import wait_anchored

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SAMPLE = Path(__file__).resolve().parents[2] / "provenance" / "samples" / "s355mc_coil_nw24-118734.json"


@pytest.fixture(scope="module")
def stack(shared_stack: Stack) -> Stack:
    """The session's shared 4-validator network (tests/conftest.py); this module only reads it."""
    return shared_stack


@pytest.fixture(scope="module")
def anchored(stack: Stack) -> str:
    with httpx.Client(base_url=stack.api_url(), timeout=60) as api:
        mill = api.post("/v1/enterprises", headers={"Authorization": f"Bearer {stack.admin_token}"},
                        json={"name": "Dashboard Mill", "roles": ["manufacturer"]}).json()
        r = api.post("/v1/coils/certificates", content=SAMPLE.read_bytes(),
                     headers={"Authorization": f"Bearer {mill['api_key']}", "Content-Type": "application/json"})
        assert r.status_code == 201, r.text
        wait_anchored(api, [r.json()["identifier"]])
        return r.json()["identifier"]


def test_dashboard_data_reflects_the_network(stack: Stack, anchored: str) -> None:
    data = httpx.get(stack.api_url() + "/dashboard", params={"format": "json"}, timeout=30).json()
    assert data["chain_error"] is None
    assert [e["url"] for e in data["endpoints"]] == stack.spec.rpc_urls  # type: ignore[union-attr]
    assert len(stack.spec.validators) == 4  # type: ignore[union-attr]
    assert all(e["ok"] and e["height"] >= 1 and e["peers"] == 3 and e["round"] is not None for e in data["endpoints"])
    head = data["blocks"][0]
    assert head["quorum"] == 3 and head["seals"] >= 3
    assert {s.lower() for s in head["signers"]} <= {v.lower() for v in head["validators"]}
    assert {v["address"].lower() for v in data["validators"]} == {v.address.lower() for v in stack.spec.validators}
    assert all(v["last_sealed_block"] is not None for v in data["validators"])
    db = data["database"]
    assert db["pending"] == 0 and db["latency_s"]["n"] >= 1 and db["last_batch"]["block_number"] >= 1
    assert sum(p["records"] for p in db["per_minute"]) >= 1


@pytest.mark.skipif(CHROMIUM is None, reason="Debian 'chromium' not installed (apt-get install -y chromium)")
@pytest.mark.parametrize("width", [1280, 390])
def test_dashboard_renders_in_chromium(stack: Stack, anchored: str, tmp_path: Path, width: int) -> None:
    assert CHROMIUM is not None
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},1800"]
    url = stack.api_url() + "/dashboard"
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for section in ("validators", "blocks", "anchoring", "ingest"):
        assert f'<section id="{section}">' in dom.stdout
    assert "Records ingested per minute" in dom.stdout and "<svg" in dom.stdout
    assert stack.spec is not None and stack.spec.rpc_urls[0] in dom.stdout
    shot = tmp_path / f"dashboard-{width}.png"
    proc = subprocess.run([*base, f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.is_file() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    keep = os.environ.get("TRACELEDGER_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / shot.name)
