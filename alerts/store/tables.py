"""Database schema of the incident queue: incidents, their status history, the outbox and
its per-sink deliveries.

`Base` is the database's one declarative base: the accounts tables, which live with
authentication (`gridwatch.accounts.tables`), join its metadata, so one migration chain
covers the whole database. The same models run on SQLite (single node) and PostgreSQL
(multi-node), so every type is chosen to behave identically on both: JSON via the generic
type (JSONB on PostgreSQL), times always stored as UTC and handed back timezone-aware
whatever the backend keeps.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY (its rowid), not a BIGINT one.
AutoId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_incident_id() -> str:
    """32 hex digits (the size of a uuid4 hex) that sort by creation time.

    The millisecond prefix keeps ids in creation order in indexes and logs; the 80 random
    bits keep two nodes from ever colliding.
    """
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC.

    PostgreSQL keeps `timestamptz`, SQLite keeps naive text; normalising to naive UTC text on
    SQLite keeps its string ordering chronological, and results are always aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"datetime {value.isoformat()} has no timezone; pass an aware time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Named constraints let later migrations (SQLite batch mode included) find them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute as is
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        dict[str, int]: JSONType,
    }


class IncidentRow(Base):
    """One incident: a condition in a zone from start to end, whatever number of frames.

    `dedup_key` names (camera, zone, kind); at most one row per key is open (no end yet),
    which the partial unique index enforces even across nodes. `last_seen_*` is the time of
    the latest event, so an incident left open by a crashed process can be closed there.
    `version` counts the changes anyone can see (status, times, objects, evidence); every
    UPDATE checks it (optimistic locking), but a bare `last_seen_*` refresh leaves it alone,
    so an operator's version is not outdated by a detection repeating what it already said.
    """

    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    camera: Mapped[str] = mapped_column(String(128))
    grid_cell: Mapped[str | None] = mapped_column(String(64))
    zone: Mapped[str] = mapped_column(String(128))
    zone_name: Mapped[str | None] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    start_wall: Mapped[datetime]
    end_wall: Mapped[datetime | None]
    start_t: Mapped[float]
    end_t: Mapped[float | None]
    last_seen_wall: Mapped[datetime]
    last_seen_t: Mapped[float]
    objects: Mapped[dict[str, int]]
    snapshot: Mapped[str | None] = mapped_column(String(255))
    clip: Mapped[str | None] = mapped_column(String(255))
    evidence_score: Mapped[float | None]
    dedup_key: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer)
    # Deadlines are stamped once by the escalation job when it first sees the incident, so
    # a later change of the configured deadlines never moves an incident's due times.
    ack_due_at: Mapped[datetime | None]
    resolve_due_at: Mapped[datetime | None]
    # When the escalation job must look at the incident again (None: nothing pending).
    next_check_at: Mapped[datetime | None]
    overdue_ack: Mapped[bool] = mapped_column(default=False, server_default=false())
    overdue_resolve: Mapped[bool] = mapped_column(default=False, server_default=false())
    escalation_level: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    escalated_to: Mapped[str | None] = mapped_column(String(64))

    __mapper_args__ = {  # noqa: RUF012 - read once by the mapper
        "version_id_col": version,
        "version_id_generator": False,
    }
    __table_args__ = (
        Index("ix_incidents_start_wall", "start_wall"),
        Index("ix_incidents_camera_start", "camera", "start_wall"),
        Index("ix_incidents_zone_start", "zone", "start_wall"),
        Index("ix_incidents_kind_start", "kind", "start_wall"),
        Index("ix_incidents_status_start", "status", "start_wall"),
        Index("ix_incidents_grid_cell_start", "grid_cell", "start_wall"),
        Index("ix_incidents_dedup_key_end", "dedup_key", "end_wall"),
        Index("ix_incidents_next_check_at", "next_check_at"),
        Index(
            "uq_incidents_open_dedup_key", "dedup_key", unique=True,
            sqlite_where=text("end_wall IS NULL"), postgresql_where=text("end_wall IS NULL"),
        ),
    )


class TransitionRow(Base):
    """Who moved an incident from one operator status to another, when and why."""

    __tablename__ = "incident_transitions"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]

    __table_args__ = (Index("ix_incident_transitions_incident_at", "incident_id", "at"),)


class OutboxRow(Base):
    """A message about an incident change, written in the same transaction as the change.

    Delivery reads pending rows later and retries them, so an accepted incident is never lost
    between the database and a sink; `idempotency_key` lets sinks drop a repeated delivery.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    dead: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The dispatcher's lease: a row claimed until this time is left alone by other nodes; a
    # node killed while delivering loses the lease when it expires, and the row is claimed
    # again. `claim_token` tells the claimer its lease is still its own when it records.
    claimed_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claim_token: Mapped[str | None] = mapped_column(String(32))
    last_attempt_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_outbox_incident_id", "incident_id"),
        Index(
            "ix_outbox_pending", "next_attempt_at",
            sqlite_where=text("delivered_at IS NULL AND NOT dead"),
            postgresql_where=text("delivered_at IS NULL AND NOT dead"),
        ),
        Index(
            "ix_outbox_dead", "id",
            sqlite_where=text("dead"), postgresql_where=text("dead"),
        ),
    )


class OutboxDeliveryRow(Base):
    """Where one outbox message stands with one sink (by the sink's configured name).

    A message is retried as a whole but re-sent only to the sinks without a row marked
    delivered here, so a sink that acknowledged is not sent the message again because
    another sink failed.
    """

    __tablename__ = "outbox_deliveries"

    outbox_id: Mapped[int] = mapped_column(
        AutoId, ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True,
    )
    sink: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    delivered_at: Mapped[datetime | None]
    dead: Mapped[bool] = mapped_column(default=False, server_default=false())
    last_error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None]
