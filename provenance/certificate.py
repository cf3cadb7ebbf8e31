"""EN 10168 mill test certificates (EN 10204 type 3.1 / 3.2 inspection documents) as domain objects.

A certificate is the parsed JSON document ``{"RefSchemaUrl": ..., "Certificate": {...}}`` whose
boxes follow EN 10168 (see :mod:`provenance.en10168` for the groups A, B, C, D, Z). This module
adds the checks a quality engineer applies on top of the box structure:

* ``document-type`` — A02 names an EN 10204 document type (2.1, 2.2, 3.1 or 3.2); with
  ``require_inspection_certificate=True`` only the inspection certificates 3.1 / 3.2 pass. The
  default accepts 2.x because EN 10168 covers all EN 10204 documents (a published sample is a
  2.2 test report).
* ``coil-id-required`` — B07 (batch / coil / lot number) is present and non-blank.
* ``piece-count`` — B08, where given, is a whole number >= 1.
* ``yield-exceeds-tensile`` — yield or 0.2 % proof strength C11 (ReH / Rp0.2) is not above the
  tensile strength C12 (Rm); compared only when both units are known and equal after treating
  MPa and N/mm2 as the same unit.
* ``elongation-range`` — elongation after fracture C13 (A, A80, A5.65) is in % and 0..100 %.
* ``unit-unknown`` — units are known for their box: strength MPa, N/mm2 (also ksi, psi);
  elongation %; lengths mm, cm, m, in; masses kg, t, lb; impact energy J.
* ``chemistry-range`` — element contents C71–C109 (Actual/Minimum/Maximum) are 0..100 mass-%;
  ``chemistry-out-of-limits`` — Minimum <= Actual <= Maximum where limits are given.
* ``out-of-limits`` — a measurement's Value lies within its Minimum/Maximum where given.
* ``date-format`` — Z02 (date of issue) is an ISO 8601 calendar date ``YYYY-MM-DD``.

Where the fixtures keep things: the steel grade is ``B02.SteelDesignation`` (a list; B02 may also
be a plain string), the coil / batch number is ``B07``, and the heat (cast) number is box ``C00``
of the inspection entries (``Certificate.Inspection[i].C00``, or ``Certificate.Inspection.C00``
when Inspection is a single object). Some producers write a label such as "Charge TensileTest"
into C00; a C00 without any digit is therefore not taken as a heat number.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any

from provenance.en10168 import CertificateIssue, iter_inspections, join_path, validate_structure
from provenance.errors import CertificateInvalid, Issue

__all__ = [
    "CertificateIssue",
    "STRENGTH_UNITS",
    "validate_certificate",
    "check_certificate",
    "heat_number",
    "coil_number",
    "steel_grades",
    "coil_suffix",
    "summarize_certificate",
]

STRENGTH_UNITS = frozenset({"MPa", "N/mm2", "N/mm²", "N/mm^2", "ksi", "psi"})
_MPA_EQUIVALENT = frozenset({"MPa", "N/mm2", "N/mm²", "N/mm^2"})
_LENGTH_UNITS = frozenset({"mm", "cm", "m", "in"})
_MASS_UNITS = frozenset({"kg", "t", "lb"})
_ENERGY_UNITS = frozenset({"J"})
_PERCENT_UNITS = frozenset({"%"})
_DOC_TYPE = re.compile(r"(?<![\d.])([23]\.[12])(?![\d.])")
_SUFFIX_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

_BOX_NAMES = {
    "C11": "yield strength",
    "C12": "tensile strength",
    "C13": "elongation after fracture",
    "C32": "hardness (mean)",
    "C43": "impact energy (mean)",
}


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _dec(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        result = float(value)
    except ValueError:
        return None
    return result if math.isfinite(result) else None


def _limits(low: float | None, high: float | None) -> str:
    return f"{'' if low is None else f'{low:g}'}..{'' if high is None else f'{high:g}'}"


def _unit_class(unit: str) -> str:
    return "MPa" if unit in _MPA_EQUIVALENT else unit


def _cert(doc: object) -> dict[str, Any]:
    cert = doc.get("Certificate") if isinstance(doc, dict) else None
    return cert if isinstance(cert, dict) else {}


def _group(doc: object, name: str) -> dict[str, Any]:
    group = _cert(doc).get(name)
    return group if isinstance(group, dict) else {}


def _check_measurement(
    m: object, path: str, units: frozenset[str] | None, issues: list[Issue]
) -> None:
    if not isinstance(m, dict):
        return
    unit = m.get("Unit")
    if units is not None and isinstance(unit, str) and unit not in units:
        issues.append(
            Issue(
                join_path(path, "Unit"),
                "unit-unknown",
                f"unknown unit {unit!r}, expected one of {sorted(units)}",
            )
        )
    value, low, high = _num(m.get("Value")), _num(m.get("Minimum")), _num(m.get("Maximum"))
    if low is not None and high is not None and low > high:
        issues.append(
            Issue(
                join_path(path, "Minimum"), "out-of-limits", f"Minimum {low:g} is above Maximum {high:g}"
            )
        )
    elif value is not None and ((low is not None and value < low) or (high is not None and value > high)):
        issues.append(
            Issue(
                join_path(path, "Value"),
                "out-of-limits",
                f"value {value:g} outside the specified limits {_limits(low, high)}",
            )
        )


def _check_tensile(tt: dict[str, Any], path: str, issues: list[Issue]) -> None:
    for box, units in (("C11", STRENGTH_UNITS), ("C12", STRENGTH_UNITS), ("C13", _PERCENT_UNITS)):
        _check_measurement(tt.get(box), join_path(path, box), units, issues)
    c11, c12, c13 = tt.get("C11"), tt.get("C12"), tt.get("C13")
    if isinstance(c11, dict) and isinstance(c12, dict):
        ys, ts = _num(c11.get("Value")), _num(c12.get("Value"))
        u11, u12 = c11.get("Unit"), c12.get("Unit")
        comparable = (
            isinstance(u11, str)
            and isinstance(u12, str)
            and u11 in STRENGTH_UNITS
            and u12 in STRENGTH_UNITS
            and _unit_class(u11) == _unit_class(u12)
        )
        if ys is not None and ts is not None and comparable and ys > ts:
            issues.append(
                Issue(
                    join_path(path, "C11", "Value"),
                    "yield-exceeds-tensile",
                    f"yield strength C11 {ys:g} {u11} exceeds tensile strength C12 {ts:g} {u12}",
                )
            )
    if isinstance(c13, dict):
        elong = _num(c13.get("Value"))
        if elong is not None and not 0 <= elong <= 100:
            issues.append(
                Issue(
                    join_path(path, "C13", "Value"),
                    "elongation-range",
                    f"elongation after fracture C13 must be 0..100 %, got {elong:g}",
                )
            )


def _check_chemistry(cc: dict[str, Any], path: str, issues: list[Issue]) -> None:
    for box, element in cc.items():
        if not (isinstance(element, dict) and re.fullmatch(r"C(7[1-9]|[89][0-9]|10[0-9])", box)):
            continue
        symbol = element.get("Symbol", box)
        values: dict[str, float] = {}
        for key in ("Actual", "Minimum", "Maximum"):
            val = _dec(element.get(key))
            if val is None:
                continue
            values[key] = val
            if not 0 <= val <= 100:
                issues.append(
                    Issue(
                        join_path(path, box, key),
                        "chemistry-range",
                        f"{symbol} {key.lower()} content must be 0..100 %, got {val:g}",
                    )
                )
        actual, low, high = values.get("Actual"), values.get("Minimum"), values.get("Maximum")
        if actual is not None and (
            (low is not None and actual < low) or (high is not None and actual > high)
        ):
            issues.append(
                Issue(
                    join_path(path, box, "Actual"),
                    "chemistry-out-of-limits",
                    f"{symbol} {actual:g} % outside the specified limits {_limits(low, high)} %",
                )
            )


def _domain_issues(doc: object, require_inspection_certificate: bool) -> list[Issue]:
    issues: list[Issue] = []
    ct = _group(doc, "CommercialTransaction")
    a02 = ct.get("A02")
    if isinstance(a02, str):
        kinds = set(_DOC_TYPE.findall(a02))
        allowed = {"3.1", "3.2"} if require_inspection_certificate else {"2.1", "2.2", "3.1", "3.2"}
        if not kinds & allowed:
            want = " or ".join(sorted(allowed))
            issues.append(
                Issue(
                    "Certificate.CommercialTransaction.A02",
                    "document-type",
                    f"A02 must name the EN 10204 document type {want}, got {a02!r}",
                )
            )
    pd = _group(doc, "ProductDescription")
    base = "Certificate.ProductDescription"
    if _cert(doc) and isinstance(_cert(doc).get("ProductDescription"), dict):
        b07 = pd.get("B07")
        if not isinstance(b07, str) or not b07.strip():
            issues.append(
                Issue(
                    join_path(base, "B07"),
                    "coil-id-required",
                    "B07 (coil / batch / lot number) is required for traceability",
                )
            )
    pieces = _num(pd.get("B08"))
    if pieces is not None and (pieces < 1 or pieces != int(pieces)):
        issues.append(
            Issue(
                join_path(base, "B08"),
                "piece-count",
                f"B08 number of pieces must be a whole number >= 1, got {pieces:g}",
            )
        )
    for box, units in (
        ("B10", _LENGTH_UNITS),
        ("B11", _LENGTH_UNITS),
        ("B12", _MASS_UNITS),
        ("B13", _MASS_UNITS),
    ):
        _check_measurement(pd.get(box), join_path(base, box), units, issues)
    for path, insp in iter_inspections(doc):
        tt = insp.get("TensileTest")
        if isinstance(tt, dict):
            _check_tensile(tt, join_path(path, "TensileTest"), issues)
        ht = insp.get("HardnessTest")
        if isinstance(ht, dict):
            _check_measurement(ht.get("C32"), join_path(path, "HardnessTest", "C32"), None, issues)
        nb = insp.get("NotchedBarImpactTest")
        if isinstance(nb, dict):
            nb_path = join_path(path, "NotchedBarImpactTest")
            _check_measurement(nb.get("C41"), join_path(nb_path, "C41"), _LENGTH_UNITS, issues)
            _check_measurement(nb.get("C43"), join_path(nb_path, "C43"), _ENERGY_UNITS, issues)
            if isinstance(nb.get("C42"), list):
                for i, m in enumerate(nb["C42"]):
                    _check_measurement(m, join_path(nb_path, "C42", i), _ENERGY_UNITS, issues)
        cc = insp.get("ChemicalComposition")
        if isinstance(cc, dict):
            _check_chemistry(cc, join_path(path, "ChemicalComposition"), issues)
    z02 = _group(doc, "Validation").get("Z02")
    if isinstance(z02, str):
        try:
            _dt.date.fromisoformat(z02)
            ok = bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", z02))
        except ValueError:
            ok = False
        if not ok:
            issues.append(
                Issue(
                    "Certificate.Validation.Z02",
                    "date-format",
                    f"Z02 date of issue must be YYYY-MM-DD, got {z02!r}",
                )
            )
    return issues


def validate_certificate(
    doc: dict[str, Any], *, require_inspection_certificate: bool = False
) -> list[Issue]:
    """Validate an EN 10168 certificate: box structure (:mod:`provenance.en10168`) + domain checks.

    Args:
        doc: parsed JSON document ``{"RefSchemaUrl": str, "Certificate": {...}}``.
        require_inspection_certificate: if True, A02 must name EN 10204 type 3.1 or 3.2
            (inspection certificate); otherwise 2.1 and 2.2 are accepted too.

    Returns:
        Every :class:`Issue` found (``field`` is a path such as
        ``Certificate.Inspection[0].TensileTest.C11.Value``); empty when valid. Never raises on
        malformed input.
    """
    issues = list(validate_structure(doc))
    seen = {(i.field, i.rule) for i in issues}
    for issue in _domain_issues(doc, require_inspection_certificate):
        if (issue.field, issue.rule) not in seen:
            seen.add((issue.field, issue.rule))
            issues.append(issue)
    return issues


def check_certificate(doc: dict[str, Any], *, require_inspection_certificate: bool = False) -> None:
    """Like :func:`validate_certificate` but raise when anything is wrong.

    Raises:
        CertificateInvalid: with ``.issues`` holding every issue found.
    """
    issues = validate_certificate(doc, require_inspection_certificate=require_inspection_certificate)
    if issues:
        raise CertificateInvalid(issues)


def heat_number(doc: dict[str, Any]) -> str | None:
    """Heat (cast) number: box C00 of the inspection entries (EN 10168 C00).

    Entries that carry the chemical composition (the heat analysis) are preferred; a C00
    without any digit (a label such as "Charge TensileTest") is skipped. Returns ``None`` when
    no heat number is given.
    """
    entries = list(iter_inspections(doc))
    entries.sort(key=lambda e: 0 if isinstance(e[1].get("ChemicalComposition"), dict) else 1)
    for _path, insp in entries:
        c00 = insp.get("C00")
        if isinstance(c00, str) and c00.strip() and any(ch.isdigit() for ch in c00):
            return c00.strip()
    return None


def coil_number(doc: dict[str, Any]) -> str | None:
    """Coil / batch / lot identification, box B07 (EN 10168 B07), stripped; ``None`` if absent."""
    b07 = _group(doc, "ProductDescription").get("B07")
    return b07.strip() if isinstance(b07, str) and b07.strip() else None


def steel_grades(doc: dict[str, Any]) -> list[str]:
    """Steel designations from B02 (``B02.SteelDesignation`` list, or B02 as a plain string)."""
    b02 = _group(doc, "ProductDescription").get("B02")
    if isinstance(b02, str):
        return [b02] if b02.strip() else []
    if isinstance(b02, dict) and isinstance(b02.get("SteelDesignation"), list):
        return [g for g in b02["SteelDesignation"] if isinstance(g, str)]
    return []


def _normalise(part: str) -> str:
    return _SUFFIX_UNSAFE.sub("_", part.strip().upper())


def coil_suffix(doc: dict[str, Any]) -> str:
    """URL-safe identifier suffix for the coil: ``H<heat>-C<coil>``, or ``C<coil>`` without heat.

    Heat = :func:`heat_number` (C00), coil = B07. Both parts are upper-cased and every character
    outside ``[A-Za-z0-9._-]`` becomes ``_``; e.g. heat ``"k52791"`` and coil ``"NW24/118734"``
    give ``"HK52791-CNW24_118734"``. Suitable as the suffix of
    :func:`provenance.identifiers.make_identifier` (1–128 characters).

    Raises:
        CertificateInvalid: B07 missing or blank, or the suffix would exceed 128 characters.
    """
    coil = coil_number(doc)
    if coil is None:
        raise CertificateInvalid(
            [
                Issue(
                    "Certificate.ProductDescription.B07",
                    "coil-id-required",
                    "B07 (coil / batch / lot number) is required",
                )
            ]
        )
    heat = heat_number(doc)
    suffix = f"C{_normalise(coil)}" if heat is None else f"H{_normalise(heat)}-C{_normalise(coil)}"
    if len(suffix) > 128:
        raise CertificateInvalid(
            [
                Issue(
                    "Certificate.ProductDescription.B07",
                    "suffix-length",
                    f"coil suffix has {len(suffix)} characters, at most 128",
                )
            ]
        )
    return suffix


def _company_name(company: object) -> str | None:
    if isinstance(company, dict):
        for key in ("CompanyName", "Name"):
            if isinstance(company.get(key), str):
                return str(company[key])
    return None


def _measure(m: object) -> dict[str, Any] | None:
    if not isinstance(m, dict) or _num(m.get("Value")) is None:
        return None
    return {"value": m["Value"], "unit": m.get("Unit")}


def summarize_certificate(doc: dict[str, Any]) -> dict[str, Any]:
    """Flat summary of a certificate for listings and QR landing pages; tolerates missing boxes.

    Returns:
        ``{"manufacturer": A01 name, "customer": A06 / A06.1 name, "document_type": A02,
        "certificate_number": A03, "product": B01, "grade": first steel designation,
        "grades": all designations (B02), "coil": B07, "heat": C00, "pieces": B08,
        "dimensions": B09 object (``Form``, lengths, ``Unit``) or None,
        "mass": {"kind": "actual"|"theoretical", "value": number, "unit": "kg"|...} (B13, else B12) or None,
        "mechanical_properties": [{"box", "name", "value", "unit"}] (C11, C12, C13, C32, C43),
        "chemical_composition": [{"box", "symbol", "actual" (mass-%, float), "unit": "%"}],
        "issue_date": Z02}``; absent values are ``None`` / empty lists.
    """
    ct = _group(doc, "CommercialTransaction")
    pd = _group(doc, "ProductDescription")
    val = _group(doc, "Validation")

    def text(group: dict[str, Any], key: str) -> str | None:
        value = group.get(key)
        return value if isinstance(value, str) else None

    customer = _company_name(ct.get("A06")) or _company_name(ct.get("A06.1"))
    mass = None
    for box, kind in (("B13", "actual"), ("B12", "theoretical")):
        measured = _measure(pd.get(box))
        if measured is not None:
            mass = {"kind": kind, **measured}
            break
    mechanical: list[dict[str, Any]] = []
    chemistry: list[dict[str, Any]] = []
    for _path, insp in iter_inspections(doc):
        for group, boxes in (
            ("TensileTest", ("C11", "C12", "C13")),
            ("HardnessTest", ("C32",)),
            ("NotchedBarImpactTest", ("C43",)),
        ):
            test = insp.get(group)
            if not isinstance(test, dict):
                continue
            for box in boxes:
                measured = _measure(test.get(box))
                if measured is not None:
                    prop = test[box].get("Property")
                    name = prop if isinstance(prop, str) and prop else _BOX_NAMES[box]
                    mechanical.append({"box": box, "name": name, **measured})
        cc = insp.get("ChemicalComposition")
        if isinstance(cc, dict):
            for box, element in cc.items():
                if isinstance(element, dict) and re.fullmatch(r"C(7[1-9]|[89][0-9]|10[0-9])", box):
                    actual = _dec(element.get("Actual"))
                    if actual is not None:
                        chemistry.append(
                            {"box": box, "symbol": element.get("Symbol"), "actual": actual, "unit": "%"}
                        )
    grades = steel_grades(doc)
    b08 = _num(pd.get("B08"))
    return {
        "manufacturer": _company_name(ct.get("A01")),
        "customer": customer,
        "document_type": text(ct, "A02"),
        "certificate_number": text(ct, "A03"),
        "product": text(pd, "B01"),
        "grade": grades[0] if grades else None,
        "grades": grades,
        "coil": coil_number(doc),
        "heat": heat_number(doc),
        "pieces": int(b08) if b08 is not None and b08 == int(b08) else b08,
        "dimensions": dict(pd["B09"]) if isinstance(pd.get("B09"), dict) else None,
        "mass": mass,
        "mechanical_properties": mechanical,
        "chemical_composition": chemistry,
        "issue_date": text(val, "Z02"),
    }
