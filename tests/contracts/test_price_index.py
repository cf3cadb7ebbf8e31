"""PriceIndex on eth-tester (py-evm Shanghai), deployed as on the network: who may publish, what a day's list
must look like, the correction rule, and ``priceAt``'s carry-forward - each refusal written as the attack."""

from __future__ import annotations

from decimal import Decimal

import pytest
from eth_utils import keccak
from web3.logs import DISCARD

from api.valuation import grade_key, valuation_timeline
from api.workflows.adapters import PriceIndexReader, PriceInForce, PriceRecord

from .world import BANK, MANUFACTURER, PRICE_PUBLISHER, World

DAY = 86400
S355 = keccak(text="S355MC")
Q235 = keccak(text="Q235B")
CNY, USD = b"CNY", b"USD"
ZERO = "0x" + "00" * 20


@pytest.fixture()
def world() -> World:
    w = World()
    w.enterprise("mysteel", PRICE_PUBLISHER, "88.500.1")
    w.enterprise("platts", PRICE_PUBLISHER, "88.500.2")
    w.enterprise("mill", MANUFACTURER, "88.500.3")
    w.enterprise("bank", BANK, "88.500.4")
    return w


def today(w: World) -> int:
    return w.pi.functions.currentDay().call()


def publish(w: World, who: str, day: int, rows: list[tuple[bytes, bytes, int]]):
    grades, currencies, prices = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [])
    return w.pi.functions.publish(day, grades, currencies, prices)


def test_grade_key_is_keccak_of_the_utf8_name(world: World) -> None:
    assert world.pi.functions.gradeKey("S355MC").call() == S355 == grade_key("S355MC")
    assert world.pi.functions.PRICE_PUBLISHER().call() == world.reg.functions.PRICE_PUBLISHER().call() == 128
    assert world.reg.functions.ALL_ROLES().call() == 255
    assert world.pi.functions.enterpriseRegistry().call() == world.reg.address


def test_a_publisher_posts_a_days_list_in_one_transaction_and_price_at_carries_it_forward(world: World) -> None:
    w, d = world, today(world)
    receipt = w.do(w.acct["mysteel"], publish(w, "mysteel", d - 5, [(S355, CNY, 412_550), (Q235, CNY, 380_000),
                                                                     (S355, USD, 58_000)]))
    events = w.pi.events.PricePublished().process_receipt(receipt, errors=DISCARD)
    assert [(e.args.day, e.args.grade, e.args.currency, e.args.price, e.args.publisher) for e in events] == [
        (d - 5, S355, CNY, 412_550, w.acct["mysteel"]), (d - 5, Q235, CNY, 380_000, w.acct["mysteel"]),
        (d - 5, S355, USD, 58_000, w.acct["mysteel"])]
    w.do(w.acct["mysteel"], publish(w, "mysteel", d - 2, [(S355, CNY, 400_000)]))
    at = w.pi.functions.priceAt
    assert at(S355, CNY, d - 6).call() == [0, 0, ZERO]  # before the first price: none
    assert at(S355, CNY, d - 5).call() == [412_550, d - 5, w.acct["mysteel"]]
    assert at(S355, CNY, d - 3).call() == [412_550, d - 5, w.acct["mysteel"]]  # a gap carries the last price
    assert at(S355, CNY, d - 2).call() == [400_000, d - 2, w.acct["mysteel"]]
    assert at(S355, CNY, d + 100).call() == [400_000, d - 2, w.acct["mysteel"]]
    assert at(S355, USD, d).call() == [58_000, d - 5, w.acct["mysteel"]]  # currencies are separate series
    assert at(Q235, USD, d).call() == [0, 0, ZERO]
    assert w.pi.functions.publishedDays(S355, CNY, 0, d).call() == [d - 5, d - 2]
    assert w.pi.functions.publishedDays(S355, CNY, d - 4, d).call() == [d - 2]
    assert w.pi.functions.publishedDays(S355, CNY, d - 4, d - 3).call() == []
    assert w.pi.functions.seriesLength(S355, CNY).call() == 2
    assert [bytes(c) for c in w.pi.functions.currenciesOf(S355).call()] == [CNY, USD]
    rec = w.pi.functions.priceOn(S355, CNY, d - 5).call()
    assert rec[0] == rec[1] == 412_550 and rec[2] == w.acct["mysteel"] and rec[4] == 0  # not corrected


