"""README "Running a consortium": the systemd unit file parses, and the documented limits are the code's."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.chain import MAX_FUTURE_BLOCK_S
from ledger.consortium import ADMIN_PORT_OFFSET
from ledger.transport import HANDSHAKE_MAX_AGE_S

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "docs" / "traceledger-node.service"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_unit_file_structure() -> None:
    unit = configparser.ConfigParser(strict=True, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    unit.read(UNIT, encoding="utf-8")
    assert unit.sections() == ["Unit", "Service", "Install"]
    service = unit["Service"]
    command = service["ExecStart"].split()
    assert command[1:3] == ["node", "--config"] and command[0].endswith("/.venv/bin/traceledger")
    assert command[4:] == ["--passphrase-file", "${CREDENTIALS_DIRECTORY}/node-passphrase"]
    assert service["LoadCredential"].startswith("node-passphrase:")
    assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGTERM"
    assert "time-sync.target" in unit["Unit"]["After"] and unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit_file(tmp_path: Path) -> None:
    """systemd's own parser: unknown keys or bad values are reported (and fail the test)."""
    prefix = str(Path(sys.executable).parent.parent)  # the unit names /opt/traceledger/.venv: point it here
    copy = tmp_path / "traceledger-node.service"
    copy.write_text(UNIT.read_text().replace("/opt/traceledger/.venv", prefix))
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "ignoring" not in result.stderr and "Unknown" not in result.stderr, \
        result.stderr


def test_documented_limits_and_ports_are_the_codes() -> None:
    assert f"more than **{HANDSHAKE_MAX_AGE_S} s** away" in README
    assert f"more than **{MAX_FUTURE_BLOCK_S} s** after" in README
    assert f"the RPC port + {ADMIN_PORT_OFFSET} = {8545 + ADMIN_PORT_OFFSET}" in README
    section = README.split("## Running a consortium", 1)[1].split("\n## ", 1)[0]
    for command in ("traceledger node init", "traceledger network genesis", "traceledger validators add"):
        assert command in section
    assert re.search(r"\| 30303/tcp \|.*\| 8545/tcp \|.*\| 8645/tcp \|", section, re.S)
