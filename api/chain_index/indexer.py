"""The chain-event indexer: follows final blocks only, resumes from its cursor, writes each log once.

Loop (one :meth:`ChainIndexer.run_once`):

1. **Cursor.** ``chain_index_cursor`` holds the last block written (number and hash). The chain's hash at
   that number is compared with the stored one first: a final block cannot change, so a difference
   means the node was replaced or the database was restored from another chain; the indexer then stops
   (``IndexHalted``, reported in ``last_error``) rather than mix two chains.
2. **Final head.** Under QBFT (``TRACELEDGER_FINALITY=qbft``) a block is final once sealed, and a node
   serves only sealed blocks: the head is final. Under ``confirmations:N`` a block is final when
   ``head - number + 1 >= N`` (:func:`provenance.verify.check_confirmations`), so the indexer stops at
   ``head - N + 1`` and never reads a block above it.
3. **Catch-up in batches.** ``eth_getLogs`` over at most ``chain_index_batch_blocks`` blocks (the node
   allows 5,000) for the addresses of :data:`api.chain_index.handlers.INDEXED_CONTRACTS`; each block with
   logs is fetched once for its timestamp and its hash is compared with the logs' ``blockHash``.
4. **One transaction per batch.** Every log is inserted into ``chain_index_events`` keyed by
   ``(block_number, log_index)`` with *insert-or-ignore*; its handler runs only when the row is new. The
   cursor moves in the same commit. A crash (kill -9) mid-batch leaves the previous commit: the batch is
   redone from the cursor, and a block processed twice (two indexers, a restored cursor) writes nothing
   twice.

Where it runs: a daemon thread of the process that holds the anchoring lease
(:class:`api.anchoring.lease.AnchorLease`): the API process when it anchors, or
``python -m api.anchoring.service`` when anchoring runs apart (``traceledger bench``). One writer per
database, off the request threads, with the chain client the anchoring worker already has. ``python -m
api.chain_index`` runs it alone (until SIGTERM, or ``--once``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from eth_utils import event_abi_to_log_topic, to_checksum_address
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlmodel import Session

from api.background import BackgroundLoop
from api.chain import ChainClient, ChainError
from api.chain_index.handlers import INDEXED_CONTRACTS, ChainEvent, IndexedContract
from api.chain_index.models import IndexCursor, IndexedEvent
from api.db import session_scope
from api.settings import Settings
from contracts import load_artifact
from provenance.verify import parse_finality_model

log = logging.getLogger(__name__)

DEFAULT_CURSOR = "default"


class IndexHalted(RuntimeError):
    """A block the index holds as final is not the chain's block at that height any more."""


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def _hex(value: Any) -> str:
    if isinstance(value, str):
        return value.lower() if value.startswith("0x") else "0x" + value.lower()
    return "0x" + bytes(value).hex()


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def final_head(latest: int, finality: str) -> int:
    """Highest final block number given the chain's ``latest`` block and the finality model text
    (``qbft`` → ``latest``; ``confirmations:N`` → ``latest - N + 1``, below 0 when nothing is final yet)."""
    model, required = parse_finality_model(finality)
    return latest if model == "qbft" else latest - required + 1


class LogDecoder:
    """Turns raw ``eth_getLogs`` entries into :class:`ChainEvent` for the contracts at ``addresses``
    (artifact name → address), using each artifact's ABI (web3.py's own event decoding)."""

    def __init__(self, chain: ChainClient, addresses: dict[str, str]) -> None:
        self._by_address: dict[str, tuple[str, Any, dict[bytes, str]]] = {}
        for name, address in addresses.items():
            abi = load_artifact(name)["abi"]
            bound = chain.w3.eth.contract(address=to_checksum_address(address), abi=abi)
            topics = {event_abi_to_log_topic(item): item["name"] for item in abi if item.get("type") == "event"}
            self._by_address[address.lower()] = (name, bound, topics)

    @property
    def addresses(self) -> list[str]:
        """Checksum addresses of the followed contracts."""
        return [to_checksum_address(a) for a in self._by_address]

    def decode(self, entry: Any, timestamp: int) -> ChainEvent | None:
        """The decoded event, or None for a log of an event the ABI does not declare."""
        name, bound, topics = self._by_address[str(entry["address"]).lower()]
        topic0 = bytes(entry["topics"][0]) if entry["topics"] else b""
        event = topics.get(topic0)
        if event is None:
            return None
        decoded = bound.events[event]().process_log(entry)
        args = {k: (to_checksum_address(v) if isinstance(v, str) and len(v) == 42 and v.startswith("0x") else v)
                for k, v in dict(decoded["args"]).items()}
        return ChainEvent(contract=name, event=event, args=args, block_number=int(entry["blockNumber"]),
                          block_hash=_hex(entry["blockHash"]), log_index=int(entry["logIndex"]),
                          tx_hash=_hex(entry["transactionHash"]), timestamp=timestamp)


def insert_event_once(session: Session, ev: ChainEvent, subject_id: int | None) -> bool:
    """Insert the ``chain_index_events`` row of ``ev`` unless ``(block_number, log_index)`` is there;
    True when inserted (then its handler must run), False for a log indexed before."""
    values = {"block_number": ev.block_number, "log_index": ev.log_index, "block_hash": ev.block_hash,
              "tx_hash": ev.tx_hash, "contract": ev.contract, "event": ev.event, "subject_id": subject_id,
              "timestamp": ev.timestamp,
              "args": json.dumps({k: _json_value(v) for k, v in ev.args.items()}, sort_keys=True)}
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    table = IndexedEvent.__table__  # type: ignore[attr-defined]
    stmt = insert(table).values(**values).on_conflict_do_nothing(
        index_elements=["block_number", "log_index"]).returning(table.c.log_index)
    return session.execute(stmt).first() is not None


