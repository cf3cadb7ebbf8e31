"""Standard Ethereum JSON-RPC over HTTP for a validator or observer node.

One small function per method, registered in :data:`METHODS`. Served by Starlette (under uvicorn)
in the node's event loop, so every call sees a consistent head; execution requests (``eth_call``,
``eth_estimateGas``) go to a separate worker process (:class:`ledger.rpc_guard.CallExecutor`) so they
cannot stall consensus, and every request is bounded by :class:`ledger.rpc_guard.RpcLimits`. Errors
follow JSON-RPC 2.0: ``-32700`` parse error, ``-32600`` invalid request, ``-32601`` unknown method,
``-32602`` invalid params, ``-32005`` limit exceeded (EIP-1474), ``-32000`` execution / transaction
error (with revert ``data`` for ``eth_call``), and ``-32007`` (Besu's code) when the sender is not
permitted to transact.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import rlp
from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI
from eth.exceptions import HeaderNotFound, Revert, TransactionNotFound
from eth.vm.forks.shanghai.transactions import ShanghaiTransactionBuilder
from eth.vm.spoof import SpoofTransaction
from eth_utils import (
    ValidationError,
    encode_hex,
    is_hex_address,
    keccak,
    to_canonical_address,
    to_checksum_address,
)
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ledger.chain import Ledger
from ledger.rpc_access import UNAUTHORIZED, RpcAccess, TokenRefused
from ledger.rpc_guard import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    LIMIT_EXCEEDED,
    CallExecutor,
    RateLimiter,
    RequestRefused,
    RpcLimits,
    parse_body,
    read_body,
    valid_id,
)

log = logging.getLogger("ledger.rpc")

CLIENT_VERSION = "traceledger/v0.1.0/py-evm-0.12.1b1/qbft"
#: Blocks one eth_getLogs call may scan (the default of ``RpcLimits.max_logs_range``, Besu's ``rpc-max-logs-range``).
MAX_LOG_RANGE = RpcLimits.max_logs_range
#: The limits of the request being answered (set by :func:`make_rpc_app`; defaults for direct ``dispatch``).
DEFAULT_LIMITS = RpcLimits()
CURRENT_LIMITS: contextvars.ContextVar[RpcLimits] = contextvars.ContextVar(
    "rpc_limits", default=DEFAULT_LIMITS)  # noqa: B039 (RpcLimits is frozen)
#: Methods that execute EVM code; :func:`make_rpc_app` sends them to the :class:`CallExecutor` when given one.
EXECUTION_METHODS = frozenset({"eth_call", "eth_estimateGas"})


class RpcError(Exception):
    """A JSON-RPC error with ``code``, ``message`` and optional ``data``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class NodeContext(Protocol):
    """What the RPC methods need from the node process."""

    ledger: Ledger

    def submit_transaction(self, tx: SignedTransactionAPI) -> None:
        """Validate, pool and gossip ``tx``; raises RpcError."""

    def pending_nonce(self, sender: bytes) -> int:
        """Account nonce plus consecutive pending transactions."""

    def peer_count(self) -> int:
        """Connected peers."""


# ------------------------------------------------------------------ param helpers
def qty(value: int) -> str:
    """JSON-RPC quantity: ``value`` (a non-negative int) as minimal ``0x`` hex."""
    return hex(value)


def data(value: bytes) -> str:
    """JSON-RPC data: ``value`` bytes as ``0x`` hex (two digits per byte)."""
    return encode_hex(bytes(value))


