"""The reading side of the outbox: claiming due messages, recording results, dead letters.

`gridwatch.alerts.store.outbox.enqueue` writes a message in the transaction of the incident
change; this
module is how dispatchers take those messages out. A claim is a lease (`claimed_until`) set
in a short write transaction and committed before anything is sent, so no transaction stays
open across the network and a node killed mid-delivery only delays its messages until the
lease expires. On PostgreSQL the claim skips rows another node is claiming at that instant
(`FOR UPDATE SKIP LOCKED`), so several nodes share the queue without waiting on each other;
on SQLite the claim's write transaction holds the database's single write lock, which makes
the conditional UPDATE of the lease atomic just the same.

Each message's state per sink is kept in `outbox_deliveries`: a retry goes only to the sinks
that have not acknowledged it. A message that a sink refused, or that ran out of attempts,
is dead: it stays in the dead-letter list until an operator retries it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import ColumnElement, delete, func, or_, select, text, update
from sqlalchemy.orm import Session

from gridwatch.alerts.delivery.sinks.base import Message
from gridwatch.alerts.store.incident_store import IncidentStore, rows_changed
from gridwatch.alerts.store.tables import IncidentRow, OutboxDeliveryRow, OutboxRow, utcnow

log = logging.getLogger(__name__)

# Spelled as the partial index `ix_outbox_pending` is, so SQLite uses it (SQLAlchemy would
# write `dead = 0` on SQLite, which the planner does not match to `NOT dead`).
PENDING = text("outbox.delivered_at IS NULL AND NOT outbox.dead")
DEAD = text("outbox.dead")
MAX_LIMIT = 1000


class OutboxMessageNotFound(LookupError):
    def __init__(self, outbox_id: int) -> None:
        super().__init__(f"outbox message {outbox_id} does not exist")
        self.outbox_id = outbox_id


class NotDeadLetter(ValueError):
    """Only a dead message can be retried by hand; a pending one is retried anyway."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed message, with the sinks that already settled it (not sent to again)."""

    message: Message
    attempts: int
    settled: frozenset[str]


@dataclass(frozen=True, slots=True)
class Batch:
    """Messages claimed together under one lease token."""

    token: str
    items: tuple[Claimed, ...]


@dataclass(frozen=True, slots=True)
class SinkResult:
    """What one sink did with one message.

    `retry` covers a message not tried at all because the sink had just failed on another
    message of the batch (`tried` False): it counts as a failed round of the message, not as
    an attempt of the sink.
    """

    status: Literal["delivered", "retry", "refused"]
    reason: str | None = None
    retry_after_s: float | None = None
    tried: bool = True


@dataclass(frozen=True, slots=True)
class Recorded:
    """How the messages of a batch ended up."""

    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    lease_lost: int = 0


