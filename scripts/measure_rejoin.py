"""Measure how long a validator takes to catch up after its peer links silently die and come back.

Starts a 4-validator network (``ledger.faults.FaultNetwork``, no proxies, light load), then for each outage
length drops every packet to and from validator 4's p2p port with iptables (a silent failure: no RST, no
FIN, like a cable pulled or a firewall losing its state), waits, removes the rules and reports the seconds
from link-up until validator 4 reaches the height the others had at link-up. Needs root and iptables.

    sudo .venv/bin/python scripts/measure_rejoin.py --outage 10 --outage 30

Run it on another checkout's code with ``PYTHONPATH=/path/to/checkout`` (the node processes inherit it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time

from ledger.faults import FaultNetwork


def iptables(action: str, port: int) -> None:
    """Insert (``-I``) or delete (``-D``) the two DROP rules for ``port`` in INPUT."""
    for direction in ("--dport", "--sport"):
        subprocess.run(["iptables", action, "INPUT", "-p", "tcp", direction, str(port), "-j", "DROP"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, action="append", help="seconds the links stay dead (repeatable)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the catch-up")
    args = parser.parse_args()
    outages = args.outage or [10.0, 30.0]
    results = []
    with tempfile.TemporaryDirectory(prefix="rejoin-") as tmp:
        net = FaultNetwork(data_dir=tmp, validators=4, observers=0, proxied=False)
        try:
            net.start(load_rate=2.0)
            victim, reference = net.node(4), net.node(1)
            others = [net.node(i) for i in (1, 2, 3)]
            for outage in outages:
                net.wait_caught_up(victim, reference, 60)
                iptables("-I", victim.p2p_port)
                try:
                    time.sleep(outage)
                    lag = net.height(reference) - net.height(victim)
                finally:
                    iptables("-D", victim.p2p_port)
                link_up = time.monotonic()
                target = max(net.heights(others).values())
                net.wait(f"validator 4 to reach block {target}", lambda t=target: net.height(victim) >= t,
                         args.timeout, interval=0.1)
                rejoin = time.monotonic() - link_up
                results.append({"outage_s": outage, "blocks_behind_at_link_up": lag, "rejoin_s": round(rejoin, 2)})
                print(json.dumps(results[-1]), flush=True)
        finally:
            net.close()
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
