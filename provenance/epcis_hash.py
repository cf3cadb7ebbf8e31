"""Native GS1 EPCIS event hash IDs (CBV 2.0 §8.9): the pre-hash string built straight from EPCIS 2.0 JSON.

Pure (no I/O, no JSON-LD processor). :func:`prehash_strings` gives the canonical pre-hash string of
every event of a document, :func:`hash_id` turns one into ``ni:///sha-256;<64 hex>?ver=CBV2.0``
(RFC 6920 named information, 32-byte SHA-256 digest of the UTF-8 pre-hash string).

The algorithm is GS1's "EPCIS Event Hash ID" (CBV 2.0 §8.9; the 24 rules and the canonical property
order published with R. Tröger's ``epcis-event-hash-generator``). Today's stored identifiers were made by
that package (1.9.3, pinned); this module reproduces its output byte for byte, including how it
reads the written rules where they leave room:

* **Order.** eventType, eventTime, eventTimeZoneOffset, certificationInfo, parentID, epcList,
  inputEPCList, childEPCs, quantityList, childQuantityList, inputQuantityList, outputEPCList,
  outputQuantityList, action, transformationID, bizStep, disposition, persistentDisposition
  (set, unset), readPoint, bizLocation, sensorElementList (sensorMetadata, sensorReport), then one
  lexically sorted block of everything else: ``bizTransactionList``, ``destinationList``, ``ilmd``,
  ``sourceList`` and the user extensions. *GS1's materials conflict here*: the written canonical
  order puts bizTransactionList, sourceList, destinationList before sensorElementList (rules 20-22),
  but every published reference hash (``ReferenceEventHashAlgorithm3``, ``epcisDocWithVariousEventTypes``
  …) was computed with those three lists in the sorted tail, i.e. destinationList before sourceList.
  We follow the published vectors: changing it would change every stored ID of an event that has
  one of these lists.
* **Values.** Leading/trailing white space trimmed; ``urn:epcglobal:cbv:{bizstep,disp,btt,sdt,er}:``
  → ``https://ref.gs1.org/cbv/{BizStep,Disp,BTT,SDT,ER}-``; bare CBV words (``shipping``,
  ``in_transit``, ``po``, ``owning_party``, ``Temperature``…) → their GS1 Web URI whenever the word
  occurs as a value anywhere in the document and exactly one expanded CBV / GS1-voc URI of the document
  ends with ``-word`` or ``/word`` (the package's rule, document-wide); ``prefix:rest`` values and keys
  whose prefix the document's own ``@context`` object defines → ``{iri}rest`` (keys) / ``iri rest``
  (values); numbers without trailing zeros; EPC URNs and GS1 Digital Link URIs → constrained
  canonical Digital Link (:func:`dl_normalise`); time stamps (eventTime, sensor time, startTime,
  endTime) → UTC, millisecond precision, ``Z``.
* **Ignored.** ``eventID``, ``recordTime``, ``errorDeclaration``, ``comment``/``rdfs:comment``.
* **Extensions** inside readPoint, bizLocation, quantity elements, persistentDisposition,
  sensorElement, sensorMetadata and sensorReport follow their parent's regular fields (rule 21);
  event-level extensions and ilmd are in the sorted tail (rules 19-20).

Where the written algorithm is clear and the package is not, the native path follows the text. These
are the ONLY differences from the package (each flagged in :attr:`Prehash.deviations`, each tested):

==================  ===========================================  ==========================================
flag                package 1.9.3                                native (rule)
==================  ===========================================  ==========================================
``boolean``         JSON ``true`` hashed as ``True``              ``true``, as in the XML binding (rule 3)
``long-number``     digit strings parsed as binary floats:        exact decimal: the digits are kept
                    ``12345678901234567890`` → ``…567168``         (rules 5-6 trim zeros, nothing else)
``exponent``        ``0.00001`` written ``1e-05``                 ``0.00001`` (plain decimal, rule 6)
``sub-ms-time``     sub-millisecond digits truncated to µs and    rounded half-up on all digits (rule 9;
                    rounded half-even: ``.0005`` → ``.000``        the algorithm notes: "5-9 rounds up")
``time-carry``      ``…59.9995Z`` crashes (microsecond 1000000)   carried: ``…00.000Z`` of the next second
``cbvmda-key``      ``cbvmda:lotNumber`` left unexpanded          ``{urn:epcglobal:cbv:mda}lotNumber`` (rules
                                                                  15/19; the XML binding's namespace, so
                                                                  XML and JSON agree)
==================  ===========================================  ==========================================

Known quirk kept for compatibility: the bare-word replacement is document-wide, so an extension value
``"shipping"`` becomes ``https://ref.gs1.org/cbv/BizStep-shipping`` only when some event of the same
document has that bizStep; an event's ID can thus depend on the document it was captured in.

Documents outside what this module reproduces exactly (JSON-LD keywords inside events, ``@context``
term definitions, unprefixed unknown keys, extensions the package would hash twice, Digital Link URIs
with percent-escapes or look-alike hosts, 12-digit-prefix GRAI/GDTI URNs…) raise
:class:`NativeHashUnsupported`; :func:`provenance.epcis.event_hash_ids` then falls back to the package.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from provenance.errors import ProvenanceError

__all__ = [
    "DEVIATIONS",
    "NativeHashUnsupported",
    "Prehash",
    "prehash_strings",
    "hash_id",
    "dl_normalise",
]

DEVIATIONS = ("boolean", "long-number", "exponent", "sub-ms-time", "time-carry", "cbvmda-key")
"""Flags of the deliberate differences from ``epcis-event-hash-generator`` 1.9.3 (see module docstring)."""


class NativeHashUnsupported(ProvenanceError):
    """The native path cannot reproduce the reference pre-hash of this document; ``reason`` says why.

    Not a validation error: the caller computes the hash with the reference package instead."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Prehash:
    """One event's pre-hash string and the deviation flags (subset of :data:`DEVIATIONS`) it hit."""

    text: str
    deviations: set[str] = field(default_factory=set)


def hash_id(prehash: str) -> str:
    """``ni:///sha-256;<64 lowercase hex>?ver=CBV2.0`` of a pre-hash string (CBV 2.0 §8.9, RFC 6920 §3)."""
    return "ni:///sha-256;" + hashlib.sha256(prehash.encode("utf-8")).hexdigest() + "?ver=CBV2.0"


# --------------------------------------------------------------------------------------------- vocabulary
_CBV = "https://ref.gs1.org/cbv/"
_VOC = "https://gs1.org/voc/"
_COLLECTED = ("https://ref.gs1.org/cbv", "https://gs1.org/voc")

_BIZSTEPS = (
    "accepting arriving assembling collecting commissioning consigning creating_class_instance cycle_counting "
    "decommissioning departing destroying disassembling dispensing encoding entering_exiting holding inspecting "
    "installing killing loading other packing picking receiving removing repackaging repairing replacing reserving "
    "retail_selling sampling sensor_reporting shipping staging_outbound stock_taking stocking storing transporting "
    "unloading unpacking void_shipping").split()
