"""One web3.py provider over several validators' JSON-RPC endpoints, with health-checked failover.

``TRACELEDGER_RPC_URLS`` (comma-separated; ``TRACELEDGER_RPC_URL`` is the one-element fallback) lists the
endpoints. Every request, read or transaction, goes to the current endpoint; when it fails at the transport
(connection refused or reset, timeout, HTTP error) the endpoint is marked down for ``cooldown_s`` seconds and
the same request goes to the next one, which becomes current. A marked endpoint is used again only after its
cool-down and a successful ``eth_blockNumber`` probe (while every endpoint is marked, all are tried in order).

**Nonce safety.** A transaction whose submission timed out on one validator may have been admitted there and
gossiped. The caller (``api.chain.ChainClient.send``) re-sends the **same signed raw transaction** (same
hash, same nonce), never a new one; this provider then treats the answers that mean "that very transaction
is already in": ``already known`` / ``known transaction`` (geth, Besu), and ``nonce too low`` when
``eth_getTransactionByHash`` of our hash finds it (mined, or pooled) -- both return our hash as the result.
A ``nonce too low`` for a transaction the node does not know stays an error (another transaction took the
nonce). So one record batch is never anchored by two transactions, and the contract refuses a second anchor
of the same root by the same enterprise anyway (``AnchorRegistry``, one root once).

**A lagging validator's refusal.** Admission depends on the node's head state: a validator a block or two
behind (just failed over to, or starved of CPU) does not yet know that the sender was registered (``-32007``
"not permitted"), funded (``insufficient funds``) or that a nonce moved on. Such a state-dependent refusal
is not final: the **same signed bytes** (same hash, same nonce) are offered to the other usable endpoints
whose head (``eth_blockNumber``, asked after the refusal) is at least the refuser's, highest head first; the
first that admits it (or already has it, as above) becomes current. An endpoint behind the refuser is never
asked (its older state could admit a nonce the chain has already used). When every such endpoint refuses,
the first refusal is returned. Nothing is weakened: each validator checks permissioning and nonces again when
it validates the block, and re-sending identical bytes can never make two transactions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import requests
from eth_utils import keccak, to_bytes
from web3 import HTTPProvider
from web3.exceptions import ProviderConnectionError
from web3.types import RPCEndpoint, RPCResponse

log = logging.getLogger("traceledger.rpc_failover")

#: Seconds an endpoint that failed a request is skipped (then probed before use).
DEFAULT_COOLDOWN_S = 10.0
_TRANSPORT_ERRORS = (requests.RequestException, ProviderConnectionError, ConnectionError, TimeoutError, OSError)
_ALREADY_KNOWN = ("already known", "known transaction", "already imported", "alreadyknown")
#: JSON-RPC code of a permissioning refusal (Besu's; ours too, ``ledger.rpc``).
NOT_PERMITTED_CODE = -32007
#: Refusals that depend on the node's head state (a node that lags may refuse what the chain admits).
_STATE_REFUSALS = ("not permitted", "nonce too low", "insufficient funds")


def parse_rpc_urls(urls: str | None, url: str | None = None) -> list[str]:
    """Endpoints from ``TRACELEDGER_RPC_URLS`` (comma-separated, blanks ignored, order kept, duplicates dropped),
    else ``[TRACELEDGER_RPC_URL]``, else ``[]``."""
    out: list[str] = []
    for part in (urls or "").split(","):
        part = part.strip()
        if part and part not in out:
            out.append(part)
    if not out and url and url.strip():
        out.append(url.strip())
    return out


class FailoverHTTPProvider(HTTPProvider):
    """``HTTPProvider`` over ``urls`` (at least one), failing over on transport errors (see the module docstring).

    ``request_kwargs`` go to each endpoint's ``requests`` call (e.g. ``{"timeout": 10}``, seconds);
    ``cooldown_s``: seconds a failed endpoint is skipped; ``clock``: monotonic seconds (tests).
    Raises the last transport error when no endpoint answers.
    """

    def __init__(
        self, urls: Sequence[str], *, request_kwargs: dict[str, Any] | None = None,
        cooldown_s: float = DEFAULT_COOLDOWN_S, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("FailoverHTTPProvider needs at least one JSON-RPC URL")
        super().__init__(urls[0], request_kwargs=request_kwargs, exception_retry_configuration=None)
        self.urls = list(urls)
        self.endpoints = [HTTPProvider(u, request_kwargs=request_kwargs, exception_retry_configuration=None)
                          for u in self.urls]
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.current = 0
        self.failovers = 0
        self._down_until = [0.0] * len(self.urls)
        self._lock = threading.Lock()

    def __str__(self) -> str:
        return f"RPC connection {self.urls[self.current]} (failover over {len(self.urls)} endpoints)"

    @property
    def current_url(self) -> str:
        """The endpoint requests go to now."""
        return self.urls[self.current]

    def _order(self) -> list[int]:
        n = len(self.urls)
        start = self.current
        now = self.clock()
        ring = [(start + k) % n for k in range(n)]
        up = [i for i in ring if self._down_until[i] <= now]
        down = [i for i in ring if self._down_until[i] > now]
        return up + down

    def _usable(self, index: int) -> bool:
        """False when ``index`` was marked down and its ``eth_blockNumber`` probe now fails."""
        if self._down_until[index] == 0.0:
            return True
        try:
            answer = self.endpoints[index].make_request(RPCEndpoint("eth_blockNumber"), [])
        except _TRANSPORT_ERRORS:
            self._down_until[index] = self.clock() + self.cooldown_s
            return False
        if answer.get("error"):
            self._down_until[index] = self.clock() + self.cooldown_s
            return False
        self._down_until[index] = 0.0
        return True

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        """Send one request to the current endpoint, failing over on transport errors."""
        last: Exception | None = None
        order = self._order()
        all_down = all(self._down_until[i] > self.clock() for i in order)
        for index in order:
            if not all_down and self._down_until[index] > self.clock():
                continue
            if not all_down and not self._usable(index):
                continue
            try:
                response = self.endpoints[index].make_request(method, params)
            except _TRANSPORT_ERRORS as exc:
                last = exc
                with self._lock:
                    self._down_until[index] = self.clock() + self.cooldown_s
                log.warning("JSON-RPC endpoint %s failed %s (%s: %s); trying the next one", self.urls[index], method,
                            type(exc).__name__, exc)
                continue
            if method == "eth_sendRawTransaction" and response.get("error"):
                response = self._already_in(index, params, response)
                if response.get("error") and is_state_refusal(response):
                    index, response = self._elsewhere(index, params, response)
            with self._lock:
                if index != self.current:
                    self.failovers += 1
                    log.warning("JSON-RPC now served by %s (was %s)", self.urls[index], self.urls[self.current])
                    self.current = index
            return response
        assert last is not None
        raise last

    def _already_in(self, index: int, params: Any, response: RPCResponse) -> RPCResponse:
        """Our hash as the result when the error means this very transaction is already in (see module)."""
        raw = params[0] if isinstance(params, list | tuple) and params else None
        if raw is None:
            return response
        tx_hash = "0x" + keccak(to_bytes(hexstr=raw) if isinstance(raw, str) else bytes(raw)).hex()
        message = _message(response).lower()
        known = any(m in message for m in _ALREADY_KNOWN)
        if not known and "nonce too low" in message:
            try:
                found = self.endpoints[index].make_request(RPCEndpoint("eth_getTransactionByHash"), [tx_hash])
            except _TRANSPORT_ERRORS:
                return response
            known = bool(found.get("result"))
        if not known:
            return response
        log.info("transaction %s is already in on %s (%s): taken as sent", tx_hash, self.urls[index], message)
        return RPCResponse({"jsonrpc": "2.0", "id": response.get("id"), "result": tx_hash})  # type: ignore[typeddict-item]

    def _head(self, index: int) -> int | None:
        """``eth_blockNumber`` of endpoint ``index``, or None when it does not answer (then it is marked down)."""
        try:
            answer = self.endpoints[index].make_request(RPCEndpoint("eth_blockNumber"), [])
        except _TRANSPORT_ERRORS:
            with self._lock:
                self._down_until[index] = self.clock() + self.cooldown_s
            return None
        result = answer.get("result")
        try:
            head = int(result, 16) if isinstance(result, str) else int(result)
        except (TypeError, ValueError):
            return None
        with self._lock:
            self._down_until[index] = 0.0  # answered: usable (as after a successful probe)
        return head

    def _elsewhere(self, refuser: int, params: Any, refusal: RPCResponse) -> tuple[int, RPCResponse]:
        """Offer the raw transaction ``refuser`` refused (state-dependent, see the module docstring) to the other
        usable endpoints at or above its head, highest first. Returns ``(index, response)`` of the first that
        admits it, else ``(refuser, refusal)``."""
        now = self.clock()
        others = [i for i in self._order() if i != refuser and self._down_until[i] <= now]
        if not others:
            return refuser, refusal
        floor = self._head(refuser)
        heads = [(head, i) for i in others if (head := self._head(i)) is not None
                 and (floor is None or head >= floor)]
        for head, index in sorted(heads, key=lambda hi: -hi[0]):  # stable: ring order among equal heads
            try:
                response = self.endpoints[index].make_request(RPCEndpoint("eth_sendRawTransaction"), params)
            except _TRANSPORT_ERRORS as exc:
                with self._lock:
                    self._down_until[index] = self.clock() + self.cooldown_s
                log.warning("JSON-RPC endpoint %s failed eth_sendRawTransaction (%s: %s)", self.urls[index],
                            type(exc).__name__, exc)
                continue
            if response.get("error"):
                response = self._already_in(index, params, response)
            if not response.get("error"):
                log.warning("%s refused a transaction (%s) at head %s; %s at head %s admitted the same bytes",
                            self.urls[refuser], _message(refusal), floor, self.urls[index], head)
                return index, response
        return refuser, refusal


def _message(response: RPCResponse) -> str:
    error = response.get("error") or {}
    return str(error.get("message", error) if isinstance(error, dict) else error)


def is_state_refusal(response: RPCResponse) -> bool:
    """True when ``response`` is an ``eth_sendRawTransaction`` refusal that depends on the node's head state:
    code -32007 (sender not permitted), ``nonce too low`` or ``insufficient funds`` (a lagging node may refuse
    what an up-to-date one admits)."""
    error = response.get("error") or {}
    code = error.get("code") if isinstance(error, dict) else None
    return code == NOT_PERMITTED_CODE or any(m in _message(response).lower() for m in _STATE_REFUSALS)
