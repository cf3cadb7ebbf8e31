"""Warehouse receipts: chain-index fact tables and the pending shipping events of deliveries.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

* ``warehouse_receipt_index_receipts`` / ``warehouse_receipt_index_coils``: ``WarehouseReceipt`` state as its
  events left it (``api/chain_index``); the indexer fills them from its start block, so a downgrade loses
  nothing the chain does not hold. An index already past some receipts' blocks would never see their
  events (and would halt at their next one), so the upgrade empties the existing index tables: the
  indexer rebuilds everything from ``TRACELEDGER_CHAIN_INDEX_START_BLOCK`` (checks answer from the chain
  meanwhile).
* ``warehouse_receipt_deliveries``: the EPCIS shipping event owed for each delivery, committed before the
  ``deliver`` transaction (``api/routes/warehouse_receipts.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.schema import CreateIndex, CreateTable

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_METADATA = sa.MetaData()


def _big(name: str, *, primary_key: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.BigInteger(), primary_key=primary_key, autoincrement=False, nullable=False)


TABLES = (
    sa.Table("warehouse_receipt_index_receipts", _METADATA, _big("receipt_id", primary_key=True),
             sa.Column("owner", sa.String(length=42), nullable=False, index=True),
             sa.Column("depositor", sa.String(length=42), nullable=False),
             sa.Column("warehouse", sa.String(length=42), nullable=False),
             sa.Column("grade", sa.Text(), nullable=False), _big("net_weight_kg"), _big("parent"),
             sa.Column("status", sa.String(length=16), nullable=False),
             sa.Column("bank", sa.String(length=42), nullable=True),
             sa.Column("currency", sa.String(length=3), nullable=True), _big("issued_at"), _big("issued_block")),
    sa.Table("warehouse_receipt_index_coils", _METADATA, _big("receipt_id", primary_key=True),
             sa.Column("position", sa.Integer(), primary_key=True, autoincrement=False, nullable=False),
             sa.Column("coil_key", sa.String(length=66), nullable=False, index=True),
             sa.Column("identifier", sa.Text(), nullable=False)),
    sa.Table("warehouse_receipt_deliveries", _METADATA, _big("receipt_id", primary_key=True),
             sa.Column("warehouse_enterprise_id", sa.BigInteger(), nullable=False),
             sa.Column("document", sa.Text(), nullable=False),
             sa.Column("status", sa.String(length=16), nullable=False),
             sa.Column("event_id", sa.Text(), nullable=True),
             sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)),
)


#: tables of revision 0004, emptied so the indexer starts again from its start block with receipts included
REINDEXED = ("chain_index_cursor", "chain_index_events", "receivable_index_tokens", "receivable_index_payables",
             "receivable_index_discounts", "receivable_index_settlements", "receivable_index_offers",
             "work_ticket_index_tickets", "work_ticket_index_steps")


def upgrade() -> None:
    """Create the three tables (and their indexes) unless present; empty the older index tables."""
    for name in REINDEXED:
        op.execute(sa.text(f"DELETE FROM {name}"))
    for table in TABLES:
        if context.is_offline_mode():
            op.execute(CreateTable(table))
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                op.execute(CreateIndex(index))
        else:
            table.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    """Drop them (the indexer rebuilds the index tables from the chain; pending deliveries are lost)."""
    for table in reversed(TABLES):
        op.drop_table(table.name)
