"""Supply-chain receivables as ERC-3525 semi-fungible tokens: slot encoding, amounts, discount arithmetic.

Terms (ERC-3525 §Specification; supply-chain finance usage):

* **receivable** -- the right to be paid by the core enterprise (the *issuer*) at *maturity*;
* **token id / slot / value** -- ERC-3525's triple. The **slot** packs issuer, currency and maturity
  into 256 bits: ``issuer (160 bits) << 96 | ISO 4217 code as 3 ASCII bytes (24 bits) << 64 |
  maturity in unix seconds (64 bits)``, so value is fungible exactly among receivables of one issuer,
  currency and maturity. The **value** is the amount in the smallest currency unit (fen, cents):
  ``valueDecimals() == 2``; ``1,000,000.00 CNY`` is value ``100_000_000``;
* **holder** -- owner of a token; **discount** -- a bank buys value before maturity at an annual
  rate in basis points on a 365-day basis: ``price = value - floor(value * rate_bps * seconds_left /
  (10_000 * 31_536_000))`` (the same integer arithmetic as ``ReceivableToken.discount``);
* **settle** -- at maturity the issuer pays each holder and the token's value is redeemed.

Pure functions, no I/O; mirrors ``contracts/ReceivableToken.sol``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from eth_utils import to_checksum_address

from provenance.canonical import record_digest

__all__ = [
    "BPS",
    "VALUE_DECIMALS",
    "YEAR_SECONDS",
    "Slot",
    "decode_slot",
    "discount_price",
    "encode_slot",
    "format_amount",
    "invoice_digest",
    "parse_amount",
]

VALUE_DECIMALS = 2
"""``valueDecimals()``: value is in 1/100 of the currency unit (fen, cents)."""
BPS = 10_000
YEAR_SECONDS = 365 * 24 * 3600
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_UINT64 = 2**64


@dataclass(frozen=True)
class Slot:
    """A decoded slot: issuer (checksum address), ISO 4217 currency code, maturity (unix seconds)."""

    issuer: str
    currency: str
    maturity: int


def encode_slot(issuer: str, currency: str, maturity: int) -> int:
    """The 256-bit slot of (issuer, currency, maturity); ValueError naming the bad argument."""
    if not _CURRENCY.match(currency or ""):
        raise ValueError(f"currency must be an ISO 4217 code of three capital letters, got {currency!r}")
    if isinstance(maturity, bool) or not isinstance(maturity, int) or not 0 < maturity < _UINT64:
        raise ValueError(f"maturity must be unix seconds in 1..2**64-1, got {maturity!r}")
    raw = bytes.fromhex(to_checksum_address(issuer)[2:])
    return (int.from_bytes(raw, "big") << 96) | (int.from_bytes(currency.encode("ascii"), "big") << 64) | maturity


def decode_slot(slot: int) -> Slot:
    """Inverse of :func:`encode_slot`."""
    if not 0 <= slot < 2**256:
        raise ValueError("slot must be a uint256")
    issuer = to_checksum_address((slot >> 96).to_bytes(20, "big"))
    currency = ((slot >> 64) & 0xFFFFFF).to_bytes(3, "big").decode("ascii", "replace")
    return Slot(issuer, currency, slot & (_UINT64 - 1))


def parse_amount(text: str) -> int:
    """``"1000000.00"`` -> ``100000000`` (value in fen/cents); at most 2 decimals, positive.

    Raises ValueError with the reason.
    """
    if not isinstance(text, str) or not re.fullmatch(r"\d{1,30}(\.\d{1,2})?", text.strip()):
        raise ValueError(f"amount must be a decimal string with at most {VALUE_DECIMALS} decimals, got {text!r}")
    try:
        value = int(Decimal(text.strip()) * 10**VALUE_DECIMALS)
    except InvalidOperation as exc:  # pragma: no cover - the regex already excludes these
        raise ValueError(f"amount {text!r} is not a number") from exc
    if value <= 0:
        raise ValueError("amount must be positive")
    return value


def format_amount(value: int) -> str:
    """``100000000`` -> ``"1000000.00"``."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**VALUE_DECIMALS)
    return f"{sign}{whole}.{frac:0{VALUE_DECIMALS}d}"


def discount_price(value: int, rate_bps: int, seconds_to_maturity: int) -> int:
    """Price a bank pays for ``value`` (fen) discounted at ``rate_bps`` per year, ``seconds_to_maturity`` ahead.

    ``value - value * rate_bps * seconds // (10_000 * 31_536_000)`` -- exactly the contract's formula
    (``ReceivableToken.discountPrice``). Raises ValueError for negative inputs, a rate above 10 000 bps,
    or rate x time above 100 % (the contract's ``DiscountExceedsValue``).
    """
    if value < 0 or seconds_to_maturity < 0:
        raise ValueError("value and seconds_to_maturity must be >= 0")
    if not 0 <= rate_bps <= BPS:
        raise ValueError(f"rate_bps must be in 0..{BPS}, got {rate_bps}")
    if rate_bps * seconds_to_maturity > BPS * YEAR_SECONDS:
        raise ValueError("rate x time above 100 %: the discount would exceed the value")
    return value - (value * rate_bps * seconds_to_maturity) // (BPS * YEAR_SECONDS)


def invoice_digest(invoice: dict[str, Any]) -> bytes:
    """32-byte SHA-256 of the RFC 8785 canonical JSON of an invoice document (the on-chain invoice digest)."""
    if not isinstance(invoice, dict) or not invoice:
        raise ValueError("invoice must be a non-empty JSON object")
    return record_digest(invoice)