def test_only_active_price_publishers_publish(world: World) -> None:
    w, d = world, today(world)
    row = [(S355, CNY, 412_550)]
    for stranger in ("mill", "bank", "admin"):  # members without the role, the governance admin
        w.refused(publish(w, stranger, d, row), w.acct[stranger], "NotPricePublisher")
    outsider = w.account("outsider")  # not a member at all
    w.refused(publish(w, "outsider", d, row), outsider, "NotPricePublisher")
    w.do(w.admin, w.reg.functions.setActive(w.acct["mysteel"], False))  # expelled publisher
    w.refused(publish(w, "mysteel", d, row), w.acct["mysteel"], "NotPricePublisher")
    w.do(w.admin, w.reg.functions.setActive(w.acct["mysteel"], True))
    w.do(w.acct["mysteel"], publish(w, "mysteel", d, row))


def test_a_days_list_must_be_well_formed(world: World) -> None:
    w, d, me = world, today(world), world.acct["mysteel"]
    pi = w.pi.functions
    w.refused(pi.publish(d, [S355, Q235], [CNY], [1, 2]), me, "LengthMismatch")
    w.refused(pi.publish(d, [S355], [CNY, CNY], [1]), me, "LengthMismatch")
    w.refused(pi.publish(d, [S355], [CNY], [1, 2]), me, "LengthMismatch")
    w.refused(pi.publish(d, [], [], []), me, "EmptyPriceList")
    w.refused(pi.publish(d, [keccak(text=f"G{i}") for i in range(65)], [CNY] * 65, [1] * 65), me, "TooManyPrices")
    w.refused(publish(w, "mysteel", d, [(S355, CNY, 0)]), me, "ZeroPrice")
    w.refused(publish(w, "mysteel", d, [(S355, CNY, 2**128)]), me, "PriceTooLarge")
    w.refused(publish(w, "mysteel", d, [(b"\0" * 32, CNY, 1)]), me, "ZeroGrade")
    for bad in (b"cny", b"CN\0", b"C1Y"):
        w.refused(publish(w, "mysteel", d, [(S355, bad, 1)]), me, "InvalidCurrency")
    w.refused(publish(w, "mysteel", d, [(S355, CNY, 1), (Q235, CNY, 2), (S355, CNY, 3)]), me, "DuplicateEntry")
    # one bad row refuses the whole list: nothing of it was written
    w.refused(publish(w, "mysteel", d, [(Q235, CNY, 5), (S355, CNY, 0)]), me, "ZeroPrice")
    assert pi.seriesLength(Q235, CNY).call() == 0
    full = pi.publish(d, [keccak(text=f"G{i}") for i in range(64)], [CNY] * 64, list(range(1, 65)))
    receipt = w.w3.eth.wait_for_transaction_receipt(full.transact({"from": me, "gas": 12_000_000}))
    assert receipt.status == 1 and receipt.gasUsed < 10_000_000  # 64 new series fit a block (60 M gas) easily
    assert pi.priceAt(keccak(text="G63"), CNY, d).call() == [64, d, me]


def test_no_day_beyond_tomorrow_and_no_day_zero(world: World) -> None:
    w, d, me = world, today(world), world.acct["mysteel"]
    text = w.refused(publish(w, "mysteel", d + 2, [(S355, CNY, 1)]), me, "DayOutOfRange")
    assert str(d + 1) in text
    w.refused(publish(w, "mysteel", 2**64 - 1, [(S355, CNY, 1)]), me, "DayOutOfRange")
    w.refused(publish(w, "mysteel", 0, [(S355, CNY, 1)]), me, "DayOutOfRange")
    w.do(me, publish(w, "mysteel", d + 1, [(S355, CNY, 1)]))  # a publisher east of UTC posts its local day


