"""Contract refusals in words: every custom error → name, arguments by meaning, a sentence, an HTTP status.

A revert of ``WorkTicket``, ``ReceivableToken``, ``WarehouseReceipt``, ``PriceIndex``, ``EnterpriseRegistry`` or
``AnchorRegistry`` carries ABI-encoded custom-error data (Solidity ≥ 0.8.4: 4-byte selector = first 4 bytes of
``keccak256("Name(type,…)")``, then the ABI-encoded arguments). :func:`explain_data` decodes it with
the committed ABIs and renders it for people:

* arguments by their ABI names, with meaning: ticket statuses and actions by name (``issued``,
  ``end_work``, the names of :mod:`provenance.work_tickets`), role bit sets by role name, unix times as
  ISO 8601 UTC, values in fen also as an amount, ``bytes3`` currencies as text, addresses checksummed;
* a sentence from :data:`REASONS` (e.g. "ticket 7 is `issued`; `end_work` needs `briefed`");
* the HTTP status documented in the README (403 not yours to do, 404 unknown, 409 conflicts with the
  current on-chain state, 422 the request names something invalid).

Callers: :func:`api.workflows.contract_calls.refusal` (via :func:`explain_chain_error`). A custom error missing
from :data:`REASONS` still gets its name and decoded arguments (``tests/api/test_revert_reasons.py``
fails until it gets a sentence).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from api.models import ROLE_BITS
from contracts import CONTRACT_NAMES, load_artifact
from provenance.work_tickets import ACTIONS, PERSON_ROLES, STATUSES

#: status a ticket must have for each step (WorkTicket.sol ``step``); ``extend``: permitted or briefed
NEEDED_STATUS: dict[str, str] = {
    "issue": "none", "permit": "issued", "brief": "permitted", "acknowledge": "briefed", "end_work": "briefed",
    "terminate": "work_ended", "cancel": "issued", "extend": "permitted` or `briefed",
}

#: custom error name → (HTTP status, sentence template over the rendered arguments)
REASONS: dict[str, tuple[int, str]] = {
    # ---------------------------------------------------------------- shared
    "ZeroAddress": (422, "an address argument is the zero address"),
    # ---------------------------------------------------------------- WorkTicket (GB 26860)
    "UnknownTicket": (404, "there is no work ticket {ticketId}"),
    "EmptyEquipment": (422, "the ticket names no equipment"),
    "ZeroDigest": (422, "the ticket's document digest is zero"),
    "InvalidWindow": (422, "the planned window {plannedStart} → {plannedEnd} is empty: planned_end must come after "
                           "planned_start"),
    "InvalidCrewSize": (422, "a ticket names 1 to 32 crew members; this one names {size}"),
    "MissingRole": (403, "person {person} does not hold the person role `{role}` in EnterpriseRegistry"),
    "SamePerson": (422, "{person} is named twice: issuer, permitting officer and person in charge must be three "
                        "different people"),
    "WrongStatus": (409, "ticket {ticketId} is `{status}`; `{action}` needs `{needed}`"),
    "NotNamedPerson": (403, "`{action}` on ticket {ticketId} is for {expected}, the person named on the ticket, "
                            "not {actual}"),
    "NotCrewMember": (403, "{actor} is not in the crew of ticket {ticketId}"),
    "AlreadyAcknowledged": (409, "{actor} already acknowledged ticket {ticketId}"),
    "CrewNotAcknowledged": (409, "{acknowledged} of {crew} crew members acknowledged ticket {ticketId}; `end_work` "
                                 "needs all of them"),
    "ExtensionAlreadyUsed": (409, "ticket {ticketId} was already extended once; it can be extended only once"),
    "InvalidExtension": (422, "the extension of ticket {ticketId} must end after its planned end {plannedEnd}; "
                              "{requested} does not"),
    "InvalidAction": (422, "action {action} is not a ticket step"),
    "SignatureExpired": (422, "the device signature's deadline {deadline} has passed"),
    "InvalidSignature": (422, "the device signature is malformed (65 bytes r ‖ s ‖ v, low s)"),
    "WrongSigner": (403, "the device signature recovers to {recovered}, not to the named person {expected}"),
    # ---------------------------------------------------------------- ReceivableToken (ERC-3525)
    "UnknownToken": (404, "there is no receivable {tokenId}"),
    "NotCoreEnterprise": (403, "{account} is not a core enterprise; only core enterprises confirm payables"),
    "NotBank": (403, "{account} is not the bank this needs: only a `bank` member discounts receivables or takes a "
                     "pledge, and only the pledgee bank releases or enforces it"),
    "NotMember": (422, "{account} is not an active member enterprise"),
    "NotIssuer": (403, "{account} is not the issuer of this receivable; {issuer} is"),
    "NotAuthorized": (403, "{caller} may not do this with receivable {tokenId}: neither its holder nor approved"),
    "ZeroValue": (422, "the amount is zero"),
    "ZeroInvoiceDigest": (422, "the invoice digest is zero"),
    "InvalidCurrency": (422, "currency {currency!r} is not three letters A–Z (ISO 4217 alphabetic code)"),
    "MaturityInPast": (422, "maturity {maturity} is not after the chain's time {nowSeconds}"),
    "InvoiceAlreadyIssued": (409, "invoice {invoiceDigest} is already confirmed as receivable {tokenId}"),
    "InsufficientBalance": (409, "receivable {tokenId} holds {balance}; {value} was asked"),
    "InsufficientAllowance": (403, "{operator} may take {allowance} of receivable {tokenId}; {value} was asked (the "
                                   "holder grants it with POST /v1/receivables/{tokenId}/approve)"),
    "Matured": (409, "receivable {tokenId} matured at {maturity}; it can only be settled now"),
    "NotMatured": (409, "token {tokenId} matures at {maturity}: a receivable is settled, a pledged warehouse "
                        "receipt enforced, only from then on"),
    "Redeemed": (409, "receivable {tokenId} is already redeemed"),
    "AlreadyDiscounted": (409, "receivable {tokenId} is already discounted: financed value cannot be discounted "
                               "again"),
    # (the API's own pre-check when a bank re-discounts the token it already financed from; no contract error)
    "SlotMismatch": (422, "receivables {fromTokenId} and {toTokenId} are in different slots (issuer, currency, "
                          "maturity)"),
    "InvalidRate": (422, "rate {rateBps} bps is above the maximum of 10000 bps (100 %)"),
    "EmptyPaymentReference": (422, "the payment reference is empty"),
    "PaymentReferenceUsed": (409, "payment reference {paymentReference!r} was already used"),
    "NothingToSettle": (409, "receivable {tokenId} has no value left to settle"),
    "SelfApproval": (422, "{owner} cannot approve itself"),
    "NotReceiver": (422, "{to} cannot receive receivables (not an active member enterprise)"),
    "WrongOwner": (422, "receivable {tokenId} belongs to {owner}, not to {from}"),
    # ---------------------------------------------------------------- EnterpriseRegistry
    "NotAdmin": (403, "{caller} is not a governance admin"),
    "NoAdmins": (422, "the registry needs at least one governance admin"),
    "AlreadyAdmin": (409, "{account} is already a governance admin"),
    "UnknownAdmin": (404, "{account} is not a governance admin"),
    "LastAdmin": (409, "{account} is the last governance admin and cannot be removed"),
    "EmptyName": (422, "the enterprise name is empty"),
    "InvalidRoles": (422, "roles {roles} are not a non-empty set of enterprise roles (manufacturer, supplier, "
                          "core_enterprise, bank, auditor, regulator, warehouse, price_publisher)"),
    "InvalidPrefix": (422, "{prefix!r} is not an identifier prefix 88.<industry>.<n> of at most 64 bytes"),
    "PrefixTaken": (409, "prefix {prefix} already belongs to {owner}"),
    "EnterpriseExists": (409, "{account} is already a registered enterprise"),
    "UnknownEnterprise": (404, "{account} is not a registered enterprise"),
    "AccountIsAnchorer": (409, "{account} is an anchoring account of {enterprise}"),
    "AnchorerIsEnterprise": (409, "{anchorer} is an enterprise account and cannot anchor for another"),
    "AnchorerAlreadyAssigned": (409, "anchoring account {anchorer} already belongs to {enterprise}"),
    "NotAnchoringAccount": (404, "{anchorer} is not an anchoring account of {enterprise}"),
    "IndexOutOfRange": (404, "index {index} is out of range ({count} entries)"),
    "NotAdminOrEnterprise": (403, "{caller} is neither a governance admin nor the enterprise {enterprise}"),
    "InvalidPersonRoles": (422, "roles {roles} are not a non-empty set of person roles (ticket_issuer, "
                                "permitting_officer, person_in_charge, crew_member)"),
    "PersonExists": (409, "{person} is already a registered person"),
    "UnknownPerson": (404, "{person} is not a registered person"),
    "NotActiveMember": (403, "{account} is neither an active enterprise nor an active person, so it cannot bind "
                             "an SM2 public key"),
    "InvalidSm2PublicKey": (422, "the SM2 public key must give both coordinates x and y (or neither, to unbind)"),
    "AccountIsPerson": (409, "{account} is a registered person's account"),
    # ---------------------------------------------------------------- AnchorRegistry
    "NotActiveAnchorer": (403, "{account} is not the anchoring account of an active enterprise"),
    "ZeroRoot": (422, "the Merkle root is zero"),
    "EmptyBatch": (422, "the batch is empty (size 0)"),
    "RootAlreadyAnchored": (409, "Merkle root {root} is already anchored"),
    # ---------------------------------------------------------------- EnterpriseRegistry governance (m-of-n)
    "AlreadyApproved": (409, "admin {admin} already approved proposal {id}"),
    "AlreadyExecuted": (409, "proposal {id} was already executed"),
    "DelayNotElapsed": (409, "proposal {id} may be executed from {executableAt}, not yet"),
    "QuorumNotReached": (409, "proposal {id} has {approvals} of the {threshold} admin approvals it needs"),
    "UnknownProposal": (404, "there is no governance proposal {id}"),
    "QuorumRequired": (403, "admin changes need a proposal approved by {threshold} admins and a delay of "
                            "{delaySeconds} s; a single admin cannot make them directly"),
    "InvalidDelay": (422, "a governance delay of {delaySeconds} s is out of range"),
    "InvalidThreshold": (422, "a threshold of {threshold} approvals does not fit {adminCount} admins"),
    "InactiveEnterprise": (403, "enterprise {enterprise} is not an active member"),
    "DeactivatedByAdmin": (403, "person {person} was deactivated by an admin; only admins can reactivate them"),
    "PersonIsRetired": (409, "person {person} is retired"),
    # ---------------------------------------------------------------- WorkTicket time window and exit
    "EmptyReason": (422, "an abort needs a reason"),
    "EquipmentNotOwned": (422, "equipment {equipment} belongs to {owner}, not to the issuer's enterprise "
                               "{issuerEnterprise}"),
    "NotPermittedRelayer": (403, "{relayer} may not relay signed ticket steps: it is not an active member"),
    "OutsideWindow": (409, "`{action}` on ticket {ticketId} is allowed from {opens} to {closes}; now is {nowSeconds}"),
    "WindowInPast": (422, "the planned window {plannedStart} → {plannedEnd} ends before now ({nowSeconds})"),
    "WindowTooLong": (422, "the planned window {plannedStart} → {plannedEnd} is longer than 7 days"),
    # ---------------------------------------------------------------- ReceivableToken financing and settlement
    "DiscountExceedsValue": (422, "{rateBps} bps over {secondsToMaturity} s to maturity would discount more than "
                                  "the whole value"),
    "DisputeWindowClosed": (409, "the dispute window of token {tokenId} closed at {closedAt}"),
    "DisputeWindowOpen": (409, "the dispute window of token {tokenId} is open until {until}; finalize after it"),
    "InvalidExpiry": (422, "a financing offer expiring at {expiry} must expire before maturity ({maturity})"),
    "NoSettlementMarked": (409, "the issuer has not marked a settlement for token {tokenId}"),
    "NotHolder": (403, "{account} is not the holder of this value ({holder} is)"),
    "OfferExpired": (409, "the financing offer for token {tokenId} expired at {expiry}"),
    "OperatorsUnsupported": (422, "value allowances, token approvals and operators are not supported: only the "
                                  "holder moves value, and a bank finances through the holder's financing offer"),
    "RateAboveOffer": (403, "a discount at {rateBps} bps is above the {maxRateBps} bps the holder offered"),
    "SettlementPending": (409, "token {tokenId} has a settlement waiting for the holder's confirmation"),
    "SplitTooDeep": (409, "token {tokenId} is already {depth} splits deep: it cannot be split further"),
    "SplitTooSmall": (422, "a split of {value} is below the minimum of {minValue}"),
    "ValueTooLarge": (422, "a value of {value} exceeds the maximum of {maxValue}"),
    # ---------------------------------------------------------------- WarehouseReceipt (issue 15)
    "UnknownReceipt": (404, "there is no warehouse receipt {receiptId}"),
    "NotWarehouse": (403, "{account} does not hold the `warehouse` role; only warehouses issue receipts"),
    "ReceiptClosed": (409, "warehouse receipt {receiptId} is closed (`{status}`)"),
    "Pledged": (409, "warehouse receipt {receiptId} is pledged to {bank}: transfer, split and delivery need the "
                     "bank to release it first"),
    "AlreadyPledged": (409, "warehouse receipt {receiptId} is already pledged to {bank}: one receipt, one pledge"),
    "NotPledged": (409, "warehouse receipt {receiptId} is not pledged"),
    "NoCoils": (422, "a warehouse receipt needs at least one coil"),
    "TooManyCoils": (422, "{count} coils are more than the {maxCoils} one receipt may hold"),
    "InvalidCoilIdentifier": (422, "{identifier!r} is not a coil identifier 88.<industry>.<n>/<suffix> of printable "
                                   "ASCII without spaces"),
    "UnknownCoilPrefix": (422, "the prefix of coil {identifier} belongs to no registered enterprise"),
    "CoilAlreadyReceipted": (409, "coil {identifier} is already in live warehouse receipt {receiptId}: one coil, "
                                  "one receipt"),
    "ZeroWeight": (422, "coil {identifier} has no net weight"),
    "WeightTooLarge": (422, "coil {identifier} weighs {netWeightKg} kg, more than the {maxKg} kg a coil may"),
    "EmptyElement": (422, "the receipt element `{element}` is empty"),
    "ElementTooLong": (422, "the receipt element `{element}` is longer than {maxBytes} bytes"),
    "StoragePeriodEnded": (422, "the storage period ends at {storageUntil}, not after the chain's time {nowSeconds}"),
    "InvalidSplit": (422, "a split of receipt {receiptId} must name some but not all of its {coilCount} coils, "
                          "each once"),
    # ---------------------------------------------------------------- PriceIndex (daily prices per grade)
    "NotPricePublisher": (403, "{account} is not an active enterprise holding the `price_publisher` role"),
    "LengthMismatch": (422, "a day's list needs one currency and one price per grade: {grades} grades, "
                            "{currencies} currencies, {prices} prices"),
    "EmptyPriceList": (422, "the day's price list is empty"),
    "TooManyPrices": (422, "a day's list holds at most {maxCount} prices; this one holds {count}"),
    "DayOutOfRange": (422, "day {day} is out of range: prices may be published for days up to {latestAllowed} "
                           "(the chain's day + 1)"),
    "ZeroGrade": (422, "a grade key is zero"),
    "ZeroPrice": (422, "the price of grade {grade} in {currency} is zero"),
    "PriceTooLarge": (422, "the price {price} of grade {grade} in {currency} is above 2^128 - 1 minor units"),
    "DuplicateEntry": (422, "grade {grade} in {currency} appears twice in the day's list"),
    "DayBeforeLatest": (409, "the {currency} series of grade {grade} already has prices up to {latestDay}: "
                             "day {day} cannot be added before it (series only grow forward)"),
    "PriceOwnedByOther": (403, "the {currency} price of grade {grade} on {day} was published by {publisher}; "
                               "only its publisher may correct it"),
    "AlreadyCorrected": (409, "the {currency} price of grade {grade} on {day} was already corrected once"),
    "CorrectionWindowClosed": (409, "the {currency} price of grade {grade} on {day} could be corrected until "
                                    "{lastCorrectionDay}"),
}

#: WarehouseReceipt.Status names (``ReceiptClosed``)
RECEIPT_STATUSES: tuple[str, ...] = ("none", "live", "pledged", "delivered", "split")

_TIME_ARGS = {"maturity", "nowSeconds", "plannedStart", "plannedEnd", "requested", "deadline", "executableAt",
              "opens", "closes", "closedAt", "until", "expiry", "storageUntil"}
_FEN_ARGS = {"balance", "value", "allowance", "minValue", "maxValue"}
#: Unix days (PriceIndex), rendered as ISO 8601 dates (up to 9999-12-31)
_MAX_DAY = (date(9999, 12, 31) - date(1970, 1, 1)).days
_DAY_ARGS = {"day", "latestAllowed", "latestDay", "lastCorrectionDay"}


@dataclass(frozen=True)
class Refusal:
    """A decoded contract refusal.

    ``name``: the custom error (``WrongStatus``); ``arguments``: ABI argument name → value rendered by
    meaning (str/int/list); ``sentence``: plain words; ``status``: HTTP status (403/404/409/422).
    """

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    sentence: str = ""
    status: int = 409

    def detail(self, what: str) -> dict[str, Any]:
        """The HTTP error body's ``detail``: ``{reason, message, arguments}``."""
        return {"reason": self.name, "message": f"{what} refused by the chain: {self.sentence}",
                "arguments": self.arguments}


