"""Typed views of the workflow contracts: dataclasses instead of positional ABI tuples, roles by name.

web3.py returns a Solidity struct as a positional tuple (``ticket[8]`` is the status). Here every
struct is decoded **by the component names of the compiled ABI** (``contracts/build/*.json``), so a
reordered or extended struct changes nothing for the callers, and a renamed or removed component
fails loudly (``KeyError`` naming it) instead of silently reading the wrong field.

* :class:`EnterpriseRole` / :class:`PersonRole` -- the role bit flags of ``EnterpriseRegistry``.
* :class:`TicketRecord`, :class:`StepRecord` -- ``WorkTicket.getTicket`` / ``getSteps``.
* :class:`TokenRecord`, :class:`PayableRecord`, :class:`DiscountRecord`, :class:`SettlementRecord`,
  :class:`OfferRecord` -- ``ReceivableToken.getToken`` / ``getPayable`` / ``getDiscount`` /
  ``getSettlement`` / ``getOffer``.
* :class:`ReceiptRecord`, :class:`ReceiptCoil`, :class:`PledgeRecord`, :class:`ReceiptEntry` --
  ``WarehouseReceipt.getReceipt`` / ``getCoils`` / ``getPledge`` / ``getHistory``.
* :class:`PriceRecord`, :class:`PriceInForce` -- ``PriceIndex.priceOn`` / ``priceAt``.
* :class:`WorkTicketReader`, :class:`ReceivableReader`, :class:`WarehouseReceiptReader`,
  :class:`RegistryReader`, :class:`PriceIndexReader` -- the reads the routes make, with transport retries; a
  revert (unknown id) becomes HTTP 404 (see :func:`api.workflows.contract_calls.call_view`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntFlag
from typing import Any, TypeVar

from eth_utils import to_checksum_address

from api.workflows.contract_calls import call_view
from provenance.work_tickets import ACTIONS, STATUSES

T = TypeVar("T")

ZERO_ADDRESS = "0x" + "00" * 20


class EnterpriseRole(IntFlag):
    """Enterprise role flags of ``EnterpriseRegistry`` (``hasRole(account, role)``)."""

    MANUFACTURER = 1
    SUPPLIER = 2
    CORE_ENTERPRISE = 4
    BANK = 8
    AUDITOR = 16
    REGULATOR = 32
    WAREHOUSE = 64
    PRICE_PUBLISHER = 128


class PersonRole(IntFlag):
    """GB 26860 person role flags of ``EnterpriseRegistry`` (``hasPersonRole(person, role)``)."""

    TICKET_ISSUER = 1
    PERMITTING_OFFICER = 2
    PERSON_IN_CHARGE = 4
    CREW_MEMBER = 8


def _outputs(contract: Any, fn_name: str) -> list[dict[str, Any]]:
    for item in contract.abi:
        if item.get("type") == "function" and item.get("name") == fn_name:
            return list(item["outputs"])
    raise KeyError(f"function {fn_name!r} not in the ABI of {contract.address}")


def _components(contract: Any, fn_name: str) -> list[str]:
    """Component names of the (single, tuple or tuple[]) output of ``fn_name``, else of its outputs."""
    outs = _outputs(contract, fn_name)
    if len(outs) == 1 and outs[0]["type"].startswith("tuple"):
        return [c["name"] for c in outs[0]["components"]]
    return [o["name"] for o in outs]


def component_names(contract: Any, fn_name: str) -> list[str]:
    """ABI component names of ``fn_name``'s (struct) output, for :func:`decode_struct`; KeyError when unknown."""
    return _components(contract, fn_name)


def _address(value: Any) -> str:
    return to_checksum_address(value)


def decode_struct(cls: type[T], names: list[str], values: Any, rename: dict[str, str] | None = None) -> T:
    """``cls(**{field: value})`` from an ABI tuple, matching ABI component names to dataclass fields.

    ``rename`` maps ABI names to field names. Raises ``KeyError`` naming a dataclass field the ABI
    does not provide. Addresses are checksummed, ``bytes32`` become ``bytes``, lists tuples.
    """
    rename = rename or {}
    by_name = {rename.get(n, n): v for n, v in zip(names, values, strict=True)}
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name not in by_name:
            raise KeyError(f"ABI of {cls.__name__} lacks component {f.name!r} (has {sorted(by_name)})")
        v = by_name[f.name]
        if isinstance(v, str) and v.startswith("0x") and len(v) == 42:
            v = _address(v)
        elif isinstance(v, bytes | bytearray):
            v = bytes(v)
        elif isinstance(v, list):
            v = tuple(_address(x) if isinstance(x, str) and len(x) == 42 else x for x in v)
        kwargs[f.name] = v
    return cls(**kwargs)


