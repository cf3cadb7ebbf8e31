"""Event handlers of the chain indexer: one small table, one function per (contract, event).

A handler gets the session of the batch being indexed and one decoded :class:`ChainEvent`, and
updates the fact tables of :mod:`api.chain_index.models` exactly as the contract updated its storage
when it emitted the event (``contracts/ReceivableToken.sol``, ``contracts/WorkTicket.sol``,
``contracts/WarehouseReceipt.sol``). Handlers
run only for a log that was not indexed before (the caller inserts the ``chain_index_events`` row
first), in log order, inside the batch's transaction.

Adding a contract is one entry of :data:`INDEXED_CONTRACTS`: its artifact
name, the settings attribute holding its address, and ``{event name: handler}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from api.chain_index.models import (
    IndexedDiscount,
    IndexedOffer,
    IndexedPayable,
    IndexedReceipt,
    IndexedReceiptCoil,
    IndexedSettlement,
    IndexedTicket,
    IndexedTicketStep,
    IndexedToken,
)
from provenance.work_tickets import ACTIONS

ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class ChainEvent:
    """A decoded log: contract artifact name, event name, arguments by ABI name (addresses EIP-55,
    ``bytes32`` as bytes, integers as int), and where it sits (block number/hash, log index in the
    block, transaction hash, block timestamp in unix seconds)."""

    contract: str
    event: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    log_index: int
    tx_hash: str
    timestamp: int


class IndexInconsistent(RuntimeError):
    """An event refers to a token or ticket the index has not seen (a gap or a wrong start block)."""


Handler = Callable[[Session, ChainEvent], None]


@dataclass(frozen=True)
class IndexedContract:
    """One contract the indexer follows: artifact name (``contracts/build/<name>.json``), the
    :class:`api.settings.Settings` attribute holding its address, its event handlers, and the event
    argument naming the row each event is about (stored as ``subject_id``)."""

    name: str
    address_setting: str
    handlers: dict[str, Handler]
    subject_args: tuple[str, ...] = ("tokenId", "_tokenId", "ticketId", "receiptId")


def _token(session: Session, token_id: int, ev: ChainEvent) -> IndexedToken:
    row = session.get(IndexedToken, token_id)
    if row is None:
        raise IndexInconsistent(f"{ev.contract}.{ev.event} at block {ev.block_number} log {ev.log_index} "
                                f"names token {token_id}, which the index has not seen minted")
    return row


def _add(text: str, delta: int) -> str:
    return str(int(text) + delta)


# --------------------------------------------------------------------------- ReceivableToken


def on_transfer(session: Session, ev: ChainEvent) -> None:
    """ERC-721 ``Transfer(from, to, tokenId)``: a mint (``from`` zero) creates the token, else the whole
    token changes hands and every earlier offer lapses (``_epoch += 1``)."""
    token_id, to = int(ev.args["_tokenId"]), ev.args["_to"]
    if ev.args["_from"] == ZERO_ADDRESS:
        session.add(IndexedToken(token_id=token_id, owner=to, root=token_id, created_at=ev.timestamp,
                                 created_block=ev.block_number, created_block_hash=ev.block_hash))
        return
    row = _token(session, token_id, ev)
    row.owner = to
    row.epoch += 1
    session.add(row)


def on_slot_changed(session: Session, ev: ChainEvent) -> None:
    """ERC-3525 ``SlotChanged(tokenId, oldSlot, newSlot)`` (emitted once, at mint)."""
    row = _token(session, int(ev.args["_tokenId"]), ev)
    row.slot = str(int(ev.args["_newSlot"]))
    session.add(row)


def on_transfer_value(session: Session, ev: ChainEvent) -> None:
    """ERC-3525 ``TransferValue(from, to, value)``: balances move (token 0 is mint or redemption)."""
    value = int(ev.args["_value"])
    for key, sign in (("_fromTokenId", -1), ("_toTokenId", 1)):
        token_id = int(ev.args[key])
        if token_id:
            row = _token(session, token_id, ev)
            row.balance = _add(row.balance, sign * value)
            session.add(row)


def on_issued(session: Session, ev: ChainEvent) -> None:
    """``Issued(tokenId, issuer, beneficiary, invoiceDigest, value, slot)``: a confirmed payable."""
    token_id, value = int(ev.args["tokenId"]), int(ev.args["value"])
    row = _token(session, token_id, ev)
    row.original_value = str(value)
    session.add(row)
    session.add(IndexedPayable(root_token_id=token_id, invoice_digest="0x" + bytes(ev.args["invoiceDigest"]).hex(),
                               issuer=ev.args["issuer"], beneficiary=ev.args["beneficiary"], face_value=str(value),
                               issued_at=ev.timestamp))


def on_split(session: Session, ev: ChainEvent) -> None:
    """``Split(fromTokenId, toTokenId, to, value)``: the new token's parent, root, depth, value at creation;
    value split from financed value stays financed."""
    parent = _token(session, int(ev.args["fromTokenId"]), ev)
    row = _token(session, int(ev.args["toTokenId"]), ev)
    row.parent, row.root, row.depth = parent.token_id, parent.root, parent.depth + 1
    row.original_value = str(int(ev.args["value"]))
    row.financed = parent.financed
    session.add(row)


def on_discounted(session: Session, ev: ChainEvent) -> None:
    """``Discounted(tokenId, fromTokenId, bank, holder, value, rateBps, price, paymentReference)``:
    the bank's new token is financed; the discount terms are recorded."""
    token_id = int(ev.args["tokenId"])
    row = _token(session, token_id, ev)
    row.financed = True
    session.add(row)
    session.add(IndexedDiscount(token_id=token_id, bank=ev.args["bank"], holder=ev.args["holder"],
                                from_token_id=int(ev.args["fromTokenId"]), value=str(int(ev.args["value"])),
                                rate_bps=int(ev.args["rateBps"]), price=str(int(ev.args["price"])),
                                payment_reference=ev.args["paymentReference"], timestamp=ev.timestamp))