@dataclass(frozen=True, slots=True)
class SinkState:
    sink: str
    attempts: int
    delivered_at: datetime | None
    dead: bool
    last_error: str | None

    @classmethod
    def from_row(cls, row: OutboxDeliveryRow) -> SinkState:
        return cls(row.sink, row.attempts, row.delivered_at, row.dead, row.last_error)

    def to_api(self) -> dict:
        return {
            "sink": self.sink,
            "attempts": self.attempts,
            "delivered_at": None if self.delivered_at is None else self.delivered_at.isoformat(),
            "dead": self.dead,
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message no longer retried by itself, with why each sink failed."""

    id: int
    incident_id: str
    grid_cell: str | None
    topic: str
    idempotency_key: str
    attempts: int
    created_at: datetime
    last_attempt_at: datetime | None
    last_error: str | None
    dead: bool
    sinks: tuple[SinkState, ...]

    def to_api(self) -> dict:
        return {
            "id": self.id,
            "incident_id": self.incident_id,
            "grid_cell": self.grid_cell,
            "topic": self.topic,
            "idempotency_key": self.idempotency_key,
            "attempts": self.attempts,
            "created_at": self.created_at.isoformat(),
            "last_attempt_at": (
                None if self.last_attempt_at is None else self.last_attempt_at.isoformat()
            ),
            "last_error": self.last_error,
            "dead": self.dead,
            "sinks": [s.to_api() for s in self.sinks],
        }


def _lease_free(now: datetime) -> ColumnElement[bool]:
    return or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until <= now)


def claim(store: IncidentStore, *, node: str, limit: int, lease_s: float) -> Batch:
    """Lease up to `limit` due messages to `node` for `lease_s` seconds, oldest due first."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit: {limit} is outside 1-{MAX_LIMIT}")
    token = secrets.token_hex(16)
    now = utcnow()
    with store.writing() as session:
        ids = session.scalars(
            select(OutboxRow.id)
            .where(PENDING, OutboxRow.next_attempt_at <= now, _lease_free(now))
            .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if not ids:
            return Batch(token, ())
        session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(ids), _lease_free(now))
            .values(claimed_until=now + timedelta(seconds=lease_s), claimed_by=node,
                    claim_token=token)
            .execution_options(synchronize_session=False)
        )
        rows = session.scalars(
            select(OutboxRow).where(OutboxRow.claim_token == token).order_by(OutboxRow.id)
        ).all()
        settled: dict[int, set[str]] = {}
        for outbox_id, sink in session.execute(
            select(OutboxDeliveryRow.outbox_id, OutboxDeliveryRow.sink).where(
                OutboxDeliveryRow.outbox_id.in_([r.id for r in rows]),
                or_(OutboxDeliveryRow.delivered_at.is_not(None), OutboxDeliveryRow.dead),
            )
        ):
            settled.setdefault(outbox_id, set()).add(sink)
        items = tuple(
            Claimed(
                Message.build(r.id, r.idempotency_key, r.topic, r.incident_id, r.payload,
                              r.created_at),
                r.attempts, frozenset(settled.get(r.id, ())),
            )
            for r in rows
        )
    return Batch(token, items)


def record(
    store: IncidentStore,
    batch: Batch,
    results: Mapping[int, Mapping[str, SinkResult]],
    *,
    sinks: Sequence[str],
    max_attempts: int,
    delay_s: Callable[[int, float | None], float],
) -> Recorded:
    """Store what each sink did with each message of `batch` and release the lease.

    A message is delivered when every sink of `sinks` acknowledged it; dead when every sink
    settled it but one refused it, or when its `max_attempts`-th round still left a sink
    failing; otherwise it is due again after `delay_s(attempts, receiver's retry-after)`.
    A message whose lease was taken over by another node (ours expired) keeps the per-sink
    results, which are facts, but its retry state is left to the new claimer.
    """
    ids = [item.message.outbox_id for item in batch.items]
    if not ids:
        return Recorded()
    counts = {"delivered": 0, "retrying": 0, "dead": 0, "lease_lost": 0}
    with store.writing() as session:
        now = utcnow()
        rows = {
            r.id: r for r in session.scalars(
                select(OutboxRow).where(OutboxRow.id.in_(ids)).order_by(OutboxRow.id)
                .with_for_update()
            )
        }
        states = {
            (s.outbox_id, s.sink): s for s in session.scalars(
                select(OutboxDeliveryRow).where(OutboxDeliveryRow.outbox_id.in_(list(rows)))
            )
        }
        for outbox_id in ids:
            row = rows.get(outbox_id)
            if row is None:
                continue  # its incident was deleted meanwhile
            per_sink = results.get(outbox_id, {})
            for sink, result in per_sink.items():
                state = states.get((outbox_id, sink))
                if state is None:
                    state = OutboxDeliveryRow(outbox_id=outbox_id, sink=sink, attempts=0,
                                              dead=False)
                    session.add(state)
                    states[(outbox_id, sink)] = state
                _apply(state, result, now)
            if row.claim_token != batch.token:
                log.warning("outbox message %s: lease lost to %s before its results were "
                            "recorded; it may be delivered twice", outbox_id, row.claimed_by)
                counts["lease_lost"] += 1
                continue
            mine = {name: states.get((outbox_id, name)) for name in sinks}
            outcome = _settle(row, mine, per_sink, now, max_attempts, delay_s)
            counts[outcome] += 1
    return Recorded(**counts)


