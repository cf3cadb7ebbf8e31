"""A validator (or observer) node process: chain + QBFT state machine + TCP transport + JSON-RPC.

Run one per OS process: ``python -m ledger.node --config DATA_DIR/node.json``. Everything runs in
one asyncio event loop, so the consensus state machine, the chain and the RPC handlers never race.

Configuration (JSON, written by :mod:`ledger.network`)::

    {"name": "validator-1", "data_dir": "...", "key_file": "...", "genesis": {...GenesisConfig...},
     "p2p": {"host": "127.0.0.1", "port": 30303}, "rpc": {"host": "127.0.0.1", "port": 8545},
     "peers": [{"address": "0x…", "host": "127.0.0.1", "port": 30304}, …],
     "observers": ["0x…"], "block_period_s": 1.0, "request_timeout_s": 1.0, "round_timeout_cap_s": 60.0,
     "permissioning": {"registry": "0x…" | null}, "byzantine": null}

A consortium node's ``node.json`` (written by ``traceledger node init``, :mod:`ledger.consortium`) keeps its
paths relative to its folder, takes genesis, timings, registry and peers from ``network_file`` (the
``network.json`` of ``traceledger network genesis``), holds its key as an encrypted keystore, and adds
``p2p.advertise`` (the address peers dial), ``rpc.admin`` (a second JSON-RPC listener for the admin
methods, loopback by default), ``rpc.jwt_secret_file``, ``rpc.host_allowlist`` and ``rpc.cors_origins``
(see :mod:`ledger.rpc_access`); :func:`ledger.consortium.load_node_config` resolves both shapes.

A node whose key is not in the validator set of a height is an **observer** for it: it follows
consensus passively (commits blocks it sees a quorum of COMMITs for), catches up by sync, and serves
JSON-RPC. Node permissioning: only validators of the latest set and the configured ``observers`` may
connect (the list is re-read from ``node.json`` when that file changes, so an operator can admit an
observer without a restart).

``byzantine`` ("equivocate" or "garbage") is a **debug fault** used by the fault-injection harness
(:mod:`ledger.faults`), implemented in :mod:`ledger.byzantine`. Never set it in production.
Optional ``target_gas_limit`` (gas): the block gas limit this node's proposals steer toward (default
the genesis gas limit; see :meth:`ledger.chain.Ledger.next_gas_limit`).

This module only wires the process together: the chain (:mod:`ledger.chain`), the consensus state machine
(:mod:`ledger.consensus`), catch-up sync (:mod:`ledger.sync`), the transport, the JSON-RPC server, the
txpool, metrics, and the debug Byzantine behaviour (:mod:`ledger.byzantine`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import rlp
import uvicorn
from eth.abc import SignedTransactionAPI
from eth.vm.forks.shanghai.transactions import ShanghaiTransactionBuilder
from eth_utils import keccak, to_canonical_address, to_checksum_address
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledger.byzantine import DebugByzantine
from ledger.chain import IS_ACTIVE_ANCHORER, IS_PERMITTED_SENDER, GenesisConfig, Ledger, decode_block, encode_block
from ledger.consensus import (
    BlockCommitted,
    BlockCreated,
    Broadcast,
    CreateBlock,
    Dropped,
    Evidence,
    MessageReceived,
    PersistRoundState,
    QbftConfig,
    QbftStateMachine,
    Restore,
    RoundFailed,
    RoundTimerExpired,
    Start,
    StartRoundTimer,
    make_signer,
)
from ledger.consortium import PASSPHRASE_ENV, Enode, load_node_config, load_node_key, node_enode
from ledger.rpc import RpcError, make_rpc_app
from ledger.rpc_access import RpcAccess
from ledger.rpc_guard import CallExecutor, RpcLimits
from ledger.sync import SYNC_BATCH, CatchUpSync
from ledger.transport import (
    KIND_CONSENSUS,
    KIND_SYNC_REQUEST,
    KIND_SYNC_RESPONSE,
    KIND_TRANSACTION,
    PeerAddress,
    Transport,
)
from ledger.txpool import DEFAULT_MAX_BLOCK_TXS, PoolFull, TxPool
from provenance.qbft_header import Vote

log = logging.getLogger("ledger.node")

#: Fewest transactions a proposer puts in a block when it has them (whatever the build budget says).
MIN_BLOCK_TXS = 20
#: File (in the node's data directory) holding the last consensus round state (``PersistRoundState``).
ROUND_STATE_FILE = "qbft-round-state.rlp"
__all__ = ["IS_ACTIVE_ANCHORER", "IS_PERMITTED_SENDER", "MIN_BLOCK_TXS", "ROUND_STATE_FILE", "SYNC_BATCH", "Node",
           "contract_address", "main", "write_durably"]


def write_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably: write a temporary file, fsync it, rename it
    over ``path`` and fsync the directory. Raises OSError."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _enode_param(value: Any) -> Enode:
    """admin_addPeer / admin_removePeer's ``enode://<pubkey>@host:port`` parameter; -32602 otherwise."""
    try:
        return Enode.parse(value)
    except ValueError as exc:
        raise RpcError(-32602, f"invalid params: enode: {exc}") from exc


