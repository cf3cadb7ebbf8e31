"""``/v1/lineage/{identifier}`` (graph, recall list), ``/v1/provenance/{identifier}/bundle`` (offline
bundle) and the lineage section of the ``/id/{identifier}`` page.

``{identifier}`` everywhere: our ``88.x.y/suffix``, an EPC URN (``urn:epc:id:sgtin:…``,
``urn:epc:class:lgtin:…``) or a GS1 Digital Link URI (``https://id.gs1.org/01/…/21/…``), URL-encoded.
"""

from __future__ import annotations

from html import escape
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request, status
from sqlmodel import Session

from api.deps import SessionDep, StateDep
from api.epcis.bundle import build_bundle
from api.epcis.graph import Node, NotFound, lineage_detail, recall_list, resolve_node, walk
from api.epcis.lineage import verify_lineage
from api.errors import UnprocessableError

router = APIRouter(tags=["lineage"])
DEFAULT_DEPTH = 50


def node_or_error(session: Session, identifier: str) -> Node:
    """Resolve a path identifier; 422 malformed (``path.identifier``), 404 unknown."""
    try:
        return resolve_node(session, identifier)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


@router.get("/v1/lineage/{identifier:path}")
def lineage(
    identifier: str,
    session: SessionDep,
    direction: Annotated[Literal["upstream", "downstream"], Query()] = "upstream",
    depth: Annotated[int, Query(ge=1, le=1000)] = DEFAULT_DEPTH,
    request: Request = None,  # type: ignore[assignment] - absent when called as a function
) -> dict[str, Any]:
    """Lineage graph of an object (EPCIS 2.0 Transformation / Aggregation / Association events).

    ``direction=upstream``: where it came from (part → blank → slit coil → mother coil (certificate) →
    slab → heat). ``downstream``: what was made from it; from a heat or coil this is the **recall
    list** (``recall``: every affected node with ``non_conformant`` marks). ``depth``: max hops (1–1000).

    Answer: ``{root, identifier, direction, depth, nodes: [{key, identifier, epc, kind, level, label,
    non_conformant, certificate, records}], edges: [{from, to, from_identifier, to_identifier, event}],
    recall (downstream only)}``; coil-certificate nodes carry ``warehouse_receipt`` (``{receipt_id, status,
    warehouse, pledged}`` of the live warehouse receipt holding the coil, ``receipt_id`` null when none).
    Errors: 422 malformed identifier / parameter, 404 unknown.
    """
    node = node_or_error(session, identifier)
    detail = lineage_detail(session, walk(session, node, direction=direction, depth=depth))
    if direction == "downstream":
        detail["recall"] = recall_list(detail)
    state = getattr(getattr(getattr(request, "app", None), "state", None), "tl", None)
    if state is not None:
        _receipt_statuses(state, detail)
    return detail


#: most coil nodes of one lineage answer that get their warehouse-receipt status read from the chain
MAX_RECEIPT_LOOKUPS = 50


def _receipt_statuses(state: Any, detail: dict[str, Any]) -> None:
    """Add ``warehouse_receipt`` (receipt and pledge status, issue 15) to the coil-certificate nodes."""
    from api.routes.warehouse_receipts import coil_receipt_status

    looked = 0
    for n in detail.get("nodes", []):
        if n.get("certificate") and n.get("identifier") and looked < MAX_RECEIPT_LOOKUPS:
            n["warehouse_receipt"] = coil_receipt_status(state, n["identifier"])
            looked += 1


@router.get("/v1/provenance/{identifier:path}/bundle")
def bundle(
    identifier: str,
    session: SessionDep,
    state: StateDep,
    depth: Annotated[int, Query(ge=1, le=1000)] = DEFAULT_DEPTH,
) -> dict[str, Any]:
    """Offline provenance bundle of the upstream lineage: every record (exact canonical document,
    EIP-712 signature), its RFC 9162 inclusion proof, the anchors and the QBFT block headers (with
    commit seals and full transactions) that anchor the roots. Check it with
    ``traceledger verify-bundle FILE --validators …``. Errors: 422 malformed, 404 unknown."""
    node = node_or_error(session, identifier)
    return build_bundle(session, node, chain=state.chain, depth=depth, hash_alg=state.settings.hash_alg)


def verify_lineage_body(session: Session, state: Any, identifier: str, depth: int = DEFAULT_DEPTH) -> dict[str, Any]:
    """``GET /v1/verify/{identifier}?lineage=upstream`` body (see :func:`api.epcis.lineage.verify_lineage`)."""
    node = node_or_error(session, identifier)
    return verify_lineage(session, node, chain=state.chain, seal_cache=state.seal_cache, depth=depth)


# ---------------------------------------------------------------------------------------- the page
def _e(value: Any) -> str:
    return "–" if value is None or value == "" else escape(str(value))


def _badge(ok: bool | None) -> str:
    if ok is None:
        return '<span class="badge pend">…</span>'
    return '<span class="badge ok">✓ verified</span>' if ok else '<span class="badge bad">✗ not verified</span>'


