"""Operator commands for the validator network, mounted on ``traceledger`` by :mod:`api.cli.main`.

::

    traceledger validators list [--rpc URL] [--block latest]
    traceledger validators add ADDRESS --rpc URL [--rpc URL …] [--wait/--no-wait] [--timeout 120]
    traceledger validators remove ADDRESS --rpc URL [--rpc URL …] [--wait/--no-wait]
    traceledger validators discard ADDRESS --rpc URL [--rpc URL …]
    traceledger faults [--scenario all] [--validators 4]

Governance follows Besu's QBFT API: each ``--rpc`` is one validator's JSON-RPC endpoint, and each
of those validators casts its own vote (``qbft_proposeValidatorVote``) in the next block it proposes;
the change takes effect once more than half of the validators voted the same way, and is visible
through ``qbft_getValidatorsByBlockNumber``.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from eth_utils import is_hex_address, to_checksum_address
from rich.console import Console
from rich.table import Table

#: HS256 secret for admin methods (``validators --jwt-secret-file`` / ``$TRACELEDGER_RPC_JWT_SECRET_FILE``)
_ADMIN_SECRET: dict[str, bytes] = {}


def rpc(url: str, method: str, params: list[Any] | None = None, timeout: float = 5.0) -> Any:  # noqa: ANN401
    """:func:`ledger.network.rpc`, imported on first use: ledger.network pulls in py-evm, which would add
    seconds to the start of every ``traceledger`` command (issue 17: ``network up`` answers a busy port in < 5 s).
    With a JWT secret given, every call carries a fresh admin token (see :mod:`ledger.rpc_access`)."""
    from ledger.network import rpc as network_rpc

    headers = None
    if "secret" in _ADMIN_SECRET:
        from ledger.rpc_access import make_token

        headers = {"Authorization": f"Bearer {make_token(_ADMIN_SECRET['secret'], ttl_s=60)}"}
    return network_rpc(url, method, params, timeout, headers=headers)

validators_app = typer.Typer(help="QBFT validator governance (votes in block headers).", no_args_is_help=True)


@validators_app.callback()
def validators_callback(
    jwt_secret_file: Annotated[str | None, typer.Option(
        envvar="TRACELEDGER_RPC_JWT_SECRET_FILE",
        help="the node's rpc-jwt.secret: sign admin calls (votes) for a public --rpc endpoint")] = None,
) -> None:
    """QBFT validator governance (votes in block headers)."""
    if jwt_secret_file:
        from ledger.rpc_access import read_secret

        try:
            _ADMIN_SECRET["secret"] = read_secret(jwt_secret_file)
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--jwt-secret-file") from exc
console = Console(soft_wrap=True)

RpcOption = Annotated[list[str], typer.Option("--rpc", help="JSON-RPC URL of a validator (repeat: one per voter)")]


def _address(value: str) -> str:
    if not is_hex_address(value):
        raise typer.BadParameter(f"{value!r} is not a 20-byte hex address", param_hint="ADDRESS")
    return to_checksum_address(value)


def _current(url: str, block: str = "latest") -> list[str]:
    return [to_checksum_address(a) for a in rpc(url, "qbft_getValidatorsByBlockNumber", [block])]


@validators_app.command("list")
def validators_list(
    rpc_url: Annotated[list[str] | None, typer.Option(
        "--rpc", help="JSON-RPC URL(s); pending votes are read from each [default: http://127.0.0.1:8545]")] = None,
    block: Annotated[str, typer.Option(help="block number (decimal or 0x…) or tag")] = "latest",
) -> None:
    """Print the validator set of a block and each node's pending votes."""
    rpc_url = rpc_url or ["http://127.0.0.1:8545"]
    tag = hex(int(block)) if block.isdigit() else block
    validators = _current(rpc_url[0], tag)
    table = Table("#", "validator", title=f"validators at {block} ({len(validators)})")
    for i, v in enumerate(validators, start=1):
        table.add_row(str(i), v)
    console.print(table)
    for url in rpc_url:
        votes = rpc(url, "qbft_getPendingVotes")
        shown = ", ".join(f"{'add' if add else 'remove'} {a}" for a, add in votes.items()) or "none"
        console.print(f"pending votes at {url}: {shown}")


def _vote(address: str, add: bool, urls: list[str], wait: bool, timeout: float) -> None:
    for url in urls:
        rpc(url, "qbft_proposeValidatorVote", [address, add])
        console.print(f"{url}: will vote to {'add' if add else 'remove'} {address}")
    if not wait:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (address in _current(urls[0])) == add:
            console.print(f"[green]{address} {'added to' if add else 'removed from'} the validator set[/green] "
                          f"at block {int(rpc(urls[0], 'eth_blockNumber'), 16)}")
            return
        time.sleep(0.5)
    console.print(f"[red]no change within {timeout:.0f} s: more than half of the validators must vote[/red]")
    raise typer.Exit(1)


