"""Chain-event index: cursor, indexed logs, receivable and work-ticket facts (api/chain_index).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

New tables only; the indexer fills them from the chain (from ``TRACELEDGER_CHAIN_INDEX_START_BLOCK``) on its
first run, so a downgrade loses nothing the chain does not hold.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.schema import CreateIndex, CreateTable

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_METADATA = sa.MetaData()


def _big(name: str, *, primary_key: bool = False, index: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.BigInteger(), primary_key=primary_key, autoincrement=False, nullable=False,
                     index=index)


def _str(name: str, length: int, *, index: bool = False, primary_key: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.String(length=length), nullable=False, index=index, primary_key=primary_key)


TABLES = (
    sa.Table("chain_index_cursor", _METADATA, _str("name", 40, primary_key=True), _big("block_number"),
             _str("block_hash", 66)),
    sa.Table("chain_index_events", _METADATA, _big("block_number", primary_key=True),
             sa.Column("log_index", sa.Integer(), primary_key=True, autoincrement=False, nullable=False),
             _str("block_hash", 66), _str("tx_hash", 66), _str("contract", 40), _str("event", 40),
             sa.Column("subject_id", sa.BigInteger(), nullable=True, index=True), _big("timestamp"),
             sa.Column("args", sa.Text(), nullable=False)),
    sa.Table("receivable_index_tokens", _METADATA, _big("token_id", primary_key=True), _str("slot", 80),
             _str("balance", 80), _str("owner", 42, index=True), _big("parent"), _big("root", index=True),
             sa.Column("depth", sa.Integer(), nullable=False), _str("original_value", 80), _big("created_at"),
             _big("created_block"), _str("created_block_hash", 66),
             sa.Column("financed", sa.Boolean(), nullable=False), sa.Column("redeemed", sa.Boolean(), nullable=False),
             sa.Column("epoch", sa.Integer(), nullable=False)),
    sa.Table("receivable_index_payables", _METADATA, _big("root_token_id", primary_key=True),
             _str("invoice_digest", 66, index=True), _str("issuer", 42), _str("beneficiary", 42),
             _str("face_value", 80), _str("settled_value", 80), _big("issued_at")),
    sa.Table("receivable_index_discounts", _METADATA, _big("token_id", primary_key=True), _str("bank", 42),
             _str("holder", 42), _big("from_token_id"), _str("value", 80),
             sa.Column("rate_bps", sa.Integer(), nullable=False), _str("price", 80),
             sa.Column("payment_reference", sa.Text(), nullable=False), _big("timestamp")),
    sa.Table("receivable_index_settlements", _METADATA, _big("token_id", primary_key=True), _str("holder", 42),
             _str("value", 80), sa.Column("payment_reference", sa.Text(), nullable=False), _str("status", 16),
             _big("marked_at"), _big("timestamp")),
    sa.Table("receivable_index_offers", _METADATA, _big("token_id", primary_key=True),
             _str("bank", 42, primary_key=True), _str("holder", 42), _str("value", 80),
             sa.Column("max_rate_bps", sa.Integer(), nullable=False), _big("expiry"),
             sa.Column("epoch", sa.Integer(), nullable=False)),
    sa.Table("work_ticket_index_tickets", _METADATA, _big("ticket_id", primary_key=True),
             sa.Column("equipment", sa.Text(), nullable=False), _str("equipment_hash", 66, index=True),
             _str("digest", 66), _str("issuer", 42), _big("planned_start"), _big("planned_end"),
             sa.Column("extended", sa.Boolean(), nullable=False), sa.Column("abort_reason", sa.Text(), nullable=True)),
    sa.Table("work_ticket_index_steps", _METADATA, _big("block_number", primary_key=True),
             sa.Column("log_index", sa.Integer(), primary_key=True, autoincrement=False, nullable=False),
             _big("ticket_id", index=True), sa.Column("action", sa.Integer(), nullable=False), _str("actor", 42),
             _str("submitter", 42), _big("timestamp"), _big("planned_end")),
)


def upgrade() -> None:
    """Create the index tables (and their indexes) unless present."""
    for table in TABLES:
        if context.is_offline_mode():
            op.execute(CreateTable(table))
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                op.execute(CreateIndex(index))
        else:
            table.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    """Drop the index tables (the indexer rebuilds them from the chain)."""
    for table in reversed(TABLES):
        op.drop_table(table.name)
