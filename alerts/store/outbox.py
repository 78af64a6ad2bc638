"""Transactional outbox: announce an incident change in the transaction that makes it.

Sinks are reached later by a delivery loop reading these rows; because the row commits or
rolls back with the change itself, no accepted change is lost and none is announced that
did not happen.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.orm import Session

from gridwatch.alerts.store.tables import OutboxRow, utcnow
from gridwatch.alerts.store.views import Incident

Topic = Literal[
    "incident.opened", "incident.updated", "incident.reopened", "incident.ended",
    "incident.status", "incident.escalated",
]


def enqueue(session: Session, incident: Incident, topic: Topic, **extra: object) -> OutboxRow:
    """Add a message for `incident` as it is after this change (flush the change first).

    The key is the incident id with its row version: unique per change, and the same on every
    redelivery of that change, so a sink can drop duplicates.
    """
    now = utcnow()
    row = OutboxRow(
        incident_id=incident.id,
        topic=topic,
        payload={"topic": topic, "incident": incident.to_api(), **extra},
        idempotency_key=f"{incident.id}:v{incident.version}",
        created_at=now,
        next_attempt_at=now,
    )
    session.add(row)
    return row
