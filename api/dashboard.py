"""``GET /dashboard``: the operator's page — validators, recent blocks with their seals, anchoring, ingest.

Server-rendered HTML (no JavaScript, no outside assets; inline SVG bar charts), refreshed every 10 s,
laid out for a desktop and for a 390 px phone. ``GET /dashboard?format=json`` answers the same data.

Sources, all read at request time:

* every validator JSON-RPC endpoint in ``TRACELEDGER_RPC_URLS`` (comma-separated; ``network up`` sets
  it; else ``TRACELEDGER_RPC_URL``): ``/healthz`` (``block``, ``peers``) and the head block, whose QBFT
  extraData gives the round it was committed in;
* the last :data:`RECENT_BLOCKS` blocks of the first endpoint: number, time, transactions, round, commit
  seals recovered to validator addresses (:func:`provenance.qbft_header.recover_seal_signers_from_rpc_block`)
  against the quorum of the validator set in extraData; each validator's last sealed block among them;
* the database: records pending anchoring, the last final batch, anchoring latency (record commit →
  batch receipt) and records ingested per minute by kind over the last hour.
"""

from __future__ import annotations

import html
import os
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import func
from sqlmodel import Session, col, select

from api import crud
from api.deps import SessionDep
from api.models import Batch, Record
from provenance.qbft_header import decode_extra_data, quorum, recover_seal_signers_from_rpc_block

router = APIRouter(tags=["operators"])

#: how many recent blocks the page shows
RECENT_BLOCKS = 8
#: seconds per JSON-RPC / healthz call to a validator
PROBE_TIMEOUT_S = 1.5


def _rpc(url: str, method: str, params: list[Any]) -> Any:
    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                        timeout=PROBE_TIMEOUT_S).json()
    if "error" in answer:
        raise RuntimeError(str(answer["error"]))
    return answer["result"]


def rpc_urls() -> list[str]:
    """Validator endpoints: ``TRACELEDGER_RPC_URLS`` (comma-separated) or ``TRACELEDGER_RPC_URL``."""
    raw = os.environ.get("TRACELEDGER_RPC_URLS") or os.environ.get("TRACELEDGER_RPC_URL") or ""
    return [u.strip().rstrip("/") for u in raw.split(",") if u.strip()]


def _round_of(block: dict[str, Any]) -> int | None:
    try:
        return decode_extra_data(bytes.fromhex(block["extraData"].removeprefix("0x"))).round
    except Exception:  # noqa: BLE001 - a non-QBFT chain: no round
        return None


def probe_validators(urls: list[str]) -> list[dict[str, Any]]:
    """Per endpoint ``{url, ok, height, peers, round, error}`` (``round``: of its head block)."""
    out = []
    for url in urls:
        row: dict[str, Any] = {"url": url, "ok": False, "height": None, "peers": None, "round": None, "error": None}
        try:
            health = httpx.get(url + "/healthz", timeout=PROBE_TIMEOUT_S).json()
            row.update(height=health.get("block"), peers=health.get("peers"), ok=health.get("status") == "ok")
            head = _rpc(url, "eth_getBlockByNumber", ["latest", False])
            row["round"] = _round_of(head)
        except Exception as exc:  # noqa: BLE001 - a down validator is a row, not a 500
            row["error"] = f"{type(exc).__name__}: {exc}"[:160]
        out.append(row)
    return out


