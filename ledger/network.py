"""Create and run a local network of validator processes (what ``traceledger network up`` uses).

``init_network`` writes, under a data directory, one folder per validator (``validator-<i>/`` with
``key`` (hex private key, mode 0600), ``node.json`` and the chain database) and ``network.json``
(chain id, validators, URLs, the governance admin account and the contract addresses its first two
transactions create: EnterpriseRegistry at nonce 0, AnchorRegistry at nonce 1). Running it again on
the same directory reuses what is there, so a restarted network keeps its chain.

Observers (non-validator nodes that sync the chain and serve JSON-RPC) live in ``observer-<i>/``
with the same files; every validator admits them (``observers`` in its ``node.json``).
:func:`add_node` adds a validator-to-be or an observer to an existing network: the new node's
configuration lists every existing node as a peer and the existing nodes dial it back when it
connects (see :mod:`ledger.transport`), so running nodes need no restart.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_keys import keys
from eth_utils import to_checksum_address

from contracts import CONTRACT_NAMES
from ledger.chain import DEFAULT_EPOCH_LENGTH, GenesisConfig
from ledger.node import contract_address
from provenance.crypto_profile import STANDARD, get_profile, network_manifest_fields

DEFAULT_CHAIN_ID = 88_1088
ADMIN_BALANCE_WEI = 10**30


@dataclass(frozen=True)
class ValidatorSpec:
    """One node of a local network (validator or observer): index (1-based), address, folder and ports."""

    index: int
    address: str
    data_dir: Path
    rpc_url: str
    p2p_port: int
    role: str = "validator"

    @property
    def name(self) -> str:
        """``validator-N`` or ``observer-N``: the node's folder name under the data dir."""
        return f"{self.role}-{self.index}"

    @property
    def config_path(self) -> Path:
        """The node's ``node.json``."""
        return self.data_dir / "node.json"

    @property
    def log_path(self) -> Path:
        """Where the launcher writes the node's stdout and stderr."""
        return self.data_dir / "node.log"


@dataclass(frozen=True)
class NetworkSpec:
    """A local network as written to ``network.json``."""

    data_dir: Path
    chain_id: int
    validators: tuple[ValidatorSpec, ...]
    admin_address: str
    admin_key_file: Path
    enterprise_registry: str
    anchor_registry: str
    observers: tuple[ValidatorSpec, ...] = ()
    #: WorkTicket and ReceivableToken: the admin's nonce-2 and nonce-3 contracts ("" if unknown)
    work_ticket: str = ""
    receivable_token: str = ""
    #: WarehouseReceipt: the admin's nonce-``CONTRACT_NAMES.index("WarehouseReceipt")`` contract ("" if unknown)
    warehouse_receipt: str = ""
    #: PriceIndex: the admin's nonce-``CONTRACT_NAMES.index("PriceIndex")`` contract ("" if unknown)
    price_index: str = ""
    #: the record layer's crypto profile, fixed at creation (``network.json`` ``cryptoProfile``): ``standard`` or
    #: ``sm`` (:mod:`provenance.crypto_profile`); the chain itself is secp256k1/keccak under both
    crypto_profile: str = STANDARD

    @property
    def rpc_urls(self) -> list[str]:
        """Every validator's JSON-RPC URL, in validator order."""
        return [v.rpc_url for v in self.validators]

    @property
    def nodes(self) -> tuple[ValidatorSpec, ...]:
        """Validators then observers."""
        return self.validators + self.observers

    def admin_key(self) -> str:
        """The governance admin's hex private key (read from ``admin.key``, mode 0600)."""
        return self.admin_key_file.read_text().strip()


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port on ``host`` (for tests)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _write_key(path: Path, key_hex: str) -> None:
    path.write_text(key_hex + "\n")
    os.chmod(path, 0o600)


