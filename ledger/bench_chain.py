"""Chain benchmark: n validator processes, signed contract transactions at a controlled rate.

Usage::

    python -m ledger.bench_chain [--validators 4] [--txs 4000] [--rate 250] [--senders 40]
                                  [--batch 20] [--block-period 1.0] [--json out.json] [--keep-data]

What it does, on a throwaway network (free ports, temporary data directory, ``ledger.network``):

1. starts ``--validators`` node processes; a genesis-funded deployer creates a small "anchor" contract
   (``anchor(key, value)``: one new storage slot + one LOG1, ~45k gas, like ``AnchorRegistry.anchor``);
2. signs ``--txs`` calls from ``--senders`` genesis accounts up front (signing is not measured);
3. submits them at ``--rate`` tx/s in total, one thread per validator (each validator receives the
   transactions of its own senders, nonce-ordered), ``--batch`` transactions per JSON-RPC batch request;
4. follows the chain on validator 1 (polling every 50 ms) and takes each transaction's **finality
   latency** = time its block was seen final − time it was sent (QBFT finality is immediate);
5. reads every receipt: Caliper's ``succ`` (status 1), ``fail`` (refused, reverted, or not final
   within ``--drain`` seconds), ``send rate`` (submitted / sending time), ``throughput``
   (succ / (last finality − first send));
6. measures, in the same run and on the same machine, the **single-process py-evm ceiling**:
   ``Ledger.build_block`` (py-evm ``apply_all_transactions`` = the ``mine_all`` path) of the same
   signed transactions in blocks of the same size, so ``throughput / ceiling`` is a ratio that survives
   a noisy machine.

Prints a Markdown table on stdout and writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_utils import to_checksum_address

from ledger.network import init_network, rpc, start_validator, stop_processes, wait_for_rpc
from ledger.node import contract_address

GWEI = 10**9
#: Runtime: SSTORE(calldata[0:32], calldata[32:64]); LOG1(memory[0:32] = calldata[32:64], topic calldata[0:32]).
ANCHOR_RUNTIME = bytes.fromhex("602035600035556020602060003760003560206000a100")
#: Init code returning ANCHOR_RUNTIME.
ANCHOR_INIT = bytes.fromhex("6017600c60003960176000f3") + ANCHOR_RUNTIME
CALL_GAS = 80_000
POLL_S = 0.05


def percentile(values: list[float], p: float) -> float:
    """``p``-th percentile (0–100), linear interpolation between closest ranks; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class BenchResult:
    """One run's figures: counts, rates in tx/s, latencies in seconds."""

    validators: int
    block_period_s: float
    txs: int
    request_timeout_s: float = 1.0
    offered_rate: float = 0.0
    succ: int = 0
    fail: int = 0
    send_rate: float = 0.0
    throughput: float = 0.0
    latency_p50: float = math.nan
    latency_p95: float = math.nan
    latency_p99: float = math.nan
    latency_max: float = math.nan
    ceiling: float = 0.0
    ratio: float = 0.0
    blocks: int = 0
    max_block_txs: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)


def sign_calls(chain_id: int, keys: list[str], total: int, contract: str) -> list[list[tuple[str, bytes]]]:
    """Per sender: ``(tx hash, raw tx)`` of its ``anchor`` calls in nonce order (``total`` in all)."""
    per_sender = [[] for _ in keys]  # type: list[list[tuple[str, bytes]]]
    for i in range(total):
        k = i % len(keys)
        nonce = len(per_sender[k])
        data = os.urandom(32) + (i + 1).to_bytes(32, "big")
        tx = {"type": 2, "chainId": chain_id, "nonce": nonce, "to": contract, "value": 0, "gas": CALL_GAS,
              "data": data, "maxFeePerGas": 2 * GWEI, "maxPriorityFeePerGas": 0}
        signed = Account.sign_transaction(tx, keys[k])
        per_sender[k].append(("0x" + bytes(signed.hash).hex(), bytes(signed.raw_transaction)))
    return per_sender


