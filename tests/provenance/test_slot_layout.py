"""The README's slot layout and the code agree (issue 12): decode a slot with the bit ranges the README states.

Before: the README said issuer (160) ‖ currency (24) ‖ maturity (64) — 248 bits, which puts the issuer
at bits 247..88 — while the contract and the code use ``issuer << 96``: a bank decoding by the README
got the wrong issuer. The README now states the bit ranges; this test reads them from the README.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from eth_account import Account

from provenance.receivables import decode_slot, encode_slot

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_ranges() -> dict[str, tuple[int, int]]:
    """{"issuer": (255, 96), "reserved": …, "currency": …, "maturity": …} as the README's receivables section says."""
    text = " ".join(README.read_text(encoding="utf-8").split())
    section = text[text.index("**slot**"):text.index("**value**")]
    out = {}
    for name, pattern in (("issuer", r"issuer address in bits (\d+)–(\d+)"),
                          ("reserved", r"reserved zero bits in bits (\d+)–(\d+)"),
                          ("currency", r"currency as 3 ASCII bytes in bits (\d+)–(\d+)"),
                          ("maturity", r"maturity in unix seconds in bits (\d+)–(\d+)")):
        match = re.search(pattern, section)
        assert match, f"README slot section does not state the {name} bits: {section}"
        out[name] = (int(match.group(1)), int(match.group(2)))
    return out


def field(slot: int, hi: int, lo: int) -> int:
    return (slot >> lo) & ((1 << (hi - lo + 1)) - 1)


def test_readme_layout_covers_256_bits_without_gaps() -> None:
    ranges = sorted(readme_ranges().values(), reverse=True)
    assert ranges[0][0] == 255 and ranges[-1][1] == 0
    for (_, lo), (hi, _) in zip(ranges, ranges[1:], strict=False):
        assert hi == lo - 1


def test_decode_as_the_readme_says() -> None:
    issuer = Account.create().address
    slot = encode_slot(issuer, "CNY", 1_900_000_000)
    r = readme_ranges()
    assert field(slot, *r["issuer"]).to_bytes(20, "big").hex() == issuer[2:].lower()
    assert field(slot, *r["reserved"]) == 0
    assert field(slot, *r["currency"]).to_bytes(3, "big") == b"CNY"
    assert field(slot, *r["maturity"]) == 1_900_000_000
    decoded = decode_slot(slot)
    assert (decoded.issuer, decoded.currency, decoded.maturity) == (issuer, "CNY", 1_900_000_000)


def test_reserved_bits_refused() -> None:
    slot = encode_slot(Account.create().address, "EUR", 1)
    with pytest.raises(ValueError, match="reserved"):
        decode_slot(slot | (1 << 90))
