"""Chain index handlers (api/chain_index/handlers.py) on a real database, fed decoded events.

The receivable story of ``contracts/ReceivableToken.sol`` in the order the contract emits its events:
issue → split → offer → discount → whole-token transfer → settle (marked, disputed, marked, settled); and a
work ticket issued, stepped, extended, aborted. Each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from api.chain_index import ChainEvent, IndexInconsistent, apply_events
from api.chain_index.models import (
    IndexedDiscount,
    IndexedEvent,
    IndexedOffer,
    IndexedPayable,
    IndexedSettlement,
    IndexedTicket,
    IndexedTicketStep,
    IndexedToken,
)
from api.db import make_engine
from api.migrations import upgrade
from provenance.work_tickets import ACTIONS
from tests.api.conftest import make_settings, pg_schema

ZERO = "0x" + "00" * 20
ISSUER, SUPPLIER, TIER2, BANK = ("0x" + c * 20 for c in ("A1", "B2", "C3", "D4"))
ISSUER, SUPPLIER, TIER2, BANK = (a[:2] + a[2:].upper() for a in (ISSUER, SUPPLIER, TIER2, BANK))
SLOT = (int(ISSUER, 16) << 96) | (int.from_bytes(b"CNY", "big") << 64) | 2_000_000_000
DIGEST = bytes.fromhex("ab" * 32)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        url = f"sqlite:///{(tmp_path / 'index.db').as_posix()}"
        eng = make_engine(make_settings(url, tmp_path))
        upgrade(eng)
        yield eng
        eng.dispose()
        return
    with pg_schema("tl_index") as url:
        eng = make_engine(make_settings(url, tmp_path))
        upgrade(eng)
        yield eng
        eng.dispose()


class Blocks:
    """Makes events with increasing (block, log index) positions; ``tx()`` starts a new transaction."""

    def __init__(self) -> None:
        self.block, self.log, self.txs = 10, 0, 0

    def next_block(self) -> None:
        self.block += 1
        self.log = 0

    def ev(self, contract: str, event: str, **args: Any) -> ChainEvent:
        e = ChainEvent(contract=contract, event=event, args=args, block_number=self.block,
                       block_hash=f"0x{self.block:064x}", log_index=self.log, tx_hash=f"0x{self.txs:064x}",
                       timestamp=1_900_000_000 + self.block)
        self.log += 1
        return e


def receivable_story(b: Blocks) -> list[ChainEvent]:
    """The events ReceivableToken emits for: issue #1 to the supplier; split 400 of it to tier 2 (#2);
    offer #2 to the bank; the bank discounts 150 of #2 (#3); tier 2 transfers #2 to the supplier."""
    rt = "ReceivableToken"
    out = [
        b.ev(rt, "Transfer", _from=ZERO, _to=SUPPLIER, _tokenId=1),
        b.ev(rt, "SlotChanged", _tokenId=1, _oldSlot=0, _newSlot=SLOT),
        b.ev(rt, "TransferValue", _fromTokenId=0, _toTokenId=1, _value=1000),
        b.ev(rt, "Issued", tokenId=1, issuer=ISSUER, beneficiary=SUPPLIER, invoiceDigest=DIGEST, value=1000, slot=SLOT),
    ]
    b.next_block()
    out += [
        b.ev(rt, "Transfer", _from=ZERO, _to=TIER2, _tokenId=2),
        b.ev(rt, "SlotChanged", _tokenId=2, _oldSlot=0, _newSlot=SLOT),
        b.ev(rt, "TransferValue", _fromTokenId=1, _toTokenId=2, _value=400),
        b.ev(rt, "Split", fromTokenId=1, toTokenId=2, to=TIER2, value=400),
        b.ev(rt, "ApprovalValue", _tokenId=2, _operator=BANK, _value=300),
        b.ev(rt, "FinancingOffered", tokenId=2, holder=TIER2, bank=BANK, value=300, maxRateBps=900,
             expiry=1_999_999_000),
    ]
    b.next_block()
    out += [
        b.ev(rt, "ApprovalValue", _tokenId=2, _operator=BANK, _value=150),
        b.ev(rt, "Transfer", _from=ZERO, _to=BANK, _tokenId=3),
        b.ev(rt, "SlotChanged", _tokenId=3, _oldSlot=0, _newSlot=SLOT),
        b.ev(rt, "TransferValue", _fromTokenId=2, _toTokenId=3, _value=150),
        b.ev(rt, "Split", fromTokenId=2, toTokenId=3, to=BANK, value=150),
        b.ev(rt, "Discounted", tokenId=3, fromTokenId=2, bank=BANK, holder=TIER2, value=150, rateBps=800,
             price=140, paymentReference="CQB-1"),
        b.ev(rt, "Transfer", _from=TIER2, _to=SUPPLIER, _tokenId=2),
    ]
    return out