def on_financing_offered(session: Session, ev: ChainEvent) -> None:
    """``FinancingOffered(tokenId, holder, bank, value, maxRateBps, expiry)``: the offer to that bank,
    at the token's current epoch (replaces an earlier one)."""
    token_id = int(ev.args["tokenId"])
    token = _token(session, token_id, ev)
    row = session.get(IndexedOffer, (token_id, ev.args["bank"])) or IndexedOffer(
        token_id=token_id, bank=ev.args["bank"], holder=ev.args["holder"], value="0", max_rate_bps=0, expiry=0,
        epoch=0)
    row.holder, row.value = ev.args["holder"], str(int(ev.args["value"]))
    row.max_rate_bps, row.expiry, row.epoch = int(ev.args["maxRateBps"]), int(ev.args["expiry"]), token.epoch
    session.add(row)


def on_approval_value(session: Session, ev: ChainEvent) -> None:
    """``ApprovalValue(tokenId, operator, value)``: what is left of an offer (after ``discount``)."""
    row = session.get(IndexedOffer, (int(ev.args["_tokenId"]), ev.args["_operator"]))
    if row is not None:  # offerFinancing emits it before FinancingOffered creates the row
        row.value = str(int(ev.args["_value"]))
        session.add(row)


def on_settlement_marked(session: Session, ev: ChainEvent) -> None:
    """``SettlementMarked(tokenId, issuer, holder, value, paymentReference)``: status ``marked``."""
    token_id = int(ev.args["tokenId"])
    row = session.get(IndexedSettlement, token_id) or IndexedSettlement(
        token_id=token_id, holder=ev.args["holder"], value="0", payment_reference="", status="none", marked_at=0)
    row.holder, row.value = ev.args["holder"], str(int(ev.args["value"]))
    row.payment_reference, row.status, row.marked_at, row.timestamp = (
        ev.args["paymentReference"], "marked", ev.timestamp, 0)
    session.add(row)


def on_settlement_disputed(session: Session, ev: ChainEvent) -> None:
    """``SettlementDisputed(tokenId, holder, paymentReference, reason)``: the mark is cleared."""
    row = session.get(IndexedSettlement, int(ev.args["tokenId"]))
    if row is None:
        raise IndexInconsistent(f"dispute of token {ev.args['tokenId']} without a marked settlement")
    row.status = "none"
    session.add(row)


