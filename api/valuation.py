"""Collateral valuation from a daily price index: value, loan-to-value and margin-call crossings per day.

The collateral is goods of one grade (e.g. the steel coils of one warehouse receipt) with a net weight in
kilograms; the price index (``contracts/PriceIndex.sol``) gives prices in the currency's **minor unit**
(fen, cents) **per tonne** (1000 kg) for Unix days (``floor(unix seconds / 86400)``, UTC). Everything
here is pure (no I/O) and exact:

* **value** of day d = ``net_weight_kg * price / 1000`` in minor units, **rounded down** (a bank never
  sees more collateral than there is), where ``price`` is the latest price published on or before d
  (``PriceIndex.priceAt``): a day without a price carries the last price forward; before the first
  price the value is unknown (``None``).
* **LTV** (loan-to-value) = ``loan / value``. Decisions use the exact fraction; the reported
  :class:`~decimal.Decimal` is rounded **up** to :data:`LTV_DECIMALS` (6) places, so for a threshold with
  at most 6 decimal places "reported LTV > threshold" and "exact LTV > threshold" always agree. A value of
  0 with a loan > 0 has an infinite LTV (``Decimal("Infinity")``); a loan of 0 has LTV 0.
* **Margin call**: LTV strictly **above** the bank's threshold (exactly at the threshold is no call).
  A :class:`Crossing` ``"above"`` is a day whose LTV is above the threshold while the day before was not
  (or had no price yet); ``"below"`` the first day back at or under it. The state of the day before
  ``day_from`` counts, so a crossing is a fact about the series, not about the chosen window.

The prices of a window come from the chain with
:meth:`api.workflows.adapters.PriceIndexReader.valuation_prices` (the price in force the day before
``day_from`` and every price published within the window), e.g.::

    prices = reader.valuation_prices(grade_key("S355MC"), "CNY", day_from, day_to)
    timeline = valuation_timeline(25_000, prices, 8_000_000, Decimal("0.8"), day_from, day_to)

Money helpers: :func:`minor_units` turns a decimal string in major units (``"4125.50"``) into exact
minor units with the currency's ISO 4217 exponent (:func:`currency_exponent`, data of the ``iso4217``
package); :func:`format_minor` does the reverse. :func:`grade_key` is ``PriceIndex``'s grade key and
:func:`unix_day` / :func:`day_date` convert Unix days.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal, localcontext
from fractions import Fraction
from typing import Literal

from eth_utils import keccak
from iso4217 import Currency

#: Kilograms per tonne: prices are per tonne, weights in kg.
KG_PER_TONNE = 1000
#: Decimal places of a reported LTV (rounded up).
LTV_DECIMALS = 6
#: Longest timeline one call computes (days, inclusive range): about ten years.
MAX_TIMELINE_DAYS = 3660
#: Unix day of 9999-12-31, the last day an ISO 8601 date can name.
MAX_DAY = (date(9999, 12, 31) - date(1970, 1, 1)).days
_EPOCH = date(1970, 1, 1)
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_AMOUNT = re.compile(r"^(0|[1-9][0-9]*)(\.[0-9]+)?$")
_LTV_QUANTUM = Decimal(1).scaleb(-LTV_DECIMALS)


# --------------------------------------------------------------------------- days, grades, currencies


def unix_day(day: date | datetime) -> int:
    """Unix day of a date (days since 1970-01-01); a datetime counts in UTC (naive = UTC)."""
    if isinstance(day, datetime):
        day = (day.astimezone(UTC) if day.tzinfo else day).date()
    return (day - _EPOCH).days


def day_date(day: int) -> date:
    """The date of Unix day ``day`` (0 ≤ day ≤ :data:`MAX_DAY`); ValueError outside."""
    if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= MAX_DAY:
        raise ValueError(f"day must be an integer Unix day in 0..{MAX_DAY}, got {day!r}")
    return _EPOCH + timedelta(days=day)


def grade_key(name: str) -> bytes:
    """``PriceIndex`` grade key: keccak256 of the grade name's UTF-8 bytes (exact spelling, e.g. "S355MC")."""
    if not name:
        raise ValueError("grade name is empty")
    return keccak(text=name)


def currency_exponent(code: str) -> int:
    """ISO 4217 minor-unit exponent of an alphabetic code (CNY 2, JPY 0, KWD 3).

    Raises ValueError for a code that is not three letters A–Z, not in ISO 4217, or without a minor unit
    (gold ``XAU``, …: "N.A." in the standard's list).
    """
    if not isinstance(code, str) or not _CURRENCY.match(code):
        raise ValueError(f"currency {code!r} is not three letters A-Z (ISO 4217 alphabetic code)")
    try:
        exponent = Currency(code).exponent
    except ValueError as exc:
        raise ValueError(f"currency {code!r} is not an ISO 4217 currency") from exc
    if exponent is None:
        raise ValueError(f"currency {code!r} has no minor unit in ISO 4217")
    return int(exponent)


