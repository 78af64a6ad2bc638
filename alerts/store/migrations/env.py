"""Alembic environment of the incident database.

`open_store` hands over its own connection, already inside the transaction that holds the
migration lock, so the migration runs on exactly the engine (and SQLite pragmas) the service
uses. From the alembic command line, pass the database with `-x url=...`.

The chain covers the whole database. Tables of layers above the store (the accounts tables)
join `Base.metadata` from the modules `alembic.ini` names in `table_modules`, rather than by
an import here, so `--autogenerate` compares against every table without the store layer
depending on them.
"""

from __future__ import annotations

import importlib

from alembic import context
from sqlalchemy import Connection, MetaData

from gridwatch.alerts.store.tables import Base


def _target_metadata() -> MetaData:
    for module in (context.config.get_main_option("table_modules") or "").split():
        importlib.import_module(module)
    return Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=_target_metadata(),
        # SQLite alters tables by copying them; batch mode does that for later revisions.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_from_command_line() -> None:
    from gridwatch.alerts.store.incident_store import make_engine

    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the database: alembic -x url=sqlite:///path/to.db ...")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


handed_over = context.config.attributes.get("connection")
if handed_over is not None:
    _run(handed_over)
else:
    _run_from_command_line()