_DISPOSITIONS = (
    "active available completeness_verified completeness_inferred conformant container_closed container_open "
    "damaged destroyed dispensed disposed encoded expired in_progress in_transit inactive mismatch_instance "
    "mismatch_class mismatch_quantity needs_replacement no_pedigree_match non_conformant non_sellable_other "
    "partially_dispensed recalled reserved retail_sold returned sellable_accessible sellable_not_accessible stolen "
    "unavailable unknown").split()
_BTT = "bol cert desadv inv pedigree po poc prodorder recadv rma testprd testres upevt".split()
_SDT = "owning_party possessing_party location".split()
_ER = "did_not_occur incorrect_data".split()
_MEASUREMENTS = (
    "AbsoluteHumidity AbsorbedDose AbsorbedDoseRate Acceleration Radioactivity Altitude AmountOfSubstance "
    "AmountOfSubstancePerUnitVolume Angle AngularAcceleration AngularMomentum AngularVelocity Area Capacitance "
    "Conductance Conductivity Count Density Dimensionless DoseEquivalent DoseEquivalentRate DynamicViscosity "
    "ElectricCharge ElectricCurrent ElectricCurrentDensity ElectricFieldStrength Energy Exposure Force Frequency "
    "Illuminance Inductance Irradiance KinematicViscosity Length LinearMomentum Luminance LuminousFlux "
    "LuminousIntensity MagneticFlux MagneticFluxDensity MagneticVectorPotential Mass MassConcentration MassFlowRate "
    "MassPerAreaTime MemoryCapacity MolalityOfSolute MolarEnergy MolarMass MolarVolume Power Pressure RadiantFlux "
    "RadiantIntensity RelativeHumidity Resistance Resistivity SolidAngle SpecificVolume Speed SurfaceDensity "
    "SurfaceTension Temperature Time Torque Voltage Volume VolumeFlowRate VolumeFraction VolumetricFlux "
    "Wavenumber").split()
_COMPONENTS = ("x y z axial_distance azimuth height spherical_radius polar_angle elevation_angle easting northing "
               "latitude longitude altitude").split()



class _Vocab(dict[str, str]):
    """Term table of a property-scoped ``@type: @vocab`` position of the GS1 context: word -> IRI."""


_T_BIZSTEP = _Vocab({w: f"{_CBV}BizStep-{w}" for w in _BIZSTEPS})
_T_DISP = _Vocab({w: f"{_CBV}Disp-{w}" for w in _DISPOSITIONS})
_T_BTT = _Vocab({w: f"{_CBV}BTT-{w}" for w in _BTT})
_T_SDT = _Vocab({w: f"{_CBV}SDT-{w}" for w in _SDT})
_T_ER = _Vocab({w: f"{_CBV}ER-{w}" for w in _ER})
_T_MT = _Vocab({w: f"{_VOC}{w}" for w in _MEASUREMENTS})
_T_EXC = _Vocab({w: f"{_VOC}{w}" for w in ("ALARM_CONDITION", "ERROR_CONDITION")})
_T_COMP = _Vocab({w: f"{_CBV}Comp-{w}" for w in _COMPONENTS})

_GS1_PREFIXES = {
    "epcis": "https://ref.gs1.org/epcis/", "cbv": _CBV, "cbvmda": "urn:epcglobal:cbv:mda:", "gs1": _VOC,
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#", "owl": "http://www.w3.org/2002/07/owl#",
    "xsd": "http://www.w3.org/2001/XMLSchema#", "dcterms": "http://purl.org/dc/terms/",
}
# top-level terms of the GS1 context: an inline @context may not redefine them (the context is @protected)
_GS1_TERMS = frozenset(
    "id type baseURL ObjectEvent AggregationEvent TransformationEvent AssociationEvent TransactionEvent Collection "
    "member eventTime recordTime eventTimeZoneOffset action certificationInfo bizStep disposition bizLocation "
    "readPoint transformationID epcList sourceList destinationList persistentDisposition quantity epcClass uom "
    "quantityList bizTransactionList parentID childEPCs childQuantityList inputEPCList outputEPCList "
    "inputQuantityList outputQuantityList sensorElementList errorDeclaration eventID creationDate sender receiver "
    "instanceIdentifier schemaVersion ilmd EPCISDocument EPCISQueryDocument epcisHeader masterData vocabularyList "
    "epcisBody queryResults subscriptionID queryName resultsBody eventList children".split()) | frozenset(_GS1_PREFIXES)
GS1_CONTEXT_URLS = frozenset({
    "https://gs1.github.io/EPCIS/epcis-context.jsonld",
    "https://gs1.github.io/EPCIS/epcis-context-simple.jsonld",
    "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
    "https://ref.gs1.org/standards/epcis/epcis-context.jsonld",
})
_EVENT_TYPES = frozenset({"ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent",
                          "AssociationEvent"})
_IGNORED_KEYS = frozenset({"#text", "rdfs:comment", "comment"})
_GEN_DELIMS = frozenset(":/?#[]@")

# position kinds of the JSON-LD expansion: literal, IRI (@type @id) or vocabulary (@type @vocab + terms)
_LIT, _ID = 0, 1
_SCOPE_QE = {"epcClass": _ID, "quantity": _LIT, "uom": _LIT}
_SCOPE_IDOBJ = {"id": _ID}
_SCOPE_PD = {"set": _T_DISP, "unset": _T_DISP}
_SCOPE_BTX = {"type": _T_BTT, "bizTransaction": _ID}
_SCOPE_SRC = {"type": _T_SDT, "source": _ID}
_SCOPE_DST = {"type": _T_SDT, "destination": _ID}
_SENSOR_COMMON = {"deviceID": _ID, "deviceMetadata": _ID, "rawData": _ID, "dataProcessingMethod": _ID, "time": _LIT}
_SCOPE_SM = {**_SENSOR_COMMON, "startTime": _LIT, "endTime": _LIT, "bizRules": _ID}
_SCOPE_SR = {**_SENSOR_COMMON, "type": _T_MT, "exception": _T_EXC, "component": _T_COMP,
             "coordinateReferenceSystem": _ID, "microorganism": _ID, "chemicalSubstance": _ID, "uriValue": _ID,
             "value": _LIT, "stringValue": _LIT, "booleanValue": _LIT, "hexBinaryValue": _LIT, "minValue": _LIT,
             "maxValue": _LIT, "meanValue": _LIT, "sDev": _LIT, "percRank": _LIT, "percValue": _LIT, "uom": _LIT}
