"""``/v1/warehouse-receipts``: electronic warehouse receipts for steel coils (``WarehouseReceipt``, issue 15).

A warehouse (enterprise role ``warehouse``) issues an ERC-721 receipt to a depositor for coils it holds;
the holder pledges it to a bank, the bank releases the pledge on repayment or enforces it after
maturity; the holder transfers it or takes delivery. The chain keeps the rules ("one coil, one live
receipt", "one pledge") and the history; this module adds what only the records know:

* **Custody from evidence** (:mod:`api.workflows.custody`): issuing needs, for every coil, a stored
  EN 10168 certificate and a latest EPCIS ``receiving``/``storing`` event at the receipt's storage
  location captured by the warehouse itself (422 naming ``coils[i].identifier`` otherwise); delivery
  captures a ``shipping`` event for the coils, signed by the warehouse.
* **Goods from the certificates**: the grade must be one of each coil's certificate grades (B02); net
  weight (kg) and dimensions default to the certificate's (B13/B12, B09).
* **A bank's check** (``GET …/{id}/check``) and the **valuation** timeline (``GET …/{id}/valuation``,
  the ``PriceIndex`` contract and :func:`api.valuation.valuation_timeline`).

Access follows the receivables' rules: the holder, the depositor, the warehouse, the bank of the live
pledge and every party named in the receipt's on-chain history see a receipt; everybody else gets 404,
as for a receipt that does not exist. Amounts are in the currency's minor unit (fen/cents) as ``value``
or a decimal ``amount``; times are unix seconds or ISO 8601 with an offset; days are Unix days (UTC).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from eth_utils import to_checksum_address
from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field
from sqlmodel import Session, select
from web3.logs import DISCARD

from api.bounds import MAX_UNIX_SECONDS, DbId, TokenIdPath
from api.chain import ChainError
from api.chain_index.reads import (
    CHECK_FALLBACKS,
    BatchReverted,
    ViewCall,
    read_in_one_round_trip,
    receipt_agrees,
    receipt_view,
)
from api.deps import CurrentEnterprise, SessionDep, StateDep
from api.epcis.capture import capture_document
from api.errors import CHAIN_REFUSAL_RESPONSES, UnprocessableError, issue
from api.ingest import RecordSigner, announce
from api.models import RECORD_KIND_COIL, Enterprise, Record
from api.money import Money
from api.read_cache import load_facts_many
from api.revert_reasons import explain
from api.state import AppState
from api.verification import verify_record
from api.workflows.adapters import (
    EnterpriseRole,
    PledgeRecord,
    PriceIndexReader,
    ReceiptCoil,
    ReceiptEntry,
    ReceiptRecord,
    RegistryReader,
    WarehouseReceiptReader,
    component_names,
    decode_struct,
)
from api.workflows.contract_calls import (
    contract,
    enterprise_by_address,
    enterprise_key,
    iso,
    party,
    refusal,
    require_chain,
    send_or_refuse,
    tx_hex,
)
from api.workflows.custody import custody, shipping_document
from api.workflows.models import ReceiptDelivery
from provenance.certificate import summarize_certificate
from provenance.receivables import format_amount

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/warehouse-receipts", tags=["warehouse receipts"], responses=CHAIN_REFUSAL_RESPONSES)
ReceiptId = TokenIdPath
DAY_SECONDS = 86_400
MAX_COILS = 64
#: WarehouseReceipt.MAX_COIL_WEIGHT_KG
MAX_COIL_WEIGHT_KG = 10**9


class CoilIn(BaseModel):
    """One coil of a receipt: its identifier; weight and dimensions default to its certificate's."""

    identifier: str = Field(min_length=1, max_length=200, description="88.x.y/suffix of the coil's certificate")
    net_weight_kg: int | None = Field(None, ge=1, le=MAX_COIL_WEIGHT_KG,
                                      description="net weight in kg (default: B13/B12), at most 10^9")
    dimensions: str | None = Field(None, max_length=200, description="as stated (default: the certificate's B09)")


class IssueBody(BaseModel):
    """Body of ``POST /v1/warehouse-receipts`` (the warehouse): GB/T 30332 elements of the receipt."""

    depositor_enterprise_id: DbId = Field(description="the enterprise that deposited the goods (first holder)")
    location: str = Field(min_length=1, max_length=200,
                          description="storage location: the EPCIS bizLocation of the custody events, e.g. an SGLN")
    grade: str | None = Field(None, min_length=1, max_length=200,
                              description="steel grade (default: the first coil certificate's B02)")
    insurance_reference: str = Field("", max_length=200, description="insurance policy reference")
    storage_until: int | str = Field(description="end of the storage period: unix seconds or ISO 8601 with offset")
    coils: list[CoilIn] = Field(min_length=1, max_length=MAX_COILS)


