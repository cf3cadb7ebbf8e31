"""The wheel works: built from the sources, installed (with its dependencies) into a fresh venv, used from outside.

Steps: copy the packaged sources (pyproject, README, api/, ledger/, provenance/, contracts/) to a temporary
folder (no stale top-level ``build/`` or ``*.egg-info`` of the checkout leaks in), ``pip wheel --no-deps`` there,
create a venv without the checkout's packages, install the wheel **with** its dependencies resolved from
its own metadata (``uv pip install``: the same resolution as pip, from the local cache in seconds rather
than pip's minutes), then from an empty working directory with ``python -I`` (the checkout is not on
``sys.path``): ``traceledger --help``, every contract's ABI through ``contracts.load_artifact``, and the
packaged Alembic scripts migrating a fresh SQLite database to a schema equal to the models.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from api import migrations
from contracts import CONTRACT_NAMES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = ("pyproject.toml", "README.md", "api", "ledger", "provenance", "contracts")

PROBE = r"""
import json, sys, sysconfig
from pathlib import Path
site = Path(sysconfig.get_paths()["purelib"]).resolve()
import api, contracts, ledger, provenance
from contracts import CONTRACT_NAMES, load_artifact
from api import migrations
import api.main  # the app factory with its routes, templates and settings
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine
engine = create_engine("sqlite:///" + sys.argv[1])
result = migrations.upgrade(engine)
with engine.connect() as conn:
    diffs = compare_metadata(MigrationContext.configure(conn), migrations.target_metadata())
print(json.dumps({
    "outside_site": [m.__name__ for m in (api, contracts, ledger, provenance, migrations)
                     if site not in Path(m.__file__).resolve().parents],
    "abi_entries": {name: len(load_artifact(name)["abi"]) for name in CONTRACT_NAMES},
    "script_location_in_site": site in migrations.SCRIPT_LOCATION.parents,
    "head": migrations.head_revision(),
    "upgrade": [result.state, result.after],
    "diffs": [str(d) for d in diffs],
}))
"""


def uv_binary() -> str:
    try:
        import uv
    except ImportError:
        pytest.skip("uv is not installed (pip install -e '.[dev]')")
    return uv.find_uv_bin()


def run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "DATABASE_URL")}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    uv = uv_binary()
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "node_modules")
    for name in PACKAGED:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    work = tmp_path / "elsewhere"  # an empty working directory: the checkout is not on sys.path
    work.mkdir()

    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(src)], work)
    (wheel,) = (tmp_path / "dist").glob("traceledger-*.whl")
    venv = tmp_path / "venv"
    run([uv, "venv", "-q", "--python", sys.executable, str(venv)], work)
    python = venv / "bin" / "python"
    run([uv, "pip", "install", "-q", "--python", str(python), str(wheel)], work)
    run([uv, "pip", "check", "--python", str(python)], work)

    help_text = run([str(venv / "bin" / "traceledger"), "--help"], work).stdout
    for command in ("network", "verify", "contracts", "db"):
        assert command in help_text

    probe = json.loads(run([str(python), "-I", "-c", PROBE, str(tmp_path / "db" / "api.db")], work).stdout)
    assert probe["outside_site"] == []  # nothing came from the checkout
    assert set(probe["abi_entries"]) == set(CONTRACT_NAMES) and all(n > 0 for n in probe["abi_entries"].values())
    assert probe["script_location_in_site"] is True
    assert probe["head"] == migrations.head_revision()
    assert probe["upgrade"] == ["empty", migrations.head_revision()]
    assert probe["diffs"] == []
