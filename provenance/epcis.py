"""GS1 EPCIS 2.0 events: schema validation, event hash IDs, EPC / GS1 Digital Link normalisation.

Pure functions (no network, no database). References:

* **EPCIS 2.0** (GS1, 2022) — §7.4 event types (ObjectEvent, AggregationEvent, TransactionEvent,
  TransformationEvent, AssociationEvent), §7.4.1.4 ``errorDeclaration``, §8.2 EPCISDocument, §12
  JSON/JSON-LD binding and its JSON Schema ``EPCIS-JSON-Schema.json`` (draft-07).
* **CBV 2.0** — §7.2 bizStep, §7.3 disposition (bare words such as ``shipping`` or
  ``non_conformant``; equivalent forms ``https://ref.gs1.org/cbv/BizStep-shipping`` and
  ``urn:epcglobal:cbv:bizstep:shipping``), §8.9 event hash ID ``ni:///sha-256;<hex>?ver=CBV2.0``.
* **GS1 Digital Link URI syntax 1.2** — ``https://id.gs1.org/01/<GTIN>/21/<serial>`` (SGTIN),
  ``/01/<GTIN>/10/<lot>`` (LGTIN, a batch/lot class such as a steel heat), ``/00/<SSCC>``,
  ``/414/<GLN>/254/<ext>``, ``/8003/<GRAI>``, ``/8004/<GIAI>``.
* **GS1 Tag Data Standard 2.0** §6 — pure-identity EPC URNs ``urn:epc:id:sgtin:CP.IIR.Serial``,
  ``urn:epc:class:lgtin:CP.IIR.Lot``, ``urn:epc:idpat:sgtin:CP.IIR.*``, ``urn:epc:id:sscc:…``,
  ``urn:epc:id:sgln:…``, ``urn:epc:id:grai:…``, ``urn:epc:id:giai:…``.

Event hash IDs are computed natively by :mod:`provenance.epcis_hash` (no JSON-LD processing);
documents it does not reproduce exactly go to the published ``epcis-event-hash-generator`` package
(GS1 / R. Tröger reference implementation), whose input this module prepares and whose calls it
serialises (the package keeps module-level state); see :func:`event_hash_ids`.

Our own traced objects use the Handle-style identifiers of :mod:`provenance.identifiers`; inside an
EPCIS event they are written as the URI ``hdl:88.<industry>.<enterprise>/<suffix>`` (any
``http(s)://…/id/88.x.y/suffix`` URL is accepted too). GS1 keys map to identifiers
``<prefix>/<suffix>`` with :func:`suffix_for_epc` / :func:`epc_for_suffix`.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from provenance.errors import DocumentInvalid, Issue
from provenance.identifiers import is_valid_identifier

__all__ = [
    "EVENT_TYPES",
    "EpcisIssue",
    "EpcisInvalid",
    "EpcRef",
    "document_events",
    "validate_document",
    "event_hash_ids",
    "event_hash_id_candidates",
    "HASH_FALLBACKS",
    "canonical_epc",
    "epc_kind",
    "suffix_for_epc",
    "epc_for_suffix",
    "cbv_short",
    "event_epcs",
    "lineage_links",
    "gs1_check_digit",
]

EVENT_TYPES = ("ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent")
DL_HOST = "https://id.gs1.org"
HDL_SCHEME = "hdl:"


class EpcisInvalid(DocumentInvalid, ValueError):
    """An EPCIS document (or value) is invalid; ``issues`` lists every problem (:class:`Issue`)."""


EpcisIssue = Issue
"""One problem: the project's one :class:`provenance.errors.Issue` type; ``field`` is a JSON path such as
``epcisBody.eventList[3].ilmd``, ``event_index`` the 0-based index of the event (None for document-level)."""


# --------------------------------------------------------------------------- document structure
def _event_list_path(doc: Mapping[str, Any]) -> tuple[list[str | int], list[Any]]:
    body = doc.get("epcisBody")
    if not isinstance(body, Mapping):
        return ["epcisBody"], []
    if "queryResults" in body:  # EPCISQueryDocument (EPCIS 2.0 §8.2.8)
        rb = (body.get("queryResults") or {}).get("resultsBody") or {}
        events = rb.get("eventList") if isinstance(rb, Mapping) else None
        return ["epcisBody", "queryResults", "resultsBody", "eventList"], events if isinstance(events, list) else []
    if "event" in body and "eventList" not in body:
        return ["epcisBody", "event"], [body["event"]]
    events = body.get("eventList")
    return ["epcisBody", "eventList"], events if isinstance(events, list) else []


def document_events(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The events of an EPCISDocument / EPCISQueryDocument in document order (may be empty)."""
    return [e for e in _event_list_path(doc)[1]]