def test_nobody_overwrites_another_publishers_price(world: World) -> None:
    w, d = world, today(world)
    w.do(w.acct["mysteel"], publish(w, "mysteel", d - 1, [(S355, CNY, 412_550)]))
    for price in (1, 412_550):  # neither another price nor the same one: the day belongs to its publisher
        w.refused(publish(w, "platts", d - 1, [(S355, CNY, price)]), w.acct["platts"], "PriceOwnedByOther")
    # ... also not inside an otherwise fresh list
    w.refused(publish(w, "platts", d - 1, [(Q235, CNY, 5), (S355, CNY, 1)]), w.acct["platts"], "PriceOwnedByOther")
    assert w.pi.functions.priceAt(S355, CNY, d - 1).call() == [412_550, d - 1, w.acct["mysteel"]]
    # another publisher adds later days of the same series; its own grade/currency of that day is free
    w.do(w.acct["platts"], publish(w, "platts", d - 1, [(S355, USD, 58_000)]))
    w.do(w.acct["platts"], publish(w, "platts", d, [(S355, CNY, 415_000)]))
    assert w.pi.functions.priceAt(S355, CNY, d).call() == [415_000, d, w.acct["platts"]]


def test_series_only_grow_forward(world: World) -> None:
    w, d, me = world, today(world), world.acct["mysteel"]
    w.do(me, publish(w, "mysteel", d - 1, [(S355, CNY, 400_000)]))
    w.do(me, publish(w, "mysteel", d - 3, [(Q235, CNY, 380_000)]))  # another series has its own order
    # filling the gap before the latest day afterwards would rewrite valuations already shown for it
    w.refused(publish(w, "mysteel", d - 2, [(S355, CNY, 900_000)]), me, "DayBeforeLatest")
    w.refused(publish(w, "platts", d - 2, [(S355, CNY, 900_000)]), w.acct["platts"], "DayBeforeLatest")
    assert w.pi.functions.priceAt(S355, CNY, d - 2).call() == [0, 0, ZERO]


def test_a_publisher_corrects_its_own_day_once_keeping_history(world: World) -> None:
    w, d, me = world, today(world), world.acct["mysteel"]
    w.do(me, publish(w, "mysteel", d - 1, [(S355, CNY, 412_550)]))
    w.do(me, publish(w, "mysteel", d, [(S355, CNY, 420_000)]))
    # re-sending the same list changes nothing (a retried transaction)
    receipt = w.do(me, publish(w, "mysteel", d - 1, [(S355, CNY, 412_550)]))
    assert receipt.logs == []
    receipt = w.do(me, publish(w, "mysteel", d - 1, [(S355, CNY, 412_505)]))  # a typo fixed
    (event,) = w.pi.events.PriceCorrected().process_receipt(receipt, errors=DISCARD)
    assert (event.args.day, event.args.grade, event.args.currency, event.args.previousPrice, event.args.price,
            event.args.publisher) == (d - 1, S355, CNY, 412_550, 412_505, me)
    rec = w.pi.functions.priceOn(S355, CNY, d - 1).call()
    assert rec[0] == 412_505 and rec[1] == 412_550 and rec[4] > 0  # the first price stays readable
    assert w.pi.functions.priceAt(S355, CNY, d - 1).call() == [412_505, d - 1, me]
    assert w.pi.functions.publishedDays(S355, CNY, 0, d).call() == [d - 1, d]  # no new day
    w.refused(publish(w, "mysteel", d - 1, [(S355, CNY, 412_550)]), me, "AlreadyCorrected")
    w.do(me, publish(w, "mysteel", d - 1, [(S355, CNY, 412_505)]))  # the corrected price again: a no-op


def test_corrections_close_seven_days_after_the_day(world: World) -> None:
    w, d, me = world, today(world), world.acct["mysteel"]
    w.do(me, publish(w, "mysteel", d, [(S355, CNY, 1_000), (Q235, CNY, 2_000)]))
    w.travel((d + 7) * DAY + 3600)  # day d + 7: still open
    w.do(me, publish(w, "mysteel", d, [(S355, CNY, 1_001)]))
    w.travel((d + 8) * DAY + 3600)  # day d + 8: closed
    text = w.refused(publish(w, "mysteel", d, [(Q235, CNY, 2_001)]), me, "CorrectionWindowClosed")
    assert str(d + 7) in text


