"""``traceledger``: the command line of the traceability ledger.

Commands::

    traceledger network up [--validators 4] [--data-dir DIR] [--api-port 8000] [--rpc-port 8545] [--p2p-port 30303]
    traceledger demo [--certificates DIR] [--scenario certificates|receivables|work-tickets|all]
    traceledger verify IDENTIFIER [--api URL]
    traceledger node --config DIR/validator-1/node.json
    traceledger node init --data-dir D --listen HOST:PORT --advertise HOST:PORT   (see ledger/consortium.py)
    traceledger network genesis --validator ENODE … --admin ADDRESS [--out network.json] [--besu-genesis FILE]
    traceledger contracts compile [--check]
    traceledger db current|upgrade [--data-dir DIR | --database-url URL]
    traceledger validators list|add|remove|discard …   (see ledger/cli.py)
    traceledger faults [--scenario all]
"""

from __future__ import annotations

import json
import signal
import tempfile
import threading
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.cli.db import db_app

app = typer.Typer(help="Industrial blockchain traceability ledger: QBFT validators, anchoring API, verification.",
                  no_args_is_help=True)
network_app = typer.Typer(help="Run a local validator network with the API.", no_args_is_help=True)
contracts_app = typer.Typer(help="Solidity contracts.", no_args_is_help=True)
app.add_typer(network_app, name="network")
app.add_typer(contracts_app, name="contracts")
app.add_typer(db_app, name="db")
console = Console(soft_wrap=True)