def parse_qty(value: Any, name: str) -> int:
    """A quantity: 0x-hex string (≤ 64 hex digits) or a JSON integer, within ``[0, 2**256)``; else -32602."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.startswith("0x") and 2 < len(value) <= 66:
        try:
            number = int(value, 16)
        except ValueError:
            number = None
    if number is None or not 0 <= number < 2**256:
        raise RpcError(-32602, f"invalid params: {name} must be a hex quantity below 2**256, got {str(value)[:80]!r}")
    return number


def parse_data(value: Any, name: str) -> bytes:
    """Bytes from a ``0x``-prefixed even-length hex string; RpcError -32602 naming ``name`` otherwise."""
    if isinstance(value, str) and value.startswith("0x") and len(value) % 2 == 0:
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    raise RpcError(-32602, f"invalid params: {name} must be 0x-prefixed hex bytes, got {value!r}")


def parse_address(value: Any, name: str) -> bytes:
    """A 20-byte canonical address from a hex address string; RpcError -32602 naming ``name`` otherwise."""
    if isinstance(value, str) and is_hex_address(value):
        return to_canonical_address(value)
    raise RpcError(-32602, f"invalid params: {name} must be a 20-byte hex address, got {value!r}")


def param(params: list[Any], index: int, name: str, default: Any = ...) -> Any:
    """``params[index]``, or ``default`` when absent; RpcError -32602 naming ``name`` when absent without default."""
    if len(params) > index:
        return params[index]
    if default is ...:
        raise RpcError(-32602, f"invalid params: missing {name} (position {index})")
    return default


def resolve_block(ledger: Ledger, tag: Any) -> BlockHeaderAPI:
    """Header for a block tag (``latest``/``pending``/``safe``/``finalized``/``earliest``/number)."""
    if tag in (None, "latest", "pending", "safe", "finalized"):
        return ledger.head
    if tag == "earliest":
        return ledger.header_at(0)
    if isinstance(tag, dict) and "blockHash" in tag:
        try:
            return ledger.chain.get_block_header_by_hash(parse_data(tag["blockHash"], "blockHash"))
        except HeaderNotFound as exc:
            raise RpcError(-32000, "header not found") from exc
    number = parse_qty(tag, "block")
    if number > ledger.height:
        raise RpcError(-32000, f"header not found: block {number} is beyond head {ledger.height}")
    return ledger.header_at(number)


# ------------------------------------------------------------------ JSON shapes
def tx_json(tx: SignedTransactionAPI, header: BlockHeaderAPI | None, index: int | None) -> dict[str, Any]:
    """A signed transaction as ``eth_getTransactionByHash`` answers it (hash, from, nonce, gas fields in wei, v/r/s,
    type, chainId, accessList …), with its block hash, number and index when ``header`` is given.
    """
    base_fee = header.base_fee_per_gas if header is not None else None
    out: dict[str, Any] = {
        "hash": data(tx.hash), "nonce": qty(tx.nonce), "from": to_checksum_address(tx.sender),
        "to": to_checksum_address(tx.to) if tx.to else None, "value": qty(tx.value), "gas": qty(tx.gas),
        "input": data(tx.data), "type": qty(getattr(tx, "type_id", None) or 0),
        "blockHash": data(header.hash) if header is not None else None,
        "blockNumber": qty(header.block_number) if header is not None else None,
        "transactionIndex": qty(index) if index is not None else None,
        "v": qty(tx.y_parity if getattr(tx, "type_id", None) else tx.v), "r": qty(tx.r), "s": qty(tx.s),
    }
    if getattr(tx, "type_id", None):
        out["chainId"] = qty(tx.chain_id)
        out["yParity"] = qty(tx.y_parity)
        out["accessList"] = [
            {"address": to_checksum_address(a), "storageKeys": [data(k.to_bytes(32, "big")) for k in keys]}
            for a, keys in tx.access_list
        ]
    if getattr(tx, "type_id", None) == 2:
        out["maxFeePerGas"] = qty(tx.max_fee_per_gas)
        out["maxPriorityFeePerGas"] = qty(tx.max_priority_fee_per_gas)
        price = tx.max_fee_per_gas if base_fee is None else min(
            tx.max_fee_per_gas, base_fee + tx.max_priority_fee_per_gas)
        out["gasPrice"] = qty(price)
    else:
        out["gasPrice"] = qty(tx.gas_price)
    return out


def block_json(ledger: Ledger, block: BlockAPI, full: bool) -> dict[str, Any]:
    """A block as ``eth_getBlockByNumber`` answers it: the header fields with the round and commit seals merged back
    into ``extraData`` (QBFT form), ``difficulty``, ``totalDifficulty`` 0, and transaction hashes or, with ``full``,
    transaction objects.
    """
    h = block.header
    txs: list[Any] = [
        tx_json(tx, h, i) if full else data(tx.hash) for i, tx in enumerate(block.transactions)
    ]
    sealed = ledger.sealed_header_fields(h)
    return {
        "number": qty(h.block_number), "hash": data(h.hash), "parentHash": data(h.parent_hash),
        "nonce": data(h.nonce), "sha3Uncles": data(h.uncles_hash), "logsBloom": data(sealed[6]),
        "transactionsRoot": data(h.transaction_root), "stateRoot": data(h.state_root),
        "receiptsRoot": data(h.receipt_root), "miner": to_checksum_address(h.coinbase),
        "difficulty": qty(h.difficulty), "totalDifficulty": qty(0), "extraData": data(sealed[12]),
        "size": qty(len(rlp.encode(block))), "gasLimit": qty(h.gas_limit), "gasUsed": qty(h.gas_used),
        "timestamp": qty(h.timestamp), "transactions": txs, "uncles": [], "mixHash": data(h.mix_hash),
        "baseFeePerGas": qty(h.base_fee_per_gas), "withdrawalsRoot": data(h.withdrawals_root),
        "withdrawals": [],
    }


def _contract_address(sender: bytes, nonce: int) -> bytes:
    return keccak(rlp.encode([sender, nonce]))[12:]


#: Receipts JSON of recently read blocks, by block hash (finalized blocks never change: no invalidation).
_RECEIPTS_CACHE: OrderedDict[bytes, list[dict[str, Any]]] = OrderedDict()
RECEIPTS_CACHE_BLOCKS = 64


def receipts_json(ledger: Ledger, block: BlockAPI) -> list[dict[str, Any]]:
    """Receipts of every transaction of ``block`` with their logs (log indexes count within the block).

    Cached per block hash (LRU of :data:`RECEIPTS_CACHE_BLOCKS` blocks): building them costs O(block
    transactions), and clients waiting for receipts ask for each transaction of a block in turn.
    """
    cached = _RECEIPTS_CACHE.get(block.header.hash)
    if cached is not None:
        _RECEIPTS_CACHE.move_to_end(block.header.hash)
        return cached
    out = _receipts_json(ledger, block)
    _RECEIPTS_CACHE[block.header.hash] = out
    while len(_RECEIPTS_CACHE) > RECEIPTS_CACHE_BLOCKS:
        _RECEIPTS_CACHE.popitem(last=False)
    return out


def _receipts_json(ledger: Ledger, block: BlockAPI) -> list[dict[str, Any]]:
    receipts: tuple[ReceiptAPI, ...] = block.get_receipts(ledger.chain.chaindb)
    h = block.header
    out: list[dict[str, Any]] = []
    log_index = 0
    prev_cumulative = 0
    for i, (tx, receipt) in enumerate(zip(block.transactions, receipts, strict=True)):
        logs = []
        for entry in receipt.logs:
            logs.append({
                "address": to_checksum_address(entry.address),
                "topics": [data(t.to_bytes(32, "big")) for t in entry.topics],
                "data": data(entry.data), "blockNumber": qty(h.block_number), "blockHash": data(h.hash),
                "transactionHash": data(tx.hash), "transactionIndex": qty(i), "logIndex": qty(log_index),
                "removed": False,
            })
            log_index += 1
        price = tx.gas_price if not getattr(tx, "type_id", None) == 2 else min(
            tx.max_fee_per_gas, h.base_fee_per_gas + tx.max_priority_fee_per_gas)
        out.append({
            "transactionHash": data(tx.hash), "transactionIndex": qty(i), "blockHash": data(h.hash),
            "blockNumber": qty(h.block_number), "from": to_checksum_address(tx.sender),
            "to": to_checksum_address(tx.to) if tx.to else None,
            "cumulativeGasUsed": qty(receipt.gas_used), "gasUsed": qty(receipt.gas_used - prev_cumulative),
            "contractAddress": None if tx.to else to_checksum_address(_contract_address(tx.sender, tx.nonce)),
            "logs": logs, "logsBloom": data(int(receipt.bloom).to_bytes(256, "big")),
            "status": qty(1 if receipt.state_root == b"\x01" else 0), "effectiveGasPrice": qty(price),
            "type": qty(getattr(tx, "type_id", None) or 0),
        })
        prev_cumulative = receipt.gas_used
    return out


# ------------------------------------------------------------------ call helpers
def _spoof_call(ledger: Ledger, call: dict[str, Any], header: BlockHeaderAPI, gas_cap: int) -> SpoofTransaction:
    """The call object as a transaction; ``gas`` (default: the block gas limit) is capped at ``gas_cap``
    (Besu ``rpc-gas-cap`` / geth ``RPCGasCap``: a larger value is lowered, not refused)."""
    if not isinstance(call, dict):
        raise RpcError(-32602, "invalid params: call object expected")
    sender = parse_address(call["from"], "from") if call.get("from") else b"\x00" * 20
    to = parse_address(call["to"], "to") if call.get("to") else b""
    payload = parse_data(call.get("data") or call.get("input") or "0x", "data")
    value = parse_qty(call.get("value", "0x0"), "value")
    gas = parse_qty(call["gas"], "gas") if call.get("gas") else header.gas_limit
    if gas >= 2**64:
        raise RpcError(-32602, f"invalid params: gas must be below 2**64, got {gas}")
    gas = min(gas, header.gas_limit, gas_cap) if gas_cap > 0 else min(gas, header.gas_limit)
    vm = ledger.chain.get_vm(header)
    nonce = vm.state.get_nonce(sender)
    unsigned = vm.create_unsigned_transaction(
        nonce=nonce, gas_price=0, gas=gas, to=to, value=value, data=payload)
    return SpoofTransaction(unsigned, from_=sender)


def _revert_error(computation_error: Exception) -> RpcError:
    if not isinstance(computation_error, Revert):  # out of gas, invalid opcode, stack errors…
        name = type(computation_error).__name__
        detail = f" ({computation_error})" if str(computation_error) else ""
        return RpcError(-32000, f"execution failed: {name}{detail}")
    args = getattr(computation_error, "args", ())
    revert_data = args[0] if args and isinstance(args[0], bytes) else b""
    return RpcError(3 if revert_data else -32000, "execution reverted", data(revert_data) if revert_data else None)


# ------------------------------------------------------------------ methods
def web3_clientVersion(ctx: NodeContext, params: list[Any]) -> str:
    """``web3_clientVersion`` → ``TraceLedger/<version>/…`` (no params)."""
    return CLIENT_VERSION


def eth_chainId(ctx: NodeContext, params: list[Any]) -> str:
    """``eth_chainId`` → the EIP-155 chain id as a quantity (EIP-695)."""
    return qty(ctx.ledger.genesis.chain_id)


def net_version(ctx: NodeContext, params: list[Any]) -> str:
    """``net_version`` → the chain id as a decimal string."""
    return str(ctx.ledger.genesis.chain_id)


def net_listening(ctx: NodeContext, params: list[Any]) -> bool:
    """``net_listening`` → true (the node accepts peer connections)."""
    return True


def net_peerCount(ctx: NodeContext, params: list[Any]) -> str:
    """``net_peerCount`` → number of connected peers as a quantity."""
    return qty(ctx.peer_count())


def eth_syncing(ctx: NodeContext, params: list[Any]) -> bool:
    """``eth_syncing`` → false (a validator follows the chain through consensus and catch-up sync)."""
    return False


def eth_blockNumber(ctx: NodeContext, params: list[Any]) -> str:
    """``eth_blockNumber`` → the head block number as a quantity (every block is final under QBFT)."""
    return qty(ctx.ledger.height)


def eth_gasPrice(ctx: NodeContext, params: list[Any]) -> str:
    """``eth_gasPrice`` → the head's base fee plus the suggested priority fee, in wei."""
    return qty(ctx.ledger.head.base_fee_per_gas)