def minor_units(amount: str, currency: str) -> int:
    """Exact minor units of a decimal string in major units: ``minor_units("4125.50", "CNY") == 412550``.

    The string is digits with an optional fraction (no sign, exponent or grouping); the fraction may
    have at most the currency's exponent of digits ("4125.505" CNY is refused, never rounded). Raises
    ValueError naming the problem.
    """
    exponent = currency_exponent(currency)
    if not isinstance(amount, str) or not _AMOUNT.match(amount):
        raise ValueError(f"{amount!r} is not a decimal amount in major units (digits, optional '.' fraction)")
    whole, _, fraction = amount.partition(".")
    if len(fraction) > exponent:
        raise ValueError(f"{amount!r} has {len(fraction)} decimal places; {currency} has {exponent}")
    return int(whole) * 10**exponent + (int(fraction.ljust(exponent, "0")) if exponent else 0)


def format_minor(amount_minor: int, currency: str) -> str:
    """Major-unit decimal string of an amount in minor units (``format_minor(412550, "CNY") == "4125.50"``)."""
    exponent = currency_exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**exponent)
    return f"{sign}{whole}.{fraction:0{exponent}d}" if exponent else f"{sign}{whole}"


# --------------------------------------------------------------------------- valuation


def collateral_value(net_weight_kg: int, price_per_tonne_minor: int) -> int:
    """``net_weight_kg * price_per_tonne_minor / 1000`` in minor units, rounded down."""
    return net_weight_kg * price_per_tonne_minor // KG_PER_TONNE


def loan_to_value(loan_amount_minor: int, value_minor: int) -> Decimal:
    """LTV = loan / value rounded up to :data:`LTV_DECIMALS` places (``Infinity`` for a loan against 0)."""
    if loan_amount_minor == 0:
        return Decimal(0).quantize(_LTV_QUANTUM)
    if value_minor == 0:
        return Decimal("Infinity")
    with localcontext() as ctx:
        ctx.prec = len(str(loan_amount_minor)) + LTV_DECIMALS + 2
        ctx.rounding = ROUND_CEILING
        return (Decimal(loan_amount_minor) / Decimal(value_minor)).quantize(_LTV_QUANTUM, rounding=ROUND_CEILING)


@dataclass(frozen=True)
class DailyValue:
    """The collateral on one day.

    ``price_per_tonne_minor`` / ``price_day``: the price used and the day it was published for (earlier
    than ``day`` when carried forward); ``value_minor``: collateral value in minor units; ``ltv``: loan /
    value (None without a loan or a price); ``above_threshold``: LTV strictly above the margin-call
    threshold (False without threshold, loan or price). All None before the first price.
    """

    day: int
    price_per_tonne_minor: int | None
    price_day: int | None
    value_minor: int | None
    ltv: Decimal | None
    above_threshold: bool


@dataclass(frozen=True)
class Crossing:
    """A day the LTV crossed the threshold: ``"above"`` (a margin call) or back ``"below"`` (at or under)."""

    day: int
    direction: Literal["above", "below"]
    ltv: Decimal
    value_minor: int


@dataclass(frozen=True)
class Valuation:
    """:func:`valuation_timeline`'s answer: the inputs it used, one :class:`DailyValue` per day of
    ``day_from..day_to`` (ascending) and the :class:`Crossing` s inside that range (ascending)."""

    net_weight_kg: int
    loan_amount_minor: int | None
    margin_call_ltv: Decimal | None
    day_from: int
    day_to: int
    days: tuple[DailyValue, ...]
    crossings: tuple[Crossing, ...]

    @property
    def margin_calls(self) -> tuple[Crossing, ...]:
        """The ``"above"`` crossings: days a margin call is due."""
        return tuple(c for c in self.crossings if c.direction == "above")

    @property
    def latest(self) -> DailyValue:
        """The last day of the timeline (``day_to``)."""
        return self.days[-1]