def recent_blocks(url: str, count: int = RECENT_BLOCKS) -> list[dict[str, Any]]:
    """The last ``count`` blocks: ``{number, hash, time, txs, round, seals, quorum, validators, signers}``."""
    head = int(_rpc(url, "eth_blockNumber", []), 16)
    blocks = []
    for number in range(head, max(-1, head - count), -1):
        block = _rpc(url, "eth_getBlockByNumber", [hex(number), False])
        try:
            extra = decode_extra_data(bytes.fromhex(block["extraData"].removeprefix("0x")))
            signers = recover_seal_signers_from_rpc_block(block) if extra.seals else []
            validators = ["0x" + v.hex() for v in extra.validators]
            round_ = extra.round
        except Exception:  # noqa: BLE001 - genesis or a non-QBFT block
            signers, validators, round_ = [], [], None
        blocks.append({"number": number, "hash": block["hash"], "txs": len(block.get("transactions", [])),
                       "time": datetime.fromtimestamp(int(block["timestamp"], 16), UTC).isoformat(),
                       "round": round_, "seals": len(signers), "signers": signers, "validators": validators,
                       "quorum": quorum(len(validators)) if validators else None})
    return blocks


def last_seals(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per validator of the newest block's set: ``{address, last_sealed_block, sealed_recent}``."""
    if not blocks:
        return []
    members = blocks[0]["validators"]
    out = []
    for v in members:
        sealed = [b["number"] for b in blocks if v.lower() in (s.lower() for s in b["signers"])]
        out.append({"address": v, "last_sealed_block": max(sealed) if sealed else None, "sealed_recent": len(sealed)})
    return out


def _minute_key(value: datetime) -> str:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.strftime("%H:%M")


def ingest_and_anchoring(session: Session, now: datetime | None = None) -> dict[str, Any]:
    """Database figures of the last hour: ``{pending, unbatched, last_batch, latency_s: {p50, p95, max, n},
    per_minute: [{minute, records, by_kind}], latency_per_minute: [{minute, max_s}]}``."""
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=1)
    minutes = [_minute_key(since + timedelta(minutes=i + 1)) for i in range(60)]
    per_minute: dict[str, dict[str, int]] = {m: {} for m in minutes}
    # bucket in Python over (created_at, kind) rows of one hour: portable across SQLite and PostgreSQL
    rows = session.exec(select(Record.created_at, Record.kind).where(col(Record.created_at) >= since)).all()
    for created, kind in rows:
        bucket = per_minute.get(_minute_key(created))
        if bucket is not None:
            bucket[kind] = bucket.get(kind, 0) + 1
    latencies: dict[str, float] = {}
    values: list[float] = []
    pairs = session.exec(select(Record.created_at, Batch.anchored_at).join(Batch, col(Record.batch_id) == Batch.id)
                         .where(col(Batch.anchored_at) >= since).limit(50_000)).all()
    for created, anchored in pairs:
        if anchored is None:
            continue
        a = anchored.replace(tzinfo=UTC) if anchored.tzinfo is None else anchored
        c = created.replace(tzinfo=UTC) if created.tzinfo is None else created
        seconds = max(0.0, (a - c).total_seconds())
        values.append(seconds)
        key = _minute_key(a)
        latencies[key] = max(latencies.get(key, 0.0), seconds)
    values.sort()

    def pct(p: float) -> float | None:
        return round(values[min(len(values) - 1, int(p * len(values)))], 2) if values else None

    last = session.exec(select(Batch).where(Batch.status == "final").order_by(col(Batch.id).desc()).limit(1)).first()
    return {
        "pending": crud.count_pending(session), "unbatched": crud.count_unbatched(session),
        "last_batch": None if last is None else {"id": last.id, "size": last.size, "block_number": last.block_number,
                                                  "anchored_at": last.anchored_at.isoformat() if last.anchored_at
                                                  else None},
        "batches_last_hour": session.exec(select(func.count()).select_from(Batch)
                                          .where(col(Batch.anchored_at) >= since)).one(),
        "latency_s": {"p50": pct(0.5), "p95": pct(0.95), "max": values[-1] if values else None, "n": len(values)},
        "per_minute": [{"minute": m, "records": sum(per_minute[m].values()), "by_kind": per_minute[m]}
                       for m in minutes],
        "latency_per_minute": [{"minute": m, "max_s": round(latencies.get(m, 0.0), 2)} for m in minutes],
    }