_SCOPE_SE = {"sensorMetadata": _SCOPE_SM, "sensorReport": _SCOPE_SR, "type": _Vocab()}
_SCOPE_ED = {"declarationTime": _LIT, "reason": _T_ER, "correctiveEventIDs": _ID}
_SCOPE_EVENT: dict[str, Any] = {
    "type": _LIT, "eventTime": _LIT, "recordTime": _LIT, "eventTimeZoneOffset": _LIT, "action": _LIT,
    "eventID": _ID, "id": _ID, "certificationInfo": _ID, "parentID": _ID, "epcList": _ID, "inputEPCList": _ID,
    "outputEPCList": _ID, "childEPCs": _ID, "transformationID": _ID, "bizStep": _T_BIZSTEP,
    "disposition": _T_DISP, "persistentDisposition": _SCOPE_PD, "readPoint": _SCOPE_IDOBJ,
    "bizLocation": _SCOPE_IDOBJ, "quantityList": _SCOPE_QE, "childQuantityList": _SCOPE_QE,
    "inputQuantityList": _SCOPE_QE, "outputQuantityList": _SCOPE_QE, "bizTransactionList": _SCOPE_BTX,
    "sourceList": _SCOPE_SRC, "destinationList": _SCOPE_DST, "sensorElementList": _SCOPE_SE,
    "errorDeclaration": _SCOPE_ED, "ilmd": None,
}


# --------------------------------------------------------------------------------------------- document context
class _Doc:
    """Per-document state: prefix table of the inline @context and the bare-word replacement table."""

    def __init__(self, context: Any) -> None:
        self.prefixes = dict(_GS1_PREFIXES)
        inline: dict[str, str] = {}
        entries = context if isinstance(context, list) else [context]
        gs1 = False
        for entry in entries:
            if isinstance(entry, str):
                if entry not in GS1_CONTEXT_URLS:
                    raise NativeHashUnsupported(f"@context {entry[:80]!r} is not a GS1 EPCIS 2.0 context")
                gs1 = True
            elif isinstance(entry, Mapping):
                for key, value in entry.items():
                    same = _GS1_PREFIXES.get(key) == value  # a protected term may be restated unchanged
                    if not isinstance(value, str) or key.startswith("@") or ":" in key \
                            or (key in _GS1_TERMS and not same):
                        raise NativeHashUnsupported(f"@context entry {key!r} is not a plain prefix")
                    inline[key] = value
            elif entry is not None:
                raise NativeHashUnsupported("unsupported @context form")
        if not gs1:
            raise NativeHashUnsupported("the @context does not name the GS1 EPCIS 2.0 context")
        # JSON-LD 1.1 §4.2.2: a simple term is a prefix when its IRI ends with a gen-delim character
        self.prefixes.update({k: v for k, v in inline.items() if v[-1:] in _GEN_DELIMS})
        self.inline_keys = frozenset(inline)
        # the package reads namespaces only from a *list* @context
        self.namespaces: dict[str, str] = dict(inline) if isinstance(context, list) else {}
        self.inline_raw = inline
        self.expanded: set[str] = set()
        self.suffixes: dict[str, set[str]] | None = None

    # -------------------------------------------------------------- JSON-LD expansion, only as far as needed
    def _expand(self, value: str, terms: Mapping[str, str] | None) -> str:
        if terms is not None:
            hit = terms.get(value)
            if hit is not None:
                return hit
            if value in _GS1_TERMS or value in self.inline_keys:
                raise NativeHashUnsupported(f"vocabulary value {value!r} is a JSON-LD term")
        prefix, sep, rest = value.partition(":")
        if sep and not rest.startswith("//"):
            iri = self.prefixes.get(prefix)
            if iri is not None:
                return iri + rest
        return value

    def collect(self, obj: Any, scope: Mapping[str, Any] | None, kind: Any = _LIT) -> None:
        """Add the CBV / GS1-voc IRIs that the JSON-LD expansion of ``obj`` contains to :attr:`expanded`.

        ``scope`` maps the keys known at this level to a position kind (literal, IRI, term table) or to
        the scope of a nested object; prefixed keys are literal; other keys are refused."""
        if isinstance(obj, str):
            if kind is _ID:
                value = self._expand(obj, None)
            elif isinstance(kind, _Vocab):
                value = self._expand(obj, kind)
            else:
                value = obj
            if value.startswith(_COLLECTED):
                self.expanded.add(value)
        elif isinstance(obj, list):
            for item in obj:
                self.collect(item, scope, kind)
        elif isinstance(obj, Mapping):
            known = scope or {}
            for key, value in obj.items():
                if not isinstance(key, str) or key.startswith("@"):
                    raise NativeHashUnsupported(f"JSON-LD keyword or non-string key {key!r}")
                if key == "comment":
                    continue  # not a term: the expansion drops it
                if key in known:
                    sub = known[key]
                    if sub is _LIT or sub is _ID or isinstance(sub, _Vocab):
                        self.collect(value, None, sub)
                    else:
                        self.collect(value, sub)  # nested object (None: untyped, prefixed keys only)
                elif ":" in key:
                    self.collect(value, None)
                else:
                    raise NativeHashUnsupported(f"key {key!r} is neither an EPCIS field here nor prefixed")

    def freeze(self) -> None:
        table: dict[str, set[str]] = {}
        for iri in self.expanded:
            for i, ch in enumerate(iri):
                if ch == "-" or ch == "/":
                    table.setdefault(iri[i + 1:], set()).add(iri)
        self.suffixes = table
        # the package runs the bare-word replacement over the @context too, before reading namespaces
        for key, iri in self.inline_raw.items():
            if key in self.namespaces:
                self.namespaces[key] = self.replace(iri)

    def replace(self, value: str) -> str:
        hits = self.suffixes.get(value) if self.suffixes else None
        if hits is not None and len(hits) == 1:
            return next(iter(hits))
        return value

    def key_name(self, key: str, dev: _Flags) -> str:
        prefix, sep, rest = key.partition(":")
        if sep:
            iri = self.namespaces.get(prefix)
            if iri is not None:
                return "{" + iri + "}" + rest
            if prefix == "cbvmda":
                dev.add("cbvmda-key")
                return key if dev.legacy else "{urn:epcglobal:cbv:mda}" + rest
        return key


# --------------------------------------------------------------------------------------------- values
_WEB_VOCAB = (("urn:epcglobal:cbv:bizstep:", _CBV + "BizStep-"), ("urn:epcglobal:cbv:disp:", _CBV + "Disp-"),
              ("urn:epcglobal:cbv:btt:", _CBV + "BTT-"), ("urn:epcglobal:cbv:sdt:", _CBV + "SDT-"),
              ("urn:epcglobal:cbv:er:", _CBV + "ER-"))
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_MAX_EXPONENT = 60


def _float_form(text: str) -> str:
    """The package's number form: through a binary float, integral values printed as integers."""
    number = float(text)
    if int(number) == number:
        return str(int(number))
    return str(number)


