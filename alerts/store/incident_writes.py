"""The row lookups and saves the incident manager runs inside one write transaction.

The manager folds events and clips into rows it has locked; the SQL that finds and locks
them, and the errors that mean "another writer got there first, try again", live here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gridwatch.alerts.store.incident_store import ConcurrentUpdate
from gridwatch.alerts.store.tables import IncidentRow

# Two nodes opening the same key at once: the loser hits the open-incident unique index (or
# a changed version); a retry finds the winner's incident.
WRITE_CONFLICTS: tuple[type[Exception], ...] = (IntegrityError, ConcurrentUpdate)

FindRow = Callable[[Session], IncidentRow | None]
"""Finds and locks one incident row inside a write transaction (None: there is none)."""


def locked_incident(incident_id: str) -> FindRow:
    """The incident with this id."""
    return lambda session: session.get(IncidentRow, incident_id, with_for_update=True)


def locked_started_by(key: str, started_by: datetime) -> FindRow:
    """The latest incident of dedup key `key` that had started by `started_by`."""
    return lambda session: session.scalars(
        select(IncidentRow)
        .where(IncidentRow.dedup_key == key, IncidentRow.start_wall <= started_by)
        .order_by(IncidentRow.start_wall.desc()).limit(1).with_for_update()
    ).first()


def locked_latest(key: str) -> FindRow:
    """The incident of dedup key `key` an event folds into: the open one, else the last ended."""
    return lambda session: session.scalars(
        select(IncidentRow)
        .where(IncidentRow.dedup_key == key)
        .order_by(IncidentRow.end_wall.is_(None).desc(), IncidentRow.end_wall.desc())
        .limit(1)
        .with_for_update()
    ).first()


def save(session: Session, row: IncidentRow) -> None:
    """Write `row` now (new or changed), so later statements in the transaction see it."""
    session.add(row)
    session.flush()