def settlement_story(b: Blocks) -> list[ChainEvent]:
    """At maturity: the issuer marks #3, the bank disputes, the issuer marks again, the bank confirms."""
    rt = "ReceivableToken"
    b.next_block()
    out = [b.ev(rt, "SettlementMarked", tokenId=3, issuer=ISSUER, holder=BANK, value=150, paymentReference="P-1"),
           b.ev(rt, "SettlementDisputed", tokenId=3, holder=BANK, paymentReference="P-1", reason="not received")]
    b.next_block()
    out += [b.ev(rt, "SettlementMarked", tokenId=3, issuer=ISSUER, holder=BANK, value=150, paymentReference="P-2"),
            b.ev(rt, "TransferValue", _fromTokenId=3, _toTokenId=0, _value=150),
            b.ev(rt, "Settled", tokenId=3, holder=BANK, value=150, paymentReference="P-2")]
    return out


def table_rows(engine: Any) -> dict[str, list[tuple]]:
    out = {}
    with Session(engine) as s:
        for model in (IndexedEvent, IndexedToken, IndexedPayable, IndexedDiscount, IndexedSettlement, IndexedOffer,
                      IndexedTicket, IndexedTicketStep):
            out[model.__tablename__] = sorted(tuple(r.model_dump().items()) for r in s.exec(select(model)))
    return out


def test_receivable_events_build_what_get_token_would_say(engine: Any) -> None:
    b = Blocks()
    with Session(engine) as s:
        assert apply_events(s, receivable_story(b)) == 17
        s.commit()
    with Session(engine) as s:
        t1, t2, t3 = (s.get(IndexedToken, i) for i in (1, 2, 3))
        assert (t1.owner, t1.balance, t1.parent, t1.root, t1.depth, t1.original_value, t1.slot) == (
            SUPPLIER, "600", 0, 1, 0, "1000", str(SLOT))
        # the whole-token transfer moved #2 to the supplier and bumped its epoch: the bank's offer lapsed
        assert (t2.owner, t2.balance, t2.parent, t2.root, t2.depth, t2.financed, t2.epoch) == (
            SUPPLIER, "250", 1, 1, 1, False, 1)
        assert (t3.owner, t3.balance, t3.parent, t3.root, t3.depth, t3.financed, t3.original_value) == (
            BANK, "150", 2, 1, 2, True, "150")
        assert (t1.created_block, t2.created_block, t3.created_block) == (10, 11, 12)
        assert t3.created_block_hash == f"0x{12:064x}" and t3.created_at == 1_900_000_012
        pay = s.get(IndexedPayable, 1)
        assert (pay.invoice_digest, pay.issuer, pay.beneficiary, pay.face_value, pay.settled_value) == (
            "0x" + "ab" * 32, ISSUER, SUPPLIER, "1000", "0")
        d = s.get(IndexedDiscount, 3)
        assert (d.bank, d.holder, d.from_token_id, d.value, d.rate_bps, d.price, d.payment_reference) == (
            BANK, TIER2, 2, "150", 800, "140", "CQB-1")
        offer = s.get(IndexedOffer, (2, BANK))
        assert (offer.value, offer.max_rate_bps, offer.epoch, offer.holder) == ("150", 900, 0, TIER2)
        assert s.get(IndexedDiscount, 2) is None and s.get(IndexedSettlement, 3) is None


def test_settlement_marked_disputed_and_redeemed(engine: Any) -> None:
    b = Blocks()
    with Session(engine) as s:
        apply_events(s, receivable_story(b) + settlement_story(b))
        s.commit()
    with Session(engine) as s:
        st = s.get(IndexedSettlement, 3)
        assert (st.status, st.value, st.payment_reference, st.holder) == ("redeemed", "150", "P-2", BANK)
        assert st.marked_at == 1_900_000_014 and st.timestamp == 1_900_000_014
        t3 = s.get(IndexedToken, 3)
        assert t3.redeemed and t3.balance == "0"
        assert s.get(IndexedPayable, 1).settled_value == "150"