class PledgeBody(Money):
    """Body of ``POST /v1/warehouse-receipts/{id}/pledge`` (the holder)."""

    bank_enterprise_id: DbId
    maturity: int | str = Field(description="loan maturity: unix seconds or ISO 8601 with offset")


class TransferBody(BaseModel):
    """Body of ``POST /v1/warehouse-receipts/{id}/transfer`` (the holder)."""

    to_enterprise_id: DbId


# --------------------------------------------------------------------------- helpers


def _time(value: int | str, field: str) -> int:
    if isinstance(value, int):
        seconds = value
    else:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise UnprocessableError([issue(field, "format", f"{value!r} is not unix seconds or ISO 8601")]) from exc
        if parsed.tzinfo is None:
            raise UnprocessableError([issue(field, "timezone", "an ISO 8601 time needs a UTC offset")])
        seconds = int(parsed.timestamp())
    if not 0 < seconds <= MAX_UNIX_SECONDS:
        raise UnprocessableError([issue(field, "range", f"{field} must be unix seconds in 1..{MAX_UNIX_SECONDS}")])
    return seconds


def _enterprise(session: Session, enterprise_id: int, field: str) -> Enterprise:
    ent = session.get(Enterprise, enterprise_id)
    if ent is None or ent.is_service:
        raise UnprocessableError([issue(field, "not_found", f"enterprise {enterprise_id} does not exist")])
    return ent


def _reader(state: AppState) -> WarehouseReceiptReader:
    return WarehouseReceiptReader(contract(state, "WarehouseReceipt"))


def _chain_now(state: AppState) -> int:
    block = require_chain(state).rpc("eth_getBlockByNumber", ["latest", False]) or {}
    ts = block.get("timestamp", 0)
    return int(ts, 16) if isinstance(ts, str) else int(ts)


def _visible(wr: WarehouseReceiptReader, ent: Enterprise, receipt_id: int, rc: ReceiptRecord) -> bool:
    me = to_checksum_address(ent.address)
    if me in (rc.owner, rc.depositor, rc.warehouse):
        return True
    if rc.status_name == "pledged" and wr.pledge(receipt_id).bank == me:
        return True
    return any(me in (e.actor, e.counterparty) for e in wr.history(receipt_id))


def _load_visible(state: AppState, ent: Enterprise, receipt_id: int) -> tuple[WarehouseReceiptReader, ReceiptRecord]:
    wr = _reader(state)
    try:
        rc = wr.receipt(receipt_id)
    except HTTPException as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"warehouse receipt {receipt_id} not found") from exc
    if not _visible(wr, ent, receipt_id, rc):
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"warehouse receipt {receipt_id} not found or not visible to you")
    return wr, rc


def _pledge_view(session: Session, p: PledgeRecord) -> dict[str, Any] | None:
    if not p.exists:
        return None
    return {"bank": party(session, p.bank), "loan_value": p.loanAmount, "loan_amount": format_amount(p.loanAmount),
            "currency": p.currency_code, "maturity": p.maturity, "maturity_time": iso(p.maturity),
            "pledged_at": iso(p.pledgedAt)}


def _view(session: Session, state: AppState, ent: Enterprise, receipt_id: int) -> dict[str, Any]:
    wr, rc = _load_visible(state, ent, receipt_id)
    finish_delivery(session, state, receipt_id, rc.status_name)
    coils = wr.coils(receipt_id)
    history = []
    for e in wr.history(receipt_id):
        history.append({"action": e.action_name, "actor": party(session, e.actor),
                        "counterparty": party(session, e.counterparty), "amount": e.amount,
                        "related_receipt": e.relatedReceipt or None, "time": iso(e.timestamp),
                        "block_number": e.blockNumber})
    return {
        "id": receipt_id, "status": rc.status_name, "holder": party(session, rc.owner),
        "depositor": party(session, rc.depositor), "warehouse": party(session, rc.warehouse),
        "location": rc.location, "grade": rc.grade, "insurance_reference": rc.insuranceReference,
        "issued_at": iso(rc.issuedAt), "storage_until": rc.storageUntil, "storage_until_time": iso(rc.storageUntil),
        "net_weight_kg": rc.netWeightKg, "split_from": rc.parent or None,
        "coils": [{"identifier": c.identifier, "dimensions": c.dimensions, "net_weight_kg": c.netWeightKg}
                  for c in coils],
        "pledge": _pledge_view(session, wr.pledge(receipt_id)), "history": history,
        "contract": wr.address,
    }


def _certificate(session: Session, identifier: str) -> Record | None:
    rec = session.exec(select(Record).where(Record.identifier == identifier)).first()
    return rec if rec is not None and rec.kind == RECORD_KIND_COIL else None


def _dimensions_text(dims: dict[str, Any] | None) -> str:
    if not dims:
        return ""
    unit = dims.get("Unit", "")
    text = ", ".join(f"{k} {v}{(' ' + unit) if unit else ''}" for k, v in dims.items() if k != "Unit")
    return text[:200]


