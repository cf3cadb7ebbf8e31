"""Schema migrations with Alembic, run programmatically (no ``alembic.ini`` needed at run time).

The revision scripts live beside this module (``env.py``, ``script.py.mako``, ``versions/``) and ship
in the wheel as package data. Revision ``0001`` (:data:`BASELINE`) is the schema of the last release
made by ``SQLModel.metadata.create_all`` (commit d71c67f).

:func:`upgrade` brings any database to :func:`head_revision` in one transaction of one connection
(PostgreSQL's DDL is transactional, so a failed upgrade leaves the schema as it was; SQLite commits DDL
as it goes, and its batch-mode revisions copy a table before swapping it in):

* **empty** — the revisions create every table;
* **pre-migration** (tables made by ``create_all`` of an earlier release, no ``alembic_version``) —
  adopted: the baseline revision creates only the tables that are absent (none, for a database of
  the last release), which records it at the baseline like ``alembic stamp``; then the later
  revisions run;
* **versioned** — the revisions after its ``alembic_version`` run.

Callers serialise it across processes (several uvicorn workers start at once): the API start-up runs
it under :func:`api.anchoring.lease.serialized` (PostgreSQL advisory lock / SQLite ``flock``).

A change to a table model needs a revision: ``alembic revision --autogenerate -m "..."`` from the
repository root (``alembic.ini``), then review it; ``tests/api/test_migrations.py`` fails while the
models and the head revision differ.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

SCRIPT_LOCATION = Path(__file__).resolve().parent
"""Directory holding ``env.py``, ``script.py.mako`` and ``versions/`` (inside the installed package)."""

BASELINE = "0001"
"""Revision id of the baseline: the schema made by ``create_all`` up to commit d71c67f."""

MODEL_MODULES = ("api.models", "api.epcis.models", "api.workflows.models", "api.capture_jobs", "api.audit",
                 "api.chain_index.models", "api.read_cache")
"""Modules whose ``SQLModel`` tables make up the schema (imported by :func:`target_metadata`)."""

VERSION_TABLE = "alembic_version"


def target_metadata() -> MetaData:
    """``SQLModel.metadata`` with every table of :data:`MODEL_MODULES` registered."""
    from sqlmodel import SQLModel

    for name in MODEL_MODULES:
        importlib.import_module(name)
    return SQLModel.metadata


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` for the packaged scripts; ``connection`` is what ``env.py`` migrates."""
    cfg = Config()
    # configparser interpolation: a literal % in the path must be doubled
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@cache
def head_revision() -> str:
    """The newest revision id of the packaged scripts (single head; raises if branches diverged). Cached."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration revisions under {SCRIPT_LOCATION / 'versions'}")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision recorded in ``alembic_version``, or None (empty or pre-migration database)."""
    return MigrationContext.configure(connection).get_current_revision()


def ensure_sqlite_directory(engine: Engine) -> None:
    """Create the directory of a SQLite database file (SQLite creates the file, not its directory)."""
    db = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and db not in (None, "", ":memory:") and not db.startswith("file:"):
        Path(db).parent.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class UpgradeResult:
    """What :func:`upgrade` found and left: ``state`` is ``empty``, ``pre-migration`` or ``versioned``."""

    state: str
    before: str | None
    after: str | None


def schema_state(connection: Connection) -> str:
    """``empty`` (no table of ours), ``pre-migration`` (tables but no ``alembic_version``) or ``versioned``."""
    tables = set(inspect(connection).get_table_names())
    if VERSION_TABLE in tables:
        return "versioned"
    return "pre-migration" if tables & set(target_metadata().tables) else "empty"


def upgrade(engine: Engine, revision: str = "head") -> UpgradeResult:
    """Upgrade the database of ``engine`` to ``revision`` in one transaction (see the module docstring).

    Raises ``alembic.util.CommandError`` for an unknown revision or a database recorded at a revision
    these scripts do not know (a newer release's database: downgrade with that release first).
    """
    ensure_sqlite_directory(engine)
    with engine.begin() as conn:
        state = schema_state(conn)
        before = current_revision(conn)
        if revision in ("head", head_revision()) and before == head_revision():
            return UpgradeResult(state=state, before=before, after=before)  # the usual restart: nothing to do
        cfg = alembic_config(conn)
        if state == "pre-migration":
            log.info("adopting a database made before migrations: recording it at baseline %s", BASELINE)
            command.upgrade(cfg, BASELINE)
        command.upgrade(cfg, revision)
        after = current_revision(conn)
    if before != after:
        log.info("database schema upgraded from %s to %s (%s)", before or state, after, engine.url.render_as_string())
    return UpgradeResult(state=state, before=before, after=after)
