"""Randomized schedules over the pure state machine (see :mod:`.random_schedules`): a bounded run in every
test run, a long one behind ``-m slow_random``, and the issue-19 bugs as named regression scenarios.

``pytest -m slow_random tests/consensus/test_random_schedules.py -s`` prints the summary table
(schedules run, behaviours tried, distribution of decision rounds after GST)."""

from __future__ import annotations

import os

import pytest

from .random_schedules import draw_schedule, named_scenarios, run_schedule, summarize

FAST_SEEDS = range(int(os.environ.get("QBFT_RANDOM_SEEDS", "12")))
SLOW_SEEDS = range(1000, 1000 + int(os.environ.get("QBFT_SLOW_RANDOM_SEEDS", "300")))


@pytest.mark.parametrize("name", sorted(named_scenarios()))
def test_named_regression_scenario(name: str) -> None:
    outcome = run_schedule(named_scenarios()[name])
    assert outcome.violations == [], outcome.violations
    if name == "poisoned_proposal":  # a poisoning relay no longer costs a single round
        assert outcome.rounds_after_gst and set(outcome.rounds_after_gst) == {0}
    if name == "rolling_restart":
        assert max(outcome.rounds_after_gst) <= 2


def test_bounded_random_schedules() -> None:
    """Short schedules (GST <= 30 s) in the normal run; any violation names its seed for replay."""
    outcomes = [run_schedule(draw_schedule(seed, gsts=(0.0, 5.0, 30.0))) for seed in FAST_SEEDS]
    print("\n" + summarize(outcomes))
    failed = {o.schedule.seed: o.violations for o in outcomes if o.violations}
    assert not failed, failed


@pytest.mark.slow_random
def test_long_random_schedules() -> None:
    outcomes = [run_schedule(draw_schedule(seed)) for seed in SLOW_SEEDS]
    print("\n" + summarize(outcomes))
    failed = {o.schedule.seed: o.violations for o in outcomes if o.violations}
    assert not failed, failed