def test_the_typed_reader_decodes_by_name_with_the_event_blocks(world: World) -> None:
    w, d, me = world, today(world), world.acct["mysteel"]
    first = w.do(me, publish(w, "mysteel", d - 1, [(S355, CNY, 412_550)]))
    fix = w.do(me, publish(w, "mysteel", d - 1, [(S355, CNY, 412_505)]))
    reader = PriceIndexReader(w.pi)
    rec = reader.price_on(S355, "CNY", d - 1)
    assert rec == PriceRecord(price=412_505, originalPrice=412_550, publisher=me, publishedBlock=first.blockNumber,
                              correctedBlock=fix.blockNumber)
    assert rec.exists and rec.corrected and not reader.price_on(S355, "CNY", d).exists
    assert reader.price_at(S355, "CNY", d) == PriceInForce(price=412_505, publishedDay=d - 1, publisher=me)
    assert not reader.price_at(S355, "CNY", d - 2).exists
    assert reader.published_days(S355, "CNY", 0, d) == [d - 1] and reader.currencies_of(S355) == ["CNY"]
    assert reader.prices_between(S355, "CNY", 0, d) == [(d - 1, rec)] and reader.prices_between(S355, "CNY", d, d) == []
    assert reader.current_day() == d


def test_valuation_reads_the_series_it_needs_from_the_chain(world: World) -> None:
    w, d, me = world, today(world), world.acct["mysteel"]
    for day, price in ((d - 9, 400_000), (d - 6, 390_000), (d - 4, 300_000), (d - 1, 420_000)):
        w.do(me, publish(w, "mysteel", day, [(S355, CNY, price)]))
    reader = PriceIndexReader(w.pi)
    pairs = reader.valuation_prices(S355, "CNY", d - 5, d)
    assert pairs == [(d - 6, 390_000), (d - 4, 300_000), (d - 1, 420_000)]  # carried in, then the window's
    # 25 t pledged for 80 000.00 CNY, margin call above 80 %: 97 500.00 at d-5 (LTV 0.820513, already above
    # since d-6, so no crossing inside the window), 75 000.00 from d-4, 105 000.00 from d-1 (back below)
    v = valuation_timeline(25_000, pairs, 8_000_000, Decimal("0.8"), d - 5, d)
    assert [x.value_minor for x in v.days] == [9_750_000, 7_500_000, 7_500_000, 7_500_000, 10_500_000, 10_500_000]
    assert [(c.day, c.direction) for c in v.crossings] == [(d - 1, "below")]
    assert reader.valuation_prices(S355, "CNY", d - 20, d - 10) == []
    assert reader.valuation_prices(S355, "USD", d - 5, d) == []


def test_the_interface_the_warehouse_receipts_rely_on() -> None:
    """The ABI agreed for issue 15 (publish, priceAt, PricePublished): a change here breaks the other side."""
    from contracts import load_artifact

    abi = {(i["type"], i.get("name")): i for i in load_artifact("PriceIndex")["abi"]}

    def sig(item: dict) -> str:
        return f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"

    assert sig(abi[("function", "publish")]) == "publish(uint64,bytes32[],bytes3[],uint256[])"
    price_at = abi[("function", "priceAt")]
    assert sig(price_at) == "priceAt(bytes32,bytes3,uint64)" and price_at["stateMutability"] == "view"
    assert [(o["name"], o["type"]) for o in price_at["outputs"]] == [
        ("price", "uint256"), ("publishedDay", "uint64"), ("publisher", "address")]
    event = abi[("event", "PricePublished")]
    assert [(i["name"], i["type"], i["indexed"]) for i in event["inputs"]] == [
        ("day", "uint64", True), ("grade", "bytes32", True), ("currency", "bytes3", False),
        ("price", "uint256", False), ("publisher", "address", False)]
