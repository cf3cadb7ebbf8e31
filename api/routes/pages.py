"""``/id/{identifier}``: human landing page of a coil (the URL encoded in its QR code).

HTML by default; the same data as JSON with ``Accept: application/json``. Every value taken
from a certificate or the database is HTML-escaped.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlmodel import Session

from api import crud
from api.deps import SessionDep, StateDep
from api.models import RECORD_KIND_COIL, Record
from api.read_cache import PAGE, CachedView, etag_of, load_facts, make_view
from api.routes.identifiers import record_or_404, resolution, view_response
from api.verification import verify_record
from provenance.certificate import summarize_certificate
from provenance.digital_link import digital_link_for_key
from provenance.verify import FINALITY_QBFT

router = APIRouter(tags=["pages"])


def _e(value: Any) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, dict | list):
        return escape(json.dumps(value, ensure_ascii=False))
    return escape(str(value))


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def is_numeric(value: Any) -> bool:
    """True for numbers and numeric strings (``412``, ``4.0``, ``"0.062"``); False for text, None, booleans."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int | float):
        return True
    try:
        float(str(value).strip())
    except ValueError:
        return False
    return True


def _unit(value: Any, unit: Any) -> str:
    """The unit for ``value``, escaped, only when the value is a number (``Form: Coil`` gets none)."""
    return escape(str(unit)) if unit and is_numeric(value) else ""


def _with_unit(value: Any, unit: Any) -> str:
    u = _unit(value, unit)
    return f"{_e(value)} {u}" if u else _e(value)


def _dimensions(dims: dict[str, Any] | None) -> str:
    if not dims:
        return "–"
    unit = dims.get("Unit", "")
    parts = [f"{_e(k)} {_with_unit(v, unit)}" for k, v in dims.items() if k not in ("Unit",)]
    return ", ".join(parts)


PHONE_CSS = (
    "*,*::before,*::after{box-sizing:border-box}"
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;"
    "overflow-wrap:anywhere}"
    "table{border-collapse:collapse;max-width:100%}td,th{border:1px solid #ccc;padding:.25rem .5rem;"
    "text-align:left;vertical-align:top;overflow-wrap:anywhere}"
    "code{word-break:break-all;overflow-wrap:anywhere}img{max-width:100%;height:auto}"
    "ul,ol{padding-left:1.2rem}li{overflow-wrap:anywhere}"
    ".ok{color:#176117}.bad{color:#a11}"
    "@media (max-width:600px){body{margin:.5rem auto;padding:0 .5rem}h1{font-size:1.3rem}"
    ".facts th,.facts td{display:block;border:0;padding:.1rem 0}.facts th{padding-top:.5rem}"
    ".facts{border:0}}"
)
"""Layout of the ``/id`` pages: fits a 390 px phone — long hex values and identifiers wrap anywhere, the
facts table stacks label over value on narrow screens, images shrink; nothing reaches past the viewport."""


def _receipt_row(status: dict[str, Any] | None) -> str:
    """The "Warehouse receipt" row of a coil page: receipt number and pledge status, or none."""
    if status is None:
        return ""
    if status.get("receipt_id") is None:
        return "<tr><th>Warehouse receipt</th><td>none (not in a live receipt)</td></tr>"
    pledge = "pledged to a bank" if status.get("pledged") else "not pledged"
    return (f"<tr><th>Warehouse receipt</th><td>no. {_e(status['receipt_id'])}, {_e(status.get('status'))}, "
            f"{pledge}, warehouse <code>{_e(status.get('warehouse'))}</code></td></tr>")