@network_app.command("up")
def network_up(
    validators: Annotated[int, typer.Option(help="Validator processes (QBFT tolerates (n-1)//3 faulty).")] = 4,
    data_dir: Annotated[Path, typer.Option(help="Where keys, chains, the SQLite database and logs live.")] = Path(
        "data"),
    api_port: Annotated[int, typer.Option(help="HTTP port of the API.")] = 8000,
    rpc_port: Annotated[int, typer.Option(help="JSON-RPC port of validator 1 (validator i uses rpc_port+i-1).")] = 8545,
    p2p_port: Annotated[int, typer.Option(help="P2P port of validator 1 (validator i uses p2p_port+i-1).")] = 30303,
    block_period: Annotated[float, typer.Option(help="Seconds between blocks.")] = 1.0,
    crypto_profile: Annotated[str | None, typer.Option(
        "--crypto-profile", help="Record-layer cryptography of a NEW network, fixed at creation: 'standard' "
        "(SHA-256, EIP-712/secp256k1) or 'sm' (SM3, SM2). Default: standard, or what DATA_DIR was created with.")
    ] = None,
) -> None:
    """Start the validators and the API, deploy the contracts on first start, and run until Ctrl-C/SIGTERM.

    Before anything starts it takes DATA_DIR/network.lock (a second launcher on the same data dir stops
    with the running pid) and checks every port (a taken port stops it in one line naming the holder).
    The validators and the API die with this process, even after a kill -9.
    """
    from api.ports import DataDirBusy, DataDirLock, PortInUse, check_ports, launch_port_needs
    from provenance.crypto_profile import UnknownProfile, get_profile

    if crypto_profile is not None:
        try:
            get_profile(crypto_profile)
        except UnknownProfile as exc:
            console.print(f"[red]--crypto-profile: {exc}[/red]", highlight=False)
            raise typer.Exit(2) from None

    # pre-flight before the heavy imports (py-evm) and before anything is written or started: < 5 s to one line
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
        check_ports(launch_port_needs(data_dir, validators=validators, api_port=api_port, rpc_port=rpc_port,
                                      p2p_port=p2p_port))
    except (DataDirBusy, PortInUse) as exc:
        lock.release()
        console.print(f"[red]cannot start: {exc}[/red]", highlight=False)
        raise typer.Exit(2) from None

    from api.devnet import Stack

    stack = Stack(data_dir=data_dir, validators=validators, api_port=api_port, rpc_base_port=rpc_port,
                  p2p_base_port=p2p_port, block_period_s=block_period, crypto_profile=crypto_profile)
    stack.data_dir_lock = lock  # released by stack.stop()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        try:
            spec = stack.init()
        except ValueError as exc:  # e.g. --crypto-profile differs from the one the data dir was created with
            raise RuntimeError(str(exc)) from exc
        first = spec.validators[0]
        if first.rpc_url.rsplit(":", 1)[1] != str(rpc_port) or first.p2p_port != p2p_port:
            console.print(f"[yellow]{spec.data_dir} was created with JSON-RPC port {first.rpc_url.rsplit(':', 1)[1]} "
                          f"and p2p port {first.p2p_port} (fixed in network.json); --rpc-port/--p2p-port apply to "
                          "a new --data-dir only[/yellow]", highlight=False)
        with console.status(f"starting {len(spec.validators)} validators…"):
            stack.start_validators()
        with console.status("deploying contracts (first start only)…"):
            contracts = stack.deploy_contracts()
        with console.status("starting the API…"):
            stack.start_api()
        _print_banner(stack, spec, contracts)
        restarts: dict[int, list[float]] = {}
        while not stop.is_set():
            for index, proc in list(stack.validator_procs.items()):
                if proc.poll() is not None:
                    recent = [t for t in restarts.get(index, []) if time.monotonic() - t < 60] + [time.monotonic()]
                    restarts[index] = recent
                    log = spec.validators[index - 1].log_path
                    if len(recent) > 3:
                        console.print(f"[red]validator {index} exited {len(recent)} times within a minute (code "
                                      f"{proc.returncode}); stopping — see {log}[/red]", highlight=False)
                        raise typer.Exit(1)
                    console.print(f"[red]validator {index} exited with code {proc.returncode}; restarting "
                                  f"(log {log})[/red]", highlight=False)
                    stack.start_validator(index)
            if stack.api_proc is not None and stack.api_proc.poll() is not None:
                console.print(f"[red]the API exited with code {stack.api_proc.returncode}; see "
                              f"{spec.data_dir / 'api.log'}[/red]", highlight=False)
                raise typer.Exit(1)
            stop.wait(1.0)
    except KeyboardInterrupt:
        pass
    except typer.Exit:
        raise
    except (RuntimeError, TimeoutError) as exc:  # a component did not come up: say which, no traceback
        console.print(f"[red]cannot start: {exc}[/red]", highlight=False)
        raise typer.Exit(1) from None
    finally:
        if stack.validator_procs or stack.api_proc is not None:
            console.print("stopping…")
        stack.stop()


def _print_banner(stack: Any, spec: Any, contracts: dict[str, str]) -> None:
    """What runs where, and the first two things a newcomer can type."""
    import os
    import shutil

    api = stack.api_url()
    console.print(f"[bold]TraceLedger network[/bold] chain id {spec.chain_id}, data in {spec.data_dir}, "
                  f"crypto profile {spec.crypto_profile}")
    for v in spec.validators:
        console.print(f"validator {v.index}  rpc {v.rpc_url}  address {v.address}  log {v.log_path}")
    for name in ("EnterpriseRegistry", "AnchorRegistry", "WorkTicket", "ReceivableToken", "WarehouseReceipt",
                 "PriceIndex"):
        if name in contracts:
            console.print(f"contract  {name:<18} {contracts[name]}")
    console.print(f"api       {api}  (docs {api}/docs, metrics {api}/metrics, log {spec.data_dir / 'api.log'})")
    console.print(f"admin     governance (admin) token in {spec.data_dir / 'admin-token'}: {stack.admin_token}")
    cli = shutil.which("traceledger")
    venv_cli = Path(".venv/bin/traceledger")
    if cli is None or not os.environ.get("VIRTUAL_ENV"):
        hint = (f"{venv_cli} --help  (or: source .venv/bin/activate, then traceledger --help)"
                if venv_cli.exists() else "traceledger --help")
    else:
        hint = "traceledger --help"
    from api.settings import loopback_base_url_warning

    public = stack.public_base_url()
    console.print(f"qr        QR codes encode {public}/id/<identifier>", highlight=False, markup=False)
    if warning := loopback_base_url_warning(public):
        console.print(f"[yellow]warning   {warning}[/yellow]", highlight=False)
    console.print(f"cli       {hint}", highlight=False, markup=False)
    console.print(f"try       curl -s {api}/healthz", highlight=False, markup=False)
    console.print(f"          curl -s -X POST {api}/v1/enterprises -H \"Authorization: Bearer $(cat "
                  f"{spec.data_dir / 'admin-token'})\" -H 'Content-Type: application/json' "
                  "-d '{\"name\": \"Demo Steel Mill\", \"roles\": [\"manufacturer\"]}'", highlight=False, markup=False)
    console.print("Ctrl-C stops everything.")


