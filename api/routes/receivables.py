"""``/v1/receivables``: supply-chain receivable tokens (ERC-3525) on the ReceivableToken contract.

Values are in the smallest currency unit (fen / cents, ``valueDecimals() == 2``); bodies take
either ``value`` (integer, fen) or ``amount`` (decimal string, ``"400000.00"``). Times are unix
seconds (``maturity`` also accepts ISO 8601 with an offset). Every endpoint needs an enterprise API
key; the transaction is signed by that enterprise's account.

Access (who may read a token): its holder; the issuer (core enterprise) of its slot; a holder of a
token it was split from (upstream in its chain); and an enterprise the holder asked to finance it
(ERC-3525 value allowance or ERC-721 approval, see ``POST /v1/receivables/{id}/approve``) -- this is
how a bank sees a token it is asked to finance. Anybody else gets 404, as for a token that does not
exist, so unrelated receivables stay invisible.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eth_utils import to_checksum_address
from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field, field_validator
from sqlmodel import Session
from web3.logs import DISCARD

from api.bounds import MAX_UNIX_SECONDS, DbId, Fen, Maturity, TokenIdPath
from api.deps import CurrentEnterprise, SessionDep, StateDep
from api.errors import UnprocessableError, issue
from api.models import Enterprise
from api.state import AppState
from api.workflows.common import (
    call_view,
    contract,
    enterprise_key,
    iso,
    party,
    require_chain,
    send_or_refuse,
    tx_hex,
)
from provenance.receivables import (
    decode_slot,
    discount_price,
    format_amount,
    invoice_digest,
    parse_amount,
)

router = APIRouter(prefix="/v1/receivables", tags=["receivables"])
TokenId = TokenIdPath


class _Amount(BaseModel):
    value: Fen | None = Field(None, description="amount in fen/cents")
    amount: str | None = Field(None, description='decimal amount, e.g. "150000.00"')

    def fen(self) -> int:
        if (self.value is None) == (self.amount is None):
            raise UnprocessableError([issue("value", "required", "give exactly one of value (fen) or amount")])
        if self.value is not None:
            return self.value
        try:
            return parse_amount(self.amount or "")
        except ValueError as exc:
            raise UnprocessableError([issue("amount", "format", str(exc))]) from exc


class IssueBody(_Amount):
    """Body of ``POST /v1/receivables`` (core enterprise confirms a payable)."""

    to_enterprise_id: DbId = Field(description="the supplier the payable is confirmed to")
    currency: str = Field("CNY", pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    maturity: Maturity | str = Field(description="unix seconds or ISO 8601 with offset")
    invoice: dict[str, Any] | None = Field(None, description="invoice document; its SHA-256 (RFC 8785) is used")
    invoice_digest: str | None = Field(None, description="0x + 64 hex: digest of the invoice")

    @field_validator("invoice_digest")
    @classmethod
    def _digest(cls, v: str | None) -> str | None:
        if v is None:
            return v
        raw = v[2:] if v.startswith("0x") else v
        if len(raw) != 64 or any(c not in "0123456789abcdefABCDEF" for c in raw):
            raise ValueError("invoice_digest must be 32 bytes as 64 hex digits")
        return "0x" + raw.lower()


class SplitBody(_Amount):
    """Body of ``POST /v1/receivables/{id}/split``."""

    to_enterprise_id: DbId


class TransferBody(BaseModel):
    """Body of ``POST /v1/receivables/{id}/transfer`` (the whole token)."""

    to_enterprise_id: DbId


class ApproveBody(_Amount):
    """Body of ``POST /v1/receivables/{id}/approve``: ask ``operator_enterprise_id`` (a bank) to finance."""

    operator_enterprise_id: DbId


class DiscountBody(_Amount):
    """Body of ``POST /v1/receivables/{id}/discount`` (the bank)."""

    rate_bps: int = Field(ge=0, le=10000, description="annual discount rate in basis points (365-day basis)")
    payment_reference: str = Field(min_length=1, max_length=200, description="the bank's payment reference")


class SettleBody(BaseModel):
    """Body of ``POST /v1/receivables/{id}/settle`` (the issuer, at maturity)."""

    payment_reference: str = Field(min_length=1, max_length=200)


# --------------------------------------------------------------------------- helpers


def _enterprise(session: Session, enterprise_id: int, field: str) -> Enterprise:
    ent = session.get(Enterprise, enterprise_id)
    if ent is None or ent.is_service:
        raise UnprocessableError([issue(field, "not_found", f"enterprise {enterprise_id} does not exist")])
    return ent


def _maturity(value: int | str) -> int:
    if isinstance(value, int):
        return value
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UnprocessableError([issue("maturity", "format", f"{value!r} is not unix seconds or ISO 8601")]) from exc
    if parsed.tzinfo is None:
        raise UnprocessableError([issue("maturity", "timezone", "ISO 8601 maturity needs a UTC offset")])
    return int(parsed.timestamp())


def _chain_now(state: AppState) -> int:
    block = require_chain(state).rpc("eth_getBlockByNumber", ["latest", False]) or {}
    ts = block.get("timestamp", 0)
    return int(ts, 16) if isinstance(ts, str) else int(ts)


def _token(rt: Any, token_id: int) -> dict[str, Any]:
    slot, balance, owner, parent, root, original, created_at, created_block, financed, redeemed = call_view(
        lambda: rt.functions.getToken(token_id).call(), f"receivable {token_id}")
    return {"slot": slot, "balance": balance, "owner": to_checksum_address(owner), "parent": parent, "root": root,
            "original": original, "created_at": created_at, "created_block": created_block, "financed": financed,
            "redeemed": redeemed}


def _visible(rt: Any, ent: Enterprise, token_id: int, tok: dict[str, Any], chain_ids: list[int]) -> bool:
    me = to_checksum_address(ent.address)
    if tok["owner"] == me or decode_slot(tok["slot"]).issuer == me:
        return True
    for upstream in chain_ids[1:]:
        if _token(rt, upstream)["owner"] == me:
            return True
    if call_view(lambda: rt.functions.allowance(token_id, me).call(), "allowance") > 0:
        return True
    return to_checksum_address(call_view(lambda: rt.functions.getApproved(token_id).call(), "getApproved")) == me


def _load_visible(state: AppState, ent: Enterprise, token_id: int) -> tuple[Any, dict[str, Any], list[int]]:
    rt = contract(state, "ReceivableToken")
    try:
        tok = _token(rt, token_id)
    except HTTPException as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"receivable {token_id} not found") from exc
    chain_ids = [int(i) for i in call_view(lambda: rt.functions.chainOf(token_id).call(), "chainOf")]
    if not _visible(rt, ent, token_id, tok, chain_ids):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"receivable {token_id} not found or not visible to you")
    return rt, tok, chain_ids


def _discount(session: Session, rt: Any, token_id: int) -> dict[str, Any] | None:
    bank, holder, from_id, value, rate, price, ref, ts = call_view(
        lambda: rt.functions.getDiscount(token_id).call(), "getDiscount")
    if int(bank, 16) == 0:
        return None
    return {"bank": party(session, bank), "holder": party(session, holder), "from_token_id": from_id, "value": value,
            "amount": format_amount(value), "rate_bps": rate, "price": price, "price_amount": format_amount(price),
            "payment_reference": ref, "time": iso(ts), "timestamp": ts}


def _settlement(session: Session, rt: Any, token_id: int) -> dict[str, Any] | None:
    holder, value, ref, ts = call_view(lambda: rt.functions.getSettlement(token_id).call(), "getSettlement")
    if int(holder, 16) == 0:
        return None
    return {"holder": party(session, holder), "value": value, "amount": format_amount(value),
            "payment_reference": ref, "time": iso(ts), "timestamp": ts}


def _chain_entries(session: Session, rt: Any, chain_ids: list[int]) -> list[dict[str, Any]]:
    out = []
    for tid in reversed(chain_ids):  # the confirmed payable first
        t = _token(rt, tid)
        disc = _discount(session, rt, tid)
        kind = "issued" if t["parent"] == 0 else ("discounted" if disc else "split")
        out.append({"token_id": tid, "kind": kind, "from_token_id": t["parent"] or None,
                    "holder": party(session, t["owner"]), "value_received": t["original"],
                    "amount_received": format_amount(t["original"]), "time": iso(t["created_at"]),
                    "block_number": t["created_block"],
                    **({"discount": {k: disc[k] for k in ("rate_bps", "price", "payment_reference")}} if disc else {})})
    return out


def _status(tok: dict[str, Any], now: int) -> str:
    if tok["redeemed"]:
        return "redeemed"
    if tok["balance"] == 0:
        return "empty"
    if now >= decode_slot(tok["slot"]).maturity:
        return "matured"
    return "outstanding"


def _view(session: Session, state: AppState, ent: Enterprise, token_id: int) -> dict[str, Any]:
    rt, tok, chain_ids = _load_visible(state, ent, token_id)
    slot = decode_slot(tok["slot"])
    invoice, issuer, beneficiary, face, settled, issued_at = call_view(
        lambda: rt.functions.getPayable(tok["root"]).call(), "getPayable")
    out: dict[str, Any] = {
        "id": token_id, "slot": hex(tok["slot"]), "issuer": party(session, slot.issuer), "currency": slot.currency,
        "maturity": slot.maturity, "maturity_time": iso(slot.maturity), "holder": party(session, tok["owner"]),
        "value": tok["balance"], "amount": format_amount(tok["balance"]), "original_value": tok["original"],
        "status": _status(tok, _chain_now(state)), "financed": tok["financed"],
        "payable": {"token_id": tok["root"], "invoice_digest": "0x" + bytes(invoice).hex(),
                    "confirmed_by": party(session, issuer), "beneficiary": party(session, beneficiary),
                    "face_value": face, "face_amount": format_amount(face), "settled_value": settled,
                    "issued_at": iso(issued_at)},
        "discount": _discount(session, rt, token_id), "settlement": _settlement(session, rt, token_id),
        "chain": _chain_entries(session, rt, chain_ids),
    }
    if slot.issuer == to_checksum_address(ent.address):  # the issuer sees every holder of its payable
        family = call_view(lambda: rt.functions.tokensOfPayable(tok["root"]).call(), "tokensOfPayable")
        holders = []
        for tid in family:
            t = _token(rt, int(tid))
            holders.append({"token_id": int(tid), "holder": party(session, t["owner"]), "value": t["balance"],
                            "amount": format_amount(t["balance"]), "redeemed": t["redeemed"]})
        out["holders"] = holders
    return out


def _new_token(rt: Any, receipt: dict[str, Any]) -> int:
    events = rt.events.SlotChanged().process_receipt(receipt, errors=DISCARD)
    return int(events[-1]["args"]["_tokenId"])


# --------------------------------------------------------------------------- endpoints


@router.post("", status_code=status.HTTP_201_CREATED)
def issue_receivable(body: IssueBody, ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """Confirm a payable (core enterprise): mint a token to the supplier against a unique invoice digest.

    Errors: 422 body / NotMember / MaturityInPast; 403 NotCoreEnterprise; 409 InvoiceAlreadyIssued
    (the same invoice cannot be financed twice).
    """
    chain = require_chain(state)
    rt = contract(state, "ReceivableToken")
    value = body.fen()
    to = _enterprise(session, body.to_enterprise_id, "to_enterprise_id")
    if (body.invoice is None) == (body.invoice_digest is None):
        raise UnprocessableError([issue("invoice", "required", "give exactly one of invoice or invoice_digest")])
    try:
        digest = invoice_digest(body.invoice) if body.invoice is not None else bytes.fromhex(body.invoice_digest[2:])
    except ValueError as exc:
        raise UnprocessableError([issue("invoice", "invalid", str(exc))]) from exc
    maturity = _maturity(body.maturity)
    if not 0 < maturity <= MAX_UNIX_SECONDS:
        raise UnprocessableError([issue("maturity", "range",
                                        f"maturity must be unix seconds in 1..{MAX_UNIX_SECONDS}")])
    call = rt.functions.issue(to.address, body.currency.encode("ascii"), maturity, value, digest)
    receipt = send_or_refuse(chain, enterprise_key(state, ent), call, "issue")
    token_id = _new_token(rt, receipt)
    return {**_view(session, state, ent, token_id), "tx_hash": tx_hex(receipt), "block_number": receipt["blockNumber"]}


@router.get("")
def my_receivables(ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """Tokens held by the calling enterprise.

    Answer: ``{holder, tokens: [{id, value, amount, currency, maturity, issuer, status, financed}]}``.
    """
    rt = contract(state, "ReceivableToken")
    ids = call_view(lambda: rt.functions.tokensOf(ent.address).call(), "tokensOf")
    now = _chain_now(state)
    tokens = []
    for tid in ids:
        t = _token(rt, int(tid))
        slot = decode_slot(t["slot"])
        tokens.append({"id": int(tid), "value": t["balance"], "amount": format_amount(t["balance"]),
                       "currency": slot.currency, "maturity": slot.maturity, "issuer": party(session, slot.issuer),
                       "status": _status(t, now), "financed": t["financed"], "payable_token_id": t["root"]})
    return {"holder": party(session, ent.address), "tokens": tokens}


@router.get("/{token_id}")
def get_receivable(token_id: TokenId, ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """Status, holder, value, maturity, discount/settlement and the chain back to the confirmed payable."""
    return _view(session, state, ent, token_id)


@router.get("/{token_id}/check")
def check_receivable(token_id: TokenId, ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """What a bank asks before financing: genuine? outstanding? already financed? confirmed by whom?
    how much is free to finance (fen)? The full chain back to the confirmed payable is included."""
    rt, tok, chain_ids = _load_visible(state, ent, token_id)
    slot = decode_slot(tok["slot"])
    invoice, issuer, _, face, _, issued_at = call_view(lambda: rt.functions.getPayable(tok["root"]).call(),
                                                       "getPayable")
    registry = contract(state, "EnterpriseRegistry")
    issuer_is_core = bool(call_view(lambda: registry.functions.hasRole(issuer, 4).call(), "hasRole"))
    chain_entries = _chain_entries(session, rt, chain_ids)
    genuine = (issuer_is_core and to_checksum_address(issuer) == slot.issuer and chain_entries[0]["kind"] == "issued"
               and call_view(lambda: rt.functions.tokenOfInvoice(bytes(invoice)).call(), "tokenOfInvoice")
               == tok["root"])
    now = _chain_now(state)
    outstanding = _status(tok, now) == "outstanding"
    free = tok["balance"] if outstanding and not tok["financed"] else 0
    allowance = call_view(lambda: rt.functions.allowance(token_id, ent.address).call(), "allowance")
    seconds_left = max(0, slot.maturity - now)
    return {
        "token_id": token_id, "genuine": genuine, "outstanding": outstanding, "already_financed": tok["financed"],
        "confirmed_by": party(session, issuer), "invoice_digest": "0x" + bytes(invoice).hex(),
        "payable_token_id": tok["root"], "face_value": face, "confirmed_at": iso(issued_at),
        "holder": party(session, tok["owner"]), "value": tok["balance"], "amount": format_amount(tok["balance"]),
        "currency": slot.currency, "maturity": slot.maturity, "maturity_time": iso(slot.maturity),
        "seconds_to_maturity": seconds_left, "free_to_finance": free, "free_to_finance_amount": format_amount(free),
        "offered_to_you": allowance, "chain": chain_entries,
        "price_at_100_bps": discount_price(free, 100, seconds_left),
    }


@router.post("/{token_id}/split", status_code=status.HTTP_201_CREATED)
def split_receivable(token_id: TokenId, body: SplitBody, ent: CurrentEnterprise, session: SessionDep,
                     state: StateDep) -> dict:
    """Pass part of a token's value to another member (ERC-3525 ``transferFrom(tokenId, to, value)``): new token.

    Errors: 422 NotMember / value; 409 InsufficientBalance / Matured / Redeemed; 403 NotAuthorized.
    """
    chain = require_chain(state)
    rt, _, _ = _load_visible(state, ent, token_id)
    to = _enterprise(session, body.to_enterprise_id, "to_enterprise_id")
    fn = rt.get_function_by_signature("transferFrom(uint256,address,uint256)")(token_id, to.address, body.fen())
    receipt = send_or_refuse(chain, enterprise_key(state, ent), fn, "split")
    new_id = _new_token(rt, receipt)
    return {"token_id": new_id, "from_token_id": token_id, "to": party(session, to.address),
            "value": body.fen(), "amount": format_amount(body.fen()), "tx_hash": tx_hex(receipt),
            "block_number": receipt["blockNumber"]}


@router.post("/{token_id}/transfer")
def transfer_receivable(token_id: TokenId, body: TransferBody, ent: CurrentEnterprise, session: SessionDep,
                        state: StateDep) -> dict:
    """Transfer the whole token to another member (ERC-721 ``transferFrom(from, to, tokenId)``)."""
    chain = require_chain(state)
    rt, tok, _ = _load_visible(state, ent, token_id)
    to = _enterprise(session, body.to_enterprise_id, "to_enterprise_id")
    fn = rt.get_function_by_signature("transferFrom(address,address,uint256)")(tok["owner"], to.address, token_id)
    receipt = send_or_refuse(chain, enterprise_key(state, ent), fn, "transfer")
    return {"token_id": token_id, "holder": party(session, to.address), "tx_hash": tx_hex(receipt),
            "block_number": receipt["blockNumber"]}


@router.post("/{token_id}/approve")
def approve_receivable(token_id: TokenId, body: ApproveBody, ent: CurrentEnterprise, session: SessionDep,
                       state: StateDep) -> dict:
    """Holder asks an enterprise (a bank) to finance ``value`` of the token: ERC-3525 value allowance.

    The bank then sees the token and its chain and can ``discount`` up to that value.
    """
    chain = require_chain(state)
    rt, _, _ = _load_visible(state, ent, token_id)
    operator = _enterprise(session, body.operator_enterprise_id, "operator_enterprise_id")
    fn = rt.get_function_by_signature("approve(uint256,address,uint256)")(token_id, operator.address, body.fen())
    receipt = send_or_refuse(chain, enterprise_key(state, ent), fn, "approve")
    return {"token_id": token_id, "operator": party(session, operator.address), "value": body.fen(),
            "amount": format_amount(body.fen()), "tx_hash": tx_hex(receipt)}


@router.post("/{token_id}/discount", status_code=status.HTTP_201_CREATED)
def discount_receivable(token_id: TokenId, body: DiscountBody, ent: CurrentEnterprise, session: SessionDep,
                        state: StateDep) -> dict:
    """The calling bank takes ``value`` of the token at ``rate_bps``; the value transfer, the rate, the price
    and the bank's payment reference are one transaction. 201 with the bank's new (financed) token.

    Errors: 403 NotBank / NotAuthorized / InsufficientAllowance; 409 AlreadyDiscounted / Matured /
    PaymentReferenceUsed / InsufficientBalance.
    """
    chain = require_chain(state)
    rt, _, _ = _load_visible(state, ent, token_id)
    fn = rt.functions.discount(token_id, body.fen(), body.rate_bps, body.payment_reference)
    receipt = send_or_refuse(chain, enterprise_key(state, ent), fn, "discount")
    new_id = _new_token(rt, receipt)
    return {**_view(session, state, ent, new_id), "tx_hash": tx_hex(receipt), "block_number": receipt["blockNumber"]}


@router.post("/{token_id}/settle")
def settle_receivable(token_id: TokenId, body: SettleBody, ent: CurrentEnterprise, session: SessionDep,
                      state: StateDep) -> dict:
    """The issuer marks payment of a holder's token at maturity; the whole value is redeemed.

    Errors: 403 NotIssuer; 409 NotMatured / Redeemed / NothingToSettle / PaymentReferenceUsed.
    """
    chain = require_chain(state)
    rt, _, _ = _load_visible(state, ent, token_id)
    fn = rt.functions.settle(token_id, body.payment_reference)
    receipt = send_or_refuse(chain, enterprise_key(state, ent), fn, "settle")
    return {**_view(session, state, ent, token_id), "tx_hash": tx_hex(receipt), "block_number": receipt["blockNumber"]}
