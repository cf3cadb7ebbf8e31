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

from api import crud
from api.deps import SessionDep, StateDep
from api.routes.identifiers import record_or_404, resolution
from api.verification import verify_record
from provenance.certificate import summarize_certificate

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


def _dimensions(dims: dict[str, Any] | None) -> str:
    if not dims:
        return "–"
    unit = dims.get("Unit", "")
    parts = [f"{_e(k)} {_e(v)} {_e(unit)}".strip() for k, v in dims.items() if k not in ("Unit",)]
    return ", ".join(parts)


def render_page(data: dict[str, Any]) -> str:
    """HTML page for the ``/id`` data dict (``identifier``, ``summary``, ``resolution``, ``verification``)."""
    s = data["summary"]
    res = data["resolution"]
    ver = data["verification"]
    mech = "".join(
        f"<tr><td>{_e(p.get('box'))}</td><td>{_e(p.get('name'))}</td><td>{_e(p.get('value'))}</td>"
        f"<td>{_e(p.get('unit'))}</td></tr>"
        for p in s.get("mechanical_properties") or []
    )
    chem = "".join(
        f"<tr><td>{_e(c.get('box'))}</td><td>{_e(c.get('symbol'))}</td><td>{_e(c.get('actual'))}</td>"
        f"<td>{_e(c.get('unit'))}</td></tr>"
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
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}}
.ok{{color:#176117}}.bad{{color:#a11}}code{{word-break:break-all}}</style></head>
<body>
<h1>Steel coil {_e(s.get("coil"))}</h1>
<p>Identifier <code>{ident}</code> — <b>{_e(verdict)}</b></p>
{revision}<img src="{_e(res["links"]["qr_svg"])}" alt="QR code for {ident}" width="160" height="160">
<table>
<tr><th>Manufacturer</th><td>{_e(s.get("manufacturer"))}</td></tr>
<tr><th>Owner enterprise</th><td>{_e(owner.get("name"))} ({_e(owner.get("prefix"))})</td></tr>
<tr><th>Product</th><td>{_e(s.get("product"))}</td></tr>
<tr><th>Grade</th><td>{_e(s.get("grade"))}</td></tr>
<tr><th>Heat</th><td>{_e(s.get("heat"))}</td></tr>
<tr><th>Certificate</th><td>{_e(s.get("document_type"))} no. {_e(s.get("certificate_number"))}</td></tr>
<tr><th>Dimensions</th><td>{_dimensions(s.get("dimensions"))}</td></tr>
<tr><th>Mass</th><td>{_e(mass.get("value"))} {_e(mass.get("unit"))} {_e(mass.get("kind"))}</td></tr>
<tr><th>Issued</th><td>{_e(s.get("issue_date"))}</td></tr>
<tr><th>Record digest</th><td><code>{_e(res.get("record_digest"))}</code></td></tr>
<tr><th>Anchoring</th><td>{anchor_html}</td></tr>
</table>
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

    ``Accept: application/json`` gives ``{identifier, summary, resolution, verification}``.
    Errors: 422 malformed identifier, 404 unknown.
    """
    from api.routes.lineage import PAGE_CSS, lineage_page, lineage_section
    from provenance.identifiers import is_valid_identifier

    rec = crud.get_record(session, identifier=identifier) if is_valid_identifier(identifier) else None
    if rec is None and not _wants_json(request):  # EPC / GS1 Digital Link / mapped object: lineage page
        if is_valid_identifier(identifier) and not identifier.partition("/")[2]:
            record_or_404(session, identifier)
        try:
            return HTMLResponse(lineage_page(session, state, identifier))
        except HTTPException as exc:
            if exc.status_code != 404 or not is_valid_identifier(identifier):
                raise
        record_or_404(session, identifier)
    rec = record_or_404(session, identifier)
    try:
        summary = summarize_certificate(json.loads(rec.document))
    except Exception:  # noqa: BLE001 - a summary problem must not hide the record
        summary = {}
    data = {
        "identifier": rec.identifier,
        "summary": summary,
        "resolution": resolution(session, rec, state.settings.public_base_url),
        "verification": verify_record(session, rec, chain=state.chain, seal_cache=state.seal_cache),
    }
    if _wants_json(request):
        return JSONResponse(data)
    section = lineage_section(session, state, rec.identifier)
    html = render_page(data)
    if section:
        html = html.replace("</style>", PAGE_CSS + "</style>", 1).replace("</body>", section + "\n</body>", 1)
    return HTMLResponse(html)
