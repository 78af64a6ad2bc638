"""The queries behind incident deadlines and escalation, so the escalator builds no SQL.

Each escalation is a conditional UPDATE on the flag it sets: whichever node runs the step
first wins, the other updates no row, and only the winner writes the outbox message and the
audit entry, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gridwatch.alerts.incidents.grid import GridNode
from gridwatch.alerts.store.incident_store import IncidentStore, incident_view, rows_changed
from gridwatch.alerts.store.outbox import enqueue
from gridwatch.alerts.store.tables import IncidentRow
from gridwatch.alerts.store.views import Incident

Step = Literal["acknowledge", "resolve"]


class RecordAction(Protocol):
    """Adds an entry for a system action to the transaction of `session` (the audit log)."""

    def __call__(self, session: Session, actor: str, action: str, *, target: str | None = None,
                 details: dict[str, Any] | None = None, at: datetime | None = None) -> object:
        ...


@dataclass(frozen=True, slots=True)
class Escalated:
    """An escalation this node won: the incident after it and what the audit log recorded."""

    incident: Incident
    target: GridNode
    level: int
    due_at: datetime
    details: dict[str, Any]


class DeadlineStore:
    """Due times, next checks and escalations of incidents in `store`'s database."""

    def __init__(self, store: IncidentStore, record_action: RecordAction) -> None:
        self.store = store
        self.record_action = record_action

    def due_for_check(self, now: datetime, limit: int) -> list[str]:
        """Ids of incidents whose next check is due, soonest first."""
        with self.store.reading() as session:
            return list(session.execute(
                select(IncidentRow.id).where(IncidentRow.next_check_at <= now)
                .order_by(IncidentRow.next_check_at, IncidentRow.id).limit(limit)
            ).scalars().all())

    def unstamped(self, statuses: Collection[str],
                  limit: int) -> list[tuple[str, str, datetime]]:
        """(id, kind, start) of incidents in `statuses` that have no due times yet."""
        with self.store.reading() as session:
            return [(incident_id, kind, start) for incident_id, kind, start in session.execute(
                select(IncidentRow.id, IncidentRow.kind, IncidentRow.start_wall)
                .where(IncidentRow.ack_due_at.is_(None), IncidentRow.status.in_(sorted(statuses)))
                .limit(limit)
            )]

    def stamp(self, incident_id: str, ack_due: datetime, resolve_due: datetime) -> None:
        """Set an incident's due times unless another node already did."""
        with self.store.writing() as session:
            session.execute(
                update(IncidentRow)
                .where(IncidentRow.id == incident_id, IncidentRow.ack_due_at.is_(None))
                .values(ack_due_at=ack_due, resolve_due_at=resolve_due, next_check_at=ack_due)
            )

    def reschedule(self, incident_id: str, waiting: dict[Step, frozenset[str]]) -> None:
        """Set the next check to the earliest due time still able to escalate (or none)."""
        with self.store.writing() as session:
            row = session.get(IncidentRow, incident_id)
            if row is not None:
                session.execute(
                    update(IncidentRow).where(IncidentRow.id == incident_id)
                    .values(next_check_at=_next_check(row, waiting))
                    .execution_options(synchronize_session=False)
                )

    def escalate(self, incident_id: str, step: Step, now: datetime, *,
                 waiting: frozenset[str], target_of: Callable[[str | None, int], GridNode],
                 actor: str) -> Escalated | None:
        """Escalate a missed step one level up, or None when it is not due or another won."""
        flag = IncidentRow.overdue_ack if step == "acknowledge" else IncidentRow.overdue_resolve
        due = IncidentRow.ack_due_at if step == "acknowledge" else IncidentRow.resolve_due_at
        with self.store.writing() as session:
            row = session.execute(
                select(IncidentRow.grid_cell, IncidentRow.escalation_level, due)
                .where(IncidentRow.id == incident_id)
            ).first()
            if row is None:
                return None
            cell, level, due_at = row
            target = target_of(cell, level + 1)
            won = rows_changed(session.execute(
                update(IncidentRow)
                .where(
                    IncidentRow.id == incident_id,
                    flag.is_(False),
                    due <= now,
                    IncidentRow.status.in_(sorted(waiting)),
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
            stored = session.get(IncidentRow, incident_id, populate_existing=True)
            assert stored is not None
            incident = incident_view(session, stored)
            details = {"step": step, "level": level + 1, "escalated_to": target.id,
                       "escalated_to_level": target.level, "due_at": due_at.isoformat(),
                       "grid_cell": cell}
            enqueue(session, incident, "incident.escalated", escalation=details)
            self.record_action(session, actor, "incident.escalated",
                               target=incident_id, details=details, at=now)
        return Escalated(incident, target, level + 1, due_at, details)


def _next_check(row: IncidentRow, waiting: dict[Step, frozenset[str]]) -> datetime | None:
    pending = []
    if not row.overdue_ack and row.status in waiting["acknowledge"] and row.ack_due_at:
        pending.append(row.ack_due_at)
    if not row.overdue_resolve and row.status in waiting["resolve"] and row.resolve_due_at:
        pending.append(row.resolve_due_at)
    return min(pending) if pending else None
