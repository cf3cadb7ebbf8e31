"""Fault-injection harness: a real n-validator network, steady load, and faults applied on purpose.

Usage (a person at a terminal; also what ``tests/faults`` run)::

    python -m ledger.faults --scenario all [--validators 4] [--keep-data] [--json out.json]
    python -m ledger.faults --scenario kill_one --scenario partition

Scenarios (:data:`SCENARIOS`), each followed by a check that every node has the same block hash at
every height and a report of finality gaps (block timestamp deltas above ``3 × block period``):

* ``unknown_peer`` -- a client with a key that is neither a validator nor an observer is refused after the
  Noise handshake, at its signed identity, and a client speaking the old plain-TCP protocol is disconnected
  (both counted as ``handshake_refused``);
* ``kill_one`` -- SIGKILL one validator: finalization continues; restarted, it catches up to the
  same block hashes and state root;
* ``stop_two`` -- SIGSTOP one validator and SIGKILL another: nothing is finalized and nobody diverges;
  SIGCONT the first: finalization resumes within a few round timeouts; the second restarts and syncs;
* ``wipe`` -- a validator's chain database is deleted and it restarts: it syncs from genesis and
  proposes blocks again;
* ``partition`` -- the links between {1, 2} and {3, 4} are cut in both directions (through the
  per-pair TCP proxies every node dials its peers through): nothing is finalized; healed, the chain
  resumes with a single history;
* ``equivocate`` / ``garbage`` -- one validator restarts with ``--byzantine equivocate|garbage``: the
  honest ones keep finalizing, report the equivocation (``qbft_equivocations``, log line with both
  signed messages) and count the dropped junk by reason (``qbft_messages_dropped``);
* ``observer`` -- an observer node starts from an empty data directory, syncs, and serves web3.py
  (reads and a transaction submitted through it);
* ``governance`` -- a fifth validator is voted in by 3 of 4 (``qbft_proposeValidatorVote``), syncs
  and seals blocks; then a validator is voted out and its commits stop counting;
* ``silent_link`` -- every link to and from one validator goes silent (the proxies stop forwarding and keep
  the connections open, which stay dead: no FIN, no RST, like a firewall losing its state): the heartbeats
  drop them (``link_dead``), the validator redials once the links return and catches up.

Network: ``ledger.network.init_network`` with free ports and a temporary data directory; each
ordered pair of validators talks through a :class:`LinkProxy` (``a`` dials ``b`` at a proxy port
that forwards to ``b``), so a partition or a delay can be applied per direction.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import rlp
from eth_account import Account
from eth_keys import keys
from eth_utils import keccak

from ledger.network import (
    NetworkSpec,
    ValidatorSpec,
    add_node,
    free_port,
    init_network,
    load_network,
    rpc,
    start_node,
    stop_processes,
    wait_for_rpc,
)
from ledger.transport import KIND_CONSENSUS, KIND_HANDSHAKE, LinkIdentity, frame, new_static_key, open_link
from provenance.qbft_header import recover_seal_signers_from_rpc_block

GWEI = 10**9
LOAD_SENDERS = 4


class ScenarioFailed(AssertionError):
    """A scenario's expectation did not hold; the message says which and with what numbers."""


