"""Schema migrations (api/migrations): head equals the models; databases of the last release upgrade in place.

The previous release (commit d71c67f) made its tables with ``SQLModel.metadata.create_all``; its exact DDL
is frozen in ``tests/api/fixtures/schema_d71c67f.<dialect>.sql``. Each test runs on SQLite and on
PostgreSQL (a throwaway schema; skipped when 127.0.0.1:5432/test is unreachable).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from fastapi.testclient import TestClient
from sqlalchemy import Column, MetaData, String, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

import api.main
from api import migrations
from api.anchoring import serialized
from api.db import init_db, make_engine
from api.main import create_app
from api.models import Batch, Enterprise, Record
from provenance.canonical import canonicalize
from provenance.merkle import hash_leaf, root_from_leaf_hashes
from provenance.signing import recover_record_signer
from tests.api.conftest import auth, create_enterprise, make_settings, pg_schema, sample

FIXTURES = Path(__file__).parent / "fixtures"
CERTIFICATES = ("s355mc_coil_nw24-118734", "dd13_coil_nw24-119052")
AFTER_UPGRADE = "s235jr_coil_nw24-120377"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database: a fresh SQLite file or a fresh PostgreSQL schema (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{(tmp_path / 'api.db').as_posix()}"
        return
    with pg_schema("tl_migrations") as url:
        yield url


def diff_to_models(engine: Engine) -> list[Any]:
    """Alembic autogenerate's differences between the database and the models ([] when equal)."""
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                migrations.target_metadata())


def version_of(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return migrations.current_revision(conn)


def load_previous_release_schema(engine: Engine) -> None:
    """Create the tables exactly as the previous release's ``create_all`` did (frozen DDL)."""
    dialect = engine.url.get_backend_name()
    ddl = (FIXTURES / f"schema_d71c67f.{dialect}.sql").read_text(encoding="utf-8")
    if dialect == "sqlite":
        with sqlite3.connect(engine.url.database) as conn:
            conn.executescript(ddl)
        return
    sql = "\n".join(line for line in ddl.splitlines() if not line.startswith("--"))
    with engine.begin() as conn:
        for stmt in filter(None, (part.strip() for part in sql.split(";\n"))):
            conn.execute(text(stmt))


def test_head_equals_models(empty_db: str, tmp_path: Path) -> None:
    engine = make_engine(make_settings(empty_db, tmp_path))
    result = migrations.upgrade(engine)
    assert (result.state, result.before, result.after) == ("empty", None, migrations.head_revision())
    assert diff_to_models(engine) == []
    # idempotent: a second start-up changes nothing
    assert migrations.upgrade(engine).state == "versioned"
    assert version_of(engine) == migrations.head_revision()
    engine.dispose()


def test_every_table_model_of_the_app_is_known_to_the_migrations() -> None:
    """A table model in a module missing from ``MODEL_MODULES`` would be invisible to autogenerate."""
    # api.main is imported above: every model the app uses is registered
    owners = {m.class_.__tablename__: m.class_.__module__ for m in SQLModel._sa_registry.mappers}
    unlisted = {table: module for table, module in owners.items() if module not in migrations.MODEL_MODULES}
    assert unlisted == {}, f"add these modules to api.migrations.MODEL_MODULES, then write a revision: {unlisted}"
    assert set(owners) == set(migrations.target_metadata().tables)


def test_model_change_without_revision_is_detected(empty_db: str, tmp_path: Path) -> None:
    """The head-vs-models check has teeth: a column added to a model but to no revision is reported."""
    engine = make_engine(make_settings(empty_db, tmp_path))
    migrations.upgrade(engine)
    changed = MetaData()
    for table in migrations.target_metadata().sorted_tables:
        table.to_metadata(changed)
    changed.tables["records"].append_column(Column("grade", String(32), nullable=True))
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), changed)
    assert [(d[0], d[2], d[3].name) for d in diffs] == [("add_column", "records", "grade")]
    engine.dispose()


