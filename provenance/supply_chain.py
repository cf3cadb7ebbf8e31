"""Realistic steel-to-parts supply chain as GS1 EPCIS 2.0 documents, with ground truth.

Flow (CBV 2.0 bizSteps, EPCIS 2.0 event types)::

    heat (LGTIN class, lot = heat number)         mill: commissioning, inspecting
      └ slabs (SGTIN)                              mill: TransformationEvent (casting)
          └ mother coil (hdl:<mill>/H<heat>-C<coil>, EN 10168 certificate)   mill: TransformationEvent
              │                                    mill: inspecting, shipping → service centre: receiving
              └ slit coils (SGTIN)                 service centre: TransformationEvent (slitting)
                  └ blanks (SGTIN)                 service centre: TransformationEvent (blanking),
                      │                            shipping → stamping plant: receiving
                      └ stamped part (GS1 Digital Link SGTIN)   stamping: TransformationEvent,
                          │                        inspecting (conformant / non_conformant), shipping → OEM
                          └ assembly (SGTIN)       OEM: receiving, AggregationEvent ADD (assembling)

Each mother coil gets a valid EN 10168 certificate derived from the bundled samples (coil number
B07, heat number C00 changed). ``generate(target_events=10_000)`` gives about that many events.
``python -m provenance.supply_chain --events 10000 --out DIR`` writes the documents, certificates and
``truth.json``.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

CONTEXT = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"]
ROLES = ("mill", "service_center", "stamping", "oem")
GCP = {"mill": "4012345", "service_center": "4023456", "stamping": "4034567", "oem": "4045678"}
SITES = {role: f"urn:epc:id:sgln:{GCP[role]}.00001.0" for role in ROLES}


def _gtin(role: str, item: str) -> tuple[str, str]:
    """(company prefix, indicator+item reference) of a 13-digit GTIN body."""
    cp = GCP[role]
    return cp, ("0" + item).rjust(13 - len(cp), "0")


def sgtin_urn(role: str, item: str, serial: str) -> str:
    cp, iir = _gtin(role, item)
    return f"urn:epc:id:sgtin:{cp}.{iir}.{serial}"


def lgtin_urn(role: str, item: str, lot: str) -> str:
    cp, iir = _gtin(role, item)
    return f"urn:epc:class:lgtin:{cp}.{iir}.{lot}"


def part_dl(item: str, serial: str) -> str:
    from provenance.epcis import canonical_epc

    return canonical_epc(sgtin_urn("stamping", item, serial))


@dataclass
class Truth:
    """Ground truth: for each heat the EPCs made from it; for each part its heat and mother coil."""

    heats: dict[str, str] = field(default_factory=dict)  # heat number -> heat LGTIN URN
    downstream: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # heat no -> kind -> EPCs
    part_heat: dict[str, str] = field(default_factory=dict)  # part EPC -> heat number
    part_coil: dict[str, str] = field(default_factory=dict)  # part EPC -> coil identifier
    non_conformant_parts: list[str] = field(default_factory=list)
    #: with ``lineage_fan_in``: the welded sub-assembly EPC whose upstream lineage joins that many parts
    deep_part: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"heats": self.heats, "downstream": self.downstream, "part_heat": self.part_heat,
                "part_coil": self.part_coil, "non_conformant_parts": self.non_conformant_parts,
                "deep_part": self.deep_part}


@dataclass
class SupplyChain:
    """Generated data: EPCIS documents per enterprise role (capture in list order), certificates, truth."""

    documents: list[tuple[str, dict[str, Any]]]
    certificates: list[dict[str, Any]]
    truth: Truth
    event_count: int


def _doc(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"@context": CONTEXT, "type": "EPCISDocument", "schemaVersion": "2.0",
            "creationDate": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"), "epcisBody": {"eventList": events}}


CET = timezone(timedelta(hours=1))


def _time(t: datetime) -> str:
    return t.astimezone(CET).strftime("%Y-%m-%dT%H:%M:%S.000+01:00")


def _certificate(sample: dict[str, Any], heat: str, coil: str, rng: random.Random) -> dict[str, Any]:
    doc = copy.deepcopy(sample)
    cert = doc["Certificate"]
    cert["ProductDescription"]["B07"] = coil
    for insp in cert.get("Inspection") or []:
        insp["C00"] = heat
    ct = cert.get("CommercialTransaction") or {}
    if "A03" in ct:
        ct["A03"] = f"{ct['A03']}-{coil}"[:60]
    return doc


def events_per_heat(slabs: int, slits: int, blanks: int, parts_per_assembly: int) -> int:
    """Exact number of events one heat produces with these fan-outs."""
    parts = slits * blanks
    assemblies = -(-parts // parts_per_assembly)
    per_coil = 1 + 1 + 1 + 1 + 1 + slits * (1 + 1 + 1) + parts * 2 + 2 + assemblies
    return 2 + 1 + slabs * per_coil


def generate(*, target_events: int = 10_000, heats: int | None = None, slabs_per_heat: int = 2,
             slits_per_coil: int = 3, blanks_per_slit: int = 8, parts_per_assembly: int = 4,
             non_conformant_rate: float = 0.02, mill_prefix: str = "88.1.1", seed: int = 7,
             lineage_fan_in: int = 0) -> SupplyChain:
    """Generate a supply chain of about ``target_events`` EPCIS events (or exactly ``heats`` heats).

    Mother coils are named ``hdl:<mill_prefix>/H<heat>-C<coil>``, which is the identifier the API gives
    the coil's certificate when the mill with that prefix posts it.

    ``lineage_fan_in`` (0 = off): the OEM also welds the first ``lineage_fan_in`` stamped parts of the
    first heat into one sub-frame (a TransformationEvent); ``truth.deep_part`` names it. Its upstream
    lineage joins every part, blank, slit coil, mother coil, slab and the heat: with the default
    fan-outs, ``lineage_fan_in=16`` gives a part with about 50 upstream records (the benchmark's
    "verify lineage-50" case). Raises ValueError when the first heat has fewer parts.
    """
    from provenance.samples import load_samples

    rng = random.Random(seed)
    samples = [doc for _, doc in load_samples()]
    per_heat = events_per_heat(slabs_per_heat, slits_per_coil, blanks_per_slit, parts_per_assembly)
    n_heats = heats if heats is not None else max(1, round(target_events / per_heat))
    truth = Truth()
    by_role: dict[str, list[dict[str, Any]]] = {r: [] for r in ROLES}
    certificates: list[dict[str, Any]] = []
    t0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    coil_no = 118000
    part_serial = 100000
    asm_serial = 500000
    for h in range(n_heats):
        heat = f"K{52000 + h}"
        t = t0 + timedelta(hours=6 * h)
        heat_epc = lgtin_urn("mill", "00001", heat)
        truth.heats[heat] = heat_epc
        down: dict[str, list[str]] = {"slabs": [], "coils": [], "slit_coils": [], "blanks": [], "parts": [],
                                      "assemblies": []}
        mill = by_role["mill"]
        mill.append({"type": "ObjectEvent", "eventTime": _time(t), "eventTimeZoneOffset": "+01:00", "action": "ADD",
                     "quantityList": [{"epcClass": heat_epc, "quantity": 180, "uom": "TNE"}],
                     "bizStep": "commissioning", "disposition": "active", "readPoint": {"id": SITES["mill"]},
                     "bizLocation": {"id": SITES["mill"]}})
        mill.append({"type": "ObjectEvent", "eventTime": _time(t + timedelta(minutes=20)),
                     "eventTimeZoneOffset": "+01:00", "action": "OBSERVE",
                     "quantityList": [{"epcClass": heat_epc, "quantity": 180, "uom": "TNE"}],
                     "bizStep": "inspecting", "disposition": "conformant", "readPoint": {"id": SITES["mill"]}})
        slabs = [sgtin_urn("mill", "00002", f"{heat}-S{s + 1}") for s in range(slabs_per_heat)]
        down["slabs"] += slabs
        mill.append({"type": "TransformationEvent", "eventTime": _time(t + timedelta(minutes=45)),
                     "eventTimeZoneOffset": "+01:00",
                     "inputQuantityList": [{"epcClass": heat_epc, "quantity": 180, "uom": "TNE"}],
                     "outputEPCList": slabs, "bizStep": "commissioning", "disposition": "active",
                     "readPoint": {"id": SITES["mill"]}, "bizLocation": {"id": SITES["mill"]}})
        for s, slab in enumerate(slabs):
            tc = t + timedelta(hours=1, minutes=10 * s)
            coil_no += 1
            coil = f"NW26-{coil_no}"
            coil_id = f"{mill_prefix}/H{heat}-C{coil}"
            coil_epc = "hdl:" + coil_id
            down["coils"].append(coil_id)
            certificates.append(_certificate(samples[coil_no % len(samples)], heat, coil, rng))
            mill.append({"type": "TransformationEvent", "eventTime": _time(tc), "eventTimeZoneOffset": "+01:00",
                         "inputEPCList": [slab], "outputEPCList": [coil_epc], "bizStep": "commissioning",
                         "disposition": "active", "readPoint": {"id": SITES["mill"]}})
            mill.append({"type": "ObjectEvent", "eventTime": _time(tc + timedelta(minutes=30)),
                         "eventTimeZoneOffset": "+01:00", "action": "OBSERVE", "epcList": [coil_epc],
                         "bizStep": "inspecting", "disposition": "conformant", "readPoint": {"id": SITES["mill"]}})
            ship = {"type": "ObjectEvent", "eventTime": _time(tc + timedelta(hours=2)), "eventTimeZoneOffset": "+01:00",
                    "action": "OBSERVE", "epcList": [coil_epc], "bizStep": "shipping", "disposition": "in_transit",
                    "readPoint": {"id": SITES["mill"]},
                    "sourceList": [{"type": "owning_party", "source": f"urn:epc:id:pgln:{GCP['mill']}.00000"}],
                    "destinationList": [{"type": "owning_party",
                                         "destination": f"urn:epc:id:pgln:{GCP['service_center']}.00000"}]}
            mill.append(ship)
            sc = by_role["service_center"]
            sc.append({"type": "ObjectEvent", "eventTime": _time(tc + timedelta(hours=8)),
                       "eventTimeZoneOffset": "+01:00", "action": "OBSERVE", "epcList": [coil_epc],
                       "bizStep": "receiving", "disposition": "in_progress",
                       "readPoint": {"id": SITES["service_center"]}, "bizLocation": {"id": SITES["service_center"]}})
            slit = [sgtin_urn("service_center", "00010", f"{coil_no}-{k + 1}") for k in range(slits_per_coil)]
            down["slit_coils"] += slit
            sc.append({"type": "TransformationEvent", "eventTime": _time(tc + timedelta(hours=10)),
                       "eventTimeZoneOffset": "+01:00", "inputEPCList": [coil_epc], "outputEPCList": slit,
                       "bizStep": "commissioning", "disposition": "active",
                       "readPoint": {"id": SITES["service_center"]}})
            coil_parts: list[str] = []
            for k, sl in enumerate(slit):
                tb = tc + timedelta(hours=12, minutes=15 * k)
                blanks = [sgtin_urn("service_center", "00020", f"{coil_no}-{k + 1}-{b + 1}")
                          for b in range(blanks_per_slit)]
                down["blanks"] += blanks
                sc.append({"type": "TransformationEvent", "eventTime": _time(tb), "eventTimeZoneOffset": "+01:00",
                           "inputEPCList": [sl], "outputEPCList": blanks, "bizStep": "commissioning",
                           "disposition": "active", "readPoint": {"id": SITES["service_center"]}})
                sc.append({"type": "ObjectEvent", "eventTime": _time(tb + timedelta(hours=1)),
                           "eventTimeZoneOffset": "+01:00", "action": "OBSERVE", "epcList": blanks,
                           "bizStep": "shipping", "disposition": "in_transit",
                           "readPoint": {"id": SITES["service_center"]}})
                st = by_role["stamping"]
                st.append({"type": "ObjectEvent", "eventTime": _time(tb + timedelta(hours=9)),
                           "eventTimeZoneOffset": "+01:00", "action": "OBSERVE", "epcList": blanks,
                           "bizStep": "receiving", "disposition": "in_progress",
                           "readPoint": {"id": SITES["stamping"]}, "bizLocation": {"id": SITES["stamping"]}})
                for b, blank in enumerate(blanks):
                    part_serial += 1
                    part = part_dl("00030", str(part_serial))
                    tp = tb + timedelta(hours=10, minutes=b)
                    st.append({"type": "TransformationEvent", "eventTime": _time(tp), "eventTimeZoneOffset": "+01:00",
                               "inputEPCList": [blank], "outputEPCList": [part], "bizStep": "commissioning",
                               "disposition": "active", "readPoint": {"id": SITES["stamping"]}})
                    bad = rng.random() < non_conformant_rate
                    st.append({"type": "ObjectEvent", "eventTime": _time(tp + timedelta(minutes=30)),
                               "eventTimeZoneOffset": "+01:00", "action": "OBSERVE", "epcList": [part],
                               "bizStep": "inspecting", "disposition": "non_conformant" if bad else "conformant",
                               "readPoint": {"id": SITES["stamping"]}})
                    if bad:
                        truth.non_conformant_parts.append(part)
                    truth.part_heat[part] = heat
                    truth.part_coil[part] = coil_id
                    coil_parts.append(part)
            down["parts"] += coil_parts
            tsh = tc + timedelta(days=2)
            by_role["stamping"].append({"type": "ObjectEvent", "eventTime": _time(tsh), "eventTimeZoneOffset": "+01:00",
                                        "action": "OBSERVE", "epcList": coil_parts, "bizStep": "shipping",
                                        "disposition": "in_transit", "readPoint": {"id": SITES["stamping"]}})
            oem = by_role["oem"]
            oem.append({"type": "ObjectEvent", "eventTime": _time(tsh + timedelta(hours=6)),
                        "eventTimeZoneOffset": "+01:00", "action": "OBSERVE", "epcList": coil_parts,
                        "bizStep": "receiving", "disposition": "in_progress", "readPoint": {"id": SITES["oem"]},
                        "bizLocation": {"id": SITES["oem"]}})
            for a in range(0, len(coil_parts), parts_per_assembly):
                asm_serial += 1
                asm = sgtin_urn("oem", "00040", str(asm_serial))
                down["assemblies"].append(asm)
                oem.append({"type": "AggregationEvent", "eventTime": _time(tsh + timedelta(hours=8, minutes=a)),
                            "eventTimeZoneOffset": "+01:00", "parentID": asm,
                            "childEPCs": coil_parts[a:a + parts_per_assembly], "action": "ADD",
                            "bizStep": "assembling", "disposition": "in_progress", "readPoint": {"id": SITES["oem"]}})
        truth.downstream[heat] = down
    if lineage_fan_in > 0:
        first_parts = truth.downstream[f"K{52000}"]["parts"]
        if len(first_parts) < lineage_fan_in:
            raise ValueError(f"lineage_fan_in={lineage_fan_in} but the first heat has only {len(first_parts)} parts")
        asm_serial += 1
        frame = sgtin_urn("oem", "00050", str(asm_serial))
        truth.deep_part = frame
        by_role["oem"].append({"type": "TransformationEvent", "eventTime": _time(t0 + timedelta(days=5)),
                               "eventTimeZoneOffset": "+01:00", "inputEPCList": first_parts[:lineage_fan_in],
                               "outputEPCList": [frame], "bizStep": "commissioning", "disposition": "active",
                               "readPoint": {"id": SITES["oem"]}})
    documents: list[tuple[str, dict[str, Any]]] = []
    total = 0
    for role in ROLES:
        evs = by_role[role]
        total += len(evs)
        for i in range(0, len(evs), 250):
            documents.append((role, _doc(evs[i:i + 250])))
    return SupplyChain(documents=documents, certificates=certificates, truth=truth, event_count=total)


def bad_heat_event(heat_epc: str, when: str = "2026-06-01T09:00:00.000+01:00") -> dict[str, Any]:
    """An EPCIS document flagging a heat ``non_conformant`` (a failed re-inspection at the mill)."""
    return _doc([{"type": "ObjectEvent", "eventTime": when, "eventTimeZoneOffset": "+01:00", "action": "OBSERVE",
                  "quantityList": [{"epcClass": heat_epc}], "bizStep": "inspecting",
                  "disposition": "non_conformant", "readPoint": {"id": SITES["mill"]}}])