# --------------------------------------------------------------------------- WorkTicket


@dataclass(frozen=True)
class TicketRecord:
    """``WorkTicket.Ticket``: equipment identifier, 32-byte document digest, the named persons,
    planned window (unix seconds), status, acknowledgement count, extension flag."""

    equipment: str
    digest: bytes
    issuer: str
    permitter: str
    leader: str
    crew: tuple[str, ...]
    plannedStart: int  # noqa: N815 - ABI component name
    plannedEnd: int  # noqa: N815
    status: int
    acknowledged: int
    extended: bool

    @property
    def status_name(self) -> str:
        """``issued`` / ``permitted`` / … (``provenance.work_tickets.STATUSES``)."""
        return STATUSES[self.status] if self.status < len(STATUSES) else f"status-{self.status}"


@dataclass(frozen=True)
class StepRecord:
    """``WorkTicket.Step``: action index, the named person (actor), the transaction sender
    (submitter; differs when relayed), unix seconds, block number, new planned end (extend only)."""

    action: int
    actor: str
    submitter: str
    timestamp: int
    blockNumber: int  # noqa: N815
    plannedEnd: int  # noqa: N815

    @property
    def action_name(self) -> str:
        """``issue`` / ``permit`` / … (``provenance.work_tickets.ACTIONS``)."""
        return ACTIONS[self.action] if self.action < len(ACTIONS) else f"action-{self.action}"

    @property
    def relayed(self) -> bool:
        """True when someone other than the actor sent the transaction (EIP-712 signature relayed)."""
        return self.submitter.lower() != self.actor.lower()


class WorkTicketReader:
    """Reads of a bound web3 ``WorkTicket`` contract as typed records."""

    def __init__(self, contract: Any) -> None:
        self.contract = contract
        self._ticket_names = _components(contract, "getTicket")
        self._step_names = _components(contract, "getSteps")

    def ticket(self, ticket_id: int) -> TicketRecord:
        """``getTicket(ticketId)``; HTTP 404 when unknown."""
        raw = call_view(lambda: self.contract.functions.getTicket(ticket_id).call(), f"work ticket {ticket_id}")
        return decode_struct(TicketRecord, self._ticket_names, raw)

    def steps(self, ticket_id: int) -> list[StepRecord]:
        """``getSteps(ticketId)`` in order (the issue step first); HTTP 404 when unknown."""
        raw = call_view(lambda: self.contract.functions.getSteps(ticket_id).call(), f"work ticket {ticket_id}")
        return [decode_struct(StepRecord, self._step_names, s) for s in raw]


# --------------------------------------------------------------------------- ReceivableToken


@dataclass(frozen=True)
class TokenRecord:
    """``ReceivableToken.Token``: slot (issuer|currency|maturity), balance and value at creation in
    the smallest currency unit, holder, parent / root (confirmed payable) token ids, creation time
    and block, financed / redeemed flags."""

    slot: int
    balance: int
    owner: str
    parent: int
    root: int
    originalValue: int  # noqa: N815
    createdAt: int  # noqa: N815
    createdBlock: int  # noqa: N815
    financed: bool
    redeemed: bool


@dataclass(frozen=True)
class PayableRecord:
    """``ReceivableToken.Payable``: the confirmed payable behind a root token."""

    invoiceDigest: bytes  # noqa: N815
    issuer: str
    beneficiary: str
    faceValue: int  # noqa: N815
    settledValue: int  # noqa: N815
    issuedAt: int  # noqa: N815


@dataclass(frozen=True)
class DiscountRecord:
    """``ReceivableToken.Discount`` of a financed token (``bank`` is the zero address when none)."""

    bank: str
    holder: str
    fromTokenId: int  # noqa: N815
    value: int
    rateBps: int  # noqa: N815
    price: int
    paymentReference: str  # noqa: N815
    timestamp: int

    @property
    def exists(self) -> bool:
        """False for the all-zero record of a token that was not discounted."""
        return self.bank != ZERO_ADDRESS


SETTLEMENT_STATUSES: tuple[str, ...] = ("none", "marked", "confirmed", "finalized")


