"""WarehouseReceipt as a lending bank's auditor tests it (issue 15), on eth-tester against the committed artifact.

Each test is the attack of one dishonest party, sent straight to the contract: a warehouse issuing a
second receipt for coils already receipted (the 2014 Qingdao fraud), under another spelling, or
splitting its way to one; a depositor pledging the same receipt to a second bank, or moving, splitting
or taking delivery of pledged goods; a bank (or anyone else) releasing or enforcing a lien that is
not its own, or before maturity. Every refusal must be the named custom error, never a Panic.
"""

from __future__ import annotations

from typing import Any

import pytest
from web3.logs import DISCARD

from .world import BANK, CNY, MANUFACTURER, SUPPLIER, WAREHOUSE, YUAN, World

DAY = 86_400
COILS = ("88.9.6/HK52791-CNW24-118734", "88.9.6/HK52792-CNW24-118734", "88.9.6/HK52793-CNW24-118734")
LOCATION = "urn:epc:id:sgln:6901234.00001.0"
STATUS = ("none", "live", "pledged", "delivered", "split")
ACTIONS = ("issue", "pledge", "release", "enforce", "transfer", "split", "deliver")


@pytest.fixture()
def w() -> World:
    world = World()
    world.enterprise("mill", MANUFACTURER, "88.9.6")
    world.enterprise("warehouse", WAREHOUSE, "88.9.7")
    world.enterprise("warehouse2", WAREHOUSE, "88.9.8")
    world.enterprise("trader", SUPPLIER, "88.9.1")
    world.enterprise("buyer", SUPPLIER, "88.9.2")
    world.enterprise("bank", BANK, "88.9.4")
    world.enterprise("bank2", BANK, "88.9.5")
    return world


def _request(w: World, coils: tuple[str, ...] = COILS, depositor: str = "trader", days: int = 180) -> tuple:
    goods = [(c, "2.0x1250xC", 24_000 + i) for i, c in enumerate(coils)]
    return (w.acct[depositor], LOCATION, "S355MC", "PICC-2026-0001", w.now() + days * DAY, goods)


def _issue(w: World, coils: tuple[str, ...] = COILS, warehouse: str = "warehouse") -> int:
    receipt = w.do(w.acct[warehouse], w.wr.functions.issue(_request(w, coils)))
    return int(w.wr.events.Issued().process_receipt(receipt, errors=DISCARD)[0].args.receiptId)


def _pledge(w: World, rid: int, bank: str = "bank", days: int = 90, sender: str = "trader") -> Any:
    return w.wr.functions.pledge(rid, w.acct[bank], 5_000_000 * YUAN, CNY, w.now() + days * DAY)


def _status(w: World, rid: int) -> str:
    return STATUS[w.wr.functions.getReceipt(rid).call()[-1]]


def test_issue_records_the_gbt_30332_elements_and_binds_every_coil(w: World) -> None:
    rid = _issue(w)
    rc = list(w.wr.functions.getReceipt(rid).call())
    assert rc[:3] == [w.acct["trader"], w.acct["warehouse"], w.acct["trader"]]
    assert rc[3:6] == [LOCATION, "S355MC", "PICC-2026-0001"]
    assert rc[8] == 24_000 + 24_001 + 24_002 and _status(w, rid) == "live"
    assert [c[0] for c in w.wr.functions.getCoils(rid).call()] == list(COILS)
    assert w.wr.functions.ownerOf(rid).call() == w.acct["trader"]
    assert w.wr.functions.balanceOf(w.acct["trader"]).call() == 1
    for coil in COILS:
        assert w.wr.functions.receiptOfIdentifier(coil).call() == rid
    assert w.wr.functions.supportsInterface(bytes.fromhex("80ac58cd")).call()


