"""`traceledger node init` / `network genesis` (ledger/consortium.py) and a consortium node's admin RPC, for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from eth_keys import keys

from ledger.consortium import Enode, assemble_network, init_node, load_node_config, load_node_key
from ledger.network import free_port, rpc, stop_processes, wait_for_rpc
from ledger.rpc_access import UNAUTHORIZED, make_token, read_secret
from provenance.qbft_header import validators_from_genesis

CLI = [sys.executable, "-m", "api.cli.main"]
ADMIN = "0x" + "ad" * 20
FAST = 2**12  # scrypt work factor for tests (the default 2**18 costs ~1 s and 256 MiB per key)


def test_enode_round_trip_and_refusals() -> None:
    key = keys.PrivateKey(b"\x01" * 32)
    enode = Enode(key.public_key.to_bytes(), "10.77.0.1", 30303)
    assert Enode.parse(str(enode)) == enode and enode.address == key.public_key.to_canonical_address()
    for bad in ("enode://abcd@10.0.0.1:30303", f"enode://{'00' * 64}@10.0.0.1:30303",
                f"enode://{enode.public_key.hex()}@10.0.0.1", f"enode://{enode.public_key.hex()}@10.0.0.1:70000",
                "10.0.0.1:30303"):
        with pytest.raises(ValueError):
            Enode.parse(bad)


def test_node_init_keeps_the_key_encrypted_and_the_config_relative(tmp_path: Path) -> None:
    identity = init_node(tmp_path / "mill", listen="0.0.0.0:30303", advertise="10.77.0.1:30303",
                         passphrase="correct horse", scrypt_n=FAST)
    root = tmp_path / "mill"
    config = json.loads((root / "node.json").read_text())
    assert config["data_dir"] == "." and config["key_file"] == "key.json" and config["network_file"] == "network.json"
    assert config["p2p"] == {"host": "0.0.0.0", "port": 30303, "advertise": {"host": "10.77.0.1", "port": 30303}}
    assert config["rpc"]["admin"] == {"host": "127.0.0.1", "port": 8645} and config["rpc"]["host"] == "10.77.0.1"
    keystore = json.loads((root / "key.json").read_text())
    assert keystore["crypto"]["kdf"] == "scrypt" and keystore["version"] == 3
    for name in ("key.json", "rpc-jwt.secret"):
        assert (root / name).stat().st_mode & 0o077 == 0
    assert root.stat().st_mode & 0o077 == 0
    os.environ["TRACELEDGER_NODE_PASSPHRASE"] = "correct horse"
    try:
        key = load_node_key({"key_file": str(root / "key.json")})
    finally:
        del os.environ["TRACELEDGER_NODE_PASSPHRASE"]
    assert key.public_key.to_bytes() == identity.enode.public_key
    for path in root.iterdir():  # the private key is nowhere in clear
        assert key.to_bytes().hex() not in path.read_text()
    wrong = tmp_path / "wrong"
    wrong.write_text("Tr0ub4dor\n")
    with pytest.raises(ValueError, match="cannot decrypt"):
        load_node_key({"key_file": str(root / "key.json"), "passphrase_file": str(wrong)})
    with pytest.raises(FileExistsError):
        init_node(root, listen="0.0.0.0:30303", advertise="10.77.0.1:30303", passphrase="x", scrypt_n=FAST)
    with pytest.raises(ValueError, match="advertise"):
        init_node(tmp_path / "b", listen="0.0.0.0:1", advertise="0.0.0.0:1", passphrase="x", scrypt_n=FAST)


def test_genesis_from_public_identities_and_a_moved_data_dir(tmp_path: Path) -> None:
    enodes = [str(init_node(tmp_path / f"n{i}", listen=f"10.77.0.{i}:30303", advertise=f"10.77.0.{i}:30303",
                            passphrase="pw", scrypt_n=FAST).enode) for i in (1, 2, 3)]
    network = assemble_network(enodes, admin=ADMIN, chain_id=4242)
    assert validators_from_genesis(network) == sorted(
        (v["address"] for v in network["validators"]), key=lambda a: bytes.fromhex(a[2:]))
    assert network["genesis"]["alloc"] == {ADMIN: str(10**30)} and network["chainId"] == 4242
    with pytest.raises(ValueError, match="twice"):
        assemble_network([enodes[0], enodes[0]], admin=ADMIN)
    moved = tmp_path / "elsewhere"
    (tmp_path / "n2").rename(moved)  # a config relative to its data dir survives a move
    (moved / "network.json").write_text(json.dumps(network))
    config = load_node_config(moved / "node.json")
    assert config["data_dir"] == str(moved) and config["key_file"] == str(moved / "key.json")
    assert {p["host"] for p in config["peers"]} == {"10.77.0.1", "10.77.0.2", "10.77.0.3"}
    assert config["permissioning"]["registry"] == network["contracts"]["EnterpriseRegistry"]


def test_cli_genesis_writes_the_besu_variant(tmp_path: Path) -> None:
    env = {**os.environ, "TRACELEDGER_NODE_PASSPHRASE": "pw"}
    out = subprocess.run([*CLI, "node", "init", "--data-dir", str(tmp_path / "a"), "--listen", "0.0.0.0:30303",
                          "--advertise", "10.77.0.1:30303", "--scrypt-n", str(FAST)],
                         capture_output=True, text=True, env=env, check=True).stdout
    enode = out.splitlines()[0]
    assert enode.startswith("enode://") and "validator address 0x" in out
    subprocess.run([*CLI, "network", "genesis", "--validator", enode, "--admin", ADMIN, "--out",
                    str(tmp_path / "network.json"), "--besu-genesis", str(tmp_path / "besu.json")],
                   capture_output=True, text=True, check=True)
    besu = json.loads((tmp_path / "besu.json").read_text())
    assert validators_from_genesis(besu) == [Enode.parse(enode).checksum_address] and "qbft" in besu["config"]


def test_a_consortium_node_runs_and_guards_its_admin_rpc(tmp_path: Path) -> None:
    """One validator initialised with node init, genesis from its enode: blocks are made; a caller of the
    public listener needs the JWT for votes (a vote to drop a non-member: never cast, the chain stays live) and
    peer management; the loopback admin listener does not."""
    p2p, rpc_port, admin_port = free_port(), free_port(), free_port()
    root = tmp_path / "node"
    identity = init_node(root, listen=f"127.0.0.1:{p2p}", advertise=f"127.0.0.1:{p2p}", passphrase="pw",
                         rpc=f"127.0.0.1:{rpc_port}", admin_rpc=f"127.0.0.1:{admin_port}", scrypt_n=FAST)
    network = assemble_network([str(identity.enode)], admin=ADMIN, block_period_s=0.5)
    (root / "network.json").write_text(json.dumps(network))
    (tmp_path / "pass").write_text("pw\n")
    log = open(tmp_path / "node.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([*CLI, "node", "--config", str(root / "node.json"), "--passphrase-file",
                             str(tmp_path / "pass")], stdout=log, stderr=subprocess.STDOUT)
    public, admin = f"http://127.0.0.1:{rpc_port}", f"http://127.0.0.1:{admin_port}"
    try:
        wait_for_rpc(public, timeout=90, min_block=2)
        vote = {"jsonrpc": "2.0", "id": 1, "method": "qbft_proposeValidatorVote", "params": ["0x" + "11" * 20, False]}
        assert httpx.post(public, json=vote).json()["error"]["code"] == UNAUTHORIZED
        token = make_token(read_secret(root / "rpc-jwt.secret"))
        assert httpx.post(public, json=vote, headers={"Authorization": f"Bearer {token}"}).json()["result"] is True
        assert rpc(admin, "qbft_getPendingVotes") == {"0x1111111111111111111111111111111111111111": False}
        info = rpc(admin, "admin_nodeInfo")
        assert info["enode"] == str(identity.enode)
        other = Enode(keys.PrivateKey(b"\x07" * 32).public_key.to_bytes(), "127.0.0.1", free_port())
        assert rpc(admin, "admin_addPeer", [str(other)]) is True
        assert [p["id"] for p in rpc(admin, "admin_peers")] == [other.checksum_address]
        assert rpc(admin, "admin_removePeer", [str(other)]) is True and rpc(admin, "admin_peers") == []
        with pytest.raises(RuntimeError, match="-32602"):
            rpc(admin, "admin_addPeer", ["enode://nope@1.2.3.4:5"])
        head = int(rpc(public, "eth_blockNumber"), 16)
        deadline = time.monotonic() + 60
        while int(rpc(public, "eth_blockNumber"), 16) <= head and time.monotonic() < deadline:
            time.sleep(0.2)
        assert int(rpc(public, "eth_blockNumber"), 16) > head
    finally:
        stop_processes([proc])
        log.close()


def test_dial_back_uses_the_advertised_port_and_remove_peer_stops_dialling() -> None:
    """A node bound to one port but advertising another (NAT) is dialled back at the advertised one."""
    import asyncio

    from ledger.transport import PeerAddress, Transport

    key_a, key_b = keys.PrivateKey(b"\x0a" * 32), keys.PrivateKey(b"\x0b" * 32)
    addr_a, addr_b = key_a.public_key.to_canonical_address(), key_b.public_key.to_canonical_address()

    def transport(key: keys.PrivateKey, port: int, peers: list, advertise: int | None = None) -> Transport:
        return Transport(chain_id=7, address=key.public_key.to_canonical_address(),
                         sign=lambda d: key.sign_msg_hash(d).to_bytes(), host="127.0.0.1", port=port, peers=peers,
                         allowed=lambda: {addr_a, addr_b}, on_frame=lambda *a: None, advertise_port=advertise)

    async def scenario() -> None:
        port_a, port_b, advertised_b = free_port(), free_port(), free_port()
        a = transport(key_a, port_a, [])
        b = transport(key_b, port_b, [PeerAddress(addr_a, "127.0.0.1", port_a)], advertise=advertised_b)
        await a.start()
        await b.start()
        try:
            deadline = time.monotonic() + 10
            while addr_b not in a.peers and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert a.peers[addr_b].port == advertised_b  # not port_b, where b merely binds
            assert b.remove_peer(addr_a) and addr_a not in b.peers and not b.remove_peer(addr_a)
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(scenario())
