"""Deadlines of incidents and their escalation up the grid when they are missed.

The schedule lives in the database, not in memory: each incident gets its due times stamped
once (`ack_due_at`, `resolve_due_at`) and a `next_check_at`, so a restarted node, or another
node sharing PostgreSQL, picks up exactly where the last run stopped. Every escalation is a
conditional UPDATE on the flag it sets: whichever node runs the step first wins, the other
updates no row, and the step's audit entry and outbox message are written only by the winner
in the same transaction. The audit log sits above this layer, with authentication: the
composition root hands its writer in as `record_action`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gridwatch.alerts.delivery.outbox import enqueue
from gridwatch.alerts.incidents.grid import Grid
from gridwatch.alerts.incidents.lifecycle import Status
from gridwatch.alerts.store.incident_store import IncidentStore, incident_view, rows_changed
from gridwatch.alerts.store.tables import IncidentRow, utcnow
from gridwatch.alerts.store.views import Incident
from gridwatch.settings.deadlines import DeadlinesSettings

log = logging.getLogger(__name__)

Step = Literal["acknowledge", "resolve"]
# Statuses in which each deadline still runs: acknowledging is leaving `new`, resolving is
# reaching resolved or false_alarm (closed only follows those).
WAITING: dict[Step, frozenset[str]] = {
    "acknowledge": frozenset({Status.NEW.value}),
    "resolve": frozenset({Status.NEW.value, Status.ACKNOWLEDGED.value,
                          Status.DISPATCHED.value}),
}
SYSTEM_ACTOR = "system:escalation"
BATCH = 200


class RecordAction(Protocol):
    """Adds an entry for a system action to the transaction of `session` (the audit log)."""

    def __call__(self, session: Session, actor: str, action: str, *, target: str | None = None,
                 details: dict[str, Any] | None = None, at: datetime | None = None) -> object:
        ...


@dataclass(frozen=True, slots=True)
class Escalation:
    incident_id: str
    step: Step
    level: int
    escalated_to: str
    due_at: datetime


class Escalator:
    """One pass stamps new incidents' deadlines and escalates those whose deadline passed.

    Each escalation is written to the audit log through `record_action`, in its transaction.
    `clock` returns the current aware UTC time; tests pass their own to move time.
    """

    def __init__(self, store: IncidentStore, grid: Grid, deadlines: DeadlinesSettings, *,
                 record_action: RecordAction, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.grid = grid
        self.deadlines = deadlines
        self.record_action = record_action
        self.clock = clock

    def run_once(self) -> list[Escalation]:
        """Stamp, then escalate everything due; returns the escalations this call made."""
        now = self.clock()
        self._stamp(now)
        done: list[Escalation] = []
        while True:
            with self.store.reading() as session:
                due = session.execute(
                    select(IncidentRow.id).where(IncidentRow.next_check_at <= now)
                    .order_by(IncidentRow.next_check_at, IncidentRow.id).limit(BATCH)
                ).scalars().all()
            for incident_id in due:
                done.extend(self._check(incident_id, now))
            if len(due) < BATCH:
                return done

    def _stamp(self, now: datetime) -> None:
        """Give incidents that have none their due times, from their start and their kind."""
        while True:
            with self.store.reading() as session:
                rows = session.execute(
                    select(IncidentRow.id, IncidentRow.kind, IncidentRow.start_wall)
                    .where(IncidentRow.ack_due_at.is_(None),
                           IncidentRow.status.in_(sorted(WAITING["resolve"])))
                    .limit(BATCH)
                ).all()
            for incident_id, kind, start in rows:
                deadline = self.deadlines.for_kind(kind)
                ack_due = start + timedelta(seconds=deadline.acknowledge_s)
                resolve_due = start + timedelta(seconds=deadline.resolve_s)
                with self.store.writing() as session:
                    session.execute(
                        update(IncidentRow)
                        .where(IncidentRow.id == incident_id, IncidentRow.ack_due_at.is_(None))
                        .values(ack_due_at=ack_due, resolve_due_at=resolve_due,
                                next_check_at=ack_due)
                    )
            if len(rows) < BATCH:
                return

    def _check(self, incident_id: str, now: datetime) -> list[Escalation]:
        """Escalate each missed step of one incident, then set when to look again."""
        done: list[Escalation] = []
        for step in ("acknowledge", "resolve"):
            escalation = self._escalate(incident_id, step, now)
            if escalation is not None:
                done.append(escalation)
        with self.store.writing() as session:
            row = session.get(IncidentRow, incident_id)
            if row is not None:
                row_next = _next_check(row)
                session.execute(
                    update(IncidentRow).where(IncidentRow.id == incident_id)
                    .values(next_check_at=row_next)
                    .execution_options(synchronize_session=False)
                )
        return done

    def _escalate(self, incident_id: str, step: Step, now: datetime) -> Escalation | None:
        flag = IncidentRow.overdue_ack if step == "acknowledge" else IncidentRow.overdue_resolve
        due = IncidentRow.ack_due_at if step == "acknowledge" else IncidentRow.resolve_due_at
        incident: Incident | None = None
        with self.store.writing() as session:
            row = session.execute(
                select(IncidentRow.grid_cell, IncidentRow.escalation_level, due)
                .where(IncidentRow.id == incident_id)
            ).first()
            if row is None:
                return None
            cell, level, due_at = row
            target = self.grid.escalation_target(cell, level + 1)
            won = rows_changed(session.execute(
                update(IncidentRow)
                .where(
                    IncidentRow.id == incident_id,
                    flag.is_(False),
                    due <= now,
                    IncidentRow.status.in_(sorted(WAITING[step])),
                    IncidentRow.escalation_level == level,
                )
                .values({
                    flag: True,
                    IncidentRow.escalation_level: level + 1,
                    IncidentRow.escalated_to: target.id,
                    IncidentRow.version: IncidentRow.version + 1,
                    IncidentRow.updated_at: now,
                })
                .execution_options(synchronize_session=False)
            ))
            if won != 1:
                return None
            assert due_at is not None  # the UPDATE matched `due <= now`
            escalation = Escalation(incident_id, step, level + 1, target.id, due_at)
            stored = session.get(IncidentRow, incident_id, populate_existing=True)
            assert stored is not None
            incident = incident_view(session, stored)
            details = {"step": step, "level": level + 1, "escalated_to": target.id,
                       "escalated_to_level": target.level, "due_at": due_at.isoformat(),
                       "grid_cell": cell}
            enqueue(session, incident, "incident.escalated", escalation=details)
            self.record_action(session, SYSTEM_ACTOR, "incident.escalated",
                               target=incident_id, details=details, at=now)
        log.warning("incident %s missed its %s deadline (%s): escalated to %s %s",
                    incident_id, step, due_at.isoformat(), target.level, target.id)
        self.store.announce(incident)
        return escalation


def _next_check(row: IncidentRow) -> datetime | None:
    """The next due time still able to escalate, or None when none can any more."""
    pending = []
    if not row.overdue_ack and row.status in WAITING["acknowledge"] and row.ack_due_at:
        pending.append(row.ack_due_at)
    if not row.overdue_resolve and row.status in WAITING["resolve"] and row.resolve_due_at:
        pending.append(row.resolve_due_at)
    return min(pending) if pending else None


class EscalationJob:
    """Runs `Escalator.run_once` every `interval_s` on a daemon thread until stopped."""

    def __init__(self, escalator: Escalator, interval_s: float) -> None:
        self.escalator = escalator
        self.interval_s = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="escalation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.escalator.run_once()
            except Exception:
                log.exception("escalation pass failed; retrying in %.0f s", self.interval_s)
            self._stopping.wait(self.interval_s)