class Follower(threading.Thread):
    """Polls a node for new blocks; records when each transaction hash was first seen final."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True, name="follower")
        self.url = url
        self.seen: dict[str, float] = {}
        self.block_sizes: list[int] = []
        self.stop = threading.Event()
        self.height = int(rpc(url, "eth_blockNumber"), 16)

    def run(self) -> None:
        """Thread body: poll ``eth_blockNumber`` and record, per transaction hash, the monotonic time its block was
        first seen (until ``stop`` is set).
        """
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                try:
                    top = int(client.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber",
                                                          "params": []}).json()["result"], 16)
                    now = time.monotonic()
                    for h in range(self.height + 1, top + 1):
                        block = client.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber",
                                                            "params": [hex(h), False]}).json()["result"]
                        for tx_hash in block["transactions"]:
                            self.seen.setdefault(tx_hash, now)
                        self.block_sizes.append(len(block["transactions"]))
                    self.height = max(self.height, top)
                except (httpx.HTTPError, KeyError, ValueError):
                    pass
                self.stop.wait(POLL_S)


def submit(url: str, queue: list[tuple[str, bytes]], rate: float, batch: int, sent: dict[str, float],
           refused: dict[str, str], start: float) -> None:
    """Send ``queue`` to ``url`` at ``rate`` tx/s in JSON-RPC batches of ``batch``; record send times."""
    with httpx.Client(timeout=60) as client:
        for i in range(0, len(queue), batch):
            chunk = queue[i:i + batch]
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = [{"jsonrpc": "2.0", "id": j, "method": "eth_sendRawTransaction", "params": ["0x" + raw.hex()]}
                    for j, (_, raw) in enumerate(chunk)]
            t = time.monotonic()
            try:
                answers = client.post(url, json=body).json()
            except httpx.HTTPError as exc:
                for tx_hash, _ in chunk:
                    refused[tx_hash] = f"http: {exc}"
                continue
            for answer in answers:
                tx_hash = chunk[answer["id"]][0]
                if "error" in answer:
                    refused[tx_hash] = answer["error"]["message"]
                else:
                    sent[tx_hash] = t


def receipts(url: str, hashes: list[str]) -> dict[str, int]:
    """``{tx hash: status}`` of every final receipt among ``hashes`` (batched)."""
    out: dict[str, int] = {}
    with httpx.Client(timeout=120) as client:
        for i in range(0, len(hashes), 200):
            body = [{"jsonrpc": "2.0", "id": j, "method": "eth_getTransactionReceipt", "params": [h]}
                    for j, h in enumerate(hashes[i:i + 200])]
            for answer in client.post(url, json=body).json():
                r = answer.get("result")
                if r:
                    out[r["transactionHash"]] = int(r["status"], 16)
    return out


def measure_ceiling(genesis_json: dict[str, Any], deploy_raw: bytes, calls: list[bytes], block_txs: int) -> float:
    """Single-process py-evm ceiling (tx/s): ``Ledger.build_block`` of ``calls`` in blocks of ``block_txs``."""
    from eth.vm.forks.shanghai.transactions import ShanghaiTransactionBuilder

    from ledger.chain import GenesisConfig, Ledger, encode_block

    genesis = GenesisConfig.from_json(genesis_json)
    proposer = genesis.validators[0]
    with tempfile.TemporaryDirectory(prefix="bench-ceiling-") as tmp:
        ledger = Ledger(tmp, genesis)
        try:
            deploy = ledger.build_block([ShanghaiTransactionBuilder.decode(deploy_raw)], proposer)
            ledger.commit(encode_block(deploy), 0, [])
            decoded = [ShanghaiTransactionBuilder.decode(raw) for raw in calls]
            busy = 0.0
            for i in range(0, len(decoded), block_txs):
                chunk = decoded[i:i + block_txs]
                t = time.perf_counter()
                block = ledger.build_block(chunk, proposer, timestamp=ledger.head.timestamp + 1)
                busy += time.perf_counter() - t
                ledger.commit(encode_block(block), 0, [])
            return len(decoded) / busy if busy else 0.0
        finally:
            ledger.close()


def interleave(per_sender: list[list[tuple[str, bytes]]]) -> list[tuple[str, bytes]]:
    """Nonce-major order: every sender's nonce 0, then every sender's nonce 1, …"""
    out = []
    for n in range(max(len(q) for q in per_sender)):
        out.extend(q[n] for q in per_sender if n < len(q))
    return out


def run(args: argparse.Namespace) -> BenchResult:
    """Run one benchmark: a throwaway network of ``args.validators`` nodes, ``args.txs`` transactions offered at
    ``args.rate`` tx/s; returns throughput (tx/s), finality latency percentiles (s) and the single-process py-evm
    ceiling of the same run.
    """
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="traceledger-bench-"))
    sender_keys = ["0x" + os.urandom(32).hex() for _ in range(args.senders)]
    deployer_key = "0x" + os.urandom(32).hex()
    alloc = {Account.from_key(k).address: 10**24 for k in [*sender_keys, deployer_key]}
    spec = init_network(data_dir, validators=args.validators, rpc_base_port=None, p2p_base_port=None,
                        block_period_s=args.block_period, request_timeout_s=args.request_timeout,
                        extra_alloc=alloc)
    procs = {}
    result = BenchResult(args.validators, args.block_period, args.txs, args.request_timeout, args.rate)
    try:
        for v in spec.validators:
            procs[v.index] = start_validator(v, log_level=args.log_level)
        for v in spec.validators:
            wait_for_rpc(v.rpc_url, 90, min_block=1)
        deployer = Account.from_key(deployer_key)
        contract = to_checksum_address(contract_address(bytes.fromhex(deployer.address[2:]), 0))
        deploy = Account.sign_transaction({"type": 2, "chainId": spec.chain_id, "nonce": 0, "value": 0,
                                           "gas": 200_000, "data": ANCHOR_INIT, "maxFeePerGas": 2 * GWEI,
                                           "maxPriorityFeePerGas": 0}, deployer_key)
        rpc(spec.rpc_urls[0], "eth_sendRawTransaction", ["0x" + bytes(deploy.raw_transaction).hex()])
        print(f"signing {args.txs} transactions from {args.senders} senders …", file=sys.stderr)
        per_sender = sign_calls(spec.chain_id, sender_keys, args.txs, contract)
        deadline = time.monotonic() + 60
        while rpc(spec.rpc_urls[0], "eth_getCode", [contract, "latest"]) in ("0x", ""):
            if time.monotonic() > deadline:
                raise TimeoutError("the benchmark contract was not deployed within 60 s")
            time.sleep(0.2)

        follower = Follower(spec.rpc_urls[0])
        follower.start()
        n = len(spec.validators)
        queues = [interleave([q for k, q in enumerate(per_sender) if k % n == j]) for j in range(n)]
        sent: dict[str, float] = {}
        refused: dict[str, str] = {}
        print(f"submitting at {args.rate:.0f} tx/s to {n} validators …", file=sys.stderr)
        start = time.monotonic() + 0.2
        threads = [threading.Thread(target=submit, args=(spec.validators[j].rpc_url, queues[j], args.rate / n,
                                                         args.batch, sent, refused, start)) for j in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        last_send = max(sent.values(), default=start)
        drain_deadline = time.monotonic() + args.drain
        while time.monotonic() < drain_deadline and not set(sent) <= set(follower.seen):
            time.sleep(0.2)
        follower.stop.set()
        follower.join(10)

        statuses = receipts(spec.rpc_urls[0], [h for h in sent if h in follower.seen])
        ok = [h for h, s in statuses.items() if s == 1]
        latencies = [follower.seen[h] - sent[h] for h in ok]
        first_send = min(sent.values(), default=start)
        last_final = max((follower.seen[h] for h in ok), default=first_send)
        result.succ = len(ok)
        result.fail = args.txs - len(ok)
        result.send_rate = len(sent) / max(last_send - first_send, 1e-9)
        result.throughput = len(ok) / max(last_final - first_send, 1e-9)
        result.latency_p50, result.latency_p95, result.latency_p99 = (percentile(latencies, p) for p in (50, 95, 99))
        result.latency_max = max(latencies, default=math.nan)
        result.blocks = len(follower.block_sizes)
        result.max_block_txs = max(follower.block_sizes, default=0)
        for message in refused.values():
            result.refused[message[:60]] = result.refused.get(message[:60], 0) + 1
    finally:
        stop_processes(list(procs.values()))
    print("measuring the single-process py-evm ceiling on the same transactions …", file=sys.stderr)
    genesis_json = json.loads(spec.validators[0].config_path.read_text())["genesis"]
    from ledger.txpool import DEFAULT_MAX_BLOCK_TXS

    result.ceiling = measure_ceiling(genesis_json, bytes(deploy.raw_transaction),
                                     [raw for _, raw in interleave(per_sender)], DEFAULT_MAX_BLOCK_TXS)
    result.ratio = result.throughput / result.ceiling if result.ceiling else 0.0
    result.machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                      "load_avg_1m": os.getloadavg()[0]}
    if not args.keep_data and args.data_dir is None:
        shutil.rmtree(data_dir, ignore_errors=True)
    return result


def markdown(r: BenchResult) -> str:
    """Caliper-style Markdown table of one run."""
    head = ("| validators | block period | txs | succ | fail | send rate (tx/s) | throughput (tx/s) | "
            "finality p50 / p95 / p99 (s) | py-evm ceiling (tx/s) | throughput / ceiling |")
    sep = "|---|---|---|---|---|---|---|---|---|---|"
    row = (f"| {r.validators} | {r.block_period_s:g} s | {r.txs} | {r.succ} | {r.fail} | {r.send_rate:.0f} | "
           f"{r.throughput:.0f} | {r.latency_p50:.2f} / {r.latency_p95:.2f} / {r.latency_p99:.2f} | "
           f"{r.ceiling:.0f} | {r.ratio:.2f} |")
    return "\n".join([head, sep, row])


def main(argv: list[str] | None = None) -> int:
    """Command line (``python -m ledger.bench_chain --help``): runs :func:`run`, prints the Markdown table, optionally
    writes JSON; returns the exit code.
    """
    parser = argparse.ArgumentParser(description="Benchmark finalized throughput and latency of a local QBFT chain")
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--txs", type=int, default=4000, help="transactions in the run")
    parser.add_argument("--rate", type=float, default=250.0, help="offered load, tx/s over all validators")
    parser.add_argument("--senders", type=int, default=40, help="genesis-funded sender accounts")
    parser.add_argument("--batch", type=int, default=20, help="transactions per JSON-RPC batch request")
    parser.add_argument("--block-period", type=float, default=1.0, help="seconds between blocks")
    parser.add_argument("--request-timeout", type=float, default=1.0,
                        help="QBFT round-0 timeout, seconds (Besu requesttimeoutseconds)")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for finality after sending")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--keep-data", action="store_true")
    parser.add_argument("--log-level", default="WARNING", help="validators' log level (node.log in the data dir)")
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    result = run(args)
    print(markdown(result))
    if result.refused:
        print(f"\nrefused at submission: {result.refused}")
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
