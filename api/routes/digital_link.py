"""GS1 Digital Link resolver at the API root (GS1 Conformant Resolver Standard 1.1, Digital Link URI syntax 1.2).

* ``GET|HEAD /01/<GTIN>[/22/<CPV>][/10/<lot>][/21/<serial>]``, ``/00/<SSCC>``, ``/414/<GLN>[/254/<ext>]``
  with data attributes in the query string → **307** to the default link (our ``/id`` page of that
  object), ``Link: <…?linkType=linkset>; rel="linkset"`` and CORS headers;
* ``?linkType=gs1:<term>`` → 307 to that link (to the default link when we have no such link type);
* ``?linkType=all`` / ``?linkType=linkset`` / ``Accept: application/linkset+json`` → **200** RFC 9264
  linkset ``{"linkset": [{"anchor", "https://gs1.org/voc/<term>": [{href, title, type}]…}]}``;
* ``/.well-known/gs1resolver`` → the resolver description;
* errors: **400** problem body for a malformed request URI (check digits, AI formats, qualifier order),
  **404** problem body for a well-formed key that names no object here.

Lookup: a lot that was never captured falls back to its GTIN (the keys of
:func:`provenance.digital_link.parse_digital_link`), as the standard's qualifier-path walk does; a serial
that was never captured does **not** (404 naming the related lot or GTIN page in ``related``): a counterfeit
serial on a genuine lot's label must not land on the lot's verified page.
Objects are the EPCIS objects captured so far (``epcis_objects``), each with an ``88.x.y/…`` identifier.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from sqlmodel import col, select

from api.deps import SessionDep, StateDep
from api.epcis.models import EpcisObject
from api.problems import problem
from api.read_cache import CACHE_CONTROL, DIGITAL_LINK, CachedView, etag_of, not_modified
from api.routes.identifiers import quoted
from provenance.digital_link import (
    GS1_VOC,
    LINK_TYPES,
    SUPPORTED_PRIMARY_KEYS,
    InvalidDigitalLink,
    link_type_uri,
    parse_digital_link,
)
from provenance.epcis import epc_kind

router = APIRouter(tags=["gs1-digital-link"])

LINKSET_JSON = "application/linkset+json"
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
        "Access-Control-Allow-Headers": "Accept, Accept-Language", "Access-Control-Expose-Headers": "Link, Location"}
PROBLEM_BASE = "https://ref.gs1.org/standards/resolver/"


def links_for(base: str, identifier: str, key: str) -> dict[str, dict[str, str]]:
    """Our links of an object, by GS1 link type term: ``{term: {href, title, type}}`` (absolute hrefs)."""
    q = quoted(identifier)
    targets = {
        "pip": (f"{base}/id/{q}", "text/html"),
        "traceability": (f"{base}/v1/lineage/{q}?direction=upstream", "application/json"),
        "certificationInfo": (f"{base}/v1/verify/{q}?lineage=upstream", "application/json"),
        "verificationService": (f"{base}/v1/verify/{q}", "application/json"),
        "epcis": (f"{base}/epcs/{quote(key, safe='')}/events", "application/ld+json"),
    }
    return {t: {"href": href, "title": LINK_TYPES[t], "type": mt} for t, (href, mt) in targets.items()}


def linkset(anchor: str, links: dict[str, dict[str, str]]) -> dict[str, Any]:
    """RFC 9264 §4.2 JSON linkset of one anchor; relation types are GS1 Web Vocabulary URIs, and
    ``https://gs1.org/voc/defaultLink`` repeats the default (``pip``) target."""
    ctx: dict[str, Any] = {"anchor": anchor}
    ctx[GS1_VOC + "defaultLink"] = [links["pip"]]
    for term, target in links.items():
        ctx[GS1_VOC + term] = [target]
    return {"linkset": [ctx]}


def _wants_linkset(request: Request, link_type: str | None) -> bool:
    if link_type in ("all", "linkset"):
        return True
    accept = request.headers.get("accept", "")
    return LINKSET_JSON in accept or (link_type is None and "application/json" in accept and "text/html" not in accept)


