"""Pre-flight of ``traceledger network up``: busy ports and a second launcher stop it in one line, fast."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from api.ports import DataDirLock, PortInUse, PortNeed, check_ports, port_holder, port_is_free
from ledger.network import free_port

TRACELEDGER = [sys.executable, "-m", "api.cli.main"]


def _listener() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


def test_busy_port_is_named_with_its_holder() -> None:
    s, port = _listener()
    with s:
        assert not port_is_free(port)
        holder = port_holder(port)
        assert holder is not None and holder.startswith(f"pid {os.getpid()} (")
        with pytest.raises(PortInUse) as info:
            check_ports([PortNeed(free_port(), "x", "h"), PortNeed(port, "the API", "choose another")])
        assert info.value.port == port and f"port {port} (the API)" in str(info.value)
        assert f"pid {os.getpid()}" in str(info.value)
    assert port_is_free(port)


def test_second_lock_on_a_data_dir_names_the_running_pid(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path)
    first.acquire()
    # another process (flock locks are per open file description: a second process is the real case)
    code = textwrap.dedent(f"""
        from pathlib import Path
        from api.ports import DataDirLock, DataDirBusy
        try:
            DataDirLock(Path({str(tmp_path)!r})).acquire()
        except DataDirBusy as exc:
            print(exc)
            raise SystemExit(3)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 3, out.stderr
    assert f"pid {os.getpid()}" in out.stdout and "already running" in out.stdout
    first.release()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "network.lock").read_text().strip() != str(os.getpid())  # the new holder wrote its pid


@pytest.mark.parametrize("which", ["api", "rpc"])
def test_network_up_with_a_taken_port_stops_in_one_line_under_5s(tmp_path: Path, which: str) -> None:
    s, port = _listener()
    ports = {"api": free_port(), "rpc": free_port(), "p2p": free_port()}
    ports[which] = port
    with s:
        start = time.monotonic()
        out = subprocess.run([*TRACELEDGER, "network", "up", "--validators", "1", "--data-dir", str(tmp_path / "d"),
                              "--api-port", str(ports["api"]), "--rpc-port", str(ports["rpc"]),
                              "--p2p-port", str(ports["p2p"])],
                             capture_output=True, text=True, timeout=30, env={**os.environ, "COLUMNS": "400"})
        elapsed = time.monotonic() - start
    assert out.returncode != 0
    assert elapsed < 5.0, elapsed
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert f"port {port}" in lines[0] and f"pid {os.getpid()}" in lines[0]
    assert "Traceback" not in out.stderr
    assert not list((tmp_path / "d").glob("validator-1/node.log"))  # no validator was started


def test_lifeline_watchdog_ends_an_orphaned_child(tmp_path: Path) -> None:
    """Without PR_SET_PDEATHSIG the child's own watchdog notices the parent's death (re-parenting)."""
    code = textwrap.dedent("""
        import os, subprocess, sys, time
        from api import lifeline
        child = subprocess.Popen(lifeline.command(os.getpid(), "http.server", ["0", "--bind", "127.0.0.1"]),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    time.sleep(1.0)
    assert _alive(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_restart_checks_the_ports_fixed_in_network_json_not_the_flags(tmp_path: Path) -> None:
    from api.ports import launch_port_needs

    fresh = launch_port_needs(tmp_path, validators=2, api_port=8000, rpc_port=8545, p2p_port=30303)
    assert [n.port for n in fresh] == [8000, 8545, 30303, 8546, 30304]
    (tmp_path / "network.json").write_text(json.dumps({"validators": [
        {"index": 1, "rpc_url": "http://127.0.0.1:9545", "p2p_port": 31303}]}))
    kept = launch_port_needs(tmp_path, validators=4, api_port=8000, rpc_port=8545, p2p_port=30303)
    assert [(n.port, n.purpose) for n in kept] == [(8000, "the API"), (9545, "JSON-RPC of validator 1"),
                                                   (31303, "p2p of validator 1")]