def collect(session: Session) -> dict[str, Any]:
    """Everything the page shows (see the module docstring)."""
    urls = rpc_urls()
    data: dict[str, Any] = {"generated_at": datetime.now(UTC).isoformat(), "endpoints": probe_validators(urls),
                            "blocks": [], "validators": [], "chain_error": None}
    live = [e["url"] for e in data["endpoints"] if e["height"] is not None]
    if live:
        try:
            data["blocks"] = recent_blocks(live[0])
            data["validators"] = last_seals(data["blocks"])
        except Exception as exc:  # noqa: BLE001
            data["chain_error"] = f"{type(exc).__name__}: {exc}"[:200]
    elif urls:
        data["chain_error"] = "no validator endpoint answers"
    else:
        data["chain_error"] = "no chain configured (TRACELEDGER_RPC_URLS / TRACELEDGER_RPC_URL)"
    data["database"] = ingest_and_anchoring(session)
    return data


# ---------------------------------------------------------------------------------------------- HTML
_CSS = """
body{font:15px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f5f6f8;color:#1d2430}
header{background:#1d2430;color:#fff;padding:12px 16px}header h1{font-size:18px;margin:0}
header p{margin:2px 0 0;color:#b9c2d0;font-size:13px}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:12px;padding:12px}
section{background:#fff;border-radius:8px;padding:12px;box-shadow:0 1px 2px #0002;min-width:0}
h2{font-size:15px;margin:0 0 8px}.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 6px;
border-bottom:1px solid #e3e6ea;white-space:nowrap}th{color:#5b6575;font-weight:600}
.ok{color:#137333}.bad{color:#b3261e}.mono{font-family:ui-monospace,Menlo,monospace}
.kpis{display:flex;flex-wrap:wrap;gap:8px}.kpi{flex:1 1 120px;background:#f0f3f7;border-radius:6px;padding:8px}
.kpi b{display:block;font-size:20px}svg{width:100%;height:auto;display:block;overflow:visible}
@media (min-width:1000px){#validators,#blocks{grid-column:span 2}}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _short(address: str) -> str:
    return f"{address[:8]}…{address[-4:]}" if address and len(address) > 14 else address


def bar_chart(values: list[float], labels: list[str], unit: str, title: str) -> str:
    """An inline SVG bar chart (600×120 viewBox) of ``values`` with a title, the maximum and first/last labels."""
    peak = max(values) if values and max(values) > 0 else 1.0
    width = 600 / max(1, len(values))
    bars = "".join(
        f'<rect x="{i * width:.1f}" y="{100 - 90 * v / peak:.1f}" width="{max(1.0, width - 1):.1f}" '
        f'height="{90 * v / peak:.1f}" fill="#2f6fde"><title>{_e(labels[i])}: {v:g} {unit}</title></rect>'
        for i, v in enumerate(values))
    first, last = (labels[0], labels[-1]) if labels else ("", "")
    return (f'<svg viewBox="0 0 600 120" role="img" aria-label="{_e(title)}"><title>{_e(title)}</title>{bars}'
            f'<line x1="0" y1="100" x2="600" y2="100" stroke="#9aa4b2"/>'
            f'<text x="0" y="116" font-size="11" fill="#5b6575">{_e(first)}</text>'
            f'<text x="600" y="116" font-size="11" fill="#5b6575" text-anchor="end">{_e(last)}</text>'
            f'<text x="600" y="10" font-size="11" fill="#5b6575" text-anchor="end">max {peak:g} {unit}</text></svg>')


def render(data: dict[str, Any]) -> str:
    """The dashboard page for :func:`collect`'s data."""
    db = data["database"]
    endpoints = "".join(
        f"<tr><td class='mono'>{_e(e['url'])}</td>"
        f"<td class='{'ok' if e['ok'] else 'bad'}'>{'up' if e['ok'] else 'down'}</td><td>{_e(e['height'])}</td>"
        f"<td>{_e(e['round'])}</td><td>{_e(e['peers'])}</td><td>{_e(e['error'])}</td></tr>"
        for e in data["endpoints"])
    validators = "".join(
        f"<tr><td class='mono' title='{_e(v['address'])}'>{_e(_short(v['address']))}</td>"
        f"<td>{_e(v['last_sealed_block'])}</td><td>{v['sealed_recent']} / {len(data['blocks'])}</td></tr>"
        for v in data["validators"])
    blocks = "".join(
        f"<tr><td>{b['number']}</td><td>{_e(b['time'][11:19])}</td><td>{b['txs']}</td><td>{_e(b['round'])}</td>"
        f"<td class='{'ok' if b['quorum'] and b['seals'] >= b['quorum'] else 'bad'}'>{b['seals']}"
        f"{'/' + str(b['quorum']) if b['quorum'] else ''}</td>"
        f"<td class='mono'>{_e(', '.join(_short(s) for s in b['signers']))}</td></tr>"
        for b in data["blocks"])
    lat = db["latency_s"]
    last = db["last_batch"] or {}
    per_minute = db["per_minute"]
    ingest_total = sum(p["records"] for p in per_minute)
    chain_error = f"<p class='bad'>{_e(data['chain_error'])}</p>" if data.get("chain_error") else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><meta http-equiv="refresh" content="10">
