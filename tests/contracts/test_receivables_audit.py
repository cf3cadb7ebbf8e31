"""ReceivableToken as a bank's auditor tests it (issue 13), on eth-tester against the committed artifacts.

Each test is one finding written as the dishonest party's attack: a bank with an allowance trying to
finance the same value twice, a holder or bank trying worse terms, an expelled member still acting,
an issuer extinguishing the bank's claim without paying, dust and unbounded split chains.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils import keccak
from web3.logs import DISCARD

from provenance.receivables import discount_price

from .world import BANK, CNY, CORE, MANUFACTURER, SUPPLIER, YUAN, World

DAY = 86_400
MAX_VALUE = 2**128 - 1


@pytest.fixture()
def w() -> World:
    world = World()
    world.enterprise("core", CORE, "88.9.1")
    world.enterprise("supplier", SUPPLIER, "88.9.2")
    world.enterprise("tier2", SUPPLIER, "88.9.3")
    world.enterprise("bank", BANK, "88.9.4")
    world.enterprise("bank2", BANK, "88.9.5")
    world.enterprise("mill", MANUFACTURER, "88.9.6")
    return world


def _fn(w: World, signature: str) -> Any:
    return w.rt.get_function_by_signature(signature)


def _issue(w: World, value: int = 1_000_000 * YUAN, days: int = 90, to: str = "supplier") -> tuple[int, int]:
    maturity = w.now() + days * DAY
    receipt = w.do(w.acct["core"], w.rt.functions.issue(w.acct[to], CNY, maturity, value,
                                                        keccak(text=f"INV {maturity} {value} {to}")))
    token = w.rt.events.Issued().process_receipt(receipt, errors=DISCARD)[0].args.tokenId
    return token, maturity


def _new_token(w: World, receipt: Any) -> int:
    return int(w.rt.events.SlotChanged().process_receipt(receipt, errors=DISCARD)[-1].args._tokenId)


def _split(w: World, sender: str, token: int, to: str, value: int) -> int:
    fn = _fn(w, "transferFrom(uint256,address,uint256)")(token, w.acct[to], value)
    return _new_token(w, w.do(w.acct[sender], fn))


def _offer(w: World, token: int, bank: str, value: int, max_rate: int = 500, expiry: int | None = None,
           holder: str = "supplier") -> None:
    maturity = w.rt.functions.slotMaturity(w.rt.functions.slotOf(token).call()).call()
    w.do(w.acct[holder], w.rt.functions.offerFinancing(token, w.acct[bank], value, max_rate, expiry or maturity))


def _financed_total(w: World, root: int) -> int:
    total = 0
    for tid in w.rt.functions.tokensOfPayable(root).call():
        d = w.rt.functions.getDiscount(tid).call()
        total += d[3]
    return total


# --------------------------------------------------------------------------- double financing (high)


def test_an_allowance_cannot_be_turned_into_unfinanced_value(w: World) -> None:
    """The original attack: the bank spends its allowance with transferFrom (a split with no Discounted
    record, financed = false), then the holder-of-record asks a second bank, which discounts it."""
    token, _ = _issue(w)
    bank, bank2 = w.acct["bank"], w.acct["bank2"]
    # a value allowance is refused outright: nobody but the holder moves value
    w.refused(_fn(w, "approve(uint256,address,uint256)")(token, bank, 400_000 * YUAN), w.acct["supplier"],
              "OperatorsUnsupported")
    _offer(w, token, "bank", 400_000 * YUAN)
    assert w.rt.functions.allowance(token, bank).call() == 400_000 * YUAN
    # every non-discount path the offer might open is closed to the bank
    w.refused(_fn(w, "transferFrom(uint256,address,uint256)")(token, bank, 400_000 * YUAN), bank, "NotHolder")
    w.refused(_fn(w, "transferFrom(address,address,uint256)")(w.acct["supplier"], bank, token), bank, "NotHolder")
    w.refused(_fn(w, "safeTransferFrom(address,address,uint256)")(w.acct["supplier"], bank, token), bank,
              "NotHolder")
    bank_tok = _split(w, "supplier", token, "bank", 1000 * YUAN)  # same payable, unfinanced
    w.refused(_fn(w, "transferFrom(uint256,uint256,uint256)")(token, bank_tok, 1), bank, "NotHolder")
    w.refused(w.rt.functions.offerFinancing(token, bank2, 400_000 * YUAN, 500, w.now() + DAY), bank, "NotHolder")
    # only discount consumes it
    r = w.do(bank, w.rt.functions.discount(token, 400_000 * YUAN, 400, "PAY-1"))
    financed = _new_token(w, r)
    assert w.rt.functions.getToken(financed).call()[8] is True  # financed
    assert w.rt.functions.allowance(token, bank).call() == 0


def test_no_path_leads_to_a_second_financing(w: World) -> None:
    """Split, transfer, re-approve, ERC-721 approval, operator-for-all: financed value stays financed once."""
    root, _ = _issue(w)
    supplier, bank, bank2 = w.acct["supplier"], w.acct["bank"], w.acct["bank2"]
    _offer(w, root, "bank", 300_000 * YUAN)
    financed = _new_token(w, w.do(bank, w.rt.functions.discount(root, 300_000 * YUAN, 400, "PAY-1")))
    # ERC-721 approval and operator-for-all do not exist
    w.refused(_fn(w, "approve(address,uint256)")(bank2, financed), bank, "OperatorsUnsupported")
    w.refused(w.rt.functions.setApprovalForAll(bank2, True), bank, "OperatorsUnsupported")
    w.refused(_fn(w, "approve(address,uint256)")(bank, root), supplier, "OperatorsUnsupported")
    w.refused(w.rt.functions.setApprovalForAll(bank, True), supplier, "OperatorsUnsupported")
    # the bank re-offers its financed value: refused, directly, after a split, after a whole transfer
    w.refused(w.rt.functions.offerFinancing(financed, bank2, 1, 500, w.now() + DAY), bank, "AlreadyDiscounted")
    child = _split(w, "bank", financed, "bank", 100_000 * YUAN)
    w.refused(w.rt.functions.offerFinancing(child, bank2, 1, 500, w.now() + DAY), bank, "AlreadyDiscounted")
    w.do(bank, _fn(w, "transferFrom(address,address,uint256)")(bank, bank2, child))
    w.refused(w.rt.functions.discount(child, 100 * YUAN, 100, "PAY-2"), bank2, "AlreadyDiscounted")
    # financed value cannot be mixed into an unfinanced token
    spare = _split(w, "supplier", root, "bank", 1000 * YUAN)
    w.refused(_fn(w, "transferFrom(uint256,uint256,uint256)")(financed, spare, 1), bank, "SlotMismatch")
    # the holder's re-approval after the discount offers only what is left
    w.refused(w.rt.functions.offerFinancing(root, bank2, 700_000 * YUAN, 500, w.now() + DAY), supplier,
              "InsufficientBalance")
    _offer(w, root, "bank2", 699_000 * YUAN)
    w.refused(w.rt.functions.discount(root, 699_001 * YUAN, 400, "PAY-3"), bank2, "InsufficientBalance")
    w.do(bank2, w.rt.functions.discount(root, 699_000 * YUAN, 400, "PAY-3"))
    # every fen financed at most once; the unfinanced rest is exactly what /check calls free
    free = sum(w.rt.functions.freeToFinance(t).call() for t in w.rt.functions.tokensOfPayable(root).call())
    assert _financed_total(w, root) == 999_000 * YUAN and free == 1000 * YUAN
    assert _financed_total(w, root) + free == w.rt.functions.getPayable(root).call()[3]


def test_an_offer_lapses_when_the_token_changes_hands(w: World) -> None:
    token, _ = _issue(w)
    _offer(w, token, "bank", 100_000 * YUAN)
    w.do(w.acct["supplier"], _fn(w, "transferFrom(address,address,uint256)")(w.acct["supplier"], w.acct["tier2"],
                                                                              token))
    assert w.rt.functions.allowance(token, w.acct["bank"]).call() == 0
    w.refused(w.rt.functions.discount(token, 1, 100, "PAY-1"), w.acct["bank"], "NotAuthorized")


# --------------------------------------------------------------------------- holder-set terms (medium)


def test_discount_refuses_worse_terms_than_offered(w: World) -> None:
    token, maturity = _issue(w, days=365)
    bank = w.acct["bank"]
    _offer(w, token, "bank", 500_000 * YUAN, max_rate=350, expiry=w.now() + 2 * DAY)
    w.refused(w.rt.functions.discount(token, 500_000 * YUAN, 10_000, "PAY-1"), bank, "RateAboveOffer")
    w.refused(w.rt.functions.discount(token, 500_000 * YUAN, 351, "PAY-1"), bank, "RateAboveOffer")
    w.refused(w.rt.functions.discount(token, 500_001 * YUAN, 350, "PAY-1"), bank, "InsufficientAllowance")
    w.refused(w.rt.functions.discount(token, 1, 350, "PAY-1"), w.acct["bank2"], "NotAuthorized")
    # expiry: after maturity is refused; past expiry the offer is dead
    w.refused(w.rt.functions.offerFinancing(token, bank, 1, 350, maturity + 1), w.acct["supplier"], "InvalidExpiry")
    w.refused(w.rt.functions.offerFinancing(token, w.acct["tier2"], 1, 350, maturity), w.acct["supplier"], "NotBank")
    w.travel(w.now() + 3 * DAY)
    w.w3.provider.ethereum_tester.mine_blocks(1)
    w.refused(w.rt.functions.discount(token, 1, 350, "PAY-1"), bank, "OfferExpired")
    assert w.rt.functions.allowance(token, bank).call() == 0


def test_price_formula_cannot_panic(w: World) -> None:
    """rate × time beyond 100 % used to revert with Panic(0x11); value is bounded so the product cannot overflow."""
    token, maturity = _issue(w, days=2 * 365)
    _offer(w, token, "bank", 1000 * YUAN, max_rate=10_000)
    w.refused(w.rt.functions.discount(token, 1000 * YUAN, 10_000, "PAY-1"), w.acct["bank"], "DiscountExceedsValue")
    year = 365 * DAY
    assert w.rt.functions.discountPrice(MAX_VALUE, 10_000, year - 1).call() == discount_price(MAX_VALUE, 10_000,
                                                                                             year - 1)
    w.refused(w.rt.functions.issue(w.acct["supplier"], CNY, maturity, MAX_VALUE + 1, keccak(text="big")),
              w.acct["core"], "ValueTooLarge")
    assert w.rt.functions.discountPrice(1000, 10_000, year).call() == 0 == discount_price(1000, 10_000, year)
    for rate, seconds in ((10_000, year + 1), (1, 2**64 - 1)):
        data = w.rt.functions.discountPrice(1, rate, seconds)
        with pytest.raises(Exception, match="DiscountExceedsValue|revert"):
            data.call()


# --------------------------------------------------------------------------- membership (high)


def test_an_expelled_member_cannot_act(w: World) -> None:
    token, _ = _issue(w)
    _offer(w, token, "bank", 100_000 * YUAN)
    supplier = w.acct["supplier"]
    w.do(w.admin, w.reg.functions.setActive(supplier, False))
    w.refused(_fn(w, "transferFrom(uint256,address,uint256)")(token, w.acct["tier2"], 100 * YUAN), supplier,
              "NotMember")
    w.refused(_fn(w, "transferFrom(address,address,uint256)")(supplier, w.acct["tier2"], token), supplier,
              "NotMember")
    w.refused(w.rt.functions.offerFinancing(token, w.acct["bank2"], 100 * YUAN, 100, w.now() + DAY), supplier,
              "NotMember")
    # the bank cannot discount an expelled holder's value, and /check sees nothing free
    w.refused(w.rt.functions.discount(token, 100 * YUAN, 100, "PAY-1"), w.acct["bank"], "NotMember")
    assert w.rt.functions.freeToFinance(token).call() == 0
    # an expelled issuer can neither issue nor settle
    w.do(w.admin, w.reg.functions.setActive(supplier, True))
    w.do(w.admin, w.reg.functions.setActive(w.acct["core"], False))
    w.refused(w.rt.functions.issue(supplier, CNY, w.now() + DAY, 1, keccak(text="x")), w.acct["core"],
              "NotCoreEnterprise")
    w.travel(w.now() + 91 * DAY)
    w.w3.provider.ethereum_tester.mine_blocks(1)
    w.refused(w.rt.functions.settle(token, "SET-1"), w.acct["core"], "NotMember")


# --------------------------------------------------------------------------- settlement (medium-high)


def test_the_issuer_cannot_extinguish_the_banks_claim(w: World) -> None:
    root, maturity = _issue(w)
    _offer(w, root, "bank", 200_000 * YUAN)
    financed = _new_token(w, w.do(w.acct["bank"], w.rt.functions.discount(root, 200_000 * YUAN, 300, "PAY-1")))
    w.travel(maturity)
    w.w3.provider.ethereum_tester.mine_blocks(1)
    core = w.acct["core"]
    w.do(core, w.rt.functions.settle(financed, "CORE-PAY-1"))
    # marking payment does not redeem: the bank's value is intact until it confirms
    tok = w.rt.functions.getToken(financed).call()
    assert tok[1] == 200_000 * YUAN and tok[9] is False
    assert w.rt.functions.getPayable(root).call()[4] == 0
    w.refused(w.rt.functions.settle(financed, "CORE-PAY-2"), core, "SettlementPending")
    w.refused(w.rt.functions.confirmSettlement(financed), core, "NotHolder")
    w.refused(w.rt.functions.finalizeSettlement(financed), core, "DisputeWindowOpen")
    # the bank disputes: the mark is cleared, the reference stays used
    w.do(w.acct["bank"], w.rt.functions.disputeSettlement(financed, "no credit on account 6217"))
    assert w.rt.functions.getSettlement(financed).call()[5] == 0  # status None
    w.refused(w.rt.functions.settle(financed, "CORE-PAY-1"), core, "PaymentReferenceUsed")
    w.do(core, w.rt.functions.settle(financed, "CORE-PAY-2"))
    w.do(w.acct["bank"], w.rt.functions.confirmSettlement(financed))
    st = w.rt.functions.getSettlement(financed).call()
    assert st[0] == w.acct["bank"] and st[1] == 200_000 * YUAN and st[2] == "CORE-PAY-2" and st[5] == 2
    assert w.rt.functions.getToken(financed).call()[9] is True
    w.refused(w.rt.functions.settle(financed, "CORE-PAY-3"), core, "Redeemed")
    # the holder's silence: after the dispute window anyone may finalize
    w.do(core, w.rt.functions.settle(root, "CORE-PAY-1"))  # references are per (issuer, holder)
    w.refused(w.rt.functions.disputeSettlement(financed, "late"), w.acct["bank"], "NoSettlementMarked")
    w.travel(w.now() + 7 * DAY + 1)
    w.w3.provider.ethereum_tester.mine_blocks(1)
    w.refused(w.rt.functions.disputeSettlement(root, "late"), w.acct["supplier"], "DisputeWindowClosed")
    w.do(w.acct["tier2"], w.rt.functions.finalizeSettlement(root))
    assert w.rt.functions.getPayable(root).call()[4] == 1_000_000 * YUAN
    assert w.rt.functions.getSettlement(root).call()[5] == 3  # Finalized


# --------------------------------------------------------------------------- dust and indexing (low)


def _deploy_runtime(w: World, runtime: bytes) -> str:
    init = bytes([0x60, len(runtime), 0x60, 0x0C, 0x60, 0x00, 0x39, 0x60, len(runtime), 0x60, 0x00, 0xF3]) + runtime
    tx = w.w3.eth.send_transaction({"from": w.funder, "data": "0x" + init.hex(), "gas": 200_000})
    return w.w3.eth.wait_for_transaction_receipt(tx).contractAddress


def test_dust_depth_and_receiver_hooks(w: World) -> None:
    token, _ = _issue(w)
    w.refused(_fn(w, "transferFrom(uint256,address,uint256)")(token, w.acct["tier2"], 99), w.acct["supplier"],
              "SplitTooSmall")
    # split depth is bounded, so chainOf is O(MAX_DEPTH)
    current = token
    for _ in range(32):
        current = _split(w, "supplier", current, "supplier", 100)
    w.refused(_fn(w, "transferFrom(uint256,address,uint256)")(current, w.acct["tier2"], 100), w.acct["supplier"],
              "SplitTooDeep")
    assert len(w.rt.functions.chainOf(current).call()) == 33
    # a contract member must accept value with onERC3525Received
    reverter = _deploy_runtime(w, bytes.fromhex("60006000fd"))
    acceptor = _deploy_runtime(w, bytes.fromhex("63009ce20b60e01b60005260206000f3"))
    w.do(w.admin, w.reg.functions.registerEnterprise(reverter, "vault-a", SUPPLIER, "88.9.70"))
    w.do(w.admin, w.reg.functions.registerEnterprise(acceptor, "vault-b", SUPPLIER, "88.9.71"))
    w.refused(_fn(w, "transferFrom(uint256,address,uint256)")(token, reverter, 100), w.acct["supplier"],
              "NotReceiver")
    w.do(w.acct["supplier"], _fn(w, "transferFrom(uint256,address,uint256)")(token, acceptor, 100))


def test_offer_events_are_complete_and_banks_listed_once(w: World) -> None:
    token, maturity = _issue(w)
    for value in (100, 200, 300):
        _offer(w, token, "bank", value, max_rate=250, expiry=maturity)
    assert w.rt.functions.offerBanks(token).call() == [w.acct["bank"]]
    logs = w.rt.events.FinancingOffered().get_logs(from_block=0)
    assert [(e.args.value, e.args.maxRateBps, e.args.expiry, e.args.bank) for e in logs][-1] == (
        300, 250, maturity, w.acct["bank"])
    approvals = w.rt.events.ApprovalValue().get_logs(from_block=0)
    assert [e.args._value for e in approvals] == [100, 200, 300]