def contract_address(deployer: bytes, nonce: int) -> bytes:
    """CREATE address of ``deployer``'s transaction with ``nonce`` (20 bytes; Yellow Paper eq. 86)."""
    return keccak(rlp.encode([deployer, nonce]))[12:]


class Node:
    """One node; see the module docstring for its configuration."""

    def __init__(self, config: dict[str, Any], config_path: str | Path | None = None) -> None:
        self.config = config
        self.config_path = Path(config_path) if config_path else None
        self._config_mtime = self.config_path.stat().st_mtime if self.config_path else 0.0
        self.name = config.get("name", "node")
        self.key = load_node_key(config)
        self.enode = node_enode(config, self.key.public_key.to_bytes())
        self.address = self.key.public_key.to_canonical_address()
        self.genesis = GenesisConfig.from_json(config["genesis"])
        self.block_period = float(config.get("block_period_s", 1.0))
        registry = (config.get("permissioning") or {}).get("registry")
        self.registry = to_canonical_address(registry) if registry else None
        target_gas = config.get("target_gas_limit")
        self.ledger = Ledger(config["data_dir"], self.genesis, block_period_s=self.block_period, registry=self.registry,
                             target_gas_limit=int(target_gas) if target_gas is not None else None)
        self.pool = TxPool()
        self.ledger.tx_lookup = self.pool.by_hash.get
        self.sign = make_signer(self.key.to_bytes())
        self.sm_timeout = float(config.get("request_timeout_s", 1.0))
        self.sm = QbftStateMachine(
            self.address, self.sign, self.ledger,
            QbftConfig(request_timeout_s=float(config.get("request_timeout_s", 1.0)),
                       max_round_timeout_s=float(config.get("round_timeout_cap_s", 60.0))),
        )
        self.round_state_path = Path(config["data_dir"]) / ROUND_STATE_FILE
        if self.round_state_path.exists():  # a restart: never contradict a vote sent before the crash
            self.sm.handle(Restore(self.round_state_path.read_bytes()))
        self.build_budget_s = float(config.get("block_build_budget_s", 0.25 * self.sm_timeout))
        self._s_per_tx = 0.002  # first guess (seconds per transaction), learnt from every block we build
        self.byzantine: str | None = config.get("byzantine")
        #: this node's validator votes to cast when it proposes: {candidate address: add?}
        self.pending_votes: dict[bytes, bool] = {}
        self._head_state_cache: tuple[bytes, Any] | None = None
        self._prebuilt: tuple[int, bytes, Any] | None = None
        self.observers = {to_canonical_address(a) for a in config.get("observers", [])}
        #: nodes an operator added with admin_addPeer: dialled and admitted until admin_removePeer
        self.static_peers: dict[bytes, Enode] = {}
        self._start_handle: asyncio.TimerHandle | None = None
        self._last_commit = time.monotonic()
        self._stopping = asyncio.Event()
        self.metrics = CollectorRegistry()
        self.m_blocks = Counter("qbft_blocks_committed", "Blocks finalized by this node", registry=self.metrics)
        self.m_dropped = Counter("qbft_messages_dropped", "Consensus messages refused", ["reason"],
                                 registry=self.metrics)
        self.m_rounds_failed = Counter("qbft_rounds_failed", "Rounds that timed out", registry=self.metrics)
        self.m_evidence = Counter("qbft_equivocations", "Equivocations detected", registry=self.metrics)
        self.m_synced = Counter("qbft_blocks_synced", "Blocks imported from peers", registry=self.metrics)
        self.m_height = Gauge("qbft_chain_height", "Canonical head number", registry=self.metrics)
        self.m_pool = Gauge("qbft_txpool_pending", "Pending transactions", registry=self.metrics)
        peers = [PeerAddress(to_canonical_address(p["address"]), p["host"], int(p["port"]))
                 for p in config.get("peers", [])]
        self.transport = Transport(
            chain_id=self.genesis.chain_id, address=self.address, sign=self.sign,
            host=config["p2p"]["host"], port=int(config["p2p"]["port"]), peers=peers,
            allowed=self._allowed_peers, on_frame=self._on_frame,
            on_counter=lambda name: self.m_dropped.labels(name).inc(), advertise_port=self.enode.port,
            on_link_up=lambda peer: self.sync.request(peer, force=True),
        )
        self.sync = CatchUpSync(
            self.name, self.ledger, self.transport, request_kind=KIND_SYNC_REQUEST, response_kind=KIND_SYNC_RESPONSE,
            on_imported=lambda n: self._after_new_head(committed=False, blocks=n),
            on_dropped=lambda reason: self.m_dropped.labels(reason[:40]).inc(), metrics=self.metrics,
        )
        self.byzantine_behaviour = None if self.byzantine is None else DebugByzantine(
            self.byzantine, self.name, self.address, self.sign, self.transport.broadcast,
            (KIND_CONSENSUS, KIND_TRANSACTION, KIND_SYNC_REQUEST), lambda: (self.ledger.height + 1, self.sm.round))

    # ------------------------------------------------------------------ helpers
    def _allowed_peers(self) -> set[bytes]:
        """Node permissioning: validators of the latest set (after the head) plus configured observers."""
        self._reload_observers()
        return set(self.ledger.validators(self.ledger.height + 1)) | self.observers | set(self.static_peers)

    def _reload_observers(self) -> None:
        if self.config_path is None:
            return
        try:
            mtime = self.config_path.stat().st_mtime
            if mtime == self._config_mtime:
                return
            self._config_mtime = mtime
            fresh = json.loads(self.config_path.read_text())
            self.observers = {to_canonical_address(a) for a in fresh.get("observers", [])}
            log.info("%s: permissioning reloaded: %d observers", self.name, len(self.observers))
        except (OSError, ValueError) as exc:
            log.warning("%s: could not reload %s: %s", self.name, self.config_path, exc)

    def peer_count(self) -> int:
        """Peers with a live, authenticated connection."""
        return self.transport.connected_peers()

    def head_state(self) -> Any:
        """py-evm state after the head block (cached per head; read-only use)."""
        head = self.ledger.head
        cached = self._head_state_cache
        if cached is None or cached[0] != head.hash:
            cached = self._head_state_cache = (head.hash, self.ledger.chain.get_vm(head).state)
        return cached[1]

    def _account_nonce(self, address: bytes) -> int:
        return self.head_state().get_nonce(address)

    def pending_nonce(self, sender: bytes) -> int:
        """Next nonce for ``sender``: the head state's nonce advanced past the sender's pooled transactions."""
        return self.pool.next_nonce(sender, self._account_nonce(sender))

    def ledger_pool_lookup(self, tx_hash: bytes) -> SignedTransactionAPI | None:
        """A pooled (not yet mined) transaction by its 32-byte hash, or None."""
        return self.pool.by_hash.get(tx_hash)

    def is_permitted(self, sender: bytes) -> bool:
        """Account permissioning at the head: :meth:`ledger.chain.Ledger.is_permitted_sender` (genesis
        accounts, or ``EnterpriseRegistry.isPermittedSender`` / ``isActiveAnchorer``), the same rule block
        validity applies to every transaction of a block at its parent state."""
        return self.ledger.is_permitted_sender(sender, self.ledger.head)

    def check_transaction(self, tx: SignedTransactionAPI) -> None:
        """Admission checks for a new transaction; raises RpcError with a JSON-RPC code and clear message:
        -32000 (chain id, nonce, gas, fee, funds), -32007 (sender not permitted)."""
        if self.ledger.check_chain_id(tx) is not None:
            chain_id = getattr(tx, "chain_id", None)
            raise RpcError(-32000, f"invalid chain id {chain_id}: this chain is {self.genesis.chain_id} "
                                   "(EIP-155 or typed transactions only)")
        sender = tx.sender
        if not self.is_permitted(sender):
            raise RpcError(-32007, f"sender account {to_checksum_address(sender)} is not permitted to transact: "
                                   "it is neither a genesis account nor an active enterprise (anchoring) account")
        head = self.ledger.head
        state = self.head_state()
        nonce = state.get_nonce(sender)
        if tx.nonce < nonce:
            raise RpcError(-32000, f"nonce too low: next nonce {nonce}, tx nonce {tx.nonce}")
        if tx.gas > head.gas_limit:
            raise RpcError(-32000, f"exceeds block gas limit: gas {tx.gas} > {head.gas_limit}")
        max_fee = getattr(tx, "max_fee_per_gas", None) or tx.gas_price
        if max_fee < head.base_fee_per_gas * 7 // 8:
            raise RpcError(-32000, f"max fee per gas {max_fee} below base fee {head.base_fee_per_gas} wei")
        cost = tx.gas * max_fee + tx.value
        balance = state.get_balance(sender)
        if balance < cost:
            raise RpcError(-32000, f"insufficient funds for gas * price + value: balance {balance}, cost {cost}")

    def submit_transaction(self, tx: SignedTransactionAPI) -> None:
        """Admit ``tx`` to the pool after :meth:`check_transaction` (permissioning, chain id, nonce, balance, gas) and
        broadcast it; raises RpcError with the JSON-RPC code on refusal.
        """
        self.check_transaction(tx)
        try:
            if self.pool.add(tx):
                self.transport.broadcast(KIND_TRANSACTION, tx.encode())
        except PoolFull as exc:
            raise RpcError(-32000, str(exc)) from exc
        self.m_pool.set(len(self.pool))

    # ------------------------------------------------------------------ validator governance
    def propose_vote(self, address: bytes, add: bool) -> None:
        """Queue this node's vote to add (``True``) or drop ``address``; cast when this node proposes."""
        self.pending_votes[bytes(address)] = bool(add)

    def discard_vote(self, address: bytes) -> bool:
        """Forget this node's pending vote about ``address``; False when there was none."""
        return self.pending_votes.pop(bytes(address), None) is not None

    def choose_vote(self, height: int) -> Vote | None:
        """The vote to put into our block at ``height``: the first pending vote that would still change
        the set and that the epoch's tally does not hold from us yet (else the first one that would still
        change it); ``None`` in an epoch block or when no pending vote is meaningful."""
        if not self.pending_votes or height % self.ledger.epoch_length == 0:
            return None
        tally = self.ledger.tally_at(self.ledger.head)
        meaningful = [Vote(a, add) for a, add in self.pending_votes.items() if tally.is_meaningful(Vote(a, add))]
        for vote in meaningful:
            if tally.votes.get((self.address, vote.address)) != vote.add:
                return vote
        return meaningful[0] if meaningful else None

    def rpc_methods(self) -> dict[str, Any]:
        """Node-specific JSON-RPC methods (Besu ``QBFT`` API names) added to :data:`ledger.rpc.METHODS`."""
        from ledger.rpc import param, parse_address

        def qbft_proposeValidatorVote(ctx: Node, params: list[Any]) -> bool:
            address = parse_address(param(params, 0, "address"), "address")
            add = param(params, 1, "add")
            if not isinstance(add, bool):
                raise RpcError(-32602, "add must be a boolean (true: add the validator, false: remove it)")
            ctx.propose_vote(address, add)
            return True

        def qbft_discardValidatorVote(ctx: Node, params: list[Any]) -> bool:
            return ctx.discard_vote(parse_address(param(params, 0, "address"), "address"))

        def qbft_getPendingVotes(ctx: Node, params: list[Any]) -> dict[str, bool]:
            return {to_checksum_address(a): add for a, add in ctx.pending_votes.items()}

        def admin_addPeer(ctx: Node, params: list[Any]) -> bool:
            enode = _enode_param(param(params, 0, "enode"))
            ctx.static_peers[enode.address] = enode
            ctx.transport.add_peer(PeerAddress(enode.address, enode.host, enode.port))
            return True

        def admin_removePeer(ctx: Node, params: list[Any]) -> bool:
            enode = _enode_param(param(params, 0, "enode"))
            known = ctx.static_peers.pop(enode.address, None) is not None
            return ctx.transport.remove_peer(enode.address) or known

        def admin_peers(ctx: Node, params: list[Any]) -> list[dict[str, Any]]:
            enodes = {to_canonical_address(p["address"]): p.get("enode") for p in ctx.config.get("peers", [])}
            enodes.update({a: str(e) for a, e in ctx.static_peers.items()})
            return [{"id": to_checksum_address(a), "enode": enodes.get(a),
                     "network": {"remoteAddress": f"{p.host}:{p.port}"},
                     "connected": ctx.transport.is_connected(a)} for a, p in ctx.transport.peers.items()]

        def admin_nodeInfo(ctx: Node, params: list[Any]) -> dict[str, Any]:
            return {"enode": str(ctx.enode), "id": to_checksum_address(ctx.address), "name": ctx.name,
                    "listenAddr": f"{ctx.config['p2p']['host']}:{ctx.config['p2p']['port']}",
                    "ports": {"listener": ctx.enode.port}}

        return {f.__name__: f for f in (qbft_proposeValidatorVote, qbft_discardValidatorVote, qbft_getPendingVotes,
                                        admin_addPeer, admin_removePeer, admin_peers, admin_nodeInfo)}

    # ------------------------------------------------------------------ consensus driving
    def feed(self, event: Any) -> None:
        """Hand one consensus event to the state machine and carry out the actions it returns (send, persist, build,
        commit, timers); an exception in the state machine is logged, never raised.
        """
        try:
            actions = self.sm.handle(event)
        except Exception:
            log.exception("%s: consensus failed handling %r", self.name, type(event).__name__)
            return
        durable = True
        for action in actions:
            if not durable and isinstance(action, Broadcast):
                continue  # the round state could not be made durable: send nothing that depends on it
            durable = self._do(action) and durable

    def _do(self, action: Any) -> bool:
        """Execute one consensus action; False when a ``PersistRoundState`` failed (the caller then sends
        none of the batch's remaining messages -- a message not sent is a lost message, a vote sent but not
        remembered could be contradicted after a crash -- but still runs its timers and commits)."""
        loop = asyncio.get_running_loop()
        if isinstance(action, PersistRoundState):
            try:
                write_durably(self.round_state_path, action.record)
            except OSError:
                log.exception("%s: could not persist the round state of height %d", self.name, action.height)
                return False
        elif isinstance(action, Broadcast):
            self.transport.broadcast(KIND_CONSENSUS, action.raw)
            if self.byzantine_behaviour is not None:
                self.byzantine_behaviour.after_broadcast(action.raw)
        elif isinstance(action, CreateBlock):
            loop.call_soon(self._create_block, action.height, action.round)
        elif isinstance(action, StartRoundTimer):
            loop.call_later(action.seconds, self.feed, RoundTimerExpired(action.height, action.round, action.attempt))
        elif isinstance(action, BlockCommitted):
            self._commit(action)
        elif isinstance(action, Dropped):
            self.m_dropped.labels(action.reason.split(":")[0][:40]).inc()
            log.debug("%s: dropped message: %s", self.name, action.reason)
        elif isinstance(action, Evidence):
            self.m_evidence.inc()
            log.warning("%s: EQUIVOCATION (%s): first=0x%s second=0x%s", self.name, action.kind,
                        action.first.hex(), action.second.hex())
        elif isinstance(action, RoundFailed):
            self.m_rounds_failed.inc()
            if action.proposer not in action.missing and action.proposer != self.address:
                # the proposer was alive and the round still failed: validation was too slow for the
                # timeout; assume execution is slower than measured, so our next blocks are smaller
                self._s_per_tx = min(0.02, self._s_per_tx * 1.5)
            log.info("%s: round failed height=%d round=%d proposer=%s missing=[%s]", self.name, action.height,
                     action.round, to_checksum_address(action.proposer),
                     ", ".join(to_checksum_address(m) for m in action.missing))
        return True

    def _create_block(self, height: int, round_: int) -> None:
        if self.sm.height != height or self.sm.round != round_ or self.ledger.height != height - 1:
            return
        prebuilt, self._prebuilt = self._prebuilt, None
        if prebuilt is not None and round_ == 0 and prebuilt[0] == height and prebuilt[1] == self.ledger.head.hash:
            block = prebuilt[2]
        else:
            block = self._build(height)
        self.feed(BlockCreated(height, round_, encode_block(block)))

    def _prebuild(self, height: int, parent_hash: bytes) -> None:
        """As round-0 proposer of ``height``, build our block while we wait for the block period, so the
        round-0 timer is spent on the followers' validation, not on our execution."""
        head = self.ledger.head
        if head.hash != parent_hash or self.sm.height >= height:
            return
        timestamp = max(head.timestamp + 1, int(max(time.time(), head.timestamp + self.block_period)))
        self._prebuilt = (height, parent_hash, self._build(height, timestamp))

    def _build(self, height: int, timestamp: int | None = None) -> Any:
        head = self.ledger.head
        chosen = self.pool.select(self._account_nonce, self.ledger.next_gas_limit(head.gas_limit), self.block_tx_cap())
        refused = [tx for tx in chosen if self.ledger.transaction_violation(tx, head) is not None]
        if refused:  # e.g. an enterprise deactivated since admission: the block rule would refuse our block
            for tx in refused:
                self.pool.remove(tx)
            senders = {tx.sender for tx in refused}
            chosen = [tx for tx in chosen if tx.sender not in senders]
        vote = self.choose_vote(height)
        started = time.perf_counter()
        try:
            block = self.ledger.build_block(chosen, self.address, timestamp, vote=vote)
            self._learn_build_speed(len(chosen), time.perf_counter() - started)
        except Exception as exc:  # a transaction the pool let through cannot execute
            log.warning("%s: building block %d with %d txs failed (%s); retrying without failing txs",
                        self.name, height, len(chosen), exc)
            state = self.ledger.chain.get_vm(head).state
            for tx in chosen:
                try:
                    state.validate_transaction(tx)
                except Exception:
                    self.pool.remove(tx)
            block = self.ledger.build_block([], self.address, timestamp, vote=vote)
        if vote is not None:
            log.info("%s: block %d carries our vote to %s %s", self.name, height, "add" if vote.add else "drop",
                     to_checksum_address(vote.address))
        return block

    def block_tx_cap(self) -> int:
        """Transactions a block we propose may hold: as many as we can execute within the build budget
        (``block_build_budget_s``, default 25 % of the request timeout, so that the followers'
        re-execution, slower when they share the CPU, fits in round 0), from the measured seconds per
        transaction, within [:data:`MIN_BLOCK_TXS`, :data:`DEFAULT_MAX_BLOCK_TXS`]. A round that fails
        although its proposer was alive makes the estimate 1.5× more cautious; it relaxes again (moving
        average) as blocks are built."""
        return max(MIN_BLOCK_TXS, min(DEFAULT_MAX_BLOCK_TXS, int(self.build_budget_s / self._s_per_tx)))

    def _learn_build_speed(self, txs: int, seconds: float) -> None:
        if txs >= 20:  # exponentially weighted moving average of seconds per transaction
            self._s_per_tx = 0.7 * self._s_per_tx + 0.3 * (seconds / txs)

    def _commit(self, action: BlockCommitted) -> None:
        try:
            self.ledger.commit(action.block, action.round, action.seals)
        except Exception:
            log.exception("%s: could not persist committed block %d", self.name, action.height)
            return
        self._after_new_head(committed=True)
        log.info("%s: committed block %d round %d txs=%d seals=%d", self.name, action.height, action.round,
                 len(decode_block(action.block).transactions), len(action.seals))

    def _after_new_head(self, *, committed: bool, blocks: int = 1) -> None:
        self._last_commit = time.monotonic()
        (self.m_blocks if committed else self.m_synced).inc(blocks)
        self.m_height.set(self.ledger.height)
        self.pool.evict_below(self._account_nonce)
        self.m_pool.set(len(self.pool))
        self._schedule_start()
        head = self.ledger.head
        if self.sm.proposer(head.block_number + 1, 0) == self.address and len(self.pool):
            asyncio.get_running_loop().call_soon(self._prebuild, head.block_number + 1, head.hash)

    def _schedule_start(self) -> None:
        if self._start_handle is not None:
            self._start_handle.cancel()
        head = self.ledger.head
        delay = max(0.0, head.timestamp + self.block_period - time.time())
        self._start_handle = asyncio.get_running_loop().call_later(
            delay, self.feed, Start(head.block_number + 1))

    # ------------------------------------------------------------------ frames
    def _on_frame(self, author: bytes, kind: int, body: bytes) -> None:
        if kind == KIND_CONSENSUS:
            self.sync.maybe_sync_from(author, body)
            self.feed(MessageReceived(body))
        elif kind == KIND_TRANSACTION:
            try:
                tx = ShanghaiTransactionBuilder.decode(body)
                tx.validate()
                self.check_transaction(tx)
                self.pool.add(tx)
                self.m_pool.set(len(self.pool))
            except (RpcError, PoolFull):
                pass
            except Exception:
                self.m_dropped.labels("bad transaction").inc()
        elif kind == KIND_SYNC_REQUEST:
            self.sync.answer(author, body)
        elif kind == KIND_SYNC_RESPONSE:
            self.sync.import_response(author, body)

    def request_sync(self, peer: bytes | None = None) -> None:
        """Ask ``peer`` (default: a random usable peer) for the finalized blocks after our head."""
        self.sync.request(peer)

    async def _sync_watchdog(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(max(1.0, 2 * self.block_period))
            if time.monotonic() - self._last_commit > 3 * self.block_period + 2:
                self.request_sync()

    # ------------------------------------------------------------------ run
    async def run(self) -> None:
        """Run the validator until cancelled: open the ledger, start transport, JSON-RPC and consensus, then stop them
        in reverse order.
        """
        limits = RpcLimits.from_config(self.config.get("rpc"))  # eth_call/estimateGas off this loop:
        executor = CallExecutor(str(self.config["data_dir"]), self.config["genesis"], limits)
        rpc_config = self.config["rpc"]
        listeners = [(rpc_config, RpcAccess.from_config(rpc_config))]
        if rpc_config.get("admin"):  # admin methods on their own listener (loopback by default)
            listeners.append((rpc_config["admin"], RpcAccess.from_config(rpc_config, admin_listener=True)))
        servers = []
        for where, access in listeners:
            app = make_rpc_app(self, self.rpc_methods(), limits=limits, executor=executor, access=access)
            app.router.routes.append(Route("/metrics", self._metrics, methods=["GET"]))
            one = uvicorn.Server(uvicorn.Config(app, host=where["host"], port=int(where["port"]),
                                                log_level="warning", lifespan="off", access_log=False))
            one.install_signal_handlers = lambda: None  # type: ignore[method-assign]
            servers.append(one)
        await self.transport.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        server_tasks = [asyncio.create_task(one.serve()) for one in servers]
        watchdog = asyncio.create_task(self._sync_watchdog())
        garbage = (asyncio.create_task(self.byzantine_behaviour.run(self._stopping))
                   if self.byzantine_behaviour is not None else None)
        self.m_height.set(self.ledger.height)
        self._schedule_start()
        log.info("%s: %s at height %d, p2p %s:%s (advertised %s), rpc %s", self.name,
                 to_checksum_address(self.address), self.ledger.height, self.config["p2p"]["host"],
                 self.config["p2p"]["port"], self.enode, ", ".join(
                     f"http://{where['host']}:{where['port']} ({access.listener})" for where, access in listeners))
        await self._stopping.wait()
        log.info("%s: stopping", self.name)
        for one in servers:
            one.should_exit = True
        watchdog.cancel()
        if garbage is not None:
            garbage.cancel()
        await self.transport.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*server_tasks), 5)
        executor.close()
        self.ledger.close()

    async def _metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics), media_type="text/plain; version=0.0.4")


