"""``/v1/price-index``: daily prices per steel grade and currency on the PriceIndex contract.

* ``POST /v1/price-index`` (a price publisher's API key): one day's list, one transaction. Body ``{day:
  "2026-11-30", prices: [{grade: "S355MC", currency: "CNY", price_per_tonne: "4125.50"}]}``; the day is a
  UTC calendar date (ISO 8601), the price a decimal string in major units per tonne (1000 kg), converted
  exactly to minor units with the currency's ISO 4217 exponent (more decimal places than the currency has
  are refused, never rounded). 422 names the field (``body.day``, ``body.prices[2].price_per_tonne`` …); 403
  ``NotPricePublisher`` when the caller is not an active enterprise with the ``price_publisher`` role;
  the contract's refusals (``PriceOwnedByOther`` 403, ``DayBeforeLatest`` / ``AlreadyCorrected`` /
  ``CorrectionWindowClosed`` 409) come through :data:`api.revert_reasons.REASONS`. Publishing the same day
  again with another price is the publisher's one correction (within 7 days); the same price again
  changes nothing (a retried request is harmless).
* ``GET /v1/price-index/{grade}?currency=&from=&to=`` (public: the prices are on chain for every member to
  read): the published series read from the chain, per currency, with each day's publisher, transaction
  hash and block, the correction if any, and the price in force at ``from`` (``PriceIndex.priceAt``).

The grade is its exact name (``S355MC``; the contract keys it as keccak256 of the UTF-8 name, so spelling
and case matter). Days in answers are ISO dates plus ``unix_day``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from eth_utils import to_checksum_address
from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, Field
from web3.logs import DISCARD

from api.chain import with_retry
from api.deps import CurrentEnterprise, SessionDep, StateDep
from api.errors import CHAIN_REFUSAL_RESPONSES, UnprocessableError, issue
from api.revert_reasons import explain
from api.state import AppState
from api.valuation import (
    MAX_TIMELINE_DAYS,
    currency_exponent,
    day_date,
    format_minor,
    grade_key,
    minor_units,
    unix_day,
)
from api.workflows.adapters import EnterpriseRole, PriceIndexReader, RegistryReader
from api.workflows.contract_calls import contract, enterprise_key, iso, party, require_chain, send_or_refuse, tx_hex

router = APIRouter(prefix="/v1/price-index", tags=["price index"], responses=CHAIN_REFUSAL_RESPONSES)

#: A grade name: letters, digits and ``. + _ -`` (EN 10027 "S355J2+N", GB "Q355B", EN numbers "1.0577").
GRADE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$"
_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
#: Most rows in one day's list (``PriceIndex.MAX_ENTRIES``).
MAX_ROWS = 64
#: Largest price per tonne in minor units (``PriceIndex.MAX_PRICE``).
MAX_PRICE_MINOR = 2**128 - 1
#: Days a series answer covers when ``from`` is not given (ending at ``to``).
DEFAULT_SPAN_DAYS = 366
#: Most blocks one eth_getLogs request spans (below Besu's and our validators' 5000).
_LOG_WINDOW_BLOCKS = 1000


class PriceRow(BaseModel):
    """One (grade, currency) price of a day's list."""

    grade: str = Field(pattern=GRADE_PATTERN, description="grade name, exact spelling (e.g. `S355MC`, `Q355B`)")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 alphabetic code, e.g. `CNY`")
    price_per_tonne: str = Field(
        max_length=60, description="price per tonne (1000 kg) in major units as a decimal string, e.g. `4125.50`; "
        "at most the currency's ISO 4217 decimal places")


class PublishBody(BaseModel):
    """Body of ``POST /v1/price-index``: one day's list."""

    day: str = Field(pattern=_DATE_PATTERN, description="the UTC calendar day the prices are for (ISO 8601 date); "
                                                        "at most the chain's day + 1")
    prices: list[PriceRow] = Field(min_length=1, max_length=MAX_ROWS,
                                   description=f"1 to {MAX_ROWS} prices, each (grade, currency) once")


