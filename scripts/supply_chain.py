#!/usr/bin/env python3
"""Write a generated steel-to-parts EPCIS supply chain to a folder (``provenance.supply_chain``).

    python scripts/supply_chain.py --out DIR [--events 10000] [--heats N] [--seed 7]

Writes ``epcis-NNNN-<role>.json`` capture documents, ``certificate-NNNN.json`` EN 10168 certificates
and ``truth.json`` (the ground-truth lineage) into DIR.
"""

from __future__ import annotations

import json
from pathlib import Path

from provenance.supply_chain import generate


def main(argv: list[str] | None = None) -> int:
    """CLI: write documents, certificates and truth.json to ``--out``."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--heats", type=int, default=None)
    ap.add_argument("--mill-prefix", default="88.1.1")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--lineage-fan-in", type=int, default=0,
                    help="weld this many parts of the first heat into one sub-frame (deep lineage; 16 ≈ 50 records)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    chain = generate(target_events=args.events, heats=args.heats, mill_prefix=args.mill_prefix, seed=args.seed,
                     lineage_fan_in=args.lineage_fan_in)
    args.out.mkdir(parents=True, exist_ok=True)
    for i, (role, doc) in enumerate(chain.documents):
        (args.out / f"epcis-{i:04d}-{role}.json").write_text(json.dumps(doc))
    for i, cert in enumerate(chain.certificates):
        (args.out / f"certificate-{i:04d}.json").write_text(json.dumps(cert))
    (args.out / "truth.json").write_text(json.dumps(chain.truth.to_json(), indent=1))
    print(f"{chain.event_count} events in {len(chain.documents)} documents, {len(chain.certificates)} certificates")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