@cache
def _errors() -> dict[bytes, tuple[str, list[dict[str, Any]]]]:
    out: dict[bytes, tuple[str, list[dict[str, Any]]]] = {}
    for contract in CONTRACT_NAMES:
        for item in load_artifact(contract)["abi"]:
            if item["type"] == "error":
                sig = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
                out[keccak(text=sig)[:4]] = (item["name"], item["inputs"])
    return out


def error_names() -> set[str]:
    """Every custom error name in the committed ABIs."""
    return {name for name, _ in _errors().values()}


def _roles(bits: int, table: dict[str, int]) -> list[str]:
    names = [name for name, bit in table.items() if bits & bit]
    unknown = bits & ~sum(table.values())
    return names + ([f"unknown bits 0x{unknown:x}"] if unknown else [])


def _render(error: str, inp: dict[str, Any], value: Any) -> Any:
    internal = inp.get("internalType", "")
    name = inp.get("name", "")
    if error == "ReceiptClosed" and name == "status":
        return RECEIPT_STATUSES[value] if value < len(RECEIPT_STATUSES) else f"status {value}"
    if internal.endswith(".Status"):
        return STATUSES[value] if value < len(STATUSES) else f"status {value}"
    if internal.endswith(".Action") or (error == "InvalidAction" and name == "action"):
        return ACTIONS[value] if value < len(ACTIONS) else f"action {value}"
    if inp["type"] == "address":
        return to_checksum_address(value)
    if inp["type"] == "bytes3":
        return bytes(value).decode("ascii", errors="replace")
    if inp["type"].startswith("bytes"):
        return "0x" + bytes(value).hex()
    if error == "MissingRole" and name == "role":
        return ", ".join(_roles(value, PERSON_ROLES))
    if error == "InvalidPersonRoles":
        return _roles(value, PERSON_ROLES)
    if error == "InvalidRoles":
        return _roles(value, ROLE_BITS)
    if name in _DAY_ARGS and isinstance(value, int) and 0 <= value <= _MAX_DAY:
        return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=value)).date().isoformat()
    if name in _TIME_ARGS and isinstance(value, int):
        return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")
    if name in _FEN_ARGS and isinstance(value, int):
        return f"{value // 100}.{value % 100:02d}"
    return value