def eth_maxPriorityFeePerGas(ctx: NodeContext, params: list[Any]) -> str:
    """``eth_maxPriorityFeePerGas`` → the suggested priority fee per gas, in wei."""
    return qty(0)


def eth_feeHistory(ctx: NodeContext, params: list[Any]) -> dict[str, Any]:
    """Fee history; ``blockCount`` is capped at ``max_fee_history_blocks`` (as geth and Besu do) and
    ``rewardPercentiles`` must be ≤ ``max_reward_percentiles`` numbers in [0, 100], non-decreasing
    (more: -32005; malformed: -32602)."""
    limits = CURRENT_LIMITS.get()
    count = min(parse_qty(param(params, 0, "blockCount"), "blockCount"), limits.max_fee_history_blocks)
    percentiles = param(params, 2, "rewardPercentiles", None) or []
    if not isinstance(percentiles, list):
        raise RpcError(INVALID_PARAMS, "invalid params: rewardPercentiles must be a list of numbers")
    if len(percentiles) > limits.max_reward_percentiles:
        raise RpcError(LIMIT_EXCEEDED, f"rewardPercentiles has {len(percentiles)} entries; at most "
                                       f"{limits.max_reward_percentiles} (max_reward_percentiles)")
    previous = 0.0
    for p in percentiles:
        if isinstance(p, bool) or not isinstance(p, int | float) or not previous <= p <= 100:
            raise RpcError(INVALID_PARAMS, "invalid params: rewardPercentiles must be non-decreasing numbers "
                                           f"in [0, 100], got {str(p)[:40]}")
        previous = p
    newest = resolve_block(ctx.ledger, param(params, 1, "newestBlock"))
    oldest = max(0, newest.block_number - count + 1)
    if count <= 0:
        return {"oldestBlock": qty(newest.block_number), "baseFeePerGas": [], "gasUsedRatio": [], "reward": []}
    headers = [ctx.ledger.header_at(n) for n in range(oldest, newest.block_number + 1)]
    next_base_fee = ctx.ledger.chain.create_header_from_parent(newest).base_fee_per_gas
    return {
        "oldestBlock": qty(oldest),
        "baseFeePerGas": [qty(h.base_fee_per_gas) for h in headers] + [qty(next_base_fee)],
        "gasUsedRatio": [h.gas_used / h.gas_limit for h in headers],
        "reward": [[qty(0) for _ in percentiles] for _ in headers],
    }