def make_genesis(
    validators: list[bytes], admin_address: bytes, *, chain_id: int = DEFAULT_CHAIN_ID,
    epoch_length: int = DEFAULT_EPOCH_LENGTH, extra_alloc: dict[str, int] | None = None, timestamp: int | None = None,
) -> GenesisConfig:
    """The genesis of a TraceLedger network (``network up`` and ``traceledger network genesis`` both build it here).

    ``validators``: 20-byte addresses (sorted into the genesis); the governance admin ``admin_address`` is
    funded with :data:`ADMIN_BALANCE_WEI` (it deploys the contracts at nonces 0…3, see :func:`admin_contracts`);
    ``extra_alloc`` funds more accounts (``{"0x…": wei}``); ``timestamp`` in UNIX seconds (default now).
    Raises ValueError without validators or on a malformed address.
    """
    if not validators:
        raise ValueError("a network needs at least one validator")
    alloc = {bytes(admin_address): ADMIN_BALANCE_WEI}
    for address, wei in (extra_alloc or {}).items():
        alloc[bytes.fromhex(address.removeprefix("0x"))] = int(wei)
    return GenesisConfig(
        chain_id=chain_id,
        validators=tuple(sorted(bytes(v) for v in validators)),
        alloc=alloc,
        timestamp=int(time.time()) if timestamp is None else int(timestamp),
        epoch_length=epoch_length,
    )


def admin_contracts(admin_address: bytes) -> dict[str, str]:
    """Every contract's address (checksum) as the governance admin's transactions at nonces 0, 1, … create
    them, in ``contracts.CONTRACT_NAMES`` order (EnterpriseRegistry, AnchorRegistry, WorkTicket, …)."""
    return {name: to_checksum_address(contract_address(bytes(admin_address), nonce))
            for nonce, name in enumerate(CONTRACT_NAMES)}


def init_network(
    data_dir: str | Path, *, validators: int = 4, host: str = "127.0.0.1", rpc_base_port: int | None = 8545,
    p2p_base_port: int | None = 30303, chain_id: int = DEFAULT_CHAIN_ID, block_period_s: float = 1.0,
    request_timeout_s: float = 1.0, round_timeout_cap_s: float = 60.0, observers: int = 0,
    epoch_length: int = DEFAULT_EPOCH_LENGTH, extra_alloc: dict[str, int] | None = None,
    crypto_profile: str = STANDARD,
) -> NetworkSpec:
    """Write (or reuse) a network of ``validators`` nodes (and ``observers``) under ``data_dir``.

    Ports: validator ``i`` (1-based) serves JSON-RPC on ``rpc_base_port + i - 1`` and p2p on
    ``p2p_base_port + i - 1``; observers take the ports after the validators; ``None`` picks free ports
    (tests). ``round_timeout_cap_s`` caps the doubling round timeout (seconds); ``epoch_length`` is in
    blocks (votes reset at its multiples); ``extra_alloc`` funds more genesis accounts
    (``{"0x…": wei}``; genesis accounts may transact without registration, e.g. benchmark senders).
    ``crypto_profile`` (``standard`` / ``sm``) is written once into ``network.json`` and never changes; an existing
    data dir keeps the profile it was created with (the caller compares, see :class:`api.devnet.Stack`).

    Raises:
        UnknownProfile (ValueError): ``crypto_profile`` is not a known profile.
    """
    root = Path(data_dir).resolve()
    manifest = root / "network.json"
    if manifest.exists():
        return load_network(root)
    if validators < 1:
        raise ValueError("a network needs at least one validator")
    profile_fields = network_manifest_fields(crypto_profile)
    root.mkdir(parents=True, exist_ok=True)
    admin = keys.PrivateKey(secrets.token_bytes(32))
    admin_key_file = root / "admin.key"
    _write_key(admin_key_file, admin.to_hex())
    admin_address = admin.public_key.to_canonical_address()
    total = validators + observers
    all_keys = [keys.PrivateKey(secrets.token_bytes(32)) for _ in range(total)]
    node_keys = all_keys[:validators]
    rpc_ports = [rpc_base_port + i if rpc_base_port else free_port(host) for i in range(total)]
    p2p_ports = [p2p_base_port + i if p2p_base_port else free_port(host) for i in range(total)]
    genesis = make_genesis([k.public_key.to_canonical_address() for k in node_keys], admin_address,
                           chain_id=chain_id, epoch_length=epoch_length, extra_alloc=extra_alloc)
    contracts = admin_contracts(admin_address)
    registry = contracts["EnterpriseRegistry"]
    peers = [
        {"address": k.public_key.to_checksum_address(), "host": host, "port": p2p_ports[i]}
        for i, k in enumerate(node_keys)
    ]
    observer_addresses = [k.public_key.to_checksum_address() for k in all_keys[validators:]]
    specs: list[dict[str, Any]] = []
    observer_specs: list[dict[str, Any]] = []
    for i, key in enumerate(all_keys):
        role, index = ("validator", i + 1) if i < validators else ("observer", i - validators + 1)
        folder = root / f"{role}-{index}"
        folder.mkdir(parents=True, exist_ok=True)
        _write_key(folder / "key", key.to_hex())
        config = {
            "name": f"{role}-{index}", "data_dir": str(folder), "key_file": str(folder / "key"),
            "genesis": genesis.to_json(), "p2p": {"host": host, "port": p2p_ports[i]},
            "rpc": {"host": host, "port": rpc_ports[i]},
            "peers": [p for p in peers if p["address"] != key.public_key.to_checksum_address()],
            "observers": observer_addresses, "block_period_s": block_period_s,
            "request_timeout_s": request_timeout_s, "round_timeout_cap_s": round_timeout_cap_s,
            "permissioning": {"registry": registry},
        }
        (folder / "node.json").write_text(json.dumps(config, indent=2) + "\n")
        entry = {"index": index, "address": key.public_key.to_checksum_address(), "data_dir": str(folder),
                 "rpc_url": f"http://{host}:{rpc_ports[i]}", "p2p_port": p2p_ports[i]}
        (specs if role == "validator" else observer_specs).append(entry)
    manifest.write_text(json.dumps({
        "chainId": chain_id, "validators": specs, "observers": observer_specs,
        "admin": to_checksum_address(admin_address),
        "adminKeyFile": str(admin_key_file), "contracts": contracts,
        **profile_fields,
    }, indent=2) + "\n")
    return load_network(root)


