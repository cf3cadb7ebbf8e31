"""One validator per enterprise, each on its own host: node keys made where they live, genesis from public facts.

Hyperledger Besu's flow is the anchor (``besu operator generate-blockchain-config`` makes keys on one
machine; here every host makes its own and only public identities travel):

1. on every host, ``traceledger node init --data-dir D --listen HOST:PORT --advertise HOST:PORT``
   (:func:`init_node`) makes the node key, stores it **encrypted** as a Web3 Secret Storage (V3) keystore
   (``key.json``, scrypt, eth-account), writes ``node.json`` whose paths are relative to ``D``, and prints
   the node's public identity: ``enode://<128 hex public key>@ADVERTISED_HOST:PORT`` (Besu's enode URL,
   the key without its ``04`` prefix) and the validator address (the last 20 bytes of its Keccak-256);
2. one member collects the enode URLs and runs ``traceledger network genesis --validator ENODE …
   --admin ADDRESS`` (:func:`assemble_network`): ``network.json`` holds the genesis (built by
   :func:`ledger.network.make_genesis`, the very code ``network up`` uses), every validator's enode and
   address, the contracts' addresses and the consensus timings; ``--besu-genesis`` also writes the
   Besu-loadable genesis (:func:`ledger.besu_genesis.besu_genesis`);
3. every host copies that ``network.json`` into ``D`` and runs ``traceledger node --config D/node.json``:
   :func:`load_node_config` resolves the relative paths and takes the genesis, the timings, the
   permissioning registry and the peers (every other validator's advertised address) from it.

The listen (bind) address and the advertised address are separate (``p2p.host``/``p2p.port`` versus
``p2p.advertise``): other nodes dial the advertised one (it is what the enode URL and the peer list carry,
and what the handshake announces as the port to dial back), so a node behind NAT or with split
public/private addresses binds ``0.0.0.0`` and advertises the address its peers reach.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coincurve
from eth_keys import keys
from eth_utils import keccak, to_canonical_address, to_checksum_address

#: Web3 Secret Storage scrypt work factor (geth's and eth-account's standard ``n``; 256 MiB, ~1 s to decrypt).
DEFAULT_SCRYPT_N = 2**18
#: Environment variable holding the keystore passphrase (else ``--passphrase-file`` / ``passphrase_file``).
PASSPHRASE_ENV = "TRACELEDGER_NODE_PASSPHRASE"
KEYSTORE_FILE = "key.json"
JWT_SECRET_FILE = "rpc-jwt.secret"
NETWORK_FILE = "network.json"
IDENTITY_FILE = "identity.json"
#: Default JSON-RPC admin listener (loopback only): the public RPC port plus this.
ADMIN_PORT_OFFSET = 100


@dataclass(frozen=True)
class Enode:
    """A node's public identity and advertised address: ``enode://<pubkey hex>@host:port`` (Besu / devp2p)."""

    public_key: bytes  # 64 bytes, uncompressed secp256k1 without the 0x04 prefix
    host: str
    port: int

    @property
    def address(self) -> bytes:
        """The 20-byte validator (node) address: Keccak-256 of the public key, last 20 bytes."""
        return keccak(self.public_key)[12:]

    @property
    def checksum_address(self) -> str:
        """:attr:`address` as an EIP-55 checksum string."""
        return to_checksum_address(self.address)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"enode://{self.public_key.hex()}@{host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Enode:
        """Read ``enode://<128 hex digits>@HOST:PORT``; raises ValueError naming what is wrong (not a point
        of the curve, missing port, port out of range)."""
        if not isinstance(text, str) or not text.startswith("enode://") or "@" not in text:
            raise ValueError(f"{str(text)[:80]!r} is not an enode URL (enode://<128 hex public key>@HOST:PORT)")
        key_hex, _, where = text[len("enode://"):].partition("@")
        where = where.split("?", 1)[0]  # Besu's ?discport=… is not used here
        try:
            public_key = bytes.fromhex(key_hex)
            if len(public_key) != 64:
                raise ValueError(f"{len(public_key)} bytes, not 64")
            coincurve.PublicKey(b"\x04" + public_key)  # raises unless the point lies on secp256k1
        except Exception as exc:
            raise ValueError(f"enode public key must be 128 hex digits of a secp256k1 point: {exc}") from exc
        host, port = parse_host_port(where, "enode")
        return cls(public_key, host, port)


