"""The durable incident queue: engine setup, migrations, status changes and queries.

`open_store` is the only way in, so every process (one node on SQLite, many on PostgreSQL)
migrates to the same schema before touching a row. Writes go through `writing()`, which
serialises writers on SQLite and turns a lost optimistic update into `ConcurrentUpdate`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import tenacity
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Result,
    ScalarSelect,
    Select,
    create_engine,
    event,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.pool import StaticPool

from gridwatch.alerts.incidents.lifecycle import Status, check_transition
from gridwatch.alerts.store.outbox import enqueue
from gridwatch.alerts.store.tables import IncidentRow, TransitionRow, utcnow
from gridwatch.alerts.store.views import Incident, Transition
from gridwatch.common.redact import redact

log = logging.getLogger(__name__)

# The session an `on_change` hook of `IncidentStore.transition` writes in, named here so that
# callers on the web side need not import SQLAlchemy for it.
WriteSession = Session

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_MS = 10_000
# Key of the PostgreSQL advisory lock that serialises migrations of nodes starting together.
MIGRATION_LOCK_KEY = 0x67726964_77617463  # "gridwatc"
# Execution option that makes a SQLite transaction take the write lock at BEGIN (see _sqlite).
_WRITE = "gridwatch_write"
MAX_LIMIT = 1000


class IncidentNotFound(LookupError):
    def __init__(self, incident_id: str) -> None:
        super().__init__(f"incident {incident_id!r} does not exist")
        self.incident_id = incident_id


class ConcurrentUpdate(RuntimeError):
    """Someone else changed the incident since it was read; read it again and retry."""


@dataclass(frozen=True, slots=True)
class IncidentPage:
    """One page of a listing; pass `next_cursor` back to get the next (None: last page)."""

    items: tuple[Incident, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class StartedIncident:
    """When an incident started, in which cell, and its (from, to, at) moves in order."""

    start_wall: datetime
    grid_cell: str | None
    moves: tuple[tuple[str, str, datetime], ...]


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE run through a session matched.

    The session types every result as a plain `Result`, but a DML statement's is the
    `CursorResult` that counts them.
    """
    assert isinstance(result, CursorResult)
    return result.rowcount


def ensure_sqlite_dir(url: str) -> None:
    """Create the folder of a SQLite database file, so a first start needs no setup."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str) -> Engine:
    """An engine for a SQLite or PostgreSQL URL (`postgresql://` is taken as psycopg 3)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(
            "database url: not a valid URL (e.g. sqlite:///var/gridwatch.db)"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite(parsed)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        elif parsed.get_driver_name() != "psycopg":
            raise ValueError(
                f"database url {redact(url)}: driver {parsed.get_driver_name()!r} is not "
                "supported, use postgresql+psycopg://"
            )
        return create_engine(parsed, pool_pre_ping=True)
    raise ValueError(f"database url {redact(url)}: only sqlite and postgresql are supported")


def _sqlite(url: URL) -> Engine:
    """SQLite tuned for one writer and many readers across threads and processes.

    WAL lets readers run during a write; `busy_timeout` makes a second writer wait instead of
    failing. pysqlite's own transaction handling is switched off so that SQLAlchemy emits
    BEGIN itself: write transactions use BEGIN IMMEDIATE, taking the lock before they read,
    because a read-then-write transaction that loses the race in WAL mode fails at once
    instead of waiting.
    """
    database = url.database or ":memory:"
    memory = database == ":memory:"
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if memory:
        options["poolclass"] = StaticPool
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if not memory:
            _use_wal(cursor)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


@tenacity.retry(
    retry=tenacity.retry_if_exception(
        lambda exc: isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)),
    wait=tenacity.wait_random_exponential(multiplier=0.01, max=0.5),
    stop=tenacity.stop_after_delay(BUSY_TIMEOUT_MS / 1000), reraise=True)
def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the database file to WAL (it stays so), waiting for the lock that takes.

    The switch needs an exclusive lock, and SQLite answers "database is locked" at once
    instead of waiting through busy_timeout when another connection holds the file, as when
    nodes start together on a new database: they retry until the first one is done.
    """
    mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
    if str(mode).lower() != "wal":
        cursor.execute("PRAGMA journal_mode = WAL")


def migrate(engine: Engine) -> str:
    """Bring the schema to the newest revision; returns it. Safe to run on every start.

    On PostgreSQL a transaction-scoped advisory lock makes nodes starting together migrate
    one after the other (the later ones find the schema at head); on SQLite the immediate
    write transaction does the same, and DDL is transactional on both.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.execution_options(**{_WRITE: True}).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY},
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        revision = MigrationContext.configure(connection).get_current_revision()
    log.info("incident database %s at revision %s",
             engine.url.render_as_string(hide_password=True), revision)
    return revision or ""


def open_store(url: str) -> IncidentStore:
    """Connect, migrate to head and return the store for `url`."""
    engine = make_engine(url)
    try:
        migrate(engine)
    except Exception:
        engine.dispose()
        raise
    return IncidentStore(engine)