def load_network(data_dir: str | Path) -> NetworkSpec:
    """Read ``network.json`` from ``data_dir``; raises FileNotFoundError if there is none."""
    root = Path(data_dir).resolve()
    raw: dict[str, Any] = json.loads((root / "network.json").read_text())
    return NetworkSpec(
        data_dir=root, chain_id=int(raw["chainId"]),
        validators=tuple(ValidatorSpec(v["index"], v["address"], Path(v["data_dir"]), v["rpc_url"], v["p2p_port"])
                         for v in raw["validators"]),
        admin_address=raw["admin"], admin_key_file=Path(raw["adminKeyFile"]),
        enterprise_registry=raw["contracts"]["EnterpriseRegistry"], anchor_registry=raw["contracts"]["AnchorRegistry"],
        observers=tuple(ValidatorSpec(v["index"], v["address"], Path(v["data_dir"]), v["rpc_url"], v["p2p_port"],
                                      "observer") for v in raw.get("observers", [])),
        work_ticket=raw["contracts"].get("WorkTicket") or to_checksum_address(
            contract_address(bytes.fromhex(raw["admin"][2:]), 2)),
        receivable_token=raw["contracts"].get("ReceivableToken") or to_checksum_address(
            contract_address(bytes.fromhex(raw["admin"][2:]), 3)),
        warehouse_receipt=raw["contracts"].get("WarehouseReceipt") or to_checksum_address(
            contract_address(bytes.fromhex(raw["admin"][2:]), CONTRACT_NAMES.index("WarehouseReceipt"))),
        price_index=raw["contracts"].get("PriceIndex") or to_checksum_address(
            contract_address(bytes.fromhex(raw["admin"][2:]), CONTRACT_NAMES.index("PriceIndex"))),
        crypto_profile=get_profile(raw.get("cryptoProfile")).name,
    )


def record_contracts(data_dir: str | Path, addresses: dict[str, str]) -> NetworkSpec:
    """Write contract addresses (``{"PriceIndex": "0x…"}``) into ``network.json``'s ``contracts`` and
    return the reloaded spec: for a contract added to an older network after its admin's nonce moved on."""
    root = Path(data_dir).resolve()
    manifest = root / "network.json"
    raw: dict[str, Any] = json.loads(manifest.read_text())
    raw.setdefault("contracts", {}).update({name: to_checksum_address(a) for name, a in addresses.items()})
    manifest.write_text(json.dumps(raw, indent=2) + "\n")
    return load_network(root)