def on_settled(session: Session, ev: ChainEvent) -> None:
    """``Settled(tokenId, holder, value, paymentReference)``: the value is redeemed (confirmed by the
    holder or finalized after the dispute window); the payable's settled value grows."""
    token_id, value = int(ev.args["tokenId"]), int(ev.args["value"])
    token = _token(session, token_id, ev)
    token.redeemed = True
    session.add(token)
    row = session.get(IndexedSettlement, token_id)
    if row is None:
        raise IndexInconsistent(f"settlement of token {token_id} without a marked settlement")
    row.value, row.status, row.timestamp = str(value), "redeemed", ev.timestamp
    session.add(row)
    payable = session.get(IndexedPayable, token.root)
    if payable is None:
        raise IndexInconsistent(f"token {token_id} names payable {token.root}, not indexed")
    payable.settled_value = _add(payable.settled_value, value)
    session.add(payable)


# --------------------------------------------------------------------------- WorkTicket


def on_ticket_issued(session: Session, ev: ChainEvent) -> None:
    """``TicketIssued(ticketId, equipmentHash, equipment, digest, issuer)``."""
    session.add(IndexedTicket(ticket_id=int(ev.args["ticketId"]), equipment=ev.args["equipment"],
                              equipment_hash="0x" + bytes(ev.args["equipmentHash"]).hex(),
                              digest="0x" + bytes(ev.args["digest"]).hex(), issuer=ev.args["issuer"]))


def _ticket(session: Session, ev: ChainEvent) -> IndexedTicket:
    row = session.get(IndexedTicket, int(ev.args["ticketId"]))
    if row is None:
        raise IndexInconsistent(f"WorkTicket.{ev.event} at block {ev.block_number} names ticket "
                                f"{ev.args['ticketId']}, which the index has not seen issued")
    return row


def on_ticket_window(session: Session, ev: ChainEvent) -> None:
    """``TicketWindow(ticketId, plannedStart, plannedEnd, extended)`` at issue and on ``extend``."""
    row = _ticket(session, ev)
    row.planned_start, row.planned_end = int(ev.args["plannedStart"]), int(ev.args["plannedEnd"])
    row.extended = bool(ev.args["extended"])
    session.add(row)


def on_step_recorded(session: Session, ev: ChainEvent) -> None:
    """``StepRecorded(ticketId, action, actor, submitter, timestamp)``: one history entry; an ``extend``
    step carries the new planned end (its ``TicketWindow`` came just before, in the same transaction)."""
    ticket = _ticket(session, ev)
    action = int(ev.args["action"])
    extend = action < len(ACTIONS) and ACTIONS[action] == "extend"
    session.add(IndexedTicketStep(block_number=ev.block_number, log_index=ev.log_index, ticket_id=ticket.ticket_id,
                                  action=action, actor=ev.args["actor"], submitter=ev.args["submitter"],
                                  timestamp=int(ev.args["timestamp"]),
                                  planned_end=ticket.planned_end if extend else 0))


def on_ticket_aborted(session: Session, ev: ChainEvent) -> None:
    """``TicketAborted(ticketId, actor, reason)``."""
    row = _ticket(session, ev)
    row.abort_reason = ev.args["reason"]
    session.add(row)


# --------------------------------------------------------------------------- WarehouseReceipt


def _receipt(session: Session, receipt_id: int, ev: ChainEvent) -> IndexedReceipt:
    row = session.get(IndexedReceipt, receipt_id)
    if row is None:
        raise IndexInconsistent(f"WarehouseReceipt.{ev.event} at block {ev.block_number} log {ev.log_index} "
                                f"names receipt {receipt_id}, which the index has not seen issued")
    return row


def on_receipt_transfer(session: Session, ev: ChainEvent) -> None:
    """ERC-721 ``Transfer(from, to, tokenId)`` of a receipt: a mint creates it (``Issued`` follows in the same
    transaction), a burn is the delivery (``Delivered`` came just before), else the holder changes."""
    receipt_id, to = int(ev.args["_tokenId"]), ev.args["_to"]
    if ev.args["_from"] == ZERO_ADDRESS:
        session.add(IndexedReceipt(receipt_id=receipt_id, owner=to, issued_at=ev.timestamp,
                                   issued_block=ev.block_number))
        return
    row = _receipt(session, receipt_id, ev)
    if to != ZERO_ADDRESS:
        row.owner = to
        session.add(row)


