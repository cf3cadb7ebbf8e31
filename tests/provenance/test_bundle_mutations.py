"""Mutation testing of the offline bundle verifier (issue 20) on real bundles.

The bundles are test-time artifacts: ``tests/integration/test_lineage_stack.py`` builds them on a real
4-validator network (a coil certificate; a part with its upstream lineage) and caches them under
``.pytest_cache/traceledger-bundles/`` (``TRACELEDGER_BUNDLE_CACHE``); that module also runs this campaign, so CI
runs it on fresh bundles. Here it runs on the cached ones and skips, saying so, when there are none.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from provenance.bundle import prove_bundle
from tests.provenance.bundle_mutations import NOT_PROVABLE, Tally, run_campaign, semantic_attacks

CACHE = Path(os.environ.get("TRACELEDGER_BUNDLE_CACHE",
                            Path(__file__).resolve().parents[2] / ".pytest_cache" / "traceledger-bundles"))


def load(name: str) -> dict[str, Any]:
    path = CACHE / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"no cached bundle {path}: run tests/integration/test_lineage_stack.py once to generate it")
    return json.loads(path.read_text())


def acceptor(art: dict[str, Any]) -> Any:
    def accepts(bundle: dict[str, Any]) -> bool:
        return prove_bundle(bundle, art["validators"], anchor_registry=art["anchor_registry"],
                            enterprise_registry=art["enterprise_registry"]).verified
    return accepts


def campaign(part: dict[str, Any], cert: dict[str, Any]) -> tuple[Tally, Tally]:
    """Typed mutations of both bundles and the semantic attacks; returns (typed, semantic) tallies."""
    typed = Tally()
    for art in (cert, part):
        accepts = acceptor(art)
        assert accepts(art["bundle"]), "the honest bundle must verify"
        t = run_campaign(art["bundle"], accepts)
        typed.refused += t.refused
        typed.harmless += t.harmless
        typed.findings += t.findings
    semantic = Tally()
    accepts = acceptor(part)
    for name, bundle in semantic_attacks(part["bundle"], cert["bundle"]):
        if not accepts(bundle):
            semantic.refused += 1
        elif name in NOT_PROVABLE:
            semantic.not_provable.append(name)
        else:
            semantic.findings.append(name)
    return typed, semantic


def test_every_mutant_of_real_bundles_is_refused_or_listed_harmless() -> None:
    part, cert = load("part"), load("certificate")
    started = time.perf_counter()
    typed, semantic = campaign(part, cert)
    print(f"typed: {typed.line()}; semantic: {semantic.line()} ({time.perf_counter() - started:.1f} s)")
    assert typed.findings == [], typed.findings[:20]
    assert semantic.findings == [], semantic.findings
    assert typed.refused > 1000 and semantic.refused >= 10
