"""Operator statuses of an incident and the only moves allowed between them.

The table is explicit so that the console, the API and the audit trail agree on what an
operator may do; detection never changes a status, it only updates times and evidence.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"
    FALSE_ALARM = "false_alarm"
    CLOSED = "closed"

    @classmethod
    def parse(cls, value: str, field: str = "status") -> Status:
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(s.value for s in cls)
            raise ValueError(f"{field}: {value!r} is not a status (one of {known})") from None


ALLOWED: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.ACKNOWLEDGED, Status.DISPATCHED, Status.FALSE_ALARM}),
    Status.ACKNOWLEDGED: frozenset({Status.DISPATCHED, Status.RESOLVED, Status.FALSE_ALARM}),
    Status.DISPATCHED: frozenset({Status.RESOLVED, Status.FALSE_ALARM}),
    # Back to acknowledged is the reopen path when an operator judged too early.
    Status.RESOLVED: frozenset({Status.CLOSED, Status.ACKNOWLEDGED}),
    Status.FALSE_ALARM: frozenset({Status.CLOSED, Status.ACKNOWLEDGED}),
    Status.CLOSED: frozenset(),
}


class InvalidTransition(ValueError):
    """A move the table does not allow; names both ends and what would have been allowed."""

    def __init__(self, incident_id: str, from_status: Status, to_status: Status) -> None:
        allowed = sorted(ALLOWED[from_status])
        targets = ", ".join(allowed) if allowed else "none, it is final"
        super().__init__(
            f"incident {incident_id}: cannot go from {from_status} to {to_status} "
            f"(allowed from {from_status}: {targets})"
        )
        self.incident_id = incident_id
        self.from_status = from_status
        self.to_status = to_status
        self.allowed = tuple(allowed)


def check_transition(incident_id: str, from_status: Status, to_status: Status) -> None:
    if to_status not in ALLOWED[from_status]:
        raise InvalidTransition(incident_id, from_status, to_status)
