"""The audit log: every operator and system action, who, when, what, on what and from where.

Entries are written in the transaction of the action they describe (a transition and its
entry commit together or not at all). Failed logins are entries as well, which is what the
login rate limit counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gridwatch.accounts.tables import AuditRow
from gridwatch.alerts.store.tables import utcnow

LOGIN_FAILED = "login.failed"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    ip: str | None
    details: dict[str, Any]

    @classmethod
    def from_row(cls, row: AuditRow) -> AuditEntry:
        return cls(row.id, row.at, row.actor, row.action, row.target, row.ip, dict(row.details))

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(), "actor": self.actor,
                "action": self.action, "target": self.target, "ip": self.ip,
                "details": self.details}


def record(
    session: Session,
    actor: str,
    action: str,
    *,
    target: str | None = None,
    ip: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditRow:
    """Add an entry to the caller's transaction."""
    row = AuditRow(at=at or utcnow(), actor=actor[:128], action=action,
                   target=None if target is None else target[:128],
                   ip=None if ip is None else ip[:64], details=details or {})
    session.add(row)
    return row


class AuditFilters(TypedDict, total=False):
    """What a listing of the audit log may be narrowed by (None: not narrowed);
    `before_id` continues a listing after its last entry."""

    actor: str | None
    actions: Iterable[str] | None
    target: str | None
    since: datetime | None
    until: datetime | None
    before_id: int | None
    limit: int


def entries(session: Session, **filters: Unpack[AuditFilters]) -> list[AuditEntry]:
    """Entries newest first, at most `limit` (100 unless given)."""
    query = select(AuditRow)
    if (actor := filters.get("actor")) is not None:
        query = query.where(AuditRow.actor == actor)
    if (actions := filters.get("actions")) is not None:
        query = query.where(AuditRow.action.in_(sorted(actions)))
    if (target := filters.get("target")) is not None:
        query = query.where(AuditRow.target == target)
    if (since := filters.get("since")) is not None:
        query = query.where(AuditRow.at >= since)
    if (until := filters.get("until")) is not None:
        query = query.where(AuditRow.at < until)
    if (before_id := filters.get("before_id")) is not None:
        query = query.where(AuditRow.id < before_id)
    limit = filters.get("limit", 100)
    rows = session.scalars(query.order_by(AuditRow.id.desc()).limit(limit)).all()
    return [AuditEntry.from_row(r) for r in rows]


def recent_failures(session: Session, username: str, ip: str | None,
                    since: datetime) -> tuple[int, datetime | None]:
    """How many failed logins of `username` from `ip` since `since`, and the oldest one."""
    ip_match = AuditRow.ip.is_(None) if ip is None else AuditRow.ip == ip
    count, oldest = session.execute(
        select(func.count(AuditRow.id), func.min(AuditRow.at)).where(
            AuditRow.action == LOGIN_FAILED, AuditRow.actor == username[:128], ip_match,
            AuditRow.at >= since,
        )
    ).one()
    return int(count), oldest
