"""Measure how long a validator takes to catch up after its peer links silently die and come back.

Starts a 4-validator network (``ledger.faults.FaultNetwork``, light load), then for each outage length makes
every link of validator 4 silent, waits, restores them and reports the seconds from link-up until validator
4 reaches the height the others had at link-up. Two ways to kill the links silently (no RST, no FIN):

* ``--mode iptables`` (root): DROP every packet to and from validator 4's p2p port; after the rules go, the
  old TCP connections deliver again once TCP retransmits;
* ``--mode freeze`` (no root): the harness's per-link proxies stop forwarding and keep the connections open;
  those connections stay dead after the outage (a firewall or NAT that lost their state), only new ones work.

    sudo .venv/bin/python scripts/measure_rejoin.py --mode iptables --outage 10 --outage 30
    .venv/bin/python scripts/measure_rejoin.py --mode freeze --node-code /path/to/other/checkout

``--node-code DIR`` runs the node processes on another checkout's code: they start in DIR (``python -m``
puts the working directory first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time

from ledger.faults import FaultNetwork, ScenarioFailed


def iptables(action: str, port: int) -> None:
    """Insert (``-I``) or delete (``-D``) the two DROP rules for ``port`` in INPUT."""
    for direction in ("--dport", "--sport"):
        subprocess.run(["iptables", action, "INPUT", "-p", "tcp", direction, str(port), "-j", "DROP"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, action="append", help="seconds the links stay dead (repeatable)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the catch-up")
    parser.add_argument("--mode", choices=["iptables", "freeze"], default="iptables")
    parser.add_argument("--node-code", default=None, help="checkout whose code the node processes run")
    args = parser.parse_args()
    if args.node_code:
        os.chdir(args.node_code)
    outages = args.outage or [10.0, 30.0]
    results = []
    with tempfile.TemporaryDirectory(prefix="rejoin-") as tmp:
        net = FaultNetwork(data_dir=tmp, validators=4, observers=0, proxied=args.mode == "freeze")
        try:
            net.start(load_rate=2.0)
            victim, reference = net.node(4), net.node(1)
            others = [net.node(i) for i in (1, 2, 3)]
            for outage in outages:
                net.wait_caught_up(victim, reference, args.timeout)
                pairs = [p for p in net.hub.links if 4 in p] if net.hub else []
                if net.hub:
                    net.hub.set_frozen(pairs, True)
                else:
                    iptables("-I", victim.p2p_port)
                try:
                    time.sleep(outage)
                    lag = net.height(reference) - net.height(victim)
                finally:
                    if net.hub:
                        net.hub.set_frozen(pairs, False)
                    else:
                        iptables("-D", victim.p2p_port)
                link_up = time.monotonic()
                target = max(net.heights(others).values())
                try:
                    net.wait(f"validator 4 to reach block {target}", lambda t=target: net.height(victim) >= t,
                             args.timeout, interval=0.1)
                    rejoin: float | None = round(time.monotonic() - link_up, 2)
                except ScenarioFailed:
                    rejoin = None  # not within the timeout
                results.append({"mode": args.mode, "outage_s": outage, "blocks_behind_at_link_up": lag,
                                "rejoin_s": rejoin, "timeout_s": args.timeout})
                print(json.dumps(results[-1]), flush=True)
        finally:
            net.close()
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