def test_a_block_processed_twice_writes_nothing_twice(engine: Any) -> None:
    b = Blocks()
    events = receivable_story(b)
    with Session(engine) as s:
        apply_events(s, events)
        s.commit()
    once = table_rows(engine)
    with Session(engine) as s:  # the same logs again (a restored cursor, a second indexer): no new row, no +=
        assert apply_events(s, events) == 0
        s.commit()
    assert table_rows(engine) == once
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(IndexedEvent)).one() == len(events)


def test_a_failure_mid_batch_leaves_the_previous_commit(engine: Any) -> None:
    b = Blocks()
    first = receivable_story(b)
    with Session(engine) as s:
        apply_events(s, first)
        s.commit()
    before = table_rows(engine)
    b.next_block()
    broken = [b.ev("ReceivableToken", "TransferValue", _fromTokenId=1, _toTokenId=2, _value=5),
              b.ev("ReceivableToken", "Split", fromTokenId=1, toTokenId=99, to=TIER2, value=5)]  # 99 never minted
    with Session(engine) as s, pytest.raises(IndexInconsistent, match="token 99"):
        apply_events(s, broken)
        s.commit()
    assert table_rows(engine) == before


def test_work_ticket_steps(engine: Any) -> None:
    b = Blocks()
    wt = "WorkTicket"
    actor, permitter = ISSUER, BANK
    equipment_hash = bytes.fromhex("cd" * 32)
    events = [b.ev(wt, "TicketIssued", ticketId=7, equipmentHash=equipment_hash, equipment="88.2.1/T-1",
                   digest=DIGEST, issuer=actor),
              b.ev(wt, "TicketWindow", ticketId=7, plannedStart=100, plannedEnd=200, extended=False),
              b.ev(wt, "StepRecorded", ticketId=7, action=ACTIONS.index("issue"), actor=actor, submitter=actor,
                   timestamp=90)]
    b.next_block()
    events += [b.ev(wt, "StepRecorded", ticketId=7, action=ACTIONS.index("permit"), actor=permitter,
                    submitter=actor, timestamp=101)]
    b.next_block()
    events += [b.ev(wt, "TicketWindow", ticketId=7, plannedStart=100, plannedEnd=260, extended=True),
               b.ev(wt, "StepRecorded", ticketId=7, action=ACTIONS.index("extend"), actor=permitter,
                    submitter=permitter, timestamp=150),
               b.ev(wt, "TicketAborted", ticketId=7, actor=permitter, reason="storm"),
               b.ev(wt, "StepRecorded", ticketId=7, action=ACTIONS.index("abort"), actor=permitter,
                    submitter=permitter, timestamp=150)]
    with Session(engine) as s:
        apply_events(s, events)
        s.commit()
    from api.chain_index.reads import ticket_steps

    with Session(engine) as s:
        ticket, steps = ticket_steps(s, 7)
        assert (ticket.equipment, ticket.planned_end, ticket.extended, ticket.abort_reason) == (
            "88.2.1/T-1", 260, True, "storm")
        assert ticket.equipment_hash == "0x" + "cd" * 32 and ticket.digest == "0x" + "ab" * 32
        assert [(ACTIONS[st.action], st.actor, st.planned_end) for st in steps] == [
            ("issue", actor, 0), ("permit", permitter, 0), ("extend", permitter, 260), ("abort", permitter, 0)]
        assert steps[1].submitter == actor  # relayed


def test_a_step_of_an_unseen_ticket_is_refused(engine: Any) -> None:
    b = Blocks()
    with Session(engine) as s, pytest.raises(IndexInconsistent, match="ticket 5"):
        apply_events(s, [b.ev("WorkTicket", "StepRecorded", ticketId=5, action=1, actor=ISSUER, submitter=ISSUER,
                              timestamp=1)])


def test_final_head_under_each_finality_model() -> None:
    from api.chain_index import final_head

    assert final_head(100, "qbft") == 100  # a sealed block is final
    assert final_head(100, "confirmations:1") == 100
    assert final_head(100, "confirmations:12") == 89  # 100 - 89 + 1 = 12 confirmations
    assert final_head(5, "confirmations:12") < 0  # nothing final yet
    with pytest.raises(ValueError, match="confirmations:N"):
        final_head(100, "confirmations:0")


