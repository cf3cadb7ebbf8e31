"""The I/O half of ``traceledger verify-bundle``: read the auditor's trust files, optionally ask a validator.

The decisions are made by the pure :func:`provenance.bundle.verify_bundle`; this module only

* reads the trusted validator set (and, from a ``network.json`` written by ``traceledger network up``, the
  registry addresses) from a file or a comma-separated list (:func:`load_trust`), and
* with ``--rpc URL`` fetches what one validator serves for the bundle's blocks and passes it to the same pure
  checks (:func:`rpc_cross_check`): the served block must equal the bundle's (hash recomputed by
  :func:`provenance.verify.check_block_header`), and each anchor's receipt as served must be a success.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape

from provenance.bundle import BundleCheck, BundleReport, parse_validators
from provenance.verify import (
    FINALITY_QBFT,
    Reason,
    check_block_header,
    check_confirmations,
    hex_int,
    parse_finality_model,
)

RPC_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Trust:
    """What the auditor trusts: validator addresses and (from a network file) the registry addresses."""

    validators: list[str]
    anchor_registry: str | None = None
    enterprise_registry: str | None = None
    #: the network's crypto profile (``network.json`` ``cryptoProfile``; absent: ``standard``)
    crypto_profile: str | None = None


def load_trust(spec: str) -> Trust:
    """Trust roots from ``spec``: a JSON file (genesis, node.json, or ``network.json`` whose ``contracts`` also give
    ``AnchorRegistry`` / ``EnterpriseRegistry``) or comma-separated validator addresses.

    Raises:
        ValueError: unreadable file or no validator addresses (the CLI exits 2).
    """
    path = Path(spec)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{spec}: {exc}") from exc
        try:
            validators = parse_validators(data)
        except ValueError as exc:
            raise ValueError(f"{spec}: {exc}") from exc
        contracts = data.get("contracts") if isinstance(data, dict) else None
        contracts = contracts if isinstance(contracts, dict) else {}
        profile = data.get("cryptoProfile") if isinstance(data, dict) else None
        if profile is not None:
            from provenance.crypto_profile import get_profile

            get_profile(profile)  # UnknownProfile (a ValueError) names the known profiles: exit 2
        return Trust(validators, contracts.get("AnchorRegistry"), contracts.get("EnterpriseRegistry"),
                     profile if isinstance(profile, str) else None)
    return Trust(parse_validators(spec))


def load_validators(spec: str) -> list[str]:
    """Trusted validator addresses from a file or comma-separated addresses (see :func:`load_trust`)."""
    return load_trust(spec).validators


def _rpc(url: str, method: str, params: list[Any]) -> Any:
    r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=RPC_TIMEOUT_S)
    body = r.json()
    if body.get("error"):
        raise RuntimeError(f"{method}: {body['error']}")
    return body.get("result")


def rpc_cross_check(bundle: Any, rpc_url: str, finality: str = FINALITY_QBFT) -> list[BundleCheck]:
    """Ask the validator at ``rpc_url`` for each bundle block and each anchor's receipt.

    ``blocks[k].hash (rpc)`` holds when the served block's recomputed hash (QBFT, or the plain header hash under
    ``confirmations:N``) equals the bundle's; under ``confirmations:N`` ``blocks[k].confirmations (rpc)`` holds
    when that block is canonical with at least N confirmations (:func:`provenance.verify.check_confirmations`);
    ``anchors[j].receipt (rpc)`` holds when the served receipt of the anchor transaction is in the same block
    with status 1. Transport errors are failing checks, never exceptions.
    """
    out: list[BundleCheck] = []
    if not isinstance(bundle, dict):
        return out
    model, required = parse_finality_model(finality)
    for k, block in enumerate(bundle.get("blocks") or []):
        place = f"blocks[{k}].hash (rpc)"
        try:
            number = hex_int(block["number"], "number")
            served = _rpc(rpc_url, "eth_getBlockByNumber", [hex(number), False])
            if not isinstance(served, dict):
                out.append(BundleCheck(place, False, f"{rpc_url} serves no block {number}", Reason.HEADER_MISMATCH))
                continue
            v = check_block_header(served, expected_hash=block.get("hash"), bft=model == FINALITY_QBFT)
            out.append(BundleCheck(place, v.ok, f"{rpc_url} serves {served.get('hash')} for block {number}"
                                   + ("" if v.ok else f": {v.detail}"), v.reason))
            if model != FINALITY_QBFT:
                head = hex_int(_rpc(rpc_url, "eth_blockNumber", []), "eth_blockNumber")
                c = check_confirmations(number, str(block.get("hash")), served.get("hash"), head, required)
                out.append(BundleCheck(f"blocks[{k}].confirmations (rpc)", c.ok, f"{rpc_url}: {c.detail}", c.reason))
        except Exception as exc:  # noqa: BLE001 - report, do not crash
            out.append(BundleCheck(place, False, f"cannot ask {rpc_url}: {exc}", Reason.MALFORMED))
    for j, a in enumerate(bundle.get("anchors") or []):
        place = f"anchors[{j}].receipt (rpc)"
        try:
            receipt = _rpc(rpc_url, "eth_getTransactionReceipt", [a["tx_hash"]])
            if not isinstance(receipt, dict):
                out.append(BundleCheck(place, False, f"{rpc_url} knows no transaction {a['tx_hash']}",
                                       Reason.NOT_ANCHORED))
                continue
            same_block = str(receipt.get("blockHash", "")).lower() == str(a.get("block_hash", "")).lower()
            status = hex_int(receipt.get("status", "0x0"), "status")
            ok = same_block and status == 1
            out.append(BundleCheck(place, ok, f"{rpc_url}: transaction {a['tx_hash']} in block "
                                   f"{receipt.get('blockHash')} with status {status}",
                                   None if ok else Reason.RECEIPT_INVALID))
        except Exception as exc:  # noqa: BLE001 - report, do not crash
            out.append(BundleCheck(place, False, f"cannot ask {rpc_url}: {exc}", Reason.MALFORMED))
    return out


def print_report(console: Console, report: BundleReport, checks: list[BundleCheck]) -> None:
    """Print every check (✓/✗ place: detail), the lineage proven from the signed events (one line per node,
    indented by level, with its proven disposition; then the edges with their events and bizSteps), the
    completeness caveat and the enterprises proven from sealed state."""
    for c in checks:
        mark = "[green]✓[/green]" if c.ok else "[red]✗[/red]"
        console.print(f"{mark} {escape(c.place)}: {escape(c.detail)}", highlight=False)
    if report.nodes:
        console.print("lineage proven from the signed events (level, node, disposition; then edges by event):")
        for n in report.nodes:
            mark = (" [red]NON-CONFORMANT[/red]" if n.disposition == "non_conformant"
                    else f" {n.disposition}" if n.disposition else "")
            console.print(f"  {'  ' * n.level}{n.level} {escape(n.label)} {escape(n.key)}{mark}", highlight=False)
        for src, dst, event, step in report.edges:
            console.print(escape(f"  {src} → {dst} by {event} ({step or '?'})"), highlight=False)
        console.print("[yellow]completeness is NOT proven: records that no signed document in the bundle refers to "
                      "(a later inspection, other upstream events) may have been left out[/yellow]")
    for account, (name, prefix) in sorted(report.enterprises.items(), key=lambda x: x[1][1]):
        console.print(escape(f"enterprise {prefix} = {account} {name!r} (active owner, proven from sealed state)"),
                      highlight=False)


def settle_finality(checks: list[BundleCheck]) -> list[BundleCheck]:
    """Under ``confirmations:N``: drop each offline ``blocks[k].finality`` failure whose block the ``--rpc``
    cross-check found canonical with enough confirmations (``blocks[k].confirmations (rpc)`` holds)."""
    confirmed = {c.place.removesuffix(".confirmations (rpc)") for c in checks
                 if c.ok and c.place.endswith(".confirmations (rpc)")}
    return [c for c in checks if c.ok or not c.place.endswith(".finality")
            or c.place.removesuffix(".finality") not in confirmed]