def eth_getBalance(ctx: NodeContext, params: list[Any]) -> str:
    """``eth_getBalance(address, block)`` → balance in wei at that block (default ``latest``)."""
    header = resolve_block(ctx.ledger, param(params, 1, "block", "latest"))
    address = parse_address(param(params, 0, "address"), "address")
    return qty(ctx.ledger.chain.get_vm(header).state.get_balance(address))


def eth_getTransactionCount(ctx: NodeContext, params: list[Any]) -> str:
    """``eth_getTransactionCount(address, block)`` → the account nonce at that block; ``pending`` counts the node's
    pool.
    """
    address = parse_address(param(params, 0, "address"), "address")
    tag = param(params, 1, "block", "latest")
    if tag == "pending":
        return qty(ctx.pending_nonce(address))
    header = resolve_block(ctx.ledger, tag)
    return qty(ctx.ledger.chain.get_vm(header).state.get_nonce(address))


def eth_getCode(ctx: NodeContext, params: list[Any]) -> str:
    """``eth_getCode(address, block)`` → the account's runtime bytecode (``0x`` when none)."""
    header = resolve_block(ctx.ledger, param(params, 1, "block", "latest"))
    address = parse_address(param(params, 0, "address"), "address")
    return data(ctx.ledger.chain.get_vm(header).state.get_code(address))