def test_a_second_receipt_for_a_receipted_coil_is_refused_in_every_spelling(w: World) -> None:
    rid = _issue(w, COILS[:2])
    # the same warehouse again, another warehouse, upper/lower case, inside a longer list
    w.refused(w.wr.functions.issue(_request(w, COILS[:1])), w.acct["warehouse"], "CoilAlreadyReceipted")
    w.refused(w.wr.functions.issue(_request(w, (COILS[2], COILS[1]))), w.acct["warehouse2"], "CoilAlreadyReceipted")
    w.refused(w.wr.functions.issue(_request(w, (COILS[0].lower(),))), w.acct["warehouse"], "CoilAlreadyReceipted")
    w.refused(w.wr.functions.issue(_request(w, ("88.9.6/hk52792-cnw24-118734",))), w.acct["warehouse2"],
              "CoilAlreadyReceipted")
    # one coil twice in the same request
    w.refused(w.wr.functions.issue(_request(w, (COILS[2], COILS[2]))), w.acct["warehouse"], "CoilAlreadyReceipted")
    # spellings that would slip past a byte compare are not identifiers at all
    for bad in (" " + COILS[0], COILS[0] + "\t", "88.9.6/HK 52791", "88.9.6/", "/HK1", "HK52791", "88.9.6/é"):
        w.refused(w.wr.functions.issue(_request(w, (bad,))), w.acct["warehouse"], "InvalidCoilIdentifier")
    w.refused(w.wr.functions.issue(_request(w, ("88.77.1/HK1",))), w.acct["warehouse"], "UnknownCoilPrefix")
    assert w.wr.functions.receiptCount().call() == rid  # nothing else was issued


def test_only_a_warehouse_issues_and_only_to_a_member(w: World) -> None:
    for who in ("trader", "bank", "mill"):
        w.refused(w.wr.functions.issue(_request(w)), w.acct[who], "NotWarehouse")
    stranger = w.account("stranger")
    req = list(_request(w))
    req[0] = stranger
    w.refused(w.wr.functions.issue(tuple(req)), w.acct["warehouse"], "NotMember")
    w.refused(w.wr.functions.issue(_request(w, ())), w.acct["warehouse"], "NoCoils")
    w.refused(w.wr.functions.issue(_request(w, days=-1)), w.acct["warehouse"], "StoragePeriodEnded")
    req = list(_request(w))
    req[5] = [(COILS[0], "", 0)]
    w.refused(w.wr.functions.issue(tuple(req)), w.acct["warehouse"], "ZeroWeight")
    req[5] = [(COILS[0], "", 10**9 + 1)]  # 64 coils at the maximum still sum below 2^64: no overflow Panic
    w.refused(w.wr.functions.issue(tuple(req)), w.acct["warehouse"], "WeightTooLarge")
    req = list(_request(w))
    req[1] = ""
    w.refused(w.wr.functions.issue(tuple(req)), w.acct["warehouse"], "EmptyElement")
    many = tuple(f"88.9.6/C{i}" for i in range(65))
    w.refused(w.wr.functions.issue(_request(w, many)), w.acct["warehouse"], "TooManyCoils")
    # an expelled warehouse issues nothing
    w.do(w.admin, w.reg.functions.setActive(w.acct["warehouse"], False))
    w.refused(w.wr.functions.issue(_request(w)), w.acct["warehouse"], "NotWarehouse")


def test_a_pledged_receipt_cannot_be_pledged_again(w: World) -> None:
    rid = _issue(w)
    w.refused(_pledge(w, rid, "buyer"), w.acct["trader"], "NotBank")  # a lien is for a bank only
    w.refused(_pledge(w, rid, "bank"), w.acct["buyer"], "NotHolder")  # nor by anyone but the holder
    w.refused(_pledge(w, rid, "bank", days=-1), w.acct["trader"], "MaturityInPast")
    w.refused(w.wr.functions.pledge(rid, w.acct["bank"], 0, CNY, w.now() + DAY), w.acct["trader"], "ZeroValue")
    w.refused(w.wr.functions.pledge(rid, w.acct["bank"], 1, b"cn1", w.now() + DAY), w.acct["trader"],
              "InvalidCurrency")
    receipt = w.do(w.acct["trader"], _pledge(w, rid, "bank"))
    event = w.wr.events.PledgeRecorded().process_receipt(receipt, errors=DISCARD)[0].args
    assert (event.bank, event.loanAmount, event.currency) == (w.acct["bank"], 5_000_000 * YUAN, CNY)
    assert _status(w, rid) == "pledged"
    w.refused(_pledge(w, rid, "bank2"), w.acct["trader"], "AlreadyPledged")
    w.refused(_pledge(w, rid, "bank"), w.acct["trader"], "AlreadyPledged")
    assert w.wr.functions.getPledge(rid).call()[0] == w.acct["bank"]