def _resolve(request: Request, session: Any, state: Any) -> Response:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    query = request.url.query
    try:
        dl = parse_digital_link(path, query)
    except InvalidDigitalLink as exc:
        return problem(400, PROBLEM_BASE + "invalid-uri", "Invalid GS1 Digital Link URI", str(exc),
                       instance=request.url.path, headers=CORS)
    base = state.settings.public_base_url
    first = dl.lookup_keys[0]
    cached = state.reads.get(DIGITAL_LINK, first)  # an object once captured keeps its key and identifier
    if cached is not None:
        obj_identifier, obj_key = cached.data
        return _answer(request, dl, base, obj_identifier, obj_key)
    epoch = state.reads.epoch()
    found = {o.key: o for o in session.exec(select(EpcisObject).where(col(EpcisObject.key).in_(dl.lookup_keys)))}
    if first in found:  # the most specific key names an object: the answer can no longer change
        state.reads.put(CachedView(DIGITAL_LINK, first, "captured", b"", "",
                                   (found[first].identifier, found[first].key), time.monotonic()), epoch)
    if epc_kind(first) == "instance" and first not in found:
        # A serial nobody captured is not sent to its lot's or GTIN's page: a counterfeit serial printed on a
        # genuine lot's label must not land on that lot's verified page. The less specific object is named.
        related = next((found[k] for k in dl.lookup_keys[1:] if k in found), None)
        extra = {"related": f"{base}/id/{quoted(related.identifier)}"} if related is not None else {}
        return problem(404, PROBLEM_BASE + "not-found", "Not Found",
                       f"{dl.uri}: this serial is not known to this resolver", instance=request.url.path,
                       headers=CORS, **extra)
    obj = next((found[k] for k in dl.lookup_keys if k in found), None)
    if obj is None:
        return problem(404, PROBLEM_BASE + "not-found", "Not Found",
                       f"{dl.uri} names no object known to this resolver", instance=request.url.path, headers=CORS)
    return _answer(request, dl, base, obj.identifier, obj.key)


def _answer(request: Request, dl: Any, base: str, identifier: str, key: str) -> Response:
    """307 to the asked-for link, or the 200 linkset (strong ``ETag``; ``If-None-Match`` → 304)."""
    links = links_for(base, identifier, key)
    link_type = dl.params.get("linkType")
    self_uri = base + dl.uri[len("https://id.gs1.org"):]
    headers = dict(CORS)
    headers["Link"] = f'<{self_uri}?linkType=linkset>; rel="linkset"; type="{LINKSET_JSON}"'
    headers["Vary"] = "Accept"
    if _wants_linkset(request, link_type):
        answer = JSONResponse(linkset(self_uri, links), media_type=LINKSET_JSON, headers=headers)
        etag = etag_of(DIGITAL_LINK, key, bytes(answer.body))
        answer.headers["ETag"] = etag
        answer.headers["Cache-Control"] = CACHE_CONTROL
        if not_modified(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers={**headers, "ETag": etag, "Cache-Control": CACHE_CONTROL})
        return answer
    wanted = link_type_uri(link_type) if link_type else None
    term = wanted[len(GS1_VOC):] if wanted else "pip"  # a link type we do not have: the default link
    return RedirectResponse(links[term]["href"], status_code=307, headers=headers)


def _options() -> Response:
    return Response(status_code=204, headers={**CORS, "Allow": "GET, HEAD, OPTIONS"})


for _ai in SUPPORTED_PRIMARY_KEYS:
    def _get(request: Request, session: SessionDep, state: StateDep, rest: str = "") -> Response:
        """Resolve a GS1 Digital Link request URI: 307 to the default link (or the ``linkType`` asked for),
        200 RFC 9264 linkset for ``linkType=all|linkset`` / ``Accept: application/linkset+json``;
        400 problem (malformed URI, check digit), 404 problem (unknown key)."""
        return _resolve(request, session, state)

    router.add_api_route(f"/{_ai}/{{rest:path}}", _get, methods=["GET"], name=f"gs1_resolve_{_ai}",
                         response_class=Response,
                         summary=f"GS1 Digital Link resolver, primary key /{_ai} ({SUPPORTED_PRIMARY_KEYS[_ai]})")
    router.add_api_route(f"/{_ai}/{{rest:path}}", _get, methods=["HEAD"], name=f"gs1_resolve_{_ai}_head",
                         response_class=Response, include_in_schema=False)
    router.add_api_route(f"/{_ai}/{{rest:path}}", _options, methods=["OPTIONS"], include_in_schema=False)


@router.get("/.well-known/gs1resolver")
def resolver_description(state: StateDep) -> JSONResponse:
    """Resolver description file (GS1 Conformant Resolver Standard 1.1 §3.4): name, root, link type
    namespace, supported primary keys, whether the default link may be the linkset."""
    body = {
        "name": "TraceLedger GS1 Digital Link resolver",
        "resolverRoot": state.settings.public_base_url,
        "supportedLinkType": [{"namespace": GS1_VOC, "prefix": "gs1:"}],
        "linkTypes": {f"gs1:{t}": d for t, d in LINK_TYPES.items()},
        "supportedPrimaryKeys": list(SUPPORTED_PRIMARY_KEYS),
        "linkTypeDefaultCanBeLinkset": True,
        "linkTypeDefaultCanBeAll": True,
        "supportedContextValuesEnumerated": [],
        "validatesCheckDigits": True,
    }
    return JSONResponse(body, headers=CORS)