def test_previous_release_database_upgrades_and_every_record_still_verifies(
    empty_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(empty_db, tmp_path)
    engine = make_engine(settings)
    load_previous_release_schema(engine)
    with engine.connect() as conn:
        assert migrations.schema_state(conn) == "pre-migration"

    # 1. the previous release runs on it: its start-up was create_all (a no-op here), records arrive by POST
    with monkeypatch.context() as m:
        m.setattr(api.main, "init_db", lambda e: SQLModel.metadata.create_all(e))
        with TestClient(create_app(settings)) as old:
            mill = create_enterprise(old)
            idents = []
            for name in CERTIFICATES:  # no X-Record-Signature: the API signs with the mill's keystore key
                resp = old.post("/v1/coils/certificates", json=sample(name), headers=auth(mill["api_key"]))
                assert resp.status_code == 201, resp.text
                idents.append(resp.json()["identifier"])
    assert "alembic_version" not in inspect(engine).get_table_names()
    batch_locally(engine)
    before = dump(engine)

    # 2. this release starts on the same database: adopted at the baseline, upgraded to head
    with TestClient(create_app(settings)) as new:
        assert version_of(engine) == migrations.head_revision()
        assert dump(engine, before) == before  # not one row of the previous release's tables changed
        for ident in idents:
            body = new.get(f"/v1/verify/{ident}").json()
            checks = {c["name"]: c["ok"] for c in body["checks"]}
            assert checks["record_digest"] and checks["signature"] and checks["inclusion_proof"], body
        # still a working database: a record posted after the upgrade verifies too
        resp = new.post("/v1/coils/certificates", json=sample(AFTER_UPGRADE), headers=auth(mill["api_key"]))
        assert resp.status_code == 201, resp.text
        later = {c["name"]: c["ok"] for c in new.get(f"/v1/verify/{resp.json()['identifier']}").json()["checks"]}
        assert later == {"record_digest": True, "signature": True, "anchored": False}
    assert diff_to_models(engine) == []

    # 3. the same checks from the rows alone, without the API's verifier
    with Session(engine) as s:
        owner = s.exec(select(Enterprise).where(Enterprise.prefix == mill["prefix"])).one()
        for ident in idents:
            rec = s.exec(select(Record).where(Record.identifier == ident)).one()
            digest = bytes.fromhex(rec.record_digest[2:])
            assert hashlib.sha256(rec.document.encode()).digest() == digest
            assert recover_record_signer(bytes.fromhex(rec.signature[2:]), rec.identifier, rec.kind, digest,
                                         rec.chain_id) == owner.address
    engine.dispose()


def batch_locally(engine: Engine) -> None:
    """Put every record in one final Merkle batch, as the worker would without a chain (for inclusion proofs)."""
    with Session(engine) as s:
        recs = list(s.exec(select(Record).order_by(Record.id)).all())
        digests = [r.record_digest for r in recs]
        root = root_from_leaf_hashes([hash_leaf(bytes.fromhex(d[2:])) for d in digests])
        batch = Batch(root="0x" + root.hex(), size=len(recs), leaf_digests=digests, status="final",
                      tx_hash="0x" + "ab" * 32, block_number=7, block_hash="0x" + "cd" * 32)
        s.add(batch)
        s.flush()
        for i, r in enumerate(recs):
            r.batch_id, r.leaf_index, r.status = batch.id, i, "anchored"
            s.add(r)
        s.commit()


def dump(engine: Engine, names: Iterable[str] | None = None) -> dict[str, list[bytes]]:
    """Every row of the model tables ``names`` (default: those present), canonical JSON per row, by primary key."""
    out: dict[str, list[bytes]] = {}
    wanted = set(inspect(engine).get_table_names()) if names is None else set(names)
    with engine.connect() as conn:
        for table in migrations.target_metadata().sorted_tables:
            if table.name not in wanted:
                continue
            rows = conn.execute(table.select().order_by(*table.primary_key.columns)).mappings().all()
            out[table.name] = [canonicalize({k: str(v) for k, v in row.items()}) for row in rows]
    return out


def test_database_made_by_create_all_of_these_models_is_adopted(empty_db: str, tmp_path: Path) -> None:
    """A build between d71c67f and the migrations made later tables (epcis_capture_jobs) with create_all:
    every revision finds its tables there and only records itself."""
    engine = make_engine(make_settings(empty_db, tmp_path))
    migrations.target_metadata().create_all(engine)
    result = migrations.upgrade(engine)
    assert (result.state, result.before, result.after) == ("pre-migration", None, migrations.head_revision())
    assert diff_to_models(engine) == []
    engine.dispose()


def test_older_database_missing_tables_gets_them_at_adoption(empty_db: str, tmp_path: Path) -> None:
    """A database of a release before work tickets (no persons / work_ticket_documents) is filled in."""
    engine = make_engine(make_settings(empty_db, tmp_path))
    load_previous_release_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE work_ticket_documents"))
        conn.execute(text("DROP TABLE persons"))
    result = migrations.upgrade(engine)
    assert result.state == "pre-migration" and result.after == migrations.head_revision()
    assert {"persons", "work_ticket_documents"} <= set(inspect(engine).get_table_names())
    assert diff_to_models(engine) == []
    engine.dispose()


def test_database_of_a_newer_release_is_refused(empty_db: str, tmp_path: Path) -> None:
    """A database recorded at a revision this code does not know is not touched (downgrade first)."""
    engine = make_engine(make_settings(empty_db, tmp_path))
    migrations.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(CommandError, match="9999"):
        init_db(engine)
    assert version_of(engine) == "9999"
    engine.dispose()


def test_workers_starting_together_migrate_once(empty_db: str, tmp_path: Path) -> None:
    """Four start-ups at once (as uvicorn workers do), each under the start-up lock: all succeed, one schema."""
    engines = [make_engine(make_settings(empty_db, tmp_path)) for _ in range(4)]
    results: list[Any] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(len(engines))

    def start(engine: Engine) -> None:
        gate.wait()
        try:
            results.append(serialized(engine, migrations.upgrade, engine))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(r.state for r in results) == ["empty", "versioned", "versioned", "versioned"]
    assert diff_to_models(engines[0]) == []
    for e in engines:
        e.dispose()


def test_cli_db_current_and_upgrade(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from api.cli.main import app

    runner = CliRunner()
    args = ["--data-dir", str(tmp_path)]
    no_url = {"DATABASE_URL": None}  # the data dir, not an inherited DATABASE_URL
    missing = runner.invoke(app, ["db", "current", *args], env=no_url)
    assert missing.exit_code == 1 and "no database at" in missing.output
    up = runner.invoke(app, ["db", "upgrade", *args], env=no_url)
    assert up.exit_code == 0, up.output
    assert f"empty, - -> {migrations.head_revision()}" in up.output
    now = runner.invoke(app, ["db", "current", *args], env=no_url)
    assert now.exit_code == 0 and f"revision  {migrations.head_revision()}" in now.output
    bad = runner.invoke(app, ["db", "upgrade", *args, "--revision", "nonexistent"], env=no_url)
    assert bad.exit_code == 2 and "upgrade refused" in bad.output


def test_records_anchored_on_chain_before_the_upgrade_still_verify_on_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a chain (eth-tester, in process): batches anchored by the previous release keep their proofs."""
    eth_tester = pytest.importorskip("eth_tester")
    from web3 import EthereumTesterProvider, Web3

    from api.chain import ChainClient, deploy_contracts_with

    backend = eth_tester.PyEVMBackend()
    w3 = Web3(EthereumTesterProvider(eth_tester.EthereumTester(backend)))
    admin_key = str(backend.account_keys[0])
    addrs = deploy_contracts_with(ChainClient(w3), admin_key)
    chain = ChainClient(w3, enterprise_registry=addrs["EnterpriseRegistry"], anchor_registry=addrs["AnchorRegistry"])
    settings = make_settings(
        f"sqlite:///{(tmp_path / 'api.db').as_posix()}", tmp_path, chain_id=None, admin_private_key=admin_key,
        enterprise_registry_address=addrs["EnterpriseRegistry"], anchor_registry_address=addrs["AnchorRegistry"],
        fund_wei=10**18,
    )
    engine = make_engine(settings)
    load_previous_release_schema(engine)
    with monkeypatch.context() as m:
        m.setattr(api.main, "init_db", lambda e: SQLModel.metadata.create_all(e))
        with TestClient(create_app(settings, chain=chain)) as old:
            mill = create_enterprise(old)
            idents = []
            for name in CERTIFICATES:
                resp = old.post("/v1/coils/certificates", json=sample(name), headers=auth(mill["api_key"]))
                assert resp.status_code == 201, resp.text
                idents.append(resp.json()["identifier"])
            assert len(old.app.state.tl.worker.run_once()) == 1  # type: ignore[attr-defined]
    assert "alembic_version" not in inspect(engine).get_table_names()
    before = dump(engine)

    with TestClient(create_app(settings, chain=chain)) as new:
        assert version_of(engine) == migrations.head_revision() and dump(engine, before) == before
        for ident in idents:
            checks = {c["name"]: c for c in new.get(f"/v1/verify/{ident}").json()["checks"]}
            for name in ("record_digest", "signature", "inclusion_proof", "anchored_on_chain"):
                assert checks[name]["ok"], checks[name]
            assert checks["finality_seals"]["ok"] is False  # eth-tester blocks carry no QBFT commit seals
    engine.dispose()


def triggers_of(engine: Engine) -> set[str]:
    """Names of the user triggers on the database's tables (SQLite) / the current schema's tables (PostgreSQL)."""
    with engine.connect() as conn:
        if engine.url.get_backend_name() == "sqlite":
            return set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
        return set(conn.execute(text(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal "
            "AND n.nspname = current_schema()")).scalars())


def test_read_invalidation_triggers_upgrade_downgrade_upgrade(empty_db: str, tmp_path: Path) -> None:
    """Revision 0006 adds the triggers that record hand-made changes of cached rows in ``read_invalidations``;
    its downgrade removes them (and their PostgreSQL functions), and upgrading again restores them."""
    from alembic import command

    engine = make_engine(make_settings(empty_db, tmp_path))
    migrations.upgrade(engine)
    postgres = engine.url.get_backend_name() == "postgresql"
    expected = ({"tl_read_invalidation_records", "tl_read_invalidation_batches", "tl_read_invalidation_enterprises",
                 "tl_read_invalidation_truncate"} if postgres else
                {f"tl_read_invalidation_{t}_{op}" for t in ("records", "batches", "enterprises")
                 for op in ("update", "delete")})
    assert triggers_of(engine) == expected
    with engine.begin() as conn:
        command.downgrade(migrations.alembic_config(conn), "0005")
    assert triggers_of(engine) == set() and version_of(engine) == "0005"
    if postgres:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM pg_proc WHERE proname LIKE 'tl_read_invalidation%' "
                                     "AND pronamespace = current_schema()::regnamespace")).scalar_one() == 0
    assert migrations.upgrade(engine).after == migrations.head_revision()
    assert triggers_of(engine) == expected and diff_to_models(engine) == []
    engine.dispose()
