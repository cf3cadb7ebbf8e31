"""``/v1/receivables``: supply-chain receivable tokens (ERC-3525) on the ReceivableToken contract.

Values are in the smallest currency unit (fen / cents, ``valueDecimals() == 2``); bodies take
either ``value`` (integer, fen) or ``amount`` (decimal string, ``"400000.00"``). Times are unix
seconds (``maturity`` also accepts ISO 8601 with an offset). Every endpoint needs an enterprise API
key; the transaction is signed by that enterprise's account.

Access (who may read a token): its holder; the issuer (core enterprise) of its slot; a holder of a
token it was split from (upstream in its chain); and a bank the holder asked to finance it (a live
financing offer, see ``POST /v1/receivables/{id}/approve``) -- this is how a bank sees a token it is
asked to finance. Anybody else gets 404, as for a token that does not exist, so unrelated
receivables stay invisible.

Only the holder moves value (the contract has no operators); a bank takes value only by
``discount`` within the holder's offer (bank, value, maximum rate, expiry). Settlement is two-sided:
the issuer marks a payment (``settle``), the holder confirms (``confirm-settlement``) or disputes it
within the contract's ``DISPUTE_WINDOW`` (7 days), after which anyone may ``finalize-settlement``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eth_utils import to_checksum_address
from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field, field_validator
from sqlmodel import Session
from web3.logs import DISCARD

from api.bounds import MAX_UNIX_SECONDS, DbId, Maturity, TokenIdPath
from api.chain_index.reads import (
    CHECK_FALLBACKS,
    VIEW_FALLBACKS,
    BatchReverted,
    IndexedChain,
    ViewCall,
    hops_agree,
    index_agrees,
    parties,
    read_in_one_round_trip,
    token_chain,
)
from api.deps import CurrentEnterprise, SessionDep, StateDep
from api.errors import CHAIN_REFUSAL_RESPONSES, UnprocessableError, issue
from api.models import Enterprise
from api.money import MinorUnitAmount, Money
from api.revert_reasons import explain
from api.state import AppState
from api.workflows.adapters import (
    DiscountRecord,
    EnterpriseRole,
    OfferRecord,
    PayableRecord,
    ReceivableReader,
    RegistryReader,
    SettlementRecord,
    TokenRecord,
    component_names,
    decode_struct,
)
from api.workflows.contract_calls import (
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
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/receivables", tags=["receivables"], responses=CHAIN_REFUSAL_RESPONSES)
TokenId = TokenIdPath


class IssueBody(Money):
    """Body of ``POST /v1/receivables`` (core enterprise confirms a payable)."""

    to_enterprise_id: DbId = Field(description="the supplier the payable is confirmed to")
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


class SplitBody(MinorUnitAmount):
    """Body of ``POST /v1/receivables/{id}/split``."""

    to_enterprise_id: DbId


class TransferBody(BaseModel):
    """Body of ``POST /v1/receivables/{id}/transfer`` (the whole token)."""

    to_enterprise_id: DbId


class ApproveBody(MinorUnitAmount):
    """Body of ``POST /v1/receivables/{id}/approve``: offer ``operator_enterprise_id`` (a bank) to finance
    up to the value at an annual rate of at most ``max_rate_bps``, until ``expires_at`` (default: maturity)."""

    operator_enterprise_id: DbId
    max_rate_bps: int = Field(ge=0, le=10000, description="highest annual discount rate accepted (basis points)")
    expires_at: int | str | None = Field(None, description="unix seconds or ISO 8601 with offset; default maturity")


class DisputeBody(BaseModel):
    """Body of ``POST /v1/receivables/{id}/dispute-settlement`` (the holder)."""

    reason: str = Field(min_length=1, max_length=500, description="why the marked payment is disputed")


class DiscountBody(MinorUnitAmount):
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


def _token(rt: ReceivableReader, token_id: int) -> TokenRecord:
    return rt.token(token_id)


def _visible(rt: ReceivableReader, ent: Enterprise, token_id: int, tok: TokenRecord, chain_ids: list[int]) -> bool:
    me = to_checksum_address(ent.address)
    if tok.owner == me or decode_slot(tok.slot).issuer == me:
        return True
    for upstream in chain_ids[1:]:
        if _token(rt, upstream).owner == me:
            return True
    return call_view(lambda: rt.functions.allowance(token_id, me).call(), "allowance") > 0


def _reader(state: AppState) -> ReceivableReader:
    return ReceivableReader(contract(state, "ReceivableToken"))


def _load_visible(state: AppState, ent: Enterprise, token_id: int) -> tuple[ReceivableReader, TokenRecord, list[int]]:
    rt = _reader(state)
    try:
        tok = _token(rt, token_id)
    except HTTPException as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"receivable {token_id} not found") from exc
    chain_ids = rt.chain_of(token_id)
    if not _visible(rt, ent, token_id, tok, chain_ids):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"receivable {token_id} not found or not visible to you")
    return rt, tok, chain_ids


Who = Callable[[str], dict[str, Any]]
"""``{address, enterprise_id, name}`` of an account (:func:`api.workflows.contract_calls.party`, or a lookup in
:func:`api.chain_index.reads.parties`)."""


def _discount_out(who: Who, d: DiscountRecord) -> dict[str, Any] | None:
    """The ``discount`` object of an answer from ``getDiscount`` (None when the token was not discounted)."""
    if not d.exists:
        return None
    return {"bank": who(d.bank), "holder": who(d.holder), "from_token_id": d.fromTokenId,
            "value": d.value, "amount": format_amount(d.value), "rate_bps": d.rateBps, "price": d.price,
            "price_amount": format_amount(d.price), "payment_reference": d.paymentReference, "time": iso(d.timestamp),
            "timestamp": d.timestamp}


def _settlement_out(who: Who, st: SettlementRecord) -> dict[str, Any] | None:
    """The ``settlement`` object of an answer from ``getSettlement`` (None when never settled)."""
    if not st.exists:
        return None
    return {"holder": who(st.holder), "value": st.value, "amount": format_amount(st.value),
            "payment_reference": st.paymentReference, "status": st.status_name,
            "marked_at": iso(st.markedAt), "time": iso(st.timestamp) if st.timestamp else None,
            "timestamp": st.timestamp or None}


def _chain_entry(who: Who, tid: int, t: TokenRecord, d: DiscountRecord | None) -> dict[str, Any]:
    """One hop of ``chain`` (root first): the token's ``getToken`` record and its ``getDiscount`` when discounted."""
    disc = d if d is not None and d.exists else None
    return {"token_id": tid, "kind": "issued" if t.parent == 0 else ("discounted" if disc else "split"),
            "from_token_id": t.parent or None, "holder": who(t.owner), "value_received": t.originalValue,
            "amount_received": format_amount(t.originalValue), "time": iso(t.createdAt),
            "block_number": t.createdBlock,
            **({"discount": {"rate_bps": disc.rateBps, "price": disc.price,
                             "payment_reference": disc.paymentReference}} if disc else {})}


