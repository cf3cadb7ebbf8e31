"""GS1 Digital Link request URIs for a resolver: parsing, check digits, lookup keys and link types.

Pure functions (no I/O). References:

* **GS1 Digital Link: URI Syntax 1.2** (2020) — a request path ``/<primary AI>/<key>[/<qualifier AI>/<value>…]``
  with data attributes in the query string (``?17=261231&linkType=gs1:pip``); §4.9 key qualifiers in
  their fixed order (``/01/<GTIN>[/22/<CPV>][/10/<lot>][/21/<serial>]``, ``/414/<GLN>[/254/<ext>]``);
* **GS1 Conformant Resolver Standard 1.1** (2024) — §3 a resolver validates the request URI
  syntactically (400 on error, check digits included), redirects to the default link (307), serves
  the RFC 9264 linkset (``linkType=linkset`` / ``all`` or ``Accept: application/linkset+json``) and a
  resolver description at ``/.well-known/gs1resolver``; link types are terms of the GS1 Web
  Vocabulary (``gs1:pip`` = ``https://gs1.org/voc/pip``);
* **GS1 General Specifications §7.9** — mod-10 check digits of GTIN, SSCC and GLN.

Parsing, AI formats (GS1 General Specifications §3) and check digits come from ``biip`` (a maintained
GS1 barcode/Digital Link parser); this module turns its result into what our resolver needs:
the canonical ``https://id.gs1.org/…`` keys under which EPCIS objects are stored
(:func:`provenance.epcis.canonical_epc`), most specific first, so a serial that is unknown falls back to
its lot and then to its GTIN (Resolver Standard §3.6, "walking up the key qualifier path").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote

from biip import ParseError
from biip.gs1_digital_link_uris import GS1DigitalLinkURI

from provenance.epcis import DL_HOST, EpcisInvalid, canonical_epc
from provenance.errors import ProvenanceError

__all__ = [
    "InvalidDigitalLink",
    "DigitalLinkRequest",
    "GS1_VOC",
    "LINK_TYPES",
    "SUPPORTED_PRIMARY_KEYS",
    "parse_digital_link",
    "link_type_uri",
    "digital_link_for_key",
]

GS1_VOC = "https://gs1.org/voc/"
"""Namespace of GS1 Web Vocabulary link types; ``gs1:<term>`` is short for ``https://gs1.org/voc/<term>``."""

SUPPORTED_PRIMARY_KEYS: dict[str, str] = {
    "01": "GTIN (with optional /22 CPV, /10 lot, /21 serial)",
    "00": "SSCC",
    "414": "GLN (with optional /254 extension)",
}
"""Primary application identifiers this resolver answers, with their key qualifiers."""

LINK_TYPES: dict[str, str] = {
    "pip": "Product information page (the /id page: certificate, lineage, verification badges)",
    "traceability": "Traceability information (upstream lineage graph, EPCIS 2.0 events)",
    "certificationInfo": "Certification information (every upstream record verified: EN 10168 certificates, "
                         "signatures, Merkle inclusion proofs, QBFT commit seals)",
    "verificationService": "Verification service (this object's record verified)",
    "epcis": "EPCIS 2.0 repository (events naming this object, GS1 REST binding)",
}
"""GS1 Web Vocabulary link types we serve (terms without the ``gs1:`` prefix)."""

_QUALIFIERS = {"01": ("22", "10", "21"), "414": ("254",), "00": ()}


class InvalidDigitalLink(ProvenanceError, ValueError):
    """A request URI that is not a well-formed GS1 Digital Link (→ HTTP 400); ``str()`` names the part."""


@dataclass(frozen=True)
class DigitalLinkRequest:
    """A parsed resolver request.

    Attributes:
        primary: ``(AI, value)`` of the primary key, e.g. ``("01", "04012345111118")`` (GTIN-14, zero-filled).
        qualifiers: key qualifiers in path order, e.g. ``[("10", "H1"), ("21", "7")]``.
        attributes: data attributes from the query string (AI, value), e.g. ``[("17", "261231")]``.
        params: non-AI query parameters that steer the resolver (``linkType``, ``context``, ``lang``…).
        uri: canonical request URI on ``https://id.gs1.org`` (path only, no query).
        lookup_keys: :func:`provenance.epcis.canonical_epc` keys to look up, most specific first.
    """

    primary: tuple[str, str]
    qualifiers: list[tuple[str, str]]
    attributes: list[tuple[str, str]]
    params: dict[str, str] = field(default_factory=dict)
    uri: str = ""
    lookup_keys: list[str] = field(default_factory=list)


def _check(es: object) -> None:
    for what in ("gtin_error", "sscc_error", "gln_error"):
        err = getattr(es, what, None)
        if err:
            raise InvalidDigitalLink(str(err))