def _mass_kg(mass: dict[str, Any] | None) -> int | None:
    if not mass:
        return None
    factor = {"kg": 1, "t": 1000}.get(str(mass.get("unit") or "kg").lower())
    try:
        return int(Decimal(str(mass["value"])) * factor) if factor else None
    except (ArithmeticError, ValueError, KeyError):
        return None


def _goods(session: Session, body: IssueBody, warehouse: Enterprise) -> tuple[str, list[tuple[str, str, int]]]:
    """Grade and ``(identifier, dimensions, net kg)`` per coil from the body and the certificates, after the
    custody check; raises 422 listing every coil that fails (``coils[i].identifier``/``net_weight_kg``)."""
    problems = []
    goods: list[tuple[str, str, int]] = []
    summaries = []
    for i, coil in enumerate(body.coils):
        rec = _certificate(session, coil.identifier)
        if rec is None:
            problems.append(issue(f"coils[{i}].identifier", "not_found",
                                  f"coil {coil.identifier} has no certificate record here"))
            summaries.append(None)
            continue
        summaries.append(summarize_certificate(json.loads(rec.document)))
        evidence = custody(session, coil.identifier, body.location, warehouse)
        if evidence is None:
            problems.append(issue(f"coils[{i}].identifier", "custody",
                                  f"coil {coil.identifier}: no EPCIS event names it, so no receiving or storing "
                                  f"event at {body.location} by the warehouse"))
        elif not evidence.holds:
            problems.append(issue(f"coils[{i}].identifier", "custody",
                                  f"coil {coil.identifier} is not in the warehouse's custody at {body.location}: "
                                  f"{evidence.reason}"))
    first = next((s for s in summaries if s), None)
    grade = body.grade or (first or {}).get("grade") or ""
    if not grade:
        problems.append(issue("grade", "required", "no grade given and none on the certificates"))
    for i, (coil, summary) in enumerate(zip(body.coils, summaries, strict=True)):
        if summary is None:
            continue
        if grade and grade not in (summary.get("grades") or []):
            problems.append(issue(f"coils[{i}].identifier", "grade",
                                  f"coil {coil.identifier} is certified as {summary.get('grades')}, not {grade}"))
        weight = coil.net_weight_kg or _mass_kg(summary.get("mass"))
        if not weight:
            problems.append(issue(f"coils[{i}].net_weight_kg", "required",
                                  f"coil {coil.identifier}: no net weight given and none on its certificate"))
            continue
        goods.append((coil.identifier, coil.dimensions or _dimensions_text(summary.get("dimensions")), weight))
    if problems:
        raise UnprocessableError(problems)
    return grade, goods


def _with_tx(view: dict[str, Any], receipt: dict[str, Any]) -> dict[str, Any]:
    return {**view, "tx_hash": tx_hex(receipt), "block_number": receipt["blockNumber"]}


def _receipt_id(wr: WarehouseReceiptReader, receipt: dict[str, Any]) -> int:
    return int(wr.events.Issued().process_receipt(receipt, errors=DISCARD)[0]["args"]["receiptId"])


def _step(state: AppState, session: Session, ent: Enterprise, receipt_id: int, fn_name: str, *args: Any) -> dict:
    chain = require_chain(state)
    wr, _ = _load_visible(state, ent, receipt_id)
    receipt = send_or_refuse(chain, enterprise_key(state, ent), getattr(wr.functions, fn_name)(*args), fn_name)
    return _with_tx(_view(session, state, ent, receipt_id), receipt)


# --------------------------------------------------------------------------- endpoints