def _day(value: str, field: str) -> int:
    try:
        return unix_day(date.fromisoformat(value))
    except ValueError as exc:
        raise UnprocessableError([issue(field, "format", f"{value!r} is not an ISO 8601 calendar date")]) from exc


def _reader(state: AppState) -> PriceIndexReader:
    return PriceIndexReader(contract(state, "PriceIndex"))


def _rows(body: PublishBody) -> list[tuple[str, str, int]]:
    """(grade, currency, minor units) per row; 422 listing every bad field."""
    problems = []
    rows: list[tuple[str, str, int]] = []
    seen: dict[tuple[str, str], int] = {}
    for i, row in enumerate(body.prices):
        where = f"body.prices[{i}]"
        try:
            currency_exponent(row.currency)
        except ValueError as exc:
            problems.append(issue(f"{where}.currency", "currency", str(exc)))
            continue
        try:
            minor = minor_units(row.price_per_tonne, row.currency)
        except ValueError as exc:
            problems.append(issue(f"{where}.price_per_tonne", "format", str(exc)))
            continue
        if minor == 0:
            problems.append(issue(f"{where}.price_per_tonne", "range", "the price must be greater than zero"))
        elif minor > MAX_PRICE_MINOR:
            problems.append(issue(f"{where}.price_per_tonne", "range",
                                  f"{minor} minor units is above the maximum of 2^128 - 1"))
        first = seen.setdefault((row.grade, row.currency), i)
        if first != i:
            problems.append(issue(where, "duplicate", f"{row.grade} in {row.currency} is already body.prices[{first}]"))
        rows.append((row.grade, row.currency, minor))
    if problems:
        raise UnprocessableError(problems)
    return rows


def _price(currency: str, minor: int) -> dict[str, Any]:
    return {"price_per_tonne": format_minor(minor, currency), "price_per_tonne_minor": minor}


def _series_of(event: Any) -> tuple[bytes, str]:
    """(grade key, currency) of a PricePublished / PriceCorrected event."""
    return bytes(event["args"]["grade"]), bytes(event["args"]["currency"]).decode("ascii")


# --------------------------------------------------------------------------- endpoints


@router.post("", status_code=status.HTTP_201_CREATED)
def publish_prices(body: PublishBody, ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """Publish one day's prices (a price publisher): one ``PriceIndex.publish`` transaction, all or nothing.

    Answer: ``{day, unix_day, publisher, tx_hash, block_number, prices: [{grade, grade_key, currency,
    price_per_tonne, price_per_tonne_minor, outcome}]}`` with ``outcome`` ``published`` (new), ``corrected``
    (the publisher's one correction; ``previous_price_per_tonne`` given) or ``unchanged`` (the same price was
    already there). Errors: 422 naming the field; 403 ``NotPricePublisher`` / ``PriceOwnedByOther``;
    409 ``DayBeforeLatest`` / ``AlreadyCorrected`` / ``CorrectionWindowClosed``.
    """
    day = _day(body.day, "body.day")
    rows = _rows(body)  # every field checked before the chain is asked anything
    chain = require_chain(state)
    me = to_checksum_address(ent.address)
    if not RegistryReader(contract(state, "EnterpriseRegistry")).has_role(me, EnterpriseRole.PRICE_PUBLISHER):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            explain("NotPricePublisher", {"account": me}).detail("publish prices"))
    index = _reader(state)
    latest = index.current_day() + 1
    if not 0 < day <= latest:
        raise UnprocessableError([issue("body.day", "range", f"{body.day} is after {day_date(latest).isoformat()}, the "
                                                        "chain's day + 1: prices cannot be published ahead")])
    call = index.functions.publish(day, [grade_key(g) for g, _, _ in rows], [c.encode("ascii") for _, c, _ in rows],
                                   [m for _, _, m in rows])
    receipt = send_or_refuse(chain, enterprise_key(state, ent), call, "publish prices")
    published = {_series_of(e) for e in index.events.PricePublished().process_receipt(receipt, errors=DISCARD)}
    corrected = {_series_of(e): int(e["args"]["previousPrice"])
                 for e in index.events.PriceCorrected().process_receipt(receipt, errors=DISCARD)}
    answer_rows = []
    for grade, currency, minor in rows:
        key = (grade_key(grade), currency)
        row: dict[str, Any] = {"grade": grade, "grade_key": "0x" + key[0].hex(), "currency": currency,
                               **_price(currency, minor)}
        if key in published:
            row["outcome"] = "published"
        elif key in corrected:
            row["outcome"] = "corrected"
            row["previous_price_per_tonne"] = format_minor(corrected[key], currency)
            row["previous_price_per_tonne_minor"] = corrected[key]
        else:
            row["outcome"] = "unchanged"
        answer_rows.append(row)
    return {"day": day_date(day).isoformat(), "unix_day": day, "publisher": party(session, me),
            "tx_hash": tx_hex(receipt), "block_number": receipt["blockNumber"], "prices": answer_rows}


