"""What the routes read from the index, and the one-round-trip confirmation on chain of what a bank relies on.

A dishonest API operator (or anyone who can write its database) can put anything into the index tables.
What a poisoned table could make ``GET /v1/receivables/{id}/check`` say, and what stops it:

* another holder, a higher balance, "not financed", "not redeemed", another slot (issuer, currency,
  maturity), another parent or payable: **confirmed** -- ``getToken(id)`` is read on chain for every
  check; any difference from the index and the whole answer is built from the chain instead
  (``chain_facts.source == "chain"``, counted in ``traceledger_chain_index_check_fallbacks_total``);
* another confirming core enterprise, invoice digest or face value: **confirmed** by ``getPayable(root)``
  (the contract sets ``tokenOfInvoice(digest) = root`` with the payable and never changes it, so a
  confirmed payable is the one token of its invoice);
* "free to finance", the live offer to this bank and its terms, the issuer still a core enterprise,
  the time: **read on chain** (``freeToFinance``, ``allowance``, ``getOffer``, ``hasRole``, latest block);
* earlier hops (their holders, values split, creation, discount terms): **confirmed** -- ``getToken`` of every
  hop and ``getDiscount`` of every discounted one; a hop financed while its parent is not was made by
  ``discount``, so a discount row dropped from the index shows as well.

The index decides only *which* tokens to ask about (the chain of parents and the payable, instead of
``chainOf`` and then a read per hop, one after another); a poisoned row there makes the answer come from
the chain. Upstream holders also decide visibility; they are confirmed with the rest before anything is
shown.

All confirmations are read at one block, the head (``eth_blockNumber``), in **one** JSON-RPC batch (one HTTP
round trip); the state at a block never changes, so the answers are kept per (calls, block) and every later
check of the same token by the same bank within that block costs the ``eth_blockNumber`` alone.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from eth_utils import to_checksum_address
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types, get_abi_output_types
from prometheus_client import Counter
from sqlalchemy import bindparam
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from api.caches import BoundedCache
from api.chain import ChainClient, ChainError, ChainUnavailable, with_retry
from api.chain_index.indexer import DEFAULT_CURSOR, final_head
from api.chain_index.models import (
    IndexCursor,
    IndexedDiscount,
    IndexedPayable,
    IndexedReceipt,
    IndexedReceiptCoil,
    IndexedTicket,
    IndexedTicketStep,
    IndexedToken,
)
from api.models import Enterprise
from provenance.verify import FINALITY_QBFT

#: token and ticket ids are BIGINT columns: larger ids (the API's paths take uint256) are never looked up here
MAX_INDEXED_ID = 2**63

CHECK_FALLBACKS = Counter("traceledger_chain_index_check_fallbacks_total",
                          "Bank checks answered from the chain alone instead of the index, by reason", ["reason"])
VIEW_FALLBACKS = Counter("traceledger_chain_index_view_fallbacks_total",
                         "GET /v1/receivables/{id} answered from the chain alone instead of the index, by reason",
                         ["reason"])


@dataclass(frozen=True)
class IndexedChain:
    """A token as indexed: ``hops`` from the confirmed payable (root) down to the token itself, the payable,
    the discounts of hops that were made by ``discount``, the last indexed block, and ``family``: every
    indexed token of the same payable by id (the issuer's list of holders); ``names``: the party of each indexed
    holder and of the issuer by address (:func:`parties` shape, read with the rows)."""

    token: IndexedToken
    hops: list[IndexedToken]
    payable: IndexedPayable
    discounts: dict[int, IndexedDiscount]
    indexed_to_block: int
    family: dict[int, IndexedToken] = field(default_factory=dict)
    names: dict[str, dict[str, Any]] = field(default_factory=dict)


def indexed_block(session: Session, name: str = DEFAULT_CURSOR) -> int | None:
    """Last block the indexer wrote, or None."""
    row = session.get(IndexCursor, name)
    return None if row is None else row.block_number


_T = IndexedToken.__table__  # type: ignore[attr-defined]
_P = IndexedPayable.__table__  # type: ignore[attr-defined]
_D = IndexedDiscount.__table__  # type: ignore[attr-defined]
_C = IndexCursor.__table__  # type: ignore[attr-defined]
_OWNER = Enterprise.__table__.alias("owner_enterprise")  # type: ignore[attr-defined]
_ISSUER = Enterprise.__table__.alias("issuer_enterprise")  # type: ignore[attr-defined]
#: every indexed token of the token's payable, each with its discount, the payable, the cursor and the enterprises
#: of the holder and of the issuer: a token's whole indexed chain in one statement (one database round trip)
_FAMILY = (core_select(*(c.label("t_" + c.name) for c in _T.c), *(c.label("p_" + c.name) for c in _P.c),
                       *(c.label("d_" + c.name) for c in _D.c), _C.c.block_number.label("cursor_block"),
                       _OWNER.c.id.label("owner_id"), _OWNER.c.name.label("owner_name"),
                       _ISSUER.c.id.label("issuer_id"), _ISSUER.c.name.label("issuer_name"))
           .select_from(_T.outerjoin(_P, _P.c.root_token_id == _T.c.root)
                        .outerjoin(_D, _D.c.token_id == _T.c.token_id)
                        .outerjoin(_C, _C.c.name == bindparam("cursor_name"))
                        .outerjoin(_OWNER, _OWNER.c.address == _T.c.owner)
                        .outerjoin(_ISSUER, _ISSUER.c.address == _P.c.issuer))
           .where(_T.c.root == core_select(_T.c.root).where(_T.c.token_id == bindparam("token_id"))
                  .scalar_subquery()))


def _columns(row: Any, prefix: str, table: Any) -> dict[str, Any]:
    return {c.name: row[f"{prefix}{c.name}"] for c in table.c}


def token_chain(session: Session, token_id: int) -> IndexedChain | None:
    """The indexed token and its chain back to the payable, read with one statement (:data:`_FAMILY`), or None
    when the token (or its payable, or the cursor) is not indexed yet. ``names`` holds the party
    (:func:`parties` shape) of every indexed holder of the payable and of its issuer."""
    if not 0 < token_id < MAX_INDEXED_ID:  # ids count up from 1; larger ones exist only on the chain's terms
        return None
    rows = session.connection().execute(_FAMILY, {"token_id": token_id, "cursor_name": DEFAULT_CURSOR}).mappings()
    family: dict[int, IndexedToken] = {}
    discounts_all: dict[int, IndexedDiscount] = {}
    names: dict[str, dict[str, Any]] = {}
    payable: IndexedPayable | None = None
    cursor: int | None = None
    for row in rows:
        t = IndexedToken(**_columns(row, "t_", _T))
        family.setdefault(t.token_id, t)
        if row["d_token_id"] is not None:
            discounts_all.setdefault(t.token_id, IndexedDiscount(**_columns(row, "d_", _D)))
        if payable is None and row["p_root_token_id"] is not None:
            payable = IndexedPayable(**_columns(row, "p_", _P))
            names[payable.issuer] = {"address": payable.issuer, "enterprise_id": row["issuer_id"],
                                     "name": row["issuer_name"]}
        names.setdefault(t.owner, {"address": t.owner, "enterprise_id": row["owner_id"], "name": row["owner_name"]})
        cursor = row["cursor_block"]
    token = family.get(token_id)
    if token is None or cursor is None or payable is None:
        return None
    hops = [token]
    while hops[-1].parent:
        parent = family.get(hops[-1].parent)
        if parent is None or len(hops) > 64:
            return None
        hops.append(parent)
    hops.reverse()
    if hops[0].token_id != token.root:
        return None
    discounts = {h.token_id: discounts_all[h.token_id] for h in hops if h.token_id in discounts_all}
    return IndexedChain(token=token, hops=hops, payable=payable, discounts=discounts, indexed_to_block=int(cursor),
                        family=family, names=names)


def index_agrees(view: IndexedChain, tok: Any, pay: Any) -> bool:
    """True when the chain's ``getToken`` (``tok``, a TokenRecord) and ``getPayable`` (``pay``, a
    PayableRecord) say what the index says of the token and its payable, field by field."""
    t, p = view.token, view.payable
    return (to_checksum_address(tok.owner) == t.owner and tok.balance == int(t.balance) and tok.slot == int(t.slot)
            and tok.parent == t.parent and tok.root == t.root and tok.originalValue == int(t.original_value)
            and tok.createdAt == t.created_at and tok.createdBlock == t.created_block
            and bool(tok.financed) == t.financed and bool(tok.redeemed) == t.redeemed
            and view.hops[-1].parent == tok.parent
            and "0x" + bytes(pay.invoiceDigest).hex() == p.invoice_digest and pay.issuer == p.issuer
            and pay.beneficiary == p.beneficiary and pay.faceValue == int(p.face_value)
            and pay.settledValue == int(p.settled_value) and pay.issuedAt == p.issued_at)


def hops_agree(view: IndexedChain, records: list[Any], discounts: dict[int, Any]) -> bool:
    """True when the chain's ``getToken`` of every hop (``records``, root first, TokenRecords) and ``getDiscount``
    of every hop the index calls discounted (``discounts``) say what the index says: holder, value at creation,
    parent, creation time and block, financed; and a hop is discounted exactly when it is financed while its
    parent is not (``discount`` is the only way value becomes financed), so a dropped discount shows too."""
    if len(records) != len(view.hops):
        return False
    for i, (h, rec) in enumerate(zip(view.hops, records, strict=True)):
        if (to_checksum_address(rec.owner) != h.owner or rec.originalValue != int(h.original_value)
                or rec.parent != h.parent or rec.createdAt != h.created_at or rec.createdBlock != h.created_block
                or bool(rec.financed) != h.financed):
            return False
        made_by_discount = bool(rec.financed) and (i == 0 or not records[i - 1].financed)
        if made_by_discount != (h.token_id in view.discounts):
            return False
    for token_id, d in discounts.items():
        row = view.discounts[token_id]
        if (d.bank, d.holder, d.fromTokenId, d.value, d.rateBps, d.price, d.paymentReference, d.timestamp) != (
                row.bank, row.holder, row.from_token_id, int(row.value), row.rate_bps, int(row.price),
                row.payment_reference, row.timestamp):
            return False
    return True


def parties(session: Session, addresses: list[str], known: dict[str, dict[str, Any]] | None = None
            ) -> dict[str, dict[str, Any]]:
    """``{address: {address, enterprise_id, name}}`` for many accounts in one query
    (the shape of :func:`api.workflows.contract_calls.party`); none when ``known`` (e.g. :attr:`IndexedChain.names`,
    read in the same transaction) has every one of them."""
    wanted = {to_checksum_address(a) for a in addresses}
    if known is not None and wanted <= known.keys():
        return {a: known[a] for a in wanted}
    found = {e.address: e for e in session.exec(select(Enterprise).where(col(Enterprise.address).in_(wanted)))}
    return {a: {"address": a, "enterprise_id": found[a].id if a in found else None,
                "name": found[a].name if a in found else None} for a in wanted}


def ticket_steps(session: Session, ticket_id: int) -> tuple[IndexedTicket | None, list[IndexedTicketStep]]:
    """The indexed ticket and its steps in chain order (block, log index); ``(None, [])`` when not indexed."""
    if not 0 < ticket_id < MAX_INDEXED_ID:
        return None, []
    ticket = session.get(IndexedTicket, ticket_id)
    steps = list(session.exec(select(IndexedTicketStep).where(IndexedTicketStep.ticket_id == ticket_id)
                              .order_by(col(IndexedTicketStep.block_number), col(IndexedTicketStep.log_index))))
    return ticket, steps


# --------------------------------------------------------------------------- one JSON-RPC batch


@dataclass(frozen=True)
class ViewCall:
    """``contract.fn(*args)`` read by ``eth_call`` at ``latest``."""

    contract: Any
    fn: str
    args: tuple[Any, ...]


class BatchReverted(ChainError):
    """One of the batched reads reverted (an unknown token, say)."""


#: the node runs eth_call one at a time and refuses a client with more than 4 waiting (``-32005``,
#: ``ledger.rpc_guard.RpcLimits.max_pending_calls_per_client``): this process sends at most 2 batches at once
_IN_FLIGHT = threading.BoundedSemaphore(2)
#: confirmations by (calls, block number): the state at a block never changes, so within one block every
#: check of the same token by the same bank reuses one batch
_CONFIRMED: BoundedCache[tuple[dict[str, Any], list[tuple[Any, ...]]]] = BoundedCache("chain_confirmations", 4096)
LIMIT_EXCEEDED = -32005


def _batch(chain: ChainClient, requests: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
    provider = chain.w3.provider
    if hasattr(provider, "make_batch_request"):
        answers = with_retry(lambda: provider.make_batch_request(requests), what="JSON-RPC batch")
    else:
        answers = [with_retry(lambda r=r: provider.make_request(*r), what=r[0]) for r in requests]
    if not isinstance(answers, list) or len(answers) != len(requests):
        raise ChainError(f"JSON-RPC batch answered {answers!r:.200}")
    return answers  # type: ignore[return-value]


@functools.lru_cache(maxsize=256)
def _abi_of(item_json: str) -> tuple[bytes, list[str], list[str]]:
    """Selector, input and output types of one function ABI item (hashing the selector is the costly part)."""
    item = json.loads(item_json)
    return function_abi_to_4byte_selector(item), get_abi_input_types(item), get_abi_output_types(item)


def _types(c: ViewCall) -> tuple[bytes, list[str], list[str]]:
    items = [i for i in c.contract.abi if i.get("type") == "function" and i.get("name") == c.fn]
    if len(items) != 1:
        raise ChainError(f"{c.fn}: {len(items)} functions of that name in the ABI (one expected)")
    return _abi_of(json.dumps(items[0], sort_keys=True))


def read_in_one_round_trip(chain: ChainClient, calls: list[ViewCall]) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """The highest **final** block (raw JSON) and each call's decoded outputs **at that block**:
    ``eth_blockNumber``, then (unless this very block's answers are cached) one JSON-RPC batch of
    ``eth_getBlockByNumber`` and the ``eth_call`` s pinned to that block number. Final means the chain's
    finality model (``chain.finality``): under ``qbft`` the head itself, under ``confirmations:N`` the head
    minus N - 1 (:func:`api.chain_index.indexer.final_head`), so a fact confirmed here can never be undone by
    a reorganisation. A node refusing for load (``-32005``) is retried with backoff.
    Raises BatchReverted (a call reverted), ChainError, ChainUnavailable (unreachable, still busy, or no
    block final yet)."""
    head = chain.rpc("eth_blockNumber", [])  # raw: web3's middleware and formatting cost more than the call
    latest = int(head, 16) if isinstance(head, str) else int(head)
    number = final_head(latest, getattr(chain, "finality", FINALITY_QBFT))
    if number < 0:
        raise ChainUnavailable(f"no block is final yet under {chain.finality} (head {latest})")
    key = (tuple((c.contract.address, c.fn, c.args) for c in calls), number)
    cached = _CONFIRMED.get(key)
    if cached is not None:
        return cached
    tag = hex(number)
    requests: list[tuple[Any, Any]] = [("eth_getBlockByNumber", [tag, False])]
    for c in calls:
        selector, inputs, _ = _types(c)
        data = "0x" + (selector + chain.w3.codec.encode(inputs, list(c.args))).hex()
        requests.append(("eth_call", [{"to": c.contract.address, "data": data}, tag]))
    for attempt in range(6):
        with _IN_FLIGHT:
            cached = _CONFIRMED.get(key)  # another request of this block got it while this one waited
            if cached is not None:
                return cached
            answers = _batch(chain, requests)
        errors = [a["error"] for a in answers if a.get("error")]
        busy = any(isinstance(e, dict) and e.get("code") == LIMIT_EXCEEDED for e in errors)
        if not busy:
            break
        time.sleep(0.02 * 2**attempt)
    if errors:
        if busy:
            raise ChainUnavailable(f"the node is busy executing calls (retried 6 times): {errors[0]}")
        raise BatchReverted(f"batched read refused: {errors[0]}")
    block = answers[0]["result"]
    out = []
    for c, answer in zip(calls, answers[1:], strict=True):
        raw = bytes.fromhex(str(answer["result"])[2:])
        out.append(tuple(chain.w3.codec.decode(_types(c)[2], raw)))
    _CONFIRMED[key] = (block, out)
    return block, out


# --------------------------------------------------------------------------- warehouse receipts


@dataclass(frozen=True)
class IndexedReceiptView:
    """A warehouse receipt as indexed: the receipt row, its coils in receipt order, the last indexed block."""

    receipt: IndexedReceipt
    coils: list[IndexedReceiptCoil]
    indexed_to_block: int


def receipt_view(session: Session, receipt_id: int) -> IndexedReceiptView | None:
    """The indexed receipt and its coils (two queries), or None when not indexed (yet)."""
    if not 0 < receipt_id < MAX_INDEXED_ID:
        return None
    cursor = indexed_block(session)
    row = session.get(IndexedReceipt, receipt_id)
    if row is None or cursor is None:
        return None
    coils = list(session.exec(select(IndexedReceiptCoil).where(IndexedReceiptCoil.receipt_id == receipt_id)
                              .order_by(col(IndexedReceiptCoil.position))))
    return IndexedReceiptView(receipt=row, coils=coils, indexed_to_block=cursor)


def receipt_agrees(view: IndexedReceiptView, rc: Any, coils: list[Any], pledge: Any, status_name: str) -> bool:
    """True when the chain's ``getReceipt`` (``rc``, a ReceiptRecord), ``getCoils`` (ReceiptCoils) and
    ``getPledge`` (a PledgeRecord) say what the index says: holder, depositor, warehouse, grade, net weight,
    parent, status, the coils' identifiers in order, the pledgee bank and currency."""
    r = view.receipt
    bank = pledge.bank if pledge.exists else None
    currency = pledge.currency_code if pledge.exists else None
    return ((rc.owner, rc.depositor, rc.warehouse, rc.grade, rc.netWeightKg, rc.parent, status_name, bank, currency)
            == (r.owner, r.depositor, r.warehouse, r.grade, r.net_weight_kg, r.parent, r.status, r.bank, r.currency)
            and [c.identifier for c in coils] == [c.identifier for c in view.coils])