def _apply(state: OutboxDeliveryRow, result: SinkResult, now: datetime) -> None:
    if result.tried:
        state.attempts += 1
        state.last_attempt_at = now
    if result.status == "delivered":
        state.delivered_at, state.last_error = now, None
    else:
        state.last_error = result.reason
        state.dead = result.status == "refused"


def _settled(state: OutboxDeliveryRow | None) -> bool:
    return state is not None and (state.delivered_at is not None or state.dead)


def _settle(
    row: OutboxRow,
    states: Mapping[str, OutboxDeliveryRow | None],
    results: Mapping[str, SinkResult],
    now: datetime,
    max_attempts: int,
    delay_s: Callable[[int, float | None], float],
) -> Literal["delivered", "retrying", "dead"]:
    """Decide the message's fate from its state with each configured sink."""
    row.claimed_until = row.claimed_by = row.claim_token = None
    unsettled = [name for name, state in states.items() if not _settled(state)]
    failed = [name for name in unsettled if name in results]
    errors = "; ".join(
        f"{name}: {state.last_error}" for name, state in states.items()
        if state is not None and state.delivered_at is None and state.last_error
    )
    row.last_error = errors or None
    if results:
        row.last_attempt_at = now
    if not unsettled:
        if any(state is not None and state.dead for state in states.values()):
            row.dead = True
            log.error("outbox message %s (%s) is dead: %s", row.id, row.idempotency_key, errors)
            return "dead"
        row.delivered_at = now
        return "delivered"
    if not failed:
        # Some sinks were not reached this round (the batch ran short of lease time): due
        # again at once, and no attempt counted against the message.
        return "retrying"
    row.attempts += 1
    if row.attempts >= max_attempts:
        row.dead = True
        for name in unsettled:
            state = states[name]
            if state is not None:
                state.dead = True
        log.error("outbox message %s (%s) is dead after %d attempts: %s", row.id,
                  row.idempotency_key, row.attempts, errors)
        return "dead"
    hints = [r.retry_after_s for r in results.values() if r.retry_after_s is not None]
    row.next_attempt_at = now + timedelta(seconds=delay_s(row.attempts, max(hints, default=None)))
    return "retrying"


def release_leases(store: IncidentStore, node: str) -> int:
    """Free every lease held by `node`: called when it starts, as its previous run is over.

    What that run sent but did not record is sent again (at-least-once), without waiting for
    the leases to expire.
    """
    with store.writing() as session:
        result = session.execute(
            update(OutboxRow)
            .where(OutboxRow.claimed_by == node, PENDING)
            .values(claimed_until=None, claimed_by=None, claim_token=None)
            .execution_options(synchronize_session=False)
        )
    return rows_changed(result)


def next_due(store: IncidentStore) -> datetime | None:
    """When the earliest pending message becomes due (it may be due already)."""
    with store.reading() as session:
        return session.scalar(select(func.min(OutboxRow.next_attempt_at)).where(PENDING))


def counts(store: IncidentStore) -> dict[str, int]:
    """Messages pending delivery, delivered and dead."""
    with store.reading() as session:
        pending = session.scalar(select(func.count()).select_from(OutboxRow).where(PENDING))
        dead = session.scalar(select(func.count()).select_from(OutboxRow).where(DEAD))
        delivered = session.scalar(
            select(func.count()).select_from(OutboxRow)
            .where(OutboxRow.delivered_at.is_not(None))
        )
    return {"pending": pending or 0, "delivered": delivered or 0, "dead": dead or 0}