def _transition_count() -> ScalarSelect[int]:
    return (
        select(func.count(TransitionRow.id))
        .where(TransitionRow.incident_id == IncidentRow.id)
        .correlate(IncidentRow)
        .scalar_subquery()
    )


def incident_view(session: Session, row: IncidentRow) -> Incident:
    """The view of a row as flushed in `session` (the caller flushes first)."""
    count = session.scalar(
        select(func.count(TransitionRow.id)).where(TransitionRow.incident_id == row.id)
    )
    return Incident.from_row(row, count or 0)


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{field}: {value.isoformat()} has no timezone; pass an aware time")
    return value


def _statuses(status: str | Iterable[str] | None) -> list[Status] | None:
    if status is None:
        return None
    values = [status] if isinstance(status, str) else list(status)
    return [Status.parse(v, "status") for v in values]


def _encode_cursor(incident: Incident) -> str:
    raw = json.dumps([incident.start_wall.isoformat(), incident.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        wall, incident_id = json.loads(raw)
        return datetime.fromisoformat(wall), str(incident_id)
    except (binascii.Error, ValueError, TypeError):
        raise ValueError("cursor: not a cursor returned by a previous page") from None


class IncidentStore:
    """Incidents in one database: transactions, status changes, queries, subscribers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reads = sessionmaker(engine, expire_on_commit=False)
        self._writes = sessionmaker(
            engine.execution_options(**{_WRITE: True}), expire_on_commit=False,
        )
        self._subscribers: tuple[Callable[[Incident], None], ...] = ()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"IncidentStore({self.engine.url.render_as_string(hide_password=True)})"

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._reads() as session, session.begin():
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction, committed when the block ends, rolled back on error."""
        try:
            with self._writes() as session, session.begin():
                yield session
        except StaleDataError as exc:
            raise ConcurrentUpdate(f"incident changed concurrently: {exc}") from exc

    def subscribe(self, callback: Callable[[Incident], None]) -> Callable[[], None]:
        """Call `callback` with every committed incident change; returns an unsubscribe."""
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not callback)

        return unsubscribe

    def announce(self, incident: Incident) -> None:
        """Tell subscribers about a committed change; one failing never stops the others."""
        for callback in self._subscribers:
            try:
                callback(incident)
            except Exception:
                log.exception("incident subscriber %r failed on incident %s", callback, incident.id)

    def transition(
        self,
        incident_id: str,
        to_status: str,
        actor: str,
        note: str | None = None,
        expected_version: int | None = None,
        on_change: Callable[[WriteSession, Incident, Transition], None] | None = None,
    ) -> Incident:
        """Move an incident to another operator status and record who, when and why.

        `expected_version` is the version the operator saw; if the incident changed since,
        `ConcurrentUpdate` is raised instead of acting on stale information. `on_change`
        runs inside the transaction with the changed incident and the transition just made (the
        API writes its audit entry there, so both commit or neither does).
        """
        target = Status.parse(to_status, "to_status")
        if not actor or not actor.strip():
            raise ValueError("actor: who makes the change is required")
        with self.writing() as session:
            row = session.get(IncidentRow, incident_id, with_for_update=True)
            if row is None:
                raise IncidentNotFound(incident_id)
            if expected_version is not None and row.version != expected_version:
                raise ConcurrentUpdate(
                    f"incident {incident_id} is at version {row.version}, not "
                    f"{expected_version}: it changed since it was read"
                )
            current = Status(row.status)
            check_transition(incident_id, current, target)
            now = utcnow()
            record = TransitionRow(
                incident_id=row.id, from_status=current.value, to_status=target.value,
                actor=actor.strip(), note=note, at=now,
            )
            session.add(record)
            row.status = target.value
            row.updated_at = now
            row.version += 1
            # Due the escalation job's look from the earliest deadline on: it re-derives which
            # deadline still runs (a reopen brings the resolution deadline back).
            row.next_check_at = row.ack_due_at
            session.flush()
            incident = incident_view(session, row)
            enqueue(
                session, incident, "incident.status",
                transition=Transition.from_row(record).to_api(),
            )
            if on_change is not None:
                on_change(session, incident, Transition.from_row(record))
        log.info("incident %s: %s -> %s by %s", incident_id, current, target, record.actor)
        self.announce(incident)
        return incident

    def get_incident(self, incident_id: str) -> Incident:
        """The incident with its full status history, oldest change first."""
        with self.reading() as session:
            row = session.get(IncidentRow, incident_id)
            if row is None:
                raise IncidentNotFound(incident_id)
            records = session.scalars(
                select(TransitionRow)
                .where(TransitionRow.incident_id == incident_id)
                .order_by(TransitionRow.at, TransitionRow.id)
            ).all()
            history = tuple(Transition.from_row(r) for r in records)
            return Incident.from_row(row, len(history), history)

    def list_incidents(
        self,
        *,
        camera: str | None = None,
        kind: str | None = None,
        status: str | Iterable[str] | None = None,
        zone: str | None = None,
        grid_cells: set[str] | None = None,
        overdue: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        cursor: str | None = None,
    ) -> IncidentPage:
        """Incidents newest first (by wall start time).

        `since`/`until` bound the start time (since <= start < until). `grid_cells` scopes the
        list to those cells: an empty set matches nothing, and incidents of cameras without a
        cell are outside every scope. `status` takes one status or several. `overdue` keeps
        incidents that missed a deadline (True) or missed none (False).
        """
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit: {limit} is outside 1-{MAX_LIMIT}")
        if offset < 0:
            raise ValueError(f"offset: {offset} is negative")
        query = select(IncidentRow, _transition_count())
        query = self._filtered(query, camera=camera, kind=kind, zone=zone, grid_cells=grid_cells)
        statuses = _statuses(status)
        if statuses is not None:
            query = query.where(IncidentRow.status.in_([s.value for s in statuses]))
        if overdue is not None:
            missed = or_(IncidentRow.overdue_ack, IncidentRow.overdue_resolve)
            query = query.where(missed if overdue else ~missed)
        if _aware(since, "since") is not None:
            query = query.where(IncidentRow.start_wall >= since)
        if _aware(until, "until") is not None:
            query = query.where(IncidentRow.start_wall < until)
        if cursor is not None:
            wall, last_id = _decode_cursor(cursor)
            query = query.where(or_(
                IncidentRow.start_wall < wall,
                (IncidentRow.start_wall == wall) & (IncidentRow.id < last_id),
            ))
        query = (
            query.order_by(IncidentRow.start_wall.desc(), IncidentRow.id.desc())
            .offset(offset).limit(limit + 1)
        )
        with self.reading() as session:
            rows = session.execute(query).all()
        items = tuple(Incident.from_row(row, count) for row, count in rows[:limit])
        more = len(rows) > limit
        return IncidentPage(items, _encode_cursor(items[-1]) if more else None)

    def counts_by_status(self, *, grid_cells: set[str] | None = None) -> dict[str, int]:
        """How many incidents are in each status (every status listed, zero included)."""
        query = select(IncidentRow.status, func.count()).group_by(IncidentRow.status)
        query = self._filtered(query, grid_cells=grid_cells)
        with self.reading() as session:
            found = {status: count for status, count in session.execute(query)}
        return {s.value: found.get(s.value, 0) for s in Status}

    def counts_by_kind_and_status(self) -> dict[tuple[str, str], int]:
        """How many incidents there are of each (kind, status) that has any (the metrics)."""
        query = (select(IncidentRow.kind, IncidentRow.status, func.count())
                 .group_by(IncidentRow.kind, IncidentRow.status))
        with self.reading() as session:
            return {(kind, status): count for kind, status, count in session.execute(query)}

    def histories_started_between(
        self, start: datetime, end: datetime, *, grid_cells: frozenset[str] | None = None,
    ) -> list[StartedIncident]:
        """The incidents that started in [start, end), each with its moves made before `end`.

        The report cohort: what an incident's history said at the period's end, so a later
        move never changes a closed period's figures.
        """
        started = (IncidentRow.start_wall >= start) & (IncidentRow.start_wall < end)
        if grid_cells is not None:
            started &= IncidentRow.grid_cell.in_(sorted(grid_cells))
        with self.reading() as session:
            incidents = session.execute(
                select(IncidentRow.id, IncidentRow.start_wall, IncidentRow.grid_cell)
                .where(started)
            ).all()
            moves = session.execute(
                select(TransitionRow.incident_id, TransitionRow.from_status,
                       TransitionRow.to_status, TransitionRow.at)
                .join(IncidentRow, IncidentRow.id == TransitionRow.incident_id)
                .where(started, TransitionRow.at < end)
                .order_by(TransitionRow.incident_id, TransitionRow.at, TransitionRow.id)
            ).all()
        history: dict[str, list[tuple[str, str, datetime]]] = {}
        for incident_id, from_status, to_status, at in moves:
            history.setdefault(incident_id, []).append((from_status, to_status, at))
        return [StartedIncident(start_wall, cell, tuple(history.get(incident_id, ())))
                for incident_id, start_wall, cell in incidents]

    @staticmethod
    def _filtered(
        query: Select,
        *,
        camera: str | None = None,
        kind: str | None = None,
        zone: str | None = None,
        grid_cells: set[str] | None = None,
    ) -> Select:
        if camera is not None:
            query = query.where(IncidentRow.camera == camera)
        if kind is not None:
            query = query.where(IncidentRow.kind == kind)
        if zone is not None:
            query = query.where(IncidentRow.zone == zone)
        if grid_cells is not None:
            query = query.where(IncidentRow.grid_cell.in_(sorted(grid_cells)))
        return query