def test_a_missing_last_step_always_shows() -> None:
    """Ticket history from the index is used only when it replays to what getTicket says; every prefix differs."""
    from api.routes.work_tickets import steps_complete
    from api.workflows.adapters import StepRecord, TicketRecord

    def step(name: str, end: int = 0) -> StepRecord:
        return StepRecord(action=ACTIONS.index(name), actor=ISSUER, submitter=ISSUER, timestamp=1, blockNumber=1,
                          plannedEnd=end)

    steps = [step("issue"), step("permit"), step("brief"), step("extend", 300), step("acknowledge"),
             step("acknowledge"), step("end_work"), step("terminate")]
    ticket = TicketRecord(equipment="e", digest=DIGEST, issuer=ISSUER, permitter=BANK, leader=TIER2,
                          crew=(SUPPLIER,), plannedStart=0, plannedEnd=300, status=5, acknowledged=2, extended=True)
    assert steps_complete(ticket, steps)
    assert not any(steps_complete(ticket, steps[:n]) for n in range(len(steps)))


def test_a_busy_node_is_not_a_missing_token() -> None:
    """The node refusing for load (-32005) was answered 404 "not found on chain"; now retried, then 503."""
    from fastapi import HTTPException
    from web3.exceptions import ContractLogicError, Web3RPCError

    from api.chain import ChainUnavailable
    from api.workflows.contract_calls import call_view

    busy = Web3RPCError("too many execution requests waiting", rpc_response={
        "jsonrpc": "2.0", "id": 1, "error": {"code": -32005, "message": "too many execution requests waiting"}})
    answers: list[Any] = [busy, busy, 42]

    def flaky() -> int:
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    assert call_view(flaky, "getToken") == 42

    def always_busy() -> int:
        raise busy

    with pytest.raises(ChainUnavailable, match="busy"):
        call_view(always_busy, "getToken")

    def reverts() -> int:
        raise ContractLogicError("execution reverted: UnknownToken")

    with pytest.raises(HTTPException) as refused:
        call_view(reverts, "getToken")
    assert refused.value.status_code == 404


def test_ids_beyond_the_index_columns_are_not_looked_up(engine: Any) -> None:
    """The API's paths take uint256 ids; the index's BIGINT columns never see one above 2**63 - 1 (found by
    schemathesis: an OverflowError, a 500, on SQLite)."""
    from api.chain_index.reads import ticket_steps, token_chain

    with Session(engine) as s:
        assert token_chain(s, 2**90) is None and token_chain(s, 0) is None
        assert ticket_steps(s, 2**64) == (None, [])


def test_a_token_chain_is_one_statement(engine: Any) -> None:
    """``token_chain`` reads the token's family, discounts, payable, cursor and the parties' enterprises in one
    statement; the hops run from the payable down to the token, the discounts are the hops' own."""
    from sqlalchemy import event

    from api.chain_index.indexer import DEFAULT_CURSOR
    from api.chain_index.models import IndexCursor
    from api.chain_index.reads import token_chain

    b = Blocks()
    with Session(engine) as s:
        apply_events(s, receivable_story(b))
        s.add(IndexCursor(name=DEFAULT_CURSOR, block_number=b.block, block_hash=f"0x{b.block:064x}"))
        s.commit()
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with Session(engine) as s:
        s.connection()  # the session's BEGIN is not the read
        event.listen(engine, "before_cursor_execute", count)
        try:
            view = token_chain(s, 3)
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1, statements
    assert view is not None and [h.token_id for h in view.hops] == [1, 2, 3] and set(view.family) == {1, 2, 3}
    assert set(view.discounts) == {3} and view.discounts[3].payment_reference == "CQB-1"
    assert view.payable.issuer == ISSUER and view.indexed_to_block == b.block
    assert view.names[BANK] == {"address": BANK, "enterprise_id": None, "name": None}
    with Session(engine) as s:
        two = token_chain(s, 2)
        assert two is not None and [h.token_id for h in two.hops] == [1, 2] and two.discounts == {}
        assert token_chain(s, 99) is None


WAREHOUSE, BANK_B = ("0x" + "E5" * 20, "0x" + "F6" * 20)