def render_page(data: dict[str, Any]) -> str:
    """HTML page for the ``/id`` data dict (``identifier``, ``summary``, ``resolution``, ``verification``)."""
    s = data["summary"]
    res = data["resolution"]
    ver = data["verification"]
    mech = "".join(
        f"<tr><td>{_e(p.get('box'))}</td><td>{_e(p.get('name'))}</td><td>{_e(p.get('value'))}</td>"
        f"<td>{_unit(p.get('value'), p.get('unit'))}</td></tr>"
        for p in s.get("mechanical_properties") or []
    )
    chem = "".join(
        f"<tr><td>{_e(c.get('box'))}</td><td>{_e(c.get('symbol'))}</td><td>{_e(c.get('actual'))}</td>"
        f"<td>{_unit(c.get('actual'), c.get('unit'))}</td></tr>"
        for c in s.get("chemical_composition") or []
    )
    checks = "".join(
        f'<li class="{"ok" if c["ok"] else "bad"}">{"✓" if c["ok"] else "✗"} <b>{_e(c["name"])}</b>'
        f" — {_e(c['detail'])}</li>"
        for c in ver["checks"]
    )
    anchor = next((v["data"]["value"] for v in res["values"] if v["type"] == "ANCHOR"), None)
    anchor_html = (
        f"anchored in block {_e(anchor.get('block_number'))}, tx <code>{_e(anchor.get('tx_hash'))}</code>, "
        f"root <code>{_e(anchor.get('root'))}</code>"
        if anchor
        else "pending anchoring"
    )
    mass = s.get("mass") or {}
    mass_kind = f" ({_e(mass['kind'])})" if mass.get("kind") and is_numeric(mass.get("value")) else ""
    owner = res.get("owner") or {}
    ident = _e(data["identifier"])
    verdict = "verified ✓" if ver["verified"] else "not (yet) verified ✗"
    revision = ""
    if res.get("superseded_by"):
        newer = _e(res["superseded_by"])
        revision += (f'<p class="bad"><b>Replaced:</b> this certificate was superseded by '
                     f'<a href="/id/{newer}">{newer}</a>.</p>')
    if res.get("supersedes"):
        older = _e(res["supersedes"])
        revision += f'<p>Replacement certificate for <a href="/id/{older}">{older}</a>.</p>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{ident} — TraceLedger</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{PHONE_CSS}</style></head>
