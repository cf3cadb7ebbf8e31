"""The per-event-type fast path of EPCIS schema validation gives the whole-document verdict, exactly.

``provenance.epcis._fast_valid`` validates an EPCISDocument's shell plus each event against its own type's
definition (the GS1 schema's ``EPCIS-Document-Event`` is an if/then on ``type``), instead of the whole
document at once. Differential test against the compiled whole-document validator: every shared example,
generated supply-chain events, and hostile mutations of each (missing or mistyped fields, bad times,
unknown event types, non-object events): the two verdicts agree on every document.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from provenance.epcis import EVENT_TYPES, _event_validators, _fast_valid, _plain_event_list
from provenance.supply_chain import generate

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "epcis"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    path = SHARED / "EPCIS-JSON-Schema.json"
    if not path.exists():
        pytest.skip(f"GS1 EPCIS JSON Schema not found at {path} (../shared/data beside the project)")
    return json.loads(path.read_text(encoding="utf-8"))


def _whole(schema: dict[str, Any]) -> Any:
    fastjsonschema = pytest.importorskip("fastjsonschema")
    return fastjsonschema.compile(copy.deepcopy(schema))  # compile() rewrites the $refs of what it is given


def _verdict(validator: Any, doc: Any) -> bool:
    try:
        validator(doc)
    except Exception:  # noqa: BLE001
        return False
    return True


def _mutations(ev: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for key in ("eventTime", "eventTimeZoneOffset", "action", "type"):
        if key in ev:
            m = copy.deepcopy(ev)
            del m[key]
            out.append(m)
    for key, value in (("eventTime", "yesterday"), ("action", "UPDATE"), ("epcList", "urn:epc:id:sgtin:1.2.3"),
                       ("eventTimeZoneOffset", "+25:00"), ("bizStep", 7), ("readPoint", {"id": 3}),
                       ("type", "NoSuchEvent"), ("type", 5), ("unknownField", 1), ("ilmd", {"x": 1}),
                       ("quantityList", [{"epcClass": "urn:x", "quantity": "many"}])):
        m = copy.deepcopy(ev)
        m[key] = value
        out.append(m)
    out.extend([None, [], "ObjectEvent", {"type": "ObjectEvent"}])
    return out


def test_fast_path_verdict_equals_whole_document_verdict(schema: dict[str, Any]) -> None:
    whole = _whole(schema)
    docs: list[Any] = []
    for path in sorted(SHARED.glob("*.json*")):
        if path.name == "EPCIS-JSON-Schema.json":
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("type") == "EPCISDocument":
            docs.append(doc)
    chain = generate(target_events=400, mill_prefix="88.1.1", seed=5)
    docs.extend(d for _, d in chain.documents)
    assert len(docs) >= 10
    checked = fast = invalid = 0
    for doc in docs:
        events = doc.get("epcisBody", {}).get("eventList") or []
        variants = [doc]
        for i, ev in enumerate(events[:6]):
            for m in _mutations(ev):
                v = copy.deepcopy(doc)
                v["epcisBody"]["eventList"][i] = m
                variants.append(v)
        for shell_change in (("schemaVersion", None), ("creationDate", "now"), ("sender", 1)):
            v = copy.deepcopy(doc)
            if shell_change[1] is None:
                v.pop(shell_change[0], None)
            else:
                v[shell_change[0]] = shell_change[1]
            variants.append(v)
        for v in variants:
            ok = _verdict(whole, v)
            assert _fast_valid(v, schema) == ok, json.dumps(v)[:400]
            invalid += not ok
            checked += 1
            fast += _plain_event_list(v, {t: None for t in ("ObjectEvent", "AggregationEvent", "TransactionEvent",
                                                             "TransformationEvent", "AssociationEvent")}) is not None
    assert set(_event_validators(schema)) == set(EVENT_TYPES)  # the per-type validators exist: the split path ran
    assert checked > 500 and fast > checked // 2  # the split path really ran on most of them
    assert checked // 3 < invalid < checked  # and the mutations were refused


def test_split_path_survives_compile_and_leaves_the_schema_alone(schema: dict[str, Any]) -> None:
    """``fastjsonschema.compile`` rewrites the ``$ref``s of the dict it is given (to absolute URIs): compiling the
    caller's schema once made every later lookup of the per-type validators fail, so the whole-document validator
    ran on every event. The schema object is not changed by validation, and a schema whose refs were already made
    absolute still gets the per-type validators."""
    pristine = copy.deepcopy(schema)
    doc = generate(target_events=40, mill_prefix="88.1.1", seed=3).documents[0][1]
    assert _fast_valid(doc, schema)
    assert schema == pristine
    assert set(_event_validators(schema)) == set(EVENT_TYPES)
    rewritten = copy.deepcopy(schema)
    pytest.importorskip("fastjsonschema").compile(rewritten)
    assert rewritten != pristine  # compile() did rewrite it
    assert set(_event_validators(rewritten)) == set(EVENT_TYPES)
    assert _fast_valid(doc, rewritten)
