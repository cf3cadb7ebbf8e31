"""Structural validation of EN 10168 digital inspection documents (our own rules, JSON form).

EN 10168 ("Steel products — Inspection documents — List of information and description") numbers
every piece of information in an inspection document (EN 10204 type 2.1, 2.2, 3.1 or 3.2) with a
*box* code, grouped as:

* **A — CommercialTransaction**: A01 manufacturer (company), A02 type of inspection document,
  A03 document number, A04 manufacturer's mark, A05 originator/department, A06 purchaser
  (or A06.1 purchaser, A06.2 consignee, A06.3 further party), A07 purchase order number,
  A08 manufacturer's order number, A09 item number, A97–A99 delivery references,
  A10–A96 supplementary information.
* **B — ProductDescription**: B01 product, B02 steel designation and norms, B03 supplementary
  requirements, B04 delivery condition, B05 reference heat treatment, B06 marking, B07 batch /
  coil / lot identification, B08 number of pieces, B09 product shape and dimensions,
  B10–B11 further dimensions, B12 theoretical mass, B13 actual mass, B14–B99 supplementary.
* **C — Inspection** (one object or a non-empty list): C00 heat (cast) number, C01 sample
  location, C02 test direction, C03 test temperature, C04–C09 supplementary; TensileTest
  C10 test piece shape, C11 yield/proof strength, C12 tensile strength, C13 elongation after
  fracture, C14–C29 supplementary; HardnessTest C30–C39; NotchedBarImpactTest C40–C49;
  OtherMechanicalTests C50–C69; ChemicalComposition C70 analysis code, C71–C109 one element
  each (``{"Symbol", "Actual", "Minimum", "Maximum"}``, mass-% as decimal strings with at most
  four decimals), C110–C120 supplementary information.
* **D — OtherTests**: D01 marking/surface/dimension inspection, D02–D50 non-destructive tests,
  D51–D99 other product tests.
* **Z — Validation**: Z01 statement of compliance, Z02 date of issue (ISO 8601 date), Z03 name
  of the authorised person(s), Z04 CE marking, Z05–Z99 supplementary.

Measurements (B10–B13, C11–C13, C31/C32, C41–C43) are ``{"Property", "Value" (number),
"Minimum", "Maximum", "Unit"}``; supplementary boxes are key/value objects
``{"Key", "Value", "Unit", "Interpretation", "Type"}``.

The rules here are written for this project from the box list above; they mirror the JSON layout
used by the public EN 10168 JSON documents without reusing any schema text.

Decision on supplementary chemical boxes (``C110``): the C-group numbering reserves C110–C120 for
supplementary information of the chemical composition, so ``ChemicalComposition.
SupplementaryInformation.C110`` (as in a published sample certificate) is **accepted**. The public
v0.4.1 schema intends the same (its property-name pattern admits C110–C120), but it pairs that with
an empty ``patternProperties`` regex that Python's jsonschema treats as "no pattern", so the key is
rejected there; that is a tooling artefact, not a rule of the standard.

Every issue is a :class:`provenance.errors.Issue` whose ``field`` is a path such as
``Certificate.Inspection[0].TensileTest.C11.Value`` (dots for keys, ``[i]`` for list items).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from provenance.errors import Issue

__all__ = [
    "CertificateIssue",
    "LANGUAGES",
    "PRODUCT_SHAPES",
    "iter_inspections",
    "join_path",
    "validate_structure",
]


CertificateIssue = Issue
"""One problem found in a certificate: the project's one :class:`provenance.errors.Issue` type
(``field`` such as ``Certificate.ProductDescription.B07``, ``rule`` such as ``schema.required``)."""


LANGUAGES = ("EN", "DE", "FR", "ES", "PL", "CN", "TR", "IT")
"""Languages a certificate may be rendered in (``CertificateLanguages``: 1–2, unique)."""

PRODUCT_SHAPES: dict[str, tuple[tuple[str, ...], ...]] = {
    # Form -> required dimension groups (each group: any one of its names must be present).
    "Tube": (("OuterDiameter",), ("WallThickness",)),
    "Pipe": (("OuterDiameter", "SideLength"), ("WallThickness",)),
    "RectangularTube": (("Width",), ("Height",), ("WallThickness",)),
    "RectangularPipe": (("Width",), ("Height",), ("WallThickness",)),
    "QuadraticTube": (("SideLength",), ("WallThickness",)),
    "Coil": (("Width",), ("Thickness", "WallThickness")),
    "Strip": (("Width",), ("Thickness",)),
    "Sheet": (("Width",), ("Thickness",)),
    "Plate": (("Width",), ("Thickness",)),
    "Slab": (("Width",), ("Thickness",)),
    "Scroll": (("Width",), ("Thickness",)),
    "FlatBar": (("Width",), ("Thickness",)),
    "RoundBar": (("Diameter",),),
    "HexagonalBar": (("Diameter",),),
    "Other": (("Description",),),
}
"""B09 product shapes and their required dimensions (lengths in the shape's ``Unit``)."""

_DIMENSION_KEYS = frozenset(
    {
        "Width",
        "Height",
        "Thickness",
        "WallThickness",
        "OuterDiameter",
        "InnerDiameter",
        "Diameter",
        "SideLength",
        "Length",
    }
)
LENGTH_UNITS = frozenset({"mm", "cm", "m", "in"})

_STR: dict[str, Any] = {"type": "string"}
_PERCENT_PATTERN = r"^-?[0-9]+(\.[0-9]{1,4})?$"

_DEFS: dict[str, Any] = {
    "KeyValue": {
        "type": "object",
        "required": ["Key"],
        "additionalProperties": False,
        "properties": {
            "Key": _STR,
            "Value": _STR,
            "Unit": _STR,
            "Interpretation": _STR,
            "Type": {"enum": ["string", "number", "date", "date-time", "boolean"]},
        },
    },
    "Measurement": {
        "type": "object",
        "required": ["Value"],
        "additionalProperties": False,
        "properties": {
            "Property": _STR,
            "Value": {"type": "number"},
            "Minimum": {"type": "number"},
            "Maximum": {"type": "number"},
            "Unit": _STR,
        },
    },
    "Element": {
        "type": "object",
        "required": ["Symbol", "Actual"],
        "additionalProperties": False,
        "properties": {
            "Symbol": {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9+ ]*$"},
            "Actual": {"$ref": "#/$defs/Percent"},
            "Minimum": {"$ref": "#/$defs/Percent"},
            "Maximum": {"$ref": "#/$defs/Percent"},
        },
    },
    # decimal string, at most 4 decimals; the 0..100 % range is a domain check
    "Percent": {"type": "string", "pattern": _PERCENT_PATTERN},
    "Company": {
        "type": "object",
        "required": ["Street", "ZipCode", "City", "Country"],
        "properties": {
            "Name": _STR,
            "CompanyName": _STR,
            "Street": {"type": ["string", "array"], "items": _STR, "minItems": 1, "maxItems": 3},
            "ZipCode": _STR,
            "City": _STR,
            "Country": {"type": "string", "pattern": r"^[A-Z]{2}$"},
            "Email": {"type": "string", "pattern": r"^[^@\s]+@[^@\s]+\.[^@\s]+$"},
            "AdditionalInformation": {"type": "array", "items": _STR, "minItems": 1, "uniqueItems": True},
            "Identifiers": {
                "type": "object",
                "properties": {
                    "VAT": {"type": "string", "minLength": 8, "maxLength": 15},
                    "DUNS": {"type": "string", "pattern": r"^[0-9]{9}$"},
                    "CageCode": _STR,
                },
            },
        },
    },
    "CommercialTransaction": {
        "type": "object",
        "required": ["A01", "A02", "A03", "A04", "A05", "A07"],
        "additionalProperties": False,
        "properties": {
            "A01": {"$ref": "#/$defs/Company"},
            "A02": _STR,
            "A03": _STR,
            "A04": _STR,
            "A05": _STR,
            "A06": {"$ref": "#/$defs/Company"},
            "A06.1": {"$ref": "#/$defs/Company"},
            "A06.2": {"$ref": "#/$defs/Company"},
            "A06.3": {"$ref": "#/$defs/Company"},
            "A07": _STR,
            "A08": _STR,
            "A09": _STR,
            "A97": _STR,
            "A98": _STR,
            "A99": _STR,
            "SupplementaryInformation": {"$ref": "#/$defs/SuppA"},
        },
    },
    "ProductDescription": {
        "type": "object",
        "required": ["B01", "B02"],
        "additionalProperties": False,
        "properties": {
            "B01": _STR,
            "B02": {"type": ["string", "object"]},
            "B03": _STR,
            "B04": _STR,
            "B05": _STR,
            "B06": _STR,
            "B07": _STR,
            "B08": {"type": "number"},
            "B09": {"type": "object"},
            "B10": {"$ref": "#/$defs/Measurement"},
            "B11": {"$ref": "#/$defs/Measurement"},
            "B12": {"$ref": "#/$defs/Measurement"},
            "B13": {"$ref": "#/$defs/Measurement"},
            "SupplementaryInformation": {"$ref": "#/$defs/SuppB"},
        },
    },
    "SteelDesignation": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            name: {"type": "array", "items": _STR}
            for name in ("SteelDesignation", "ProductNorm", "MaterialNorm", "MassNorm")
        },
    },
    "Inspection": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "C00": _STR,
            "C01": _STR,
            "C02": _STR,
            "C03": _STR,
            "SupplementaryInformation": {"$ref": "#/$defs/SuppC0"},
            "TensileTest": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "C10": _STR,
                    "C11": {"$ref": "#/$defs/Measurement"},
                    "C12": {"$ref": "#/$defs/Measurement"},
                    "C13": {"$ref": "#/$defs/Measurement"},
                    "SupplementaryInformation": {"$ref": "#/$defs/SuppC1"},
                },
            },
            "HardnessTest": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "C30": _STR,
                    "C31": {"type": "array", "items": {"$ref": "#/$defs/Measurement"}},
                    "C32": {"$ref": "#/$defs/Measurement"},
                    "SupplementaryInformation": {"$ref": "#/$defs/SuppC3"},
                },
            },
            "NotchedBarImpactTest": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "C40": _STR,
                    "C41": {"$ref": "#/$defs/Measurement"},
                    "C42": {"type": "array", "items": {"$ref": "#/$defs/Measurement"}},
                    "C43": {"$ref": "#/$defs/Measurement"},
                    "SupplementaryInformation": {"$ref": "#/$defs/SuppC4"},
                },
            },
            "OtherMechanicalTests": {"$ref": "#/$defs/SuppC5"},
            "ChemicalComposition": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "C70": {"enum": ["Y", "E"]},
                    "SupplementaryInformation": {"$ref": "#/$defs/SuppC11"},
                },
                "patternProperties": {r"^C(7[1-9]|[89][0-9]|10[0-9])$": {"$ref": "#/$defs/Element"}},
            },
        },
    },
    "OtherTests": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "D01": _STR,
            "NonDestructiveTests": {"$ref": "#/$defs/SuppD0"},
            "OtherProductTests": {"$ref": "#/$defs/SuppD5"},
        },
    },
    "Validation": {
        "type": "object",
        "required": ["Z01", "Z02"],
        "additionalProperties": False,
        "properties": {
            "Z01": _STR,
            "Z02": _STR,
            "Z03": _STR,
            "Z04": {"type": ["object", "string"]},
            "SupplementaryInformation": {"$ref": "#/$defs/SuppZ"},
        },
    },
    "CEMarking": {
        "type": "object",
        "required": ["CE_Image", "NotifiedBodyNumber", "DoCYear", "DoCNumber"],
        "additionalProperties": False,
        "properties": {"CE_Image": _STR, "NotifiedBodyNumber": _STR, "DoCYear": _STR, "DoCNumber": _STR},
    },
    "Document": {
        "type": "object",
        "required": ["RefSchemaUrl", "Certificate"],
        "additionalProperties": False,
        "properties": {
            "RefSchemaUrl": {"type": "string", "pattern": r"^https?://\S+\.json$"},
            "DocumentMetadata": {
                "type": "object",
                "required": ["id"],
                "properties": {
                    "id": _STR,
                    "version": {"type": "integer", "minimum": 0},
                    "state": {"enum": ["draft", "valid", "cancelled"]},
                },
            },
            "Certificate": {
                "type": "object",
                "required": [
                    "CertificateLanguages",
                    "CommercialTransaction",
                    "ProductDescription",
                    "Validation",
                ],
                "additionalProperties": False,
                "properties": {
                    "CertificateLanguages": {
                        "type": "array",
                        "items": {"enum": list(LANGUAGES)},
                        "minItems": 1,
                        "maxItems": 2,
                        "uniqueItems": True,
                    },
                    "CommercialTransaction": {"$ref": "#/$defs/CommercialTransaction"},
                    "ProductDescription": {"$ref": "#/$defs/ProductDescription"},
                    "Inspection": {"type": ["object", "array"]},
                    "OtherTests": {"$ref": "#/$defs/OtherTests"},
                    "Validation": {"$ref": "#/$defs/Validation"},
                },
            },
        },
    },
}