@validators_app.command("add")
def validators_add(
    address: Annotated[str, typer.Argument(help="address of the validator to add")],
    rpc_url: RpcOption,
    wait: Annotated[bool, typer.Option(help="wait until the validator set changed")] = True,
    timeout: Annotated[float, typer.Option(help="seconds to wait")] = 120.0,
) -> None:
    """Vote, on every --rpc validator, to add ADDRESS to the validator set."""
    _vote(_address(address), True, rpc_url, wait, timeout)


@validators_app.command("remove")
def validators_remove(
    address: Annotated[str, typer.Argument(help="address of the validator to remove")],
    rpc_url: RpcOption,
    wait: Annotated[bool, typer.Option(help="wait until the validator set changed")] = True,
    timeout: Annotated[float, typer.Option(help="seconds to wait")] = 120.0,
) -> None:
    """Vote, on every --rpc validator, to remove ADDRESS from the validator set."""
    _vote(_address(address), False, rpc_url, wait, timeout)


@validators_app.command("discard")
def validators_discard(
    address: Annotated[str, typer.Argument(help="address whose pending vote is dropped")],
    rpc_url: RpcOption,
) -> None:
    """Drop the pending vote about ADDRESS on every --rpc validator (qbft_discardValidatorVote)."""
    for url in rpc_url:
        dropped = rpc(url, "qbft_discardValidatorVote", [_address(address)])
        console.print(f"{url}: {'discarded' if dropped else 'no pending vote'}")


#: the names of ledger.faults.SCENARIOS, listed in ``faults --help`` (tests/cli/test_help_texts.py keeps them equal)
FAULT_SCENARIOS = ("unknown_peer", "kill_one", "stop_two", "wipe", "partition", "equivocate", "garbage", "observer",
                   "governance", "silent_link")


def faults_command(
    scenario: Annotated[list[str] | None, typer.Option(
        help=f"scenario (repeatable): all, {', '.join(FAULT_SCENARIOS)} [default: all]")] = None,
    validators: Annotated[int, typer.Option(help="validator processes")] = 4,
) -> None:
    """Run the fault-injection harness (ledger/faults.py) on a throwaway network; exit 1 if a scenario fails."""
    from ledger.faults import main

    scenario = scenario or ["all"]
    argv = [f"--scenario={s}" for s in scenario] + [f"--validators={validators}"]
    raise typer.Exit(main(argv))


def _read_block_json(source: str) -> dict:
    """An ``eth_getBlockByNumber`` result from a file or ``-`` (stdin); a JSON-RPC envelope is unwrapped."""
    import json
    import sys
    from pathlib import Path

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"cannot read a JSON block from {source!r}: {exc}", param_hint="BLOCK_JSON") from exc
    if isinstance(data, dict) and isinstance(data.get("result"), dict):
        data = data["result"]
    if not isinstance(data, dict):
        raise typer.BadParameter("expected a block object (an eth_getBlockByNumber result)", param_hint="BLOCK_JSON")
    return data


