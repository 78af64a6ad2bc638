"""Immutable views of stored incidents: what callers, subscribers and sinks get.

Rows stay inside their session; views are frozen copies, so a subscriber or an API handler
can keep one after the transaction without seeing it change or touching the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from gridwatch.alerts.incidents.lifecycle import Status
from gridwatch.alerts.store.tables import IncidentRow, TransitionRow


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded status change."""

    from_status: Status
    to_status: Status
    actor: str
    note: str | None
    at: datetime

    @classmethod
    def from_row(cls, row: TransitionRow) -> Transition:
        return cls(Status(row.from_status), Status(row.to_status), row.actor, row.note, row.at)

    def to_api(self) -> dict:
        return {
            "from": self.from_status.value,
            "to": self.to_status.value,
            "actor": self.actor,
            "note": self.note,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident as committed.

    `start`/`end` are media seconds (the analysed stream's clock, what the analyze CLI
    prints); `start_wall`/`end_wall` are aware UTC datetimes for the API and console.
    `end` is None while the condition lasts. `snapshot` and `clip` are paths relative to the
    evidence directory. `transitions` counts status changes; `history` lists them only when
    the incident was read with `IncidentStore.get_incident`. The deadline fields are
    stamped by the escalation job (`gridwatch.alerts.incidents.escalation`); None until it has seen
    the incident.
    """

    id: str
    kind: str
    camera: str
    zone: str
    zone_name: str | None
    grid_cell: str | None
    severity: str
    status: Status
    start: float
    end: float | None
    start_wall: datetime
    end_wall: datetime | None
    objects: Mapping[str, int]
    snapshot: str | None
    clip: str | None
    evidence_score: float | None
    version: int
    transitions: int
    created_at: datetime
    updated_at: datetime
    history: tuple[Transition, ...] = ()
    ack_due_at: datetime | None = None
    resolve_due_at: datetime | None = None
    overdue_ack: bool = False
    overdue_resolve: bool = False
    escalation_level: int = 0
    escalated_to: str | None = None

    @property
    def overdue(self) -> bool:
        return self.overdue_ack or self.overdue_resolve

    @classmethod
    def from_row(
        cls, row: IncidentRow, transitions: int, history: tuple[Transition, ...] = (),
    ) -> Incident:
        return cls(
            id=row.id,
            kind=row.kind,
            camera=row.camera,
            zone=row.zone,
            zone_name=row.zone_name,
            grid_cell=row.grid_cell,
            severity=row.severity,
            status=Status(row.status),
            start=row.start_t,
            end=row.end_t,
            start_wall=row.start_wall,
            end_wall=row.end_wall,
            objects=MappingProxyType(dict(row.objects)),
            snapshot=row.snapshot,
            clip=row.clip,
            evidence_score=row.evidence_score,
            version=row.version,
            transitions=transitions,
            created_at=row.created_at,
            updated_at=row.updated_at,
            history=history,
            ack_due_at=row.ack_due_at,
            resolve_due_at=row.resolve_due_at,
            overdue_ack=bool(row.overdue_ack),
            overdue_resolve=bool(row.overdue_resolve),
            escalation_level=row.escalation_level or 0,
            escalated_to=row.escalated_to,
        )

    def to_json(self) -> dict:
        """The analyze CLI's JSON line: media times, nothing that depends on the database."""
        return {
            "type": "incident",
            "id": self.id,
            "kind": self.kind,
            "camera": self.camera,
            "zone": self.zone,
            "start": round(self.start, 3),
            "end": None if self.end is None else round(self.end, 3),
            "severity": self.severity,
            "objects": dict(self.objects),
        }

    def to_api(self) -> dict:
        """Everything the API, the console and the sinks show, JSON-ready."""
        return {
            **self.to_json(),
            "zone_name": self.zone_name,
            "grid_cell": self.grid_cell,
            "status": self.status.value,
            "start_wall": self.start_wall.isoformat(),
            "end_wall": None if self.end_wall is None else self.end_wall.isoformat(),
            "snapshot": self.snapshot,
            "clip": self.clip,
            "evidence_score": self.evidence_score,
            "version": self.version,
            "transitions": self.transitions,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "ack_due_at": _iso(self.ack_due_at),
            "resolve_due_at": _iso(self.resolve_due_at),
            "overdue": self.overdue,
            "overdue_ack": self.overdue_ack,
            "overdue_resolve": self.overdue_resolve,
            "escalation_level": self.escalation_level,
            "escalated_to": self.escalated_to,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
