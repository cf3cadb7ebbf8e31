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


def rpc(url: str, method: str, params: list[Any] | None = None, timeout: float = 5.0) -> Any:  # noqa: ANN401
    """:func:`ledger.network.rpc`, imported on first use: ledger.network pulls in py-evm, which would add
    seconds to the start of every ``traceledger`` command (issue 17: ``network up`` answers a busy port in < 5 s)."""
    from ledger.network import rpc as network_rpc

    return network_rpc(url, method, params, timeout)

validators_app = typer.Typer(help="QBFT validator governance (votes in block headers).", no_args_is_help=True)
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
                   "governance")


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