def _load_certificates(directory: Path | None) -> list[tuple[str, Any]]:
    if directory is None:
        from provenance.samples import load_samples

        return list(load_samples())
    if not directory.is_dir():
        raise typer.BadParameter(f"{directory} is not a directory", param_hint="--certificates")
    out: list[tuple[str, Any]] = []
    for path in sorted(directory.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            out.append((path.name, exc))
            continue
        if isinstance(doc, dict) and "Certificate" not in doc and ("$schema" in doc or "definitions" in doc):
            console.print(f"[dim]skipping {path.name}: a JSON Schema, not a certificate[/dim]")
            continue
        out.append((path.name, doc))
    return out


class DemoScenario(StrEnum):
    """What ``traceledger demo`` runs."""

    certificates = "certificates"
    receivables = "receivables"
    work_tickets = "work-tickets"
    warehouse_receipts = "warehouse-receipts"
    all = "all"


@app.command()
def demo(
    certificates: Annotated[Path | None, typer.Option(help="Folder of EN 10168 certificate JSON files "
                                                          "(default: the bundled samples).")] = None,
    validators: int = 4,
    keep: Annotated[bool, typer.Option(help="Keep the throwaway data directory.")] = False,
    lineage: Annotated[bool, typer.Option(help="Also run the parts-lineage scenario (EPCIS events, bad heat, "
                                               "recall list).")] = True,
    scenario: Annotated[DemoScenario, typer.Option(help="certificates: the certificate demo (and lineage); "
                                                        "receivables / work-tickets / warehouse-receipts: that "
                                                        "on-chain workflow only; all: certificates, then the "
                                                        "three workflows.")
                        ] = DemoScenario.certificates,
) -> None:
    """On a throwaway network: register a mill, post every certificate, wait for anchoring, verify each.

    --scenario receivables or work-tickets runs that on-chain business workflow instead; all runs everything.
    """
    from api.devnet import Stack

    scenario = DemoScenario(scenario).value  # type: ignore[assignment]
    if scenario not in ("certificates", "receivables", "work-tickets", "warehouse-receipts", "all"):
        raise typer.BadParameter(f"unknown scenario {scenario!r}: certificates, receivables, work-tickets, "
                                 "warehouse-receipts or all", param_hint="--scenario")
    if scenario in ("receivables", "work-tickets", "warehouse-receipts"):
        raise typer.Exit(_workflow_demo((scenario,), validators=validators, keep=keep))
    docs = _load_certificates(certificates)
    if not docs:
        console.print("[red]no certificates found[/red]")
        raise typer.Exit(2)
    tmp = Path(tempfile.mkdtemp(prefix="traceledger-demo-"))
    stack = Stack(data_dir=tmp, validators=validators, api_port=None, rpc_base_port=None, p2p_base_port=None)
    failures = 0
    try:
        with console.status(f"starting {validators} validators, contracts and API in {tmp}…"):
            stack.start()
        api = stack.api_url()
        client = httpx.Client(base_url=api, timeout=60)
        r = client.post("/v1/enterprises", headers={"Authorization": f"Bearer {stack.admin_token}"},
                        json={"name": "Demo Steel Mill", "roles": ["manufacturer"]})
        r.raise_for_status()
        mill = r.json()
        console.print(f"registered mill {mill['name']} prefix {mill['prefix']} account {mill['address']}")
        auth = {"Authorization": f"Bearer {mill['api_key']}"}
        rows: list[dict[str, Any]] = []
        for name, doc in docs:
            if isinstance(doc, Exception):
                rows.append({"file": name, "accepted": False, "detail": f"not JSON: {doc}"})
                continue
            r = client.post("/v1/coils/certificates", json=doc, headers=auth)
            note = ""
            if r.status_code == 409 and "X-Current-Certificate" in r.headers:
                # the coil already has a certificate: post this one as its replacement (EN 10204 allows
                # replacing a certificate; the upstream fixtures are versions of one certificate)
                current = r.headers["X-Current-Certificate"]
                r = client.post("/v1/coils/certificates", json=doc, headers=auth, params={"supersedes": current})
                note = f"replacement of {current}; "
            if r.status_code == 200:
                note += "same document as already stored (same digest); "
            if r.status_code in (200, 201):
                body = r.json()
                rows.append({"file": name, "accepted": True, "identifier": body["identifier"], "note": note})
            else:
                detail = r.json().get("detail")
                if isinstance(detail, list):
                    text = "; ".join(f"{d.get('field')}: {d.get('message')}" for d in detail[:4])
                    if len(detail) > 4:
                        text += f"; … ({len(detail)} errors)"
                else:
                    text = str(detail)
                rows.append({"file": name, "accepted": False, "status": r.status_code, "detail": text})
        accepted = [row for row in rows if row["accepted"]]
        with Progress(TextColumn("anchoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            task = progress.add_task("anchoring", total=len(accepted))
            deadline = time.monotonic() + 120
            pending = {row["identifier"] for row in accepted}
            while pending and time.monotonic() < deadline:
                for identifier in list(pending):
                    res = client.get(f"/v1/identifiers/{quote(identifier, safe='/')}")
                    if res.status_code == 200 and res.json().get("status") == "anchored":
                        pending.discard(identifier)
                        progress.advance(task)
                time.sleep(0.3)
        for row in accepted:
            res = client.get(f"/v1/verify/{quote(row['identifier'], safe='/')}").json()
            row["verified"] = res.get("verified")
            row["block"] = (res.get("anchor") or {}).get("block_number")
            row["seals"] = (res.get("anchor") or {}).get("seals")
            failed = [c for c in res.get("checks", []) if not c.get("ok")]
            row["detail"] = row.get("note", "") + ("all checks pass" if not failed
                                                   else "; ".join(f"{c['name']}: {c['detail']}" for c in failed))
            if not row["verified"]:
                failures += 1
        table = Table(title="TraceLedger demo")
        for col in ("file", "result", "identifier", "block", "seals", "detail"):
            table.add_column(col, overflow="fold")
        for row in rows:
            if row["accepted"]:
                result = "[green]verified[/green]" if row.get("verified") else "[red]NOT VERIFIED[/red]"
            else:
                result = f"[yellow]refused ({row.get('status', '-')})[/yellow]"
            table.add_row(row["file"], result, row.get("identifier", ""), str(row.get("block", "")),
                          str(row.get("seals", "")), row.get("detail", ""))
        console.print(table)
        console.print(f"{len(accepted)} accepted, {len(rows) - len(accepted)} refused, "
                      f"{len(accepted) - failures} verified, {failures} failed verification")
        if lineage:
            failures += _lineage_scenario(client, stack.admin_token or "", mill)
        if scenario == "all":
            failures += _workflow_scenarios(client, stack, ("receivables", "work-tickets", "warehouse-receipts"))
    finally:
        _stop_throwaway_stack(stack, tmp, keep=keep)
    if failures or not any(True for _ in docs):
        raise typer.Exit(1)


def _workflow_scenarios(client: httpx.Client, stack: Any, scenarios: tuple[str, ...]) -> int:
    """Run the receivables / work-ticket scenarios on a running stack; returns the failed expectations."""
    from api.cli.demo import receivables_scenario, warehouse_receipts_scenario, work_ticket_scenario

    failures = 0
    for name in scenarios:
        console.rule(f"scenario: {name}")
        if name == "receivables":
            failures += receivables_scenario(client, stack.admin_token or "", stack.spec.rpc_urls[0], console)
        elif name == "warehouse-receipts":
            failures += warehouse_receipts_scenario(client, stack.admin_token or "", stack.spec.rpc_urls[0], console)
        else:
            failures += work_ticket_scenario(client, stack.admin_token or "", console)
    console.print(f"workflow scenarios: {failures} failed expectation(s)")
    return failures


def _workflow_demo(scenarios: tuple[str, ...], *, validators: int, keep: bool) -> int:
    """Throwaway network for the workflow scenarios only; exit code 0 when every expectation held."""
    from api.devnet import Stack

    tmp = Path(tempfile.mkdtemp(prefix="traceledger-demo-"))
    stack = Stack(data_dir=tmp, validators=validators, api_port=None, rpc_base_port=None, p2p_base_port=None)
    try:
        with console.status(f"starting {validators} validators, contracts and API in {tmp}…"):
            stack.start()
        with httpx.Client(base_url=stack.api_url(), timeout=120) as client:
            failures = _workflow_scenarios(client, stack, scenarios)
    finally:
        _stop_throwaway_stack(stack, tmp, keep=keep)
    return 1 if failures else 0


def _stop_throwaway_stack(stack: Any, data_dir: Path, *, keep: bool) -> None:
    """Stop a demo's network and API (:meth:`api.devnet.Stack.stop`), then delete its temporary ``data_dir``
    unless ``keep`` (``--keep``: the directory is printed instead)."""
    import shutil

    stack.stop()
    if keep:
        console.print(f"data kept in {data_dir}")
    else:
        shutil.rmtree(data_dir, ignore_errors=True)


def _lineage_scenario(client: httpx.Client, admin_token: str, mill: dict[str, Any]) -> int:
    """Demo: a small steel-to-parts chain in EPCIS 2.0, a bad heat flagged, its recall list; returns failures."""
    from provenance.supply_chain import bad_heat_event, generate

    gov = {"Authorization": f"Bearer {admin_token}"}
    ents = {"mill": mill}
    for role, roles in (("service_center", ["supplier"]), ("stamping", ["supplier"]), ("oem", ["core_enterprise"])):
        r = client.post("/v1/enterprises", headers=gov, json={"name": f"Demo {role.replace('_', ' ')}", "roles": roles})
        r.raise_for_status()
        ents[role] = r.json()
    chain = generate(heats=2, slabs_per_heat=1, slits_per_coil=2, blanks_per_slit=2, parts_per_assembly=2,
                     mill_prefix=mill["prefix"], seed=11)
    for cert in chain.certificates:
        client.post("/v1/coils/certificates", json=cert, headers={"Authorization": f"Bearer {mill['api_key']}"})
    for role, doc in chain.documents:
        r = client.post("/v1/epcis/capture", json=doc, headers={"Authorization": f"Bearer {ents[role]['api_key']}"})
        if r.status_code not in (200, 201):
            console.print(f"[red]lineage: capture refused ({r.status_code}): {r.text[:300]}[/red]")
            return 1
    heat = sorted(chain.truth.heats)[0]
    heat_epc = chain.truth.heats[heat]
    client.post("/v1/epcis/capture", json=bad_heat_event(heat_epc),
                headers={"Authorization": f"Bearer {mill['api_key']}"})
    console.print(f"lineage: {chain.event_count} EPCIS events captured; heat {heat} ({heat_epc}) "
                  "flagged non_conformant")
    down = client.get(f"/v1/lineage/{quote(heat_epc, safe='')}", params={"direction": "downstream"}).json()
    from api.cli.demo import recall_rows

    table = Table(title=f"Recall list for heat {heat}")
    for col in ("level", "object", "identifier", "non-conformant"):
        table.add_column(col, overflow="fold")
    for level, label, ident, mark in recall_rows(down):
        table.add_row(level, label, ident, f"[red]{mark}[/red]" if mark else "")
    console.print(table)
    part = sorted(p for p, h in chain.truth.part_heat.items() if h == heat)[0]
    deadline = time.monotonic() + 120
    body: dict[str, Any] = {}
    with console.status(f"waiting for the upstream lineage of part {part} to be anchored and verified…"):
        while time.monotonic() < deadline:
            body = client.get(f"/v1/verify/{quote(part, safe='')}", params={"lineage": "upstream"}).json()
            if body.get("verified"):
                break
            time.sleep(1.0)
    parts = len(chain.truth.downstream[heat]["parts"])
    console.print(f"lineage: recall list of heat {heat}: {len(down['recall'])} objects ({parts} parts); "
                  f"upstream lineage of part {part}: {body.get('records_checked')} records, "
                  f"verified {bool(body.get('verified'))}")
    return 0 if body.get("verified") else 1


@app.command()
def verify(
    identifier: Annotated[str, typer.Argument(help="Identifier 88.x.y/suffix")],
    api: Annotated[str, typer.Option(help="API base URL")] = "http://127.0.0.1:8000",
) -> None:
    """Verify one record end to end through the API and print each check. Exit code 1 if not verified."""
    try:
        r = httpx.get(f"{api.rstrip('/')}/v1/verify/{quote(identifier, safe='/')}", timeout=30)
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach {api}: {exc}[/red]")
        raise typer.Exit(2) from exc
    if r.status_code != 200:
        console.print(f"[red]{r.status_code}: {r.text}[/red]")
        raise typer.Exit(2)
    body = r.json()
    table = Table(title=f"{identifier}: {'VERIFIED' if body['verified'] else 'NOT VERIFIED'}")
    table.add_column("check")
    table.add_column("ok")
    table.add_column("detail", overflow="fold")
    for check in body["checks"]:
        table.add_row(check["name"], "✓" if check["ok"] else "✗", str(check.get("detail", "")))
    console.print(table)
    anchor = body.get("anchor") or {}
    if anchor:
        console.print(f"block {anchor.get('block_number')} {anchor.get('block_hash')} tx {anchor.get('tx_hash')} "
                      f"seals {anchor.get('seals')}")
    raise typer.Exit(0 if body["verified"] else 1)


@app.command("verify-bundle")
def verify_bundle_cmd(
    file: Annotated[Path, typer.Argument(help="Bundle JSON from GET /v1/provenance/{identifier}/bundle")],
    validators: Annotated[str | None, typer.Option(
        help="Trusted validator set: the network.json written by 'traceledger network up' (also gives the registry "
             "addresses), a genesis / node.json file, or comma-separated addresses; not needed with --finality "
             "confirmations:N")] = None,
    rpc: Annotated[str | None, typer.Option(help="Optionally cross-check blocks and anchor receipts with any one "
                                                 "validator")] = None,
    anchor_registry: Annotated[str | None, typer.Option(help="AnchorRegistry address (default: from the network "
                                                             "file)")] = None,
    enterprise_registry: Annotated[str | None, typer.Option(help="EnterpriseRegistry address (default: from the "
                                                                 "network file)")] = None,
    finality: Annotated[str, typer.Option(
        help="The chain's finality model: qbft (commit seals of the validators) or confirmations:N for a chain "
             "without seals (then --rpc is the only evidence that a block is canonical and final)")] = "qbft",
) -> None:
    """Verify a provenance bundle offline, trusting only the validators' keys and the registry addresses of the
    auditor's network file; prints every check and the lineage it proved. Exit 0 only when every check holds
    (1 otherwise, 2 bad input)."""
    from rich.markup import escape

    from api.cli.verify_bundle import Trust, load_trust, print_report, rpc_cross_check, settle_finality
    from provenance.bundle import prove_bundle
    from provenance.verify import FINALITY_QBFT, parse_finality_model

    try:
        model, _ = parse_finality_model(finality)
        bundle = json.loads(file.read_text())
        if validators is None and model == FINALITY_QBFT:
            raise ValueError("--validators is required with --finality qbft (the trusted validator set)")
        trust = load_trust(validators) if validators is not None else Trust([])
    except (OSError, ValueError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    report = prove_bundle(bundle, trust.validators, anchor_registry=anchor_registry or trust.anchor_registry,
                          enterprise_registry=enterprise_registry or trust.enterprise_registry, finality=finality,
                          crypto_profile=trust.crypto_profile)
    checks = settle_finality(list(report.checks) + (rpc_cross_check(bundle, rpc, finality) if rpc else []))
    print_report(console, report, checks)
    failed = [c for c in checks if not c.ok]
    if failed:
        console.print(f"[red]BUNDLE NOT VERIFIED: {len(failed)} of {len(checks)} checks failed; first at "
                      f"{escape(failed[0].place)}[/red]")
        raise typer.Exit(1)
    console.print(f"[green]BUNDLE VERIFIED: {len(checks)} checks hold[/green]")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context) -> None:
    """Throwaway network + API, locust suites headless, micro-benchmarks → bench/report.md + bench/report.json.

    Options are those of ``api/cli/bench.py`` (``traceledger bench --help-bench`` lists them), e.g.
    ``--duration 15 --users 32 --database auto|postgresql|sqlite --workers 2 --validators 4``.
    """
    from api.cli.bench import main as bench_main

    args = list(ctx.args)
    raise typer.Exit(bench_main(["--help"] if args == ["--help-bench"] else args))


@contracts_app.command("compile")
def contracts_compile(check: Annotated[bool, typer.Option(help="Only compare with the committed artifacts.")] = False
                      ) -> None:
    """Compile contracts/*.sol with the pinned solc-js (evmVersion shanghai) into contracts/build/."""
    from contracts.compile import main

    raise typer.Exit(main(["--check"] if check else []) or 0)


@contracts_app.command("deploy")
def contracts_deploy(
    rpc_url: Annotated[str, typer.Option("--rpc", help="JSON-RPC URL of any EVM node (e.g. a Besu QBFT network)")],
    admin_key_file: Annotated[Path, typer.Option("--admin-key-file", help="File holding the governance account's "
                                                 "hex private key (the registry admin)")],
) -> None:
    """Deploy EnterpriseRegistry, AnchorRegistry, WorkTicket, ReceivableToken and PriceIndex to another EVM network
    and print the API's env vars for all of them."""
    from api.chain import deploy_contracts

    deployed = deploy_contracts(rpc_url, admin_key_file.read_text().strip())
    console.print(f"TRACELEDGER_RPC_URL={rpc_url}")
    console.print(f"TRACELEDGER_ENTERPRISE_REGISTRY={deployed['EnterpriseRegistry']}")
    console.print(f"TRACELEDGER_ANCHOR_REGISTRY={deployed['AnchorRegistry']}")
    console.print(f"TRACELEDGER_WORK_TICKET={deployed['WorkTicket']}")
    console.print(f"TRACELEDGER_RECEIVABLE_TOKEN={deployed['ReceivableToken']}")
    console.print(f"TRACELEDGER_WAREHOUSE_RECEIPT={deployed['WarehouseReceipt']}")
    console.print(f"TRACELEDGER_PRICE_INDEX={deployed['PriceIndex']}")


from ledger.cli import (  # noqa: E402 - operator commands
    export_genesis_command,
    faults_command,
    network_genesis_command,
    node_app,
    validators_app,
    verify_block_command,
)

app.add_typer(validators_app, name="validators")
app.command("faults")(faults_command)
app.command("verify-block")(verify_block_command)
network_app.command("export-genesis")(export_genesis_command)
network_app.command("genesis")(network_genesis_command)
app.add_typer(node_app, name="node")


if __name__ == "__main__":
    app()
