"""api.anchoring is one package (worker, lease, service); the names and entry points of before still work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import api.anchoring as anchoring
import api.anchoring_service
from api.anchoring import lease, service, worker


def test_public_names_are_re_exported_from_the_package() -> None:
    assert anchoring.AnchoringWorker is worker.AnchoringWorker
    assert anchoring.batch_metadata_digest is worker.batch_metadata_digest
    assert anchoring.AnchorLease is lease.AnchorLease and anchoring.serialized is lease.serialized
    assert anchoring.advisory_key is lease.advisory_key
    # the former module path of the stand-alone process runs the same code
    assert api.anchoring_service.main is service.main and api.anchoring_service.run is service.run


def test_former_entry_point_still_starts_the_service(tmp_path: Path) -> None:
    """``python -m api.anchoring_service`` (README of before) reaches the service, which refuses to anchor
    without a chain. ``python -m api.anchoring.service`` is what ``Stack(anchoring_process=True)`` runs
    (tests/integration/test_scale_out.py)."""
    env = {"TRACELEDGER_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "api.anchoring_service"], env=env, capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode != 0 and "TRACELEDGER_RPC_URL" in proc.stderr, proc.stderr[-500:]