def add_node(data_dir: str | Path, *, role: str = "validator", host: str = "127.0.0.1") -> ValidatorSpec:
    """Add a node to the network under ``data_dir`` and return its spec (free ports, fresh key).

    ``role="validator"``: a validator-to-be (``validator-<n+1>/``); it may connect once the validators
    voted it in (``qbft_proposeValidatorVote``), then syncs and starts sealing. ``role="observer"``:
    its address is appended to every node's ``observers`` allowlist (running nodes re-read it), so it
    can connect, sync and serve JSON-RPC at once. Raises ValueError for another role.
    """
    if role not in ("validator", "observer"):
        raise ValueError(f"role must be 'validator' or 'observer', not {role!r}")
    root = Path(data_dir).resolve()
    manifest = root / "network.json"
    raw: dict[str, Any] = json.loads(manifest.read_text())
    existing = raw["validators"] + raw.get("observers", [])
    template = json.loads((Path(raw["validators"][0]["data_dir"]) / "node.json").read_text())
    group = raw["validators"] if role == "validator" else raw.setdefault("observers", [])
    index = len(group) + 1
    key = keys.PrivateKey(secrets.token_bytes(32))
    address = key.public_key.to_checksum_address()
    folder = root / f"{role}-{index}"
    folder.mkdir(parents=True, exist_ok=True)
    _write_key(folder / "key", key.to_hex())
    rpc_port, p2p_port = free_port(host), free_port(host)
    observers = list(template.get("observers", [])) + ([address] if role == "observer" else [])
    config = dict(template)
    config.update({
        "name": f"{role}-{index}", "data_dir": str(folder), "key_file": str(folder / "key"),
        "p2p": {"host": host, "port": p2p_port}, "rpc": {"host": host, "port": rpc_port},
        "peers": [{"address": n["address"], "host": host, "port": n["p2p_port"]} for n in existing],
        "observers": observers,
    })
    config.pop("byzantine", None)
    (folder / "node.json").write_text(json.dumps(config, indent=2) + "\n")
    if role == "observer":
        for node in existing:
            path = Path(node["data_dir"]) / "node.json"
            other = json.loads(path.read_text())
            other["observers"] = sorted(set(other.get("observers", [])) | {address})
            path.write_text(json.dumps(other, indent=2) + "\n")
    entry = {"index": index, "address": address, "data_dir": str(folder), "rpc_url": f"http://{host}:{rpc_port}",
             "p2p_port": p2p_port}
    group.append(entry)
    manifest.write_text(json.dumps(raw, indent=2) + "\n")
    return ValidatorSpec(index, address, folder, entry["rpc_url"], p2p_port, role)


def start_validator(
    spec: ValidatorSpec, *, log_level: str = "INFO", extra_args: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start one node (validator or observer) as its own OS process, logging to ``<data_dir>/node.log``.

    ``extra_args`` go to ``python -m ledger.node`` (e.g. ``["--byzantine", "equivocate"]``).
    """
    log = open(spec.log_path, "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "ledger.node", "--config", str(spec.config_path), "--log-level", log_level,
         *(extra_args or [])],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


start_node = start_validator


def rpc(url: str, method: str, params: list[Any] | None = None, timeout: float = 5.0,
        headers: dict[str, str] | None = None) -> Any:
    """One JSON-RPC call (``headers``, e.g. ``Authorization``, added); raises RuntimeError on an error answer."""
    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []},
                        timeout=timeout, headers=headers).json()
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def wait_for_rpc(url: str, timeout: float = 60.0, min_block: int = 0) -> int:
    """Wait until ``url`` answers ``eth_blockNumber`` ≥ ``min_block``; returns the block number."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            number = int(rpc(url, "eth_blockNumber", timeout=2.0), 16)
            if number >= min_block:
                return number
        except Exception as exc:  # not up yet
            last_error = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not reach block {min_block} within {timeout:.0f} s ({last_error})")


def stop_processes(procs: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    """SIGTERM every process, then SIGKILL what is still running after ``timeout`` seconds."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
