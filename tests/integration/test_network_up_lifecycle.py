"""``traceledger network up`` as a newcomer meets it: banner, a second launcher refused, no orphans after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ledger.network import free_port

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        out.update(int(c) for c in (task / "children").read_text().split())
    return out


def test_kill_9_of_network_up_leaves_no_validator_or_api(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    api_port, rpc_port, p2p_port = free_port(), free_port(), free_port()
    args = [sys.executable, "-m", "api.cli.main", "network", "up", "--validators", "2", "--data-dir", str(data_dir),
            "--api-port", str(api_port), "--rpc-port", str(rpc_port), "--p2p-port", str(p2p_port)]
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        env = {k: v for k, v in os.environ.items() if k not in ("TRACELEDGER_PUBLIC_BASE_URL", "PUBLIC_BASE_URL")}
        up = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**env, "COLUMNS": "400"})
    try:
        deadline = time.monotonic() + 120
        while "Ctrl-C stops everything" not in log.read_text() and time.monotonic() < deadline:
            assert up.poll() is None, log.read_text()
            time.sleep(0.5)
        banner = log.read_text()
        assert "Ctrl-C stops everything" in banner, banner
        assert f"curl -s http://127.0.0.1:{api_port}/healthz" in banner
        assert "Authorization: Bearer" in banner and "traceledger --help" in banner
        assert f"QR codes encode http://127.0.0.1:{api_port}/id/<identifier>" in banner
        assert "warning   TRACELEDGER_PUBLIC_BASE_URL is" in banner  # loopback: phones cannot open the QR codes
        assert httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=10).status_code == 200
        assert (data_dir / "network.lock").read_text().strip() == str(up.pid)

        # a second launcher on the same data dir says so, starts nothing
        second = subprocess.run(args, capture_output=True, text=True, timeout=30, env={**os.environ, "COLUMNS": "400"})
        assert second.returncode != 0
        assert f"already running on {data_dir}" in second.stdout and f"pid {up.pid}" in second.stdout

        children = _children(up.pid)
        assert len(children) == 3, children  # 2 validators + the API
        up.send_signal(signal.SIGKILL)
        up.wait()
        deadline = time.monotonic() + 10
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [c for c in children if _alive(c)]
        # ports and lock are free again: a new launcher could start at once
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=2)
    finally:
        if up.poll() is None:
            up.terminate()  # a failed assertion above: let it stop its children in order
            up.wait(30)