def receipt_story(b: Blocks) -> list[ChainEvent]:
    """``WarehouseReceipt`` events, in the order the contract emits them: issue #1 (two coils) to the
    supplier; pledge to the bank; release; split #1 into #2 (coil A) and #3 (coil B); transfer #2 to tier 2;
    deliver #3."""
    wr = "WarehouseReceipt"
    key = {i: bytes([n]) * 32 for n, i in enumerate(("88.1/A", "88.1/B"), start=1)}
    out = [b.ev(wr, "CoilReceipted", receiptId=1, coilKey=key["88.1/A"], identifier="88.1/A"),
           b.ev(wr, "CoilReceipted", receiptId=1, coilKey=key["88.1/B"], identifier="88.1/B"),
           b.ev(wr, "Transfer", _from=ZERO, _to=SUPPLIER, _tokenId=1),
           b.ev(wr, "Issued", receiptId=1, warehouse=WAREHOUSE, depositor=SUPPLIER, grade="S355JR",
                netWeightKg=40_000, coilCount=2)]
    b.next_block()
    out.append(b.ev(wr, "PledgeRecorded", receiptId=1, holder=SUPPLIER, bank=BANK, loanAmount=10**8,
                    currency=b"CNY", maturity=1_999_999_999))
    pledged_at = len(out)
    b.next_block()
    out.append(b.ev(wr, "PledgeReleased", receiptId=1, bank=BANK, holder=SUPPLIER))
    b.next_block()
    for rid, ident in ((2, "88.1/A"), (3, "88.1/B")):
        out += [b.ev(wr, "CoilReceipted", receiptId=rid, coilKey=key[ident], identifier=ident),
                b.ev(wr, "Transfer", _from=ZERO, _to=SUPPLIER, _tokenId=rid),
                b.ev(wr, "Issued", receiptId=rid, warehouse=WAREHOUSE, depositor=SUPPLIER, grade="S355JR",
                     netWeightKg=20_000, coilCount=1)]
    out.append(b.ev(wr, "SplitInto", receiptId=1, firstReceiptId=2, secondReceiptId=3))
    b.next_block()
    out.append(b.ev(wr, "Transfer", _from=SUPPLIER, _to=TIER2, _tokenId=2))
    out += [b.ev(wr, "Delivered", receiptId=3, holder=SUPPLIER, warehouse=WAREHOUSE),
            b.ev(wr, "Transfer", _from=SUPPLIER, _to=ZERO, _tokenId=3)]
    assert pledged_at == 5
    return out


def test_warehouse_receipt_events_build_what_get_receipt_would_say(engine: Any) -> None:
    from api.chain_index.models import IndexedReceipt, IndexedReceiptCoil

    b = Blocks()
    story = receipt_story(b)
    with Session(engine) as s:
        apply_events(s, story[:5])
        s.commit()
    with Session(engine) as s:
        r1 = s.get(IndexedReceipt, 1)
        assert (r1.owner, r1.warehouse, r1.depositor, r1.grade, r1.net_weight_kg, r1.status, r1.bank,
                r1.currency) == (SUPPLIER, WAREHOUSE, SUPPLIER, "S355JR", 40_000, "pledged", BANK, "CNY")
    with Session(engine) as s:
        assert apply_events(s, story) == len(story) - 5  # the first five again: nothing twice
        s.commit()
    with Session(engine) as s:
        r1, r2, r3 = (s.get(IndexedReceipt, i) for i in (1, 2, 3))
        assert (r1.status, r1.bank, r1.currency) == ("split", None, None)
        assert (r2.status, r2.owner, r2.parent, r2.net_weight_kg) == ("live", TIER2, 1, 20_000)
        assert (r3.status, r3.owner, r3.parent) == ("delivered", SUPPLIER, 1)
        coils = sorted((c.receipt_id, c.position, c.identifier) for c in s.exec(select(IndexedReceiptCoil)))
        assert coils == [(1, 0, "88.1/A"), (1, 1, "88.1/B"), (2, 0, "88.1/A"), (3, 0, "88.1/B")]
        subjects = {e.subject_id for e in s.exec(select(IndexedEvent))}
        assert subjects == {1, 2, 3}


def test_a_pledge_of_an_unseen_receipt_halts(engine: Any) -> None:
    b = Blocks()
    with Session(engine) as s, pytest.raises(IndexInconsistent, match="receipt 7"):
        apply_events(s, [b.ev("WarehouseReceipt", "PledgeRecorded", receiptId=7, holder=SUPPLIER, bank=BANK,
                              loanAmount=1, currency=b"CNY", maturity=1)])