def _discount(session: Session, rt: ReceivableReader, token_id: int) -> dict[str, Any] | None:
    return _discount_out(lambda a: party(session, a), rt.discount(token_id))


def _settlement(session: Session, rt: ReceivableReader, token_id: int) -> dict[str, Any] | None:
    return _settlement_out(lambda a: party(session, a), rt.settlement(token_id))


def _chain_entries(session: Session, rt: ReceivableReader, chain_ids: list[int]) -> list[dict[str, Any]]:
    return [_chain_entry(lambda a: party(session, a), tid, _token(rt, tid), rt.discount(tid))
            for tid in reversed(chain_ids)]  # the confirmed payable first


def _status(tok: TokenRecord, now: int, settlement_marked: bool = False) -> str:
    if tok.redeemed:
        return "redeemed"
    if settlement_marked:
        return "settlement_pending"
    if tok.balance == 0:
        return "empty"
    if now >= decode_slot(tok.slot).maturity:
        return "matured"
    return "outstanding"


def _view(session: Session, state: AppState, ent: Enterprise, token_id: int) -> dict[str, Any]:
    rt, tok, chain_ids = _load_visible(state, ent, token_id)
    slot = decode_slot(tok.slot)
    pay = rt.payable(tok.root)
    out: dict[str, Any] = {
        "id": token_id, "slot": hex(tok.slot), "issuer": party(session, slot.issuer), "currency": slot.currency,
        "maturity": slot.maturity, "maturity_time": iso(slot.maturity), "holder": party(session, tok.owner),
        "value": tok.balance, "amount": format_amount(tok.balance), "original_value": tok.originalValue,
        "status": _status(tok, _chain_now(state), rt.settlement(token_id).status_name == "marked"),
        "financed": tok.financed,
        "payable": {"token_id": tok.root, "invoice_digest": "0x" + pay.invoiceDigest.hex(),
                    "confirmed_by": party(session, pay.issuer), "beneficiary": party(session, pay.beneficiary),
                    "face_value": pay.faceValue, "face_amount": format_amount(pay.faceValue),
                    "settled_value": pay.settledValue, "issued_at": iso(pay.issuedAt)},
        "discount": _discount(session, rt, token_id), "settlement": _settlement(session, rt, token_id),
        "chain": _chain_entries(session, rt, chain_ids),
    }
    if slot.issuer == to_checksum_address(ent.address):  # the issuer sees every holder of its payable
        holders = []
        for tid in rt.ids("tokensOfPayable", tok.root):
            t = _token(rt, tid)
            holders.append({"token_id": tid, "holder": party(session, t.owner), "value": t.balance,
                            "amount": format_amount(t.balance), "redeemed": t.redeemed})
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
    rt = _reader(state)
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
    rt = _reader(state)
    now = _chain_now(state)
    tokens = []
    for tid in rt.ids("tokensOf", to_checksum_address(ent.address)):
        t = _token(rt, tid)
        slot = decode_slot(t.slot)
        tokens.append({"id": tid, "value": t.balance, "amount": format_amount(t.balance),
                       "currency": slot.currency, "maturity": slot.maturity, "issuer": party(session, slot.issuer),
                       "status": _status(t, now), "financed": t.financed, "payable_token_id": t.root})
    return {"holder": party(session, ent.address), "tokens": tokens}