@router.post("", status_code=status.HTTP_201_CREATED)
def issue_receipt(body: IssueBody, ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """Issue a receipt (the warehouse's API key) for coils it holds, to the depositor.

    Checks, in order: the caller holds the ``warehouse`` role on chain (403 ``NotWarehouse``); every coil
    has a certificate record here and a latest EPCIS ``receiving``/``storing`` event at ``location``
    captured by the warehouse, and the grade is on its certificate (422 naming ``coils[i].identifier``);
    then the contract (409 ``CoilAlreadyReceipted``: a coil is already in a live receipt; 422
    ``NotMember`` / ``StoragePeriodEnded`` / ``InvalidCoilIdentifier`` …). Answer: 201 the receipt view.
    """
    chain = require_chain(state)
    wr = _reader(state)
    registry = RegistryReader(contract(state, "EnterpriseRegistry"))
    if not registry.has_role(ent.address, EnterpriseRole.WAREHOUSE):
        refused = explain("NotWarehouse", {"account": to_checksum_address(ent.address)})
        raise HTTPException(status.HTTP_403_FORBIDDEN, refused.detail("issue"))
    depositor = _enterprise(session, body.depositor_enterprise_id, "depositor_enterprise_id")
    storage_until = _time(body.storage_until, "storage_until")
    grade, goods = _goods(session, body, ent)
    request = (depositor.address, body.location, grade, body.insurance_reference, storage_until,
               [(identifier, dims, kg) for identifier, dims, kg in goods])
    receipt = send_or_refuse(chain, enterprise_key(state, ent), wr.functions.issue(request), "issue")
    receipt_id = _receipt_id(wr, receipt)
    return _with_tx(_view(session, state, ent, receipt_id), receipt)


@router.get("/{receipt_id}")
def get_receipt(receipt_id: ReceiptId, ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """The receipt: status (``live``/``pledged``/``delivered``/``split``), holder, depositor, warehouse, storage
    location, grade, coils (identifier, dimensions, net kg), the live pledge and the full on-chain history."""
    return _view(session, state, ent, receipt_id)


@router.post("/{receipt_id}/pledge")
def pledge_receipt(receipt_id: ReceiptId, body: PledgeBody, ent: CurrentEnterprise, session: SessionDep,
                   state: StateDep) -> dict:
    """The holder pledges the receipt to a bank for a loan (``WarehouseReceipt.pledge``).

    Errors: 409 ``AlreadyPledged`` (one receipt, one pledge) / ``ReceiptClosed``; 403 ``NotBank`` (the
    bank does not hold the ``bank`` role) / ``NotHolder``; 422 ``MaturityInPast`` / ``ZeroValue``.
    """
    bank = _enterprise(session, body.bank_enterprise_id, "bank_enterprise_id")
    maturity = _time(body.maturity, "maturity")
    if maturity >= 2**64:
        raise UnprocessableError([issue("maturity", "range", "maturity must fit 64 bits")])
    return _step(state, session, ent, receipt_id, "pledge", receipt_id, to_checksum_address(bank.address),
                 body.fen(), body.currency.encode("ascii"), maturity)


@router.post("/{receipt_id}/release")
def release_receipt(receipt_id: ReceiptId, ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """The pledgee bank releases its pledge (the loan was repaid). Errors: 403 ``NotBank`` (not the pledgee
    bank); 409 ``NotPledged`` / ``ReceiptClosed``."""
    return _step(state, session, ent, receipt_id, "release", receipt_id)


@router.post("/{receipt_id}/enforce")
def enforce_receipt(receipt_id: ReceiptId, ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """The pledgee bank enforces its pledge at or after maturity: the receipt (title to the goods) becomes
    the bank's. Errors: 403 ``NotBank``; 409 ``NotMatured`` / ``NotPledged``."""
    return _step(state, session, ent, receipt_id, "enforce", receipt_id)


@router.post("/{receipt_id}/transfer")
def transfer_receipt(receipt_id: ReceiptId, body: TransferBody, ent: CurrentEnterprise, session: SessionDep,
                     state: StateDep) -> dict:
    """The holder transfers the receipt to another member (ERC-721 ``transferFrom``). Errors: 409 ``Pledged``
    (the bank must release first) / ``ReceiptClosed``; 403 ``NotHolder``; 422 ``NotMember``."""
    to = _enterprise(session, body.to_enterprise_id, "to_enterprise_id")
    _, rc = _load_visible(state, ent, receipt_id)
    return _step(state, session, ent, receipt_id, "transferFrom", rc.owner, to_checksum_address(to.address),
                 receipt_id)


@router.post("/{receipt_id}/deliver")
def deliver_receipt(receipt_id: ReceiptId, ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """The holder surrenders the receipt and takes the goods: the receipt closes (``delivered``), its coils are
    free, and an EPCIS ``shipping`` event for them at the storage location is captured, signed by the
    warehouse (answer ``shipping_event``). Errors: 409 ``Pledged`` / ``ReceiptClosed``; 403 ``NotHolder``.

    Crash-safe: the shipping document is validated, then committed as a ``pending`` row of
    ``warehouse_receipt_deliveries`` **before** the transaction is sent; after the transaction the event is
    captured and the row marked ``captured`` in one commit. If the process dies (or the commit fails) in
    between, :func:`finish_delivery` completes it later -- at the next read, check or delivery attempt of
    the receipt and at API start-up -- once the chain says ``delivered``; capture is idempotent (same
    document, same event hash ID), so a delivered receipt ends with exactly one shipping event.
    """
    chain = require_chain(state)
    wr, rc = _load_visible(state, ent, receipt_id)
    finish_delivery(session, state, receipt_id, rc.status_name)
    warehouse = enterprise_by_address(session, rc.warehouse)
    owed = session.get(ReceiptDelivery, receipt_id)
    if warehouse is not None and rc.live and (owed is None or owed.status == "pending"):
        doc = shipping_document([c.identifier for c in wr.coils(receipt_id)], rc.location, datetime.now(UTC),
                                receipt_id)
        _capture_shipping(session, state, warehouse, doc)  # validates: a bad document fails before the transaction
        session.rollback()
        row = session.get(ReceiptDelivery, receipt_id) or ReceiptDelivery(
            receipt_id=receipt_id, warehouse_enterprise_id=warehouse.id or 0, document="")
        row.document, row.status, row.warehouse_enterprise_id = json.dumps(doc), "pending", warehouse.id or 0
        session.add(row)
        session.commit()
    try:
        receipt = chain.send(enterprise_key(state, ent), wr.functions.deliver(receipt_id))
    except ChainError as exc:
        session.rollback()
        stale = session.get(ReceiptDelivery, receipt_id)
        if stale is not None and stale.status == "pending":  # refused: nothing was delivered, nothing is owed
            session.delete(stale)
            session.commit()
        raise refusal(exc, "deliver") from exc
    event = finish_delivery(session, state, receipt_id, "delivered")
    out = _with_tx(_view(session, state, ent, receipt_id), receipt)
    out["shipping_event"] = event
    return out


def _capture_shipping(session: Session, state: AppState, warehouse: Enterprise, doc: dict[str, Any]) -> Any:
    from api.routes.epcis import load_schema

    return capture_document(session, enterprise=warehouse, doc=doc, schema=load_schema(),
                            signer=RecordSigner.for_request(state, warehouse))


def finish_delivery(session: Session, state: AppState, receipt_id: int, chain_status: str) -> dict[str, Any] | None:
    """Capture the shipping event owed for ``receipt_id`` when its delivery is ``pending`` and the chain says
    the receipt is ``delivered`` (``chain_status``, read by the caller); mark the row ``captured`` in the same
    commit and announce the event. Returns the event's capture entry (``{index, eventID, identifier,
    status}``), or None when nothing is owed. Idempotent: a second call, or a capture that already happened
    before a crash, finds the same event (status ``duplicate``) and writes nothing new."""
    row = session.get(ReceiptDelivery, receipt_id)
    if row is None or row.status != "pending" or chain_status != "delivered":
        return None
    warehouse = session.get(Enterprise, row.warehouse_enterprise_id)
    if warehouse is None:
        return None
    captured = _capture_shipping(session, state, warehouse, json.loads(row.document))
    row.status, row.event_id = "captured", captured.event_ids[0]
    session.add(row)
    session.commit()
    if captured.created:
        announce(state, "epcis_event", captured.created)
    return captured.events[0]


def finish_pending_deliveries_of(engine: Any, state: AppState) -> int:
    """:func:`finish_pending_deliveries` in a session of its own (API start-up)."""
    with Session(engine, expire_on_commit=False) as session:
        return finish_pending_deliveries(session, state)


def finish_pending_deliveries(session: Session, state: AppState) -> int:
    """:func:`finish_delivery` for every pending delivery (API start-up); returns how many were captured.
    A receipt the chain does not call ``delivered`` keeps its row (the transaction may still come, or the
    holder retries)."""
    if state.chain is None or not state.settings.warehouse_receipt_address:
        return 0
    done = 0
    wr = _reader(state)
    for row in session.exec(select(ReceiptDelivery).where(ReceiptDelivery.status == "pending")).all():
        if finish_delivery(session, state, row.receipt_id, wr.receipt(row.receipt_id).status_name) is not None:
            done += 1
    return done


@router.get("/{receipt_id}/check")
def check_receipt(receipt_id: ReceiptId, ent: CurrentEnterprise, session: SessionDep, state: StateDep) -> dict:
    """What a bank asks before (and while) lending against a receipt.

    Answer: ``genuine`` (issued by the ``WarehouseReceipt`` contract the API is configured with, by an
    enterprise that holds the ``warehouse`` role now), ``live``, per coil ``certificate`` (the
    ``/v1/verify`` checks of its certificate: digest, signature, inclusion proof, anchor, seals),
    ``custody`` (the latest EPCIS event naming it, and whether it proves custody at the storage
    location by the warehouse) and ``other_live_receipt`` (the contract's coil → receipt map: must be
    this receipt), ``pledged`` / ``pledge`` (bank, loan, maturity) / ``holder``, ``value_now`` (net weight ×
    today's index price, when a price index is configured), ``sound``: all of the above hold, and
    ``chain_facts`` ``{source, indexed_to_block, confirmed_at_block}``.

    Served from the chain-event index when it has the receipt: the index names the coils, warehouse and
    currency to ask about, and every live fact (receipt, coils, pledge, history, warehouse role, coil →
    receipt map, price) is read on chain in **one** JSON-RPC batch at the head block (``source``
    ``index+chain``); when the index lacks the receipt or says anything the chain does not, the answer is
    read from the chain call by call (``source`` ``chain``, counted in
    ``traceledger_chain_index_check_fallbacks_total``).
    """
    indexed = _check_from_index(session, state, ent, receipt_id)
    if indexed is not None:
        return indexed
    wr, rc = _load_visible(state, ent, receipt_id)
    registry = RegistryReader(contract(state, "EnterpriseRegistry"))
    genuine = registry.has_role(rc.warehouse, EnterpriseRole.WAREHOUSE)
    coils = wr.coils(receipt_id)
    live_receipts = [wr.receipt_of_coil(c.identifier) for c in coils]
    pledge = wr.pledge(receipt_id)
    return _check_answer(session, state, ent, receipt_id, wr.address, rc, coils, live_receipts, pledge, genuine,
                         _value_now(state, rc, pledge),
                         {"source": "chain", "indexed_to_block": None, "confirmed_at_block": None})


def _check_answer(session: Session, state: AppState, ent: Enterprise, receipt_id: int, address: str,
                  rc: ReceiptRecord, coils: list[ReceiptCoil], live_receipts: list[int], pledge: PledgeRecord,
                  genuine: bool, value_now: dict[str, Any] | None, chain_facts: dict[str, Any]) -> dict[str, Any]:
    """The check's answer from the chain facts (read either way) plus each coil's certificate verdict and
    custody evidence from the database."""
    finish_delivery(session, state, receipt_id, rc.status_name)
    warehouse = enterprise_by_address(session, rc.warehouse)
    facts_of = load_facts_many(session.connection(), [c.identifier for c in coils])
    out_coils = []
    for c, holder_of_coil in zip(coils, live_receipts, strict=True):
        entry: dict[str, Any] = {"identifier": c.identifier, "net_weight_kg": c.netWeightKg}
        facts = facts_of.get(c.identifier)
        if facts is None:
            entry["certificate"] = {"verified": False, "checks": [], "error": "no certificate record"}
        else:
            batches = {facts.batch.id: facts.batch} if facts.batch is not None else {}
            verdict = verify_record(session, facts.record, chain=state.chain, seal_cache=state.seal_cache,
                                    owner=facts.owner, batches=batches)
            entry["certificate"] = {"verified": bool(verdict.get("verified")),
                                    "checks": [{"name": k.get("name"), "ok": k.get("ok")}
                                               for k in verdict.get("checks", [])]}
        evidence = custody(session, c.identifier, rc.location, warehouse) if warehouse is not None else None
        entry["custody"] = evidence.as_dict() if evidence is not None else {"holds": False,
                                                                              "reason": "no event names the coil"}
        entry["live_receipt"] = holder_of_coil or None
        entry["other_live_receipt"] = holder_of_coil not in (0, receipt_id) or (rc.live and holder_of_coil == 0)
        out_coils.append(entry)
    sound = (genuine and rc.live and all(c["certificate"]["verified"] for c in out_coils)
             and all(c["custody"]["holds"] for c in out_coils) and not any(c["other_live_receipt"] for c in out_coils))
    return {
        "receipt_id": receipt_id, "genuine": genuine, "status": rc.status_name, "live": rc.live,
        "contract": address, "warehouse": party(session, rc.warehouse), "holder": party(session, rc.owner),
        "depositor": party(session, rc.depositor), "location": rc.location, "grade": rc.grade,
        "net_weight_kg": rc.netWeightKg, "pledged": pledge.exists, "pledge": _pledge_view(session, pledge),
        "pledged_to_you": pledge.exists and pledge.bank == to_checksum_address(ent.address),
        "coils": out_coils, "all_certificates_verified": all(c["certificate"]["verified"] for c in out_coils),
        "custody_confirmed": all(c["custody"]["holds"] for c in out_coils),
        "no_other_live_receipt": not any(c["other_live_receipt"] for c in out_coils),
        "value_now": value_now, "sound": sound, "chain_facts": chain_facts,
    }


def _check_from_index(session: Session, state: AppState, ent: Enterprise, receipt_id: int) -> dict[str, Any] | None:
    """The bank check from the index plus one JSON-RPC batch, or None (answer from the chain instead)."""
    if state.indexer is None or state.chain is None:
        return None
    view = receipt_view(session, receipt_id)
    if view is None:
        CHECK_FALLBACKS.labels("receipt_not_indexed").inc()
        return None
    wr = contract(state, "WarehouseReceipt")
    er = contract(state, "EnterpriseRegistry")
    currency = view.receipt.currency or "CNY"
    day = int(time.time()) // DAY_SECONDS  # confirmed against the head block's time below
    price_calls = []
    if state.settings.price_index_address and view.receipt.grade:
        from api.valuation import grade_key

        pi = contract(state, "PriceIndex")
        key, cur = grade_key(view.receipt.grade), currency.encode("ascii", errors="replace")
        price_calls = [ViewCall(pi, "priceAt", (key, cur, day - 1)),
                       ViewCall(pi, "pricesBetween", (key, cur, day, day))]
    try:
        block, results = read_in_one_round_trip(state.chain, [
            ViewCall(wr, "getReceipt", (receipt_id,)), ViewCall(wr, "getCoils", (receipt_id,)),
            ViewCall(wr, "getPledge", (receipt_id,)), ViewCall(wr, "getHistory", (receipt_id,)),
            ViewCall(er, "hasRole", (view.receipt.warehouse, int(EnterpriseRole.WAREHOUSE))),
            *(ViewCall(wr, "receiptOfIdentifier", (c.identifier,)) for c in view.coils), *price_calls])
    except BatchReverted:
        CHECK_FALLBACKS.labels("reverted").inc()
        return None
    raw_rc, raw_coils, raw_pledge, raw_history, is_warehouse = results[:5]
    rc = decode_struct(ReceiptRecord, component_names(wr, "getReceipt"), raw_rc[0])
    coils = [decode_struct(ReceiptCoil, component_names(wr, "getCoils"), c) for c in raw_coils[0]]
    pledge = decode_struct(PledgeRecord, component_names(wr, "getPledge"), raw_pledge[0])
    history = [decode_struct(ReceiptEntry, component_names(wr, "getHistory"), e) for e in raw_history[0]]
    live_receipts = [int(r[0]) for r in results[5:5 + len(view.coils)]]
    if not receipt_agrees(view, rc, coils, pledge, rc.status_name):
        CHECK_FALLBACKS.labels("receipt_index_differs").inc()
        log.info("chain index differs from the chain for warehouse receipt %d: answering from the chain", receipt_id)
        return None
    me = to_checksum_address(ent.address)
    visible = (me in (rc.owner, rc.depositor, rc.warehouse) or (rc.status_name == "pledged" and pledge.bank == me)
               or any(me in (e.actor, e.counterparty) for e in history))
    if not visible:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"warehouse receipt {receipt_id} not found or not visible to you")
    now = _int(block["timestamp"])
    value_now = None
    if state.settings.price_index_address:
        if now // DAY_SECONDS == day and price_calls:
            value_now = _value_from(rc, pledge, currency, day, results[-2], results[-1])
        else:  # the day turned between the clock and the head block: read the price as the chain path does
            value_now = _value_now(state, rc, pledge)
    return _check_answer(session, state, ent, receipt_id, wr.address, rc, coils, live_receipts, pledge,
                         bool(is_warehouse[0]), value_now,
                         {"source": "index+chain", "indexed_to_block": view.indexed_to_block,
                          "confirmed_at_block": _int(block["number"])})


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def _value_from(rc: ReceiptRecord, pledge: PledgeRecord, currency: str, day: int, price_at: tuple[Any, ...],
                between: tuple[Any, ...]) -> dict[str, Any] | None:
    """``value_now`` (as :func:`_value_now`) from batched ``priceAt(day - 1)`` and ``pricesBetween(day, day)``."""
    from api.valuation import format_minor, valuation_timeline

    carried_price, carried_day = int(price_at[0]), int(price_at[1])
    pairs = [(carried_day, carried_price)] if carried_price and day > 0 else []
    on, records = between
    pairs.extend((int(d), int(r[0])) for d, r in zip(on, records, strict=True))
    if not pledge.exists:
        currency = "CNY"
    try:
        val = valuation_timeline(rc.netWeightKg, pairs, pledge.loanAmount if pledge.exists else None, None, day, day)
    except (ValueError, TypeError):
        return None
    d = val.latest
    return {"day": d.day, "currency": currency, "price_per_tonne": d.price_per_tonne_minor,
            "price_day": d.price_day, "value": d.value_minor,
            "amount": format_minor(d.value_minor, currency) if d.value_minor is not None else None,
            "ltv": str(d.ltv) if d.ltv is not None else None}


# --------------------------------------------------------------------------- valuation (PriceIndex)


def _price_points(state: AppState, grade: str, currency: str, day_from: int, day_to: int) -> list[tuple[int, int]]:
    """``(day, price per tonne)`` of the grade's series in ``currency`` for ``day_from..day_to``: the price in
    force the day before and every price published in the range (``PriceIndexReader.valuation_prices``)."""
    from api.valuation import grade_key

    return PriceIndexReader(contract(state, "PriceIndex")).valuation_prices(grade_key(grade), currency, day_from,
                                                                            day_to)


def _valuation(state: AppState, rc: ReceiptRecord, currency: str, loan: int | None, ltv: Decimal | None,
               day_from: int, day_to: int) -> Any:
    from api.valuation import valuation_timeline

    prices = _price_points(state, rc.grade, currency, day_from, day_to)
    return valuation_timeline(rc.netWeightKg, prices, loan, ltv, day_from, day_to)


def _value_now(state: AppState, rc: ReceiptRecord, pledge: PledgeRecord) -> dict[str, Any] | None:
    from api.valuation import format_minor

    if not state.settings.price_index_address:
        return None
    today = _chain_now(state) // DAY_SECONDS
    currency = pledge.currency_code if pledge.exists else "CNY"
    try:
        val = _valuation(state, rc, currency, pledge.loanAmount if pledge.exists else None, None, today, today)
    except (ImportError, HTTPException):
        return None
    day = val.latest
    return {"day": day.day, "currency": currency, "price_per_tonne": day.price_per_tonne_minor,
            "price_day": day.price_day, "value": day.value_minor,
            "amount": format_minor(day.value_minor, currency) if day.value_minor is not None else None,
            "ltv": str(day.ltv) if day.ltv is not None else None}


@router.get("/{receipt_id}/valuation")
def receipt_valuation(
    receipt_id: ReceiptId, ent: CurrentEnterprise, session: SessionDep, state: StateDep,
    day_from: Annotated[int | None, Query(alias="from", ge=0, le=2_932_896,
                                          description="first Unix day (default: the issue day)")] = None,
    day_to: Annotated[int | None, Query(alias="to", ge=0, le=2_932_896, description="last Unix day (default: today)")]
    = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$", description="default: the pledge's, else CNY")]
    = None,
    margin_call_ltv: Annotated[Decimal | None, Query(gt=0, le=100, description="LTV above which the bank calls "
                                                     "margin, e.g. 0.7")] = None,
) -> dict:
    """Collateral value per day of ``from..to`` (Unix days): net weight × the grade's ``PriceIndex`` price
    (latest on or before the day, per tonne, minor unit, rounded down), the loan-to-value of the live
    pledge (when it is in ``currency``) and the days the LTV crossed ``margin_call_ltv`` (``above`` = margin
    call, ``below`` = back at or under it; the day before ``from`` counts).
    Errors: 422 ``from`` after ``to`` or a range over 3660 days; 503 no PriceIndex configured."""
    _, rc = _load_visible(state, ent, receipt_id)
    pledge = _reader(state).pledge(receipt_id)
    today = _chain_now(state) // DAY_SECONDS
    first = rc.issuedAt // DAY_SECONDS if day_from is None else day_from
    last = today if day_to is None else day_to
    if first > last:
        raise UnprocessableError([issue("from", "range", f"from ({first}) is after to ({last})")])
    cur = currency or (pledge.currency_code if pledge.exists else "CNY")
    loan = pledge.loanAmount if pledge.exists and pledge.currency_code == cur else None  # no LTV across currencies
    from api.valuation import currency_exponent, day_date, format_minor

    try:
        currency_exponent(cur)
    except ValueError as exc:
        raise UnprocessableError([issue("currency", "currency", str(exc))]) from exc
    try:
        val = _valuation(state, rc, cur, loan, margin_call_ltv, first, last)
    except ImportError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the price index is not part of this build") from exc
    except (ValueError, TypeError) as exc:
        raise UnprocessableError([issue("from", "range", str(exc))]) from exc
    return {
        "receipt_id": receipt_id, "grade": rc.grade, "net_weight_kg": rc.netWeightKg, "currency": cur,
        "loan_value": loan, "margin_call_ltv": str(margin_call_ltv) if margin_call_ltv is not None else None,
        "from": first, "to": last,
        "days": [{"day": d.day, "date": day_date(d.day).isoformat(), "price_per_tonne": d.price_per_tonne_minor,
                  "price_day": d.price_day, "value": d.value_minor,
                  "amount": format_minor(d.value_minor, cur) if d.value_minor is not None else None,
                  "ltv": str(d.ltv) if d.ltv is not None else None,
                  "above_threshold": d.above_threshold} for d in val.days],
        "crossings": [{"day": c.day, "direction": c.direction, "ltv": str(c.ltv), "value": c.value_minor}
                      for c in val.crossings],
        "margin_calls": [c.day for c in val.margin_calls],
    }


# --------------------------------------------------------------------------- coil pages and lineage


def coil_receipt_status(state: AppState, identifier: str) -> dict[str, Any] | None:
    """Public receipt status of a coil for its ``/id`` page and lineage node: ``{receipt_id, status
    (live|pledged), warehouse (address), pledged}`` while a live receipt holds it, ``{receipt_id: None}``
    when none does, None when the chain or the contract is not available. Bank, loan and holder stay
    private (they follow the receipt's visibility rules)."""
    if state.chain is None or not state.settings.warehouse_receipt_address:
        return None
    try:
        wr = _reader(state)
        receipt_id = wr.receipt_of_coil(identifier)
        if receipt_id == 0:
            return {"receipt_id": None, "status": None, "pledged": False}
        rc = wr.receipt(receipt_id)
    except Exception:  # noqa: BLE001 - a page never fails because the chain is slow or down
        return None
    return {"receipt_id": receipt_id, "status": rc.status_name, "warehouse": rc.warehouse,
            "pledged": rc.status_name == "pledged"}
