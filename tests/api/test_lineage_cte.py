"""The lineage walk in one recursive query (api/epcis/graph.py ``walk``) against the per-level walk it replaced.

The reference below is the old walk (one ``IN`` query per level), kept here as the oracle: on the generated
supply chain and on the benchmark's 50-record part both give the same levels and edges, upstream and
downstream, on SQLite and PostgreSQL. A cycle written into the edges ends at the depth limit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlmodel import Session, col, select

from api.bulk import in_chunks
from api.epcis.graph import Lineage, Node, lineage_detail, resolve_node, walk
from api.epcis.models import EpcisEvent, LineageEdge
from provenance.supply_chain import generate
from tests.api.conftest import auth, create_enterprise

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "epcis"


@pytest.fixture(autouse=True)
def _need_shared() -> None:
    if not (SHARED / "EPCIS-JSON-Schema.json").is_file():
        pytest.skip(f"shared EPCIS schema not found at {SHARED} (../shared/data beside the project)")


def walk_per_level(session: Session, root: Node, *, direction: str, depth: int) -> Lineage:
    """The replaced implementation: breadth-first, one query per level (the oracle)."""
    order = [root.key]
    level = {root.key: 0}
    edges: list[tuple[str, str, int]] = []
    seen_edges: set[tuple[str, str, int]] = set()
    frontier = [root.key]
    for d in range(1, depth + 1):
        if not frontier:
            break
        nxt: list[str] = []
        for chunk in in_chunks(frontier):
            near = col(LineageEdge.dst) if direction == "upstream" else col(LineageEdge.src)
            stmt = (select(LineageEdge.src, LineageEdge.dst, LineageEdge.event_pk)
                    .join(EpcisEvent, col(EpcisEvent.id) == LineageEdge.event_pk)
                    .where(near.in_(list(chunk)), col(EpcisEvent.retracted).is_(False)))
            for src, dst, pk in session.exec(stmt).all():
                if (src, dst, pk) not in seen_edges:
                    seen_edges.add((src, dst, pk))
                    edges.append((src, dst, pk))
                far = src if direction == "upstream" else dst
                if far not in level:
                    level[far] = d
                    order.append(far)
                    nxt.append(far)
        frontier = nxt
    return Lineage(root, direction, depth, order, level, edges)


def same_walk(a: Lineage, b: Lineage) -> None:
    assert a.level == b.level
    assert sorted(a.edges) == sorted(b.edges) and len(a.edges) == len(b.edges)
    # breadth-first: the same nodes level by level, levels non-decreasing along the order
    assert sorted(a.order, key=lambda k: (a.level[k], k)) == sorted(b.order, key=lambda k: (b.level[k], k))
    assert [a.level[k] for k in a.order] == sorted(a.level[k] for k in a.order)


def normalized(detail: dict[str, Any]) -> dict[str, Any]:
    return {**detail, "nodes": sorted(detail["nodes"], key=lambda n: n["key"]),
            "edges": sorted(detail["edges"], key=lambda e: (e["from"], e["to"], e["event"]["eventID"]))}


def load(client: TestClient, **shape: Any) -> Any:
    mill = create_enterprise(client, name="Mill", roles=["manufacturer"])
    chain = generate(mill_prefix=mill["prefix"], seed=5, **shape)
    r = client.post("/v1/coils/certificates/batch", json={"certificates": chain.certificates},
                    headers=auth(mill["api_key"]))
    assert r.status_code in (200, 201), r.text
    for _, doc in chain.documents:
        r = client.post("/v1/epcis/capture", json=doc, headers=auth(mill["api_key"]))
        assert r.status_code == 201, r.text
    return chain


def engine_of(client: TestClient) -> Any:
    return client.app.state.tl.engine  # type: ignore[attr-defined]


def test_fifty_record_part_same_as_per_level_walk_in_one_query(client: TestClient) -> None:
    chain = load(client, heats=1, lineage_fan_in=16)
    with Session(engine_of(client)) as s:
        part = resolve_node(s, chain.truth.deep_part)
        statements: list[str] = []
        mine = s.connection()

        def count_mine(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if conn is mine:  # the app's background threads (anchoring, cache polls, audit log) share the engine
                statements.append(statement)

        event.listen(engine_of(client), "before_cursor_execute", count_mine)
        try:
            new = walk(s, part, direction="upstream", depth=50)
        finally:
            event.remove(engine_of(client), "before_cursor_execute", count_mine)
        assert len(statements) == 1 and "RECURSIVE" in statements[0]
        old = walk_per_level(s, part, direction="upstream", depth=50)
        same_walk(new, old)
        assert max(new.level.values()) >= 4 and len(new.edges) >= 16
        statements.clear()
        event.listen(engine_of(client), "before_cursor_execute", count_mine)
        try:
            detail = lineage_detail(s, new)
        finally:
            event.remove(engine_of(client), "before_cursor_execute", count_mine)
        assert len(statements) == 3, statements  # objects + naming events, events + records, certificates
        assert normalized(detail) == normalized(lineage_detail(s, old))
    body = client.get("/v1/verify/" + chain.truth.deep_part.replace("/", "%2F"), params={"lineage": "upstream"})
    assert body.status_code == 200 and body.json()["records_checked"] >= 45


def test_every_node_both_directions_every_depth(client: TestClient) -> None:
    chain = load(client, heats=2, slabs_per_heat=1, slits_per_coil=2, blanks_per_slit=2, parts_per_assembly=2)
    with Session(engine_of(client)) as s:
        keys = sorted({e.src for e in s.exec(select(LineageEdge)).all()} |
                      {e.dst for e in s.exec(select(LineageEdge)).all()})
        assert len(keys) > 10
        for key in keys:
            node = Node(key, None)
            for direction in ("upstream", "downstream"):
                for depth in (1, 2, 50):
                    same_walk(walk(s, node, direction=direction, depth=depth),
                              walk_per_level(s, node, direction=direction, depth=depth))
    assert chain.truth.heats


def test_cycle_ends_at_depth_limit_and_retracted_edges_are_skipped(client: TestClient) -> None:
    load(client, heats=1, slabs_per_heat=1, slits_per_coil=1, blanks_per_slit=1, parts_per_assembly=1)
    with Session(engine_of(client)) as s:
        edges = s.exec(select(LineageEdge).order_by(col(LineageEdge.id))).all()
        first, last = edges[0], edges[-1]
        # a dishonest capture closes a loop: the heat is "made from" the last product
        s.add(LineageEdge(src=last.dst, dst=first.src, event_pk=last.event_pk))
        s.commit()
        root = Node(last.dst, None)
        for depth in (3, 10, 200):
            new = walk(s, root, direction="upstream", depth=depth)
            same_walk(new, walk_per_level(s, root, direction="upstream", depth=depth))
            assert max(new.level.values()) <= depth
        down = walk(s, Node(first.src, None), direction="downstream", depth=200)
        assert first.src in down.level and down.level[first.src] == 0  # the loop does not revisit the root
        # a retracted event's edges are not followed
        ev = s.get(EpcisEvent, first.event_pk)
        assert ev is not None
        ev.retracted = True
        s.add(ev)
        s.commit()
        after = walk(s, Node(first.dst, None), direction="upstream", depth=50)
        assert first.src not in after.level or all(pk != first.event_pk for _, _, pk in after.edges)
        same_walk(after, walk_per_level(s, Node(first.dst, None), direction="upstream", depth=50))


def test_unknown_direction_is_refused(client: TestClient) -> None:
    with Session(engine_of(client)) as s, pytest.raises(ValueError, match="direction"):
        walk(s, Node("urn:x", None), direction="sideways", depth=1)
