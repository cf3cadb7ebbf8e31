"""What the demo shows: the recall list marks non-conformant items, refusals in words, a countdown while waiting."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from api.cli import demo
from api.cli.demo import recall_rows, refusal_text, wait_for_block_time

HEAT = {"key": "urn:epc:class:lgtin:4012345.012345.H1", "identifier": None, "level": 0, "label": "lot H1",
        "non_conformant": True}


def _down(root_flagged: bool, item_flagged: bool = False) -> dict:
    recall = [{"key": "k1", "identifier": "88.1.1/SLAB-1", "level": 1, "label": "slab 1", "non_conformant": False},
              {"key": "k2", "identifier": None, "level": 2, "label": "serial 7", "non_conformant": item_flagged}]
    return {"nodes": [{**HEAT, "non_conformant": root_flagged}, *recall], "recall": recall}


def test_recall_rows_mark_every_item_made_from_the_flagged_heat() -> None:
    rows = recall_rows(_down(root_flagged=True))
    assert rows[0] == ("0", "lot H1", HEAT["key"], "yes (flagged)")
    assert [r[3] for r in rows[1:]] == ["yes (from lot H1)", "yes (from lot H1)"]
    assert rows[2][2] == "k2"  # no identifier: the key


def test_recall_rows_of_a_good_heat_mark_only_flagged_items() -> None:
    rows = recall_rows(_down(root_flagged=False, item_flagged=True))
    assert [r[3] for r in rows] == ["", "", "yes (flagged)"]


def test_refusal_text_uses_the_contracts_words() -> None:
    r = httpx.Response(409, json={"detail": {"reason": "WrongStatus", "arguments": {},
                                             "message": "brief refused by the chain: ticket 7 is `issued`; `brief` "
                                                        "needs `permitted`"}})
    assert refusal_text(r) == "409 WrongStatus: ticket 7 is `issued`; `brief` needs `permitted`"
    assert refusal_text(httpx.Response(404, json={"detail": "not found"})) == "404"


def test_waiting_shows_a_countdown(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100, 100, 101, 102, 103, 104])
    monkeypatch.setattr(demo, "_block_time", lambda *_: next(clock))
    monkeypatch.setattr(demo.time, "sleep", lambda _: None)
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=100)
    assert wait_for_block_time(None, "rpc", 104, console, "maturity")  # type: ignore[arg-type]
    text = out.getvalue()
    assert "maturity" in text and "s to go" in text


def test_expectations_print_a_mark_and_count_the_failed() -> None:
    out = io.StringIO()
    expect = demo.Expectations(Console(file=out, width=100, color_system=None))
    expect(True, "receipt issued")
    expect(False, "pledge refused")
    expect(True, "valued")
    assert expect.failed == 1
    assert out.getvalue().splitlines() == ["✓ receipt issued", "✗ pledge refused", "✓ valued"]


def test_a_throwaway_stack_is_stopped_and_its_data_deleted_unless_kept(tmp_path: Path) -> None:
    from api.cli import main

    class _Stack:
        stopped = 0

        def stop(self) -> None:
            self.stopped += 1

    for keep in (True, False):
        data_dir = tmp_path / f"demo-{keep}"
        data_dir.mkdir()
        stack = _Stack()
        main._stop_throwaway_stack(stack, data_dir, keep=keep)  # noqa: SLF001
        assert stack.stopped == 1 and data_dir.exists() is keep