def test_pledged_goods_do_not_move_without_the_bank(w: World) -> None:
    rid = _issue(w)
    w.do(w.acct["trader"], _pledge(w, rid))
    transfer = w.wr.functions.transferFrom(w.acct["trader"], w.acct["buyer"], rid)
    w.refused(transfer, w.acct["trader"], "Pledged")
    w.refused(w.wr.functions.split(rid, [0]), w.acct["trader"], "Pledged")
    w.refused(w.wr.functions.deliver(rid), w.acct["trader"], "Pledged")
    # the bank cannot move the holder's receipt either, and nobody gets an operator
    w.refused(transfer, w.acct["bank"], "Pledged")
    w.refused(w.wr.functions.approve(w.acct["bank"], rid), w.acct["trader"], "OperatorsUnsupported")
    w.refused(w.wr.functions.setApprovalForAll(w.acct["bank"], True), w.acct["trader"], "OperatorsUnsupported")
    # once the bank releases, the holder moves it again
    w.do(w.acct["bank"], w.wr.functions.release(rid))
    w.do(w.acct["trader"], transfer)
    assert w.wr.functions.ownerOf(rid).call() == w.acct["buyer"]


def test_only_the_pledgee_bank_releases_and_enforces_and_only_after_maturity(w: World) -> None:
    rid = _issue(w)
    w.refused(w.wr.functions.release(rid), w.acct["bank"], "NotPledged")
    w.do(w.acct["trader"], _pledge(w, rid, days=30))
    for who in ("trader", "bank2", "warehouse"):
        w.refused(w.wr.functions.release(rid), w.acct[who], "NotBank")
        w.refused(w.wr.functions.enforce(rid), w.acct[who], "NotBank")
    w.refused(w.wr.functions.enforce(rid), w.acct["bank"], "NotMatured")
    w.travel(w.now() + 31 * DAY)
    w.refused(w.wr.functions.enforce(rid), w.acct["bank2"], "NotBank")
    receipt = w.do(w.acct["bank"], w.wr.functions.enforce(rid))
    assert w.wr.events.PledgeEnforced().process_receipt(receipt, errors=DISCARD)[0].args.formerHolder == w.acct[
        "trader"]
    assert w.wr.functions.ownerOf(rid).call() == w.acct["bank"] and _status(w, rid) == "live"
    assert w.wr.functions.getPledge(rid).call()[0] == "0x" + "00" * 20
    # the former holder has nothing left to do with it; the bank takes delivery
    w.refused(w.wr.functions.deliver(rid), w.acct["trader"], "NotHolder")
    w.refused(w.wr.functions.release(rid), w.acct["bank"], "NotPledged")
    w.do(w.acct["bank"], w.wr.functions.deliver(rid))
    assert _status(w, rid) == "delivered"


def test_delivery_closes_the_receipt_and_frees_its_coils(w: World) -> None:
    rid = _issue(w)
    w.refused(w.wr.functions.deliver(rid), w.acct["warehouse"], "NotHolder")  # the warehouse cannot free coils
    receipt = w.do(w.acct["trader"], w.wr.functions.deliver(rid))
    assert w.wr.events.Delivered().process_receipt(receipt, errors=DISCARD)[0].args.warehouse == w.acct["warehouse"]
    assert _status(w, rid) == "delivered" and w.wr.functions.balanceOf(w.acct["trader"]).call() == 0
    for coil in COILS:
        assert w.wr.functions.receiptOfIdentifier(coil).call() == 0
    for fn in (w.wr.functions.deliver(rid), w.wr.functions.split(rid, [0]), _pledge(w, rid),
               w.wr.functions.transferFrom(w.acct["trader"], w.acct["buyer"], rid)):
        w.refused(fn, w.acct["trader"], "ReceiptClosed")
    # the coils came back into the warehouse: a new receipt is possible now
    assert _issue(w) == rid + 1


