"""``api.valuation``: collateral value, LTV and margin-call crossings per day; exact money conversions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from eth_utils import keccak

from api.valuation import (
    LTV_DECIMALS,
    MAX_TIMELINE_DAYS,
    collateral_value,
    currency_exponent,
    day_date,
    format_minor,
    grade_key,
    loan_to_value,
    minor_units,
    unix_day,
    valuation_timeline,
)

# 25 t of coil at 4 000.00 CNY/t = 100 000.00 CNY; loan 80 000.00 CNY = LTV 0.8
WEIGHT = 25_000
LOAN = 8_000_000
EIGHTY = Decimal("0.8")


def test_value_is_weight_times_price_per_tonne_rounded_down() -> None:
    assert collateral_value(25_000, 400_000) == 10_000_000
    assert collateral_value(1, 999) == 0  # 0.999 fen: rounded down, never up
    assert collateral_value(1_001, 1_000) == 1_001
    assert collateral_value(12_345, 412_557) == 12_345 * 412_557 // 1000 == 5_093_016  # 5 093 016.165 → down


def test_ltv_is_rounded_up_to_six_places_and_handles_the_edges() -> None:
    assert loan_to_value(1, 3) == Decimal("0.333334")
    assert loan_to_value(2, 3) == Decimal("0.666667")
    assert loan_to_value(8, 10) == Decimal("0.800000")
    assert loan_to_value(0, 0) == Decimal(0) and loan_to_value(0, 5) == Decimal(0)
    assert loan_to_value(5, 0) == Decimal("Infinity")
    big = 10**40 + 1
    assert loan_to_value(big, 10**40) == Decimal("1.000001")  # no precision lost on huge amounts
    assert loan_to_value(1, 3).as_tuple().exponent == -LTV_DECIMALS


def test_no_price_yet_means_no_value_and_no_margin_call() -> None:
    v = valuation_timeline(WEIGHT, [(20, 400_000)], LOAN, EIGHTY, 17, 21)
    assert [d.day for d in v.days] == [17, 18, 19, 20, 21]
    for d in v.days[:3]:
        assert d.value_minor is None and d.ltv is None and d.price_per_tonne_minor is None and not d.above_threshold
    assert v.days[3].value_minor == 10_000_000 and v.days[3].ltv == Decimal("0.8")
    assert v.crossings == ()
    empty = valuation_timeline(WEIGHT, [], LOAN, EIGHTY, 0, 3)
    assert all(d.value_minor is None for d in empty.days) and empty.crossings == ()


def test_gaps_carry_the_last_price_forward_and_later_prices_are_ignored() -> None:
    prices = [(15, 300_000), (10, 400_000), (30, 1)]  # any order; a price after the window plays no part
    v = valuation_timeline(WEIGHT, prices, None, None, 11, 16)
    assert [(d.day, d.price_per_tonne_minor, d.price_day, d.value_minor) for d in v.days] == [
        (11, 400_000, 10, 10_000_000), (12, 400_000, 10, 10_000_000), (13, 400_000, 10, 10_000_000),
        (14, 400_000, 10, 10_000_000), (15, 300_000, 15, 7_500_000), (16, 300_000, 15, 7_500_000)]
    assert v.latest.day == 16


def test_exactly_at_the_threshold_is_no_margin_call_one_fen_more_is() -> None:
    at = valuation_timeline(WEIGHT, [(10, 400_000)], LOAN, EIGHTY, 10, 12)
    assert all(d.ltv == Decimal("0.800000") and not d.above_threshold for d in at.days)
    assert at.crossings == () and at.margin_calls == ()
    over = valuation_timeline(WEIGHT, [(10, 400_000)], LOAN + 1, EIGHTY, 10, 12)
    # 0.8000001 is reported as 0.800001 (rounded up): the report never hides a call
    assert over.days[0].ltv == Decimal("0.800001") and over.days[0].above_threshold
    assert [(c.day, c.direction) for c in over.crossings] == [(10, "above")]


def test_crossings_above_and_back_below() -> None:
    prices = [(10, 400_000), (12, 390_000), (13, 420_000), (14, 380_000), (15, 400_000)]
    v = valuation_timeline(WEIGHT, prices, LOAN, EIGHTY, 10, 16)
    assert [d.above_threshold for d in v.days] == [False, False, True, False, True, False, False]
    assert [(c.day, c.direction, c.value_minor) for c in v.crossings] == [
        (12, "above", 9_750_000), (13, "below", 10_500_000), (14, "above", 9_500_000), (15, "below", 10_000_000)]
    assert [c.day for c in v.margin_calls] == [12, 14]
    assert v.crossings[0].ltv == Decimal("0.820513")  # 80 000 / 97 500 = 0.8205128… rounded up


def test_a_crossing_is_a_fact_of_the_series_not_of_the_window() -> None:
    prices = [(10, 400_000), (12, 300_000)]
    whole = valuation_timeline(WEIGHT, prices, LOAN, EIGHTY, 10, 15)
    assert [(c.day, c.direction) for c in whole.crossings] == [(12, "above")]
    later = valuation_timeline(WEIGHT, prices, LOAN, EIGHTY, 13, 15)  # already above the day before the window
    assert later.crossings == () and all(d.above_threshold for d in later.days)
    first_price_above = valuation_timeline(WEIGHT, [(12, 300_000)], LOAN, EIGHTY, 10, 13)
    assert [(c.day, c.direction) for c in first_price_above.crossings] == [(12, "above")]


def test_without_a_loan_or_threshold_there_are_values_but_no_crossings() -> None:
    prices = [(10, 400_000), (12, 100_000)]
    no_loan = valuation_timeline(WEIGHT, prices, None, EIGHTY, 10, 13)
    assert [d.value_minor for d in no_loan.days] == [10_000_000, 10_000_000, 2_500_000, 2_500_000]
    assert all(d.ltv is None and not d.above_threshold for d in no_loan.days) and no_loan.crossings == ()
    no_threshold = valuation_timeline(WEIGHT, prices, LOAN, None, 10, 13)
    assert [d.ltv for d in no_threshold.days][-1] == Decimal("3.2") and no_threshold.crossings == ()
    repaid = valuation_timeline(WEIGHT, prices, 0, EIGHTY, 10, 13)
    assert all(d.ltv == 0 and not d.above_threshold for d in repaid.days) and repaid.crossings == ()


def test_worthless_collateral_with_a_loan_is_above_any_threshold() -> None:
    v = valuation_timeline(1, [(5, 999)], 1, Decimal("1000"), 5, 5)
    assert v.days[0].value_minor == 0 and v.days[0].ltv == Decimal("Infinity") and v.days[0].above_threshold
    assert v.margin_calls[0].day == 5


def test_bad_input_is_refused_naming_the_parameter() -> None:
    good = {"net_weight_kg": WEIGHT, "prices": [(10, 1)], "loan_amount_minor": LOAN, "margin_call_ltv": EIGHTY,
            "day_from": 10, "day_to": 11}
    cases = [
        ({"net_weight_kg": 0}, ValueError, "net_weight_kg"),
        ({"net_weight_kg": 1.5}, TypeError, "net_weight_kg"),
        ({"net_weight_kg": True}, TypeError, "net_weight_kg"),
        ({"loan_amount_minor": -1}, ValueError, "loan_amount_minor"),
        ({"margin_call_ltv": 0.8}, TypeError, "margin_call_ltv"),
        ({"margin_call_ltv": Decimal(0)}, ValueError, "margin_call_ltv"),
        ({"margin_call_ltv": Decimal("NaN")}, ValueError, "margin_call_ltv"),
        ({"margin_call_ltv": Decimal("0.8000001")}, ValueError, "decimal places"),
        ({"prices": [(10, 0)]}, ValueError, "price_per_tonne_minor"),
        ({"prices": [(10, 1), (10, 2)]}, ValueError, "twice"),
        ({"prices": [(10,)]}, ValueError, "pairs"),
        ({"day_from": 12}, ValueError, "before day_from"),
        ({"day_to": 10 + MAX_TIMELINE_DAYS}, ValueError, "at most"),
        ({"day_from": -1}, ValueError, "day_from"),
    ]
    for change, error, words in cases:
        with pytest.raises(error, match=words):
            valuation_timeline(**{**good, **change})
    assert valuation_timeline(**{**good, "margin_call_ltv": Decimal("0.8000000")}).days  # trailing zeros are fine
    assert len(valuation_timeline(**{**good, "day_to": 9 + MAX_TIMELINE_DAYS}).days) == MAX_TIMELINE_DAYS


def test_minor_units_are_exact_per_iso_4217_exponent() -> None:
    assert currency_exponent("CNY") == 2 and currency_exponent("JPY") == 0 and currency_exponent("KWD") == 3
    assert minor_units("4125.50", "CNY") == 412_550 == minor_units("4125.5", "CNY")
    assert minor_units("0.01", "USD") == 1 and minor_units("7", "EUR") == 700
    assert minor_units("613000", "JPY") == 613_000
    assert minor_units("1.234", "KWD") == 1_234
    assert minor_units("12345678901234567890.99", "CNY") == 1_234_567_890_123_456_789_099  # no float anywhere
    for amount, currency, words in [("4125.505", "CNY", "decimal places"), ("1.5", "JPY", "decimal places"),
                                    ("-1.00", "CNY", "decimal amount"), ("1e3", "CNY", "decimal amount"),
                                    ("1,000.00", "CNY", "decimal amount"), ("", "CNY", "decimal amount"),
                                    (".5", "CNY", "decimal amount"), ("01.00", "CNY", "decimal amount"),
                                    ("1.00", "cny", "three letters"), ("1.00", "ABC", "not an ISO 4217"),
                                    ("1.00", "XAU", "no minor unit")]:
        with pytest.raises(ValueError, match=words):
            minor_units(amount, currency)
    assert format_minor(412_550, "CNY") == "4125.50" and format_minor(5, "KWD") == "0.005"
    assert format_minor(613_000, "JPY") == "613000" and format_minor(-1, "USD") == "-0.01"


def test_days_and_grade_keys() -> None:
    assert unix_day(date(1970, 1, 2)) == 1 and unix_day(date(2026, 11, 30)) == 20_787
    east = datetime(2026, 12, 1, 2, 0, tzinfo=timezone(timedelta(hours=8)))  # 18:00 UTC the day before
    assert unix_day(east) == 20_787 == unix_day(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    assert day_date(20_787) == date(2026, 11, 30)
    with pytest.raises(ValueError, match="Unix day"):
        day_date(-1)
    assert grade_key("S355MC") == keccak(text="S355MC") and grade_key("S355MC") != grade_key("s355mc")
    with pytest.raises(ValueError, match="empty"):
        grade_key("")