# Supplementary-information groups: allowed box numbers, each a key/value object.
_SUPPLEMENTARY = {
    "SuppA": r"^A(1[0-9]|[2-8][0-9]|9[0-6])$",
    "SuppB": r"^B(1[4-9]|[2-9][0-9])$",
    "SuppC0": r"^C0[4-9]$",
    "SuppC1": r"^C(1[4-9]|2[0-9])$",
    "SuppC3": r"^C3[3-9]$",
    "SuppC4": r"^C4[4-9]$",
    "SuppC5": r"^C[56][0-9]$",
    "SuppC11": r"^C(11[0-9]|120)$",
    "SuppD0": r"^D(0[2-9]|[1-4][0-9]|50)$",
    "SuppD5": r"^D(5[1-9]|[6-9][0-9])$",
    "SuppZ": r"^Z(0[5-9]|[1-9][0-9])$",
}
for _name, _pattern in _SUPPLEMENTARY.items():
    _DEFS[_name] = {
        "type": "object",
        "propertyNames": {"pattern": _pattern},
        "additionalProperties": {"$ref": "#/$defs/KeyValue"},
    }


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({"$defs": _DEFS, "$ref": f"#/$defs/{name}"})


def join_path(base: str, *parts: str | int) -> str:
    """Append keys (``.key``) and list indices (``[i]``) to a field path."""
    out = base
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Issues:
    def __init__(self) -> None:
        self.items: list[Issue] = []
        self._seen: set[tuple[str, str, str]] = set()

    def add(self, field: str, rule: str, message: str) -> None:
        key = (field, rule, message)
        if key not in self._seen:
            self._seen.add(key)
            self.items.append(Issue(field, rule, message))