def _dead_letters(session: Session, rows: Iterable[tuple[OutboxRow, str | None]],
                  ) -> list[DeadLetter]:
    pairs = list(rows)
    states: dict[int, list[SinkState]] = {}
    for state in session.scalars(
        select(OutboxDeliveryRow)
        .where(OutboxDeliveryRow.outbox_id.in_([r.id for r, _ in pairs]))
        .order_by(OutboxDeliveryRow.sink)
    ):
        states.setdefault(state.outbox_id, []).append(SinkState.from_row(state))
    return [
        DeadLetter(
            id=row.id, incident_id=row.incident_id, grid_cell=cell, topic=row.topic,
            idempotency_key=row.idempotency_key, attempts=row.attempts,
            created_at=row.created_at, last_attempt_at=row.last_attempt_at,
            last_error=row.last_error, dead=row.dead, sinks=tuple(states.get(row.id, ())),
        )
        for row, cell in pairs
    ]


def list_dead_letters(
    store: IncidentStore,
    *,
    grid_cells: set[str] | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[DeadLetter]:
    """Dead messages, newest first; pass the last id as `before_id` for the next page.

    `grid_cells` scopes the list like `IncidentStore.list_incidents` does (an empty set
    matches nothing).
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit: {limit} is outside 1-{MAX_LIMIT}")
    query = (
        select(OutboxRow, IncidentRow.grid_cell)
        .join(IncidentRow, IncidentRow.id == OutboxRow.incident_id)
        .where(DEAD)
    )
    if grid_cells is not None:
        query = query.where(IncidentRow.grid_cell.in_(sorted(grid_cells)))
    if before_id is not None:
        query = query.where(OutboxRow.id < before_id)
    query = query.order_by(OutboxRow.id.desc()).limit(limit)
    with store.reading() as session:
        return _dead_letters(session, session.execute(query).all())


def retry_dead_letter(
    store: IncidentStore, outbox_id: int, *, grid_cells: set[str] | None = None,
) -> DeadLetter:
    """Put a dead message back in the queue, due now, with a fresh count of attempts.

    Only the sinks that have not acknowledged it get it again. Raises
    `OutboxMessageNotFound` (also for a message outside `grid_cells`) or `NotDeadLetter`.
    """
    with store.writing() as session:
        found = session.execute(
            select(OutboxRow, IncidentRow.grid_cell)
            .join(IncidentRow, IncidentRow.id == OutboxRow.incident_id)
            .where(OutboxRow.id == outbox_id)
            .with_for_update(of=OutboxRow)
        ).first()
        if found is None or (grid_cells is not None and found[1] not in grid_cells):
            raise OutboxMessageNotFound(outbox_id)
        row, cell = found
        if not row.dead:
            state = "delivered" if row.delivered_at is not None else "pending"
            raise NotDeadLetter(f"outbox message {outbox_id} is {state}, not dead")
        row.dead = False
        row.attempts = 0
        row.next_attempt_at = utcnow()
        row.claimed_until = row.claimed_by = row.claim_token = None
        session.execute(
            update(OutboxDeliveryRow)
            .where(OutboxDeliveryRow.outbox_id == outbox_id, OutboxDeliveryRow.dead)
            .values(dead=False)
            .execution_options(synchronize_session=False)
        )
        session.flush()
        session.expire_all()
        row = session.get_one(OutboxRow, outbox_id)
        (letter,) = _dead_letters(session, [(row, cell)])
    log.info("outbox message %s (%s) put back in the queue", outbox_id, letter.idempotency_key)
    return letter


def purge_delivered(store: IncidentStore, older_than: datetime) -> int:
    """Delete messages delivered before `older_than`; dead and pending ones are kept."""
    with store.writing() as session:
        result = session.execute(
            delete(OutboxRow)
            .where(OutboxRow.delivered_at.is_not(None), OutboxRow.delivered_at < older_than)
            .execution_options(synchronize_session=False)
        )
    return rows_changed(result)