def _exact_form(text: str) -> str:
    """Exact decimal form: no exponent, no leading '+', no leading or trailing zeros (rule 6)."""
    number = Decimal(text)
    if number == number.to_integral_value():
        return str(int(number))
    return format(number, "f").rstrip("0").rstrip(".")


class _Flags(set[str]):
    """Deviation flags of one event; ``legacy`` renders the package's form instead of the native one."""

    def __init__(self, legacy: bool = False) -> None:
        super().__init__()
        self.legacy = legacy


_NUMBER_START = frozenset("+-.0123456789")
_FLOAT_WORDS = frozenset({"inf", "nan", "infinity"})


def _number(text: str, dev: _Flags) -> str | None:
    """Canonical number form of ``text`` or None when it is not a number."""
    if text[0] not in _NUMBER_START and text.isascii() and text.lower() not in _FLOAT_WORDS:
        return None  # fast path: float() would refuse it too
    if text.isascii() and text.isdigit() and len(text) <= 15:
        return str(int(text))  # exact as a double as well: no deviation possible
    if _PLAIN_NUMBER.fullmatch(text) is None:
        try:
            float(text)
        except ValueError:
            return None
        raise NativeHashUnsupported(f"{text[:40]!r} is a number only to Python's float()")
    try:
        exponent = Decimal(text).adjusted()
    except InvalidOperation as exc:  # pragma: no cover - the pattern only admits decimals
        raise NativeHashUnsupported(f"number {text[:40]!r}") from exc
    if abs(exponent) > _MAX_EXPONENT:
        raise NativeHashUnsupported(f"number {text[:40]!r} out of range")
    exact = _exact_form(text)
    legacy = _float_form(text)
    if exact != legacy:
        dev.add("exponent" if "e" in legacy else "long-number")
    return legacy if dev.legacy else exact


def _canon(text: str, dev: _Flags) -> str:
    """Canonical form of a (stripped, non-empty) value: CBV web URI, number, Digital Link (rules 6, 14, 17, 18)."""
    if len(text) > 256:  # long values are rare and unbounded: keep them out of the cache
        return _canon_uncached(text, dev)
    result, flags = _canon_cached(text, dev.legacy)
    if flags:
        dev.update(flags)
    return result


@lru_cache(maxsize=65536)
def _canon_cached(text: str, legacy: bool) -> tuple[str, frozenset[str]]:
    dev = _Flags(legacy)
    return _canon_uncached(text, dev), frozenset(dev)


def _canon_uncached(text: str, dev: _Flags) -> str:
    if "urn:epcglobal:cbv:" in text:
        for old, new in _WEB_VOCAB:
            text = text.replace(old, new)
    number = _number(text, dev)
    if number is not None:
        text = number
    if "." in text:
        normalised = dl_normalise(text)
        if normalised is not None:
            return normalised
    return text


_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
                   r"(Z|[+-][0-9]{2}:[0-9]{2})")
_MS = Decimal("0.001")


def _time(text: str, dev: _Flags) -> str:
    """UTC, millisecond precision, ``Z`` (rules 8-9); sub-millisecond digits rounded half-up."""
    m = _TIME.fullmatch(text)
    if m is None:
        raise NativeHashUnsupported(f"time stamp {text[:40]!r} is not YYYY-MM-DDThh:mm:ss[.f](Z|±hh:mm)")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    if zone == "Z":
        tz = UTC
    else:
        sign = -1 if zone[0] == "-" else 1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise NativeHashUnsupported(f"time zone offset {zone!r}")
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        base = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz)
        if not frac or len(frac) <= 3:
            millis = int(frac.ljust(3, "0")) if frac else 0
        else:
            millis = int(Decimal("0." + frac).quantize(_MS, rounding=ROUND_HALF_UP) * 1000)
            micros = int(frac[:6].ljust(6, "0"))
            legacy = int(Decimal(micros).scaleb(-3).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
            if legacy == 1000:
                dev.add("time-carry")
                if dev.legacy:
                    raise NativeHashUnsupported("the package cannot hash a time that rounds up to a full second")
            elif legacy != millis:
                dev.add("sub-ms-time")
            if dev.legacy:
                millis = legacy
        utc = (base + timedelta(milliseconds=millis)).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise NativeHashUnsupported(f"time stamp {text[:40]!r}: {exc}") from exc
    if not 1 <= utc.year <= 9999:
        raise NativeHashUnsupported(f"time stamp {text[:40]!r} out of range")
    return (f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}."
            f"{utc.microsecond // 1000:03d}Z")


