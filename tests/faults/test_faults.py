"""Fault injection on a real 4-validator network (+ an observer) under a steady transaction load.

One network per module (``ledger.faults.FaultNetwork``: separate OS processes, free ports, every
validator pair linked through a TCP proxy of the harness); the scenarios run in file order, each
ending with the check that every node has the same block hash and state root at every height.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.faults import SCENARIOS, FaultNetwork

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultNetwork]:
    network = FaultNetwork(tmp_path_factory.mktemp("faults"), validators=4, observers=1)
    try:
        network.start()
        yield network
    finally:
        network.close()


def test_unknown_key_is_refused(net: FaultNetwork) -> None:
    facts = SCENARIOS["unknown_peer"](net)
    assert facts["closed"] is True
    assert facts["plain_closed"] is True  # the old plain-TCP handshake is disconnected too
    assert facts["refused_counted"] >= 2


def test_one_validator_killed_finalization_continues_and_it_catches_up(net: FaultNetwork) -> None:
    facts = SCENARIOS["kill_one"](net)
    # finalization went on without it (3 blocks), and after the restart it has the same hashes/state roots
    assert facts["progress_while_down_s"] < 40
    assert facts["height"] > 0


def test_two_validators_stopped_nothing_finalized_then_resumes(net: FaultNetwork) -> None:
    facts = SCENARIOS["stop_two"](net)
    # stalled (checked inside: no height moved for 6 s), resumed within a few capped round timeouts (4 s)
    assert facts["resumed_after_s"] <= 5 * net.round_timeout_cap_s
    assert facts["height"] > facts["stalled_at"]


def test_wiped_validator_resyncs_and_proposes_again(net: FaultNetwork) -> None:
    facts = SCENARIOS["wipe"](net)
    # it fetched at least the chain it had lost from its peers, and caught up past it
    assert facts["blocks_synced"] >= facts["height_before_wipe"] > 0
    assert facts["synced_to"] >= facts["height_before_wipe"]
    assert facts["proposed_after_s"] < 60


def test_partition_two_two_finalizes_nothing_and_heals(net: FaultNetwork) -> None:
    facts = SCENARIOS["partition"](net)
    assert facts["height"] > facts["stalled_at"]


def test_silent_dead_links_are_dropped_redialled_and_the_validator_catches_up(net: FaultNetwork) -> None:
    facts = SCENARIOS["silent_link"](net)
    assert facts["blocks_behind"] >= 2  # the links really were dead: the validator fell behind
    assert facts["links_dropped"] >= 1  # ... the heartbeat noticed (link_dead), the links were redialled
    assert facts["height"] > 0  # ... and it caught up to one history (check_consistency)


def test_equivocating_validator_is_reported_and_changes_nothing(net: FaultNetwork) -> None:
    facts = SCENARIOS["equivocate"](net)
    assert all(v > 0 for v in facts["equivocations"].values()), facts["equivocations"]
    assert facts["nodes_logging_evidence"] == 3


def test_garbage_sending_validator_is_dropped_and_counted(net: FaultNetwork) -> None:
    facts = SCENARIOS["garbage"](net)
    for reasons in facts["dropped"].values():
        assert reasons.get("invalid message", 0) > 0
        assert reasons.get("not a validator", 0) > 0  # signed by an unknown key


def test_observer_syncs_and_serves_web3(net: FaultNetwork) -> None:
    facts = SCENARIOS["observer"](net)
    assert facts["tx_status"] == 1
    assert facts["seals"] >= 3
    assert facts["web3_block"] > 0


def test_validator_voted_in_seals_and_voted_out_stops_counting(net: FaultNetwork) -> None:
    facts = SCENARIOS["governance"](net)
    assert facts["added_at"] > 0 and facts["removed_at"] > facts["added_at"]
    assert facts["validators_now"] == 4
    assert facts["blocks_checked_after_removal"] >= 4
