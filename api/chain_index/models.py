"""Tables of the chain-event indexer: the cursor, every indexed log once, and the facts derived from them.

Every value a contract holds as ``uint256`` (balances, slots, prices) is stored as its decimal text:
SQLite has no exact 256-bit type. Addresses are EIP-55 checksum strings, hashes ``0x`` + 64 hex.

* ``chain_index_cursor`` -- one row per indexer: the last block indexed (number and hash).
* ``chain_index_events`` -- every decoded log, primary key ``(block_number, log_index)`` (the log's
  position in its block): a block processed twice writes nothing twice.
* ``receivable_index_tokens`` / ``_payables`` / ``_discounts`` / ``_settlements`` / ``_offers`` --
  ``ReceivableToken`` state as its events left it (what ``getToken`` / ``getPayable`` / ... would say
  at the indexed block).
* ``work_ticket_index_tickets`` / ``work_ticket_index_steps`` -- ``WorkTicket`` tickets and steps.
* ``warehouse_receipt_index_receipts`` / ``warehouse_receipt_index_coils`` -- ``WarehouseReceipt`` receipts
  (holder, status, pledgee bank) and their coils.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, Text
from sqlmodel import Field, SQLModel


def _big(primary_key: bool = False, index: bool = False) -> Column:  # type: ignore[type-arg]
    return Column(BigInteger, primary_key=primary_key, autoincrement=False, nullable=False, index=index)


class IndexCursor(SQLModel, table=True):
    """The last block an indexer wrote (its number and hash); the next run starts at ``block_number + 1``."""

    __tablename__ = "chain_index_cursor"

    name: str = Field(primary_key=True, max_length=40)
    block_number: int = Field(sa_column=_big())
    block_hash: str = Field(max_length=66)


class IndexedEvent(SQLModel, table=True):
    """One decoded log of an indexed contract: ``args`` is the event's arguments as JSON text
    (integers as decimal strings, bytes as 0x-hex)."""

    __tablename__ = "chain_index_events"

    block_number: int = Field(sa_column=_big(primary_key=True))
    log_index: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False, nullable=False))
    block_hash: str = Field(max_length=66)
    tx_hash: str = Field(max_length=66)
    contract: str = Field(max_length=40)
    event: str = Field(max_length=40)
    subject_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True, index=True))
    timestamp: int = Field(sa_column=_big())
    args: str = Field(sa_column=Column(Text, nullable=False))


class IndexedToken(SQLModel, table=True):
    """``ReceivableToken.Token`` as the indexed events built it (``epoch`` counts whole-token transfers:
    an offer made at an older epoch has lapsed)."""

    __tablename__ = "receivable_index_tokens"

    token_id: int = Field(sa_column=_big(primary_key=True))
    slot: str = Field(default="0", max_length=80)
    balance: str = Field(default="0", max_length=80)
    owner: str = Field(max_length=42, index=True)
    parent: int = Field(default=0, sa_column=_big())
    root: int = Field(sa_column=_big(index=True))
    depth: int = 0
    original_value: str = Field(default="0", max_length=80)
    created_at: int = Field(sa_column=_big())
    created_block: int = Field(sa_column=_big())
    created_block_hash: str = Field(max_length=66)
    financed: bool = False
    redeemed: bool = False
    epoch: int = 0


class IndexedPayable(SQLModel, table=True):
    """``ReceivableToken.Payable`` of a root token (the confirmed payable)."""

    __tablename__ = "receivable_index_payables"

    root_token_id: int = Field(sa_column=_big(primary_key=True))
    invoice_digest: str = Field(max_length=66, index=True)
    issuer: str = Field(max_length=42)
    beneficiary: str = Field(max_length=42)
    face_value: str = Field(max_length=80)
    settled_value: str = Field(default="0", max_length=80)
    issued_at: int = Field(sa_column=_big())


class IndexedDiscount(SQLModel, table=True):
    """``ReceivableToken.Discount`` of a financed token made by ``discount``."""

    __tablename__ = "receivable_index_discounts"

    token_id: int = Field(sa_column=_big(primary_key=True))
    bank: str = Field(max_length=42)
    holder: str = Field(max_length=42)
    from_token_id: int = Field(sa_column=_big())
    value: str = Field(max_length=80)
    rate_bps: int
    price: str = Field(max_length=80)
    payment_reference: str = Field(sa_column=Column(Text, nullable=False))
    timestamp: int = Field(sa_column=_big())


class IndexedSettlement(SQLModel, table=True):
    """``ReceivableToken.Settlement`` of a token: ``status`` ``marked`` / ``none`` (disputed) / ``redeemed``."""

    __tablename__ = "receivable_index_settlements"

    token_id: int = Field(sa_column=_big(primary_key=True))
    holder: str = Field(max_length=42)
    value: str = Field(max_length=80)
    payment_reference: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=16)
    marked_at: int = Field(sa_column=_big())
    timestamp: int = Field(default=0, sa_column=_big())


class IndexedOffer(SQLModel, table=True):
    """A holder's financing offer on a token to one bank (``FinancingOffered``; ``value`` follows
    ``ApprovalValue`` as ``discount`` consumes it)."""

    __tablename__ = "receivable_index_offers"

    token_id: int = Field(sa_column=_big(primary_key=True))
    bank: str = Field(primary_key=True, max_length=42)
    holder: str = Field(max_length=42)
    value: str = Field(max_length=80)
    max_rate_bps: int
    expiry: int = Field(sa_column=_big())
    epoch: int


class IndexedTicket(SQLModel, table=True):
    """A ``WorkTicket`` ticket: equipment, document digest, issuer, planned window, abort reason."""

    __tablename__ = "work_ticket_index_tickets"

    ticket_id: int = Field(sa_column=_big(primary_key=True))
    equipment: str = Field(sa_column=Column(Text, nullable=False))
    equipment_hash: str = Field(max_length=66, index=True)
    digest: str = Field(max_length=66)
    issuer: str = Field(max_length=42)
    planned_start: int = Field(default=0, sa_column=_big())
    planned_end: int = Field(default=0, sa_column=_big())
    extended: bool = False
    abort_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class IndexedTicketStep(SQLModel, table=True):
    """One ``StepRecorded`` of a ticket, keyed by its log's place: ``action`` indexes
    ``provenance.work_tickets.ACTIONS``; ``planned_end`` is the new end of an ``extend`` (else 0)."""

    __tablename__ = "work_ticket_index_steps"

    block_number: int = Field(sa_column=_big(primary_key=True))
    log_index: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False, nullable=False))
    ticket_id: int = Field(sa_column=_big(index=True))
    action: int
    actor: str = Field(max_length=42)
    submitter: str = Field(max_length=42)
    timestamp: int = Field(sa_column=_big())
    planned_end: int = Field(default=0, sa_column=_big())


class IndexedReceipt(SQLModel, table=True):
    """A ``WarehouseReceipt`` receipt as its events left it: holder, depositor, warehouse, grade, net weight,
    parent (split), ``status`` (``live`` / ``pledged`` / ``split`` / ``delivered``, the contract's names), the
    bank of the live pledge (else None), and the block that issued it."""

    __tablename__ = "warehouse_receipt_index_receipts"

    receipt_id: int = Field(sa_column=_big(primary_key=True))
    owner: str = Field(max_length=42, index=True)
    depositor: str = Field(default="", max_length=42)
    warehouse: str = Field(default="", max_length=42)
    grade: str = Field(default="", sa_column=Column(Text, nullable=False))
    net_weight_kg: int = Field(default=0, sa_column=_big())
    parent: int = Field(default=0, sa_column=_big())
    status: str = Field(default="live", max_length=16)
    bank: str | None = Field(default=None, max_length=42)
    currency: str | None = Field(default=None, max_length=3)
    issued_at: int = Field(sa_column=_big())
    issued_block: int = Field(sa_column=_big())


class IndexedReceiptCoil(SQLModel, table=True):
    """One coil of a receipt (``CoilReceipted``), in receipt order (``position``); ``coil_key`` is the
    contract's key, ``keccak256(lower(identifier))``."""

    __tablename__ = "warehouse_receipt_index_coils"

    receipt_id: int = Field(sa_column=_big(primary_key=True))
    position: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False, nullable=False))
    coil_key: str = Field(max_length=66, index=True)
    identifier: str = Field(sa_column=Column(Text, nullable=False))