def _windows(blocks: set[int]) -> list[tuple[int, int]]:
    """Sorted blocks grouped into (first, last) ranges of at most :data:`_LOG_WINDOW_BLOCKS` blocks."""
    out: list[tuple[int, int]] = []
    for b in sorted(blocks):
        if out and b - out[-1][0] < _LOG_WINDOW_BLOCKS:
            out[-1] = (out[-1][0], b)
        else:
            out.append((b, b))
    return out


def _event_index(index: PriceIndexReader, event_name: str, key: bytes, blocks: set[int]) -> dict[tuple, dict]:
    """(unix day, currency, block) → {tx_hash, block_number} of ``event_name`` logs of grade ``key``."""
    found: dict[tuple, dict] = {}
    event = getattr(index.events, event_name)()
    for first, last in _windows(blocks):
        logs = with_retry(lambda f=first, t=last: event.get_logs(from_block=f, to_block=t,
                                                                 argument_filters={"grade": key}),
                          what="eth_getLogs")
        for log in logs:
            at = (int(log["args"]["day"]), bytes(log["args"]["currency"]).decode("ascii"), int(log["blockNumber"]))
            found[at] = {"tx_hash": "0x" + bytes(log["transactionHash"]).hex(), "block_number": int(log["blockNumber"])}
    return found


