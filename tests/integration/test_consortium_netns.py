"""Four enterprises, four hosts: validators in four Linux network namespaces (10.77.0.1–4) joined by a bridge.

Each host is initialised on its own with ``traceledger node init`` (its key never leaves its data dir); the
genesis is assembled with ``traceledger network genesis`` from the four printed enode URLs only. The test
process stands for a host on the bridge that runs no validator (10.77.0.254). Faults: one host's link down
(the chain stays live), two down (it halts, no fork), both restored (it resumes; the seconds from link-up
until every host holds the new blocks are printed), an admin call without credentials from the outside
host (refused; accepted with the node's JWT), and the API failing over when its validator's host goes down.
Then a fifth member (10.77.0.5) joins as the README says: node init, the same network.json, voted in by
three members on their own hosts' admin listeners; it syncs and proposes blocks.

Needs root and iproute2 (CI runs as root); skipped with the reason otherwise. Namespaces, veths and the
bridge are removed even when the test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from ledger.network import rpc, stop_processes
from ledger.rpc_access import UNAUTHORIZED, make_token, read_secret

pytestmark = pytest.mark.integration

SUBNET = "10.77.0"
OUTSIDE = f"{SUBNET}.254"  # the test process: a host on the bridge that runs no validator
HOSTS = 5  # four founding members, and a fifth that joins later
TAG = f"{os.getpid() % 100000}"  # interface names stay within 15 characters and apart from parallel runs
PASSPHRASE = "consortium test passphrase"
CLI = [sys.executable, "-m", "api.cli.main"]
ADMIN = "0x" + "ad" * 20


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@dataclass
class Host:
    """One enterprise's machine: its namespace, host-side veth, address and data dir."""

    index: int
    netns: str
    veth: str
    data_dir: Path

    @property
    def ip(self) -> str:
        return f"{SUBNET}.{self.index}"

    @property
    def rpc_url(self) -> str:
        return f"http://{self.ip}:8545"

    def height(self) -> int:
        return int(rpc(self.rpc_url, "eth_blockNumber", timeout=3.0), 16)

    def block_hash(self, number: int) -> str:
        return rpc(self.rpc_url, "eth_getBlockByNumber", [hex(number), False], timeout=3.0)["hash"]

    def link(self, up: bool) -> None:
        _ip("link", "set", self.veth, "up" if up else "down")