def _path_str(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out or "document"


def _event_index(path: list[Any], base: list[str | int]) -> int | None:
    if base == ["epcisBody", "event"] and path[:2] == base:
        return 0
    n = len(base)
    if list(path[:n]) == base and len(path) > n and isinstance(path[n], int):
        return path[n]
    return None


def validate_document(doc: Any, schema: Mapping[str, Any], *, max_issues: int = 200) -> list[Issue]:
    """Validate an EPCIS 2.0 JSON document against the GS1 JSON Schema (draft-07), plus our rules.

    Args:
        doc: the parsed JSON body.
        schema: the GS1 ``EPCIS-JSON-Schema.json`` object.
        max_issues: stop after this many issues.

    Returns:
        Every issue, each naming its field path and (for event issues) the event index; empty when
        valid. Our rules on top of the schema: the body is an EPCISDocument (not a query document)
        with at least one event, and every event's ``type`` is one of :data:`EVENT_TYPES`.
    """
    from jsonschema import Draft7Validator
    from jsonschema.exceptions import best_match

    if not isinstance(doc, Mapping):
        return [Issue("body", "type", "an EPCISDocument must be a JSON object")]
    issues: list[Issue] = []
    base, events = _event_list_path(doc)
    if doc.get("type") != "EPCISDocument":
        issues.append(Issue("type", "document-type", f"type must be 'EPCISDocument', got {doc.get('type')!r}"))
    # Fast path: a compiled validator (fastjsonschema, ~20x faster on bulk documents) accepts the
    # document -> jsonschema would too; otherwise jsonschema gives the authoritative, field-named issues.
    errors = [] if _fast_valid(doc, schema) else list(Draft7Validator(schema).iter_errors(doc))
    for err in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        detail = err
        if err.context:
            detail = best_match(err.context) or err
        path = list(err.absolute_path)
        deeper = list(detail.absolute_path)
        if len(deeper) > len(path):
            path = deeper
        message = detail.message if len(detail.message) < 400 else detail.message[:400] + "…"
        if detail.validator == "required":
            m = re.match(r"'(.+)' is a required property", detail.message)
            if m:
                path = [*path, m.group(1)]
        elif detail.validator == "not":
            message = "field not allowed here by the EPCIS 2.0 schema"
            if path and path[-1] == "ilmd":
                message += " (ILMD only on an ObjectEvent with action ADD or a TransformationEvent, EPCIS 2.0 §7.3.6)"
        idx = _event_index(path, base)
        if detail is not err and err.validator in ("anyOf", "oneOf") and detail.message != err.message:
            message = f"{message} (not valid under any allowed event/value form)"
        issues.append(Issue(_path_str(path), str(detail.validator), message, idx))
        if len(issues) >= max_issues:
            return issues
    if not events and not any(i.field.startswith("epcisBody") for i in issues):
        issues.append(Issue(_path_str(base), "non-empty", "the document contains no events"))
    for i, ev in enumerate(events):
        if isinstance(ev, Mapping) and ev.get("type") not in EVENT_TYPES:
            issues.append(Issue(_path_str([*base, i, "type"]), "event-type",
                                     f"event type must be one of {', '.join(EVENT_TYPES)}, got {ev.get('type')!r}", i))
    # de-duplicate (draft-07 allOf/if-then can report one problem twice)
    seen: set[tuple[str, str]] = set()
    unique = []
    for i in issues:
        if (i.field, i.message) not in seen:
            seen.add((i.field, i.message))
            unique.append(i)
    return unique


_FAST_VALIDATORS: dict[Any, Any] = {}
_FAST_LOCK = threading.Lock()


def _fast_valid(doc: Any, schema: Mapping[str, Any]) -> bool:
    """True when the compiled (fastjsonschema) form of ``schema`` accepts ``doc``.

    False means "not sure" (invalid, or the schema could not be compiled): the caller then runs
    jsonschema. Compiled validators are cached by the schema's JSON text.
    """
    try:
        import fastjsonschema
    except ImportError:  # pragma: no cover - optional speed-up
        return False
    with _FAST_LOCK:
        cached = _FAST_VALIDATORS.get(id(schema))
        if cached is None or cached[0] is not schema:
            key = json.dumps(schema, sort_keys=True)
            validator = _FAST_VALIDATORS.get(key)
            if validator is None:
                try:  # compile() rewrites the $refs of the dict it is given: never hand it the caller's schema
                    validator = fastjsonschema.compile(copy.deepcopy(dict(schema)))
                except Exception:  # noqa: BLE001 - fall back to jsonschema
                    validator = False
                _FAST_VALIDATORS[key] = validator
            _FAST_VALIDATORS[id(schema)] = (schema, validator)  # keeps the schema alive: its id stays unique
        else:
            validator = cached[1]
    if validator is False:
        return False
    try:
        by_type = _event_validators(schema)
        events = _plain_event_list(doc, by_type)
        if events is None:
            validator(doc)
        else:
            # the same verdict in less time: the schema's EPCIS-Document-Event is an if/then on ``type`` only
            # (six conditions, each a raised-and-caught exception per event in the compiled code); for an
            # event object whose type is one of the five, it is exactly that type's definition
            validator({**doc, "epcisBody": {**doc["epcisBody"], "eventList": []}})
            for ev in events:
                by_type[ev["type"]](ev)
    except Exception:  # noqa: BLE001 - JsonSchemaException or a type problem: let jsonschema decide
        return False
    return True


def _event_validators(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Compiled validators of ``definitions/<EventType>`` for the five event types (cached with the schema);
    empty when the schema does not have the GS1 shape this relies on."""
    with _FAST_LOCK:
        key = ("events", id(schema))
        cached = _FAST_VALIDATORS.get(key)
        if cached is not None and cached[0] is schema:
            return cached[1]  # type: ignore[no-any-return]
    import fastjsonschema

    defs = schema.get("definitions")
    out: dict[str, Any] = {}
    base = str(schema.get("$id", ""))
    wrapper = (defs or {}).get("EPCIS-Document-Event") if isinstance(defs, Mapping) else None
    items = ((defs or {}).get("eventList") or {}).get("items") if isinstance(defs, Mapping) else None
    if isinstance(wrapper, Mapping) and _is_local_ref(items, "EPCIS-Document-Event", base) and all(
            t in defs for t in EVENT_TYPES) and _dispatch_types(wrapper, base) == set(EVENT_TYPES):
        try:  # each compile() gets its own copy: it rewrites the $refs of what it is given
            out = {t: fastjsonschema.compile({"$schema": schema.get("$schema"), "$id": base,
                                              "definitions": copy.deepcopy(dict(defs)),
                                              "$ref": f"#/definitions/{t}"})
                   for t in EVENT_TYPES}
        except Exception:  # noqa: BLE001 - keep the whole-document validator
            out = {}
    with _FAST_LOCK:
        _FAST_VALIDATORS[("events", id(schema))] = (schema, out)
    return out


def _is_local_ref(value: Any, name: str, base: str) -> bool:
    """True when ``value`` is ``{"$ref": "#/definitions/<name>"}`` (or the same ref made absolute against the
    schema's ``$id`` ``base``, as a schema that went through ``fastjsonschema.compile`` has it)."""
    return isinstance(value, Mapping) and len(value) == 1 and value.get("$ref") in (
        f"#/definitions/{name}", f"{base}#/definitions/{name}")


def _dispatch_types(wrapper: Mapping[str, Any], base: str = "") -> set[str] | None:
    """The event types of an ``EPCIS-Document-Event`` made only of ``required: [type]``, ``type: object``,
    ``properties.type: string`` and ``if {type: T} then {$ref: T}`` branches (plus the catch-all for other
    types); None for any other shape."""
    if set(wrapper) - {"type", "required", "allOf", "properties"}:
        return None
    found: set[str] = set()
    for branch in wrapper.get("allOf", []):
        cond = (branch.get("if") or {}) if isinstance(branch, Mapping) else {}
        enum = ((cond.get("properties") or {}).get("type") or {}).get("enum")
        then = branch.get("then") if isinstance(branch, Mapping) else None
        negated = cond.get("not")
        if negated is not None:  # the catch-all (Extended-Event): must exclude every one of the five types
            excluded = ((negated.get("properties") or {}).get("type") or {}).get("enum") if isinstance(
                negated, Mapping) else None
            if not (isinstance(excluded, list) and set(EVENT_TYPES) <= set(excluded)):
                return None
            continue
        if not (isinstance(enum, list) and len(enum) == 1 and _is_local_ref(then, enum[0], base)):
            return None
        found.add(enum[0])
    return found


def _plain_event_list(doc: Any, by_type: dict[str, Any]) -> list[Mapping[str, Any]] | None:
    """The events of an EPCISDocument when each is an object with one of the five types; else None."""
    if not by_type or not isinstance(doc, dict) or doc.get("type") != "EPCISDocument":
        return None
    body = doc.get("epcisBody")
    events = body.get("eventList") if isinstance(body, dict) else None
    if not isinstance(events, list):
        return None
    for ev in events:
        if not isinstance(ev, dict) or not isinstance(ev.get("type"), str) or ev["type"] not in by_type:
            return None
    return events


# --------------------------------------------------------------------------- event hash IDs
_HASH_LOCK = threading.Lock()
_LOADER_INSTALLED = False
_CONTEXT_CACHE: dict[str, Any] = {}
_KNOWN_CONTEXTS = {
    # URL -> file shipped inside epcis_event_hash_generator
    "https://gs1.github.io/EPCIS/epcis-context.jsonld":
        "14b10c9d3e92d35f577bfc610fe5ec15aa2941124987919389d7cd9998516861.jsonld",
    # the "simple" context of GS1's JSON examples defines the same terms for event fields and CBV values
    "https://gs1.github.io/EPCIS/epcis-context-simple.jsonld":
        "14b10c9d3e92d35f577bfc610fe5ec15aa2941124987919389d7cd9998516861.jsonld",
    "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld":
        "e532647e8eb371379b8b0e8602d8981c8566bc60f7351f22c76a5bc865962008.jsonld",
    "https://ref.gs1.org/standards/epcis/epcis-context.jsonld":
        "e532647e8eb371379b8b0e8602d8981c8566bc60f7351f22c76a5bc865962008.jsonld",
}


def _offline_loader(url: str, options: Any = None) -> dict[str, Any]:
    """PyLD document loader that never touches the network: GS1 contexts come from the package data
    of ``epcis_event_hash_generator``; any other remote context is treated as empty (its terms then
    stay compact IRIs, which the hash algorithm keeps verbatim)."""
    import importlib.resources

    if url not in _CONTEXT_CACHE:
        name = _KNOWN_CONTEXTS.get(url)
        if name is not None:
            text = importlib.resources.files("epcis_event_hash_generator").joinpath(name).read_text("utf-8")
            _CONTEXT_CACHE[url] = json.loads(text)
        else:
            _CONTEXT_CACHE[url] = {"@context": {}}
    return {"contentType": "application/ld+json", "contextUrl": None, "documentUrl": url,
            "document": _CONTEXT_CACHE[url]}


def _ignore_fields(doc: Mapping[str, Any]) -> list[str]:
    body = doc.get("epcisBody") if isinstance(doc.get("epcisBody"), Mapping) else {}
    qr = body.get("queryResults") if isinstance(body.get("queryResults"), Mapping) else {}
    for key, value in [*doc.items(), *body.items(), *qr.items()]:
        named = isinstance(key, str) and (key == "ignoreFields" or key.endswith(":ignoreFields"))
        if named and isinstance(value, list):
            return [v for v in value if isinstance(v, str)]
    return []


_ORDERED_LISTS = ("sourceList", "destinationList", "bizTransactionList")


def _type_first(event: dict[str, Any]) -> None:
    """Put ``type`` first in source / destination / bizTransaction entries.

    The package keeps these entries' JSON member order (it does not sort them), so the same event with
    ``{"source": …, "type": …}`` would hash differently from ``{"type": …, "source": …}``; the CBV 2.0
    §8.9 order is type, then value (as in the XML binding, where type is an attribute). Normalising
    makes the hash independent of JSON member order (RFC 8785 canonical storage sorts members).
    """
    for name in _ORDERED_LISTS:
        items = event.get(name)
        if isinstance(items, list):
            event[name] = [{"type": it["type"], **{k: v for k, v in it.items() if k != "type"}}
                           if isinstance(it, dict) and "type" in it else it for it in items]


def _prepared_events(doc: Mapping[str, Any]) -> list[Any]:
    """The events of ``doc`` with the document-level ``ignoreFields`` removed (shallow copies)."""
    _, events = _event_list_path(doc)
    ignore = set(_ignore_fields(doc))
    if not ignore:
        return list(events)
    return [{k: v for k, v in ev.items() if k not in ignore} if isinstance(ev, dict) else ev for ev in events]


class _FallbackCounter:
    """Thread-safe counts of documents / events hashed by the reference package instead of the native path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._documents = 0
        self._events = 0
        self._reasons: dict[str, int] = {}

    def add(self, events: int, reason: str) -> None:
        key = reason.split(" ", 1)[0] if reason else "unknown"
        with self._lock:
            self._documents += 1
            self._events += events
            self._reasons[key] = self._reasons.get(key, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"documents": self._documents, "events": self._events, "reasons": dict(self._reasons)}


HASH_FALLBACKS = _FallbackCounter()
"""Process-wide counts of the package fallback of :func:`event_hash_ids`. ``HASH_FALLBACKS.snapshot()`` →
``{"documents": int, "events": int, "reasons": {first word of the reason: int}}``; monotonic, for metrics
(e.g. a Prometheus counter ``traceledger_epcis_hash_fallback_events_total``)."""


def event_hash_ids(doc: Mapping[str, Any], *, legacy: bool = False) -> list[str]:
    """GS1 event hash IDs (CBV 2.0 §8.9) of every event of ``doc``, in document order.

    Native path: :func:`provenance.epcis_hash.prehash_strings` builds the pre-hash strings straight from
    the JSON (~20-40 µs an event). Documents it does not reproduce exactly (it raises
    :class:`~provenance.epcis_hash.NativeHashUnsupported`) are hashed by the pinned reference package
    ``epcis-event-hash-generator`` (~0.7-1 ms an event, JSON-LD expansion) and counted in
    :data:`HASH_FALLBACKS`. Native and package IDs are equal except at the deviations listed in
    :mod:`provenance.epcis_hash` (booleans, long / exponent numbers, sub-millisecond times, ``cbvmda:`` keys),
    where the native path follows GS1's written algorithm.

    Both paths unwrap EPCISQueryDocument bodies and apply a document-level ``…:ignoreFields`` list (as in
    the GS1 test vectors).

    Args:
        doc: an EPCISDocument / EPCISQueryDocument (parsed JSON).
        legacy: compute with the package only — the IDs this ledger issued before the native path (used to
            re-verify stored events; see :func:`event_hash_id_candidates`).

    Returns:
        ``["ni:///sha-256;<64 hex>?ver=CBV2.0", …]``, one per event.

    Raises:
        EpcisInvalid: the package cannot derive a pre-hash for some event (fallback or legacy only).
    """
    from provenance.epcis_hash import NativeHashUnsupported, hash_id, prehash_strings

    if legacy:
        return _package_hash_ids(doc)
    events = _prepared_events(doc)
    try:
        return [hash_id(p.text) for p in prehash_strings(events, doc.get("@context"))]
    except NativeHashUnsupported as exc:
        HASH_FALLBACKS.add(len(events), exc.reason)
    except Exception as exc:  # noqa: BLE001 - e.g. RecursionError on absurd nesting: the reference decides
        HASH_FALLBACKS.add(len(events), f"{type(exc).__name__} in the native path")
    return _package_hash_ids(doc)


def event_hash_id_candidates(event: Mapping[str, Any], context: Any = None) -> tuple[str, ...]:
    """The hash IDs a stored event may legitimately carry: ``(native,)`` or ``(native, legacy)``.

    For the verifier (``check_event_hash``): accept a stored event when its claimed ``eventHashID`` is one of
    these and its identifier ends with ``-<hex>`` of that ID. The legacy (package) ID is added only when the
    event touches one of the native path's deviations (then IDs issued before the native path differ); it is
    left out when the package cannot hash the event at all (``.9995`` s times). When the native path does not
    handle the event, the single candidate is the package's.

    Args:
        event: one EPCIS 2.0 event object as stored.
        context: the ``@context`` stored with it (the document's).

    Returns:
        1 or 2 distinct ``ni:///sha-256;…?ver=CBV2.0`` strings, the native (current) one first.

    Raises:
        EpcisInvalid: neither path can hash the event.
    """
    from provenance.epcis_hash import NativeHashUnsupported, hash_id, prehash_strings

    wrapper: dict[str, Any] = {"epcisBody": {"eventList": [event]}}
    if context is not None:
        wrapper["@context"] = context
    try:
        (pre,) = prehash_strings([event], context)
    except Exception as exc:  # noqa: BLE001 - NativeHashUnsupported or anything odd: the reference decides
        HASH_FALLBACKS.add(1, exc.reason if isinstance(exc, NativeHashUnsupported) else type(exc).__name__)
        return tuple(_package_hash_ids(wrapper))
    native = hash_id(pre.text)
    if not pre.deviations:
        return (native,)
    try:
        (old,) = _package_hash_ids(wrapper)
    except EpcisInvalid:
        return (native,)
    return (native,) if old == native else (native, old)


def _package_hash_ids(doc: Mapping[str, Any]) -> list[str]:
    """Event hash IDs by ``epcis_event_hash_generator`` (the reference; see :func:`event_hash_ids`)."""
    from epcis_event_hash_generator import hash_generator

    return list(hash_generator.calculate_hashes_from_pre_hashes(_package_prehashes(doc)))


def _package_prehashes(doc: Mapping[str, Any]) -> list[str]:
    """Pre-hash strings by ``epcis_event_hash_generator``, one per event.

    Preparation done here, because the package (1.9.3) does not do it: query bodies unwrapped; ``type``
    first in source/destination/bizTransaction entries (:func:`_type_first`); ``ignoreFields`` applied;
    JSON-LD contexts resolved offline (:func:`_offline_loader`); the package's module-level namespace table
    cleared per call and calls serialised. About 0.7-1 ms an event (pyld JSON-LD expansion).
    """
    global _LOADER_INSTALLED
    from epcis_event_hash_generator import hash_generator, json_to_py
    from pyld import jsonld

    _, events = _event_list_path(doc)
    ignore = set(_ignore_fields(doc))
    prepared = []
    for ev in events:
        ev = copy.deepcopy(ev)
        if ignore and isinstance(ev, dict):
            for key in list(ev):
                if key in ignore:
                    del ev[key]
        if isinstance(ev, dict):
            _type_first(ev)
        prepared.append(ev)
    wrapper: dict[str, Any] = {"epcisBody": {"eventList": prepared}}
    if "@context" in doc:
        wrapper["@context"] = copy.deepcopy(doc["@context"])
    with _HASH_LOCK:
        if not _LOADER_INSTALLED:
            jsonld.set_document_loader(_offline_loader)
            _LOADER_INSTALLED = True
        json_to_py._namespaces.clear()
        try:
            py_events = json_to_py.event_list_from_epcis_document_json(wrapper)
            prehashes = hash_generator.derive_prehashes_from_events(py_events)
        except Exception as exc:  # noqa: BLE001 - the package raises anything on odd input
            raise EpcisInvalid([Issue("epcisBody", "event-hash",
                                           f"cannot compute event hash IDs: {exc}")]) from exc
        finally:
            json_to_py._namespaces.clear()
    if len(prehashes) != len(events):
        raise EpcisInvalid([Issue("epcisBody", "event-hash",
                                       f"event hash generator produced {len(prehashes)} pre-hashes for {len(events)} "
                                       "events")])
    return list(prehashes)


# --------------------------------------------------------------------------- CBV vocabulary
_CBV_PREFIXES = {
    "bizStep": ("https://ref.gs1.org/cbv/BizStep-", "urn:epcglobal:cbv:bizstep:"),
    "disposition": ("https://ref.gs1.org/cbv/Disp-", "urn:epcglobal:cbv:disp:"),
}


def cbv_short(kind: str, value: Any) -> str | None:
    """Bare CBV 2.0 word of a bizStep/disposition in any of its three spellings; other URIs verbatim.

    ``cbv_short("bizStep", "https://ref.gs1.org/cbv/BizStep-shipping") == "shipping"``.
    """
    if not isinstance(value, str) or not value:
        return None
    for prefix in _CBV_PREFIXES.get(kind, ()):
        if value.startswith(prefix):
            return value[len(prefix):]
    return value


# --------------------------------------------------------------------------- EPCs
def gs1_check_digit(body: str) -> str:
    """GS1 mod-10 check digit (GS1 General Specifications §7.9) of a digit string without it."""
    if not body.isdigit():
        raise ValueError(f"GS1 key body must be digits, got {body!r}")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def _urn_unescape(value: str) -> str:
    return unquote(value)


def _dl_value(value: str) -> str:
    return quote(value, safe="-._~!$'()*+,;=:@")


def _invalid(value: str, why: str) -> EpcisInvalid:
    return EpcisInvalid([Issue("epc", "epc", f"{value!r}: {why}")])


def _urn_to_dl(urn: str) -> str:
    parts = urn.split(":")
    if len(parts) != 5:
        raise _invalid(urn, "EPC URN must look like urn:epc:id:<scheme>:<fields>")
    _, _, level, scheme, body = parts
    fields = body.split(".")

    def gtin(cp: str, iir: str) -> str:
        if not (cp.isdigit() and iir.isdigit()) or len(cp) + len(iir) != 13:
            raise _invalid(urn, "company prefix + indicator/item reference must be 13 digits")
        b = iir[0] + cp + iir[1:]
        return b + gs1_check_digit(b)

    if level == "id" and scheme == "sgtin" and len(fields) >= 3:
        return f"{DL_HOST}/01/{gtin(fields[0], fields[1])}/21/{_dl_value(_urn_unescape('.'.join(fields[2:])))}"
    if level == "class" and scheme == "lgtin" and len(fields) >= 3:
        return f"{DL_HOST}/01/{gtin(fields[0], fields[1])}/10/{_dl_value(_urn_unescape('.'.join(fields[2:])))}"
    if level == "idpat" and scheme == "sgtin" and len(fields) == 3 and fields[2] == "*":
        return f"{DL_HOST}/01/{gtin(fields[0], fields[1])}"
    if level == "id" and scheme == "sscc" and len(fields) == 2:
        cp, ref = fields
        if not (cp.isdigit() and ref.isdigit()) or len(cp) + len(ref) != 17:
            raise _invalid(urn, "SSCC company prefix + serial reference must be 17 digits")
        b = ref[0] + cp + ref[1:]
        return f"{DL_HOST}/00/{b}{gs1_check_digit(b)}"
    if level == "id" and scheme == "sgln" and len(fields) >= 3:
        cp, loc, ext = fields[0], fields[1], ".".join(fields[2:])
        if not (cp.isdigit() and loc.isdigit()) or len(cp) + len(loc) != 12:
            raise _invalid(urn, "GLN company prefix + location reference must be 12 digits")
        gln = cp + loc + gs1_check_digit(cp + loc)
        return f"{DL_HOST}/414/{gln}" + ("" if ext in ("", "0") else f"/254/{_dl_value(_urn_unescape(ext))}")
    if level == "id" and scheme == "grai" and len(fields) >= 3:
        cp, asset, serial = fields[0], fields[1], ".".join(fields[2:])
        b = "0" + cp + asset
        if not b.isdigit() or len(b) != 13:
            raise _invalid(urn, "GRAI company prefix + asset type must be 12 digits")
        return f"{DL_HOST}/8003/{b}{gs1_check_digit(b)}{_dl_value(_urn_unescape(serial))}"
    if level == "id" and scheme == "giai" and len(fields) >= 2:
        return f"{DL_HOST}/8004/{_dl_value(_urn_unescape(fields[0] + '.'.join(fields[1:])))}"
    return urn  # other EPC schemes (gdti, gsrn, …) stay as written


_DL_PRIMARY = {"01", "00", "414", "8003", "8004", "8006", "8010", "8017", "8018", "253", "255", "401", "402"}


def _dl_canonical(uri: str) -> str:
    parts = urlsplit(uri)
    segs = [s for s in parts.path.split("/") if s != ""]
    # find the primary key: the first segment that is a known primary AI with a value after it
    start = next((i for i, s in enumerate(segs) if s in _DL_PRIMARY and i + 1 < len(segs)), None)
    if start is None:
        raise _invalid(uri, "not a GS1 Digital Link URI (no primary key such as /01/<GTIN>)")
    pairs: dict[str, str] = {}
    rest = segs[start:]
    if len(rest) % 2:
        raise _invalid(uri, "GS1 Digital Link path must be AI/value pairs")
    for i in range(0, len(rest), 2):
        pairs[rest[i]] = unquote(rest[i + 1])
    pk = rest[0]
    val = pairs[pk]
    if pk == "01":
        if not val.isdigit() or len(val) not in (8, 12, 13, 14):
            raise _invalid(uri, "GTIN must have 8, 12, 13 or 14 digits")
        val = val.zfill(14)
        if gs1_check_digit(val[:-1]) != val[-1]:
            raise _invalid(uri, f"GTIN {val} has a wrong check digit")
        if "21" in pairs:
            return f"{DL_HOST}/01/{val}/21/{_dl_value(pairs['21'])}"
        if "10" in pairs:
            return f"{DL_HOST}/01/{val}/10/{_dl_value(pairs['10'])}"
        return f"{DL_HOST}/01/{val}"
    if pk == "414" and "254" in pairs:
        return f"{DL_HOST}/414/{val}/254/{_dl_value(pairs['254'])}"
    return f"{DL_HOST}/{pk}/{_dl_value(val)}"


_HDL_PATH = re.compile(r"/id/(88\.[0-9]+\.[0-9]+/[A-Za-z0-9._-]{1,128})$")


def canonical_epc(value: str) -> str:
    """One spelling per object or class (memoised: the same EPC recurs across a document's events).

    * GS1 keys (EPC URN or Digital Link on any host) → ``https://id.gs1.org/…`` (GTIN-14, check
      digit computed / checked, query string dropped; SGTIN → ``/01/…/21/…``, LGTIN → ``/01/…/10/…``);
    * our identifiers (``hdl:88.x.y/s``, ``88.x.y/s`` or ``…/id/88.x.y/s``) → ``hdl:88.x.y/s``;
    * any other URI (``urn:uuid:…``, private URNs) stays as written.

    Raises:
        EpcisInvalid: a malformed GS1 URN / Digital Link URI.
    """
    if not isinstance(value, str) or not value.strip():
        raise _invalid(str(value), "EPC must be a non-empty string")
    return _canonical_epc(value)


@lru_cache(maxsize=65536)
def _canonical_epc(value: str) -> str:
    """:func:`canonical_epc` of a non-empty string (bounded LRU cache; errors are not cached)."""
    v = value.strip()
    if v.startswith(HDL_SCHEME):
        ident = v[len(HDL_SCHEME):]
        if not is_valid_identifier(ident):
            raise _invalid(v, "hdl: URI must carry an identifier 88.<industry>.<enterprise>/<suffix>")
        return HDL_SCHEME + ident
    if v.startswith("88.") and is_valid_identifier(v):  # every identifier starts with the root 88
        return HDL_SCHEME + v
    low = v.lower()
    if low.startswith("urn:epc:"):
        return _urn_to_dl(v)
    if low.startswith(("http://", "https://")):
        m = _HDL_PATH.search(urlsplit(v).path)
        if m and is_valid_identifier(m.group(1)):
            return HDL_SCHEME + m.group(1)
        return _dl_canonical(v)
    return v


def epc_kind(key: str) -> str:
    """``"instance"`` or ``"class"`` for a canonical EPC (LGTIN and bare GTIN are classes)."""
    if key.startswith(DL_HOST + "/01/") and "/21/" not in key:
        return "class"
    return "instance"


# identifier suffix <-> canonical EPC -------------------------------------------------------------
def _esc(text: str) -> str:
    out = []
    for ch in text:
        if ch.isascii() and (ch.isalnum() or ch == "-"):
            out.append(ch)
        else:
            out.extend(f"_{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def _unesc(text: str) -> str:
    raw = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "_":
            raw += bytes.fromhex(text[i + 1:i + 3])
            i += 3
        else:
            raw += text[i].encode()
            i += 1
    return raw.decode("utf-8")


def suffix_for_epc(key: str) -> str | None:
    """Identifier suffix of a canonical GS1 Digital Link key, e.g.
    ``https://id.gs1.org/01/04012345111118/21/9876`` → ``01.04012345111118.21.9876``.

    Characters outside ``[A-Za-z0-9-]`` in values are written ``_XX`` (UTF-8 hex), so the mapping is
    reversible with :func:`epc_for_suffix`. Returns None for keys that are not GS1 Digital Link URIs
    or whose suffix would exceed 128 characters (the caller then assigns a sequential suffix).
    """
    if not key.startswith(DL_HOST + "/"):
        return None
    segs = key[len(DL_HOST) + 1:].split("/")
    suffix = ".".join(_esc(unquote(s)) for s in segs)
    return suffix if len(suffix) <= 128 else None


def epc_for_suffix(suffix: str) -> str | None:
    """Inverse of :func:`suffix_for_epc`; None when ``suffix`` is not of that form."""
    segs = suffix.split(".")
    if len(segs) < 2 or len(segs) % 2 or segs[0] not in _DL_PRIMARY:
        return None
    try:
        values = [_unesc(s) for s in segs]
        return canonical_epc(DL_HOST + "/" + "/".join(_dl_value(v) for v in values))
    except (ValueError, EpcisInvalid, UnicodeDecodeError):
        return None


# --------------------------------------------------------------------------- graph extraction
@dataclass(frozen=True)
class EpcRef:
    """An EPC named by an event: ``key`` canonical, ``raw`` as written, ``role`` one of
    ``epc``, ``parent``, ``child``, ``input``, ``output`` (quantity elements included, by class)."""

    key: str
    raw: str
    role: str


_ROLE_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("epcList", "epc", False), ("quantityList", "epc", True),
    ("childEPCs", "child", False), ("childQuantityList", "child", True),
    ("inputEPCList", "input", False), ("inputQuantityList", "input", True),
    ("outputEPCList", "output", False), ("outputQuantityList", "output", True),
)


def event_epcs(event: Mapping[str, Any], *, index: int | None = None) -> list[EpcRef]:
    """Every EPC / EPC class of an event with its role (parentID → ``parent``).

    Raises:
        EpcisInvalid: a malformed GS1 EPC, naming ``<field>[i]`` and the event index.
    """
    out: list[EpcRef] = []
    issues: list[Issue] = []

    def add(raw: Any, role: str, where: str) -> None:
        if not isinstance(raw, str):
            return
        try:
            out.append(EpcRef(canonical_epc(raw), raw, role))
        except EpcisInvalid as exc:
            issues.append(Issue(where, "epc", exc.issues[0].message, index))

    if "parentID" in event:
        add(event.get("parentID"), "parent", "parentID")
    for name, role, is_qty in _ROLE_FIELDS:
        items = event.get(name)
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            if is_qty:
                if isinstance(item, Mapping):
                    add(item.get("epcClass"), role, f"{name}[{i}].epcClass")
            else:
                add(item, role, f"{name}[{i}]")
    if issues:
        raise EpcisInvalid(issues)
    return out


@dataclass(frozen=True)
class LineageLink:
    """A directed edge ``src → dst`` (material flows downstream) made by one event."""

    src: str
    dst: str


@dataclass
class EventGraph:
    """EPCs of one event (:class:`EpcRef`) and the lineage links it makes."""

    epcs: list[EpcRef] = field(default_factory=list)
    links: list[LineageLink] = field(default_factory=list)


def lineage_links(event: Mapping[str, Any], epcs: list[EpcRef]) -> list[LineageLink]:
    """Lineage edges made by an event (EPCIS 2.0 §7.4):

    * TransformationEvent: every input → every output;
    * AggregationEvent / AssociationEvent with action ADD or OBSERVE: every child → the parent
      (a part → the assembly it went into); DELETE (disaggregation) makes no edge;
    * ObjectEvent / TransactionEvent: none (they annotate their EPCs: inspections, shipping…).
    """
    etype = event.get("type")
    if etype == "TransformationEvent":
        ins = [e.key for e in epcs if e.role == "input"]
        outs = [e.key for e in epcs if e.role == "output"]
        return [LineageLink(a, b) for a in dict.fromkeys(ins) for b in dict.fromkeys(outs) if a != b]
    if etype in ("AggregationEvent", "AssociationEvent") and event.get("action") in ("ADD", "OBSERVE"):
        parents = [e.key for e in epcs if e.role == "parent"]
        children = [e.key for e in epcs if e.role == "child"]
        return [LineageLink(c, p) for p in parents for c in dict.fromkeys(children) if c != p]
    return []
