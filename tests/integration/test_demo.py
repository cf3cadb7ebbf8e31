"""`traceledger demo` against the shared EN 10168 fixtures: valid accepted and verified, invalid refused.

On one validator (``--validators 1``): what is asserted is the demo's certificate, refusal and recall output;
QBFT among four validator processes is covered by the spine, fault and shared-network tests, and a
4-validator demo network only added three validator processes to the 2 busy cores."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import SHARED_DATA

pytestmark = pytest.mark.integration


def test_demo_on_shared_certificates() -> None:
    folder = SHARED_DATA / "en10168"
    if not folder.is_dir():
        pytest.skip(f"shared EN 10168 fixtures not found at {folder} (../shared/data beside the project)")
    proc = subprocess.run(
        [sys.executable, "-m", "api.cli.main", "demo", "--certificates", str(folder), "--validators", "1"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "250"},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "6 accepted, 3 refused, 6 verified, 0 failed verification" in out
    # refusals name the field
    assert "Certificate.CommercialTransaction.A01.Identifiers" in out
    assert "replacement of" in out
    # the recall table marks the flagged heat and everything made from it (issue 17)
    assert "yes (flagged)" in out and "yes (from " in out