def main(argv: list[str] | None = None) -> None:
    """Command line: ``traceledger node --config DATA_DIR/validator-N/node.json`` (``python -m ledger.node``); returns
    the exit code.
    """
    parser = argparse.ArgumentParser(description="Run one TraceLedger QBFT node")
    parser.add_argument("--config", required=True,
                        help="node.json written by `traceledger node init` (or by `traceledger network up`)")
    parser.add_argument("--passphrase-file", default=None,
                        help=f"file holding the key's passphrase (else ${PASSPHRASE_ENV} or node.json passphrase_file)")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--byzantine", choices=["equivocate", "garbage"], default=None,
                        help="DEBUG FAULT for the fault-injection harness: misbehave on purpose")
    args = parser.parse_args(argv)
    config = load_node_config(args.config)
    if args.passphrase_file:
        config["passphrase_file"] = str(Path(args.passphrase_file).resolve())
    if args.byzantine:
        config["byzantine"] = args.byzantine
    logging.basicConfig(level=args.log_level.upper(),
                        format=f"%(asctime)s %(levelname)s [{config.get('name', 'node')}] %(message)s")
    profile_to = os.environ.get("TRACELEDGER_PROFILE")  # debugging aid: cProfile stats written at exit
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            asyncio.run(Node(config, args.config).run())
        finally:
            profiler.disable()
            profiler.dump_stats(f"{profile_to}.{config.get('name', 'node')}")
        return
    asyncio.run(Node(config, args.config).run())


if __name__ == "__main__":
    main()