def eth_getStorageAt(ctx: NodeContext, params: list[Any]) -> str:
    """``eth_getStorageAt(address, slot, block)`` → the 32-byte storage word at ``slot``."""
    header = resolve_block(ctx.ledger, param(params, 2, "block", "latest"))
    address = parse_address(param(params, 0, "address"), "address")
    slot = parse_qty(param(params, 1, "slot"), "slot")
    value = ctx.ledger.chain.get_vm(header).state.get_storage(address, slot)
    return data(value.to_bytes(32, "big"))


def execute_at(ledger: Ledger, method: str, params: list[Any], block_hash: bytes, gas_cap: int) -> str:
    """``eth_call`` or ``eth_estimateGas`` (``method``) of ``params[0]`` on the state after ``block_hash``.

    Runs in the :class:`ledger.rpc_guard.CallExecutor` worker process for JSON-RPC clients, in-process
    for the node's own registry reads. Raises :class:`RpcError` (revert: code 3 with data, or -32000).
    """
    try:
        header = ledger.chain.get_block_header_by_hash(block_hash)
    except HeaderNotFound as exc:
        raise RpcError(-32000, "header not found") from exc
    spoof = _spoof_call(ledger, param(params, 0, "call"), header, gas_cap)
    with ledger.chain.get_vm(header).in_costless_state() as state:
        computation = state.costless_execute_transaction(spoof)
    if computation.is_error:
        raise _revert_error(computation.error)
    if method == "eth_call":
        return data(computation.output)
    try:
        return qty(ledger.chain.estimate_gas(spoof, header))
    except Exception as exc:  # py-evm raises the VM's error types
        raise RpcError(-32000, f"gas estimation failed: {exc}") from exc


def eth_call(ctx: NodeContext, params: list[Any]) -> str:
    """In-process ``eth_call`` (gas capped); JSON-RPC clients are served by the worker process instead."""
    header = resolve_block(ctx.ledger, param(params, 1, "block", "latest"))
    return execute_at(ctx.ledger, "eth_call", params, header.hash, CURRENT_LIMITS.get().gas_cap)


def eth_estimateGas(ctx: NodeContext, params: list[Any]) -> str:
    """In-process ``eth_estimateGas`` (gas capped); JSON-RPC clients are served by the worker process."""
    header = resolve_block(ctx.ledger, param(params, 1, "block", "latest"))
    return execute_at(ctx.ledger, "eth_estimateGas", params, header.hash, CURRENT_LIMITS.get().gas_cap)


def eth_getBlockByNumber(ctx: NodeContext, params: list[Any]) -> dict[str, Any] | None:
    """``eth_getBlockByNumber(block, full)`` → :func:`block_json` of that block, or null when unknown."""
    try:
        header = resolve_block(ctx.ledger, param(params, 0, "block"))
    except RpcError as exc:
        if exc.code == -32000:
            return None
        raise
    block = ctx.ledger.chain.get_block_by_header(header)
    return block_json(ctx.ledger, block, bool(param(params, 1, "fullTransactions", False)))


def eth_getBlockByHash(ctx: NodeContext, params: list[Any]) -> dict[str, Any] | None:
    """``eth_getBlockByHash(hash, full)`` → :func:`block_json` of that block, or null when unknown."""
    block_hash = parse_data(param(params, 0, "blockHash"), "blockHash")
    try:
        block = ctx.ledger.chain.get_block_by_hash(block_hash)
    except (HeaderNotFound, KeyError):
        return None
    return block_json(ctx.ledger, block, bool(param(params, 1, "fullTransactions", False)))


def eth_getBlockTransactionCountByNumber(ctx: NodeContext, params: list[Any]) -> str:
    """``eth_getBlockTransactionCountByNumber(block)`` → the number of transactions, or null."""
    header = resolve_block(ctx.ledger, param(params, 0, "block"))
    return qty(len(ctx.ledger.chain.get_block_by_header(header).transactions))


def _locate(ctx: NodeContext, tx_hash: bytes) -> tuple[BlockAPI, int] | None:
    try:
        number, index = ctx.ledger.chain.chaindb.get_transaction_index(tx_hash)
    except TransactionNotFound:
        return None
    return ctx.ledger.chain.get_canonical_block_by_number(number), index


