"""``/docs`` and ``/redoc`` render in headless Chromium with the network cable pulled.

The API runs as its own uvicorn process (no chain needed); Chromium resolves every host except
127.0.0.1 to NOTFOUND (an air-gapped plant network) and writes a NetLog. Every request that the page
made (NetLog ``network_isolation_key`` of the page's site) must go to 127.0.0.1, and the DOM must hold
the rendered operations. Chromium's own background requests (update checks) carry another isolation
key and are not the page's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from ledger.network import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="Debian 'chromium' not installed (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("docs-api")
    port = free_port()
    env = {**os.environ, "TRACELEDGER_DATA_DIR": str(data), "TRACELEDGER_ANCHORING_ENABLED": "false"}
    env.pop("TRACELEDGER_RPC_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port",
                             str(port), "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/livez", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _page_requests(netlog: Path) -> list[str]:
    events = json.loads(netlog.read_text())["events"]
    urls = []
    for e in events:
        p = e.get("params") or {}
        if "url" in p and "method" in p and str(p.get("network_isolation_key", "")).startswith("http://127.0.0.1"):
            urls.append(p["url"])
    return urls


@pytest.mark.parametrize(("page", "rendered"), [
    ("/docs", 'data-path="/v1/work-tickets/{ticket_id}/steps"'),
    ("/redoc", "/v1/work-tickets/{ticket_id}/steps"),
])
def test_docs_render_offline_and_request_nothing_outside(api_url: str, tmp_path: Path, page: str,
                                                         rendered: str) -> None:
    assert CHROMIUM is not None
    netlog = tmp_path / "net.json"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync",
           "--disable-features=AutofillServerCommunication,OptimizationHints,MediaRouter", "--no-first-run",
           "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000",
           "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", f"--log-net-log={netlog}",
           "--virtual-time-budget=15000", "--dump-dom", api_url + page]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert rendered in dom.stdout, dom.stdout[:2000]
    assert "TraceLedger API" in dom.stdout
    requests = _page_requests(netlog)
    paths = {urlsplit(u).path for u in requests}
    assert {page, "/openapi.json"} <= paths, requests
    outside = [u for u in requests if urlsplit(u).hostname != "127.0.0.1"]
    assert not outside, f"{page} requested {outside}"