<title>TraceLedger — operator dashboard</title><style>{_CSS}</style></head><body>
<header><h1>TraceLedger operator dashboard</h1><p>{_e(data['generated_at'][:19])} UTC · refreshes every 10 s ·
<a style="color:#b9c2d0" href="?format=json">JSON</a></p></header><main>
<section id="validators"><h2>Validators</h2>{chain_error}<div class="scroll"><table>
<tr><th>JSON-RPC</th><th>state</th><th>height</th><th>round</th><th>peers</th><th>error</th></tr>{endpoints}</table>
</div><div class="scroll"><table><tr><th>validator</th><th>last seal (block)</th><th>seals in recent blocks</th></tr>
{validators}</table></div></section>
<section id="blocks"><h2>Recent blocks</h2><div class="scroll"><table>
<tr><th>block</th><th>time</th><th>txs</th><th>round</th><th>seals</th><th>sealed by</th></tr>{blocks}</table></div>
</section>
<section id="anchoring"><h2>Anchoring</h2><div class="kpis">
<div class="kpi">backlog<b>{db['pending']}</b>pending records</div>
<div class="kpi">unbatched<b>{db['unbatched']}</b>records</div>
<div class="kpi">latency p95<b>{_e(lat['p95'])} s</b>p50 {_e(lat['p50'])} s · n {lat['n']}</div>
<div class="kpi">last batch<b>{_e(last.get('block_number'))}</b>{_e(last.get('size'))} records</div></div>
<p>Anchoring latency, worst per minute (last hour)</p>
{bar_chart([p['max_s'] for p in db['latency_per_minute']], [p['minute'] for p in db['latency_per_minute']], 's',
           'anchoring latency per minute')}</section>
<section id="ingest"><h2>Records ingested per minute</h2><div class="kpis">
<div class="kpi">last hour<b>{ingest_total}</b>records</div>
<div class="kpi">batches<b>{db['batches_last_hour']}</b>anchored in the last hour</div></div>
{bar_chart([p['records'] for p in per_minute], [p['minute'] for p in per_minute], 'records',
           'records ingested per minute')}</section>
</main></body></html>"""


@router.get("/dashboard", response_model=None)
def dashboard(session: SessionDep, format: Literal["html", "json"] = "html") -> Response:  # noqa: A002
    """Operator dashboard (HTML; ``?format=json`` for the data). Public like ``/metrics``; no chain writes."""
    data = collect(session)
    if format == "json":
        return JSONResponse(data)
    return HTMLResponse(render(data))
