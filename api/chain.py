"""Chain access over Ethereum JSON-RPC (web3.py): deployment, registration, anchoring, reads.

Blocks are fetched with raw ``eth_getBlockByNumber`` requests that bypass web3's result
formatting and validation middleware: QBFT headers carry a long ``extraData`` (validators, round,
commit seals) that web3 rejects as "POA extraData", and the seal check needs the exact fields.
Transactions are EIP-1559 (type 2) when the chain reports a base fee, legacy otherwise.
"""

from __future__ import annotations

import ast
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import requests
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    TransactionNotFound,
)

from api.rpc_failover import FailoverHTTPProvider
from contracts import CONTRACT_NAMES, load_artifact
from provenance.verify import FINALITY_QBFT

T = TypeVar("T")
ZERO_ADDRESS = "0x" + "00" * 20
#: Funding of a new enterprise or operator account when ``TRACELEDGER_FUND_WEI`` is unset (wei), at most.
DEFAULT_FUND_WEI = 1000 * 10**18
#: ... or this fraction (1/20) of the admin's balance, when that is smaller.
FUNDING_SHARE_DIVISOR = 20


class ChainUnavailable(RuntimeError):
    """The JSON-RPC endpoint cannot be reached (after retries) or is not configured."""


class ChainError(RuntimeError):
    """A transaction or call was refused by the chain; ``reason`` names the custom error if known."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


@cache
def _error_selectors() -> dict[bytes, tuple[str, list[str]]]:
    out: dict[bytes, tuple[str, list[str]]] = {}
    for name in CONTRACT_NAMES:
        for item in load_artifact(name)["abi"]:
            if item["type"] == "error":
                types = [i["type"] for i in item["inputs"]]
                sig = f"{item['name']}({','.join(types)})"
                out[keccak(text=sig)[:4]] = (item["name"], types)
    return out


def revert_data_of(exc: BaseException) -> Any:
    """Best-effort revert data carried by a web3/provider exception (hex str, bytes or dict)."""
    data = getattr(exc, "data", None)
    if data:
        return data
    for arg in exc.args:
        if isinstance(arg, dict) and (arg.get("data") or arg.get("result")):
            return arg
    match = re.search(r"0x[0-9a-fA-F]{8,}", str(exc))
    if match:
        return match.group(0)
    # eth-tester reports py-evm's Revert as the repr of its bytes: "b'\\x..'"
    literal = re.search(r"""b(['"]).*\1""", str(exc), re.DOTALL)
    if literal:
        try:
            value = ast.literal_eval(literal.group(0))
        except (ValueError, SyntaxError):
            return None
        return value if isinstance(value, bytes) and len(value) >= 4 else None
    return None


def decode_revert(data: Any) -> tuple[str | None, str]:
    """Decode custom-error revert data into ``(ErrorName, "ErrorName(args…)")`` where possible."""
    if isinstance(data, dict):  # some nodes wrap the data (ganache: {"result": "0x…"})
        data = data.get("data") or data.get("result")
    if not isinstance(data, str | bytes):
        return None, "reverted without data"
    raw = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else data
    known = _error_selectors().get(raw[:4])
    if known is None:
        return None, f"reverted (data 0x{raw.hex()})"
    name, types = known
    try:
        args = abi_decode(types, raw[4:])
        shown = ", ".join("0x" + a.hex() if isinstance(a, bytes) else str(a) for a in args)
    except Exception:  # noqa: BLE001 - undecodable arguments still give the name
        shown = "…"
    return name, f"{name}({shown})"


_TRANSIENT = (
    requests.RequestException,
    ProviderConnectionError,
    ConnectionError,
    TimeoutError,
    OSError,
)


def with_retry(fn: Callable[[], T], *, what: str, attempts: int = 3, delay_s: float = 0.5) -> T:
    """Call ``fn``, retrying transport errors with backoff; raises ChainUnavailable at the end."""
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            return fn()
        except _TRANSIENT as exc:
            last = exc
            if attempt + 1 < attempts:
                time.sleep(delay_s * (2**attempt))
    raise ChainUnavailable(f"{what}: JSON-RPC endpoint unreachable ({type(last).__name__}: {last})")


@dataclass(frozen=True)
class AnchorInfo:
    """``AnchorRegistry.getAnchor(root)`` for an anchored root."""

    block_number: int
    submitter: str
    size: int
    metadata_digest: str
    timestamp: int


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def _int(v: Any) -> int:
    return int(v, 16) if isinstance(v, str) else int(v)


class ChainClient:
    """Thin client over one Web3 connection and the two registry contracts.

    Transactions from one sender are serialised (process-wide lock per address) so nonces do
    not collide; every call retries transport errors and raises ChainUnavailable with a message.
    """

    _send_locks: dict[str, threading.Lock] = {}
    _send_locks_guard = threading.Lock()

    def __init__(
        self,
        w3: Web3,
        *,
        enterprise_registry: str | None = None,
        anchor_registry: str | None = None,
        receipt_timeout_s: float = 60.0,
    ) -> None:
        self.w3 = w3
        self.receipt_timeout_s = receipt_timeout_s
        self.enterprise_registry = (
            w3.eth.contract(
                address=to_checksum_address(enterprise_registry),
                abi=load_artifact("EnterpriseRegistry")["abi"],
            )
            if enterprise_registry
            else None
        )
        self.anchor_registry = (
            w3.eth.contract(address=to_checksum_address(anchor_registry), abi=load_artifact("AnchorRegistry")["abi"])
            if anchor_registry
            else None
        )
        self._chain_id: int | None = None
        #: how a block is taken as final (``provenance.verify.parse_finality_model``): ``qbft`` (commit seals,
        #: the default) or ``confirmations:N`` for chains without seals (ganache, a public L2)
        self.finality = FINALITY_QBFT

    @classmethod
    def from_url(
        cls,
        rpc_url: str | list[str],
        *,
        enterprise_registry: str | None = None,
        anchor_registry: str | None = None,
        timeout_s: float = 10.0,
        receipt_timeout_s: float = 60.0,
    ) -> ChainClient:
        """Client over an HTTP JSON-RPC endpoint, or over several with failover
        (:class:`api.rpc_failover.FailoverHTTPProvider`) when ``rpc_url`` is a list of more than one."""
        urls = [rpc_url] if isinstance(rpc_url, str) else list(rpc_url)
        if len(urls) > 1:
            provider: Any = FailoverHTTPProvider(urls, request_kwargs={"timeout": timeout_s})
        else:
            provider = Web3.HTTPProvider(urls[0], request_kwargs={"timeout": timeout_s})
        w3 = Web3(provider)
        return cls(
            w3,
            enterprise_registry=enterprise_registry,
            anchor_registry=anchor_registry,
            receipt_timeout_s=receipt_timeout_s,
        )

    # ------------------------------------------------------------------ raw reads
    def rpc(self, method: str, params: list[Any]) -> Any:
        """Raw JSON-RPC call (no web3 formatting); raises ChainUnavailable / ChainError."""
        try:
            resp = with_retry(lambda: self.w3.provider.make_request(method, params), what=method)  # type: ignore[arg-type]
        except ChainUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - providers raise their own types for bad requests
            raise ChainError(f"{method} failed: {type(exc).__name__}: {exc}") from exc
        if "error" in resp and resp["error"]:
            err = resp["error"]
            msg = err.get("message", str(err)) if isinstance(err, dict) else str(err)
            raise ChainError(f"{method} failed: {msg}")
        return resp.get("result")

    def chain_id(self) -> int:
        """EIP-155 chain id (cached)."""
        if self._chain_id is None:
            self._chain_id = with_retry(lambda: self.w3.eth.chain_id, what="eth_chainId")
        return self._chain_id

    def block_number(self) -> int:
        """Latest block number."""
        return with_retry(lambda: self.w3.eth.block_number, what="eth_blockNumber")

    def raw_block(self, number: int) -> dict[str, Any] | None:
        """``eth_getBlockByNumber(number, false)`` exactly as the node returned it, or None."""
        return self.rpc("eth_getBlockByNumber", [hex(number), False])

    def validators_at(self, number: int) -> list[str]:
        """``qbft_getValidatorsByBlockNumber`` as checksum addresses (ChainError on non-QBFT nodes)."""
        result = self.rpc("qbft_getValidatorsByBlockNumber", [hex(number)])
        if not isinstance(result, list):
            raise ChainError("qbft_getValidatorsByBlockNumber returned no list")
        return [to_checksum_address(a) for a in result]

    def balance(self, address: str) -> int:
        """Balance in wei."""
        return with_retry(lambda: self.w3.eth.get_balance(to_checksum_address(address)), what="eth_getBalance")

    def _base_fee(self) -> int | None:
        block = self.rpc("eth_getBlockByNumber", ["latest", False]) or {}
        value = block.get("baseFeePerGas", block.get("base_fee_per_gas"))
        return None if value is None else _int(value)

    # --------------------------------------------------------------- transactions
    @classmethod
    def _lock_for(cls, address: str) -> threading.Lock:
        with cls._send_locks_guard:
            return cls._send_locks.setdefault(address.lower(), threading.Lock())

    def send(
        self,
        private_key: bytes | str,
        call: ContractFunction | None = None,
        *,
        on_sent: Callable[[str], None] | None = None,
        **tx: Any,
    ) -> dict[str, Any]:
        """Sign and send a transaction from ``private_key`` and wait for its receipt.

        ``call`` is a bound contract function (or None with ``to``/``value``/``data`` in ``tx``);
        ``on_sent(tx_hash_hex)`` runs once the node accepted the transaction, before waiting.
        Returns the receipt as a dict. Raises ChainError (revert, decoded custom error name in
        ``reason``), ChainUnavailable (transport) or TimeExhausted-derived ChainUnavailable.
        """
        account = Account.from_key(private_key)
        with self._lock_for(account.address):
            tx = dict(tx)
            tx["from"] = account.address
            tx["chainId"] = self.chain_id()
            tx["nonce"] = with_retry(
                lambda: self.w3.eth.get_transaction_count(account.address, "pending"),
                what="eth_getTransactionCount",
            )
            base_fee = self._base_fee()
            if base_fee is not None:
                tip = 10**9
                tx.setdefault("maxPriorityFeePerGas", tip)
                tx.setdefault("maxFeePerGas", 2 * base_fee + tip)
            else:
                tx.setdefault("gasPrice", with_retry(lambda: self.w3.eth.gas_price, what="eth_gasPrice"))
            try:
                if call is not None:
                    built = with_retry(lambda: call.build_transaction(tx), what="eth_estimateGas")
                else:
                    if "gas" not in tx:
                        est = {k: v for k, v in tx.items() if k not in ("nonce",)}
                        tx["gas"] = with_retry(lambda: self.w3.eth.estimate_gas(est), what="eth_estimateGas")
                    built = tx
            except (ContractCustomError, ContractLogicError) as exc:
                reason, text = decode_revert(revert_data_of(exc))
                raise ChainError(f"transaction would revert: {text if reason else exc}", reason) from exc
            except (ChainUnavailable, *_TRANSIENT):
                raise
            except Exception as exc:  # noqa: BLE001
                # other providers (e.g. eth-tester's TransactionFailed) report reverts differently
                reason, text = decode_revert(revert_data_of(exc))
                raise ChainError(f"transaction refused by the node: {text if reason else exc}", reason) from exc
            signed = account.sign_transaction(built)
            try:
                tx_hash = with_retry(
                    lambda: self.w3.eth.send_raw_transaction(signed.raw_transaction),
                    what="eth_sendRawTransaction",
                )
            except (ChainUnavailable, *_TRANSIENT):
                raise
            except Exception as exc:  # noqa: BLE001 - e.g. insufficient funds, nonce too low
                raise ChainError(f"transaction rejected by the node: {exc}") from exc
        if on_sent is not None:
            on_sent(_hex(tx_hash))
        return self.wait_receipt(tx_hash)

    # ---------------------------------------------- pipelined sending (explicit nonces, no waiting)
    def pending_nonce(self, address: str) -> int:
        """``eth_getTransactionCount(address, "pending")``: the next nonce the node expects from ``address``."""
        acct = to_checksum_address(address)
        return int(with_retry(lambda: self.w3.eth.get_transaction_count(acct, "pending"),
                              what="eth_getTransactionCount"))

    def sign_call(self, private_key: bytes | str, call: ContractFunction, *, nonce: int,
                  gas: int | None = None) -> tuple[str, bytes]:
        """Build (gas estimate unless ``gas`` is given, current fees) and sign ``call`` from ``private_key`` with
        the given ``nonce``; nothing is sent. Returns ``(tx_hash 0x-hex, raw signed transaction)``: the hash
        is known before the
        node sees the transaction, so a caller can persist it first (crash resume finds the transaction).

        Raises ChainError (the call would revert; ``reason`` = custom error) or ChainUnavailable.
        """
        account = Account.from_key(private_key)
        tx: dict[str, Any] = {"from": account.address, "chainId": self.chain_id(), "nonce": nonce}
        if gas is not None:
            tx["gas"] = gas
        base_fee = self._base_fee()
        if base_fee is not None:
            tx["maxPriorityFeePerGas"] = 10**9
            tx["maxFeePerGas"] = 2 * base_fee + 10**9
        else:
            tx["gasPrice"] = with_retry(lambda: self.w3.eth.gas_price, what="eth_gasPrice")
        try:
            built = with_retry(lambda: call.build_transaction(tx), what="eth_estimateGas")
        except (ContractCustomError, ContractLogicError) as exc:
            reason, text = decode_revert(revert_data_of(exc))
            raise ChainError(f"transaction would revert: {text if reason else exc}", reason) from exc
        except (ChainUnavailable, *_TRANSIENT):
            raise
        except Exception as exc:  # noqa: BLE001 - other providers report reverts differently
            reason, text = decode_revert(revert_data_of(exc))
            raise ChainError(f"transaction refused by the node: {text if reason else exc}", reason) from exc
        signed = account.sign_transaction(built)
        return _hex(signed.hash), bytes(signed.raw_transaction)

    def send_raw(self, raw: bytes) -> str:
        """``eth_sendRawTransaction``; returns the tx hash. ChainError when the node refuses it (nonce too
        low, funds…), ChainUnavailable on transport failure."""
        try:
            tx_hash = with_retry(lambda: self.w3.eth.send_raw_transaction(raw), what="eth_sendRawTransaction")
        except (ChainUnavailable, *_TRANSIENT):
            raise
        except Exception as exc:  # noqa: BLE001
            raise ChainError(f"transaction rejected by the node: {exc}") from exc
        return _hex(tx_hash)

    def receipt_if_mined(self, tx_hash: str) -> dict[str, Any] | None:
        """The receipt of ``tx_hash`` when it is in a block, None while it is not; ChainError when it
        reverted (``reason`` = the custom error, replayed as :meth:`revert_reason` does)."""
        try:
            receipt = dict(with_retry(lambda: self.w3.eth.get_transaction_receipt(tx_hash),  # type: ignore[arg-type]
                                      what="eth_getTransactionReceipt"))
        except TransactionNotFound:
            return None
        if receipt.get("status") != 1:
            reason, text = self.revert_reason(receipt)
            raise ChainError(f"transaction {tx_hash} reverted: {text}", reason)
        return receipt

    def tx_known(self, tx_hash: str) -> bool:
        """True when the node knows ``tx_hash`` (in its pool or in a block)."""
        try:
            with_retry(lambda: self.w3.eth.get_transaction(tx_hash), what="eth_getTransactionByHash")  # type: ignore[arg-type]
        except TransactionNotFound:
            return False
        return True

    def wait_receipt(self, tx_hash: bytes | str, timeout_s: float | None = None) -> dict[str, Any]:
        """Wait for a receipt; ChainError if it reverted, ChainUnavailable on timeout."""
        try:
            receipt = with_retry(
                lambda: self.w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=timeout_s or self.receipt_timeout_s, poll_latency=0.1
                ),
                what="eth_getTransactionReceipt",
            )
        except TimeExhausted as exc:
            raise ChainUnavailable(f"no receipt for {tx_hash!r} within the timeout") from exc
        receipt = dict(receipt)
        if receipt.get("status") != 1:
            reason, text = self.revert_reason(receipt)
            raise ChainError(f"transaction {_hex(receipt['transactionHash'])} reverted: {text}", reason)
        return receipt

    def revert_reason(self, receipt: dict[str, Any]) -> tuple[str | None, str]:
        """Why a mined transaction reverted: ``(CustomErrorName | None, text)``.

        Receipts carry no revert data, so the transaction is replayed with ``eth_call`` (same sender,
        target, data, value and gas) on the state **after** its block: a competing transaction that won
        a race (earlier in the same block or before) is then visible and the call reverts with the same
        custom error the loser hit, decoded through the contracts' ABIs. Never raises: an unreachable
        node or a replay that succeeds gives ``(None, …)``.
        """
        try:
            tx = with_retry(lambda: self.w3.eth.get_transaction(receipt["transactionHash"]),
                            what="eth_getTransactionByHash")
            call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx.get("value", 0),
                    "gas": tx["gas"]}
            self.w3.eth.call(call, block_identifier=receipt["blockNumber"])
        except (ChainUnavailable, *_TRANSIENT) as exc:
            return None, f"revert reason unknown (replay failed: {exc})"
        except Exception as exc:  # noqa: BLE001 - ContractCustomError / ContractLogicError / Web3RPCError
            reason, text = decode_revert(revert_data_of(exc))
            return reason, text
        return None, "reverted (the replay on the block's state succeeds; e.g. out of gas)"

    def transfer(self, private_key: bytes | str, to: str, value_wei: int) -> dict[str, Any]:
        """Send ``value_wei`` to ``to``; returns the receipt."""
        return self.send(private_key, None, to=to_checksum_address(to), value=value_wei, gas=21000)

    # ------------------------------------------------------------------- registry
    def _er(self) -> Any:
        if self.enterprise_registry is None:
            raise ChainUnavailable("TRACELEDGER_ENTERPRISE_REGISTRY is not configured")
        return self.enterprise_registry

    def _ar(self) -> Any:
        if self.anchor_registry is None:
            raise ChainUnavailable("TRACELEDGER_ANCHOR_REGISTRY is not configured")
        return self.anchor_registry

    def get_enterprise(self, account: str) -> dict[str, Any] | None:
        """``EnterpriseRegistry.getEnterprise`` as a dict, or None when not registered."""
        name, roles, prefix, active, exists = with_retry(
            lambda: self._er().functions.getEnterprise(to_checksum_address(account)).call(),
            what="getEnterprise",
        )
        if not exists:
            return None
        return {"name": name, "roles": roles, "prefix": prefix, "active": active}

    def is_active_anchorer(self, account: str) -> bool:
        """``EnterpriseRegistry.isActiveAnchorer``."""
        return bool(
            with_retry(
                lambda: self._er().functions.isActiveAnchorer(to_checksum_address(account)).call(),
                what="isActiveAnchorer",
            )
        )

    def register_enterprise(
        self,
        admin_key: bytes | str,
        *,
        account: str,
        name: str,
        roles: int,
        prefix: str,
        fund_wei: int | None,
    ) -> dict[str, Any]:
        """Register ``account`` in EnterpriseRegistry (admin tx) and fund it (idempotent).

        ``fund_wei`` is the amount sent to the account (wei); ``None`` means what the admin can afford:
        :meth:`affordable_funding`. Skips the registration when the account already exists with the
        same prefix and the transfer when the balance already holds at least half of the amount. Raises ChainError
        with ``reason`` ``PrefixTaken`` / ``EnterpriseExists`` / ``NotAdmin`` / ``InvalidPrefix``…
        Returns ``{"registered_tx", "funding_tx"}`` (hex or None).
        """
        out: dict[str, Any] = {"registered_tx": None, "funding_tx": None}
        existing = self.get_enterprise(account)
        if existing is None:
            owner = with_retry(
                lambda: self._er().functions.enterpriseByPrefix(prefix).call(), what="enterpriseByPrefix"
            )
            if int(owner, 16) != 0:
                raise ChainError(f"prefix {prefix} is taken on chain by {owner}", "PrefixTaken")
            call = self._er().functions.registerEnterprise(to_checksum_address(account), name, roles, prefix)
            out["registered_tx"] = _hex(self.send(admin_key, call)["transactionHash"])
        elif existing["prefix"] != prefix:
            raise ChainError(
                f"account {account} is registered on chain with prefix {existing['prefix']!r}",
                "EnterpriseExists",
            )
        if fund_wei is None:
            fund_wei = self.affordable_funding(admin_key)
        if fund_wei and self.balance(account) < fund_wei // 2:
            out["funding_tx"] = _hex(self.transfer(admin_key, account, fund_wei)["transactionHash"])
        return out

    def sm2_public_key_of(self, account: str, block: int | str = "latest") -> bytes | None:
        """``EnterpriseRegistry.sm2PublicKeyOf(account)`` at ``block``: 65 bytes ``04 ‖ x ‖ y``, or None when unset."""
        x, y = with_retry(lambda: self._er().functions.sm2PublicKeyOf(to_checksum_address(account)).call(
            block_identifier=block), what="sm2PublicKeyOf")
        return None if int.from_bytes(x, "big") == 0 else b"\x04" + bytes(x) + bytes(y)

    def set_sm2_public_key(self, private_key: bytes | str, public_key: bytes) -> dict[str, Any]:
        """``setSm2PublicKey(x, y)`` sent by the account of ``private_key`` (an active enterprise or person) for
        itself; ``public_key`` is 65 bytes ``04 ‖ x ‖ y`` (checked on the curve by the caller). The receipt."""
        if len(public_key) != 65 or public_key[0] != 4:
            raise ValueError("SM2 public key must be 65 bytes 04||x||y")
        return self.send(private_key, self._er().functions.setSm2PublicKey(public_key[1:33], public_key[33:]))

    def affordable_funding(self, admin_key: bytes | str, cap_wei: int = DEFAULT_FUND_WEI) -> int:
        """Wei to give each new account when no amount is configured: ``cap_wei`` (1,000 ether), or a
        twentieth of the admin's balance when that is less (a ganache or testnet admin holds far less
        than our genesis admin), so funding never fails for want of balance. Raises ChainUnavailable."""
        admin = Account.from_key(admin_key).address
        return min(cap_wei, self.balance(admin) // FUNDING_SHARE_DIVISOR)

    # -------------------------------------------------------------------- anchors
    def anchor_root(
        self,
        private_key: bytes | str,
        root: bytes,
        size: int,
        metadata_digest: bytes,
        *,
        on_sent: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Send ``AnchorRegistry.anchor(root, size, metadataDigest)`` and return the receipt.

        Anchors are keyed by (anchoring enterprise, root): raises ChainError with reason
        ``RootAlreadyAnchored`` only when the sender's own enterprise anchored ``root`` before; an
        anchor of the same root by another enterprise does not count (and does not block this one).
        """
        if self.get_anchor_for(private_key, root) is not None:  # cheap pre-check; the contract also reverts
            raise ChainError(f"root 0x{root.hex()} is already anchored by this enterprise", "RootAlreadyAnchored")
        call = self._ar().functions.anchor(root, size, metadata_digest)
        return self.send(private_key, call, on_sent=on_sent)

    def sign_anchor(self, private_key: bytes | str, root: bytes, size: int, metadata_digest: bytes, *,
                    nonce: int, gas: int | None = None) -> tuple[str, bytes]:
        """Sign (not send) ``AnchorRegistry.anchor(root, size, metadataDigest)`` with ``nonce``:
        ``(tx_hash, raw)`` (see :meth:`sign_call`). Without ``gas``, ChainError ``RootAlreadyAnchored`` when
        the estimate reverts because this enterprise anchored ``root`` before."""
        return self.sign_call(private_key, self._ar().functions.anchor(root, size, metadata_digest), nonce=nonce,
                              gas=gas)

    def estimate_anchor_gas(self, private_key: bytes | str, root: bytes, size: int, metadata_digest: bytes) -> int:
        """``eth_estimateGas`` of ``anchor(root, size, metadataDigest)`` from ``private_key``'s account."""
        sender = Account.from_key(private_key).address
        call = self._ar().functions.anchor(root, size, metadata_digest)
        try:
            return int(with_retry(lambda: call.estimate_gas({"from": sender}), what="eth_estimateGas"))
        except (ContractCustomError, ContractLogicError) as exc:
            reason, text = decode_revert(revert_data_of(exc))
            raise ChainError(f"transaction would revert: {text if reason else exc}", reason) from exc
        except (ChainUnavailable, *_TRANSIENT):
            raise
        except Exception as exc:  # noqa: BLE001 - eth-tester's TransactionFailed, like sign_call
            reason, text = decode_revert(revert_data_of(exc))
            raise ChainError(f"transaction refused by the node: {text if reason else exc}", reason) from exc

    def get_anchor_of(self, enterprise: str, root: bytes) -> AnchorInfo | None:
        """``AnchorRegistry.getAnchorOf(enterprise, root)``: the anchor of ``root`` (32 bytes) by that
        enterprise; None when it never anchored it."""
        acct = to_checksum_address(enterprise)
        bn, submitter, size, meta, ts = with_retry(
            lambda: self._ar().functions.getAnchorOf(acct, root).call(), what="getAnchorOf"
        )
        if bn == 0:
            return None
        return AnchorInfo(int(bn), to_checksum_address(submitter), int(size), _hex(meta), int(ts))

    def get_anchor_for(self, private_key: bytes | str, root: bytes) -> AnchorInfo | None:
        """The anchor of ``root`` by the enterprise the account of ``private_key`` anchors for
        (``EnterpriseRegistry.enterpriseOfAnchorer``); None when that enterprise has not anchored it."""
        sender = Account.from_key(private_key).address
        enterprise = with_retry(lambda: self._er().functions.enterpriseOfAnchorer(sender).call(),
                                what="enterpriseOfAnchorer")
        if int(enterprise, 16) == 0:
            return None
        return self.get_anchor_of(enterprise, root)

    def get_anchor_by(self, submitter: str, root: bytes) -> AnchorInfo | None:
        """The anchor of ``root`` (32 bytes) by the enterprise that account ``submitter`` anchors for
        (``EnterpriseRegistry.enterpriseOfAnchorer``; an enterprise account anchors for itself); None when
        that enterprise has not anchored it. Raises ChainUnavailable / ChainError."""
        acct = to_checksum_address(submitter)
        enterprise = with_retry(lambda: self._er().functions.enterpriseOfAnchorer(acct).call(),
                                what="enterpriseOfAnchorer")
        if int(enterprise, 16) == 0:
            return None
        return self.get_anchor_of(enterprise, root)

    def get_anchor(self, root: bytes) -> AnchorInfo | None:
        """``AnchorRegistry.getAnchor(root)``; None when the root was never anchored."""
        bn, submitter, size, meta, ts = with_retry(
            lambda: self._ar().functions.getAnchor(root).call(), what="getAnchor"
        )
        if bn == 0:
            return None
        return AnchorInfo(int(bn), to_checksum_address(submitter), int(size), _hex(meta), int(ts))

    def find_anchor_tx(self, root: bytes, block_number: int) -> tuple[str, str] | None:
        """``(tx_hash, block_hash)`` of the Anchored event for ``root`` in ``block_number``, if found."""
        event = self._ar().events.Anchored()
        logs = with_retry(
            lambda: event.get_logs(from_block=block_number, to_block=block_number, argument_filters={"root": root}),
            what="eth_getLogs",
        )
        for log in logs:
            return _hex(log["transactionHash"]), _hex(log["blockHash"])
        return None


def contract_address(sender: str, nonce: int) -> str:
    """CREATE address of the contract deployed by ``sender`` with ``nonce`` (Yellow Paper eq. 86)."""
    import rlp

    return to_checksum_address(keccak(rlp.encode([bytes.fromhex(sender[2:]), nonce]))[12:])


WORKFLOW_CONTRACTS: tuple[str, ...] = CONTRACT_NAMES[2:]
"""Deployed after the registries with the admin's nonces 2, 3, … in :data:`contracts.CONTRACT_NAMES` order
(WorkTicket, ReceivableToken, PriceIndex, …); each takes the EnterpriseRegistry address."""


def deploy_contracts_with(client: ChainClient, admin_key: bytes | str,
                          known: Mapping[str, str] | None = None) -> dict[str, str]:
    """Deploy EnterpriseRegistry([admin]) and AnchorRegistry(registry) with the admin's nonce 0 and 1,
    then each of :data:`WORKFLOW_CONTRACTS` (registry) with nonces 2, 3, ….

    Idempotent: when the addresses already hold code, returns them without sending. ``known`` gives
    addresses recorded earlier (``network.json``) that take the place of the predicted ones. A chain deployed
    before a workflow contract existed gets it added: at its predicted nonce when the admin's nonce is still
    there, otherwise at the admin's current nonce (the returned address then differs from the prediction:
    record it, e.g. in ``network.json``). Raises ChainError when the admin already used nonce 0/1 for
    something else.
    """
    admin = Account.from_key(admin_key).address
    w3 = client.w3
    addrs = {"EnterpriseRegistry": contract_address(admin, 0), "AnchorRegistry": contract_address(admin, 1)}
    for offset, name in enumerate(WORKFLOW_CONTRACTS):
        addrs[name] = contract_address(admin, 2 + offset)
    addrs.update({name: to_checksum_address(a) for name, a in (known or {}).items() if name in addrs and a})
    codes = {k: with_retry(lambda a=a: w3.eth.get_code(a), what="eth_getCode") for k, a in addrs.items()}
    if all(len(c) > 0 for c in codes.values()):
        return addrs
    nonce = with_retry(lambda: w3.eth.get_transaction_count(admin, "pending"), what="eth_getTransactionCount")
    if len(codes["AnchorRegistry"]) > 0 and nonce >= 2:
        for name in WORKFLOW_CONTRACTS:
            if len(codes[name]) == 0:
                art = load_artifact(name)
                factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
                ctor = factory.constructor(addrs["EnterpriseRegistry"])
                client.send(admin_key, None, data=ctor.data_in_transaction)
                addrs[name] = contract_address(admin, nonce)
                nonce += 1
        return addrs
    if nonce == 0:
        er = load_artifact("EnterpriseRegistry")
        ctor = w3.eth.contract(abi=er["abi"], bytecode=er["bytecode"]).constructor([admin])
        client.send(admin_key, None, data=ctor.data_in_transaction)
        nonce = 1
    if nonce == 1:
        ar = load_artifact("AnchorRegistry")
        ctor = w3.eth.contract(abi=ar["abi"], bytecode=ar["bytecode"]).constructor(addrs["EnterpriseRegistry"])
        client.send(admin_key, None, data=ctor.data_in_transaction)
        for name in WORKFLOW_CONTRACTS:
            art = load_artifact(name)
            ctor = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"]).constructor(addrs["EnterpriseRegistry"])
            client.send(admin_key, None, data=ctor.data_in_transaction)
        return addrs
    raise ChainError(f"admin {admin} has nonce {nonce} but the registries are not at its nonce-0/1 addresses")


def deploy_contracts(rpc_url: str, admin_key: bytes | str, known: Mapping[str, str] | None = None) -> dict[str, str]:
    """Deploy the contracts at ``rpc_url``; returns ``{"EnterpriseRegistry": a, "AnchorRegistry": a,
    "WorkTicket": a, "ReceivableToken": a, "PriceIndex": a, …}`` (every name of ``CONTRACT_NAMES``).

    The contracts are the admin's nonce-0, 1, … transactions (``CONTRACT_NAMES`` order), so their addresses
    are predictable from the admin address alone (``known``: see :func:`deploy_contracts_with`).
    """
    return deploy_contracts_with(ChainClient.from_url(rpc_url), admin_key, known)