def _trusted_validators(validators: str | None, genesis: str | None) -> list[str]:
    import json
    from pathlib import Path

    from provenance.qbft_header import validators_from_genesis

    if (validators is None) == (genesis is None):
        raise typer.BadParameter("give exactly one of --validators or --genesis", param_hint="--validators/--genesis")
    if validators is not None:
        out = [a.strip() for a in validators.split(",") if a.strip()]
        bad = [a for a in out if not is_hex_address(a)]
        if bad or not out:
            raise typer.BadParameter(f"not 20-byte hex addresses: {bad or validators!r}", param_hint="--validators")
        return [to_checksum_address(a) for a in out]
    try:
        return validators_from_genesis(json.loads(Path(genesis).read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"{genesis}: {exc}", param_hint="--genesis") from exc


def verify_block_command(
    block_json: Annotated[str, typer.Argument(help="an eth_getBlockByNumber result: a file, or - for stdin")],
    validators: Annotated[str | None, typer.Option(
        help="the trusted validator set of that height: ADDR[,ADDR…]")] = None,
    genesis: Annotated[str | None, typer.Option(
        help="take the trusted set from a genesis: Besu genesis JSON (extraData) or TraceLedger network.json")] = None,
    rpc_url: Annotated[str | None, typer.Option(
        "--rpc", help="also fetch the block of that number from this JSON-RPC endpoint and compare hashes")] = None,
) -> None:
    """Verify one QBFT (or Besu IBFT 2.0) block: recompute its hash and seal hash, recover every commit seal.

    Exit 0 only when the hash matches and a quorum of distinct trusted validators sealed the block;
    1 naming what failed; 2 for unreadable input. Headers of any fork (pre-London … Prague) are read.
    """
    from provenance.qbft_header import verify_sealed_block

    block = _read_block_json(block_json)
    trusted = _trusted_validators(validators, genesis)
    try:
        verdict = verify_sealed_block(block, trusted)
    except ValueError as exc:
        console.print(f"[red]unreadable block:[/red] {exc}")
        raise typer.Exit(2) from exc
    problems = list(verdict.problems)
    console.print(f"block {verdict.number}  fork {verdict.fork}  consensus {verdict.consensus}  round {verdict.round}")
    console.print(f"block hash  {verdict.block_hash}" + (
        "" if verdict.served_hash is None else
        ("  (matches the served hash)" if verdict.served_hash == verdict.block_hash else
         f"  (served {verdict.served_hash})")))
    console.print(f"seal hash   {verdict.seal_hash}")
    table = Table("seal", "signer", "verdict", title=f"commit seals ({len(verdict.seals)})")
    for s in verdict.seals:
        table.add_row(str(s.index), s.signer or "-", s.verdict)
    console.print(table)
    console.print(f"{len(verdict.sealed_by)} distinct validators of {len(verdict.validators)} sealed it; "
                  f"quorum is {verdict.quorum}")
    for note in verdict.notes:
        console.print(f"note: {note}")
    if rpc_url:
        try:
            served = rpc(rpc_url, "eth_getBlockByNumber", [hex(verdict.number), False])
        except Exception as exc:  # noqa: BLE001 - any transport or JSON-RPC failure is reported, not raised
            problems.append(f"--rpc {rpc_url}: {exc}")
        else:
            other = (served or {}).get("hash")
            if other != verdict.block_hash:
                problems.append(f"--rpc {rpc_url} serves block {verdict.number} with hash {other}")
            else:
                console.print(f"--rpc {rpc_url} serves the same block hash")
    if problems:
        for p in problems:
            console.print(f"[red]FAILED[/red] {p}")
        raise typer.Exit(1)
    console.print("[green]VERIFIED[/green] hash recomputed and sealed by a quorum of the trusted validators")


def export_genesis_command(
    data_dir: Annotated[str, typer.Option(help="the network's data dir (holds network.json)")] = "data",
    out: Annotated[str | None, typer.Option(help="write here instead of standard output")] = None,
) -> None:
    """Print the network's genesis as a Besu QBFT genesis file (config.qbft, extraData, alloc).

    The file starts a Besu network with the same chain id, validators, allocations and timing; see
    ledger/besu_genesis.py for the field mapping and why the genesis hash differs from ours.
    """
    import json
    from pathlib import Path

    from ledger.besu_genesis import besu_genesis
    from ledger.chain import GenesisConfig
    from ledger.network import load_network

    try:
        spec = load_network(data_dir)
        node = json.loads(spec.validators[0].config_path.read_text(encoding="utf-8"))
    except (OSError, KeyError, ValueError, IndexError) as exc:
        raise typer.BadParameter(f"{data_dir}: no readable network.json / node.json ({exc})",
                                 param_hint="--data-dir") from exc
    doc = besu_genesis(GenesisConfig.from_json(node["genesis"]),
                       block_period_s=float(node.get("block_period_s", 1.0)),
                       request_timeout_s=float(node.get("request_timeout_s", 1.0)))
    text = json.dumps(doc, indent=2) + "\n"
    if out:
        Path(out).write_text(text, encoding="utf-8")
        console.print(f"wrote {out} (Besu QBFT genesis: chain id {doc['config']['chainId']}, "
                      f"{len(GenesisConfig.from_json(node['genesis']).validators)} validators)")
    else:
        typer.echo(text, nl=False)


# ---------------------------------------------------------------- a consortium: one validator per host
node_app = typer.Typer(help="Run one validator node (--config), or make a node's key and config (init).",
                       invoke_without_command=True)


@node_app.callback()
def node_command(
    ctx: typer.Context,
    config: Annotated[str | None, typer.Option(help="node.json of one node (written by 'node init' or 'network up')")]
    = None,
    log_level: Annotated[str, typer.Option(help="log level")] = "INFO",
    passphrase_file: Annotated[str | None, typer.Option(
        help="file holding the node key's passphrase (else $TRACELEDGER_NODE_PASSPHRASE)")] = None,
) -> None:
    """Run one validator node in the foreground: traceledger node --config DATA_DIR/node.json."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        raise typer.BadParameter("give --config DATA_DIR/node.json (or run 'traceledger node init')",
                                 param_hint="--config")
    from ledger.node import main

    main(["--config", config, "--log-level", log_level,
          *(["--passphrase-file", passphrase_file] if passphrase_file else [])])


@node_app.command("init")
def node_init_command(
    data_dir: Annotated[str, typer.Option(help="the node's data dir (created; its files are 0600)")],
    listen: Annotated[str, typer.Option(help="p2p bind address HOST:PORT, e.g. 0.0.0.0:30303")],
    advertise: Annotated[str, typer.Option(help="p2p address other hosts dial, HOST:PORT (goes into the enode URL)")],
    rpc_address: Annotated[str | None, typer.Option(
        "--rpc", help="public JSON-RPC listener HOST:PORT [default: the advertised host, port 8545]")] = None,
    admin_rpc: Annotated[str | None, typer.Option(
        help="admin JSON-RPC listener HOST:PORT [default: 127.0.0.1, the RPC port + 100]")] = None,
    passphrase_file: Annotated[str | None, typer.Option(
        help="file holding the passphrase that encrypts the key (else $TRACELEDGER_NODE_PASSPHRASE)")] = None,
    scrypt_n: Annotated[int, typer.Option(help="scrypt work factor of the keystore (a power of two)")] = 2**18,
    name: Annotated[str | None, typer.Option(help="the node's name in logs [default: node-<address prefix>]")] = None,
) -> None:
    """Make this host's node key (encrypted keystore) and node.json; print its enode URL and validator address.

    Only the printed enode URL leaves the host: send it to whoever assembles the genesis
    ('traceledger network genesis --validator ENODE …').
    """
    from ledger.consortium import init_node, read_passphrase

    try:
        passphrase = read_passphrase(passphrase_file)
        identity = init_node(data_dir, listen=listen, advertise=advertise, passphrase=passphrase, rpc=rpc_address,
                             admin_rpc=admin_rpc, scrypt_n=scrypt_n, name=name)
    except (ValueError, OSError) as exc:
        console.print(f"[red]node init failed:[/red] {exc}")
        raise typer.Exit(2) from exc
    typer.echo(str(identity.enode))
    typer.echo(f"validator address {identity.enode.checksum_address}")
    typer.echo(f"wrote {identity.config_path} (paths relative to {identity.data_dir}), key.json (encrypted), "
               "rpc-jwt.secret, identity.json")
    typer.echo(f"next: copy the network.json made by 'traceledger network genesis' to {identity.data_dir}, then "
               f"'traceledger node --config {identity.config_path}'")


def network_genesis_command(
    validator: Annotated[list[str], typer.Option(
        help="a validator's enode URL, enode://<pubkey>@HOST:PORT, as 'node init' printed it (repeat)")],
    admin: Annotated[str, typer.Option(help="address of the governance admin (deploys the contracts; funded)")],
    out: Annotated[str, typer.Option(help="where to write the network file")] = "network.json",
    besu_genesis_file: Annotated[str | None, typer.Option(
        "--besu-genesis", help="also write the Besu-loadable QBFT genesis here")] = None,
    chain_id: Annotated[int | None, typer.Option(help="chain id [default: 881088]")] = None,
    block_period: Annotated[float, typer.Option(help="seconds between blocks")] = 1.0,
    request_timeout: Annotated[float, typer.Option(help="QBFT round-0 timeout, seconds")] = 1.0,
    alloc: Annotated[list[str] | None, typer.Option(help="fund another account: ADDRESS=WEI (repeat)")] = None,
) -> None:
    """Assemble the network's genesis from the validators' public identities only (no private key involved).

    Writes OUT (genesis, validators' enode URLs and addresses, contract addresses, timings): every host
    copies it into its data dir. --besu-genesis writes the same genesis for Hyperledger Besu.
    """
    import json
    from pathlib import Path

    from ledger.besu_genesis import besu_genesis
    from ledger.chain import GenesisConfig
    from ledger.consortium import assemble_network

    extra: dict[str, int] = {}
    for item in alloc or []:
        address, _, wei = item.partition("=")
        if not is_hex_address(address) or not wei.isdigit():
            raise typer.BadParameter(f"{item!r} is not ADDRESS=WEI", param_hint="--alloc")
        extra[address] = int(wei)
    try:
        doc = assemble_network(validator, admin=admin, chain_id=chain_id, block_period_s=block_period,
                               request_timeout_s=request_timeout, extra_alloc=extra)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--validator/--admin") from exc
    Path(out).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    typer.echo(f"wrote {out}: chain id {doc['chainId']}, {len(doc['validators'])} validators, "
               f"EnterpriseRegistry {doc['contracts']['EnterpriseRegistry']}")
    for v in doc["validators"]:
        typer.echo(f"validator {v['index']}  {v['address']}  {v['enode']}")
    if besu_genesis_file:
        besu = besu_genesis(GenesisConfig.from_json(doc["genesis"]), block_period_s=block_period,
                            request_timeout_s=request_timeout)
        Path(besu_genesis_file).write_text(json.dumps(besu, indent=2) + "\n", encoding="utf-8")
        typer.echo(f"wrote {besu_genesis_file} (Besu QBFT genesis)")
