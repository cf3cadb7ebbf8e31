"""SQLModel tables of the workflows: persons (named people under an enterprise) and ticket documents.

The chain is the source of truth for ticket state and receivables; the database keeps what the
chain does not: people's names and encrypted keys, and the off-chain ticket documents whose
digests are on chain.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Column, DateTime, Text
from sqlmodel import Field, SQLModel

from api.models import utcnow


class Person(SQLModel, table=True):
    """A person registered under an enterprise (``EnterpriseRegistry.registerPerson``).

    ``roles`` are GB 26860 role names (``ticket_issuer``, ``permitting_officer``,
    ``person_in_charge``, ``crew_member``). ``keystore`` is the eth-account V3 keystore of the
    person's key when the API holds it; None when the person signs on a device (EIP-712).
    """

    __tablename__ = "persons"

    id: int | None = Field(default=None, primary_key=True)
    enterprise_id: int = Field(foreign_key="enterprises.id", index=True)
    name: str = Field(max_length=200)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    qualification: str = Field(default="", max_length=500)
    address: str = Field(max_length=42, unique=True, index=True)
    keystore: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class TicketDocumentRow(SQLModel, table=True):
    """The off-chain document of an on-chain work ticket (canonical JSON whose SHA-256 is on chain)."""

    __tablename__ = "work_ticket_documents"

    ticket_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    equipment: str = Field(max_length=300, index=True)
    document: str = Field(sa_column=Column(Text, nullable=False))
    digest: str = Field(max_length=66)
    enterprise_id: int = Field(foreign_key="enterprises.id", index=True)
    tx_hash: str = Field(max_length=66)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class ReceiptDelivery(SQLModel, table=True):
    """The EPCIS ``shipping`` event owed for the delivery of a warehouse receipt, written (and committed)
    *before* the ``deliver`` transaction is sent, so a crash between the transaction and the capture can
    always be finished later: ``status`` ``pending`` (transaction sent or about to be) → ``captured``
    (the event stored, ``event_id`` its hash ID, in the same database transaction). ``document`` is the
    EPCIS document to capture (fixed event time, so a retry captures the same event);
    ``warehouse_enterprise_id`` signs it. One row per receipt: a receipt is delivered once."""

    __tablename__ = "warehouse_receipt_deliveries"

    receipt_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False, nullable=False))
    warehouse_enterprise_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    document: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="pending", max_length=16)
    event_id: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