@dataclass(frozen=True)
class SettlementRecord:
    """``ReceivableToken.Settlement`` of a token (``holder`` is the zero address when none): value and
    payment reference the issuer marked, when (``markedAt``), when redeemed (``timestamp``, 0 while
    only marked) and ``status`` (index into :data:`SETTLEMENT_STATUSES`)."""

    holder: str
    value: int
    paymentReference: str  # noqa: N815
    timestamp: int
    markedAt: int  # noqa: N815
    status: int

    @property
    def status_name(self) -> str:
        """``none`` / ``marked`` / ``confirmed`` / ``finalized``."""
        return SETTLEMENT_STATUSES[self.status] if self.status < len(SETTLEMENT_STATUSES) else str(self.status)

    @property
    def exists(self) -> bool:
        """False for the all-zero record of a token never settled."""
        return self.holder != ZERO_ADDRESS


@dataclass(frozen=True)
class OfferRecord:
    """``ReceivableToken.Offer``: a holder's financing offer to one bank as stored (value in the
    smallest currency unit, highest annual rate in basis points, expiry in unix seconds, epoch of the
    token's ownership). ``allowance(tokenId, bank)`` says whether it is still live."""

    holder: str
    value: int
    maxRateBps: int  # noqa: N815
    expiry: int
    epoch: int


class ReceivableReader:
    """Reads of a bound web3 ``ReceivableToken`` contract as typed records (HTTP 404 on a revert)."""

    def __init__(self, contract: Any) -> None:
        self.contract = contract
        self.address = contract.address
        self.functions = contract.functions
        self.events = contract.events
        self.get_function_by_signature = contract.get_function_by_signature

    def _struct(self, cls: type[T], fn_name: str, *args: Any) -> T:
        raw = call_view(lambda: getattr(self.contract.functions, fn_name)(*args).call(), fn_name)
        return decode_struct(cls, _components(self.contract, fn_name), raw)

    def token(self, token_id: int) -> TokenRecord:
        """``getToken(tokenId)``."""
        return self._struct(TokenRecord, "getToken", token_id)

    def payable(self, root_token_id: int) -> PayableRecord:
        """``getPayable(rootTokenId)``."""
        return self._struct(PayableRecord, "getPayable", root_token_id)

    def discount(self, token_id: int) -> DiscountRecord:
        """``getDiscount(tokenId)`` (all-zero record when not discounted)."""
        return self._struct(DiscountRecord, "getDiscount", token_id)

    def settlement(self, token_id: int) -> SettlementRecord:
        """``getSettlement(tokenId)`` (all-zero record when not settled)."""
        return self._struct(SettlementRecord, "getSettlement", token_id)

    def offer(self, token_id: int, bank: str) -> OfferRecord:
        """``getOffer(tokenId, bank)``."""
        return self._struct(OfferRecord, "getOffer", token_id, to_checksum_address(bank))

    def chain_of(self, token_id: int) -> list[int]:
        """``chainOf(tokenId)``: the token, its parent, … up to the confirmed payable."""
        return [int(i) for i in call_view(lambda: self.contract.functions.chainOf(token_id).call(), "chainOf")]

    def ids(self, fn_name: str, *args: Any) -> list[int]:
        """A ``uint256[]`` view (``tokensOf``, ``tokensOfPayable``) as ints."""
        return [int(i) for i in call_view(lambda: getattr(self.contract.functions, fn_name)(*args).call(), fn_name)]


# --------------------------------------------------------------------------- WarehouseReceipt

#: ``WarehouseReceipt.Status`` by index
RECEIPT_STATUSES: tuple[str, ...] = ("none", "live", "pledged", "delivered", "split")
#: ``WarehouseReceipt.Action`` by index
RECEIPT_ACTIONS: tuple[str, ...] = ("issue", "pledge", "release", "enforce", "transfer", "split", "deliver")


@dataclass(frozen=True)
class ReceiptRecord:
    """``WarehouseReceipt.Receipt``: the GB/T 30332 elements of a receipt -- depositor, warehouse (issuer),
    current holder (``owner``), storage location (an EPCIS bizLocation ID), grade, insurance reference,
    issue time and end of the storage period (unix seconds), total net weight (kg), the receipt it was
    split from (0 for none) and ``status`` (index into :data:`RECEIPT_STATUSES`)."""

    depositor: str
    warehouse: str
    owner: str
    location: str
    grade: str
    insuranceReference: str  # noqa: N815 - ABI component name
    issuedAt: int  # noqa: N815
    storageUntil: int  # noqa: N815
    netWeightKg: int  # noqa: N815
    parent: int
    status: int

    @property
    def status_name(self) -> str:
        """``live`` / ``pledged`` / ``delivered`` / ``split``."""
        return RECEIPT_STATUSES[self.status] if self.status < len(RECEIPT_STATUSES) else f"status-{self.status}"

    @property
    def live(self) -> bool:
        """True while the receipt stands for goods in the warehouse (``live`` or ``pledged``)."""
        return self.status_name in ("live", "pledged")


