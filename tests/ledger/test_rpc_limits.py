"""Hostile JSON-RPC clients: every request bounded, execution off the consensus loop (issue 12)."""

from __future__ import annotations

import asyncio
import time
import warnings

import pytest

from ledger.rpc import CURRENT_LIMITS, dispatch, make_rpc_app
from ledger.rpc_guard import CallExecutor, RateLimiter, RpcLimits
from tests.ledger.helpers import FUNDED
from tests.ledger.test_rpc import chain  # noqa: F401  (module fixture: a ledger with two sealed blocks)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

#: JUMPDEST; PUSH1 0; JUMP — an infinite loop, run as init code of a contract-creation call.
LOOP = "0x5b600056"


def rpc_error(ctx, method: str, *params) -> dict:
    answer = dispatch(ctx, {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    assert "result" not in answer, answer
    return answer["error"]


# ------------------------------------------------------------------ eth_feeHistory, eth_getLogs, gas
def test_fee_history_refuses_100k_percentiles(chain):  # noqa: F811
    err = rpc_error(chain, "eth_feeHistory", "0x400", "latest", list(range(100)) * 1000)
    assert err["code"] == -32005 and "max_reward_percentiles" in err["message"]


@pytest.mark.parametrize("percentiles", [[50, 10], [101], [-1], ["x"], [True], "50"])
def test_fee_history_refuses_malformed_percentiles(chain, percentiles):  # noqa: F811
    assert rpc_error(chain, "eth_feeHistory", "0x2", "latest", percentiles)["code"] == -32602


def test_fee_history_block_count_capped(chain):  # noqa: F811
    token = CURRENT_LIMITS.set(RpcLimits(max_fee_history_blocks=1))
    try:
        answer = dispatch(chain, {"jsonrpc": "2.0", "id": 1, "method": "eth_feeHistory",
                                  "params": ["0xffff", "latest", [50]]})
    finally:
        CURRENT_LIMITS.reset(token)
    assert len(answer["result"]["gasUsedRatio"]) == 1


def test_get_logs_range_limit(chain):  # noqa: F811
    token = CURRENT_LIMITS.set(RpcLimits(max_logs_range=2))
    try:
        err = rpc_error(chain, "eth_getLogs", {"fromBlock": "0x0", "toBlock": "0x2"})
    finally:
        CURRENT_LIMITS.reset(token)
    assert err["code"] == -32005 and "max_logs_range" in err["message"]


def test_in_process_call_gas_is_capped(chain):  # noqa: F811
    """2**63 gas for an infinite loop: the cap (here 100,000) ends it with out-of-gas at once."""
    token = CURRENT_LIMITS.set(RpcLimits(gas_cap=100_000))
    try:
        started = time.monotonic()
        err = rpc_error(chain, "eth_call", {"data": LOOP, "gas": hex(2**63)}, "latest")
    finally:
        CURRENT_LIMITS.reset(token)
    assert err["code"] == -32000 and "OutOfGas" in err["message"]
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("call", [{"data": LOOP, "gas": hex(2**64)}, {"value": hex(2**256)},
                                  {"gas": "0x" + "f" * 70}, {"to": "0x1234"}])
def test_call_params_out_of_range(chain, call):  # noqa: F811
    assert rpc_error(chain, "eth_call", call, "latest")["code"] == -32602


# ------------------------------------------------------------------ ids and bodies
@pytest.fixture
def client(chain):  # noqa: F811
    return TestClient(make_rpc_app(chain, limits=RpcLimits(max_batch_size=4, max_request_content_length=16384)))


@pytest.mark.parametrize("raw_id", ["NaN", "Infinity", "-Infinity", "1" * 5000, "1e400"])
def test_non_json_ids_are_parse_errors(client, raw_id):
    r = client.post("/", content=f'{{"jsonrpc":"2.0","id":{raw_id},"method":"eth_chainId"}}'.encode())
    assert r.status_code == 200
    assert r.json()["error"]["code"] == -32700 and r.json()["id"] is None


@pytest.mark.parametrize("bad_id", [2**70, "x" * 300, True, {"a": 1}, [1], 1.5])
def test_insane_ids_are_invalid_requests(client, bad_id):
    r = client.post("/", json={"jsonrpc": "2.0", "id": bad_id, "method": "eth_chainId"})
    assert r.json()["error"]["code"] == -32600 and r.json()["id"] is None


def test_lone_surrogate_id_is_an_invalid_request(client):
    r = client.post("/", content=b'{"jsonrpc": "2.0", "id": "\\ud800", "method": "eth_chainId"}')
    assert r.status_code == 200 and r.json()["error"]["code"] == -32600 and r.json()["id"] is None


def test_sane_ids_are_echoed(client):
    for good in (0, -5, 2**62, "abc", None):
        assert client.post("/", json={"jsonrpc": "2.0", "id": good, "method": "eth_chainId"}).json()["id"] == good


def test_batch_size_limit(client):
    batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(5)]
    r = client.post("/", json=batch)
    assert r.status_code == 400 and r.json()["error"]["code"] == -32005
    assert "max_batch_size" in r.json()["error"]["message"]
    assert len(client.post("/", json=batch[:4]).json()) == 4


def test_chunked_body_is_counted(client):
    """No Content-Length: the limit holds on the bytes actually streamed."""
    def chunks():
        for _ in range(100):
            yield b" " * 1000  # 100 kB in all

    r = client.post("/", content=chunks())
    assert r.status_code == 413 and "max_request_content_length" in r.json()["error"]["message"]


@pytest.mark.parametrize("depth", [3000, 200_000])
def test_deep_nesting_is_refused_not_a_crash(chain, depth):  # noqa: F811
    c = TestClient(make_rpc_app(chain))
    r = c.post("/", content=b"[" * depth + b"]" * depth)
    assert r.status_code == 200
    answer = r.json()
    error = answer[0]["error"] if isinstance(answer, list) else answer["error"]
    assert error["code"] in (-32700, -32600)


def test_rate_limit_per_client(chain):  # noqa: F811
    c = TestClient(make_rpc_app(chain, limits=RpcLimits(rate_per_s=0.001, rate_burst=3)))
    codes = [c.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_rate_limiter_refills_and_bounds_clients():
    limiter = RateLimiter(rate=10, burst=2, max_clients=3)
    assert limiter.take("a", now=0) and limiter.take("a", now=0) and not limiter.take("a", now=0)
    assert limiter.take("a", now=0.1)  # one token back after 0.1 s at 10/s
    for name in "bcde":
        limiter.take(name, now=1)
    assert len(limiter._buckets) == 3


# ------------------------------------------------------------------ execution off the loop
def test_infinite_loop_call_runs_in_worker_and_times_out(chain):  # noqa: F811
    """The loop eth_call runs in the worker process: the event loop keeps ticking, the call ends at the limit."""
    limits = RpcLimits(call_timeout_s=1.0, gas_cap=10**12)
    executor = CallExecutor(str(chain.ledger.db._env.path()).removesuffix("/chain"),
                            chain.ledger.genesis.to_json(), limits)

    async def scenario() -> tuple[tuple, float, float]:
        warm = await executor.execute("eth_call", [{"to": "0x" + FUNDED.hex(), "data": "0x"}],
                                      chain.ledger.head.hash)
        assert warm[0] == "ok", warm
        task = asyncio.create_task(executor.execute("eth_call", [{"data": LOOP}], chain.ledger.head.hash))
        worst_lag, started = 0.0, time.monotonic()
        while not task.done():
            tick = time.monotonic()
            await asyncio.sleep(0.02)
            worst_lag = max(worst_lag, time.monotonic() - tick - 0.02)
        return task.result(), worst_lag, time.monotonic() - started

    try:
        answer, worst_lag, elapsed = asyncio.run(scenario())
    finally:
        executor.close()
    assert answer[0] == "error" and answer[1] == -32005 and "call_timeout_s" in answer[2]
    assert 0.9 < elapsed < 6.5
    assert worst_lag < 0.5, f"the event loop stalled {worst_lag:.2f} s"


def test_execution_queue_is_fair_across_clients(chain):  # noqa: F811
    """Client A runs one loop call and queues three more (its cap), a fifth is refused; client B's call runs
    right after A's running call, not after all of A's."""
    limits = RpcLimits(call_timeout_s=1.0, gas_cap=10**12, max_pending_calls_per_client=3)
    executor = CallExecutor(str(chain.ledger.db._env.path()).removesuffix("/chain"),
                            chain.ledger.genesis.to_json(), limits)
    head = chain.ledger.head.hash
    quick = [{"to": "0x" + FUNDED.hex(), "data": "0x"}]

    async def scenario() -> tuple[list[tuple], tuple, float, float]:
        assert (await executor.execute("eth_call", quick, head, "b"))[0] == "ok"  # warm the worker
        started = time.monotonic()
        loops = [asyncio.create_task(executor.execute("eth_call", [{"data": LOOP}], head, "a")) for _ in range(5)]
        await asyncio.sleep(0.05)
        b_answer = await executor.execute("eth_call", quick, head, "b")
        b_done = time.monotonic() - started
        a_answers = await asyncio.gather(*loops)
        return a_answers, b_answer, b_done, time.monotonic() - started

    try:
        a_answers, b_answer, b_done, all_done = asyncio.run(scenario())
    finally:
        executor.close()
    assert b_answer[0] == "ok"
    assert [a[1] for a in a_answers].count(-32005) == 5
    assert "max_pending_calls_per_client" in a_answers[4][2]  # the 5th: A already had 3 waiting
    assert b_done < 1.9 and all_done > 3.5, (b_done, all_done)


def test_executor_refuses_when_queue_full(chain):  # noqa: F811
    executor = CallExecutor("/nonexistent", {}, RpcLimits(max_pending_calls=0))
    answer = asyncio.run(executor.execute("eth_call", [{}], b"\x00" * 32))
    assert answer[1] == -32005 and "max_pending_calls" in answer[2]


def test_limits_from_node_config():
    limits = RpcLimits.from_config({"host": "127.0.0.1", "port": 8545, "gas_cap": "1000", "call_timeout_s": 2})
    assert limits.gas_cap == 1000 and limits.call_timeout_s == 2.0 and limits.max_batch_size == 1024


WORKER_OWNER = """
import asyncio, os, sys
from ledger.chain import Ledger
from ledger.rpc_guard import CallExecutor, RpcLimits
from tests.ledger.helpers import make_genesis
led = Ledger(sys.argv[1], make_genesis())
ex = CallExecutor(sys.argv[1], led.genesis.to_json(), RpcLimits())
async def main():
    assert (await ex.execute("eth_call", [{"data": "0x"}], led.head.hash))[0] == "ok"
    print(*[p.pid for p in ex._pool._processes.values()], flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
"""


def test_worker_dies_with_a_killed_node(tmp_path):
    """A SIGKILLed validator must not leave its execution worker behind (PR_SET_PDEATHSIG)."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    owner = subprocess.Popen([sys.executable, "-c", WORKER_OWNER, str(tmp_path / "node")], cwd=root,
                             stdout=subprocess.PIPE, text=True)
    try:
        worker = int(owner.stdout.readline())
        os.kill(worker, 0)  # alive
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state in ("Z", "X"):  # dead; only waiting for whoever reaps orphans
            return
        time.sleep(0.2)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError(f"execution worker {worker} outlived its node")
