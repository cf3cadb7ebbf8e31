"""``traceledger``: the command line of the traceability ledger.

Commands::

    traceledger network up [--validators 4] [--data-dir DIR] [--api-port 8000]
    traceledger demo [--certificates DIR]
    traceledger verify IDENTIFIER [--api URL]
    traceledger node --config DIR/validator-1/node.json
    traceledger contracts compile [--check]
"""

from __future__ import annotations

import json
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="Industrial blockchain traceability ledger: QBFT validators, anchoring API, verification.",
                  no_args_is_help=True)
network_app = typer.Typer(help="Run a local validator network with the API.", no_args_is_help=True)
contracts_app = typer.Typer(help="Solidity contracts.", no_args_is_help=True)
app.add_typer(network_app, name="network")
app.add_typer(contracts_app, name="contracts")
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
) -> None:
    """Start the validators and the API, deploy the contracts on first start, and run until Ctrl-C/SIGTERM."""
    from scripts.stack import Stack

    stack = Stack(data_dir=data_dir, validators=validators, api_port=api_port, rpc_base_port=rpc_port,
                  p2p_base_port=p2p_port, block_period_s=block_period)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        spec = stack.init()
        with console.status(f"starting {validators} validators…"):
            stack.start_validators()
        with console.status("deploying contracts (first start only)…"):
            contracts = stack.deploy_contracts()
        with console.status("starting the API…"):
            stack.start_api()
        console.print(f"[bold]TraceLedger network[/bold] chain id {spec.chain_id}, data in {spec.data_dir}")
        for v in spec.validators:
            console.print(f"validator {v.index}  rpc {v.rpc_url}  address {v.address}  log {v.log_path}")
        console.print(f"contract  EnterpriseRegistry {contracts['EnterpriseRegistry']}")
        console.print(f"contract  AnchorRegistry     {contracts['AnchorRegistry']}")
        console.print(f"api       {stack.api_url()}  (docs {stack.api_url()}/docs, metrics {stack.api_url()}/metrics)")
        console.print(f"admin     token in {spec.data_dir / 'admin-token'}: {stack.admin_token}")
        console.print("Ctrl-C stops everything.")
        while not stop.is_set():
            for index, proc in list(stack.validator_procs.items()):
                if proc.poll() is not None:
                    console.print(f"[red]validator {index} exited with code {proc.returncode}; restarting[/red]")
                    stack.start_validator(index)
            if stack.api_proc is not None and stack.api_proc.poll() is not None:
                console.print(f"[red]the API exited with code {stack.api_proc.returncode}; see api.log[/red]")
                break
            stop.wait(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping…")
        stack.stop()


@app.command()
def node(config: Annotated[Path, typer.Option(help="node.json of one validator")],
         log_level: str = "INFO") -> None:
    """Run one validator node in the foreground."""
    from ledger.node import main

    main(["--config", str(config), "--log-level", log_level])


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


@app.command()
def demo(
    certificates: Annotated[Path | None, typer.Option(help="Folder of EN 10168 certificate JSON files "
                                                          "(default: the bundled samples).")] = None,
    validators: int = 4,
    keep: Annotated[bool, typer.Option(help="Keep the throwaway data directory.")] = False,
) -> None:
    """On a throwaway network: register a mill, post every certificate, wait for anchoring, verify each."""
    from scripts.stack import Stack

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
    finally:
        stack.stop()
        if keep:
            console.print(f"data kept in {tmp}")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    if failures or not any(True for _ in docs):
        raise typer.Exit(1)


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


@contracts_app.command("compile")
def contracts_compile(check: Annotated[bool, typer.Option(help="Only compare with the committed artifacts.")] = False
                      ) -> None:
    """Compile contracts/*.sol with the pinned solc-js (evmVersion shanghai) into contracts/build/."""
    from scripts.compile_contracts import main

    raise typer.Exit(main(["--check"] if check else []) or 0)


@contracts_app.command("deploy")
def contracts_deploy(
    rpc_url: Annotated[str, typer.Option("--rpc", help="JSON-RPC URL of any EVM node (e.g. a Besu QBFT network)")],
    admin_key_file: Annotated[Path, typer.Option("--admin-key-file", help="File holding the governance account's "
                                                 "hex private key (the registry admin)")],
) -> None:
    """Deploy EnterpriseRegistry and AnchorRegistry to another EVM network and print the env vars for the API."""
    from api.chain import deploy_contracts

    deployed = deploy_contracts(rpc_url, admin_key_file.read_text().strip())
    console.print(f"TRACELEDGER_RPC_URL={rpc_url}")
    console.print(f"TRACELEDGER_ENTERPRISE_REGISTRY={deployed['EnterpriseRegistry']}")
    console.print(f"TRACELEDGER_ANCHOR_REGISTRY={deployed['AnchorRegistry']}")


if __name__ == "__main__":
    app()