def apply_events(session: Session, events: Iterable[ChainEvent],
                 contracts: Iterable[IndexedContract] = INDEXED_CONTRACTS) -> int:
    """Insert and handle ``events`` (in log order) in ``session``; returns how many were new."""
    table = {c.name: c for c in contracts}
    new = 0
    for ev in events:
        spec = table[ev.contract]
        handler = spec.handlers.get(ev.event)
        subject = next((ev.args[a] for a in spec.subject_args if a in ev.args), None)
        if not insert_event_once(session, ev, int(subject) if subject is not None and int(subject) < 2**63 else None):
            continue
        new += 1
        if handler is not None:
            handler(session, ev)
            session.flush()
    return new


class ChainIndexer(BackgroundLoop):
    """Indexes final blocks of ``chain`` into the tables of :mod:`api.chain_index.models`.

    ``is_leader`` says whether this process may write (the anchoring lease); ``after_batch`` is a test hook
    called after each committed batch with its last block number.
    """

    thread_name = "chain-indexer"

    def __init__(self, *, engine: Engine, settings: Settings, chain: ChainClient, name: str = DEFAULT_CURSOR,
                 is_leader: Callable[[], bool] = lambda: True,
                 contracts: tuple[IndexedContract, ...] = INDEXED_CONTRACTS,
                 after_batch: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.settings = settings
        self.chain = chain
        self.name = name
        self.is_leader = is_leader
        self.after_batch = after_batch
        self.contracts = tuple(c for c in contracts if getattr(settings, c.address_setting, None))
        addresses = {c.name: getattr(settings, c.address_setting) for c in self.contracts}
        self.decoder = LogDecoder(chain, addresses)
        self.last_error: str | None = None
        self.indexed_block: int | None = None

    # ------------------------------------------------------------------ state
    def cursor(self) -> tuple[int, str] | None:
        """``(block_number, block_hash)`` of the last block written, or None before the first batch."""
        with session_scope(self.engine) as session:
            row = session.get(IndexCursor, self.name)
            return None if row is None else (row.block_number, row.block_hash)

    def final_head(self) -> int:
        """Highest final block of the chain under ``settings.finality`` (see :func:`final_head`)."""
        return final_head(self.chain.block_number(), self.settings.finality)

    def _block(self, number: int) -> dict[str, Any]:
        block = self.chain.raw_block(number)
        if not block:
            raise ChainError(f"block {number} not served by the node")
        return block

    # ------------------------------------------------------------------- work
    def run_once(self, max_batches: int | None = None, until: int | None = None) -> int | None:
        """Index every final block after the cursor (at most ``max_batches`` batches, at most up to block
        ``until``); returns the last block indexed (None when nothing is indexed yet). Raises IndexHalted /
        ChainError / ChainUnavailable."""
        cursor = self.cursor()
        if cursor is not None:
            number, stored = cursor
            actual = _hex(self._block(number)["hash"])
            if actual != stored:
                raise IndexHalted(f"block {number} is {actual} on the chain but {stored} in the index: "
                                  "a final block changed (another chain?); the index stops")
        start = self.settings.chain_index_start_block if cursor is None else cursor[0] + 1
        head = self.final_head() if until is None else min(self.final_head(), until)
        batches = 0
        while start <= head and not self._stop.is_set() and (max_batches is None or batches < max_batches):
            end = min(start + self.settings.chain_index_batch_blocks - 1, head)
            self.index_range(start, end)
            batches += 1
            start = end + 1
        cursor = self.cursor()
        self.indexed_block = None if cursor is None else cursor[0]
        return self.indexed_block

    def index_range(self, start: int, end: int) -> int:
        """Index blocks ``start..end`` (all final) in one transaction with the cursor; returns new log count."""
        logs = self.chain.w3.eth.get_logs({"fromBlock": start, "toBlock": end, "address": self.decoder.addresses})
        blocks: dict[int, dict[str, Any]] = {}
        events: list[ChainEvent] = []
        for entry in sorted(logs, key=lambda e: (int(e["blockNumber"]), int(e["logIndex"]))):
            number = int(entry["blockNumber"])
            if number > end:
                raise ChainError(f"eth_getLogs answered block {number} for {start}..{end}")
            block = blocks.get(number) or blocks.setdefault(number, self._block(number))
            if _hex(block["hash"]) != _hex(entry["blockHash"]):
                raise ChainError(f"log of block {number} names hash {_hex(entry['blockHash'])}, "
                                 f"the block is {_hex(block['hash'])}")
            ev = self.decoder.decode(entry, _int(block["timestamp"]))
            if ev is not None:
                events.append(ev)
        last = blocks.get(end) or self._block(end)
        with session_scope(self.engine) as session:
            new = apply_events(session, events, self.contracts)
            row = session.get(IndexCursor, self.name) or IndexCursor(name=self.name, block_number=end, block_hash="")
            row.block_number, row.block_hash = end, _hex(last["hash"])
            session.add(row)
            session.commit()
        if new:
            log.info("indexed blocks %d..%d: %d new events", start, end, new)
        if self.after_batch is not None:
            self.after_batch(end)
        return new

    # ------------------------------------------------------------------ thread
    def _loop(self) -> None:
        backoff = 0.0
        while not self._stop.wait(self.settings.chain_index_poll_s + backoff):
            if not self.is_leader():
                continue
            try:
                self.run_once()
                self.last_error = None
                backoff = 0.0
            except Exception as exc:  # noqa: BLE001 - the thread must survive the node going away
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("chain index: %s", self.last_error)
                backoff = min(max(backoff * 2, 1.0), 30.0)