def explain(name: str, arguments: dict[str, Any]) -> Refusal:
    """Sentence and status for custom error ``name`` with already rendered ``arguments``."""
    status, template = REASONS.get(name, (409, ""))
    args = dict(arguments)
    if name == "WrongStatus":
        args["needed"] = NEEDED_STATUS.get(str(args.get("action")), "?")
    if template:
        try:
            sentence = template.format(**args)
        except (KeyError, IndexError, ValueError):  # an argument renamed in the contract: still say the name
            sentence = f"{name}({', '.join(f'{k}={v}' for k, v in arguments.items())})"
    else:
        sentence = f"{name}({', '.join(f'{k}={v}' for k, v in arguments.items())})"
    return Refusal(name=name, arguments=arguments, sentence=sentence, status=status)


def explain_data(data: Any) -> Refusal | None:
    """Decode revert ``data`` (``0x…`` hex str, bytes, or a node's ``{"data"|"result": …}``) into a
    :class:`Refusal`; None when it is not one of our custom errors (or carries no data)."""
    if isinstance(data, dict):
        data = data.get("data") or data.get("result")
    if isinstance(data, str):
        try:
            data = bytes.fromhex(data.removeprefix("0x"))
        except ValueError:
            return None
    if not isinstance(data, bytes | bytearray) or len(data) < 4:
        return None
    known = _errors().get(bytes(data[:4]))
    if known is None:
        return None
    name, inputs = known
    try:
        values = abi_decode([i["type"] for i in inputs], bytes(data[4:]))
    except Exception:  # noqa: BLE001 - truncated data still gives the name
        return explain(name, {})
    arguments = {i["name"] or f"arg{n}": _render(name, i, v)
                 for n, (i, v) in enumerate(zip(inputs, values, strict=True))}
    return explain(name, arguments)


_HEX = re.compile(r"0x[0-9a-fA-F]{8,}")


def explain_chain_error(exc: BaseException) -> Refusal | None:
    """A :class:`Refusal` for an ``api.chain.ChainError`` raised ``from`` a web3/provider revert.

    Looks for revert data on the exception and its ``__cause__`` chain (web3's ``ContractCustomError``
    ``.data``, a dict argument, or a hex string in the message).
    """
    seen: BaseException | None = exc
    while seen is not None:
        candidates: list[Any] = [getattr(seen, "data", None), *seen.args]
        for candidate in candidates:
            if isinstance(candidate, dict | bytes | bytearray):
                found = explain_data(candidate)
                if found:
                    return found
            elif isinstance(candidate, str):
                for match in _HEX.findall(candidate):
                    found = explain_data(match)
                    if found:
                        return found
        seen = seen.__cause__
    return None
