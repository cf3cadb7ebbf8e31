"""Limits that keep a validator's JSON-RPC from stalling consensus (Hyperledger Besu's options as anchor).

The JSON-RPC server shares the node's event loop with QBFT, so every request must cost a bounded,
small amount of loop time. This module holds:

* :class:`RpcLimits` — the limits and their defaults (node.json ``"rpc"`` object, keys below):

  ============================== =============================== ===========================================
  node.json ``rpc`` key          Besu / geth option              default
  ============================== =============================== ===========================================
  ``gas_cap``                    ``--rpc-gas-cap``               50,000,000 gas (a larger ``gas`` is capped)
  ``call_timeout_s``             geth ``--rpc.evmtimeout``       5 s per eth_call / eth_estimateGas
  ``max_batch_size``             ``--rpc-http-max-batch-size``   1024 requests per batch
  ``max_request_content_length`` ``--rpc-http-max-request-       1 MiB (bytes actually read, chunked too;
                                 content-length``                Besu: 5 MB; parsing is on the loop)
  ``max_logs_range``             ``--rpc-max-logs-range``        5000 blocks per eth_getLogs
  ``max_fee_history_blocks``     (geth/Besu: 1024)               1024 blocks per eth_feeHistory (capped)
  ``max_reward_percentiles``     (geth: 100)                     100 percentiles per eth_feeHistory
  ``max_pending_calls``          —                               64 execution requests waiting per node,
  ``max_pending_calls_per_client``                               4 per client IP (served round-robin)
  ``rate_per_s`` / ``rate_burst`` —                              5000 requests/s, burst 20000, per client IP
  ============================== =============================== ===========================================

* :func:`parse_body` — bounded JSON for request bodies: nesting deeper than 32 (counted before parsing),
  ``NaN``/``Infinity``, integers of more than 80 digits refused, at C ``json.loads`` speed;
* :func:`valid_id` — JSON-RPC 2.0 §4 ids: string (≤ 256 characters), integer (|id| < 2**63) or null;
* :class:`RateLimiter` — a token bucket per client address (bounded LRU of clients);
* :class:`CallExecutor` — ``eth_call`` / ``eth_estimateGas`` in a separate, niced worker **process**
  with its own read-only view of the chain database (LMDB allows many reader processes): an
  infinite loop burns the worker's CPU, never the consensus loop's, and is stopped by ``SIGALRM`` at
  ``call_timeout_s`` (the parent kills and replaces the worker if even that fails).

Errors use the JSON-RPC codes ``-32700`` parse error, ``-32600`` invalid request, ``-32602`` invalid
params, ``-32005`` limit exceeded (EIP-1474).
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import signal
import time
from collections import OrderedDict, deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, fields
from typing import Any

from provenance import strict_json

#: JSON-RPC error codes (JSON-RPC 2.0 §5.1 and EIP-1474).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
LIMIT_EXCEEDED = -32005

#: Longest integer literal accepted in a request body (uint256 has 78 decimal digits).
MAX_INT_DIGITS = 80
#: Longest string id; integer ids must satisfy |id| < 2**63.
MAX_ID_CHARS = 256


@dataclass(frozen=True)
class RpcLimits:
    """Per-node JSON-RPC limits; see the module docstring for the table of keys and defaults."""

    gas_cap: int = 50_000_000
    call_timeout_s: float = 5.0
    max_batch_size: int = 1024
    max_request_content_length: int = 1024 * 1024
    max_logs_range: int = 5000
    max_fee_history_blocks: int = 1024
    max_reward_percentiles: int = 100
    max_pending_calls: int = 64
    max_pending_calls_per_client: int = 4
    rate_per_s: float = 5000.0
    rate_burst: int = 20_000

    @classmethod
    def from_config(cls, rpc_config: dict[str, Any] | None) -> RpcLimits:
        """Limits from node.json's ``rpc`` object (unknown keys such as ``host``/``port`` ignored)."""
        rpc_config = rpc_config or {}
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for name in known:
            if name in rpc_config:
                default = getattr(cls, name)
                values[name] = type(default)(rpc_config[name])
        return cls(**values)