def on_receipt_issued(session: Session, ev: ChainEvent) -> None:
    """``Issued(receiptId, warehouse, depositor, grade, netWeightKg, coilCount)`` (at issue and for each half
    of a split; the half's parent is named by the ``SplitInto`` that follows)."""
    row = _receipt(session, int(ev.args["receiptId"]), ev)
    row.warehouse, row.depositor = ev.args["warehouse"], ev.args["depositor"]
    row.grade, row.net_weight_kg = ev.args["grade"], int(ev.args["netWeightKg"])
    session.add(row)


def on_coil_receipted(session: Session, ev: ChainEvent) -> None:
    """``CoilReceipted(receiptId, coilKey, identifier)``: the coil joins the receipt (emitted before the
    receipt's own mint), in receipt order."""
    receipt_id = int(ev.args["receiptId"])
    position = len(session.exec(select(IndexedReceiptCoil.position)
                                .where(IndexedReceiptCoil.receipt_id == receipt_id)).all())
    session.add(IndexedReceiptCoil(receipt_id=receipt_id, position=position, identifier=ev.args["identifier"],
                                   coil_key="0x" + bytes(ev.args["coilKey"]).hex()))


def on_pledge_recorded(session: Session, ev: ChainEvent) -> None:
    """``PledgeRecorded(receiptId, holder, bank, loanAmount, currency, maturity)``: ``pledged`` to that bank."""
    row = _receipt(session, int(ev.args["receiptId"]), ev)
    row.status, row.bank = "pledged", ev.args["bank"]
    row.currency = bytes(ev.args["currency"]).decode("ascii", errors="replace")
    session.add(row)


def on_pledge_ended(session: Session, ev: ChainEvent) -> None:
    """``PledgeReleased`` / ``PledgeEnforced``: live again, no bank (title moves by the ``Transfer`` of
    ``enforce``)."""
    row = _receipt(session, int(ev.args["receiptId"]), ev)
    if row.status != "pledged":
        raise IndexInconsistent(f"{ev.event} of receipt {row.receipt_id}, which the index holds {row.status}")
    row.status, row.bank, row.currency = "live", None, None
    session.add(row)


def on_split_into(session: Session, ev: ChainEvent) -> None:
    """``SplitInto(receiptId, firstReceiptId, secondReceiptId)``: the receipt closes, the halves name it."""
    row = _receipt(session, int(ev.args["receiptId"]), ev)
    row.status = "split"
    session.add(row)
    for key in ("firstReceiptId", "secondReceiptId"):
        half = _receipt(session, int(ev.args[key]), ev)
        half.parent = row.receipt_id
        session.add(half)


def on_delivered(session: Session, ev: ChainEvent) -> None:
    """``Delivered(receiptId, holder, warehouse)``: the receipt closes and its coils are free."""
    row = _receipt(session, int(ev.args["receiptId"]), ev)
    row.status, row.bank, row.currency = "delivered", None, None
    session.add(row)


INDEXED_CONTRACTS: tuple[IndexedContract, ...] = (
    IndexedContract("ReceivableToken", "receivable_token_address", {
        "Transfer": on_transfer,
        "SlotChanged": on_slot_changed,
        "TransferValue": on_transfer_value,
        "Issued": on_issued,
        "Split": on_split,
        "Discounted": on_discounted,
        "FinancingOffered": on_financing_offered,
        "ApprovalValue": on_approval_value,
        "SettlementMarked": on_settlement_marked,
        "SettlementDisputed": on_settlement_disputed,
        "Settled": on_settled,
    }),
    IndexedContract("WorkTicket", "work_ticket_address", {
        "TicketIssued": on_ticket_issued,
        "TicketWindow": on_ticket_window,
        "StepRecorded": on_step_recorded,
        "TicketAborted": on_ticket_aborted,
    }),
    IndexedContract("WarehouseReceipt", "warehouse_receipt_address", {
        "Transfer": on_receipt_transfer,
        "Issued": on_receipt_issued,
        "CoilReceipted": on_coil_receipted,
        "PledgeRecorded": on_pledge_recorded,
        "PledgeReleased": on_pledge_ended,
        "PledgeEnforced": on_pledge_ended,
        "SplitInto": on_split_into,
        "Delivered": on_delivered,
    }),
)
"""Every contract the indexer follows; a new contract is one more entry."""
