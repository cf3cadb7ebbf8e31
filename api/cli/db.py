"""``traceledger db current|upgrade``: the API database's schema revision (Alembic, see :mod:`api.migrations`).

The database is the one ``traceledger network up --data-dir DIR`` gives the API (``DIR/api/api.db``), or
``--database-url`` / ``DATABASE_URL`` (PostgreSQL or SQLite). The API upgrades its database itself at
start-up; these commands are for operators who want to see or run that step on its own (before a
rolling restart, or on a copy).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # SQLAlchemy and the API load only when a db command runs (the CLI starts fast)
    from sqlalchemy.engine import Engine

db_app = typer.Typer(help="Schema migrations of the API database (Alembic).", no_args_is_help=True)

DataDir = Annotated[Path, typer.Option(help="Data directory of `traceledger network up` (database DIR/api/api.db).")]
DatabaseUrl = Annotated[str | None, typer.Option(envvar="DATABASE_URL",
                                                 help="SQLAlchemy URL; overrides --data-dir (env DATABASE_URL).")]


def _engine(data_dir: Path, database_url: str | None) -> Engine:
    from api.db import make_engine
    from api.settings import Settings

    return make_engine(Settings(database_url=database_url, data_dir=(data_dir / "api").resolve()))


@db_app.command("current")
def current(data_dir: DataDir = Path("data"), database_url: DatabaseUrl = None) -> None:
    """Print the database's revision and the code's head revision; exit 1 when the database is behind."""
    from sqlalchemy.exc import OperationalError

    from api import migrations

    engine = _engine(data_dir, database_url)
    db_file = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if db_file and not Path(db_file).exists():
        typer.echo(f"no database at {db_file} (the API creates it at its first start)", err=True)
        raise typer.Exit(1)
    try:
        with engine.connect() as conn:
            state = migrations.schema_state(conn)
            revision = migrations.current_revision(conn)
    except OperationalError as exc:
        typer.echo(f"cannot read {engine.url.render_as_string()}: {exc.orig}", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    head = migrations.head_revision()
    typer.echo(f"database  {engine.url.render_as_string()}")
    typer.echo(f"state     {state}")
    typer.echo(f"revision  {revision or '-'}")
    typer.echo(f"head      {head}")
    raise typer.Exit(0 if revision == head else 1)


@db_app.command("upgrade")
def upgrade(data_dir: DataDir = Path("data"), database_url: DatabaseUrl = None,
            revision: Annotated[str, typer.Option(help="Target revision.")] = "head") -> None:
    """Upgrade the database to REVISION under the API's start-up lock (safe beside starting API workers)."""
    import psycopg
    from alembic.util import CommandError
    from sqlalchemy.exc import OperationalError

    from api import migrations
    from api.anchoring import serialized

    engine = _engine(data_dir, database_url)
    try:
        result = serialized(engine, migrations.upgrade, engine, revision)
    except CommandError as exc:
        typer.echo(f"upgrade refused: {exc}", err=True)
        raise typer.Exit(2) from exc
    except (OperationalError, psycopg.OperationalError) as exc:  # the start-up lock connects with psycopg directly
        typer.echo(f"cannot reach {engine.url.render_as_string()}: {getattr(exc, 'orig', exc)}", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    typer.echo(f"{engine.url.render_as_string()}: {result.state}, {result.before or '-'} -> {result.after}")