def test_split_moves_every_coil_into_exactly_one_new_receipt(w: World) -> None:
    rid = _issue(w)
    w.refused(w.wr.functions.split(rid, [0]), w.acct["buyer"], "NotHolder")
    for bad in ([], [0, 1, 2], [3], [0, 0]):
        w.refused(w.wr.functions.split(rid, bad), w.acct["trader"], "InvalidSplit")
    receipt = w.do(w.acct["trader"], w.wr.functions.split(rid, [1]))
    event = w.wr.events.SplitInto().process_receipt(receipt, errors=DISCARD)[0].args
    first, second = event.firstReceiptId, event.secondReceiptId
    assert _status(w, rid) == "split"
    assert [c[0] for c in w.wr.functions.getCoils(first).call()] == [COILS[1]]
    assert [c[0] for c in w.wr.functions.getCoils(second).call()] == [COILS[0], COILS[2]]
    assert w.wr.functions.getReceipt(first).call()[8] == 24_001
    assert w.wr.functions.getReceipt(second).call()[9] == rid  # parent
    assert [w.wr.functions.receiptOfIdentifier(c).call() for c in COILS] == [second, first, second]
    assert w.wr.functions.balanceOf(w.acct["trader"]).call() == 2
    # the closed original can be neither pledged nor split again: no coil ends up in two live receipts
    w.refused(_pledge(w, rid), w.acct["trader"], "ReceiptClosed")
    w.refused(w.wr.functions.issue(_request(w, (COILS[1],))), w.acct["warehouse"], "CoilAlreadyReceipted")
    w.do(w.acct["trader"], _pledge(w, first))
    w.do(w.acct["trader"], _pledge(w, second, "bank2"))  # different coils, different banks: allowed


def test_transfers_go_to_members_only_and_by_the_holder_only(w: World) -> None:
    rid = _issue(w)
    stranger = w.account("stranger")
    w.refused(w.wr.functions.transferFrom(w.acct["trader"], stranger, rid), w.acct["trader"], "NotMember")
    w.refused(w.wr.functions.transferFrom(w.acct["trader"], w.acct["buyer"], rid), w.acct["buyer"], "NotHolder")
    w.refused(w.wr.functions.transferFrom(w.acct["buyer"], w.acct["bank"], rid), w.acct["buyer"], "WrongOwner")
    w.refused(w.wr.functions.ownerOf(99), w.acct["trader"], "UnknownReceipt")
    fn = w.wr.get_function_by_signature("safeTransferFrom(address,address,uint256)")
    w.do(w.acct["trader"], fn(w.acct["trader"], w.acct["buyer"], rid))
    assert w.wr.functions.ownerOf(rid).call() == w.acct["buyer"]
    # an expelled holder cannot act on its receipt
    w.do(w.admin, w.reg.functions.setActive(w.acct["buyer"], False))
    w.refused(_pledge(w, rid), w.acct["buyer"], "NotMember")


def test_every_state_change_is_in_the_history_and_emits_an_event(w: World) -> None:
    rid = _issue(w)
    w.do(w.acct["trader"], _pledge(w, rid, days=1))
    w.do(w.acct["bank"], w.wr.functions.release(rid))
    w.do(w.acct["trader"], w.wr.functions.transferFrom(w.acct["trader"], w.acct["buyer"], rid))
    w.do(w.acct["buyer"], w.wr.functions.pledge(rid, w.acct["bank2"], 100, CNY, w.now() + DAY))
    w.travel(w.now() + 2 * DAY)
    w.do(w.acct["bank2"], w.wr.functions.enforce(rid))
    w.do(w.acct["bank2"], w.wr.functions.deliver(rid))
    history = w.wr.functions.getHistory(rid).call()
    assert [ACTIONS[h[0]] for h in history] == ["issue", "pledge", "release", "transfer", "pledge", "enforce",
                                                "deliver"]
    assert [h[1] for h in history] == [w.acct[n] for n in ("warehouse", "trader", "bank", "trader", "buyer", "bank2",
                                                           "bank2")]
    assert all(h[5] > 0 and h[6] > 0 for h in history)  # timestamp, block number
    logs = w.w3.eth.get_logs({"address": w.wr.address, "fromBlock": 0})
    assert len(logs) >= len(history) + len(COILS)
