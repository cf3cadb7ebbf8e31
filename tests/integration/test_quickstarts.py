"""CI runs every quickstart in docs/ against a live network, so the examples can never drift.

One network (``api.devnet.Stack``, as ``make up`` starts it, on free ports) for all five user groups. Each
``docs/quickstart-*.md`` is read, its fenced ``sh`` blocks are run with ``bash -euo pipefail`` and its
``python`` blocks with this interpreter, in a scratch directory that links ``provenance/`` and ``.venv/``
of the repository (files the reader is told to run from the repository root). The docs tell the reader to
set ``API``, ``RPC``, ``DATA_DIR`` (and ``ID`` for the auditor) when they differ from ``make up``'s defaults;
the test sets exactly those. Any non-zero exit fails the test with the block's output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from api.devnet import Stack
from tests.networks import stack_fixture

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
GROUPS = ["factory", "auditor", "bank", "power-operator", "operator"]
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```", re.S | re.M)


def blocks(group: str) -> list[tuple[str, str]]:
    """``[(language, code)]`` of the executable fenced blocks of ``docs/quickstart-<group>.md``, in order."""
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer((DOCS / f"quickstart-{group}.md").read_text())]


def test_every_group_has_curl_and_python_and_says_where_the_key_goes() -> None:
    for group in GROUPS:
        found = blocks(group)
        assert {lang for lang, _ in found} == {"sh", "python"}, group
        assert any("curl" in code for lang, code in found if lang == "sh"), group
        assert any("httpx" in code for lang, code in found if lang == "python"), group
    for group in ("factory", "bank", "power-operator"):
        assert "Authorization: Bearer" in (DOCS / f"quickstart-{group}.md").read_text(), group


# its own network: on the session's shared network (after the besu, dashboard and lineage modules) the auditor's
# bundle of the factory's certificate once lacked the registry state proof of its owner ("no owner of 88.1.7 is
# proven at anchor block 22"; api/epcis/bundle.py skips a proof whose eth_getProof fails). Not reproduced since
# (alone, or after lineage only); until it is understood the quickstarts keep a fresh chain.
stack = stack_fixture("stack", "quickstart", validators=1)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("reader")
    for name in ("provenance", ".venv"):
        (work / name).symlink_to(ROOT / name)
    return work


def run(lang: str, code: str, env: dict[str, str], cwd: Path) -> str:
    cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "sh" else [sys.executable, "-c", code]
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (f"{lang} block failed ({proc.returncode}):\n{code}\n--- stdout\n"
                                  f"{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    return proc.stdout


def test_quickstarts_run_against_a_live_network(stack: Stack, workdir: Path) -> None:
    assert stack.spec is not None
    env = {**os.environ, "API": stack.api_url(), "RPC": stack.spec.rpc_urls[0], "DATA_DIR": str(stack.data_dir),
           "COLUMNS": "200"}
    for group in GROUPS:
        for lang, code in blocks(group):
            out = run(lang, code, env, workdir)
            if group == "factory" and lang == "sh":
                env["ID"] = out.strip().splitlines()[-1]  # the reader copies the printed identifier
                assert re.fullmatch(r"88\.\d+\.\d+/.+", env["ID"]), out