@dataclass(frozen=True)
class ReceiptCoil:
    """``WarehouseReceipt.Coil``: identifier ``88.x.y/suffix``, dimensions as stated, net weight in kg."""

    identifier: str
    dimensions: str
    netWeightKg: int  # noqa: N815


@dataclass(frozen=True)
class PledgeRecord:
    """``WarehouseReceipt.Pledge``: the live lien (``bank`` is the zero address when not pledged); loan in
    the smallest currency unit, ISO 4217 currency (3 bytes), maturity and pledge time in unix seconds."""

    bank: str
    loanAmount: int  # noqa: N815
    currency: bytes
    maturity: int
    pledgedAt: int  # noqa: N815

    @property
    def exists(self) -> bool:
        return self.bank != ZERO_ADDRESS

    @property
    def currency_code(self) -> str:
        return self.currency.decode("ascii", errors="replace")


@dataclass(frozen=True)
class ReceiptEntry:
    """``WarehouseReceipt.Entry``: one state change -- action index, sender (``actor``), the other party,
    an amount (loan, weight or first split receipt), a related receipt, unix seconds, block number."""

    action: int
    actor: str
    counterparty: str
    amount: int
    relatedReceipt: int  # noqa: N815
    timestamp: int
    blockNumber: int  # noqa: N815

    @property
    def action_name(self) -> str:
        return RECEIPT_ACTIONS[self.action] if self.action < len(RECEIPT_ACTIONS) else f"action-{self.action}"


class WarehouseReceiptReader:
    """Reads of a bound web3 ``WarehouseReceipt`` contract as typed records (HTTP 404 on a revert)."""

    def __init__(self, contract: Any) -> None:
        self.contract = contract
        self.address = contract.address
        self.functions = contract.functions
        self.events = contract.events

    def _struct(self, cls: type[T], fn_name: str, *args: Any) -> T:
        raw = call_view(lambda: getattr(self.contract.functions, fn_name)(*args).call(), fn_name)
        return decode_struct(cls, _components(self.contract, fn_name), raw)

    def _structs(self, cls: type[T], fn_name: str, *args: Any) -> list[T]:
        raw = call_view(lambda: getattr(self.contract.functions, fn_name)(*args).call(), fn_name)
        names = _components(self.contract, fn_name)
        return [decode_struct(cls, names, item) for item in raw]

    def receipt(self, receipt_id: int) -> ReceiptRecord:
        """``getReceipt(receiptId)``; 404 when unknown."""
        return self._struct(ReceiptRecord, "getReceipt", receipt_id)

    def coils(self, receipt_id: int) -> list[ReceiptCoil]:
        """``getCoils(receiptId)`` in receipt order."""
        return self._structs(ReceiptCoil, "getCoils", receipt_id)

    def pledge(self, receipt_id: int) -> PledgeRecord:
        """``getPledge(receiptId)`` (all-zero record when not pledged)."""
        return self._struct(PledgeRecord, "getPledge", receipt_id)

    def history(self, receipt_id: int) -> list[ReceiptEntry]:
        """``getHistory(receiptId)``, oldest first."""
        return self._structs(ReceiptEntry, "getHistory", receipt_id)

    def receipt_of_coil(self, identifier: str) -> int:
        """``receiptOfIdentifier(identifier)``: the live receipt holding the coil (0 when none)."""
        return int(call_view(lambda: self.contract.functions.receiptOfIdentifier(identifier).call(),
                             "receiptOfIdentifier"))


class RegistryReader:
    """Role checks on a bound web3 ``EnterpriseRegistry`` by role name."""

    def __init__(self, contract: Any) -> None:
        self.contract = contract

    def has_role(self, account: str, role: EnterpriseRole) -> bool:
        """``hasRole(account, role)``: active enterprise holding every flag of ``role``."""
        acct = to_checksum_address(account)
        return bool(call_view(lambda: self.contract.functions.hasRole(acct, int(role)).call(), "hasRole"))

    def has_person_role(self, person: str, role: PersonRole) -> bool:
        """``hasPersonRole(person, role)``: active person of an active enterprise holding ``role``."""
        acct = to_checksum_address(person)
        return bool(call_view(lambda: self.contract.functions.hasPersonRole(acct, int(role)).call(), "hasPersonRole"))


# --------------------------------------------------------------------------- PriceIndex