_FAST: dict[str, object] = {}


def _fast_valid(name: str, instance: object) -> bool:
    """True when a compiled validator (fastjsonschema) of ``$defs/name`` accepts ``instance``.

    The box schemas use only keywords with identical meaning in draft-07 and 2020-12 (no ``$ref``
    siblings, no 2020-12-only keywords), so "valid" here is "valid" for jsonschema; anything else
    (invalid, not compilable, library missing) → False and jsonschema names the issues. ~20x faster.
    """
    validator = _FAST.get(name)
    if validator is None:
        try:
            import fastjsonschema

            validator = fastjsonschema.compile({"$schema": "http://json-schema.org/draft-07/schema#",
                                                "$defs": _DEFS, "$ref": f"#/$defs/{name}"})
        except Exception:  # noqa: BLE001 - fall back to jsonschema
            validator = False
        _FAST[name] = validator
    if validator is False:
        return False
    try:
        validator(instance)  # type: ignore[operator]
    except Exception:  # noqa: BLE001 - JsonSchemaException or a type problem
        return False
    return True


def _run(name: str, instance: object, base: str, out: _Issues) -> None:
    if _fast_valid(name, instance):
        return
    errors = sorted(_validator(name).iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    for err in errors:
        path = join_path(base, *err.absolute_path)
        if "propertyNames" in err.schema_path:
            out.add(
                join_path(path, str(err.instance)),
                "schema.boxNumber",
                f"key {err.instance!r} is not an allowed box here (pattern {err.validator_value})",
            )
        elif err.validator == "required" and isinstance(err.instance, dict):
            for prop in err.validator_value:
                if prop not in err.instance:
                    out.add(join_path(path, prop), "schema.required", f"required box {prop} is missing")
        elif err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = err.schema.get("properties", {})
            patterns = list(err.schema.get("patternProperties", {}))
            for key in err.instance:
                if key not in known and not any(re.search(p, key) for p in patterns):
                    out.add(
                        join_path(path, key),
                        "schema.additionalProperties",
                        f"unexpected key {key!r}: not a box of this group",
                    )
        elif err.validator == "type":
            expected = err.validator_value
            names = expected if isinstance(expected, str) else " or ".join(expected)
            out.add(path, "schema.type", f"expected {names}, got {_short(err.instance)}")
        elif err.validator == "pattern" and err.validator_value == _PERCENT_PATTERN:
            out.add(
                path,
                "schema.pattern",
                f"{_short(err.instance)} is not a mass-% decimal string with at most 4 decimals",
            )
        else:
            out.add(
                path,
                f"schema.{err.validator}",
                err.message if len(err.message) <= 200 else err.message[:197] + "...",
            )


def iter_inspections(doc: object) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(path, inspection)`` for each C-group inspection object of a certificate.

    ``Certificate.Inspection`` may be one object (path ``Certificate.Inspection``) or a list
    (paths ``Certificate.Inspection[i]``); anything else yields nothing.
    """
    cert = doc.get("Certificate") if isinstance(doc, dict) else None
    insp = cert.get("Inspection") if isinstance(cert, dict) else None
    if isinstance(insp, dict):
        yield "Certificate.Inspection", insp
    elif isinstance(insp, list):
        for i, item in enumerate(insp):
            if isinstance(item, dict):
                yield f"Certificate.Inspection[{i}]", item


def _check_company(company: object, path: str, out: _Issues) -> None:
    if not isinstance(company, dict):
        return
    names = [k for k in ("CompanyName", "Name") if k in company]
    if len(names) != 1:
        out.add(
            join_path(path, "CompanyName"),
            "company-name",
            "a company needs exactly one of CompanyName or Name"
            + ("" if not names else f", got both {names}"),
        )
    ids = company.get("Identifiers")
    if isinstance(ids, dict) and not ("VAT" in ids or "DUNS" in ids):
        out.add(
            join_path(path, "Identifiers"),
            "company-identifier",
            "Identifiers must contain a VAT number or a DUNS number",
        )


def _check_shape(shape: object, path: str, out: _Issues) -> None:
    if not isinstance(shape, dict):
        return
    form = shape.get("Form")
    if form not in PRODUCT_SHAPES:
        out.add(
            join_path(path, "Form"),
            "product-shape",
            f"Form must be one of {', '.join(sorted(PRODUCT_SHAPES))}, got {_short(form)}",
        )
        return
    for group in PRODUCT_SHAPES[form]:
        if not any(name in shape for name in group):
            out.add(
                join_path(path, group[0]), "schema.required", f"{form} needs dimension {' or '.join(group)}"
            )
    for key, value in shape.items():
        if key == "Form":
            continue
        if key in ("Unit", "Description"):
            if not isinstance(value, str):
                out.add(join_path(path, key), "schema.type", f"expected string, got {_short(value)}")
        elif key in _DIMENSION_KEYS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                out.add(join_path(path, key), "schema.type", f"expected number, got {_short(value)}")
            elif value <= 0:
                out.add(join_path(path, key), "dimension-positive", f"dimension must be > 0, got {value}")
        else:
            out.add(
                join_path(path, key),
                "schema.additionalProperties",
                f"unexpected key {key!r} in product shape {form}",
            )
    if form != "Other":
        unit = shape.get("Unit")
        if unit is None:
            out.add(join_path(path, "Unit"), "schema.required", "product shape needs a length Unit")
        elif isinstance(unit, str) and unit not in LENGTH_UNITS:
            out.add(
                join_path(path, "Unit"),
                "unit-unknown",
                f"unknown length unit {unit!r}, expected one of {sorted(LENGTH_UNITS)}",
            )


def validate_structure(doc: object) -> list[CertificateIssue]:
    """Check the box structure of an EN 10168 JSON certificate (groups A, B, C, D, Z).

    Args:
        doc: the parsed JSON document ``{"RefSchemaUrl": str, "Certificate": {...}}``.

    Returns:
        All structural issues (empty list when the structure is valid). Never raises for
        malformed input; a non-object document yields a single ``schema.type`` issue.
    """
    out = _Issues()
    _run("Document", doc, "", out)
    if not isinstance(doc, dict) or not isinstance(doc.get("Certificate"), dict):
        return out.items
    cert = doc["Certificate"]
    ct = cert.get("CommercialTransaction")
    if isinstance(ct, dict):
        base = "Certificate.CommercialTransaction"
        for key in ("A01", "A06", "A06.1", "A06.2", "A06.3"):
            _check_company(ct.get(key), join_path(base, key), out)
        if "A06" in ct and any(k in ct for k in ("A06.1", "A06.2", "A06.3")):
            out.add(join_path(base, "A06"), "purchaser", "give either A06 or A06.1–A06.3, not both")
        elif "A06" not in ct and "A06.1" not in ct:
            out.add(
                join_path(base, "A06"), "schema.required", "required box A06 (purchaser) or A06.1 is missing"
            )
    pd = cert.get("ProductDescription")
    if isinstance(pd, dict):
        base = "Certificate.ProductDescription"
        if isinstance(pd.get("B02"), dict):
            _run("SteelDesignation", pd["B02"], join_path(base, "B02"), out)
            if "B09" not in pd:
                out.add(
                    join_path(base, "B09"),
                    "schema.required",
                    "required box B09 (product shape) is missing for a structured B02",
                )
        _check_shape(pd.get("B09"), join_path(base, "B09"), out)
    inspection = cert.get("Inspection")
    if isinstance(inspection, list) and not inspection:
        out.add("Certificate.Inspection", "schema.minItems", "Inspection list must not be empty")
    if isinstance(inspection, list):
        for i, item in enumerate(inspection):
            _run("Inspection", item, f"Certificate.Inspection[{i}]", out)
    elif isinstance(inspection, dict):
        _run("Inspection", inspection, "Certificate.Inspection", out)
    val = cert.get("Validation")
    if isinstance(val, dict) and isinstance(val.get("Z04"), dict):
        _run("CEMarking", val["Z04"], "Certificate.Validation.Z04", out)
    return out.items