def eth_getTransactionByHash(ctx: NodeContext, params: list[Any]) -> dict[str, Any] | None:
    """``eth_getTransactionByHash(hash)`` → :func:`tx_json` of a mined or pooled transaction, or null."""
    tx_hash = parse_data(param(params, 0, "hash"), "hash")
    found = _locate(ctx, tx_hash)
    if found is None:
        pending = ctx.ledger_pool_lookup(tx_hash) if hasattr(ctx, "ledger_pool_lookup") else None
        return tx_json(pending, None, None) if pending is not None else None
    block, index = found
    return tx_json(block.transactions[index], block.header, index)


def eth_getTransactionReceipt(ctx: NodeContext, params: list[Any]) -> dict[str, Any] | None:
    """``eth_getTransactionReceipt(hash)`` → the receipt (status, gas used, logs, contractAddress …) of a mined
    transaction, or null.
    """
    tx_hash = parse_data(param(params, 0, "hash"), "hash")
    try:
        number, index = ctx.ledger.chain.chaindb.get_transaction_index(tx_hash)
    except TransactionNotFound:
        return None
    header = ctx.ledger.header_at(number)
    cached = _RECEIPTS_CACHE.get(header.hash)
    if cached is not None:
        return cached[index]
    return receipts_json(ctx.ledger, ctx.ledger.chain.get_block_by_header(header))[index]


def _topic_matches(wanted: Any, topic: str | None) -> bool:
    if wanted is None:
        return True
    if isinstance(wanted, list):
        return topic is not None and topic.lower() in {w.lower() for w in wanted}
    return topic is not None and topic.lower() == str(wanted).lower()


def eth_getLogs(ctx: NodeContext, params: list[Any]) -> list[dict[str, Any]]:
    """``eth_getLogs(filter)`` → logs matching ``address`` and ``topics`` in ``fromBlock``..``toBlock`` or
    ``blockHash``; the range is limited (``-32005`` beyond it).
    """
    flt = param(params, 0, "filter", {})
    if not isinstance(flt, dict):
        raise RpcError(-32602, "invalid params: filter object expected")
    if flt.get("blockHash"):
        headers = [resolve_block(ctx.ledger, {"blockHash": flt["blockHash"]})]
    else:
        start = resolve_block(ctx.ledger, flt.get("fromBlock", "latest")).block_number
        end = resolve_block(ctx.ledger, flt.get("toBlock", "latest")).block_number
        max_range = CURRENT_LIMITS.get().max_logs_range
        if end - start >= max_range:
            raise RpcError(LIMIT_EXCEEDED, f"query spans {end - start + 1} blocks; at most {max_range} "
                                           "(max_logs_range)")
        headers = [ctx.ledger.header_at(n) for n in range(start, end + 1)]
    addresses = flt.get("address")
    if isinstance(addresses, str):
        addresses = [addresses]
    wanted_addresses = {a.lower() for a in addresses} if addresses else None
    topics = flt.get("topics") or []
    out = []
    for header in headers:
        if header.gas_used == 0:
            continue
        block = ctx.ledger.chain.get_block_by_header(header)
        for receipt in receipts_json(ctx.ledger, block):
            for entry in receipt["logs"]:
                if wanted_addresses is not None and entry["address"].lower() not in wanted_addresses:
                    continue
                entry_topics = entry["topics"]
                if all(_topic_matches(w, entry_topics[i] if i < len(entry_topics) else None)
                       for i, w in enumerate(topics)):
                    out.append(entry)
    return out


def eth_sendRawTransaction(ctx: NodeContext, params: list[Any]) -> str:
    """``eth_sendRawTransaction(data)`` → the transaction hash once the pool accepted it; -32007 for an unpermitted
    sender, -32000 for nonce, balance or gas problems.
    """
    raw = parse_data(param(params, 0, "signedTransaction"), "signedTransaction")
    try:
        tx = ShanghaiTransactionBuilder.decode(raw)
        tx.validate()
        sender = tx.sender
    except (ValidationError, ValueError, rlp.DecodingError, rlp.DeserializationError) as exc:
        raise RpcError(-32602, f"invalid transaction: {exc}") from exc
    except Exception as exc:  # malformed signatures raise eth_keys errors
        raise RpcError(-32602, f"invalid transaction: {exc}") from exc
    del sender
    ctx.submit_transaction(tx)
    return data(tx.hash)


def qbft_getValidatorsByBlockNumber(ctx: NodeContext, params: list[Any]) -> list[str]:
    """Validators of the block (Besu semantics: the set recorded in that block's extraData)."""
    from provenance.qbft_header import decode_extra_data

    header = resolve_block(ctx.ledger, param(params, 0, "block", "latest"))
    return [to_checksum_address(v) for v in decode_extra_data(header.extra_data).validators]


#: Storage keys one eth_getProof call may prove.
MAX_PROOF_KEYS = 64