class RequestRefused(Exception):
    """A whole HTTP request refused before dispatch: HTTP ``status`` and JSON-RPC ``code``/``message``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 §6)")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer literal of {len(text)} digits; at most {MAX_INT_DIGITS}")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} overflows a double")
    return value


def parse_body(body: bytes, max_depth: int = 32) -> Any:
    """Parse a JSON-RPC request body; raises :class:`RequestRefused` (HTTP 200, ``-32700``) when refused.

    Refused: nesting deeper than ``max_depth`` (counted on the raw bytes first, so the parser never
    recurses deeply), invalid UTF-8, ``NaN``/``Infinity``, integers of more than :data:`MAX_INT_DIGITS`
    digits. It stays on C-speed ``json.loads`` (no per-object hooks): the body is parsed on the
    consensus event loop.
    """
    try:
        depth = strict_json.nesting_depth(body)
        if depth > max_depth:
            raise ValueError(f"nesting depth {depth}; at most {max_depth}")
        return json.loads(body.decode("utf-8"), parse_constant=_no_constant, parse_int=_bounded_int,
                          parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise RequestRefused(200, PARSE_ERROR, f"parse error: {str(exc)[:200]}") from exc


def valid_id(value: Any) -> bool:
    """JSON-RPC 2.0 §4 id: a string of ≤ :data:`MAX_ID_CHARS` characters, an integer with |id| < 2**63, or null."""
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) < value < 2**63
    if isinstance(value, str):
        try:
            value.encode("utf-8")  # a lone surrogate could not be echoed back
        except UnicodeEncodeError:
            return False
        return len(value) <= MAX_ID_CHARS
    return False


async def read_body(receive_chunks: Any, limit: int) -> bytes:
    """Read an HTTP body from an async iterator of chunks, refusing (HTTP 413) past ``limit`` bytes.

    Counts the bytes actually received, so a chunked body or a lying ``Content-Length`` is caught.
    """
    parts: list[bytes] = []
    size = 0
    async for chunk in receive_chunks:
        size += len(chunk)
        if size > limit:
            raise RequestRefused(413, INVALID_REQUEST,
                                 f"request body exceeds max_request_content_length ({limit} bytes)")
        parts.append(chunk)
    return b"".join(parts)


class RateLimiter:
    """Token bucket per client address: ``rate`` tokens/s, at most ``burst``; ``rate <= 0`` disables it.

    Keeps at most ``max_clients`` buckets (least recently seen evicted), so the table itself is bounded.
    """

    def __init__(self, rate: float, burst: int, max_clients: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str, cost: int = 1, now: float | None = None) -> bool:
        """Spend ``cost`` tokens of ``client``; False (and nothing spent) when the bucket holds fewer."""
        if self.rate <= 0:
            return True
        now = time.monotonic() if now is None else now
        tokens, stamp = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return allowed


# ------------------------------------------------------------------ execution worker (separate process)
class _CallTimeout(BaseException):
    """Raised in the worker by SIGALRM; a BaseException so py-evm's ``except Exception`` cannot swallow it."""


_WORKER: dict[str, Any] = {}


def _on_alarm(signum: int, frame: Any) -> None:
    raise _CallTimeout()