@router.get("/{token_id}")
def get_receivable(token_id: TokenId, ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """Status, holder, value, maturity, discount/settlement and the chain back to the confirmed payable (the
    issuer also gets ``holders``: every token of its payable).

    Served like ``/check``: the chain index names the tokens, and every fact shown is read on chain in one
    JSON-RPC batch at the head block (:func:`_view_from_index`); from the chain alone (a read per hop) when the
    token is not indexed yet or the index differs. ``chain_facts: {source: "index+chain" | "chain",
    indexed_to_block, confirmed_at_block}`` says which. Errors: 404 unknown or not visible to the caller.
    """
    indexed = _view_from_index(session, state, ent, token_id)
    if indexed is not None:
        return indexed
    return {**_view(session, state, ent, token_id),
            "chain_facts": {"source": "chain", "indexed_to_block": None, "confirmed_at_block": None}}


@router.get("/{token_id}/check")
def check_receivable(token_id: TokenId, ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """What a bank asks before financing: genuine? outstanding? already financed? confirmed by whom?
    how much is free to finance (fen)? The full chain back to the confirmed payable is included.

    Served from the chain index (:mod:`api.chain_index.reads`), which names the tokens of the chain; every fact
    of the answer -- holder, balance, financed/redeemed, slot, payable, each hop and its discount,
    free-to-finance, the live offer, the issuer's role -- is read on chain in one JSON-RPC batch at the head
    block; from the chain alone when the token is not indexed yet or the index disagrees. ``chain_facts:
    {source: "index+chain" | "chain", indexed_to_block, confirmed_at_block}`` says which, and at which block
    the confirmed facts hold.
    """
    indexed = _check_from_index(session, state, ent, token_id)
    if indexed is not None:
        return indexed
    return {**_check_from_chain(session, state, ent, token_id),
            "chain_facts": {"source": "chain", "indexed_to_block": None, "confirmed_at_block": None}}


@dataclass(frozen=True)
class _Confirmed:
    """An indexed token whose facts the chain confirmed in one JSON-RPC batch at block ``number`` (time ``now``):
    the token and its payable, every hop root first (``hops``, the token last, chain records), the discounts of
    the hops the index calls discounted, and the decoded outputs of the caller's ``extra`` calls."""

    view: IndexedChain
    number: int
    now: int
    tok: TokenRecord
    pay: PayableRecord
    hops: list[TokenRecord]
    discounts: dict[int, DiscountRecord]
    extra: list[tuple[Any, ...]]


def _confirm_indexed(session: Session, state: AppState, token_id: int, fallbacks: Any,
                     extra: Callable[[IndexedChain], list[ViewCall]]) -> _Confirmed | None:
    """The index names the token's chain (:func:`token_chain`); ``getToken`` of every hop, ``getPayable``,
    ``getDiscount`` of each discounted hop and ``extra(view)`` are read on chain in **one** JSON-RPC batch at the
    head block (:func:`read_in_one_round_trip`). None -- answer from the chain alone, counted in ``fallbacks`` by
    reason -- when the token is not indexed, a read reverted, or the chain differs from the index in any field
    (:func:`index_agrees`, :func:`hops_agree`)."""
    if state.indexer is None or state.chain is None:
        return None
    view = token_chain(session, token_id)
    if view is None:
        fallbacks.labels("not_indexed").inc()
        return None
    rt = contract(state, "ReceivableToken")
    upstream = view.hops[:-1]
    discounted = [h.token_id for h in view.hops if h.token_id in view.discounts]
    calls = [ViewCall(rt, "getToken", (token_id,)), ViewCall(rt, "getPayable", (view.token.root,)),
             *(ViewCall(rt, "getToken", (h.token_id,)) for h in upstream),
             *(ViewCall(rt, "getDiscount", (t,)) for t in discounted)]
    more = extra(view)
    try:
        block, results = read_in_one_round_trip(state.chain, calls + more)
    except BatchReverted:
        fallbacks.labels("reverted").inc()
        return None
    token_names = component_names(rt, "getToken")
    tok = decode_struct(TokenRecord, token_names, results[0][0])
    pay = decode_struct(PayableRecord, component_names(rt, "getPayable"), results[1][0])
    n = 2 + len(upstream)
    hop_records = [decode_struct(TokenRecord, token_names, r[0]) for r in results[2:n]] + [tok]
    discounts = {t: decode_struct(DiscountRecord, component_names(rt, "getDiscount"), r[0])
                 for t, r in zip(discounted, results[n:n + len(discounted)], strict=True)}
    if not (index_agrees(view, tok, pay) and hops_agree(view, hop_records, discounts)):
        fallbacks.labels("index_differs").inc()
        log.info("chain index differs from the chain for receivable %d: answering from the chain", token_id)
        return None
    now = int(block["timestamp"], 16) if isinstance(block["timestamp"], str) else int(block["timestamp"])
    number = int(block["number"], 16) if isinstance(block["number"], str) else int(block["number"])
    return _Confirmed(view=view, number=number, now=now, tok=tok, pay=pay, hops=hop_records, discounts=discounts,
                      extra=results[n + len(discounted):])


def _confirmed_entries(c: _Confirmed, who: Who) -> list[dict[str, Any]]:
    """``chain`` of an answer from confirmed hops (root first)."""
    return [_chain_entry(who, h.token_id, rec, c.discounts.get(h.token_id))
            for h, rec in zip(c.view.hops, c.hops, strict=True)]


def _visible_to(me: str, c: _Confirmed, allowance: int) -> bool:
    """:func:`_visible` on confirmed facts: holder, issuer, an upstream holder, or a bank with a live offer."""
    return (c.tok.owner == me or decode_slot(c.tok.slot).issuer == me or any(h.owner == me for h in c.hops[:-1])
            or allowance > 0)


def _view_from_index(session: Session, state: AppState, ent: Enterprise, token_id: int) -> dict[str, Any] | None:
    """``GET /v1/receivables/{id}`` from the index plus one JSON-RPC batch (:func:`_confirm_indexed`), or None
    (answer from the chain instead). Besides the token, payable and hops, the batch reads the caller's allowance,
    the token's ``getDiscount`` and ``getSettlement``, and for the issuer ``tokensOfPayable`` and ``getToken`` of
    every indexed token of the payable (a list differing from the index's: answer from the chain)."""
    rt = contract(state, "ReceivableToken")
    me = to_checksum_address(ent.address)
    family: list[int] = []

    def extra(view: IndexedChain) -> list[ViewCall]:
        calls = [ViewCall(rt, "allowance", (token_id, me)), ViewCall(rt, "getDiscount", (token_id,)),
                 ViewCall(rt, "getSettlement", (token_id,))]
        if decode_slot(int(view.token.slot)).issuer == me:  # confirmed below: the slot is compared with getToken's
            family.extend(sorted(view.family))
            calls += [ViewCall(rt, "tokensOfPayable", (view.token.root,)),
                      *(ViewCall(rt, "getToken", (t,)) for t in family)]
        return calls

    c = _confirm_indexed(session, state, token_id, VIEW_FALLBACKS, extra)
    if c is None:
        return None
    allowance, raw_disc, raw_settle = (c.extra[0][0], c.extra[1][0], c.extra[2][0])
    if not _visible_to(me, c, int(allowance)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"receivable {token_id} not found or not visible to you")
    tok, pay, slot = c.tok, c.pay, decode_slot(c.tok.slot)
    disc = decode_struct(DiscountRecord, component_names(rt, "getDiscount"), raw_disc)
    settle = decode_struct(SettlementRecord, component_names(rt, "getSettlement"), raw_settle)
    holders: dict[int, TokenRecord] = {}
    if slot.issuer == me:
        listed = [int(t) for t in c.extra[3][0]]
        if sorted(listed) != family:
            VIEW_FALLBACKS.labels("index_differs").inc()
            return None
        by_id = {t: decode_struct(TokenRecord, component_names(rt, "getToken"), r[0])
                 for t, r in zip(family, c.extra[4:], strict=True)}
        holders = {t: by_id[t] for t in listed}  # in the chain's order
    found = parties(session, [tok.owner, slot.issuer, pay.issuer, pay.beneficiary, disc.bank, disc.holder,
                              settle.holder, *(h.owner for h in c.hops), *(h.owner for h in holders.values())],
                    c.view.names)

    def who(address: str) -> dict[str, Any]:
        return found[to_checksum_address(address)]

    out: dict[str, Any] = {
        "id": token_id, "slot": hex(tok.slot), "issuer": who(slot.issuer), "currency": slot.currency,
        "maturity": slot.maturity, "maturity_time": iso(slot.maturity), "holder": who(tok.owner),
        "value": tok.balance, "amount": format_amount(tok.balance), "original_value": tok.originalValue,
        "status": _status(tok, c.now, settle.status_name == "marked"), "financed": tok.financed,
        "payable": {"token_id": tok.root, "invoice_digest": "0x" + pay.invoiceDigest.hex(),
                    "confirmed_by": who(pay.issuer), "beneficiary": who(pay.beneficiary),
                    "face_value": pay.faceValue, "face_amount": format_amount(pay.faceValue),
                    "settled_value": pay.settledValue, "issued_at": iso(pay.issuedAt)},
        "discount": _discount_out(who, disc), "settlement": _settlement_out(who, settle),
        "chain": _confirmed_entries(c, who),
        "chain_facts": {"source": "index+chain", "indexed_to_block": c.view.indexed_to_block,
                        "confirmed_at_block": c.number},
    }
    if slot.issuer == me:
        out["holders"] = [{"token_id": t, "holder": who(h.owner), "value": h.balance,
                           "amount": format_amount(h.balance), "redeemed": h.redeemed} for t, h in holders.items()]
    return out


def _check_from_index(session: Session, state: AppState, ent: Enterprise, token_id: int) -> dict[str, Any] | None:
    """The bank check from the index plus one JSON-RPC batch (:func:`_confirm_indexed`: also ``freeToFinance``,
    the caller's allowance and offer, the issuer's role), or None (answer from the chain instead)."""
    rt = contract(state, "ReceivableToken")
    er = contract(state, "EnterpriseRegistry")
    me = to_checksum_address(ent.address)
    c = _confirm_indexed(session, state, token_id, CHECK_FALLBACKS, lambda view: [
        ViewCall(rt, "freeToFinance", (token_id,)), ViewCall(rt, "allowance", (token_id, me)),
        ViewCall(rt, "getOffer", (token_id, me)),
        ViewCall(er, "hasRole", (view.payable.issuer, int(EnterpriseRole.CORE_ENTERPRISE)))])
    if c is None:
        return None
    free, allowance, raw_offer, issuer_is_core = c.extra
    tok, pay, slot = c.tok, c.pay, decode_slot(c.tok.slot)
    offer = decode_struct(OfferRecord, component_names(rt, "getOffer"), raw_offer[0])
    allowance = int(allowance[0])
    if not _visible_to(me, c, allowance):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"receivable {token_id} not found or not visible to you")
    found = parties(session, [h.owner for h in c.hops] + [pay.issuer, tok.owner], c.view.names)

    def who(address: str) -> dict[str, Any]:
        return found[to_checksum_address(address)]

    chain_entries = _confirmed_entries(c, who)
    # getPayable(root) confirmed: the contract set tokenOfInvoice(digest) = root with it, for good
    genuine = bool(issuer_is_core[0]) and pay.issuer == slot.issuer and chain_entries[0]["kind"] == "issued"
    now = c.now
    free = int(free[0])
    seconds_left = max(0, slot.maturity - now)
    return {
        "token_id": token_id, "genuine": genuine, "outstanding": _status(tok, now) == "outstanding",
        "already_financed": tok.financed,
        "confirmed_by": who(pay.issuer), "invoice_digest": "0x" + pay.invoiceDigest.hex(),
        "payable_token_id": tok.root, "face_value": pay.faceValue, "confirmed_at": iso(pay.issuedAt),
        "holder": who(tok.owner), "value": tok.balance, "amount": format_amount(tok.balance),
        "currency": slot.currency, "maturity": slot.maturity, "maturity_time": iso(slot.maturity),
        "seconds_to_maturity": seconds_left, "free_to_finance": free, "free_to_finance_amount": format_amount(free),
        "offered_to_you": allowance, "chain": chain_entries,
        "offer_to_you": {"value": allowance, "max_rate_bps": offer.maxRateBps, "expires_at": offer.expiry,
                         "expires_at_time": iso(offer.expiry)} if allowance else None,
        "price_at_100_bps": discount_price(free, 100, min(seconds_left, 99 * 365 * 86_400)),
        "chain_facts": {"source": "index+chain", "indexed_to_block": c.view.indexed_to_block,
                        "confirmed_at_block": c.number},
    }


def _check_from_chain(session: Session, state: AppState, ent: Enterprise, token_id: int) -> dict[str, Any]:
    """The bank check read from the chain alone (a dozen calls and more per hop)."""
    rt, tok, chain_ids = _load_visible(state, ent, token_id)
    slot = decode_slot(tok.slot)
    pay = rt.payable(tok.root)
    registry = RegistryReader(contract(state, "EnterpriseRegistry"))
    issuer_is_core = registry.has_role(pay.issuer, EnterpriseRole.CORE_ENTERPRISE)
    chain_entries = _chain_entries(session, rt, chain_ids)
    genuine = (issuer_is_core and pay.issuer == slot.issuer and chain_entries[0]["kind"] == "issued"
               and call_view(lambda: rt.functions.tokenOfInvoice(pay.invoiceDigest).call(), "tokenOfInvoice")
               == tok.root)
    now = _chain_now(state)
    outstanding = _status(tok, now) == "outstanding"
    # what the contract guarantees: unfinanced, not matured/redeemed, holder an active member
    free = int(call_view(lambda: rt.functions.freeToFinance(token_id).call(), "freeToFinance"))
    me = to_checksum_address(ent.address)
    allowance = int(call_view(lambda: rt.functions.allowance(token_id, me).call(), "allowance"))
    offer = rt.offer(token_id, me)
    seconds_left = max(0, slot.maturity - now)
    return {
        "token_id": token_id, "genuine": genuine, "outstanding": outstanding, "already_financed": tok.financed,
        "confirmed_by": party(session, pay.issuer), "invoice_digest": "0x" + pay.invoiceDigest.hex(),
        "payable_token_id": tok.root, "face_value": pay.faceValue, "confirmed_at": iso(pay.issuedAt),
        "holder": party(session, tok.owner), "value": tok.balance, "amount": format_amount(tok.balance),
        "currency": slot.currency, "maturity": slot.maturity, "maturity_time": iso(slot.maturity),
        "seconds_to_maturity": seconds_left, "free_to_finance": free, "free_to_finance_amount": format_amount(free),
        "offered_to_you": allowance, "chain": chain_entries,
        "offer_to_you": {"value": allowance, "max_rate_bps": offer.maxRateBps, "expires_at": offer.expiry,
                         "expires_at_time": iso(offer.expiry)} if allowance else None,
        "price_at_100_bps": discount_price(free, 100, min(seconds_left, 99 * 365 * 86_400)),
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
    fn = rt.get_function_by_signature("transferFrom(address,address,uint256)")(tok.owner, to.address, token_id)
    receipt = send_or_refuse(chain, enterprise_key(state, ent), fn, "transfer")
    return {"token_id": token_id, "holder": party(session, to.address), "tx_hash": tx_hex(receipt),
            "block_number": receipt["blockNumber"]}


@router.post("/{token_id}/approve")
def approve_receivable(token_id: TokenId, body: ApproveBody, ent: CurrentEnterprise, session: SessionDep,
                       state: StateDep) -> dict:
    """Holder offers a bank to finance ``value`` of the token on the holder's terms
    (``ReceivableToken.offerFinancing``: bank, value, ``max_rate_bps``, ``expires_at``).

    The bank then sees the token and its chain and can ``discount`` up to that value at no more
    than that rate before the expiry; nothing else can consume the offer. Errors: 422 SelfApproval /
    InvalidExpiry / InvalidRate / NotBank (the operator is not an active bank); 403 NotHolder;
    409 AlreadyDiscounted (financed value is never offered again) / InsufficientBalance / Matured.
    """
    chain = require_chain(state)
    rt, tok, _ = _load_visible(state, ent, token_id)
    operator = _enterprise(session, body.operator_enterprise_id, "operator_enterprise_id")
    expiry = decode_slot(tok.slot).maturity if body.expires_at is None else _maturity(body.expires_at)
    if not 0 < expiry < 2**64:
        raise UnprocessableError([issue("expires_at", "range", "expires_at must be unix seconds in 1..2**64-1")])
    fn = rt.functions.offerFinancing(token_id, operator.address, body.fen(), body.max_rate_bps, expiry)
    receipt = send_or_refuse(chain, enterprise_key(state, ent), fn, "approve")
    return {"token_id": token_id, "operator": party(session, operator.address), "value": body.fen(),
            "amount": format_amount(body.fen()), "max_rate_bps": body.max_rate_bps, "expires_at": expiry,
            "tx_hash": tx_hex(receipt)}


@router.post("/{token_id}/discount", status_code=status.HTTP_201_CREATED)
def discount_receivable(token_id: TokenId, body: DiscountBody, ent: CurrentEnterprise, session: SessionDep,
                        state: StateDep) -> dict:
    """The calling bank takes ``value`` of the token at ``rate_bps``; the value transfer, the rate, the price
    and the bank's payment reference are one transaction. 201 with the bank's new (financed) token.

    Errors: 403 NotBank / NotAuthorized (no live offer to you) / InsufficientAllowance / RateAboveOffer;
    409 AlreadyDiscounted / Matured / OfferExpired / PaymentReferenceUsed (per bank) /
    InsufficientBalance; 422 DiscountExceedsValue (rate x time above 100 %).
    """
    chain = require_chain(state)
    try:
        rt, _, _ = _load_visible(state, ent, token_id)
    except HTTPException as exc:  # the bank's allowance was spent by its own discount: say so (issue 17)
        financed = _financed_from(state, ent, token_id) if exc.status_code == 404 else None
        if financed is None:
            raise
        refused = explain("AlreadyDiscounted", {"tokenId": token_id, "financed_token_id": financed})
        raise HTTPException(status.HTTP_409_CONFLICT, refused.detail("discount")) from exc
    fn = rt.functions.discount(token_id, body.fen(), body.rate_bps, body.payment_reference)
    receipt = send_or_refuse(chain, enterprise_key(state, ent), fn, "discount")
    new_id = _new_token(rt, receipt)
    return {**_view(session, state, ent, new_id), "tx_hash": tx_hex(receipt), "block_number": receipt["blockNumber"]}


def _financed_from(state: AppState, ent: Enterprise, token_id: int) -> int | None:
    """Id of the financed token that bank ``ent`` already discounted out of ``token_id``, or None."""
    rt = _reader(state)
    try:
        root = _token(rt, token_id).root
    except HTTPException:
        return None
    me = to_checksum_address(ent.address)
    for tid in rt.ids("tokensOfPayable", root):
        discount = rt.discount(tid)
        if discount.fromTokenId == token_id and to_checksum_address(discount.bank) == me:
            return tid
    return None


@router.post("/{token_id}/settle")
def settle_receivable(token_id: TokenId, body: SettleBody, ent: CurrentEnterprise, session: SessionDep,
                      state: StateDep) -> dict:
    """The issuer marks payment of a holder's whole value at maturity (``settle``); the value is redeemed
    only when the holder confirms or the 7-day dispute window passes. Status ``settlement_pending``.

    Errors: 403 NotIssuer; 409 NotMatured / Redeemed / NothingToSettle / SettlementPending /
    PaymentReferenceUsed (references are unique per issuer and holder); 422 NotMember.
    """
    return _settlement_step(token_id, ent, session, state, "settle", token_id, body.payment_reference)


@router.post("/{token_id}/confirm-settlement")
def confirm_settlement(token_id: TokenId, ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """The holder confirms receipt of the marked payment: the value is redeemed (status ``redeemed``).

    Errors: 403 NotHolder; 409 NoSettlementMarked.
    """
    return _settlement_step(token_id, ent, session, state, "confirmSettlement", token_id)


@router.post("/{token_id}/dispute-settlement")
def dispute_settlement(token_id: TokenId, body: DisputeBody, ent: CurrentEnterprise, session: SessionDep,
                       state: StateDep) -> dict:
    """The holder disputes a marked payment within the dispute window; the issuer must mark a new one.

    Errors: 403 NotHolder; 409 NoSettlementMarked / DisputeWindowClosed.
    """
    return _settlement_step(token_id, ent, session, state, "disputeSettlement", token_id, body.reason)


@router.post("/{token_id}/finalize-settlement")
def finalize_settlement(token_id: TokenId, ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """Any member redeems a marked payment once the dispute window has passed without a dispute.

    Errors: 409 NoSettlementMarked / DisputeWindowOpen.
    """
    return _settlement_step(token_id, ent, session, state, "finalizeSettlement", token_id)


def _settlement_step(token_id: int, ent: Enterprise, session: Session, state: AppState, fn_name: str,
                     *args: Any) -> dict:
    chain = require_chain(state)
    rt, _, _ = _load_visible(state, ent, token_id)
    receipt = send_or_refuse(chain, enterprise_key(state, ent), getattr(rt.functions, fn_name)(*args), fn_name)
    return {**_view(session, state, ent, token_id), "tx_hash": tx_hex(receipt), "block_number": receipt["blockNumber"]}