def _skip_reason() -> str | None:
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    return None


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[list[Host]]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    bridge = f"tlbr{TAG}"
    made: list[Host] = []
    try:
        probe = _ip("link", "add", bridge, "type", "bridge", check=False)
        if probe.returncode != 0:
            pytest.skip(f"cannot create a bridge here: {probe.stderr.strip()}")
        _ip("addr", "add", f"{OUTSIDE}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for i in range(1, HOSTS + 1):
            host = Host(i, f"tl{TAG}n{i}", f"tl{TAG}v{i}", tmp_path / f"enterprise-{i}")
            made.append(host)
            added = _ip("netns", "add", host.netns, check=False)
            if added.returncode != 0:
                pytest.skip(f"cannot create network namespaces here: {added.stderr.strip()}")
            _ip("link", "add", host.veth, "type", "veth", "peer", "name", f"tl{TAG}p{i}")
            _ip("link", "set", f"tl{TAG}p{i}", "netns", host.netns)
            _ip("link", "set", host.veth, "master", bridge)
            _ip("link", "set", host.veth, "up")
            _ip("-n", host.netns, "addr", "add", f"{host.ip}/24", "dev", f"tl{TAG}p{i}")
            _ip("-n", host.netns, "link", "set", f"tl{TAG}p{i}", "up")
            _ip("-n", host.netns, "link", "set", "lo", "up")
        yield made
    finally:
        for host in made:
            _ip("netns", "del", host.netns, check=False)  # takes the namespace's veth end, and so the pair
            _ip("link", "del", host.veth, check=False)
        _ip("link", "del", bridge, check=False)


def _in(host: Host, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", host.netns, *cmd]


def _wait(what: str, predicate, timeout: float) -> float:  # noqa: ANN001 - a zero-argument callable
    """Poll ``predicate`` until true; returns the seconds it took; fails naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if predicate():
                return time.monotonic() - started
        except (httpx.HTTPError, RuntimeError, OSError):
            pass
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def _heights(hosts: list[Host]) -> list[int]:
    return [h.height() for h in hosts]


def _start(host: Host, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], object]:
    log = open(host.data_dir / "node.log", "wb")  # noqa: SIM115 - closed by the test
    command = _in(host, sys.executable, "-m", "ledger.node", "--config", str(host.data_dir / "node.json"))
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    return proc, log


def _found(hosts: list[Host], tmp_path: Path, env: dict[str, str], admin: str = ADMIN) -> list[str]:
    """Steps 1–2 of the README: ``node init`` on every host (in its namespace; only the enode URL comes out),
    then ``network genesis`` from the first four enode URLs, copied to every host. Returns every host's enode."""
    inits = [subprocess.Popen(_in(h, *CLI, "node", "init", "--data-dir", str(h.data_dir), "--listen",
                                  f"{h.ip}:30303", "--advertise", f"{h.ip}:30303", "--rpc", f"{h.ip}:8545",
                                  "--scrypt-n", str(2**14)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for h in hosts]
    enodes = []
    for proc in inits:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        enodes.append(out.splitlines()[0])
    assert [e.rsplit("@", 1)[1] for e in enodes] == [f"{h.ip}:30303" for h in hosts]
    network = tmp_path / "network.json"
    subprocess.run([*CLI, "network", "genesis", *[a for e in enodes[:4] for a in ("--validator", e)], "--admin",
                    admin, "--out", str(network), "--block-period", "1"], check=True, capture_output=True, text=True)
    for h in hosts:
        shutil.copy(network, h.data_dir / "network.json")
    return enodes


def test_four_enterprises_on_four_hosts(hosts: list[Host], tmp_path: Path) -> None:
    env = {**os.environ, "TRACELEDGER_NODE_PASSPHRASE": PASSPHRASE}
    _found(hosts, tmp_path, env)  # the fifth host is initialised too, but not in the genesis: it joins later
    newcomer, hosts = hosts[4], hosts[:4]
    started = [_start(h, env) for h in hosts]
    procs, logs = [p for p, _ in started], [log for _, log in started]
    try:
        _wait("all four hosts reach block 2", lambda: min(_heights(hosts)) >= 2, 120)

        # an admin call from a host that runs no validator: refused without credentials, accepted with the JWT
        vote = {"jsonrpc": "2.0", "id": 1, "method": "qbft_proposeValidatorVote", "params": ["0x" + "11" * 20, False]}
        refused = httpx.post(hosts[0].rpc_url, json=vote, timeout=5).json()
        assert refused["error"]["code"] == UNAUTHORIZED
        pending = httpx.post(hosts[0].rpc_url, json={"jsonrpc": "2.0", "id": 2, "method": "qbft_getPendingVotes"},
                             timeout=5).json()
        assert pending["error"]["code"] == UNAUTHORIZED
        with pytest.raises(httpx.ConnectError):  # the admin listener is on the host's loopback only
            httpx.post(f"http://{hosts[0].ip}:8645", json=vote, timeout=5)
        token = make_token(read_secret(hosts[0].data_dir / "rpc-jwt.secret"))
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.post(hosts[0].rpc_url, json=vote, headers=auth, timeout=5).json()["result"] is True
        assert rpc(hosts[0].rpc_url, "qbft_getPendingVotes", headers=auth) == {"0x" + "11" * 20: False}

        # one host cut: 3 of 4 is a quorum, the chain stays live
        hosts[3].link(False)
        cut_at = time.monotonic()
        start = max(_heights(hosts[:3]))
        _wait("the chain moves on with host 4 cut", lambda: min(_heights(hosts[:3])) >= start + 2, 60)

        # two hosts cut: no quorum, the chain halts and does not fork
        hosts[2].link(False)
        time.sleep(3)  # a block in flight when the link went down may still commit
        halted = _heights(hosts[:2])
        time.sleep(5)
        assert _heights(hosts[:2]) == halted, "the chain went on with only 2 of 4 validators"
        top = min(halted)
        assert hosts[0].block_hash(top) == hosts[1].block_hash(top)

        # restore: the chain resumes and both hosts catch up
        hosts[2].link(True)
        hosts[3].link(True)
        outage = time.monotonic() - cut_at
        resumed = _wait("the chain resumes", lambda: hosts[0].height() > max(halted), 180)
        caught_up = _wait("hosts 3 and 4 catch up", lambda: min(_heights(hosts)) > max(halted), 180) + resumed
        print(f"\nrejoin after link-up (host 4 cut for {outage:.0f} s, host 3 for less): chain resumed in "
              f"{resumed:.1f} s, every host past the halt height in {caught_up:.1f} s")
        common = min(_heights(hosts))
        assert len({h.block_hash(common) for h in hosts}) == 1, f"fork at block {common}"

        # the governance CLI from the outside host: only with the node's JWT secret
        listing = [*CLI, "validators", "list", "--rpc", hosts[0].rpc_url]
        assert subprocess.run(listing, capture_output=True, text=True, timeout=120).returncode != 0
        secret = {**os.environ, "TRACELEDGER_RPC_JWT_SECRET_FILE": str(hosts[0].data_dir / "rpc-jwt.secret")}
        shown = subprocess.run(listing, capture_output=True, text=True, timeout=120, env=secret)
        assert shown.returncode == 0 and "pending votes at" in shown.stdout, shown.stdout + shown.stderr

        # a fifth member: voted in by three members, each on its own host's loopback admin listener
        address = json.loads((newcomer.data_dir / "identity.json").read_text())["address"]
        votes = [subprocess.Popen(_in(h, *CLI, "validators", "add", address, "--rpc", "http://127.0.0.1:8645",
                                      "--no-wait"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for h in hosts[:3]]
        proc, log = _start(newcomer, env)
        procs.append(proc)
        logs.append(log)
        for vote_proc in votes:
            assert vote_proc.wait(timeout=120) == 0, vote_proc.communicate()[1]
        _wait("the fifth member is voted in", lambda: address in rpc(
            hosts[0].rpc_url, "qbft_getValidatorsByBlockNumber", ["latest"]), 120)
        _wait("the fifth member syncs and proposes a block", lambda: rpc(
            newcomer.rpc_url, "eth_getBlockByNumber", ["latest", False])["miner"] == address, 120)
        top = newcomer.height()
        assert newcomer.block_hash(top) == hosts[0].block_hash(top)
    finally:
        stop_processes(procs)
        for log in logs:
            log.close()


def test_the_api_fails_over_when_its_validators_host_goes_down(hosts: list[Host], tmp_path: Path) -> None:
    """The API reads and anchors through the first of TRACELEDGER_RPC_URLS (host 1); when host 1's link goes
    down, a certificate posted afterwards is still anchored, through the other hosts."""
    from eth_keys import keys

    from api.chain import deploy_contracts
    from ledger.network import free_port
    from provenance.samples import load_samples

    admin_key = keys.PrivateKey(os.urandom(32))
    env = {**os.environ, "TRACELEDGER_NODE_PASSPHRASE": PASSPHRASE}
    hosts = hosts[:4]
    _found(hosts, tmp_path, env, admin=admin_key.public_key.to_checksum_address())
    started = [_start(h, env) for h in hosts]
    procs, logs = [p for p, _ in started], [log for _, log in started]
    api_log = open(tmp_path / "api.log", "wb")  # noqa: SIM115
    try:
        _wait("all four hosts reach block 2", lambda: min(_heights(hosts)) >= 2, 120)
        contracts = deploy_contracts(hosts[0].rpc_url, admin_key.to_hex())
        port, token = free_port(), "consortium-admin-token"
        api_env = {**os.environ, "TRACELEDGER_DATA_DIR": str(tmp_path / "api"), "TRACELEDGER_ADMIN_TOKEN": token,
                   "TRACELEDGER_RPC_URL": hosts[0].rpc_url, "TRACELEDGER_RPC_URLS": ",".join(h.rpc_url for h in hosts),
                   "TRACELEDGER_ADMIN_KEY": admin_key.to_hex(), "TRACELEDGER_CHAIN_ID": str(881088),
                   "TRACELEDGER_ENTERPRISE_REGISTRY": contracts["EnterpriseRegistry"],
                   "TRACELEDGER_ANCHOR_REGISTRY": contracts["AnchorRegistry"],
                   "TRACELEDGER_WORK_TICKET": contracts["WorkTicket"],
                   "TRACELEDGER_RECEIVABLE_TOKEN": contracts["ReceivableToken"]}
        api_env.pop("DATABASE_URL", None)
        (tmp_path / "api").mkdir()
        procs.append(subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port),
                                       "--log-level", "warning"], stdout=api_log, stderr=subprocess.STDOUT,
                                      env=api_env))
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        _wait("the API answers", lambda: api.get("/livez").status_code == 200, 90)
        mill = api.post("/v1/enterprises", headers={"Authorization": f"Bearer {token}"},
                        json={"name": "Nordstahl Walzwerk GmbH", "roles": ["manufacturer"]})
        assert mill.status_code == 201, mill.text
        key = {"Authorization": f"Bearer {mill.json()['api_key']}"}
        samples = [doc for _, doc in load_samples()][:2]

        def anchored(identifier: str) -> bool:
            return api.get(f"/v1/identifiers/{quote(identifier, safe='/')}").json().get("status") == "anchored"

        first = api.post("/v1/coils/certificates", headers=key, json=samples[0])
        assert first.status_code == 201, first.text
        _wait("the first certificate is anchored", lambda: anchored(first.json()["identifier"]), 90)
        hosts[0].link(False)  # the API's own validator host goes away
        second = api.post("/v1/coils/certificates", headers=key, json=samples[1])
        assert second.status_code == 201, second.text
        _wait("anchored through the other hosts", lambda: anchored(second.json()["identifier"]), 90)
        assert api.get(f"/v1/verify/{quote(second.json()['identifier'], safe='/')}").json()["verified"] is True
    finally:
        stop_processes(procs)
        for log in [*logs, api_log]:
            log.close()