def eth_getProof(ctx: NodeContext, params: list[Any]) -> dict[str, Any]:
    """EIP-1186: the account and storage Merkle-Patricia proofs of ``address`` at ``block``.

    Answer ``{address, accountProof: [rlp node hex], balance, codeHash, nonce, storageHash,
    storageProof: [{key, value, proof: [rlp node hex]}]}``; the nodes run from the root (the header's
    ``stateRoot`` / the account's ``storageHash``) to the leaf (or to where the key's absence shows).
    At most :data:`MAX_PROOF_KEYS` storage keys (-32602 beyond).
    """
    from eth.rlp.accounts import Account
    from trie import HexaryTrie

    address = parse_address(param(params, 0, "address"), "address")
    keys = param(params, 1, "storageKeys")
    if not isinstance(keys, list) or len(keys) > MAX_PROOF_KEYS:
        raise RpcError(-32602, f"invalid storageKeys: a list of at most {MAX_PROOF_KEYS} slots")
    slots = [parse_qty(k, "storageKeys") for k in keys]
    if any(not 0 <= slot < 2**256 for slot in slots):
        raise RpcError(-32602, "invalid storageKeys: a slot is a 256-bit quantity")
    header = resolve_block(ctx.ledger, param(params, 2, "block", "latest"))
    db = ctx.ledger.chain.chaindb.db
    state = HexaryTrie(db, header.state_root)
    raw = state.get(keccak(address))
    account = rlp.decode(raw, sedes=Account) if raw else Account()
    storage = HexaryTrie(db, account.storage_root)

    def nodes(proof: Any) -> list[str]:
        return [data(rlp.encode(node)) for node in proof]

    out = []
    for key, slot in zip(keys, slots, strict=True):
        path = keccak(slot.to_bytes(32, "big"))
        value = storage.get(path)
        out.append({"key": key, "value": qty(rlp.decode(value, sedes=rlp.sedes.big_endian_int) if value else 0),
                    "proof": nodes(storage.get_proof(path))})
    return {"address": to_checksum_address(address), "accountProof": nodes(state.get_proof(keccak(address))),
            "balance": qty(account.balance), "codeHash": data(account.code_hash), "nonce": qty(account.nonce),
            "storageHash": data(account.storage_root), "storageProof": out}


METHODS: dict[str, Callable[[NodeContext, list[Any]], Any]] = {
    f.__name__: f for f in (
        web3_clientVersion, eth_chainId, net_version, net_listening, net_peerCount, eth_syncing,
        eth_blockNumber, eth_gasPrice, eth_maxPriorityFeePerGas, eth_feeHistory, eth_getBalance,
        eth_getTransactionCount, eth_getCode, eth_getStorageAt, eth_call, eth_estimateGas,
        eth_getBlockByNumber, eth_getBlockByHash, eth_getBlockTransactionCountByNumber,
        eth_getTransactionByHash, eth_getTransactionReceipt, eth_getLogs, eth_sendRawTransaction,
        qbft_getValidatorsByBlockNumber, eth_getProof,
    )
}


def dispatch(ctx: NodeContext, request: Any, extra: dict[str, Callable[..., Any]] | None = None) -> dict | None:
    """Answer one JSON-RPC 2.0 request object (a notification, without ``id``, gets ``None``)."""
    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
        return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request"}}
    req_id = request.get("id")
    if not valid_id(req_id):
        return {"jsonrpc": "2.0", "id": None, "error": {
            "code": INVALID_REQUEST, "message": "invalid request: id must be a string (at most 256 characters), "
                                               "an integer below 2**63 in magnitude, or null"}}
    method = request["method"]
    params = request.get("params") or []
    if not isinstance(params, list):
        return {"jsonrpc": "2.0", "id": req_id, "error": {"code": -32602, "message": "params must be a list"}}
    if "id" not in request:  # a notification: JSON-RPC 2.0 §4.1 says it gets no answer
        fn = (extra or {}).get(method) or METHODS.get(method)
        if fn is not None:
            try:
                fn(ctx, params)
            except Exception:  # nobody to tell
                log.debug("notification %s failed", method, exc_info=True)
        return None
    fn = (extra or {}).get(method) or METHODS.get(method)
    if fn is None:
        return {"jsonrpc": "2.0", "id": req_id,
                "error": {"code": -32601, "message": f"the method {method} does not exist/is not available"}}
    try:
        result = fn(ctx, params)
    except RpcError as exc:
        err: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if exc.data is not None:
            err["data"] = exc.data
        return {"jsonrpc": "2.0", "id": req_id, "error": err}
    except Exception as exc:  # never let one bad call take the node down
        log.exception("JSON-RPC %s failed", method)
        return {"jsonrpc": "2.0", "id": req_id, "error": {"code": -32603, "message": f"internal error: {exc}"}}
    return {"jsonrpc": "2.0", "id": req_id, "result": result}


