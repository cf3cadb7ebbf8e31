"""The offline bundle verifier on a real bundle built in process (tests/provenance/inprocess_bundle.py): the
forged-certificate scenario of issue 20 and the typed mutation campaign, without starting any process."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from provenance.bundle import prove_bundle
from provenance.verify import Reason
from tests.provenance.bundle_mutations import run_campaign
from tests.provenance.inprocess_bundle import Built, build


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("bundle"))


def failures(built: Built, bundle: dict[str, Any], **trust: Any) -> dict[str, Any]:
    report = prove_bundle(bundle, **(built.trust() | trust))
    return {c.place: c for c in report.checks if not c.ok}


def test_honest_bundle_verifies_with_proven_owner(built: Built) -> None:
    report = prove_bundle(built.bundle, **built.trust())
    assert report.verified, [c for c in report.checks if not c.ok]
    assert list(report.enterprises.values()) == [("mill", "88.1.1")]
    assert [n.key for n in report.nodes] == [built.bundle["key"]]


def test_forged_certificate_outsider_key_and_reverted_anchor_is_refused(built: Built) -> None:
    forged = copy.deepcopy(built.bundle)
    forged["records"] = [built.forged_record]
    forged["anchors"] = [built.forged_anchor]
    forged["blocks"].append(built.forged_block)
    bad = failures(built, forged)
    assert bad["anchors[0].receipt"].reason is Reason.RECEIPT_INVALID and "status 0" in bad["anchors[0].receipt"].detail
    assert bad["records[0].proof"].reason is Reason.NOT_ANCHORED
    assert bad["records[0].signature"].reason is Reason.WRONG_SIGNER
    # the bundle claims the outsider owns the prefix and drops the state proof: still unproven
    forged["registry_proofs"] = []
    bad = failures(built, forged)
    assert bad["records[0].signature"].reason is Reason.OWNER_UNPROVEN


def test_auditor_without_registry_addresses_refuses(built: Built) -> None:
    bad = failures(built, built.bundle, anchor_registry=None, enterprise_registry=None)
    assert bad["anchors[0]"].reason is Reason.NO_REGISTRY
    assert bad["registry_proofs[0]"].reason is Reason.NO_REGISTRY
    assert bad["records[0].signature"].reason is Reason.OWNER_UNPROVEN
    # another contract at the registry's place (e.g. the bundle's own claim of a look-alike registry)
    bad = failures(built, built.bundle, anchor_registry="0x" + "cd" * 20)
    assert bad["anchors[0]"].reason is Reason.WRONG_CALL


def test_typed_mutation_campaign(built: Built) -> None:
    started = time.perf_counter()
    tally = run_campaign(built.bundle, lambda b: prove_bundle(b, **built.trust()).verified)
    print(f"in-process certificate bundle: {tally.line()} ({time.perf_counter() - started:.1f} s)")
    assert tally.findings == [], tally.findings[:20]
    assert tally.refused > 300