<body>
<h1>Steel coil {_e(s.get("coil"))}</h1>
<p>Identifier <code>{ident}</code> — <b>{_e(verdict)}</b></p>
{revision}<img src="{_e(res["links"]["qr_svg"])}" alt="QR code for {ident}" width="160" height="160">
<table class="facts">
<tr><th>Manufacturer</th><td>{_e(s.get("manufacturer"))}</td></tr>
<tr><th>Owner enterprise</th><td>{_e(owner.get("name"))} ({_e(owner.get("prefix"))})</td></tr>
<tr><th>Product</th><td>{_e(s.get("product"))}</td></tr>
<tr><th>Grade</th><td>{_e(s.get("grade"))}</td></tr>
<tr><th>Heat</th><td>{_e(s.get("heat"))}</td></tr>
<tr><th>Certificate</th><td>{_e(s.get("document_type"))} no. {_e(s.get("certificate_number"))}</td></tr>
<tr><th>Dimensions</th><td>{_dimensions(s.get("dimensions"))}</td></tr>
<tr><th>Mass</th><td>{_with_unit(mass.get("value"), mass.get("unit"))}{mass_kind}</td></tr>
<tr><th>Issued</th><td>{_e(s.get("issue_date"))}</td></tr>
<tr><th>Record digest</th><td><code>{_e(res.get("record_digest"))}</code></td></tr>
<tr><th>Anchoring</th><td>{anchor_html}</td></tr>
{_receipt_row(data.get("warehouse_receipt"))}</table>
<h2>Mechanical properties</h2>
<table><tr><th>Box</th><th>Property</th><th>Value</th><th>Unit</th></tr>{mech}</table>
<h2>Chemical composition</h2>
<table><tr><th>Box</th><th>Element</th><th>Actual</th><th>Unit</th></tr>{chem}</table>
<h2>Verification</h2>
<ul>{checks}</ul>
<p><a href="{_e(res["links"]["verify"])}">verification JSON</a> ·
<a href="{_e(res["links"]["self"])}">resolution record</a></p>
</body></html>"""


@router.get("/id/{identifier:path}", response_class=HTMLResponse)
def id_page(identifier: str, request: Request, session: SessionDep, state: StateDep) -> Response:
    """Coil page: certificate summary, anchoring status, verification checks (✓/✗), QR image.

    ``Accept: application/json`` gives ``{identifier, summary, resolution, verification}`` for a record
    (a coil certificate); for a traced object — named by ``88.x.y/suffix``, an EPC URN (``urn:epc:id:…``,
    ``urn:epc:class:…``) or a GS1 Digital Link URI, URL-encoded — it gives :func:`object_json`.
    A record's answers carry a strong ``ETag`` (``If-None-Match`` → 304) and ``Cache-Control: public,
    no-cache``; the data of an anchored, verified record comes from memory (:mod:`api.read_cache`).
    Errors: 422 malformed identifier, 404 unknown.
    """
    from api.routes.lineage import PAGE_CSS, lineage_page, lineage_section
    from provenance.identifiers import is_valid_identifier

    view = page_view(state, identifier) if is_valid_identifier(identifier) else None
    if view is None and _wants_json(request):
        return JSONResponse(object_json(session, state, identifier))
    if view is None:  # EPC / GS1 Digital Link / mapped object: lineage page
        if is_valid_identifier(identifier) and not identifier.partition("/")[2]:
            record_or_404(session, identifier)
        try:
            return HTMLResponse(_object_page(session, state, identifier, lineage_page(session, state, identifier)))
        except HTTPException as exc:
            if exc.status_code != 404 or not is_valid_identifier(identifier):
                raise
        record_or_404(session, identifier)
        raise AssertionError("unreachable: record_or_404 raised")  # pragma: no cover
    view = _with_receipt_status(state, view)
    if _wants_json(request):
        return view_response(request, view, headers={"Vary": "Accept"})
    section = lineage_section(session, state, identifier)
    html = render_page(view.data)
    if section:
        html = html.replace("</style>", PAGE_CSS + PHONE_CSS + "</style>", 1)
        html = html.replace("</body>", section + "\n</body>", 1)
    body = html.encode("utf-8")
    page = CachedView(PAGE + ".html", identifier, view.revision, body, etag_of(PAGE + ".html", identifier, body))
    return view_response(request, page, media_type="text/html; charset=utf-8", headers={"Vary": "Accept"})


def _with_receipt_status(state: Any, view: CachedView) -> CachedView:
    """``view`` plus ``warehouse_receipt`` (the coil's live receipt and pledge status, issue 15) for a coil
    certificate when a WarehouseReceipt contract is configured. That status is chain state that changes without
    a new record revision, so it is read per request and never cached; the ETag covers the final bytes."""
    data = view.data
    if not isinstance(data, dict) or (data.get("resolution") or {}).get("kind") != RECORD_KIND_COIL:
        return view
    status = _receipt_status_of(state, view.identifier)
    if status is None:
        return view
    return make_view(PAGE, view.identifier, view.revision, {**data, "warehouse_receipt": status}, keep_data=True)


def page_view(state: Any, identifier: str) -> CachedView | None:
    """The ``/id`` data of the record ``identifier`` (None when no record has it): from the read cache, or
    one Core query + verification, kept when the record is anchored and verified under QBFT finality."""
    cached = state.reads.get(PAGE, identifier)
    if cached is not None:
        return cached
    epoch = state.reads.epoch()
    facts = load_facts(state.engine, identifier)
    if facts is None:
        return None
    try:
        summary = summarize_certificate(json.loads(facts.record.document))
    except Exception:  # noqa: BLE001 - a summary problem must not hide the record
        summary = {}
    batches = {facts.batch.id: facts.batch} if facts.batch is not None else {}
    data = {
        "identifier": identifier,
        "summary": summary,
        "resolution": resolution(None, facts.record, state.settings.public_base_url, owner=facts.owner,
                                 batch=facts.batch),
        "verification": verify_record(None, facts.record, chain=state.chain, seal_cache=state.seal_cache,
                                      owner=facts.owner, batches=batches),
    }
    view = make_view(PAGE, identifier, facts.revision, data, keep_data=True)
    qbft = state.chain is not None and getattr(state.chain, "finality", FINALITY_QBFT) == FINALITY_QBFT
    if facts.final and qbft and data["verification"]["verified"] is True:
        state.reads.put(view, epoch)
    return view


def object_json(session: Session, state: Any, identifier: str) -> dict[str, Any]:
    """``/id/{identifier}`` as JSON for a traced object (EPCIS 2.0 events) or a coil named by its ``hdl:`` key:
    ``{identifier, epc, digital_link, label, kind, lineage (upstream graph as ``GET /v1/lineage``),
    verification (as ``GET /v1/verify/{id}?lineage=upstream``)}``; a coil certificate gives the record JSON.

    Errors: 422 malformed (``path.identifier``), 404 unknown.
    """
    from api.routes.lineage import DEFAULT_DEPTH, node_or_error, verify_lineage_body
    from api.routes.lineage import lineage as lineage_graph

    node = node_or_error(session, identifier)
    if node.identifier is not None and node.identifier != identifier:
        rec = crud.get_record(session, identifier=node.identifier)
        if rec is not None:
            return record_json(session, state, rec)
    detail = lineage_graph(identifier, session, direction="upstream", depth=DEFAULT_DEPTH)
    me = detail["nodes"][0]
    return {
        "identifier": node.identifier,
        "epc": node.key,
        "digital_link": digital_link_for_key(node.key, state.settings.public_base_url),
        "label": me.get("label"),
        "kind": me.get("kind"),
        "lineage": detail,
        "verification": verify_lineage_body(session, state, identifier, DEFAULT_DEPTH),
    }


def record_json(session: Session, state: Any, rec: Record) -> dict[str, Any]:
    """``{identifier, summary, resolution, verification}`` of a record (the coil page's data)."""
    try:
        summary = summarize_certificate(json.loads(rec.document))
    except Exception:  # noqa: BLE001 - a summary problem must not hide the record
        summary = {}
    return {
        "identifier": rec.identifier,
        "summary": summary,
        "resolution": resolution(session, rec, state.settings.public_base_url),
        "verification": verify_record(session, rec, chain=state.chain, seal_cache=state.seal_cache),
        "warehouse_receipt": _receipt_status(state, rec),
    }


def _receipt_status(state: Any, rec: Record) -> dict[str, Any] | None:
    """The coil's live warehouse receipt and pledge status (issue 15), for coil certificates only."""
    return _receipt_status_of(state, rec.identifier) if rec.kind == RECORD_KIND_COIL else None


def _receipt_status_of(state: Any, identifier: str) -> dict[str, Any] | None:
    from api.routes.warehouse_receipts import coil_receipt_status

    return coil_receipt_status(state, identifier)


def _object_page(session: Session, state: Any, identifier: str, html: str) -> str:
    """The lineage page of a traced object with the phone layout and its QR code (the GS1 Digital Link URI
    for objects identified by GS1 keys, see ``/v1/identifiers/{id}/qr.svg``)."""
    from api.routes.identifiers import quoted
    from api.routes.lineage import node_or_error

    html = html.replace("</style>", PHONE_CSS + "</style>", 1)
    node = node_or_error(session, identifier)
    if node.identifier is None:
        return html
    src = f"{state.settings.public_base_url}/v1/identifiers/{quoted(node.identifier)}/qr.svg"
    img = f'<img src="{escape(src)}" alt="QR code for {escape(node.identifier)}" width="160" height="160">'
    return html.replace("</h1>", "</h1>\n" + img, 1)
