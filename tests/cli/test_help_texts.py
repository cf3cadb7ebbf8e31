"""Help texts a newcomer reads: rendered cleanly (no reST markup), listing their choices and flags."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from api.cli.main import app
from ledger.cli import FAULT_SCENARIOS
from ledger.faults import SCENARIOS

runner = CliRunner()


def _help(*args: str) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"}, terminal_width=200)
    assert result.exit_code == 0, result.output
    return re.sub(r"\s+", " ", result.output)


@pytest.mark.parametrize("command", [("demo",), ("faults",), ("network", "up"), ("contracts", "deploy"),
                                     ("verify",), ("node",)])
def test_no_raw_markup_in_help(command: tuple[str, ...]) -> None:
    text = _help(*command)
    assert "``" not in text and "scripts." not in text


def test_demo_lists_its_scenarios() -> None:
    assert "certificates|receivables|work-tickets|warehouse-receipts|all" in _help("demo")
    assert runner.invoke(app, ["demo", "--scenario", "bogus"]).exit_code == 2


def test_faults_lists_every_scenario_of_the_harness() -> None:
    assert set(FAULT_SCENARIOS) == set(SCENARIOS)
    text = _help("faults")
    for name in SCENARIOS:
        assert name in text


def test_network_up_and_deploy_say_what_they_take_and_do() -> None:
    text = _help("network", "up")
    for flag in ("--validators", "--data-dir", "--api-port", "--rpc-port", "--p2p-port", "--block-period"):
        assert flag in text
    assert "ReceivableToken and PriceIndex" in _help("contracts", "deploy")