@dataclass(frozen=True)
class PriceRecord:
    """``PriceIndex.Price`` of one (grade, currency, day): the price per tonne in minor currency units
    (``price``; 0 = nothing published that day), the first published one (``originalPrice``, differs
    after a correction), the publisher and the blocks holding its ``PricePublished`` / ``PriceCorrected``
    events (``correctedBlock`` 0 unless corrected)."""

    price: int
    originalPrice: int  # noqa: N815 - ABI component name
    publisher: str
    publishedBlock: int  # noqa: N815
    correctedBlock: int  # noqa: N815

    @property
    def exists(self) -> bool:
        """True when a price was published for that day."""
        return self.price != 0

    @property
    def corrected(self) -> bool:
        """True when its publisher corrected it (once, ``PriceCorrected``)."""
        return self.correctedBlock != 0


@dataclass(frozen=True)
class PriceInForce:
    """``PriceIndex.priceAt``: the latest price on or before a day, the day it was published for and its
    publisher (price 0, day 0 and the zero address when there is none)."""

    price: int
    publishedDay: int  # noqa: N815 - ABI output name
    publisher: str

    @property
    def exists(self) -> bool:
        """True when a price was published on or before the day asked."""
        return self.price != 0


class PriceIndexReader:
    """Reads of a bound web3 ``PriceIndex`` contract as typed records (grades as 32-byte keys,
    currencies as ISO 4217 codes, days as Unix days)."""

    def __init__(self, contract: Any) -> None:
        self.contract = contract
        self.address = contract.address
        self.functions = contract.functions
        self.events = contract.events

    def current_day(self) -> int:
        """``currentDay()``: the chain's Unix day (UTC) by the latest block's timestamp."""
        return int(call_view(lambda: self.contract.functions.currentDay().call(), "currentDay"))

    def price_on(self, grade: bytes, currency: str, day: int) -> PriceRecord:
        """``priceOn(grade, currency, day)``: exactly that day's record (all zero when none)."""
        raw = call_view(lambda: self.contract.functions.priceOn(grade, currency.encode("ascii"), day).call(),
                        "priceOn")
        return decode_struct(PriceRecord, _components(self.contract, "priceOn"), raw)

    def price_at(self, grade: bytes, currency: str, day: int) -> PriceInForce:
        """``priceAt(grade, currency, day)``: the latest price on or before ``day``."""
        raw = call_view(lambda: self.contract.functions.priceAt(grade, currency.encode("ascii"), day).call(),
                        "priceAt")
        return decode_struct(PriceInForce, _components(self.contract, "priceAt"), raw)

    def published_days(self, grade: bytes, currency: str, from_day: int, to_day: int) -> list[int]:
        """``publishedDays(grade, currency, fromDay, toDay)``: the series' days in that range, ascending."""
        return [int(d) for d in call_view(
            lambda: self.contract.functions.publishedDays(grade, currency.encode("ascii"), from_day, to_day).call(),
            "publishedDays")]

    def prices_between(self, grade: bytes, currency: str, from_day: int, to_day: int) -> list[tuple[int, PriceRecord]]:
        """``pricesBetween(grade, currency, fromDay, toDay)``: each published day in that range with its record,
        ascending, in one call."""
        on, records = call_view(
            lambda: self.contract.functions.pricesBetween(grade, currency.encode("ascii"), from_day, to_day).call(),
            "pricesBetween")
        names = _components(self.contract, "priceOn")
        return [(int(d), decode_struct(PriceRecord, names, r)) for d, r in zip(on, records, strict=True)]

    def currencies_of(self, grade: bytes) -> list[str]:
        """``currenciesOf(grade)``: ISO 4217 codes the grade has a series in, in order of first publication."""
        raw = call_view(lambda: self.contract.functions.currenciesOf(grade).call(), "currenciesOf")
        return [bytes(c).decode("ascii") for c in raw]

    def valuation_prices(self, grade: bytes, currency: str, from_day: int, to_day: int) -> list[tuple[int, int]]:
        """The ``(day, price_per_tonne_minor)`` pairs :func:`api.valuation.valuation_timeline` needs for
        ``from_day..to_day``: the price in force the day before ``from_day`` (so values and crossings at
        ``from_day`` are the series' own, not the window's) and every price published within the window."""
        pairs: list[tuple[int, int]] = []
        if from_day > 0:
            carried = self.price_at(grade, currency, from_day - 1)
            if carried.exists:
                pairs.append((carried.publishedDay, carried.price))
        pairs.extend((day, record.price) for day, record in self.prices_between(grade, currency, from_day, to_day))
        return pairs
