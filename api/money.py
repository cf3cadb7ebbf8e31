"""Money in request bodies: an amount in the currency's minor unit, and the amount with its ISO 4217 currency.

Used by the receivables (``POST /v1/receivables`` and its split / approve / discount) and the warehouse
receipts' pledge (``POST /v1/warehouse-receipts/{id}/pledge``). A body gives the amount one of two ways:

* ``value``: an integer count of the minor unit (fen / cents), bounded by :data:`api.bounds.Fen`
  (1 .. 2**256 − 1, the contracts' ``uint256``), checked by pydantic before the handler runs;
* ``amount``: a decimal string (``"150000.00"``), read by :func:`provenance.receivables.parse_amount`
  (ASCII digits, at most ``valueDecimals()`` = 2 decimals, positive).

Giving both or neither, or an ``amount`` that does not parse, is a **422** naming the field
(``value`` / ``amount``), raised by :meth:`MinorUnitAmount.fen` before any transaction is sent.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from api.bounds import Fen
from api.errors import UnprocessableError, issue
from provenance.receivables import parse_amount

#: ISO 4217 alphabetic currency code (three capital ASCII letters), e.g. ``CNY``.
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 alphabetic code, e.g. CNY")]


class MinorUnitAmount(BaseModel):
    """An amount given as ``value`` (minor unit) or ``amount`` (decimal string): exactly one of the two."""

    value: Fen | None = Field(None, description="amount in the currency's minor unit (fen/cents)")
    amount: str | None = Field(None, description='decimal amount, e.g. "150000.00"')

    def fen(self) -> int:
        """The amount in the minor unit (fen/cents), 1 .. 2**256 − 1.

        Raises :class:`api.errors.UnprocessableError` (422): ``value``/``required`` when both or neither
        are given, ``amount``/``format`` when ``amount`` is not a positive decimal with at most 2 decimals.
        """
        if (self.value is None) == (self.amount is None):
            raise UnprocessableError([issue("value", "required", "give exactly one of value (minor unit) or amount")])
        if self.value is not None:
            return self.value
        try:
            return parse_amount(self.amount or "")
        except ValueError as exc:
            raise UnprocessableError([issue("amount", "format", str(exc))]) from exc


class Money(MinorUnitAmount):
    """A :class:`MinorUnitAmount` with its currency (ISO 4217, default ``CNY``)."""

    currency: CurrencyCode = "CNY"
