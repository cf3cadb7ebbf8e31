"""GS1 Digital Link request parsing for the resolver: check digits, qualifier order, lookup keys, link types."""

from __future__ import annotations

import pytest

from provenance.digital_link import InvalidDigitalLink, digital_link_for_key, link_type_uri, parse_digital_link
from provenance.epcis import canonical_epc

SGTIN = "urn:epc:id:sgtin:4012345.011111.P-77"
LGTIN = "urn:epc:class:lgtin:4012345.011111.K52000"
GTIN = "04012345111118"


def test_parse_check_digits_and_qualifier_order() -> None:
    dl = parse_digital_link(f"/01/{GTIN}/10/K52000/21/P-77", "17=261231&linkType=gs1:pip")
    assert dl.primary == ("01", GTIN) and dl.qualifiers == [("10", "K52000"), ("21", "P-77")]
    assert dl.attributes == [("17", "261231")] and dl.params == {"linkType": "gs1:pip"}
    # serial first, then lot, then the GTIN class: the qualifier-path walk
    assert dl.lookup_keys == [canonical_epc(SGTIN), canonical_epc(LGTIN), f"https://id.gs1.org/01/{GTIN}"]
    assert parse_digital_link("/01/4012345111118").primary == ("01", GTIN)  # GTIN-13 zero-filled
    bad = GTIN[:-1] + str((int(GTIN[-1]) + 1) % 10)
    for path, query, needle in [
        (f"/01/{bad}/21/1", "", "check digit"),
        ("/00/106141412345678907", "", "check digit"),
        ("/414/4012345000008", "", "check digit"),
        (f"/01/{GTIN}/21/1/10/L", "", "order"),  # lot after serial
        (f"/01/{GTIN}/254/1", "", "not allowed"),
        (f"/01/{GTIN}/21", "", "pairs"),
        (f"/01/{GTIN}/21/" + "9" * 21, "", "pattern"),  # AI 21 is at most 20 characters
        (f"/01/{GTIN}", "17=261399", "pattern"),  # month 13
        ("/8003/1", "", "primary key"),
    ]:
        with pytest.raises(InvalidDigitalLink, match=needle):
            parse_digital_link(path, query)


def test_link_types_and_emitted_uris() -> None:
    assert link_type_uri("gs1:pip") == link_type_uri("https://gs1.org/voc/pip") == "https://gs1.org/voc/pip"
    assert link_type_uri("all") is None and link_type_uri("gs1:recallStatus") is None
    assert digital_link_for_key(canonical_epc(SGTIN), "https://t.example/") == f"https://t.example/01/{GTIN}/21/P-77"
    assert digital_link_for_key("hdl:88.1.1/C-1", "https://t.example") is None
    assert digital_link_for_key(canonical_epc("urn:epc:id:grai:4012345.00001.9"), "https://t.example") is None