def _die_with_parent(parent_pid: int) -> None:
    """Never outlive the node: SIGKILL on parent death (Linux ``PR_SET_PDEATHSIG``), else a watchdog thread."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        if libc.prctl(1, signal.SIGKILL, 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):
        import threading

        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:  # the node died before prctl took effect
        os._exit(1)


def _worker_init(data_dir: str, genesis_json: dict[str, Any], niceness: int, parent_pid: int) -> None:
    """Worker process start: die with the node, lower priority, install the time-limit alarm, open the chain."""
    from ledger.chain import GenesisConfig, Ledger

    _die_with_parent(parent_pid)
    if niceness:
        os.nice(niceness)
    signal.signal(signal.SIGALRM, _on_alarm)
    _WORKER["ledger"] = Ledger(data_dir, GenesisConfig.from_json(genesis_json))


def _worker_execute(method: str, params: list[Any], block_hash: bytes, gas_cap: int,
                    timeout_s: float) -> tuple[str, Any, Any, Any]:
    """Run one execution method at the block ``block_hash``: ``("ok", result, None, None)`` or
    ``("error", code, message, data)``."""
    from ledger.rpc import RpcError, execute_at

    ledger = _WORKER["ledger"]
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        return ("ok", execute_at(ledger, method, params, block_hash, gas_cap), None, None)
    except _CallTimeout:
        return ("error", LIMIT_EXCEEDED, f"{method} exceeded the execution time limit of {timeout_s:g} s "
                                         "(call_timeout_s)", None)
    except RpcError as exc:
        return ("error", exc.code, exc.message, exc.data)
    except Exception as exc:  # a VM failure must come back as an answer, not kill the worker
        return ("error", -32000, f"execution failed: {str(exc)[:300]}", None)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


class CallExecutor:
    """Runs ``eth_call``/``eth_estimateGas`` in one niced worker process (spawned on first use).

    One execution runs at a time. Waiting calls are served **round-robin across clients** (a client
    sending many loop calls delays another client by at most one call per turn); at most
    ``limits.max_pending_calls_per_client`` wait per client and ``limits.max_pending_calls`` in all
    (more: ``-32005``). The worker stops a call at ``limits.call_timeout_s``; if it does not answer
    within ``GRACE_S`` more it is killed and replaced.
    """

    GRACE_S = 5.0
    STARTUP_S = 60.0

    def __init__(self, data_dir: str, genesis_json: dict[str, Any], limits: RpcLimits, niceness: int = 10) -> None:
        self.data_dir = data_dir
        self.genesis_json = genesis_json
        self.limits = limits
        self.niceness = niceness
        self._pool: ProcessPoolExecutor | None = None
        self._queues: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._waiting = 0
        self._busy = False
        self._last: str | None = None
        self._warm = False

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(self.data_dir, self.genesis_json, self.niceness, os.getpid()))
        return self._pool

    def close(self) -> None:
        """Stop the worker process (kills a running call)."""
        pool, self._pool = self._pool, None
        self._warm = False
        if pool is None:
            return
        for proc in list(getattr(pool, "_processes", {}).values()):
            if proc.is_alive():
                proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def _grant_next(self) -> None:
        """Give the worker to the next waiting client in rotation (its oldest call)."""
        while not self._busy and self._queues:
            client = next(iter(self._queues))
            if client == self._last and len(self._queues) > 1:  # the client served last goes behind the others
                self._queues.move_to_end(client)
                client = next(iter(self._queues))
            waiters = self._queues[client]
            turn = waiters.popleft()
            if waiters:
                self._queues.move_to_end(client)
            else:
                del self._queues[client]
            if not turn.done():  # skip calls whose client went away
                self._busy = True
                self._last = client
                turn.set_result(None)

    def _release(self) -> None:
        self._busy = False
        self._grant_next()

    async def execute(self, method: str, params: list[Any], block_hash: bytes,
                      client: str = "local") -> tuple[str, Any, Any, Any]:
        """Run ``method`` at ``block_hash`` in the worker for ``client`` (its address); the same tuple as
        :func:`_worker_execute`."""
        waiters = self._queues.get(client)
        if self._waiting >= self.limits.max_pending_calls:
            return ("error", LIMIT_EXCEEDED, f"too many execution requests waiting (max_pending_calls "
                                             f"{self.limits.max_pending_calls}); retry later", None)
        if waiters is not None and len(waiters) >= self.limits.max_pending_calls_per_client:
            cap = self.limits.max_pending_calls_per_client
            return ("error", LIMIT_EXCEEDED, f"too many execution requests waiting from this client "
                                             f"(max_pending_calls_per_client {cap}); retry later", None)
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(client, deque()).append(turn)
        self._waiting += 1
        try:
            self._grant_next()
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():  # granted, then cancelled: pass the worker on
                    self._release()
                raise
        finally:
            self._waiting -= 1
        try:
            return await self._run(method, params, block_hash)
        finally:
            self._release()

    async def _run(self, method: str, params: list[Any], block_hash: bytes) -> tuple[str, Any, Any, Any]:
        timeout = self.limits.call_timeout_s
        # a fresh worker first imports py-evm and opens the database: allow it STARTUP_S more
        budget = timeout + self.GRACE_S + (0.0 if self._warm else self.STARTUP_S)
        try:
            future = asyncio.get_running_loop().run_in_executor(
                self._get_pool(), _worker_execute, method, params, block_hash, self.limits.gas_cap, timeout)
            answer = await asyncio.wait_for(future, budget)
        except TimeoutError:
            self.close()
            return ("error", LIMIT_EXCEEDED,
                    f"{method} exceeded the execution time limit of {timeout:g} s (call_timeout_s)", None)
        except BrokenProcessPool as exc:  # the worker died (killed, or failed to start): a fresh one next time
            self.close()
            return ("error", -32603, f"internal error: the execution worker stopped ({exc}); retry", None)
        self._warm = True
        return answer