def parse_host_port(text: str, name: str = "address") -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) → ``(host, port)``; ValueError naming ``name`` otherwise."""
    host, sep, port_text = str(text).rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{name} must be HOST:PORT with a port in 1…65535, got {text!r}")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP literal or ``localhost``) only reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def read_passphrase(passphrase_file: str | Path | None) -> str:
    """The keystore passphrase: the first line of ``passphrase_file`` (trailing newline stripped), else
    ``$TRACELEDGER_NODE_PASSPHRASE``; raises ValueError when neither is given or it is empty."""
    if passphrase_file is not None:
        text = Path(passphrase_file).read_text(encoding="utf-8").splitlines()
        value = text[0] if text else ""
    else:
        value = os.environ.get(PASSPHRASE_ENV, "")
    if not value:
        raise ValueError(f"no passphrase: give --passphrase-file FILE or set {PASSPHRASE_ENV}")
    return value


@dataclass(frozen=True)
class NodeIdentity:
    """What ``node init`` prints: the enode URL, the validator address and where the files are."""

    enode: Enode
    data_dir: Path
    config_path: Path

    def to_json(self) -> dict[str, Any]:
        """``{"enode": "enode://…", "address": "0x…"}`` (the public identity, also written to identity.json)."""
        return {"enode": str(self.enode), "address": self.enode.checksum_address}


def init_node(
    data_dir: str | Path, *, listen: str, advertise: str, passphrase: str, rpc: str | None = None,
    admin_rpc: str | None = None, scrypt_n: int = DEFAULT_SCRYPT_N, name: str | None = None,
) -> NodeIdentity:
    """Make a node's key and configuration in ``data_dir`` (created; refused when it already holds a key).

    Writes ``key.json`` (Web3 Secret Storage V3, scrypt with ``n = scrypt_n``, mode 0600), ``rpc-jwt.secret``
    (32 random bytes hex, 0600: the HS256 secret of the JSON-RPC admin methods, see :mod:`ledger.rpc_access`),
    ``identity.json`` and ``node.json`` (paths relative to ``data_dir``; ``network_file`` names the
    ``network.json`` to copy in later). ``listen``/``advertise``/``rpc``/``admin_rpc`` are ``HOST:PORT``;
    ``rpc`` defaults to the advertised host and port 8545, ``admin_rpc`` to ``127.0.0.1`` at the RPC port
    plus :data:`ADMIN_PORT_OFFSET`. Raises ValueError for a malformed address, FileExistsError when a key is there.
    """
    from eth_account import Account

    listen_host, listen_port = parse_host_port(listen, "--listen")
    adv_host, adv_port = parse_host_port(advertise, "--advertise")
    if adv_host in ("0.0.0.0", "::"):
        raise ValueError("--advertise must be an address other hosts can dial, not a wildcard bind address")
    rpc_host, rpc_port = parse_host_port(rpc, "--rpc") if rpc else (adv_host, 8545)
    admin_host, admin_port = (parse_host_port(admin_rpc, "--admin-rpc") if admin_rpc
                              else ("127.0.0.1", rpc_port + ADMIN_PORT_OFFSET))
    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    if (root / KEYSTORE_FILE).exists():
        raise FileExistsError(f"{root / KEYSTORE_FILE} exists: this data dir already holds a node key")
    key = keys.PrivateKey(secrets.token_bytes(32))
    keystore = Account.encrypt(key.to_bytes(), passphrase, kdf="scrypt", iterations=scrypt_n)
    _write_private(root / KEYSTORE_FILE, json.dumps(keystore) + "\n")
    _write_private(root / JWT_SECRET_FILE, secrets.token_hex(32) + "\n")
    enode = Enode(key.public_key.to_bytes(), adv_host, adv_port)
    allow_hosts = sorted({"localhost", "127.0.0.1", rpc_host, adv_host} - {"0.0.0.0", "::"})
    config = {
        "name": name or f"node-{enode.checksum_address[2:10].lower()}",
        "data_dir": ".", "key_file": KEYSTORE_FILE, "network_file": NETWORK_FILE,
        "p2p": {"host": listen_host, "port": listen_port, "advertise": {"host": adv_host, "port": adv_port}},
        "rpc": {"host": rpc_host, "port": rpc_port, "jwt_secret_file": JWT_SECRET_FILE,
                "host_allowlist": allow_hosts, "cors_origins": [],
                "admin": {"host": admin_host, "port": admin_port}},
        "peers": [], "observers": [],
    }
    config_path = root / "node.json"
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    identity = NodeIdentity(enode, root.resolve(), config_path.resolve())
    (root / IDENTITY_FILE).write_text(json.dumps(identity.to_json(), indent=2) + "\n")
    return identity


def assemble_network(
    validators: list[str], *, admin: str, chain_id: int | None = None, block_period_s: float = 1.0,
    request_timeout_s: float = 1.0, round_timeout_cap_s: float = 60.0, epoch_length: int | None = None,
    extra_alloc: dict[str, int] | None = None, timestamp: int | None = None,
) -> dict[str, Any]:
    """The ``network.json`` of a consortium from public facts only: validators' enode URLs and the admin address.

    Answer ``{chainId, genesis (GenesisConfig JSON), validators: [{index, address, enode}], admin,
    contracts, block_period_s, request_timeout_s, round_timeout_cap_s}``: readable by
    ``traceledger verify-block --genesis`` and ``verify-bundle --validators`` as well. Raises ValueError for
    a malformed enode or address, a repeated validator, or two validators advertising one address.
    """
    from eth_utils import is_hex_address

    from ledger.chain import DEFAULT_EPOCH_LENGTH
    from ledger.network import DEFAULT_CHAIN_ID, admin_contracts, make_genesis

    enodes = [Enode.parse(v) for v in validators]
    if not enodes:
        raise ValueError("give at least one --validator ENODE")
    addresses = [e.address for e in enodes]
    if len(set(addresses)) != len(addresses):
        raise ValueError("a validator is listed twice (same public key)")
    if len({(e.host, e.port) for e in enodes}) != len(enodes):
        raise ValueError("two validators advertise the same HOST:PORT")
    if not is_hex_address(admin):
        raise ValueError(f"--admin must be a 20-byte hex address, got {admin!r}")
    admin_address = to_canonical_address(admin)
    genesis = make_genesis(addresses, admin_address, chain_id=chain_id or DEFAULT_CHAIN_ID,
                           epoch_length=epoch_length or DEFAULT_EPOCH_LENGTH, extra_alloc=extra_alloc,
                           timestamp=timestamp)
    return {
        "chainId": genesis.chain_id, "genesis": genesis.to_json(),
        "validators": [{"index": i, "address": e.checksum_address, "enode": str(e)}
                       for i, e in enumerate(enodes, start=1)],
        "admin": to_checksum_address(admin_address), "contracts": admin_contracts(admin_address),
        "block_period_s": block_period_s, "request_timeout_s": request_timeout_s,
        "round_timeout_cap_s": round_timeout_cap_s,
    }


def load_node_config(path: str | Path) -> dict[str, Any]:
    """Read a ``node.json`` and resolve it into the shape :class:`ledger.node.Node` runs.

    Relative ``data_dir``, ``key_file``, ``network_file``, ``passphrase_file`` and ``rpc.jwt_secret_file``
    are taken relative to the folder of ``node.json``. With ``network_file`` (a consortium node), the
    genesis, the timings (unless node.json sets them), the permissioning registry and the peers (every
    validator of the network file but this node, at its advertised address, plus node.json's own
    ``peers``) come from that file. A ``node.json`` written by ``network up`` (absolute paths, genesis
    inline) comes back unchanged. Raises OSError / ValueError / KeyError on a missing or malformed file.
    """
    config_path = Path(path).resolve()
    config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
    base = config_path.parent

    def resolve(value: str) -> str:
        return str((base / value).resolve()) if not Path(value).is_absolute() else value

    config["data_dir"] = resolve(config.get("data_dir", "."))
    config["key_file"] = resolve(config["key_file"])
    if config.get("passphrase_file"):
        config["passphrase_file"] = resolve(config["passphrase_file"])
    rpc_config = dict(config.get("rpc") or {})
    if rpc_config.get("jwt_secret_file"):
        rpc_config["jwt_secret_file"] = resolve(rpc_config["jwt_secret_file"])
    config["rpc"] = rpc_config
    if config.get("network_file"):
        network_path = Path(resolve(config["network_file"]))
        if not network_path.exists():
            raise FileNotFoundError(f"{network_path}: copy the network.json made by 'traceledger network genesis' "
                                    "into the node's data dir")
        network = json.loads(network_path.read_text(encoding="utf-8"))
        config["network_file"] = str(network_path)
        config["genesis"] = network["genesis"]
        for timing in ("block_period_s", "request_timeout_s", "round_timeout_cap_s"):
            if timing in network:
                config.setdefault(timing, network[timing])
        config.setdefault("permissioning", {"registry": network.get("contracts", {}).get("EnterpriseRegistry")})
        peers = {p["address"].lower(): p for p in config.get("peers", [])}
        for entry in network.get("validators", []):
            enode = Enode.parse(entry["enode"])
            peers.setdefault(enode.checksum_address.lower(),
                             {"address": enode.checksum_address, "host": enode.host, "port": enode.port,
                              "enode": str(enode)})
        config["peers"] = list(peers.values())
    return config


def load_node_key(config: dict[str, Any]) -> keys.PrivateKey:
    """The node's private key from ``config["key_file"]``: a V3 keystore (decrypted with
    :func:`read_passphrase` of ``config["passphrase_file"]``) or, as ``network up`` writes it, a hex key.
    Raises ValueError on a wrong passphrase or an unreadable key."""
    text = Path(config["key_file"]).read_text(encoding="utf-8").strip()
    if text.startswith("{"):
        from eth_account import Account

        try:
            raw = Account.decrypt(json.loads(text), read_passphrase(config.get("passphrase_file")))
        except ValueError as exc:
            raise ValueError(f"{config['key_file']}: cannot decrypt the node key ({exc})") from exc
        return keys.PrivateKey(bytes(raw))
    return keys.PrivateKey(bytes.fromhex(text.removeprefix("0x")))


def node_enode(config: dict[str, Any], public_key: bytes) -> Enode:
    """This node's enode URL: its public key at the advertised address (``p2p.advertise``, else the bind one)."""
    p2p = config["p2p"]
    advertise = p2p.get("advertise") or {}
    return Enode(public_key, str(advertise.get("host", p2p["host"])), int(advertise.get("port", p2p["port"])))
