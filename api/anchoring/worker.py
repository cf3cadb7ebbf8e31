"""The anchoring worker: batches pending records into RFC 9162 Merkle trees and anchors the roots.

Crash safety (write-ahead style):

1. Pending records without a batch are taken in id order (at most ``anchor_max_batch``); their
   leaf hashes ``hash_leaf(record_digest)`` give the root (RFC 9162 §2.1.1). A root an earlier batch has is
   never reused (its anchor may precede these records' owners): one padding leaf of a fresh nonce is appended.
2. The Batch row (status ``submitted``, leaf list, planned root, metadata digest) and each
   record's ``batch_id`` / ``leaf_index`` are committed **before** anything is sent.
3. One ``AnchorRegistry.anchor(root, size, metadataDigest)`` tx is signed by the operator with an
   explicit nonce; its hash is committed **before** the node sees it, then it is sent; the receipt
   (final on QBFT) gives block number and hash; then batch ``final`` and records ``anchored`` are
   committed together.

Pipelined: the next batch is built and sent while earlier ones wait for their receipts (at most
``anchor_pipeline_depth`` transactions in flight, nonces ``n, n+1, …`` from a local counter that is
re-synced from the node's pending count at every run and after any error). The interval between
batches adapts to the backlog (:func:`batch_interval`): the configured ``anchor_interval_s`` when a
few records wait, shrinking towards :data:`MIN_INTERVAL_S` as the backlog grows (so batches grow
and follow each other block by block under load), and no work at all when idle.

On (re)start every ``submitted`` batch is resumed first, in id order: ``getAnchorOf(own enterprise,
root)`` says whether the root is already anchored (then the tx/block are recovered from the stored tx
hash or the ``Anchored`` event and the batch is completed); a stored tx hash the node still knows
(in its pool) is waited for; otherwise the batch is resent. A duplicate root
reverts with ``RootAlreadyAnchored`` on chain only when this enterprise anchored it, which is
treated as "already anchored", so a root is never anchored twice and no record is left in a batch
that never completes. An anchor of the same root by another enterprise (a front-runner) is never
taken as done: it is logged and the batch is anchored by this enterprise.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, text, update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from api import crud, metrics
from api.anchoring.lease import AnchorLease
from api.background import BackgroundLoop
from api.bootstrap import ensure_service_registered
from api.chain import ChainClient, ChainError, ChainUnavailable
from api.db import session_scope
from api.models import Batch, Record
from api.security import KeyCache
from api.settings import Settings
from provenance.canonical import canonicalize
from provenance.crypto_profile import HASH_SHA256, hash_function
from provenance.merkle import hash_leaf, root_from_leaf_hashes

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 0.05
"""Shortest pause between two batches (under a large backlog)."""
BACKLOG_SCALE = 100
"""Backlog (records) at which the pause between batches is half of ``anchor_interval_s``."""
RECEIPT_POLL_S = 0.1
"""How often the receipt of the oldest in-flight anchor transaction is asked for."""


def batch_interval(interval_s: float, backlog: int, max_batch: int) -> float:
    """Seconds to wait after the previous batch before the next one, for ``backlog`` unbatched records.

    ``interval_s`` for one record, ``interval_s / (1 + backlog / BACKLOG_SCALE)`` as the backlog grows
    (never below :data:`MIN_INTERVAL_S`), 0 once a full batch (``max_batch``) is waiting.
    """
    if backlog >= max_batch:
        return 0.0
    return max(MIN_INTERVAL_S, interval_s / (1.0 + max(backlog - 1, 0) / BACKLOG_SCALE))


def _b(hex_str: str) -> bytes:
    return bytes.fromhex(hex_str[2:] if hex_str.startswith("0x") else hex_str)


def _hex(b: Any) -> str:
    return "0x" + bytes(b).hex()


def batch_metadata_digest(*, batch_id: int, size: int, first_record_id: int, hash_alg: str = HASH_SHA256,
                          padding_leaves: int = 0) -> bytes:
    """32-byte digest (the network's ``hash_alg``) of the canonical JSON batch metadata committed with the root on
    chain; under SM3 the metadata also names ``hash_alg``, so the anchor transaction commits to the tree's hash.
    ``padding_leaves`` (``size`` counts them): trailing :func:`padding_entry` leaves; named only when non-zero, so
    the metadata of an unpadded batch is unchanged."""
    meta: dict[str, Any] = {
        "schema": "traceledger.batch.v1",
        "batch_id": batch_id,
        "size": size,
        "first_record_id": first_record_id,
        "leaf": "hash_leaf(record_digest), RFC 9162",
    }
    if padding_leaves:
        meta["padding_leaves"] = padding_leaves
    if hash_alg == HASH_SHA256:
        return hashlib.sha256(canonicalize(meta)).digest()
    return hash_function(hash_alg)(canonicalize({**meta, "hash_alg": hash_alg}))


PADDING_DOMAIN = b"traceledger.batch.padding.v1\x00"
"""Prefix of a padding leaf's preimage. A record digest hashes an RFC 8785 canonical JSON document (first byte
``{``, ``[``, ``"`` …), never these bytes, so a padding entry is the digest of no record."""


def padding_entry(nonce: bytes, hash_alg: str = HASH_SHA256) -> bytes:
    """The 32-byte leaf entry ``H("traceledger.batch.padding.v1" ‖ 0x00 ‖ nonce)`` (``H`` the network's hash)
    appended after a batch's record leaves to give it a root no earlier batch has (see
    :meth:`AnchoringWorker.create_batch`). Its leaf hash is ``hash_leaf(entry)`` like any leaf, so RFC 9162
    inclusion proofs of the records (indexes ``0 … records-1``) hold in the larger tree of the anchored size."""
    data = PADDING_DOMAIN + bytes(nonce)
    return hashlib.sha256(data).digest() if hash_alg == HASH_SHA256 else hash_function(hash_alg)(data)


def leaf_hashes_of(digests: list[str], hash_alg: str = HASH_SHA256) -> list[bytes]:
    """Leaf hashes (32 bytes each, ``H(0x00 ‖ digest)`` with the network's ``hash_alg``) for 0x-hex record digests."""
    return [hash_leaf(_b(d), hash_alg) for d in digests]


def _assign_leaves(session: Any, batch_id: int, record_ids: list[int]) -> None:
    """Set ``batch_id`` and ``leaf_index`` (position in ``record_ids``) of thousands of records: one
    ``UPDATE … FROM unnest(ids, leaves)`` on PostgreSQL, one executemany on SQLite."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(text("UPDATE records AS r SET batch_id = :bid, leaf_index = v.leaf "
                          "FROM unnest(CAST(:ids AS bigint[]), CAST(:leaves AS integer[])) AS v(id, leaf) "
                          "WHERE r.id = v.id"),
                     {"bid": batch_id, "ids": record_ids, "leaves": list(range(len(record_ids)))})
        return
    conn.execute(
        update(Record.__table__).where(Record.__table__.c.id == bindparam("rid")).values(
            batch_id=bindparam("bid"), leaf_index=bindparam("leaf")),
        [{"rid": rid, "bid": batch_id, "leaf": i} for i, rid in enumerate(record_ids)],
    )


class AnchoringWorker(BackgroundLoop):
    """Anchors pending records. ``run_once()`` is synchronous (used by tests); ``start()`` runs it
    in a daemon thread every ``anchor_interval_s`` or as soon as ``anchor_max_batch`` are pending."""

    thread_name = "anchoring-worker"

    def __init__(self, *, engine: Engine, settings: Settings, chain: ChainClient | None, keys: KeyCache) -> None:
        super().__init__()
        self.engine = engine
        self.settings = settings
        self.chain = chain
        self.keys = keys
        self._wake = threading.Event()
        self._bootstrapped = False
        self.last_run: datetime | None = None
        self.last_error: str | None = None
        #: the database-wide anchoring lease: only its holder batches and anchors (see api.anchoring.lease)
        self.lease = AnchorLease(engine)
        #: next nonce of the operator account (local counter); None = re-sync from the node's pending count
        self._nonce: int | None = None
        #: anchor transactions sent and not yet final: batch id -> (tx hash, monotonic send time)
        self.in_flight: dict[int, tuple[str, float]] = {}
        #: gas limit of pipelined anchor txs: an anchor of a new root writes the same slots every time, so one
        #: estimate (with a margin) serves them all and the busy validator runs no EVM call per batch
        self._anchor_gas: int | None = None

    @property
    def is_leader(self) -> bool:
        """True while this process holds the anchoring lease."""
        return self.lease.held

    # ------------------------------------------------------------------ thread
    @property
    def bootstrapped(self) -> bool:
        """True once this worker registered (and funded) the operator on chain itself."""
        return self._bootstrapped

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the thread to stop, wake it and wait for it (the current batch, if any, finishes first); then
        release the anchoring lease."""
        self._stop.set()  # before the wake: the woken loop must see it
        self._wake.set()
        super().stop(timeout_s)
        self.lease.release()

    def notify(self) -> None:
        """Wake the worker early (called after ingestion)."""
        self._wake.set()

    def _loop(self) -> None:
        interval = self.settings.anchor_interval_s
        poll = min(interval, 0.25)
        last = 0.0
        backoff = 0.0
        while not self._stop.is_set():
            self._wake.wait(poll + backoff)
            self._wake.clear()
            if self._stop.is_set():
                break
            # exactly one process anchors: the holder of the lease; the others retry each second
            if not (self.lease.still_held() or self.lease.try_acquire()):
                self._wake.wait(1.0)
                continue
            try:
                with session_scope(self.engine) as session:
                    unbatched = crud.count_unbatched(session)
                    unfinished = bool(crud.unfinished_batches(session))
                    metrics.PENDING.set(crud.count_pending(session))
                due = time.monotonic() - last >= batch_interval(interval, unbatched, self.settings.anchor_max_batch)
                if unfinished or (unbatched and due):
                    last = time.monotonic()
                    self.run_once()
                backoff = 0.0 if self.last_error is None else min(max(backoff * 2, 0.5), 30.0)
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything
                log.exception("anchoring loop error")
                self.last_error = f"{type(exc).__name__}: {exc}"
                backoff = min(max(backoff * 2, 0.5), 30.0)

    # ------------------------------------------------------------------- work
    def _operator_key(self) -> bytes:
        with session_scope(self.engine) as session:
            service = crud.get_service_enterprise(session)
        if service is None:
            raise ChainError("anchoring operator account not bootstrapped")
        return self.keys.private_key(service.keystore, self.settings.keystore_passphrase)

    def run_once(self) -> list[int]:
        """Resume unfinished batches, then anchor all unbatched pending records.

        Returns the ids of batches that became final. Errors are recorded in ``last_error``
        (and re-raised only for unexpected exceptions); records stay pending for the next run.
        """
        self.last_run = datetime.now(UTC)
        finalized: list[int] = []
        try:
            if self.chain is None:
                raise ChainUnavailable("chain not configured (TRACELEDGER_RPC_URL and registry addresses)")
            if not self._bootstrapped:
                ensure_service_registered(self.engine, self.settings, self.chain)
                self._bootstrapped = True
            with session_scope(self.engine) as session:
                unfinished = [b.id for b in crud.unfinished_batches(session)]
            self._nonce = None  # re-sync the local nonce counter from the node at every run
            self.in_flight.clear()
            for batch_id in unfinished:
                if batch_id is not None and self.resume_batch(batch_id):
                    finalized.append(batch_id)
            finalized.extend(self._pipeline())
            self.last_error = None
        except (ChainUnavailable, ChainError) as exc:
            metrics.ANCHOR_ERRORS.inc()
            self.last_error = str(exc)
            self._nonce = None
            log.warning("anchoring postponed: %s", exc)
        with session_scope(self.engine) as session:
            metrics.PENDING.set(crud.count_pending(session))
        return finalized

    def _pipeline(self) -> list[int]:
        """Build and send batches while earlier ones wait for their receipts; returns the batches made final.

        At most ``anchor_pipeline_depth`` anchor transactions are in flight; a new batch is built when
        records wait and :func:`batch_interval` has passed since the previous one. Returns once nothing
        waits and nothing is in flight. A receipt missing for ``receipt_timeout_s`` raises
        ChainUnavailable (the batch stays ``submitted`` and the next run resumes it).
        """
        assert self.chain is not None
        finalized: list[int] = []
        depth = max(1, self.settings.anchor_pipeline_depth)
        last_sent = float("-inf")
        leased = self.lease.held  # run_once called directly (tests) holds no lease
        while not self._stop.is_set():
            for batch_id, (tx_hash, sent_at) in list(self.in_flight.items()):  # in nonce order
                done = self._collect(batch_id, tx_hash, sent_at)
                if done is None:
                    break  # a later nonce is not in a block before this one: ask again next round
                del self.in_flight[batch_id]
                if done:
                    finalized.append(batch_id)
            backlog = 0
            if len(self.in_flight) < depth and not (leased and not self.lease.still_held()):
                with session_scope(self.engine) as session:
                    backlog = crud.count_unbatched(session)
                wait = batch_interval(self.settings.anchor_interval_s, backlog, self.settings.anchor_max_batch)
                if backlog and time.monotonic() - last_sent >= wait:
                    batch_id = self.create_batch()
                    if batch_id is not None:
                        last_sent = time.monotonic()
                        tx_hash = self.send_batch(batch_id, pipelined=True)
                        if tx_hash is None:  # anchored by this operator outside the batches it knows: not ours
                            self.repad_batch(batch_id)
                            tx_hash = self.send_batch(batch_id, pipelined=True)
                        if tx_hash is None:  # this enterprise anchored the root already: complete from chain
                            if self.resume_batch(batch_id, resend=False):
                                finalized.append(batch_id)
                        else:
                            self.in_flight[batch_id] = (tx_hash, last_sent)
                        continue
            if not self.in_flight and not backlog:
                break
            self._stop.wait(RECEIPT_POLL_S)
        return finalized

    def _collect(self, batch_id: int, tx_hash: str, sent_at: float) -> bool | None:
        """One receipt poll of an in-flight batch: True when it became final, False when it was completed
        otherwise (nothing to do), None while its transaction is not yet in a block."""
        assert self.chain is not None
        try:
            receipt = self.chain.receipt_if_mined(tx_hash)
        except ChainError as exc:
            if exc.reason == "RootAlreadyAnchored":
                # a new batch (sent once, by this run) whose root this operator had anchored before, outside the
                # batches it knows (e.g. a database restored from an older backup): that earlier anchor precedes
                # these records, so the batch gets a new root and is anchored itself
                self.repad_batch(batch_id)
                return self.submit_batch(batch_id)
            self._record_error(batch_id, str(exc))
            raise
        if receipt is None:
            if time.monotonic() - sent_at > self.chain.receipt_timeout_s:
                raise ChainUnavailable(f"batch {batch_id}: no receipt for {tx_hash} within "
                                       f"{self.chain.receipt_timeout_s:.0f} s")
            return None
        self.finalize_batch(batch_id, tx_hash=tx_hash, block_number=int(receipt["blockNumber"]),
                            block_hash=_hex(receipt["blockHash"]),
                            submitter=str(receipt.get("from") or "") or None)
        log.info("batch %s: receipt %.2f s after its tx was sent (%d in flight)", batch_id,
                 time.monotonic() - sent_at, len(self.in_flight) - 1)
        return True

    def _next_nonce(self, key: bytes) -> int:
        if self._nonce is None:
            assert self.chain is not None
            from eth_account import Account

            self._nonce = self.chain.pending_nonce(Account.from_key(key).address)
        return self._nonce

    def send_batch(self, batch_id: int, *, pipelined: bool = False) -> str | None:
        """Sign the anchor tx of a persisted batch with the next local nonce, commit its hash, send it.

        Returns the tx hash, or None when this enterprise anchored the root already (the gas estimate
        reverts with ``RootAlreadyAnchored``). ``pipelined`` (a new batch of the pipeline): the gas limit is
        the first estimate plus 25 % instead of a new estimate; a revert then shows in the receipt.
        The hash is stored before ``eth_sendRawTransaction`` so a
        crash at any point leaves a batch whose transaction can be found on restart. Any error re-syncs
        the nonce counter from the node.
        """
        assert self.chain is not None
        with session_scope(self.engine) as session:
            batch = session.get(Batch, batch_id)
            if batch is None or batch.status == "final":
                return None
            root, size, meta = _b(batch.root), batch.size, _b(batch.metadata_digest)
        key = self._operator_key()
        try:
            nonce = self._next_nonce(key)
            gas = None
            if pipelined:
                if self._anchor_gas is None:
                    self._anchor_gas = self.chain.estimate_anchor_gas(key, root, size, meta) * 5 // 4
                gas = self._anchor_gas
            tx_hash, raw = self.chain.sign_anchor(key, root, size, meta, nonce=nonce, gas=gas)
        except ChainError as exc:
            self._nonce = None
            if exc.reason == "RootAlreadyAnchored":
                return None
            self._record_error(batch_id, str(exc))
            raise
        except ChainUnavailable:
            self._nonce = None
            raise
        self._set_tx_hash(batch_id, tx_hash)
        try:
            self.chain.send_raw(raw)
        except (ChainError, ChainUnavailable) as exc:
            self._nonce = None
            self._record_error(batch_id, str(exc))
            raise
        self._nonce = nonce + 1
        metrics.ANCHOR_IN_FLIGHT.set(len(self.in_flight) + 1)
        return tx_hash

    def create_batch(self) -> int | None:
        """Persist a new submitted Batch over the oldest unbatched records; returns its id or None."""
        with session_scope(self.engine) as session:
            # only (id, digest) columns: a batch can hold tens of thousands of records
            records = list(session.exec(
                select(col(Record.id), col(Record.record_digest))
                .where(Record.status == "pending", col(Record.batch_id).is_(None))
                .order_by(col(Record.id)).limit(self.settings.anchor_max_batch)
            ).all())
            if not records:
                return None
            digests = [r.record_digest for r in records]
            hash_alg = self.settings.hash_alg
            leaves = list(digests)
            root = _hex(root_from_leaf_hashes(leaf_hashes_of(leaves, hash_alg), hash_alg=hash_alg))
            # Never reuse a batch with the same root (same digests in the same order): its anchor block may
            # precede these records' owners (another enterprise's copy of a document would borrow the original's
            # anchor and time, and fail the owner-at-anchor-block checks), and the registry refuses a root this
            # operator anchored already. A trailing padding leaf of a fresh nonce gives the batch its own root.
            while session.exec(select(col(Batch.id)).where(Batch.root == root)).first() is not None:
                leaves = [*digests, _hex(padding_entry(secrets.token_bytes(32), hash_alg))]
                root = _hex(root_from_leaf_hashes(leaf_hashes_of(leaves, hash_alg), hash_alg=hash_alg))
            batch = Batch(root=root, size=len(leaves), leaf_digests=leaves, status="submitted")
            session.add(batch)
            session.flush()
            assert batch.id is not None and records[0].id is not None
            batch.metadata_digest = _hex(
                batch_metadata_digest(batch_id=batch.id, size=batch.size, first_record_id=records[0].id,
                                      hash_alg=hash_alg, padding_leaves=len(leaves) - len(digests))
            )
            session.add(batch)
            session.flush()
            _assign_leaves(session, batch.id, [int(rec.id) for rec in records])
            session.commit()
            return batch.id

    def repad_batch(self, batch_id: int) -> None:
        """Give a ``submitted`` batch a new root: its record leaves plus one fresh :func:`padding_entry` (replacing
        a previous one); size, leaf list and metadata digest follow. Records keep their leaf indexes."""
        hash_alg = self.settings.hash_alg
        with session_scope(self.engine) as session:
            batch = session.get(Batch, batch_id)
            if batch is None or batch.status == "final":
                return
            first = session.exec(select(col(Record.id)).where(Record.batch_id == batch_id)
                                 .order_by(col(Record.id)).limit(1)).first()
            records = int(session.exec(select(func.count()).select_from(Record)
                                       .where(Record.batch_id == batch_id)).one())
            digests = list(batch.leaf_digests[:records])
            leaves, root = digests, batch.root
            while session.exec(select(col(Batch.id)).where(Batch.root == root)).first() is not None:
                leaves = [*digests, _hex(padding_entry(secrets.token_bytes(32), hash_alg))]
                root = _hex(root_from_leaf_hashes(leaf_hashes_of(leaves, hash_alg), hash_alg=hash_alg))
            log.warning("batch %s: root %s was anchored before by this operator outside its known batches; "
                        "new root %s", batch_id, batch.root, root)
            batch.root, batch.size, batch.leaf_digests, batch.tx_hash = root, len(leaves), leaves, None
            batch.metadata_digest = _hex(batch_metadata_digest(
                batch_id=batch_id, size=len(leaves), first_record_id=int(first or 0), hash_alg=hash_alg,
                padding_leaves=len(leaves) - len(digests)))
            session.add(batch)
            session.commit()

    def _set_tx_hash(self, batch_id: int, tx_hash: str) -> None:
        with session_scope(self.engine) as session:
            batch = session.get(Batch, batch_id)
            if batch is not None:
                batch.tx_hash = tx_hash
                batch.attempts += 1
                session.add(batch)
                session.commit()

    def submit_batch(self, batch_id: int) -> bool:
        """Send the anchor tx of a persisted batch and complete it; True when final."""
        assert self.chain is not None
        with session_scope(self.engine) as session:
            batch = session.get(Batch, batch_id)
            if batch is None or batch.status == "final":
                return False
        tx_hash = self.send_batch(batch_id)
        if tx_hash is None:
            return self.resume_batch(batch_id, resend=False)
        try:
            receipt = self.chain.wait_receipt(tx_hash)
        except ChainError as exc:
            self._nonce = None
            if exc.reason == "RootAlreadyAnchored":
                return self.resume_batch(batch_id, resend=False)
            self._record_error(batch_id, str(exc))
            raise
        self.finalize_batch(
            batch_id,
            tx_hash=_hex(receipt["transactionHash"]),
            block_number=int(receipt["blockNumber"]),
            block_hash=_hex(receipt["blockHash"]),
            submitter=str(receipt.get("from", "")) or None,
        )
        return True

    def resume_batch(self, batch_id: int, *, resend: bool = True) -> bool:
        """Complete a ``submitted`` batch from the chain, or resend it when not anchored yet."""
        assert self.chain is not None
        with session_scope(self.engine) as session:
            batch = session.get(Batch, batch_id)
            if batch is None or batch.status == "final":
                return False
            root, tx_hash = _b(batch.root), batch.tx_hash
        # only this enterprise's own anchor completes the batch: a root anchored by someone else
        # (front-run from the mempool, possibly with another size/metadata) is not ours
        info = self.chain.get_anchor_for(self._operator_key(), root)
        if info is None and (foreign := self.chain.get_anchor(root)) is not None:
            log.warning("batch %s: root %s was anchored by %s, not by this enterprise: anchoring it ourselves",
                        batch_id, batch.root, foreign.submitter)
        if info is None and tx_hash:
            # the tx might still be in flight: wait for it while the node knows it (in its pool), else
            # give it a short chance; a resend of a tx still pending would revert RootAlreadyAnchored anyway
            try:
                known = self.chain.tx_known(tx_hash)
                receipt = self.chain.wait_receipt(tx_hash, timeout_s=None if known else 2.0)
                info = self.chain.get_anchor_for(self._operator_key(), root)
                if info is not None and info.block_number == int(receipt["blockNumber"]):
                    self.finalize_batch(
                        batch_id,
                        tx_hash=tx_hash,
                        block_number=info.block_number,
                        block_hash=_hex(receipt["blockHash"]),
                        submitter=info.submitter,
                    )
                    return True
            except (ChainError, ChainUnavailable):
                pass
        if info is None:
            if not resend:
                raise ChainError(f"root {batch.root} reported anchored but getAnchor shows nothing")
            return self.submit_batch(batch_id)
        found = self.chain.find_anchor_tx(root, info.block_number)
        if found is not None:
            tx_hash, block_hash = found
        else:
            block = self.chain.raw_block(info.block_number) or {}
            block_hash = str(block.get("hash", "")) or None
        self.finalize_batch(
            batch_id,
            tx_hash=tx_hash,
            block_number=info.block_number,
            block_hash=block_hash,
            submitter=info.submitter,
        )
        return True

    def _record_error(self, batch_id: int, error: str) -> None:
        with session_scope(self.engine) as session:
            batch = session.get(Batch, batch_id)
            if batch is not None:
                batch.last_error = error[:2000]
                session.add(batch)
                session.commit()

    def finalize_batch(
        self,
        batch_id: int,
        *,
        tx_hash: str | None,
        block_number: int,
        block_hash: str | None,
        submitter: str | None,
    ) -> None:
        """Mark the batch final and its records anchored, in one transaction."""
        now = datetime.now(UTC)
        with session_scope(self.engine) as session:
            batch = session.get(Batch, batch_id)
            if batch is None:
                return
            batch.tx_hash = tx_hash
            batch.block_number = block_number
            batch.block_hash = block_hash
            batch.submitter = submitter
            batch.status = "final"
            batch.anchored_at = now
            batch.last_error = None
            session.add(batch)
            session.flush()
            created_times = list(session.exec(select(col(Record.created_at)).where(Record.batch_id == batch_id)).all())
            session.connection().execute(
                update(Record.__table__).where(Record.__table__.c.batch_id == batch_id).values(status="anchored"))
            session.commit()
        metrics.BATCHES_ANCHORED.inc()
        for created in created_times:
            created = created if created.tzinfo else created.replace(tzinfo=UTC)
            metrics.ANCHOR_LATENCY.observe(max((now - created).total_seconds(), 0.0))
        log.info("batch %s anchored in block %s (%d records)", batch_id, block_number, len(created_times))