def _check_int(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _sorted_prices(prices: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    series = []
    for entry in prices:
        if not isinstance(entry, tuple | list) or len(entry) != 2:
            raise ValueError(f"prices entries are (day, price_per_tonne_minor) pairs, got {entry!r}")
        day = _check_int("price day", entry[0], minimum=0)
        price = _check_int("price_per_tonne_minor", entry[1], minimum=1)
        series.append((day, price))
    series.sort()
    for (a, _), (b, _) in zip(series, series[1:], strict=False):
        if a == b:
            raise ValueError(f"prices name day {a} twice")
    return [d for d, _ in series], [p for _, p in series]


def _above(loan: int, value: int, threshold: Fraction) -> bool:
    """Exact LTV > threshold (a loan against a value of 0 is above any threshold)."""
    if loan == 0:
        return False
    if value == 0:
        return True
    return Fraction(loan, value) > threshold


def valuation_timeline(
    net_weight_kg: int,
    prices: list[tuple[int, int]],
    loan_amount_minor: int | None,
    margin_call_ltv: Decimal | None,
    day_from: int,
    day_to: int,
) -> Valuation:
    """Value, LTV and margin-call crossings of ``net_weight_kg`` of one grade for each day of
    ``day_from..day_to`` (Unix days, inclusive).

    Parameters:
        net_weight_kg: net weight of the collateral in kg (> 0).
        prices: ``(day, price_per_tonne_minor)`` pairs of the grade in the loan's currency, any order, each
            day once, prices > 0; pairs before ``day_from`` carry into the window, pairs after ``day_to``
            are ignored.
        loan_amount_minor: outstanding loan in the same minor units (≥ 0), or None (no LTV, no crossings).
        margin_call_ltv: the bank's threshold as a Decimal > 0 with at most :data:`LTV_DECIMALS` places
            (``Decimal("0.8")`` = 80 %), or None (LTV without crossings).
        day_from, day_to: the window, ``day_from <= day_to``, at most :data:`MAX_TIMELINE_DAYS` days.

    Returns:
        a :class:`Valuation`.

    Raises:
        TypeError: a non-int weight, day, price or loan, or a threshold that is not a Decimal (a float
            cannot state 0.8 exactly).
        ValueError: weight ≤ 0, negative loan, a price ≤ 0, a day given twice, a threshold ≤ 0 or with
            more than 6 decimal places, an empty, reversed or too long window.
    """
    _check_int("net_weight_kg", net_weight_kg, minimum=1)
    if loan_amount_minor is not None:
        _check_int("loan_amount_minor", loan_amount_minor, minimum=0)
    _check_int("day_from", day_from, minimum=0)
    _check_int("day_to", day_to, minimum=0)
    if day_to < day_from:
        raise ValueError(f"day_to {day_to} is before day_from {day_from}")
    if day_to - day_from + 1 > MAX_TIMELINE_DAYS:
        raise ValueError(f"the window has {day_to - day_from + 1} days; at most {MAX_TIMELINE_DAYS}")
    threshold: Fraction | None = None
    if margin_call_ltv is not None:
        if not isinstance(margin_call_ltv, Decimal):
            raise TypeError(f"margin_call_ltv must be a Decimal, got {type(margin_call_ltv).__name__}")
        if not margin_call_ltv.is_finite() or margin_call_ltv <= 0:
            raise ValueError(f"margin_call_ltv must be a finite Decimal > 0, got {margin_call_ltv}")
        threshold = Fraction(margin_call_ltv)
        if (threshold * 10**LTV_DECIMALS).denominator != 1:
            raise ValueError(f"margin_call_ltv {margin_call_ltv} has more than {LTV_DECIMALS} decimal places")
    days, values = _sorted_prices(prices)

    def price_on_or_before(day: int) -> tuple[int, int] | None:
        i = bisect.bisect_right(days, day)
        return (days[i - 1], values[i - 1]) if i else None

    def is_above(value: int | None) -> bool:
        if value is None or loan_amount_minor is None or threshold is None:
            return False
        return _above(loan_amount_minor, value, threshold)

    def value_on(day: int) -> int | None:
        found = price_on_or_before(day)
        return None if found is None else collateral_value(net_weight_kg, found[1])

    was_above = day_from > 0 and is_above(value_on(day_from - 1))
    timeline: list[DailyValue] = []
    crossings: list[Crossing] = []
    for day in range(day_from, day_to + 1):
        found = price_on_or_before(day)
        if found is None:
            timeline.append(DailyValue(day, None, None, None, None, False))
            continue
        price_day, price = found
        value = collateral_value(net_weight_kg, price)
        ltv = None if loan_amount_minor is None else loan_to_value(loan_amount_minor, value)
        above = is_above(value)
        if threshold is not None and ltv is not None and above != was_above:
            crossings.append(Crossing(day, "above" if above else "below", ltv, value))
        was_above = above
        timeline.append(DailyValue(day, price, price_day, value, ltv, above))
    return Valuation(net_weight_kg=net_weight_kg, loan_amount_minor=loan_amount_minor,
                     margin_call_ltv=margin_call_ltv, day_from=day_from, day_to=day_to,
                     days=tuple(timeline), crossings=tuple(crossings))
