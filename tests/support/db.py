"""Database fixtures: a real SQLite file per test, a real PostgreSQL database per session.

Store tests take `database_url` and run once on each backend. PostgreSQL tests are skipped,
with the reason, only when no server answers on 127.0.0.1:5432; every test gets an empty
schema, so migrations always start from nothing.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest

from gridwatch.alerts.store.incident_store import IncidentStore, open_store

PG_CONNINFO = "host=127.0.0.1 port=5432 user=postgres connect_timeout=3"


def _admin() -> psycopg.Connection:
    errors = []
    for dbname in ("postgres", "test"):
        try:
            return psycopg.connect(f"{PG_CONNINFO} dbname={dbname}", autocommit=True)
        except psycopg.OperationalError as exc:
            errors.append(f"{dbname}: {exc}".strip())
    pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432 ({'; '.join(errors)})")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of its own for this test session, dropped at the end."""
    name = f"gridwatch_test_{os.getpid()}_{secrets.token_hex(4)}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _empty_schema(url: str) -> None:
    dbname = url.rsplit("/", 1)[1]
    with psycopg.connect(f"{PG_CONNINFO} dbname={dbname}", autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty database: a SQLite file in tmp_path, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'incidents.db'}"
    url = request.getfixturevalue("postgres_database")
    _empty_schema(url)
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[IncidentStore]:
    store = open_store(database_url)
    try:
        yield store
    finally:
        store.close()