@router.get("/{grade}")
def price_series(
    grade: Annotated[str, Path(pattern=GRADE_PATTERN, description="grade name, exact spelling (e.g. `S355MC`)")],
    session: SessionDep,
    state: StateDep,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$", description="ISO 4217 code; all when absent")] = None,
    from_: Annotated[str | None, Query(alias="from", pattern=_DATE_PATTERN,
                                       description="first day (ISO date); default `to` - 365")] = None,
    to: Annotated[str | None, Query(pattern=_DATE_PATTERN,
                                    description="last day (ISO date); default the chain's day + 1")] = None,
) -> dict:
    """The published series of ``grade`` read from the chain, per currency (public).

    Answer: ``{grade, grade_key, from, to, series: [{currency, in_force_at_from, prices: [{day, unix_day,
    price_per_tonne, price_per_tonne_minor, publisher, tx_hash, block_number, published_at, correction}]}]}``;
    ``in_force_at_from`` is the price valid at ``from`` (published then or carried forward from an earlier
    day; null when none); ``publisher`` is ``{address, enterprise_id, name, active}`` (``active``: still an
    active price publisher now); ``correction`` is null or ``{original_price_per_tonne, …, tx_hash,
    block_number}``.
    At most 3660 days per request (422 naming ``query.from``).
    """
    if currency is not None:
        try:
            currency_exponent(currency)
        except ValueError as exc:
            raise UnprocessableError([issue("query.currency", "currency", str(exc))]) from exc
    asked_to = _day(to, "query.to") if to is not None else None
    asked_from = _day(from_, "query.from") if from_ is not None else None
    index = _reader(state)
    to_day = asked_to if asked_to is not None else index.current_day() + 1
    from_day = asked_from if asked_from is not None else max(0, to_day - DEFAULT_SPAN_DAYS + 1)
    problems = []
    if from_day < 0 or to_day < 0:
        problems.append(issue("query.from" if from_day < 0 else "query.to", "range",
                              "days before 1970-01-01 have no prices"))
    elif from_day > to_day:
        problems.append(issue("query.from", "range", f"from ({day_date(from_day)}) is after to ({day_date(to_day)})"))
    elif to_day - from_day + 1 > MAX_TIMELINE_DAYS:
        problems.append(issue("query.from", "range", f"{to_day - from_day + 1} days asked; at most {MAX_TIMELINE_DAYS} "
                                               "per request"))
    if problems:
        raise UnprocessableError(problems)
    key = grade_key(grade)
    currencies = [currency] if currency is not None else index.currencies_of(key)
    records = {}
    for cur in currencies:
        for d, record in index.prices_between(key, cur, from_day, to_day):
            records[(d, cur)] = record
    published = _event_index(index, "PricePublished", key, {r.publishedBlock for r in records.values()})
    corrected = _event_index(index, "PriceCorrected", key,
                             {r.correctedBlock for r in records.values() if r.corrected})
    chain = require_chain(state)
    times: dict[int, str] = {}
    registry = RegistryReader(contract(state, "EnterpriseRegistry"))
    publishers: dict[str, dict[str, Any]] = {}

    def publisher(address: str) -> dict[str, Any]:
        """party() plus whether the account is still an active price publisher (expelled ones stay in history)."""
        if address not in publishers:
            publishers[address] = {**party(session, address),
                                   "active": registry.has_role(address, EnterpriseRole.PRICE_PUBLISHER)}
        return publishers[address]

    def block_time(number: int) -> str:
        if number not in times:
            block = with_retry(lambda: chain.rpc("eth_getBlockByNumber", [hex(number), False]),
                               what="eth_getBlockByNumber") or {}
            ts = block.get("timestamp", 0)
            times[number] = iso(int(ts, 16) if isinstance(ts, str) else int(ts))
        return times[number]

    series = []
    for cur in currencies:
        exponent = currency_exponent(cur)
        in_force = index.price_at(key, cur, from_day)
        prices = []
        for (d, c), rec in sorted(records.items()):
            if c != cur:
                continue
            event = published.get((d, cur, rec.publishedBlock), {"tx_hash": None, "block_number": rec.publishedBlock})
            correction = None
            if rec.corrected:
                fixed = corrected.get((d, cur, rec.correctedBlock),
                                      {"tx_hash": None, "block_number": rec.correctedBlock})
                correction = {"original_price_per_tonne": format_minor(rec.originalPrice, cur),
                              "original_price_per_tonne_minor": rec.originalPrice, **fixed,
                              "corrected_at": block_time(rec.correctedBlock)}
            prices.append({"day": day_date(d).isoformat(), "unix_day": d, **_price(cur, rec.price),
                           "publisher": publisher(rec.publisher), **event,
                           "published_at": block_time(rec.publishedBlock), "correction": correction})
        series.append({
            "currency": cur, "exponent": exponent,
            "in_force_at_from": None if not in_force.exists else {
                "day": day_date(in_force.publishedDay).isoformat(), "unix_day": in_force.publishedDay,
                **_price(cur, in_force.price), "publisher": publisher(in_force.publisher)},
            "prices": prices,
        })
    return {"grade": grade, "grade_key": "0x" + key.hex(), "from": day_date(from_day).isoformat(),
            "to": day_date(to_day).isoformat(), "series": series}