def _error(req_id: Any, code: int, message: str, data_: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data_ is not None:
        err["data"] = data_
    return {"jsonrpc": "2.0", "id": req_id, "error": err}


async def _answer(ctx: NodeContext, request: Any, extra: dict[str, Callable[..., Any]] | None,
                  executor: CallExecutor | None, client: str = "local") -> dict | None:
    """One request: execution methods through ``executor`` (when given), everything else by :func:`dispatch`."""
    if (executor is None or not isinstance(request, dict) or request.get("method") not in EXECUTION_METHODS
            or "id" not in request or not valid_id(request.get("id"))):
        return dispatch(ctx, request, extra)
    req_id, method = request["id"], request["method"]
    params = request.get("params") or []
    if not isinstance(params, list):
        return _error(req_id, INVALID_PARAMS, "params must be a list")
    try:
        header = resolve_block(ctx.ledger, param(params, 1, "block", "latest"))
        if not isinstance(param(params, 0, "call"), dict):
            raise RpcError(INVALID_PARAMS, "invalid params: call object expected")
    except RpcError as exc:
        return _error(req_id, exc.code, exc.message, exc.data)
    status, result, message, data_ = await executor.execute(method, params[:1], header.hash, client)
    if status == "ok":
        return {"jsonrpc": "2.0", "id": req_id, "result": result}
    return _error(req_id, result, message, data_)


def make_rpc_app(ctx: NodeContext, extra: dict[str, Callable[..., Any]] | None = None, *,
                 limits: RpcLimits | None = None, executor: CallExecutor | None = None,
                 access: RpcAccess | None = None) -> Starlette:
    """Starlette app answering JSON-RPC POSTs at ``/`` (single or batch) and ``GET /healthz``.

    With ``access`` (:class:`ledger.rpc_access.RpcAccess`), admin methods need its JWT or a loopback
    listener (-40100 otherwise; 401 for an invalid token), and its host allowlist and CORS origins apply;
    without it every method is served (direct use in tests).

    Every POST is bounded by ``limits`` (default :class:`RpcLimits`): body bytes actually read (413),
    requests per client address (429, ``-32005``), batch size (400, ``-32005``); batch entries are
    answered one after another with the event loop free in between. With an ``executor``,
    ``eth_call``/``eth_estimateGas`` run in its worker process, off the consensus loop.
    """
    limits = limits or RpcLimits()
    limiter = RateLimiter(limits.rate_per_s, limits.rate_burst)

    def refuse(status: int, code: int, message: str) -> JSONResponse:
        return JSONResponse(_error(None, code, message), status_code=status)

    async def handle(request: Request) -> Response:
        CURRENT_LIMITS.set(limits)
        client = request.client.host if request.client else "unknown"
        if not limiter.take(client):
            return refuse(429, LIMIT_EXCEEDED, f"rate limit exceeded: {limits.rate_per_s:g} requests/s per client "
                                               f"(burst {limits.rate_burst})")
        try:
            body = parse_body(await read_body(request.stream(), limits.max_request_content_length))
        except RequestRefused as exc:
            return refuse(exc.status, exc.code, exc.message)
        try:
            claims = access.claims(request.headers.get("authorization")) if access is not None else None
        except TokenRefused as exc:
            return refuse(401, UNAUTHORIZED, str(exc))

        async def answer(entry: Any) -> dict | None:
            method = entry.get("method") if isinstance(entry, dict) else None
            denied = access.refusal(method, claims) if access is not None else None
            if denied is None:
                return await _answer(ctx, entry, extra, executor, client)
            return None if "id" not in entry else _error(entry.get("id") if valid_id(entry.get("id")) else None,
                                                          UNAUTHORIZED, denied)

        if isinstance(body, list):
            if not body:
                return refuse(200, INVALID_REQUEST, "invalid request: empty batch")
            if len(body) > limits.max_batch_size:
                return refuse(400, LIMIT_EXCEEDED, f"batch of {len(body)} requests; at most "
                                                   f"{limits.max_batch_size} (max_batch_size)")
            if len(body) > 1 and not limiter.take(client, len(body) - 1):
                return refuse(429, LIMIT_EXCEEDED, f"rate limit exceeded: {limits.rate_per_s:g} requests/s per "
                                                   f"client (burst {limits.rate_burst}); a batch counts each entry")
            answers = []
            for entry in body:
                one = await answer(entry)
                if one is not None:
                    answers.append(one)
                await asyncio.sleep(0)  # let consensus messages in between batch entries
            return JSONResponse(answers)
        return JSONResponse(await answer(body))

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "block": ctx.ledger.height, "peers": ctx.peer_count()})

    middleware = []
    if access is not None and "*" not in access.host_allowlist:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(access.host_allowlist)))
    if access is not None and access.cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(access.cors_origins),
                                     allow_methods=["GET", "POST"], allow_headers=["Content-Type", "Authorization"]))
    app = Starlette(routes=[Route("/", handle, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])],
                    middleware=middleware)
    app.state.executor = executor
    return app