# ---------------------------------------------------------------------------------------- TCP proxy
class LinkProxy:
    """One direction of one link: accepts on ``listen_port`` and forwards to ``target_port``.

    ``blocked`` closes live connections and refuses new ones (a partition); ``delay_s`` holds every
    chunk for that many seconds before forwarding (a slow link); :meth:`freeze` makes every open connection
    silent for good and new ones silent while frozen (a silent failure: no FIN, no RST). Runs in
    :class:`ProxyHub`'s loop.
    """

    def __init__(self, name: str, listen_port: int, target_port: int, host: str = "127.0.0.1") -> None:
        self.name = name
        self.host = host
        self.listen_port = listen_port
        self.target_port = target_port
        self.blocked = False
        self.delay_s = 0.0
        self.frozen = False
        self.epoch = 0
        self._closed = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        """Listen on ``host:listen_port`` and forward each accepted connection to ``target_port``."""
        self._server = await asyncio.start_server(self._accept, self.host, self.listen_port)

    async def close(self) -> None:
        """Stop listening and drop every forwarded connection (see :meth:`cut`)."""
        if self._server is not None:
            self._server.close()
        self._closed.set()
        self.cut()

    def cut(self) -> None:
        """Close every live connection through this proxy."""
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    def freeze(self, frozen: bool = True) -> None:
        """Stop forwarding on every open connection for good, and on new ones while ``frozen``; sockets stay open."""
        self.frozen = frozen
        if frozen:
            self.epoch += 1

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            writer.close()
            return
        epoch = self.epoch
        if self.frozen:
            self._writers.add(writer)
            await self._closed.wait()  # accepted, never answered, until the proxy closes
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pump(reader, up_writer, epoch), self._pump(up_reader, writer, epoch),
                             return_exceptions=True)
        self._writers.difference_update((writer, up_writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, epoch: int = 0) -> None:
        try:
            while True:
                chunk = await reader.read(65536)
                if chunk and (self.frozen or self.epoch != epoch):
                    await self._closed.wait()  # silent from now on: nothing forwarded, nothing closed
                    break
                if not chunk or self.blocked:
                    break
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                writer.write(chunk)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            writer.close()


class ProxyHub:
    """All :class:`LinkProxy` objects of a network, served by one asyncio loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.links: dict[tuple[int, int], LinkProxy] = {}
        self._thread = threading.Thread(target=self.loop.run_forever, name="proxy-hub", daemon=True)
        self._thread.start()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def add(self, src: int, dst: int, target_port: int) -> LinkProxy:
        """Put a proxy on the link ``src`` → ``dst`` (1-based validator indexes) toward p2p port ``target_port``;
        returns it.
        """
        proxy = LinkProxy(f"{src}->{dst}", free_port(), target_port)
        self._run(proxy.start())
        self.links[(src, dst)] = proxy
        return proxy

    def set_blocked(self, pairs: list[tuple[int, int]], blocked: bool) -> None:
        """Block (dropping open connections) or unblock every link in ``pairs`` of ``(src, dst)`` indexes."""
        def apply() -> None:
            for pair in pairs:
                link = self.links[pair]
                link.blocked = blocked
                if blocked:
                    link.cut()
        self.loop.call_soon_threadsafe(apply)

    def set_frozen(self, pairs: list[tuple[int, int]], frozen: bool) -> None:
        """Freeze (see :meth:`LinkProxy.freeze`) or thaw every link in ``pairs`` of ``(src, dst)`` indexes."""
        def apply() -> None:
            for pair in pairs:
                self.links[pair].freeze(frozen)
        self.loop.call_soon_threadsafe(apply)

    def set_delay(self, src: int, dst: int, seconds: float) -> None:
        """Delay every chunk forwarded on the link ``src`` → ``dst`` by ``seconds``."""
        self.loop.call_soon_threadsafe(setattr, self.links[(src, dst)], "delay_s", seconds)

    def close(self) -> None:
        """Close every proxy and stop the hub's event-loop thread (waits up to 5 s)."""
        for link in self.links.values():
            with contextlib.suppress(Exception):
                self._run(link.close())

        async def drain_tasks() -> None:  # let every pump and held connection end before the loop stops
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self._run(drain_tasks())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


# ------------------------------------------------------------------------------------------- load
class Load:
    """Steady load: signed value transfers from :data:`LOAD_SENDERS` genesis accounts at ``rate`` tx/s,
    each sent to a random live node; the sender's next nonce is read from that node (``pending``) so a
    transaction lost with a crashed node is simply sent again."""

    def __init__(self, net: FaultNetwork, rate: float = 4.0) -> None:
        self.net = net
        self.rate = rate
        self.sent = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def start(self) -> None:
        """Start sending transfers in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sending and join the thread (up to 10 s); ``sent`` and ``failed`` keep their counts."""
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(1.0 / self.rate):
            live = self.net.live_nodes()
            if not live:
                continue
            key = self.net.sender_keys[i % len(self.net.sender_keys)]
            url = live[i % len(live)].rpc_url
            i += 1
            try:
                sender = Account.from_key(key).address
                nonce = int(rpc(url, "eth_getTransactionCount", [sender, "pending"], timeout=2.0), 16)
                tx = {"type": 2, "chainId": self.net.spec.chain_id, "nonce": nonce, "to": "0x" + "22" * 20,
                      "value": 1, "gas": 21_000, "maxFeePerGas": 2 * GWEI, "maxPriorityFeePerGas": 0}
                raw = Account.sign_transaction(tx, key).raw_transaction
                rpc(url, "eth_sendRawTransaction", ["0x" + bytes(raw).hex()], timeout=2.0)
                self.sent += 1
            except Exception:  # a node that is being killed, a replaced nonce: the load keeps going
                self.failed += 1


# ---------------------------------------------------------------------------------------- network
@dataclass
class ScenarioResult:
    """Outcome of one scenario: ``facts`` are the measured numbers the checks were made on."""

    name: str
    ok: bool
    seconds: float
    facts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class FaultNetwork:
    """A running local network under ``data_dir`` with per-link proxies, a load generator and fault knobs.

    Timing (seconds): ``block_period_s`` between blocks, ``request_timeout_s`` round-0 timeout,
    ``round_timeout_cap_s`` the cap of the doubling round timeout (kept small so healing is quick).
    """

    data_dir: Path
    validators: int = 4
    observers: int = 1
    block_period_s: float = 0.5
    request_timeout_s: float = 1.0
    round_timeout_cap_s: float = 4.0
    proxied: bool = True
    spec: NetworkSpec | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)
    hub: ProxyHub | None = None
    load: Load | None = None
    sender_keys: list[str] = field(default_factory=list)
    extra_nodes: list[ValidatorSpec] = field(default_factory=list)

    # ---------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 60.0, load_rate: float = 4.0) -> FaultNetwork:
        """Write the network, put proxies between every pair, start every node and the load; waits until blocks are
        produced (``timeout`` seconds; raises ScenarioFailed). Returns ``self``.
        """
        self.data_dir = Path(self.data_dir).resolve()
        self.sender_keys = ["0x" + os.urandom(32).hex() for _ in range(LOAD_SENDERS)]
        alloc = {Account.from_key(k).address: 10**24 for k in self.sender_keys}
        self.spec = init_network(
            self.data_dir, validators=self.validators, observers=self.observers, rpc_base_port=None,
            p2p_base_port=None, block_period_s=self.block_period_s, request_timeout_s=self.request_timeout_s,
            round_timeout_cap_s=self.round_timeout_cap_s, extra_alloc=alloc)
        if self.proxied:
            self._install_proxies()
        for v in self.spec.validators:
            self.start_node(v)
        for v in self.spec.validators:
            wait_for_rpc(v.rpc_url, timeout, min_block=1)
        self.load = Load(self, load_rate)
        self.load.start()
        return self

    def _install_proxies(self) -> None:
        assert self.spec is not None
        self.hub = ProxyHub()
        by_address = {v.address.lower(): v for v in self.spec.validators}
        for v in self.spec.validators:
            config = json.loads(v.config_path.read_text())
            for peer in config["peers"]:
                target = by_address.get(peer["address"].lower())
                if target is not None:
                    peer["port"] = self.hub.add(v.index, target.index, target.p2p_port).listen_port
            v.config_path.write_text(json.dumps(config, indent=2) + "\n")

    def close(self) -> None:
        """Stop the load, resume any frozen node, stop every node process and close the proxies."""
        if self.load is not None:
            self.load.stop()
        for name in list(self.stopped):
            with contextlib.suppress(ProcessLookupError):
                self.procs[name].send_signal(signal.SIGCONT)
        stop_processes(list(self.procs.values()))
        self.procs.clear()
        if self.hub is not None:
            self.hub.close()

    # ---------------------------------------------------------------- nodes
    def node(self, index: int) -> ValidatorSpec:
        """The validator with 1-based ``index``."""
        assert self.spec is not None
        return self.spec.validators[index - 1]

    def all_nodes(self) -> list[ValidatorSpec]:
        """Validators, observers and nodes added during a scenario."""
        assert self.spec is not None
        return [*self.spec.validators, *self.spec.observers, *self.extra_nodes]

    def live_nodes(self) -> list[ValidatorSpec]:
        """The nodes whose process is running and not stopped (SIGSTOP)."""
        return [n for n in self.all_nodes()
                if n.name in self.procs and n.name not in self.stopped and self.procs[n.name].poll() is None]

    def start_node(self, spec: ValidatorSpec, extra_args: list[str] | None = None) -> None:
        """Start ``spec``'s node process (``traceledger node``) with ``extra_args`` (e.g. ``--byzantine``)."""
        self.procs[spec.name] = start_node(spec, extra_args=extra_args)
        self.stopped.discard(spec.name)

    def kill(self, spec: ValidatorSpec, sig: int = signal.SIGKILL) -> None:
        """SIGKILL (crash) or SIGTERM the node and reap it."""
        proc = self.procs.pop(spec.name)
        self.stopped.discard(spec.name)
        proc.send_signal(sig)
        proc.wait(15)

    def pause(self, spec: ValidatorSpec) -> None:
        """SIGSTOP: the process is frozen with its sockets open (a hung node)."""
        self.procs[spec.name].send_signal(signal.SIGSTOP)
        self.stopped.add(spec.name)

    def resume(self, spec: ValidatorSpec) -> None:
        """SIGCONT a node frozen by :meth:`pause`."""
        self.procs[spec.name].send_signal(signal.SIGCONT)
        self.stopped.discard(spec.name)

    def restart(self, spec: ValidatorSpec, extra_args: list[str] | None = None, wipe: bool = False) -> None:
        """Kill the node if running, optionally wipe its chain database (``wipe``), and start it again."""
        if spec.name in self.procs:
            self.kill(spec)
        if wipe:
            shutil.rmtree(spec.data_dir / "chain", ignore_errors=True)
        self.start_node(spec, extra_args)
        wait_for_rpc(spec.rpc_url, 60)

    def partition(self, groups: list[list[int]], blocked: bool = True) -> None:
        """Cut (``blocked``) or heal every proxied link between validators of different groups."""
        assert self.hub is not None, "partitions need proxied=True"
        side = {i: g for g, members in enumerate(groups) for i in members}
        pairs = [p for p in self.hub.links if side.get(p[0]) != side.get(p[1])]
        self.hub.set_blocked(pairs, blocked)

    # ---------------------------------------------------------------- reads
    def height(self, spec: ValidatorSpec) -> int:
        """The node's ``eth_blockNumber`` (raises on an RPC failure)."""
        return int(rpc(spec.rpc_url, "eth_blockNumber", timeout=5.0), 16)

    def heights(self, nodes: list[ValidatorSpec]) -> dict[str, int]:
        """``{node name: block number}`` of ``nodes``."""
        return {n.name: self.height(n) for n in nodes}

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float, interval: float = 0.25) -> float:
        """Poll ``predicate`` until true; returns the seconds waited; raises ScenarioFailed on timeout."""
        start = time.monotonic()
        while True:
            try:
                if predicate():
                    return time.monotonic() - start
            except (httpx.HTTPError, RuntimeError, OSError):
                pass
            if time.monotonic() - start > timeout:
                raise ScenarioFailed(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(interval)

    def wait_progress(self, nodes: list[ValidatorSpec], blocks: int, timeout: float) -> float:
        """Wait until every node in ``nodes`` is ``blocks`` above the highest of them now."""
        target = max(self.heights(nodes).values()) + blocks
        return self.wait(f"{[n.name for n in nodes]} to reach block {target}",
                         lambda: min(self.heights(nodes).values()) >= target, timeout)

    def wait_caught_up(self, laggard: ValidatorSpec, reference: ValidatorSpec, timeout: float) -> float:
        """Wait until ``laggard`` reaches ``reference``'s height now; returns the seconds waited, raises ScenarioFailed
        after ``timeout``.
        """
        target = self.height(reference)
        return self.wait(f"{laggard.name} to catch up to block {target}", lambda: self.height(laggard) >= target,
                         timeout)

    def blocks(self, spec: ValidatorSpec, upto: int) -> list[dict[str, Any]]:
        """Blocks 0..upto of a node (one batched JSON-RPC request)."""
        batch = [{"jsonrpc": "2.0", "id": h, "method": "eth_getBlockByNumber", "params": [hex(h), False]}
                 for h in range(upto + 1)]
        answers = httpx.post(spec.rpc_url, json=batch, timeout=60).json()
        return [a["result"] for a in sorted(answers, key=lambda a: a["id"])]

    def check_consistency(self, nodes: list[ValidatorSpec]) -> dict[str, Any]:
        """Same block hash (and state root) at every height on every node; raises ScenarioFailed.

        Returns ``{"height": common height checked, "max_gap_s": largest timestamp gap, "gaps": [[h, s]…]}``
        (gaps above 3 block periods, from the first node's chain).
        """
        common = min(self.heights(nodes).values())
        chains = {n.name: self.blocks(n, common) for n in nodes}
        first = next(iter(chains.values()))
        for name, chain in chains.items():
            for a, b in zip(first, chain, strict=True):
                if a is None or b is None or a["hash"] != b["hash"] or a["stateRoot"] != b["stateRoot"]:
                    raise ScenarioFailed(f"{name} diverges at block {int(a['number'], 16) if a else '?'}")
        stamps = [int(b["timestamp"], 16) for b in first]
        gaps = [[h, stamps[h] - stamps[h - 1]] for h in range(2, len(stamps))
                if stamps[h] - stamps[h - 1] > 3 * self.block_period_s]
        return {"height": common, "max_gap_s": max((g for _, g in gaps), default=0), "gaps": gaps[-10:]}

    def metric(self, spec: ValidatorSpec, name: str, labels: str = "") -> float:
        """Sum of a Prometheus sample ``name{labels…}`` at ``/metrics`` (``labels`` a substring filter)."""
        text = httpx.get(spec.rpc_url + "/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and labels in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def dropped_by_reason(self, spec: ValidatorSpec) -> dict[str, float]:
        """``{reason: count}`` of the node's ``qbft_messages_dropped_total`` metric."""
        text = httpx.get(spec.rpc_url + "/metrics", timeout=5).text
        out: dict[str, float] = {}
        for m in re.finditer(r'^qbft_messages_dropped_total\{reason="([^"]*)"\} (\S+)$', text, re.M):
            out[m.group(1)] = float(m.group(2))
        return out


# -------------------------------------------------------------------------------------- scenarios
def _honest(net: FaultNetwork, *excluded: int) -> list[ValidatorSpec]:
    return [net.node(i) for i in range(1, net.validators + 1) if i not in excluded]


def scenario_unknown_peer(net: FaultNetwork) -> dict[str, Any]:
    """Dial validator 1 over Noise with a random key, then with the old plain-TCP handshake: both are closed."""
    target = net.node(1)
    before = net.metric(target, "qbft_messages_dropped_total", 'reason="handshake_refused"')
    stranger = keys.PrivateKey(os.urandom(32))
    identity = LinkIdentity(net.spec.chain_id, stranger.public_key.to_canonical_address(),
                            lambda digest: stranger.sign_msg_hash(digest).to_bytes(), 0, new_static_key())

    async def noise_dial() -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", target.p2p_port)
        try:
            link = await open_link(reader, writer, identity, dialler=True,
                                   allowed={bytes.fromhex(target.address[2:])})
            link.write(frame(KIND_CONSENSUS, b"let me in"))
            await link.drain()
            await asyncio.wait_for(link.read_frame(), 10)
            return False
        except (asyncio.IncompleteReadError, ConnectionError):
            return True
        finally:
            writer.close()

    closed = asyncio.run(noise_dial())
    if not closed:
        raise ScenarioFailed("a connection with an unknown key was not closed")
    ts = int(time.time())
    digest = keccak(b"traceledger-handshake" + net.spec.chain_id.to_bytes(8, "big") + identity.address
                    + ts.to_bytes(8, "big"))
    old = rlp.encode([net.spec.chain_id, identity.address, ts, stranger.sign_msg_hash(digest).to_bytes()])
    with socket.create_connection(("127.0.0.1", target.p2p_port), timeout=10) as sock:
        sock.sendall(frame(KIND_HANDSHAKE, old))
        sock.settimeout(10)
        plain_closed = sock.recv(1) == b""
    if not plain_closed:
        raise ScenarioFailed("a plain-TCP (unencrypted) connection was not closed")
    with contextlib.suppress(ScenarioFailed):
        net.wait("handshake_refused counted", lambda: net.metric(
            target, "qbft_messages_dropped_total", 'reason="handshake_refused"') >= before + 2, 10)
    refused = net.metric(target, "qbft_messages_dropped_total", 'reason="handshake_refused"') - before
    if refused < 2:
        raise ScenarioFailed(f"refused handshakes not counted in qbft_messages_dropped_total ({refused} of 2)")
    net.wait_progress(_honest(net), 1, 30)
    return {"closed": closed, "plain_closed": plain_closed, "refused_counted": refused}


def scenario_kill_one(net: FaultNetwork) -> dict[str, Any]:
    """SIGKILL one validator: the others keep finalizing; restarted, it catches up to the same hashes."""
    victim = net.node(net.validators)
    others = _honest(net, net.validators)
    net.kill(victim)
    progressed = net.wait_progress(others, 3, 40)
    net.restart(victim)
    catch_up = net.wait_caught_up(victim, others[0], 60)
    report = net.check_consistency([*others, victim])
    return {"progress_while_down_s": round(progressed, 1), "catch_up_s": round(catch_up, 1), **report}


def scenario_stop_two(net: FaultNetwork) -> dict[str, Any]:
    """Freeze one validator and crash another (two of four, beyond f = 1): nothing is finalized and no node diverges;
    after recovery finalization resumes.
    """
    frozen, crashed = net.node(net.validators - 1), net.node(net.validators)
    live = _honest(net, net.validators - 1, net.validators)
    net.pause(frozen)
    net.kill(crashed)
    time.sleep(2.0)  # a block whose COMMITs were already in flight may still land
    stalled = net.heights(live)
    time.sleep(6.0)
    after = net.heights(live)
    if after != stalled:
        raise ScenarioFailed(f"blocks were finalized with 2 of 4 validators down: {stalled} -> {after}")
    net.check_consistency(live)
    net.resume(frozen)
    resumed = net.wait(f"finalization to resume above {max(after.values())}",
                       lambda: min(net.heights(live).values()) > max(after.values()), 40)
    net.restart(crashed)
    catch_up = net.wait_caught_up(crashed, live[0], 60)
    report = net.check_consistency([*live, frozen, crashed])
    return {"stalled_at": max(after.values()), "resumed_after_s": round(resumed, 1),
            "catch_up_s": round(catch_up, 1), **report}


def scenario_wipe(net: FaultNetwork) -> dict[str, Any]:
    """Wipe a validator's chain database: it re-syncs the whole chain (counted by ``qbft_blocks_synced``) and proposes
    again.
    """
    victim = net.node(2)
    others = _honest(net, 2)
    height_before = net.height(others[0])
    net.restart(victim, wipe=True)
    catch_up = net.wait_caught_up(victim, others[0], 90)
    synced_at = net.height(victim)
    # the wiped node started from genesis: every block it has now came from its peers (or its own new seals)
    imported = int(net.metric(victim, "qbft_blocks_synced_total"))

    def proposed_again() -> bool:
        top = net.height(others[0])
        return any(b["miner"].lower() == victim.address.lower()
                   for b in net.blocks(others[0], top)[synced_at + 1:])
    rejoined = net.wait(f"{victim.name} to propose a block after its sync", proposed_again, 60)
    report = net.check_consistency([*others, victim])
    return {"height_before_wipe": height_before, "blocks_synced": imported, "catch_up_s": round(catch_up, 1),
            "synced_to": synced_at,
            "proposed_after_s": round(rejoined, 1), **report}


def scenario_partition(net: FaultNetwork) -> dict[str, Any]:
    """A 2|2 partition finalizes nothing; once healed there is one history."""
    nodes = _honest(net)
    half = net.validators // 2
    groups = [list(range(1, half + 1)), list(range(half + 1, net.validators + 1))]
    net.partition(groups)
    time.sleep(2.0)
    stalled = net.heights(nodes)
    time.sleep(6.0)
    after = net.heights(nodes)
    net.partition(groups, blocked=False)
    if after != stalled:
        raise ScenarioFailed(f"blocks were finalized during a {half}|{net.validators - half} partition: "
                             f"{stalled} -> {after}")
    resumed = net.wait_progress(nodes, 2, 60)
    report = net.check_consistency(nodes)
    return {"stalled_at": max(after.values()), "resumed_after_heal_s": round(resumed, 1), **report}


def _byzantine(net: FaultNetwork, mode: str) -> dict[str, Any]:
    bad = net.node(net.validators)
    honest = _honest(net, net.validators)
    before = {n.name: net.metric(n, "qbft_equivocations_total") for n in honest}
    dropped_before = {n.name: net.dropped_by_reason(n) for n in honest}
    net.restart(bad, ["--byzantine", mode])
    net.wait_caught_up(bad, honest[0], 60)
    progressed = net.wait_progress(honest, 2 * net.validators, 60)
    evidence = {n.name: net.metric(n, "qbft_equivocations_total") - before[n.name] for n in honest}
    dropped = {}
    for n in honest:
        now = net.dropped_by_reason(n)
        dropped[n.name] = {r: v - dropped_before[n.name].get(r, 0) for r, v in now.items()
                           if v - dropped_before[n.name].get(r, 0) > 0}
    logged = sum("EQUIVOCATION" in (n.log_path.read_text(errors="replace")) for n in honest)
    net.restart(bad)
    report = net.check_consistency([*honest, bad])
    if not any(evidence.values()) or not logged:
        raise ScenarioFailed(f"equivocation by {bad.name} was not reported: metric {evidence}, logs {logged}")
    return {"progress_s": round(progressed, 1), "equivocations": evidence, "nodes_logging_evidence": logged,
            "dropped": dropped, **report}


def scenario_equivocate(net: FaultNetwork) -> dict[str, Any]:
    """A validator sends conflicting proposals and votes: the others are unaffected and report the evidence."""
    return _byzantine(net, "equivocate")


def scenario_garbage(net: FaultNetwork) -> dict[str, Any]:
    """A validator sends malformed and unauthorised frames: each is dropped and counted by reason."""
    facts = _byzantine(net, "garbage")
    reasons = set().union(*(d.keys() for d in facts["dropped"].values()))
    wanted = {"invalid message", "not a validator", "old height", "bad transaction"}
    if not wanted <= reasons:
        raise ScenarioFailed(f"junk not counted by reason: wanted {sorted(wanted)}, got {sorted(reasons)}")
    return facts


def scenario_observer(net: FaultNetwork) -> dict[str, Any]:
    """An observer syncs, follows consensus and serves web3.py, including a transaction sent through it."""
    from web3 import Web3
    from web3.middleware import ExtraDataToPOAMiddleware

    assert net.spec is not None
    if not net.spec.observers:  # a network started without one: add it now (running nodes re-read node.json)
        add_node(net.data_dir, role="observer")
        net.spec = load_network(net.data_dir)
    observer = net.spec.observers[0]
    if observer.name not in net.procs:
        net.start_node(observer)
    wait_for_rpc(observer.rpc_url, 60)
    synced = net.wait_caught_up(observer, net.node(1), 90)
    w3 = Web3(Web3.HTTPProvider(observer.rpc_url, request_kwargs={"timeout": 30}))
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    block = w3.eth.get_block("latest")
    reference = rpc(net.node(1).rpc_url, "eth_getBlockByNumber", [hex(block["number"]), False])
    if reference["hash"] != "0x" + bytes(block["hash"]).hex():
        raise ScenarioFailed("the observer serves another block than validator 1 at the same height")
    signers = recover_seal_signers_from_rpc_block(reference)
    account = Account.from_key(net.spec.admin_key())  # not a load sender: no nonce race with the load
    nonce = w3.eth.get_transaction_count(account.address, "pending")
    tx = {"type": 2, "chainId": w3.eth.chain_id, "nonce": nonce, "to": "0x" + "33" * 20, "value": 7,
          "gas": 21_000, "maxFeePerGas": 2 * GWEI, "maxPriorityFeePerGas": 0}
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    report = net.check_consistency([*_honest(net), observer])
    return {"sync_s": round(synced, 1), "web3_block": block["number"], "seals": len(signers),
            "tx_status": receipt["status"], "tx_block": receipt["blockNumber"], **report}


def _validators_at(net: FaultNetwork, url: str, block: Any = "latest") -> set[str]:
    return {a.lower() for a in rpc(url, "qbft_getValidatorsByBlockNumber", [block])}


def scenario_governance(net: FaultNetwork) -> dict[str, Any]:
    """Vote a fifth validator in with 3 of 4, see it seal; vote validator 4 out, see its commits ignored."""
    n = net.validators
    newcomer = add_node(net.data_dir, role="validator")
    net.extra_nodes.append(newcomer)
    voters = [net.node(i) for i in range(1, n)]  # n - 1 of n votes: more than half
    ref = net.node(1).rpc_url
    _cli("add", newcomer.address, *[u for v in voters for u in ("--rpc", v.rpc_url)], "--timeout", "60")
    if newcomer.address.lower() not in _validators_at(net, ref):
        raise ScenarioFailed(f"`traceledger validators add` returned but {newcomer.name} is not a validator")
    added_at = _first_block_where(net, ref, lambda vs: newcomer.address.lower() in vs)
    net.start_node(newcomer)
    wait_for_rpc(newcomer.rpc_url, 60)
    net.wait_caught_up(newcomer, net.node(1), 60)

    def sealed_by_newcomer() -> bool:
        block = rpc(ref, "eth_getBlockByNumber", ["latest", False])
        return newcomer.address.lower() in {a.lower() for a in recover_seal_signers_from_rpc_block(block)} or \
            block["miner"].lower() == newcomer.address.lower()
    sealing = net.wait(f"{newcomer.name} to seal a block", sealed_by_newcomer, 60, interval=0.2)
    leaver = net.node(n)
    removers = [*voters, newcomer][:3]  # 3 of the 5: more than half
    _cli("discard", newcomer.address, *[u for v in removers for u in ("--rpc", v.rpc_url)])
    _cli("remove", leaver.address, *[u for v in removers for u in ("--rpc", v.rpc_url)], "--timeout", "60")
    listing = _cli("list", "--rpc", ref).split("pending votes")[0]
    if leaver.address in listing or newcomer.address not in listing:
        raise ScenarioFailed(f"`traceledger validators list` does not show the new set:\n{listing}")
    removed_at = _first_block_where(net, ref, lambda vs: leaver.address.lower() not in vs)
    net.wait_progress([net.node(1)], 6, 60)
    top = net.height(net.node(1))
    later = [rpc(ref, "eth_getBlockByNumber", [hex(h), False]) for h in range(removed_at + 2, top + 1)]
    leaver_seals = sum(leaver.address.lower() in {a.lower() for a in recover_seal_signers_from_rpc_block(b)}
                       for b in later)
    if leaver_seals:
        raise ScenarioFailed(f"{leaver.name} still sealed {leaver_seals} blocks after it was voted out")
    if net.height(leaver) < top - 2:
        raise ScenarioFailed(f"{leaver.name} no longer follows the chain after it was voted out")
    report = net.check_consistency([net.node(i) for i in range(1, n + 1)] + [newcomer])
    return {"added_at": added_at, "sealed_after_s": round(sealing, 1), "removed_at": removed_at,
            "validators_now": len(_validators_at(net, ref)), "blocks_checked_after_removal": len(later), **report}


def _cli(*args: str) -> str:
    """Run ``traceledger validators ARGS…`` in-process; returns its output, raises ScenarioFailed on exit ≠ 0."""
    from typer.testing import CliRunner

    from ledger.cli import validators_app

    result = CliRunner().invoke(validators_app, list(args), terminal_width=200)
    if result.exit_code != 0:
        raise ScenarioFailed(f"traceledger validators {' '.join(args)} exited {result.exit_code}: {result.output}")
    return result.output


def _first_block_where(net: FaultNetwork, url: str, predicate: Callable[[set[str]], bool]) -> int:
    """Lowest block whose extraData validators satisfy ``predicate`` (binary search over the chain)."""
    lo, hi = 0, int(rpc(url, "eth_blockNumber"), 16)
    while lo < hi:
        mid = (lo + hi) // 2
        if predicate(_validators_at(net, url, hex(mid))):
            hi = mid
        else:
            lo = mid + 1
    return lo


def scenario_silent_link(net: FaultNetwork, outage_s: float = 8.0) -> dict[str, Any]:
    """Every link to and from the last validator goes silent for ``outage_s`` seconds, then returns: the dead
    links are dropped by the heartbeat (``link_dead``), redialled, and the validator catches up."""
    assert net.hub is not None, "silent links need proxied=True"
    victim = net.node(net.validators)
    others = _honest(net, net.validators)
    pairs = [p for p in net.hub.links if net.validators in p]
    dead_before = sum(net.metric(n, "qbft_messages_dropped_total", 'reason="link_dead"') for n in _honest(net))
    net.hub.set_frozen(pairs, True)
    time.sleep(outage_s)
    behind = net.height(others[0]) - net.height(victim)
    net.hub.set_frozen(pairs, False)
    caught_up = net.wait_caught_up(victim, others[0], 60)
    net.wait_progress(_honest(net), 2, 60)  # the victim follows consensus again, not only sync
    dead = sum(net.metric(n, "qbft_messages_dropped_total", 'reason="link_dead"') for n in _honest(net)) - dead_before
    if dead < 1:
        raise ScenarioFailed("no silent link was detected as dead (qbft_messages_dropped_total{reason=link_dead})")
    return {"blocks_behind": behind, "links_dropped": dead, "catch_up_s": round(caught_up, 1),
            **net.check_consistency(_honest(net))}


SCENARIOS: dict[str, Callable[[FaultNetwork], dict[str, Any]]] = {
    "unknown_peer": scenario_unknown_peer,
    "kill_one": scenario_kill_one,
    "stop_two": scenario_stop_two,
    "wipe": scenario_wipe,
    "partition": scenario_partition,
    "equivocate": scenario_equivocate,
    "garbage": scenario_garbage,
    "observer": scenario_observer,
    "governance": scenario_governance,
    "silent_link": scenario_silent_link,
}


def run_scenario(net: FaultNetwork, name: str) -> ScenarioResult:
    """Run one scenario by name; never raises for a failed expectation (see ``ok`` / ``error``)."""
    start = time.monotonic()
    try:
        facts = SCENARIOS[name](net)
        return ScenarioResult(name, True, time.monotonic() - start, facts)
    except Exception as exc:  # report and go on with the next scenario
        return ScenarioResult(name, False, time.monotonic() - start, error=f"{type(exc).__name__}: {exc}")


def markdown(results: list[ScenarioResult]) -> str:
    """A Markdown table of scenario results."""
    lines = ["| scenario | ok | seconds | common height | max finality gap (s) | facts |", "|---|---|---|---|---|---|"]
    for r in results:
        facts = {k: v for k, v in r.facts.items() if k not in ("height", "max_gap_s", "gaps")}
        lines.append(f"| {r.name} | {'yes' if r.ok else 'NO'} | {r.seconds:.1f} | {r.facts.get('height', '')} | "
                     f"{r.facts.get('max_gap_s', '')} | {r.error or json.dumps(facts, default=str)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line of the harness (``python -m ledger.faults --help``); returns 0 when every scenario passed, 1
    otherwise.
    """
    parser = argparse.ArgumentParser(description="Apply faults to a local QBFT network and check it heals")
    parser.add_argument("--scenario", action="append", choices=["all", *SCENARIOS], default=None,
                        help="scenario to run (repeatable; default all, in the listed order)")
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--block-period", type=float, default=0.5, help="seconds between blocks")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a temporary directory")
    parser.add_argument("--keep-data", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    chosen = args.scenario or ["all"]
    names = list(SCENARIOS) if "all" in chosen else chosen
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="traceledger-faults-"))
    net = FaultNetwork(data_dir, validators=args.validators, block_period_s=args.block_period)
    results: list[ScenarioResult] = []
    try:
        print(f"starting {args.validators} validators in {data_dir} …", file=sys.stderr)
        net.start()
        for name in names:
            print(f"scenario {name} …", file=sys.stderr)
            results.append(run_scenario(net, name))
            r = results[-1]
            print(f"  {'ok' if r.ok else 'FAILED'} in {r.seconds:.1f} s {r.error or ''}", file=sys.stderr)
    finally:
        net.close()
        if not args.keep_data and args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2, default=str) + "\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
