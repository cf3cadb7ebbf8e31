"""Bounded number types for path parameters and body fields, checked before any work is done.

An out-of-range number is a **422** naming the field (``{field, rule, message}``), never a 500 from the
database (SQLite/PostgreSQL ``BIGINT`` is signed 64-bit) or from web3.py's ABI encoder (``uint256``),
and it is refused before any transaction is sent, so a refusal leaves nothing on chain.

================ ===================================== ==========================================
type             range                                 why
================ ===================================== ==========================================
``DbId``         1 .. 2**63 − 1                        database primary keys (signed BIGINT)
``TokenIdPath``  1 .. 2**256 − 1                       ERC-3525 token ids (``uint256``)
``Fen``          1 .. 2**256 − 1                       a value in fen/cents (``uint256``)
``Maturity``     1 .. 253,402,300,799                  unix seconds up to 9999-12-31T23:59:59Z,
                                                       the last instant ISO 8601 / RFC 3339 can write
``UnixSeconds``  0 .. 253,402,300,799                  deadlines of device signatures
================ ===================================== ==========================================

Amount strings (``"150000.00"``) are checked by :func:`provenance.receivables.parse_amount`: ASCII
digits only (no Arabic-Indic or fullwidth digits), at most ``valueDecimals()`` = 2 decimals.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, Field, PlainSerializer

MAX_DB_ID = 2**63 - 1
MAX_UINT256 = 2**256 - 1
#: 9999-12-31T23:59:59Z in unix seconds: the last instant an ISO 8601 / RFC 3339 date-time can write.
MAX_UNIX_SECONDS = 253_402_300_799

DbId = Annotated[int, Field(ge=1, le=MAX_DB_ID, description="database id (1 .. 2**63-1)")]
Fen = Annotated[int, Field(ge=1, le=MAX_UINT256, description="amount in fen/cents (1 .. 2**256-1)")]
Maturity = Annotated[int, Field(ge=1, le=MAX_UNIX_SECONDS,
                                description="unix seconds, 1 .. 253402300799 (9999-12-31T23:59:59Z)")]
UnixSeconds = Annotated[int, Field(ge=0, le=MAX_UNIX_SECONDS, description="unix seconds (0 .. 253402300799)")]



def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: A timestamp answered as ISO 8601 UTC with ``Z`` (SQLite hands back naive datetimes, stored as UTC).
UtcDateTime = Annotated[datetime, AfterValidator(_as_utc), PlainSerializer(
    lambda v: v.isoformat().replace("+00:00", "Z"), return_type=str, when_used="json")]

EnterpriseIdPath = Annotated[int, Path(ge=1, le=MAX_DB_ID, description="enterprise id (1 .. 2**63-1)")]
PersonIdPath = Annotated[int, Path(ge=1, le=MAX_DB_ID, description="person id (1 .. 2**63-1)")]
TicketIdPath = Annotated[int, Path(ge=1, le=MAX_DB_ID, description="on-chain ticket id (1 .. 2**63-1)")]
TokenIdPath = Annotated[int, Path(ge=1, le=MAX_UINT256, description="ERC-3525 token id (1 .. 2**256-1)")]