def _timeline_html(detail: dict[str, Any]) -> str:
    """``<li>`` items of every record of a lineage, once each, in event-time order (fixed-width UTC strings)."""
    timeline_rows = []
    seen_ev: set[str] = set()
    for n in detail["nodes"]:
        for r in n["records"]:
            if r["identifier"] in seen_ev:
                continue
            seen_ev.add(r["identifier"])
            timeline_rows.append((r["eventTime"], r, n))
    timeline_rows.sort(key=lambda t: t[0])
    return "".join(
        f'<li class="ev"><time>{_e(t[:19].replace("T", " "))}</time> <b>{_e(r["bizStep"] or r["type"])}</b>'
        f' {_e(r["type"])} · {_e(n["label"])} <code>{_e(n["identifier"])}</code>'
        + (f' · <span class="{"bad" if r["disposition"] == "non_conformant" else "ok"}">{_e(r["disposition"])}</span>'
           if r["disposition"] else "") + "</li>"
        for t, r, n in timeline_rows)


def lineage_section(session: Session, state: Any, identifier: str) -> str | None:
    """HTML of the lineage timeline + tree + per-node badges for ``identifier``; None if not a graph node."""
    try:
        node = resolve_node(session, identifier)
    except (UnprocessableError, NotFound):
        return None
    detail = lineage_detail(session, walk(session, node, direction="upstream", depth=DEFAULT_DEPTH))
    if len(detail["nodes"]) <= 1 and not detail["nodes"][0]["records"]:
        return None
    ver = verify_lineage(session, node, chain=state.chain, seal_cache=state.seal_cache, depth=DEFAULT_DEPTH)
    node_ok = {n["key"]: n["verified"] for n in ver["nodes"]}
    by_key = {n["key"]: n for n in detail["nodes"]}
    parents: dict[str, list[str]] = {}
    for e in detail["edges"]:
        parents.setdefault(e["to"], [])
        if e["from"] not in parents[e["to"]]:
            parents[e["to"]].append(e["from"])

    def name(n: dict[str, Any]) -> str:
        link = f'/id/{quote(n["identifier"] or n["key"], safe="/")}'
        flag = ' <span class="badge bad">non-conformant</span>' if n["non_conformant"] else ""
        return (f'<a href="{escape(link)}">{_e(n["label"])}</a> <code>{_e(n["identifier"] or n["key"])}</code>'
                f' {_badge(node_ok.get(n["key"]))}{flag}')

    def tree(key: str, seen: frozenset[str]) -> str:
        n = by_key[key]
        kids = [k for k in parents.get(key, []) if k not in seen and k in by_key]
        inner = "".join(tree(k, seen | {k}) for k in kids)
        cert = ""
        if n["certificate"]:
            s = n["certificate"].get("summary") or {}
            cert = (f'<div class="cert">EN 10168 certificate {_e(s.get("certificate_number"))}: grade '
                    f'{_e(s.get("grade"))}, heat {_e(s.get("heat"))}, {_e(s.get("manufacturer"))}</div>')
        return f'<li data-key="{escape(key)}">{name(n)}{cert}' + (f"<ul>{inner}</ul>" if inner else "") + "</li>"

    items = _timeline_html(detail)
    overall = _badge(ver["verified"])
    first = ver.get("first_failure")
    fail = (f'<p class="bad">First failing node: <code>{_e(first["identifier"] or first["key"])}</code> — '
            f'{_e(first["check"])}: {_e(first["detail"])}</p>') if first else ""
    return (f'<section id="lineage"><h2>Lineage {overall}</h2>{fail}'
            f'<h3>Tree (heat → coil → part)</h3><ul class="tree">{tree(node.key, frozenset({node.key}))}</ul>'
            f'<h3>Timeline</h3><ol class="timeline">{items}</ol>'
            f'<p><a href="/v1/verify/{escape(quote(identifier, safe="/"))}?lineage=upstream">lineage verification JSON'
            f'</a> · <a href="/v1/provenance/{escape(quote(identifier, safe="/"))}/bundle">offline bundle</a></p>'
            "</section>")


PAGE_CSS = (".badge{display:inline-block;border-radius:.6rem;padding:0 .45rem;font-size:.8rem;white-space:nowrap}"
            ".badge.ok{background:#e3f4e3;color:#176117}.badge.bad{background:#fbe3e3;color:#a11}"
            ".badge.pend{background:#eee}.tree,.tree ul{list-style:none;padding-left:1rem;border-left:2px solid #ccc}"
            ".tree li{margin:.3rem 0}.timeline li{margin:.25rem 0}.cert{font-size:.85rem;color:#444}"
            "code{word-break:break-all}@media (max-width:600px){body{margin:.5rem}h1{font-size:1.3rem}}")


def lineage_page(session: Session, state: Any, identifier: str) -> str:
    """Whole ``/id`` page for a graph node that is not itself a certificate record (404 when unknown)."""
    node = node_or_error(session, identifier)
    section = lineage_section(session, state, identifier) or "<p>No events name this object yet.</p>"
    detail = lineage_detail(session, walk(session, node, direction="upstream", depth=1))
    me = detail["nodes"][0]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(me["identifier"] or me["key"])} — TraceLedger</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
.ok{{color:#176117}}.bad{{color:#a11}}{PAGE_CSS}</style></head>
<body>
<h1>{_e(me["label"])}</h1>
<p>Identifier <code>{_e(me["identifier"])}</code><br>EPC <code>{_e(me["epc"])}</code></p>
{section}
</body></html>"""