def _seg(value: str) -> str:
    return quote(value, safe="-._~!$'()*+,;=:@")


def parse_digital_link(path: str, query: str = "") -> DigitalLinkRequest:
    """Parse a resolver request ``path`` (``/01/<GTIN>/21/<serial>``, percent-encoded) and its ``query``.

    Check digits of GTIN (AI 01), SSCC (AI 00) and GLN (AI 414) are verified; GTIN-8/12/13 are
    zero-filled to GTIN-14; AI value formats (e.g. serial ≤ 20 characters of GS1 CSET 82, dates
    YYMMDD) are checked for path and query AIs.

    Raises:
        InvalidDigitalLink: unsupported primary key, qualifier out of order or not allowed for the key,
            odd number of path segments, a value not matching its AI format, a wrong check digit.
    """
    segs = [s for s in path.split("/") if s]
    if not segs or segs[0] not in SUPPORTED_PRIMARY_KEYS:
        raise InvalidDigitalLink(f"path {path!r} must start with a supported primary key "
                                 f"(/{', /'.join(SUPPORTED_PRIMARY_KEYS)})")
    if len(segs) % 2:
        raise InvalidDigitalLink(f"path {path!r} must be application identifier / value pairs")
    allowed = list(_QUALIFIERS[segs[0]])
    for ai in segs[2::2]:
        if ai not in allowed:
            raise InvalidDigitalLink(f"key qualifier /{ai} is not allowed here after /{segs[0]} (allowed in this "
                                     f"order: {', '.join('/' + a for a in _QUALIFIERS[segs[0]]) or 'none'})")
        allowed = allowed[allowed.index(ai) + 1:]
    params = {k: v for k, v in parse_qsl(query, keep_blank_values=True) if not k.isdigit()}
    try:
        parsed = GS1DigitalLinkURI.parse(f"{DL_HOST}/{'/'.join(segs)}" + (f"?{query}" if query else ""))
    except ParseError as exc:
        raise InvalidDigitalLink(str(exc)) from exc
    elements = list(parsed.element_strings)
    for es in elements:
        _check(es)
    n_path = len(segs) // 2
    pairs = [(es.ai.ai, es.value) for es in elements]
    primary, qualifiers, attributes = pairs[0], pairs[1:n_path], pairs[n_path:]
    uri = f"{DL_HOST}/{primary[0]}/{primary[1]}" + "".join(f"/{a}/{_seg(v)}" for a, v in qualifiers)
    q = dict(qualifiers)
    candidates = [uri]
    if primary[0] == "01":
        if "21" in q:
            candidates.append(f"{DL_HOST}/01/{primary[1]}/21/{_seg(q['21'])}")
        if "10" in q:
            candidates.append(f"{DL_HOST}/01/{primary[1]}/10/{_seg(q['10'])}")
        candidates.append(f"{DL_HOST}/01/{primary[1]}")
    elif primary[0] == "414":
        candidates.append(f"{DL_HOST}/414/{primary[1]}")
    keys: list[str] = []
    for c in candidates:
        try:
            key = canonical_epc(c)
        except EpcisInvalid as exc:  # biip accepted the URI; our own canonical form refuses it too
            raise InvalidDigitalLink(exc.issues[0].message) from exc
        if key not in keys:
            keys.append(key)
    return DigitalLinkRequest(primary=primary, qualifiers=qualifiers, attributes=attributes,
                              params=params,
                              uri=uri, lookup_keys=keys)


def link_type_uri(link_type: str) -> str | None:
    """``gs1:pip`` / ``pip`` / ``https://gs1.org/voc/pip`` → ``https://gs1.org/voc/pip``; None if not ours.

    ``all`` and ``linkset`` are not link types (they ask for the linkset) and give None.
    """
    term = link_type
    for prefix in ("gs1:", GS1_VOC, "http://gs1.org/voc/"):
        if term.startswith(prefix):
            term = term[len(prefix):]
            break
    return GS1_VOC + term if term in LINK_TYPES else None


def digital_link_for_key(key: str, base_url: str) -> str | None:
    """The Digital Link URI of a canonical EPC key on our resolver: ``https://id.gs1.org/01/…/21/…`` →
    ``<base_url>/01/…/21/…``; None for keys that are not GS1 keys we resolve (``hdl:…``, ``urn:uuid:…``,
    GRAI/GIAI…)."""
    if not key.startswith(DL_HOST + "/"):
        return None
    if key[len(DL_HOST) + 1:].split("/", 1)[0] not in SUPPORTED_PRIMARY_KEYS:
        return None
    return base_url.rstrip("/") + key[len(DL_HOST):]