# --------------------------------------------------------------------------------------------- GS1 Digital Link
def _check_digit(digits: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return str((10 - total % 10) % 10)


_PCT_ESCAPE = r"%(?:2[125-9A-Fa-f]|3[0-9A-Fa-f]|4[1-9A-Fa-f]|5[0-9AaFf]|6[1-9A-Fa-f]|7[0-9Aa])"
_EPC_CHAR = re.compile(r"(?:" + _PCT_ESCAPE + r"|[!')(*+,.0-9:;=A-Za-z_-])*")  # TDS 2.0 GS3A3 component
_CPI_CHAR = re.compile(r"(?:%(?:2[3dfDF]|3[0-9]|4[1-9A-Fa-f]|5[0-9Aa])|[0-9A-Z-])*")
_DIGITS = re.compile(r"[0-9]*")
_DL_ESCAPE = str.maketrans({"!": "%21", "(": "%28", ")": "%29", "*": "%2A", "+": "%2B", ",": "%2C", ":": "%3A"})


def _component_len(text: str, pattern: re.Pattern[str]) -> int | None:
    """Number of characters (a percent-escape counts as one) when ``text`` is all ``pattern``, else None."""
    if pattern.fullmatch(text) is None:
        return None
    return len(text) - 2 * text.count("%")


def _digits(text: str, n: int | None = None) -> bool:
    return text.isascii() and text.isdigit() and (n is None or len(text) == n)


def _urn(uri: str) -> str | None:
    """EPC pure-identity / class / pattern URN (TDS 2.0 §6) → canonical GS1 Digital Link, as the package does."""
    fields = uri.split(":", 4)  # urn : epc : level : scheme : body (the body may contain ':')
    if len(fields) != 5:
        return None
    head, body = ":".join(fields[:4]), fields[4]
    parts = body.split(".")
    dl = "https://id.gs1.org/"

    def cp_ref(total: int, allow_empty_ref: bool = False) -> tuple[str, str] | None:
        if len(parts) < 2:
            return None
        cp, ref = parts[0], parts[1]
        if not (_digits(cp) and 6 <= len(cp) <= 12):
            return None
        if len(cp) == 12 and ref == "":
            return (cp, ref) if allow_empty_ref else None
        return (cp, ref) if _digits(ref, total - len(cp)) else None

    def serial_ok(value: str, max_len: int, pattern: re.Pattern[str] = _EPC_CHAR) -> bool:
        n = _component_len(value, pattern)
        return n is not None and 1 <= n <= max_len

    def gtin(cp: str, ref: str) -> str:
        raw = ref[:1] + cp + ref[1:]
        return raw + _check_digit(raw)

    if head in ("urn:epc:id:sgtin", "urn:epc:class:lgtin", "urn:epc:id:upui"):
        ok = cp_ref(13)
        rest = ".".join(parts[2:])
        limit = 28 if head.endswith("upui") else 20
        if ok is None or len(parts) < 3 or not serial_ok(rest, limit):
            return None
        ai = {"urn:epc:id:sgtin": "/21/", "urn:epc:class:lgtin": "/10/", "urn:epc:id:upui": "/235/"}[head]
        return dl + "01/" + gtin(*ok) + ai + rest.translate(_DL_ESCAPE)
    if head in ("urn:epc:idpat:sgtin", "urn:epc:idpat:upui"):
        ok = cp_ref(13)
        if ok is None or len(parts) != 3 or parts[2] != "*":
            return None
        return dl + "01/" + gtin(*ok)
    if head == "urn:epc:id:sscc":
        ok = cp_ref(17)
        if ok is None or len(parts) != 2:
            return None
        return dl + "00/" + gtin(*ok)
    if head in ("urn:epc:id:sgln", "urn:epc:id:pgln"):
        ok = cp_ref(12, allow_empty_ref=True)
        if ok is None:
            return None
        gln = ok[0] + ok[1]
        gln += _check_digit(gln)
        if head.endswith("pgln"):
            return dl + "417/" + gln if len(parts) == 2 else None
        ext = ".".join(parts[2:])
        if len(parts) < 3 or not serial_ok(ext, 20):
            return None
        return dl + "414/" + gln + ("" if ext == "0" else "/254/" + ext.translate(_DL_ESCAPE))
    if head in ("urn:epc:id:grai", "urn:epc:id:gdti", "urn:epc:id:sgcn", "urn:epc:idpat:grai",
                "urn:epc:idpat:gdti", "urn:epc:idpat:sgcn"):
        kind = head.rsplit(":", 1)[1]
        pattern = head.startswith("urn:epc:idpat:")
        ok = cp_ref(12, allow_empty_ref=kind == "sgcn" and not pattern)
        if ok is None or len(parts) < 3:
            if len(parts) >= 2 and _digits(parts[0]) and (parts[1] == "" or kind == "gdti"):
                # 12-digit prefixes (the package's patterns want odd dots) and undotted GDTI serials
                raise NativeHashUnsupported(f"{kind} URN {uri[:60]!r}")
            return None
        raw = ok[0] + ok[1]
        rest = ".".join(parts[2:])
        if kind == "grai":
            raw = "0" + raw
        prefix = {"grai": "8003/", "gdti": "253/", "sgcn": "255/"}[kind] + raw + _check_digit(raw)
        if pattern:
            return dl + prefix if rest == "*" else None
        if kind == "sgcn":
            return dl + prefix + rest if _digits(rest) and 1 <= len(rest) <= 12 else None
        # GDTI: the package's pattern counts the separating dot as one of the 20 serial characters (so a lone
        # dot is a serial too)
        if not (serial_ok(rest, 16 if kind == "grai" else 19) or (kind == "gdti" and rest == "")):
            return None
        return dl + prefix + rest.translate(_DL_ESCAPE)
    if head in ("urn:epc:id:giai", "urn:epc:id:ginc"):
        cp = parts[0]
        rest = body[len(cp) + 1:]
        if len(parts) < 2 or not (_digits(cp) and 6 <= len(cp) <= 12) or not serial_ok(rest, 30 - len(cp)):
            return None
        return dl + ("8004/" if head.endswith("giai") else "401/") + cp + rest.translate(_DL_ESCAPE)
    if head in ("urn:epc:id:gsrn", "urn:epc:id:gsrnp", "urn:epc:id:gsin"):
        total = 16 if head.endswith("gsin") else 17
        ok = cp_ref(total)
        if ok is None or len(parts) != 2:
            return None
        raw = ok[0] + ok[1]
        ai = {"urn:epc:id:gsrn": "8018/", "urn:epc:id:gsrnp": "8017/", "urn:epc:id:gsin": "402/"}[head]
        return dl + ai + raw + _check_digit(raw)
    if head in ("urn:epc:id:itip", "urn:epc:idpat:itip"):
        ok = cp_ref(13)
        if ok is None or len(parts) < 5 or not (_digits(parts[2], 2) and _digits(parts[3], 2)):
            return None
        rest = ".".join(parts[4:])
        base = dl + "8006/" + gtin(*ok) + parts[2] + parts[3]
        if head.startswith("urn:epc:idpat:"):
            return base if rest == "*" else None
        return base + "/21/" + rest.translate(_DL_ESCAPE) if serial_ok(rest, 20) else None
    if head in ("urn:epc:id:cpi", "urn:epc:idpat:cpi"):
        cp = parts[0]
        if len(parts) != 3 or not (_digits(cp) and 6 <= len(cp) <= 12):
            return None
        ref_len = _component_len(parts[1], _CPI_CHAR)
        if ref_len is None or not 1 <= ref_len <= 30 - len(cp):
            return None
        if head.endswith("idpat:cpi"):
            return dl + "8010/" + cp + parts[1] if parts[2] == "*" else None
        if not (_digits(parts[2]) and 1 <= len(parts[2]) <= 12):
            return None
        return dl + "8010/" + cp + parts[1] + "/8011/" + parts[2]
    return None


_DL_KEYS = {"01": "01", "gtin": "01", "8006": "8006", "itip": "8006", "8010": "8010", "cpid": "8010",
            "414": "414", "gln": "414", "417": "417", "party": "417", "8017": "8017", "gsrnp": "8017",
            "8018": "8018", "gsrn": "8018", "255": "255", "gcn": "255", "00": "00", "sscc": "00", "253": "253",
            "gdti": "253", "401": "401", "ginc": "401", "402": "402", "gsin": "402", "8003": "8003", "grai": "8003",
            "8004": "8004", "giai": "8004"}
_DL_QUALIFIERS = {"22": "22", "cpv": "22", "10": "10", "lot": "10", "21": "21", "ser": "21", "235": "235",
                  "254": "254", "8011": "8011"}
_RESERVED_SEGMENTS = frozenset(_DL_KEYS) | frozenset(_DL_QUALIFIERS) | {"ser", "lot", "cpv"}
_DL_CHARS = re.compile(r"[\"'\-.0-9;<=>?A-Z_a-z]*")
_HOST_LOOKALIKE = re.compile(r"id.gs1.org")


def _dl_value(value: str, max_len: int) -> bool:
    return len(value) <= max_len and _DL_CHARS.fullmatch(value) is not None


def _dl(uri: str) -> str | None:
    """GS1 Digital Link URI → constrained canonical form (rule 18), as the package does."""
    if not uri.isascii() or "#" in uri:
        raise NativeHashUnsupported(f"Digital Link candidate {uri[:60]!r} with '#' or non-ASCII")
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise NativeHashUnsupported(f"Digital Link candidate {uri[:60]!r} without '//'")
    authority, slash, path = rest.partition("/")
    if "?" in authority:
        raise NativeHashUnsupported(f"Digital Link candidate {uri[:60]!r} with '?' in the authority")
    raw_segments = path.split("/") if slash else []
    path = path.split("?", 1)[0]
    segments = path.split("/") if slash else []
    key_at = [i for i, s in enumerate(segments[:-1]) if s in _DL_KEYS]  # '/<key>/' needs a segment after it
    if not key_at:
        return None  # no '/<key>/' segment: the package's pattern does not match
    k = key_at[0]
    if len(key_at) > 1 or any(s in _RESERVED_SEGMENTS for s in segments[:k]):
        raise NativeHashUnsupported(f"Digital Link URI {uri[:60]!r} with several key segments")
    later = segments[k + 1:]
    # qualifier values (odd positions after the key value) must not look like AIs, except the last segment
    if any(s in _RESERVED_SEGMENTS for i, s in enumerate(later[:-1]) if i % 2 == 0 and i > 0) \
            or any(s in _RESERVED_SEGMENTS and s not in _DL_QUALIFIERS for i, s in enumerate(later) if i % 2 == 1):
        raise NativeHashUnsupported(f"Digital Link URI {uri[:60]!r} with an AI-like value")
    if authority != "id.gs1.org" and _HOST_LOOKALIKE.fullmatch(authority):
        raise NativeHashUnsupported(f"Digital Link host {authority!r}")
    tail = segments[k + 1:]
    raw_value = raw_segments[k + 1]  # the package tests the value before it strips the query string
    if not (len(raw_value) >= 5 and _digits(raw_value[:4])):
        return None  # the key value must start with four digits: not a GS1 Digital Link URI for the package
    key = _DL_KEYS[segments[k]]
    value = tail[0]
    quals = tail[1:]
    # short names of qualifiers → AIs (the package rewrites '/lot/', '/ser/', '/cpv/' anywhere)
    quals = [_DL_QUALIFIERS.get(q, q) if i % 2 == 0 else q for i, q in enumerate(quals)]
    if any(q in ("ser", "lot", "cpv") for q in quals[1::2]):
        raise NativeHashUnsupported(f"Digital Link URI {uri[:60]!r}")
    if key == "8010":
        raise NativeHashUnsupported(f"CPI Digital Link URI {uri[:60]!r}")
    if key == "01":
        run = len(value) - len(value.lstrip("0123456789"))
        if run == 13:
            value = "0" + value
        elif run == 12:
            value = "00" + value
        elif 8 <= run < 12:
            value = "000000" + value
    if key in ("01", "8006") and len(quals) >= 2 and quals[0] == "22":
        width = 14 if key == "01" else 18
        if _digits(value, width):
            rest_text = "/".join(quals[1:])
            if len(quals) == 2 and _dl_value(quals[1], 20):
                quals = []
            elif len(rest_text) <= 20 and re.fullmatch(r"[/\"'\-.0-9;<=>?A-Z_a-z]*", rest_text):
                quals = quals[2:] if len(quals) > 2 else []
    if key in ("01", "8006") and len(quals) == 4 and quals[0] == "10" and quals[2] == "21":
        width = 14 if key == "01" else 18
        if _digits(value, width) and _dl_value(quals[1], 20) and _dl_value(quals[3], 20):
            quals = quals[2:]
    out = "https://id.gs1.org/" + key + "/" + value + "".join("/" + q for q in quals)
    if _dl_valid(key, value, quals):
        return out
    return None


def _dl_valid(key: str, value: str, quals: list[str]) -> bool:
    if key in ("00", "8017", "8018"):
        return not quals and _digits(value, 18)
    if key == "01":
        if not _digits(value, 14):
            return False
        if not quals:
            return True
        return len(quals) == 2 and ((quals[0] in ("21", "10") and _dl_value(quals[1], 20))
                                    or (quals[0] == "235" and _dl_value(quals[1], 28)))
    if key == "8006":
        if not _digits(value, 18):
            return False
        return not quals or (len(quals) == 2 and quals[0] in ("21", "10") and _dl_value(quals[1], 20))
    if key == "414":
        if not _digits(value, 13):
            return False
        return not quals or (len(quals) == 2 and quals[0] == "254" and _dl_value(quals[1], 20))
    if quals:
        return False
    if key == "253":
        return _digits(value[:13], 13) and _dl_value(value[13:], 17)
    if key == "255":
        return _digits(value) and 13 <= len(value) <= 25
    if key in ("401", "8004"):
        return _dl_value(value, 30)
    if key == "402":
        return _digits(value, 17)
    if key == "417":
        return _digits(value, 13)
    if key == "8003":
        return _digits(value[:14], 14) and _dl_value(value[14:], 16)
    return False


def dl_normalise(uri: str) -> str | None:
    """Constrained canonical GS1 Digital Link URI (rules 17-18) of an EPC URN or Digital Link URI; None when
    ``uri`` is neither (the value is then hashed as written).

    Matches ``epcis_event_hash_generator.dl_normaliser.normaliser`` 1.9.3 on every input it does not refuse.

    Raises:
        NativeHashUnsupported: forms where we do not reproduce the package (12-digit-prefix GRAI/GDTI, CPI,
            Digital Link URIs with several key segments, look-alike hosts, non-ASCII, '#').
    """
    if "." not in uri:
        return None
    if uri.startswith("urn:epc:"):
        if not uri.isascii():
            raise NativeHashUnsupported(f"non-ASCII EPC URN {uri[:60]!r}")
        return _urn(uri)
    if uri.startswith(("http:", "https:")):
        return _dl(uri)
    return None


# --------------------------------------------------------------------------------------------- pre-hash
def _fold_lists(nodes: list[tuple[str, str, list[Any]]]) -> tuple[list[Any], dict[str, list[Any]]]:
    """Nodes of a generic element split into plain ones and those of ``…List`` names, the latter grouped by name
    with each item renamed to the name without ``List`` (the package hashes a list as one element holding its
    items); the caller appends the groups."""
    lists: dict[str, list[Any]] = {}
    plain: list[Any] = []
    for node in nodes:
        if node[0].endswith("List"):
            lists.setdefault(node[0], []).append((node[0][:-4], node[1], node[2]))
        else:
            plain.append(node)
    return plain, lists


class _Event:
    """Renders one event. Node texts follow the package's reading of JSON values."""

    def __init__(self, doc: _Doc, legacy: bool) -> None:
        self.doc = doc
        self.dev = _Flags(legacy)

    # ------------------------------------------------------------------ scalars
    def text(self, value: Any) -> str:
        if isinstance(value, str):
            value = self.doc.replace(value) if self.doc.suffixes else value
            prefix, sep, rest = value.partition(":")
            if sep:
                iri = self.doc.namespaces.get(prefix)
                if iri is not None:
                    value = iri + rest
            return value.strip()
        if isinstance(value, bool):
            self.dev.add("boolean")
            if self.dev.legacy:
                return "True" if value else "False"
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise NativeHashUnsupported("NaN or infinite number")
            return repr(value)
        raise NativeHashUnsupported(f"value of type {type(value).__name__} where a scalar is expected")

    def field(self, name: str, value: Any, *, is_time: bool = False) -> str:
        """``name=value`` of a scalar field, '' when the value is empty."""
        if isinstance(value, (Mapping, list)):
            raise NativeHashUnsupported(f"{name} must be a scalar")
        text = self.text(value)
        if not text:
            return ""
        return name + "=" + (_time(text, self.dev) if is_time else _canon(text, self.dev))

    # ------------------------------------------------------------------ generic (ilmd, extensions)
    def generic_nodes(self, name: str, value: Any) -> list[tuple[str, str, list[Any]]]:
        if isinstance(value, list):
            out = []
            for item in value:
                if isinstance(item, list):
                    raise NativeHashUnsupported(f"nested list under {name}")
                out.extend(self.generic_nodes(name, item))
            return out
        if isinstance(value, Mapping):
            return [(name, "", self.generic_children(value))]
        return [(name, self.text(value), [])]

    def generic_children(self, obj: Mapping[str, Any]) -> list[Any]:
        nodes: list[tuple[str, str, list[Any]]] = []
        for key, value in obj.items():
            if key in _IGNORED_KEYS:
                if key == "#text":
                    raise NativeHashUnsupported("#text member")
                continue
            if ":" not in key:
                raise NativeHashUnsupported(f"unprefixed key {key!r} inside an extension")
            nodes.extend(self.generic_nodes(self.doc.key_name(key, self.dev), value))
        plain, lists = _fold_lists(nodes)
        for list_name, items in lists.items():
            if list_name[:-4].endswith("List"):
                raise NativeHashUnsupported(f"extension list name {list_name!r}")
            plain.append((list_name, "", items))
        return plain

    def render_generic(self, node: tuple[str, str, list[Any]]) -> str:
        name, text, children = node
        if text:
            text = "=" + _canon(text, self.dev)
        parts = [self.render_generic(c) for c in children]
        if len(parts) > 1:
            parts.sort()
        return name + text + "".join(parts)

    # ------------------------------------------------------------------ standard structures
    def block(self, name: str, obj: Any, order: tuple[str, ...], times: frozenset[str] = frozenset()) -> str:
        """An object with ordered scalar fields followed by its user extensions (rule 21)."""
        if not isinstance(obj, Mapping):
            raise NativeHashUnsupported(f"{name} must be an object")
        parts = []
        for key in order:
            if key in obj:
                parts.append(self.field(key, obj[key], is_time=key in times))
        extensions = self.extensions(name, obj, frozenset(order))
        body = "".join(parts) + extensions
        return name + body if body else ""

    def extensions(self, where: str, obj: Mapping[str, Any], regular: frozenset[str],
                   list_fields: frozenset[str] = frozenset()) -> str:
        names = []
        nodes: list[Any] = []
        count = 0
        for key, value in obj.items():
            if key in _IGNORED_KEYS:
                if key == "#text":
                    raise NativeHashUnsupported("#text member")
                continue
            if key in regular or key in list_fields:
                count += len(value) if isinstance(value, list) else 1
                names.append(key)
                continue
            if ":" not in key:
                raise NativeHashUnsupported(f"unknown key {key!r} in {where}")
            name = self.doc.key_name(key, self.dev)
            if not ("{" in name and "/}" in name):
                raise NativeHashUnsupported(f"extension {key!r} in {where} is not in a '/'-ending namespace")
            group = self.generic_nodes(name, value)
            count += (1 if group else 0) if name.endswith("List") else len(group)
            nodes.extend(group)
            names.append(name)
        if not nodes:
            return ""
        if count <= 1 or any("eventTime" in n or "action" in n for n in names):
            raise NativeHashUnsupported(f"extension in {where} the package would hash twice")
        plain, lists = _fold_lists(nodes)
        plain.extend((n, "", items) for n, items in lists.items())
        parts = [self.render_generic(n) for n in plain]
        if len(parts) > 1:
            parts.sort()
        return "".join(parts)

    def epc_list(self, name: str, value: Any) -> str:
        if not isinstance(value, list):
            raise NativeHashUnsupported(f"{name} must be a list")
        parts = sorted(p for p in (self.field("epc", v) for v in value) if p)
        return name + "".join(parts) if parts else ""

    def quantity_list(self, name: str, value: Any) -> str:
        if not isinstance(value, list):
            raise NativeHashUnsupported(f"{name} must be a list")
        parts = []
        for element in value:
            if not isinstance(element, Mapping) or not any(k not in _IGNORED_KEYS for k in element):
                raise NativeHashUnsupported(f"{name} element must be a non-empty object")
            parts.append(self.block("quantityElement", element, ("epcClass", "quantity", "uom")))
        parts = sorted(p for p in parts if p)
        return name + "".join(parts) if parts else ""

    def persistent_disposition(self, value: Any) -> str:
        if not isinstance(value, Mapping):
            raise NativeHashUnsupported("persistentDisposition must be an object")
        parts = []
        for key in ("set", "unset"):
            items = value.get(key, [])
            items = items if isinstance(items, list) else [items]
            parts.extend(sorted(p for p in (self.field(key, v) for v in items) if p))
        counted = frozenset(k for k in ("set", "unset") if k in value)
        body = "".join(parts) + self.extensions("persistentDisposition", value, frozenset(), counted)
        return "persistentDisposition" + body if body else ""

    def party_list(self, name: str, value: Any, member: str) -> str | None:
        """bizTransactionList / sourceList / destinationList: in the sorted tail (see module docstring)."""
        if not isinstance(value, list):
            raise NativeHashUnsupported(f"{name} must be a list")
        if not value:
            return None
        pairs = []
        for entry in value:
            if not isinstance(entry, Mapping):
                raise NativeHashUnsupported(f"{name} entries must be objects")
            keys = [k for k in entry if k not in _IGNORED_KEYS]
            if "#text" in entry or sorted(keys) != sorted(["type", member]):
                raise NativeHashUnsupported(f"{name} entry must have exactly 'type' and {member!r}")
            pair = ""
            for key in ("type", member):
                item = entry[key]
                if isinstance(item, (Mapping, list)):
                    raise NativeHashUnsupported(f"{name}.{key} must be a scalar")
                text = self.text(item)
                pair += key + ("=" + _canon(text, self.dev) if text else "")
            pairs.append(pair)
        if len(pairs) > 1:
            pairs.sort()
        return name + "".join(pairs)

    def sensor_list(self, value: Any) -> tuple[str, str | None]:
        """``sensorElementList…`` and, when some sensorElement has a ``type`` (not in the canonical order),
        the package's second ``sensorElementList…`` block for the sorted tail made of those types."""
        if not isinstance(value, list):
            raise NativeHashUnsupported("sensorElementList must be a list")
        elements = []
        leftovers = []
        for element in value:
            if not isinstance(element, Mapping):
                raise NativeHashUnsupported("sensorElement must be an object")
            parts = []
            if "sensorMetadata" in element:
                parts.append(self.block("sensorMetadata", element["sensorMetadata"], _SM_ORDER, _SM_TIMES))
            reports = element.get("sensorReport", [])
            if not isinstance(reports, list):
                raise NativeHashUnsupported("sensorReport must be a list")
            parts.extend(sorted(p for p in (self.block("sensorReport", r, _SR_ORDER, _SR_TIMES) for r in reports)
                                if p))
            lists = frozenset(k for k in ("sensorMetadata", "sensorReport", "type") if k in element)
            rendered = "".join(parts) + self.extensions("sensorElement", element, frozenset(), lists)
            if rendered:
                elements.append("sensorElement" + rendered)
            if "type" in element:
                kind = element["type"]
                if isinstance(kind, (Mapping, list)):
                    raise NativeHashUnsupported("sensorElement.type must be a scalar")
                text = self.text(kind)
                leftovers.append("sensorElementtype" + ("=" + _canon(text, self.dev) if text else ""))
        elements.sort()
        leftovers.sort()
        return ("sensorElementList" + "".join(elements) if elements else "",
                "sensorElementList" + "".join(leftovers) if leftovers else None)

    # ------------------------------------------------------------------ the event
    def render(self, event: Mapping[str, Any]) -> str:
        etype = event.get("type")
        if etype not in _EVENT_TYPES:
            raise NativeHashUnsupported(f"event type {etype!r}")
        if "eventTime" not in event:
            raise NativeHashUnsupported("event without eventTime")
        out = ["eventType=", etype]
        tail: list[str] = []
        for key, value in event.items():
            if key in _TOP_HANDLED or key in _TOP_IGNORED:
                continue
            if key == "#text":
                raise NativeHashUnsupported("#text member")
            if key in _PARTY_LISTS:
                rendered = self.party_list(key, value, _PARTY_LISTS[key])
                if rendered is not None:
                    tail.append(rendered)
            elif key in ("ilmd", "id") or ":" in key:
                name = key if key in ("ilmd", "id") else self.doc.key_name(key, self.dev)
                nodes = self.generic_nodes(name, value)
                if name.endswith("List"):
                    if name[:-4].endswith("List"):
                        raise NativeHashUnsupported(f"extension list name {name!r}")
                    nodes = [(name, "", [(name[:-4], t, c) for (_, t, c) in nodes])] if nodes else []
                tail.extend(self.render_generic(n) for n in nodes)
            else:
                raise NativeHashUnsupported(f"unknown event key {key!r}")
        for key in _TOP_ORDER:
            if key not in event:
                continue
            value = event[key]
            if key in _EPC_LISTS:
                out.append(self.epc_list(key, value))
            elif key in _QUANTITY_LISTS:
                out.append(self.quantity_list(key, value))
            elif key == "certificationInfo":
                items = value if isinstance(value, list) else [value]
                out.extend(sorted(p for p in (self.field(key, v) for v in items) if p))
            elif key == "persistentDisposition":
                out.append(self.persistent_disposition(value))
            elif key in ("readPoint", "bizLocation"):
                out.append(self.block(key, value, ("id",)))
            elif key == "sensorElementList":
                rendered, leftover = self.sensor_list(value)
                out.append(rendered)
                if leftover is not None:
                    tail.append(leftover)
            else:
                out.append(self.field(key, value, is_time=key == "eventTime"))
        if len(tail) > 1:
            tail.sort()
        return "".join(out) + "".join(tail)


_SM_ORDER = ("time", "startTime", "endTime", "deviceID", "deviceMetadata", "rawData", "dataProcessingMethod",
             "bizRules")
_SM_TIMES = frozenset({"time", "startTime", "endTime"})
_SR_ORDER = ("type", "exception", "deviceID", "deviceMetadata", "rawData", "dataProcessingMethod", "time",
             "microorganism", "chemicalSubstance", "value", "component", "stringValue", "booleanValue",
             "hexBinaryValue", "uriValue", "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue",
             "uom", "coordinateReferenceSystem")
_SR_TIMES = frozenset({"time"})
_EPC_LISTS = frozenset({"epcList", "inputEPCList", "childEPCs", "outputEPCList"})
_QUANTITY_LISTS = frozenset({"quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"})
_PARTY_LISTS = {"bizTransactionList": "bizTransaction", "sourceList": "source", "destinationList": "destination"}
_TOP_ORDER = ("eventTime", "eventTimeZoneOffset", "certificationInfo", "parentID", "epcList", "inputEPCList",
              "childEPCs", "quantityList", "childQuantityList", "inputQuantityList", "outputEPCList",
              "outputQuantityList", "action", "transformationID", "bizStep", "disposition", "persistentDisposition",
              "readPoint", "bizLocation", "sensorElementList")
_TOP_HANDLED = frozenset(_TOP_ORDER)
_TOP_IGNORED = frozenset({"type", "eventID", "recordTime", "errorDeclaration", "comment", "rdfs:comment"})


def prehash_strings(events: Iterable[Mapping[str, Any]], context: Any = None, *, legacy: bool = False
                    ) -> list[Prehash]:
    """Pre-hash strings of ``events`` (one document's events, after ``ignoreFields`` removal) in order.

    Args:
        events: EPCIS 2.0 JSON event objects (schema-valid).
        context: the document's ``@context`` (string, object or list); the GS1 EPCIS 2.0 context must be
            named. Bare CBV words are expanded document-wide, as the reference does: hash all events of a
            document in one call.
        legacy: render the package's form at the deviations too (booleans ``True``, float numbers,
            half-even sub-millisecond rounding, unexpanded ``cbvmda:`` keys) — for the differential test.

    Returns:
        One :class:`Prehash` per event; :func:`hash_id` of ``.text`` is the event hash ID.

    Raises:
        NativeHashUnsupported: the document is outside what the native path reproduces (see module docstring).
    """
    events = list(events)
    doc = _Doc(context)
    for event in events:
        if not isinstance(event, Mapping):
            raise NativeHashUnsupported("an event must be an object")
        doc.collect(event, _SCOPE_EVENT)
    doc.freeze()
    out = []
    for event in events:
        renderer = _Event(doc, legacy)
        text = renderer.render(event)
        out.append(Prehash(text, renderer.dev))
    return out
